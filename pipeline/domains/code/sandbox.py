"""Run untrusted Python (a model-written function and its unit tests) in a throwaway sandbox.

Generated code runs only through `run_python` / `run_tests`. Each run is a fresh process tree:

    caller --Popen--> launcher (this file run as a script) --fork--> program (PID 1 of its own namespace)

The launcher is a fresh single-threaded interpreter, not a `preexec_fn`: the caller may be multi-threaded
(Prefect task runners, thread pools), and Python code between fork and exec in a threaded process can
deadlock on a lock some other thread held at the fork. The launcher enters the namespaces, enforces the
wall-clock timeout and reports the program's exit status, CPU time and the layers it set up on a private
pipe; the program confines itself further and then execs the interpreter on the code.

Layers, each independent of the others; `isolation()` says which ones this machine gives:

- environment: built from nothing (no variable of the caller's, so no API key); the working directory,
  HOME and TMPDIR are a fresh temporary directory, removed afterwards.
- resource limits (setrlimit): CPU seconds, address space, file size, processes, no core files; the
  wall-clock timeout is enforced by the launcher, and by the caller as a backstop.
- namespaces (unshare; directly as root, otherwise inside a new user namespace): a network namespace
  (only a loopback interface that is down: nothing is reachable, not even the caller's 127.0.0.1); a PID
  namespace whose PID 1 is the program, so when it ends or is killed the kernel kills every process it
  left behind, daemonised or not; a private mount namespace with its own /proc.
- Landlock (ABI >= 1): read (and execute) only the Python installation and the system libraries, read
  and write only the temporary directory; no /proc, no project file, no home directory. ABI >= 4 also
  refuses every TCP bind/connect; ABI >= 6 confines signals and abstract unix sockets to the sandbox.
- an unprivileged uid when we are root: a per-run uid that owns no file and no other process, so
  RLIMIT_NPROC (never enforced for root) counts only this run's processes, and files that other users
  may not read stay unreadable. When the interpreter sits below a directory other users cannot search
  (pyenv in /root), that directory is covered, in the private mount namespace only, by an empty tmpfs
  into which the installation alone is bind-mounted read-only.
- an audit hook in the program refusing internet sockets and name lookups: it turns an attempt into a
  clear "network unavailable", and is the only network layer where no namespace and no Landlock is
  available. It is not a guarantee (ctypes or a child process bypasses it).

Where a layer is missing the run goes on with the others, except that root refuses to run the program
as root (SandboxError). Not contained: CPU and memory limits are per process, so a run may use up to
`processes` times them until the timeout; Landlock before the network ABI does not filter TCP, and no
ABI filters UDP or connecting to a path-named unix socket the uid may write to (the network namespace
still has no route, and the per-run uid owns no socket); kernel vulnerabilities.
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import re
import resource
import select
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


class SandboxError(RuntimeError):
    """The sandbox itself could not be set up; the generated code did not run."""


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 5.0  # wall clock; the program and everything it started are killed after it
    cpu_s: int = 4  # RLIMIT_CPU, per process
    memory_mb: int = 512  # RLIMIT_AS (address space), per process
    file_mb: int = 4  # RLIMIT_FSIZE: the largest file the program may write
    # RLIMIT_NPROC. It counts every process of the uid and is never enforced for root, which is why the
    # program runs as a per-run uid (as root) or in a new user namespace (otherwise): there the count
    # starts from zero and covers only this run's processes and threads.
    processes: int = 32
    output_bytes: int = 65536  # of stdout and of stderr each kept; the rest is counted and dropped

    def __post_init__(self) -> None:
        problems = [f"{name}={getattr(self, name)!r} (expected >= {low})"
                    for name, low in (("cpu_s", 1), ("memory_mb", 64), ("file_mb", 0), ("processes", 1),
                                      ("output_bytes", 0))
                    if not isinstance(getattr(self, name), int) or getattr(self, name) < low]
        if not self.timeout_s > 0:
            problems.append(f"timeout_s={self.timeout_s!r} (expected > 0)")
        if problems:
            raise ValueError("invalid sandbox limits: " + ", ".join(problems))


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Outcome:
    passed: bool  # exit status 0 and not killed
    reason: str | None  # None when passed; else why not, e.g. "AssertionError: assert f(2) == 5"
    returncode: int | None  # negative: killed by that signal; None: no status (the launcher was killed)
    stdout: str
    stderr: str
    seconds: float  # wall clock of the whole run, start-up included
    output_cut: bool = False  # stdout or stderr exceeded output_bytes; the middle was dropped
    workdir: str = ""  # the run's throwaway directory (removed when the run ends)
    uid: int | None = None  # the run's own uid, where one was given (per_run_uid)


def run_python(code: str, *, limits: Limits = DEFAULT_LIMITS) -> Outcome:
    """Run `code` as a program in the sandbox."""
    return _run(code, limits)[0]


def run_tests(implementation: str, tests: str, *, limits: Limits = DEFAULT_LIMITS) -> Outcome:
    """Run `implementation` followed by `tests` (plain assert lines) as one program.

    The reason of a failed run names the first failing line of the program, e.g.
    "AssertionError: assert f(2) == 5".
    """
    return _run(implementation.rstrip("\n") + "\n\n" + tests, limits)[0]


@functools.cache
def isolation() -> dict[str, bool | int]:
    """Which layers this machine gives, found by running an empty program (see the module docstring).

    Keys: root, user_namespace, network_namespace, mount_namespace, pid_namespace, unprivileged_uid,
    per_run_uid, no_new_privs, landlock, landlock_abi, landlock_network, landlock_scope, audit_hook.
    """
    return _run("", DEFAULT_LIMITS)[1]


# --- caller side ---------------------------------------------------------------------------------------

_WORKDIR_PREFIX = "sparq-sandbox-"
# The launcher enforces the timeout; the caller waits this much longer before killing it as a backstop.
_BACKSTOP_S = 5.0
_CTL_MAX = 65536
# The interpreter the program runs. A venv's bin/python is this binary (a link or a copy); with -s -S the
# venv would add nothing but its site-packages, which the program must not see, and running the base
# binary directly keeps the whole project directory (where the venv lives) out of the sandbox.
_PYTHON = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
# Runs in the program's interpreter before the code: see "audit hook" in the module docstring. It compiles
# the code under its real path so that tracebacks name the line of the program (what `_reason` reads).
_PRELUDE = """\
import sys
def _no_network(event, args):
    if (event in ("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg")
            and getattr(args[0], "family", None) in (2, 10)
            or event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr")):
        raise OSError(101, "network unavailable in the sandbox")
sys.addaudithook(_no_network)
del _no_network
sys.argv = sys.argv[1:]
__file__ = sys.argv[0]
with open(__file__, encoding="utf-8") as _source:
    _code = compile(_source.read(), __file__, "exec")
del _source
exec(_code)
"""


class _Capture:
    """The first and the last bytes of a stream, at most `limit` in all; the middle is only counted.

    The tail is kept because that is where a traceback (and so the reason of a failure) ends up.
    """

    def __init__(self, limit: int) -> None:
        self.tail_cap = min(4096, limit // 4)
        self.head_cap = limit - self.tail_cap
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        room = self.head_cap - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data and self.tail_cap:
            self.tail += data
            del self.tail[:-self.tail_cap]

    @property
    def cut(self) -> bool:
        return self.total > self.head_cap + self.tail_cap

    def text(self) -> str:
        if not self.cut:
            return (self.head + self.tail).decode("utf-8", "replace")
        dropped = self.total - len(self.head) - len(self.tail)
        return (self.head.decode("utf-8", "replace") + f"\n[... sandbox: {dropped} bytes cut ...]\n"
                + self.tail.decode("utf-8", "replace"))


def _run(code: str, limits: Limits) -> tuple[Outcome, dict[str, bool | int]]:
    workdir = tempfile.mkdtemp(prefix=_WORKDIR_PREFIX)
    try:
        main = os.path.join(workdir, "main.py")
        with open(os.open(main, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), "w", encoding="utf-8") as f:
            f.write(code)
        env = {  # nothing of ours: the program must not see API keys or paths of the project
            "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": workdir, "TMPDIR": workdir,
            # Honoured because the program runs without -E (see _program_main): same hash order every run.
            "PYTHONHASHSEED": "0", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
        }
        ctl_r, ctl_w = os.pipe2(os.O_CLOEXEC)
        config = {"ctl": ctl_w, "workdir": workdir, "main": main, "python": _PYTHON,
                  "prefixes": sorted({os.path.realpath(sys.base_prefix), os.path.realpath(sys.base_exec_prefix)}),
                  "timeout_s": limits.timeout_s, "cpu_s": limits.cpu_s, "memory_mb": limits.memory_mb,
                  "file_mb": limits.file_mb, "processes": limits.processes}
        start = time.monotonic()
        try:
            proc = subprocess.Popen([_PYTHON, "-I", "-S", os.path.abspath(__file__), json.dumps(config)],
                                    cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, pass_fds=(ctl_w,), start_new_session=True)
        except BaseException:
            os.close(ctl_r)
            raise
        finally:
            os.close(ctl_w)
        try:
            out, err, ctl, backstop = _collect(proc, ctl_r, limits)
        finally:
            os.close(ctl_r)
            _kill_group(proc.pid)  # normally empty by now; the launcher is not yet reaped, so its pgid is ours
            proc.wait()
        seconds = time.monotonic() - start
    finally:
        shutil.rmtree(workdir, onerror=_force_remove)

    report: dict = {}
    layers: dict[str, bool | int] = {"root": os.geteuid() == 0, "audit_hook": True}
    for line in ctl.splitlines():
        message = json.loads(line)
        if "error" in message:
            raise SandboxError(f"sandbox setup failed: {message['error']}")
        layers.update(message.pop("layers", {}))
        report.update(message)
    if not report and not backstop:
        raise SandboxError(f"the sandbox launcher ended without a report (exit status {proc.returncode}); "
                           f"its stderr ends: {err.text()[-2000:]!r}")
    timed_out = backstop or report.get("timed_out", False)
    returncode = report.get("returncode")
    stderr = err.text()
    reason = _reason(returncode, timed_out, report.get("cpu_s", 0.0), limits, stderr, code, main)
    outcome = Outcome(passed=reason is None, reason=reason, returncode=returncode, stdout=out.text(),
                      stderr=stderr, seconds=seconds, output_cut=out.cut or err.cut, workdir=workdir,
                      uid=_UID_BASE + proc.pid if layers.get("per_run_uid") else None)
    return outcome, layers


def _collect(proc: subprocess.Popen, ctl_fd: int, limits: Limits) -> tuple[_Capture, _Capture, bytes, bool]:
    """Read stdout, stderr and the launcher's reports until all end, keeping bounded amounts of each."""
    out, err, ctl = _Capture(limits.output_bytes), _Capture(limits.output_bytes), bytearray()
    sinks = {proc.stdout.fileno(): out.feed, proc.stderr.fileno(): err.feed,
             ctl_fd: lambda data: ctl.extend(data[:_CTL_MAX - len(ctl)])}
    deadline = time.monotonic() + limits.timeout_s + _BACKSTOP_S
    backstop = False
    with selectors.DefaultSelector() as selector:
        for fd in sinks:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if backstop:
                    break  # a process outside every namespace still holds a pipe; it was killed with the group
                # The launcher did not end the run in time: kill it and its group; the program dies with it
                # (parent-death signal), and with the program its whole PID namespace.
                backstop = True
                _kill_group(proc.pid)
                deadline = time.monotonic() + 1.0
                continue
            for key, _ in selector.select(remaining):
                data = os.read(key.fd, 65536)
                if data:
                    sinks[key.fd](data)
                    continue
                selector.unregister(key.fd)
                if key.fd == ctl_fd:
                    # The launcher is exiting, so the program is gone. Without a PID namespace something the
                    # program started may still hold the pipes: kill the group, then drain for a short while.
                    _kill_group(proc.pid)
                    deadline = min(deadline, time.monotonic() + 1.0)
    proc.stdout.close()
    proc.stderr.close()
    return out, err, bytes(ctl), backstop


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _force_remove(function, path, exc_info) -> None:
    # The program may leave a directory without write or search permission (which stops us unless root).
    os.chmod(os.path.dirname(path), 0o700)
    if os.path.isdir(path) and not os.path.islink(path):
        os.chmod(path, 0o700)
        shutil.rmtree(path)
    else:
        os.unlink(path)


_FRAME = re.compile(r'^  File "(?P<file>.+)", line (?P<line>\d+)')


def _reason(returncode: int | None, timed_out: bool, cpu_s: float, limits: Limits, stderr: str, program: str,
            main: str) -> str | None:
    """Why the run failed, from its status and the end of its stderr; None when it passed."""
    if timed_out:
        return f"timeout after {limits.timeout_s:g} s"
    if returncode == 0:
        return None
    # The hard CPU limit equals the soft one (and as PID 1 of its namespace the program ignores SIGXCPU):
    # the kernel ends it with SIGKILL, told apart from other kills by the CPU time it had used. (The
    # rusage it reports can fall short of the limit the kernel enforced by a few ticks: 0.94 s for a
    # 1 s limit was seen on a loaded machine.)
    if returncode == -signal.SIGXCPU or (returncode == -signal.SIGKILL and cpu_s >= 0.9 * limits.cpu_s - 0.05):
        return "cpu time limit"
    exception, line = _last_exception(stderr, main)
    if "MemoryError" in (exception or "") or "Cannot allocate memory" in (exception or ""):
        return "memory limit"
    if returncode == -signal.SIGXFSZ or "File too large" in (exception or ""):
        return "file size limit"
    if exception and ("network unavailable" in exception or "Network is unreachable" in exception):
        return "network unavailable"
    if exception:
        source = program.splitlines()[line - 1].strip() if line and line <= len(program.splitlines()) else ""
        if source and exception == "AssertionError":
            return f"AssertionError: {source}"[:300]
        return (f"{exception} (line {line}: {source})" if source else exception)[:300]
    if returncode is not None and returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:  # a real-time signal has no name
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def _last_exception(stderr: str, main: str) -> tuple[str | None, int | None]:
    """The last traceback's exception line and the line of the program where it started (its first frame
    in the program: the top-level statement, e.g. the failing assert, even when the error is in a function).
    """
    at = stderr.rfind("Traceback (most recent call last):")
    if at < 0:
        return None, None
    lines = [line for line in stderr[at:].splitlines() if line.strip()]
    frames = [int(m["line"]) for m in map(_FRAME.match, lines) if m and m["file"] == main]
    exception = lines[-1].strip() if len(lines) > 1 else None
    return exception, (frames[0] if frames else None)


# --- launcher and program side (run as a script: stdlib only) ------------------------------------------

_CLONE_NEWNS, _CLONE_NEWUSER, _CLONE_NEWPID, _CLONE_NEWNET = 0x00020000, 0x10000000, 0x20000000, 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 32, 4096, 16384, 1 << 18
_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS = 1, 38
# A per-run uid (and gid): this base plus the launcher's pid. PIDs are below 2**22, and the launcher lives
# until every process of its run is gone, so two live runs never share a uid.
_UID_BASE = 0x4000_0000

# Landlock, from include/uapi/linux/landlock.h. These syscall numbers are the generic ones (x86_64, arm64).
_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION, _RULE_PATH_BENEATH = 1, 1
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_MAKE_CHAR, _FS_MAKE_BLOCK = 1 << 6, 1 << 11
_FS_ABI1 = (1 << 13) - 1  # EXECUTE .. MAKE_SYM
_FS_REFER, _FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15  # ABI 2, 3, 5
# The only rights a rule on a file (not a directory) may carry.
_FS_FILE_ONLY = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE | _FS_IOCTL_DEV
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6
_READ = _FS_READ_FILE | _FS_READ_DIR
_SYSTEM_LIBS = ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib")


class _RulesetAttr(ctypes.Structure):  # struct landlock_ruleset_attr; older ABIs read only a prefix
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):  # struct landlock_path_beneath_attr, __attribute__((packed))
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def _check(result: int, what: str) -> int:
    if result < 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")
    return result


def _launcher_main(config: dict) -> None:
    """The launcher: namespaces, then fork the program, enforce the timeout, report its status."""
    ctl = config["ctl"]
    os.set_inheritable(ctl, False)  # so that the program's exec closes it: the code never sees this pipe
    try:
        libc = _libc()
        privileged = os.geteuid() == 0
        layers: dict[str, bool | int] = {"user_namespace": False}
        if not privileged:
            uid, gid = os.getuid(), os.getgid()
            layers["user_namespace"] = libc.unshare(ctypes.c_int(_CLONE_NEWUSER)) == 0
            if layers["user_namespace"]:  # map ourselves to ourselves, so files we create keep their owner
                for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
                    Path(f"/proc/self/{name}").write_text(text)
        for name, flag in (("network_namespace", _CLONE_NEWNET), ("mount_namespace", _CLONE_NEWNS),
                           ("pid_namespace", _CLONE_NEWPID)):
            layers[name] = libc.unshare(ctypes.c_int(flag)) == 0
        launcher_pid = os.getpid()
        child = os.fork()
    except BaseException as exc:
        os.write(ctl, json.dumps({"error": f"launcher: {exc!r}"}).encode() + b"\n")
        os._exit(125)
    if child == 0:
        try:
            _program_main(config, libc, layers, privileged, launcher_pid)
        except BaseException as exc:
            os.write(ctl, json.dumps({"error": f"{exc!r}"}).encode() + b"\n")
        os._exit(125)
    # A pidfd becomes readable when the program ends; the program is not reaped before we kill it, so the
    # pid cannot have been reused by then.
    pidfd = os.pidfd_open(child)
    timed_out = not select.select([pidfd], [], [], config["timeout_s"])[0]
    if timed_out:
        os.kill(child, signal.SIGKILL)  # PID 1 of the namespace: the kernel kills all the rest with it
    _, status, usage = os.wait4(child, 0)
    os.write(ctl, json.dumps({"returncode": os.waitstatus_to_exitcode(status), "timed_out": timed_out,
                              "cpu_s": usage.ru_utime + usage.ru_stime, "layers": layers}).encode() + b"\n")


def _program_main(config: dict, libc: ctypes.CDLL, layers: dict, privileged: bool, launcher_pid: int) -> None:
    """The program before its exec: mounts, Landlock, uid, limits, in that order (the first three need root)."""
    workdir, ctl = config["workdir"], config["ctl"]
    python, prefixes = config["python"], list(config["prefixes"])
    if not any(python.startswith(prefix + os.sep) for prefix in prefixes):
        prefixes.append(os.path.dirname(python))
    if layers["mount_namespace"]:
        # Private first: no mount below may propagate back to the caller's namespace.
        _mount(libc, None, "/", None, _MS_REC | _MS_PRIVATE)
        if layers["pid_namespace"]:
            try:  # a /proc showing only this namespace; Landlock hides /proc anyway, this is for its absence
                _mount(libc, "proc", "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
            except OSError:
                pass
    uid = gid = _UID_BASE + launcher_pid
    if privileged:
        _make_reachable(libc, [(p, False) for p in prefixes] + [(workdir, True)], layers["mount_namespace"])
        os.chown(workdir, uid, gid)
    _check(libc.prctl(ctypes.c_int(_PR_SET_NO_NEW_PRIVS), ctypes.c_ulong(1), ctypes.c_ulong(0),
                      ctypes.c_ulong(0), ctypes.c_ulong(0)), "prctl(PR_SET_NO_NEW_PRIVS)")
    layers["no_new_privs"] = True
    work = ~(_FS_EXECUTE | _FS_MAKE_CHAR | _FS_MAKE_BLOCK)  # everything else, in the temporary directory only
    rules = ([(p, _READ | _FS_EXECUTE) for p in prefixes]
             + [(p, _READ | _FS_EXECUTE) for p in _SYSTEM_LIBS]  # the dynamic loader is exec-opened
             + [("/etc/ld.so.cache", _FS_READ_FILE), ("/dev/null", _FS_READ_FILE | _FS_WRITE_FILE | _FS_TRUNCATE)]
             + [(p, _FS_READ_FILE) for p in ("/dev/zero", "/dev/random", "/dev/urandom")]
             + [(workdir, work)])
    abi = _landlock(libc, rules)
    layers.update(landlock=abi > 0, landlock_abi=abi, landlock_network=abi >= 4, landlock_scope=abi >= 6)
    if privileged:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)  # drops every capability
    layers.update(unprivileged_uid=os.geteuid() != 0, per_run_uid=privileged)
    # Kill the program if the launcher dies (set after the uid change, which clears it).
    _check(libc.prctl(ctypes.c_int(_PR_SET_PDEATHSIG), ctypes.c_ulong(signal.SIGKILL), ctypes.c_ulong(0),
                      ctypes.c_ulong(0), ctypes.c_ulong(0)), "prctl(PR_SET_PDEATHSIG)")
    mb = 1 << 20
    nproc = config["processes"] + (0 if privileged else 1)  # in a user namespace the launcher counts too
    for limit, value in ((resource.RLIMIT_CPU, config["cpu_s"]), (resource.RLIMIT_AS, config["memory_mb"] * mb),
                         (resource.RLIMIT_FSIZE, config["file_mb"] * mb), (resource.RLIMIT_NPROC, nproc),
                         (resource.RLIMIT_CORE, 0), (resource.RLIMIT_NOFILE, 256)):
        hard = resource.getrlimit(limit)[1]  # unprivileged now: a limit can only go down
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(limit, (value, value))
    os.write(ctl, json.dumps({"layers": layers}).encode() + b"\n")
    # Not -I: it would also drop PYTHONHASHSEED, and the environment is ours already (built from nothing).
    # -s -S: no user or site packages; -P: neither the working directory nor the code's on sys.path.
    os.execve(python, [python, "-s", "-S", "-P", "-c", _PRELUDE, config["main"]], dict(os.environ))


def _mount(libc: ctypes.CDLL, source: str | None, target: str, fstype: str | None, flags: int,
           data: str | None = None) -> None:
    def encode(text):
        return None if text is None else os.fsencode(text)

    if libc.mount(encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data)) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"mount({source!r}, {target!r}, {fstype!r}): {os.strerror(error)}")


def _make_reachable(libc: ctypes.CDLL, paths: list[tuple[str, bool]], can_mount: bool) -> None:
    """Let the per-run uid reach `paths` (directory, writable?) although some directory above one of them
    is not searchable by others (pyenv in /root, mode 700): in our mount namespace only, that directory is
    covered by an empty tmpfs into which the path alone is bind-mounted (read-only unless writable)."""
    plan: dict[str, list[tuple[str, bool]]] = {}
    for path, writable in paths:
        top = next((str(a) for a in reversed(Path(path).parents) if not os.stat(a).st_mode & stat.S_IXOTH), None)
        if top:
            plan.setdefault(top, []).append((path, writable))
    if not plan:
        return
    if not can_mount:
        raise PermissionError(f"as root the program must run as an unprivileged uid, which cannot reach "
                              f"{sorted(p for ps in plan.values() for p, _ in ps)} (below {sorted(plan)}, not "
                              f"searchable by others), and there is no mount namespace to make them reachable; "
                              f"expected a Python installation and temporary directory that others can read")
    fds = {path: os.open(path, os.O_PATH | os.O_DIRECTORY) for hidden in plan.values() for path, _ in hidden}
    for top, hidden in plan.items():
        _mount(libc, "tmpfs", top, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0755,size=64k")
        for path, writable in hidden:
            os.makedirs(path, mode=0o755, exist_ok=True)
            _mount(libc, f"/proc/self/fd/{fds[path]}", path, None, _MS_BIND | _MS_REC)
            if not writable:
                _mount(libc, None, path, None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)
    for fd in fds.values():
        os.close(fd)


def _landlock(libc: ctypes.CDLL, rules: list[tuple[str, int]]) -> int:
    """Restrict this process and its descendants to `rules` (path, rights); returns the ABI, 0 if none."""
    if os.uname().machine not in ("x86_64", "aarch64"):
        return 0  # other architectures may number the syscalls differently
    syscall = libc.syscall
    abi = syscall(ctypes.c_long(_SYS_CREATE_RULESET), None, ctypes.c_size_t(0),
                  ctypes.c_uint32(_CREATE_RULESET_VERSION))
    if abi < 1:
        return 0  # not built in or disabled at boot (ENOSYS, EOPNOTSUPP)
    handled = _FS_ABI1 | (_FS_REFER if abi >= 2 else 0) | (_FS_TRUNCATE if abi >= 3 else 0) | (
        _FS_IOCTL_DEV if abi >= 5 else 0)
    # Handling TCP bind/connect with no rule allowing any port refuses them all.
    attr = _RulesetAttr(handled, _NET_BIND_TCP | _NET_CONNECT_TCP if abi >= 4 else 0,
                        _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL if abi >= 6 else 0)
    size = 8 if abi < 4 else 16 if abi < 6 else 24  # what this ABI's struct holds
    ruleset = _check(syscall(ctypes.c_long(_SYS_CREATE_RULESET), ctypes.byref(attr), ctypes.c_size_t(size),
                             ctypes.c_uint32(0)), "landlock_create_ruleset")
    try:
        for path, rights in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # e.g. no /usr/lib64 here
            try:
                allowed = rights & handled
                if not stat.S_ISDIR(os.fstat(fd).st_mode):
                    allowed &= _FS_FILE_ONLY
                rule = _PathBeneathAttr(allowed, fd)
                _check(syscall(ctypes.c_long(_SYS_ADD_RULE), ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH),
                               ctypes.byref(rule), ctypes.c_uint32(0)), f"landlock_add_rule({path!r})")
            finally:
                os.close(fd)
        _check(syscall(ctypes.c_long(_SYS_RESTRICT_SELF), ctypes.c_int(ruleset), ctypes.c_uint32(0)),
               "landlock_restrict_self")
    finally:
        os.close(ruleset)
    return abi


if __name__ == "__main__":
    _launcher_main(json.loads(sys.argv[1]))
