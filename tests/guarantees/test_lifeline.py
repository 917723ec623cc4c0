"""Every process the project starts dies with the process that started it, SIGKILL included
(pipeline/runtime/lifeline.py). Each test kills the parent pid alone, as `kill -9 PID` or the OOM
killer does (not its process group, which the crash suites kill), and checks that no
process it started survives; the campaign tests then resume the run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.runtime.lifeline import GRACE_S, POLL_S, alive, descendants
from tests.conftest import REPO, scripted_config, sparq_cmd

DEADLINE_S = POLL_S + GRACE_S + 10  # the watchdog's poll, its grace, and a loaded machine's slack


def _wait(cond, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _kill_alone_and_check(proc: subprocess.Popen, children: dict[int, int]) -> int:
    """SIGKILL `proc` alone; every one of `children` must be gone within DEADLINE_S. Returns
    how many there were. Survivors are killed here so that a failure leaves none behind."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    try:
        _wait(lambda: not any(alive(p, s) for p, s in children.items()),
              f"the children of pid {proc.pid} to die", DEADLINE_S)
    finally:
        survivors = {p: s for p, s in children.items() if alive(p, s)}
        for pid in survivors:
            os.kill(pid, signal.SIGKILL)
    return len(children)


def test_children_and_grandchildren_die_with_a_killed_parent(tmp_path: Path):
    script = tmp_path / "parent.py"
    script.write_text(f"""
import subprocess, sys, time
sys.path.insert(0, {str(REPO)!r})
from pipeline.runtime.lifeline import watch
watch()
# a child, and a child that starts a grandchild of its own
subprocess.Popen(["sleep", "300"])
subprocess.Popen(["sh", "-c", "sleep 301 & sleep 302"])
print("ready", flush=True)
time.sleep(300)
""")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, start_new_session=True)
    children: dict[int, int] = {}
    try:
        assert proc.stdout.readline().strip() == "ready"
        _wait(lambda: len(descendants(proc.pid)) >= 4, "2 sleeps, sh and its sleep", 30)
        time.sleep(2 * POLL_S)  # the watchdog has seen them all (a later child is found at the death)
        children = descendants(proc.pid)
        assert _kill_alone_and_check(proc, children) >= 5  # with the watchdog
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid, started in children.items():  # a failed check leaves nothing behind
            if alive(pid, started):
                os.kill(pid, signal.SIGKILL)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        return "(gone)"


def _campaign_until_solving(tmp_path: Path, *flags: str) -> tuple[subprocess.Popen, Path, Path]:
    """`sparq generate` on a slow scripted engine, started in a session of its own, once its
    judge workers (and, with Prefect, its server) run."""
    cfg = scripted_config(tmp_path, steps=50, batch=4, k=4, delay_s=0.3)
    run_dir, log = tmp_path / "run", tmp_path / "generate.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(sparq_cmd("generate", "--config", str(cfg), "--run-dir", str(run_dir), *flags),
                                cwd=REPO, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    _wait(lambda: "step 2:" in log.read_text(errors="replace") or proc.poll() is not None,
          "two committed steps", 300)
    assert proc.poll() is None, log.read_text()[-3000:]
    return proc, cfg, run_dir


@pytest.mark.parametrize("flags", [("--no-prefect",), ()], ids=["no-prefect", "prefect"])
def test_killed_campaign_leaves_no_process_and_resumes(tmp_path: Path, flags: tuple[str, ...], figures):
    proc, cfg, run_dir = _campaign_until_solving(tmp_path, *flags)
    try:
        time.sleep(2 * POLL_S)
        children = descendants(proc.pid)
        names = {pid: _cmdline(pid) for pid in children}
        # Besides the watchdog: the judge's forkserver and workers, multiprocessing's
        # resource tracker (and Prefect's temporary server).
        started = [n for n in names.values() if "lifeline.py" not in n]
        assert len(started) >= 2 and (flags or any("prefect" in n or "uvicorn" in n for n in started)), names
        counted = _kill_alone_and_check(proc, children)
    finally:
        if proc.poll() is None:
            proc.kill()
    resumed = subprocess.run(sparq_cmd("generate", "--config", str(cfg), "--run-dir", str(run_dir), "--resume",
                                       "--steps", "3", "--no-prefect"),
                             cwd=REPO, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    figures.record(f"lifeline.{'prefect' if not flags else 'no_prefect'}", children=counted, survivors=0,
                   resumed=1)
