"""The processes a campaign starts die with it, however it dies (SIGKILL included).

vLLM's engine core, Prefect's temporary server, the answer judge's forkserver and workers
and multiprocessing's resource tracker are child processes. When `sparq generate` exits
they are stopped; when it is killed (`kill -9`, the OOM killer) nothing of it runs, and
they lived on with parent pid 1: an engine core holding its model's memory (on a GPU, its
share of GPU memory, so the resumed run cannot start).

`watch()` starts a watchdog for the calling process: a small separate Python process, in a
session of its own (a kill of the campaign's process group leaves it running), that
every `POLL_S` seconds records the campaign's descendants (pid and start time, read from
/proc), and when the campaign process is gone sends them SIGTERM, and SIGKILL to what is
left after `GRACE_S`. A child started less than `POLL_S` before the death and a
grandchild of a recorded process are found at that moment by their parent pids. The
start time guards against a reused pid. Linux only (/proc); elsewhere `watch` does
nothing. It runs as a script (no package import), so it starts in about 30 ms.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

POLL_S = 0.5
GRACE_S = 5.0

_started: dict[int, subprocess.Popen] = {}  # watched pid -> its watchdog
_lock = threading.Lock()


def watch() -> None:
    """Make this process's descendants die with it (idempotent per process)."""
    pid = os.getpid()
    if not Path("/proc/self/stat").exists():
        return
    with _lock:
        if pid in _started:
            return
        _started[pid] = subprocess.Popen(
            [sys.executable, "-I", str(Path(__file__).resolve()), str(pid)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True)


def watchdog_of(pid: int) -> int | None:
    """The pid of the watchdog this process started for `pid` (tests)."""
    proc = _started.get(pid)
    return None if proc is None else proc.pid


# -- the watchdog's side (pure /proc reading; no package imports) ---------------------------------


def stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time in clock ticks) of `pid`, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes().decode("ascii", "replace")
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces or parentheses itself.
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0], int(fields[19])


def processes() -> dict[int, tuple[int, str, int]]:
    """Every process: pid -> (parent pid, state, start time)."""
    out = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            info = stat(int(entry.name))
            if info is not None:
                out[int(entry.name)] = info
    return out


def descendants(root: int, table: dict[int, tuple[int, str, int]] | None = None) -> dict[int, int]:
    """The live descendants of `root`: pid -> start time."""
    table = processes() if table is None else table
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = {}, list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if pid not in out:
            out[pid] = table[pid][2]
            todo += children.get(pid, [])
    return out


def alive(pid: int, started: int) -> bool:
    info = stat(pid)
    return info is not None and info[2] == started and info[1] not in ("Z", "X")


def _signal(pids: dict[int, int], sig: int) -> None:
    for pid, started in pids.items():
        if alive(pid, started):
            try:
                os.kill(pid, sig)
            except OSError:  # gone meanwhile, or not ours to signal
                pass


def run(parent: int, me: int) -> None:
    """Watch `parent`; when it is gone, stop every process it left behind."""
    first = stat(parent)
    if first is None:
        return
    started = first[2]
    known: dict[int, int] = {}
    while alive(parent, started):
        now = descendants(parent)
        now.pop(me, None)
        known.update(now)
        # Forget what ended; its pid may be reused.
        known = {pid: st for pid, st in known.items() if alive(pid, st)}
        time.sleep(POLL_S)
    # Orphans are reparented (to init or a subreaper); what they started since is found
    # through the parent pids of the processes known.
    table = processes()
    left = {pid: st for pid, st in known.items() if pid in table and table[pid][2] == st}
    for pid in list(left):
        left.update(descendants(pid, table))
    left.pop(me, None)
    _signal(left, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline and any(alive(p, s) for p, s in left.items()):
        time.sleep(0.1)
    _signal(left, signal.SIGKILL)


if __name__ == "__main__":
    run(int(sys.argv[1]), os.getpid())  # argv: the watched pid
