"""The sandbox for generated code (pipeline/domains/code/sandbox.py): judging, and escapes that must be contained.

Each escape test checks the effect that matters (nothing received, no file, no secret in the output, no
process left), not only that the run failed. Tests that need a particular kernel layer skip, naming it,
where `isolation()` says this machine does not give it.
"""

from __future__ import annotations

import os
import socket
import tempfile
import tracemalloc
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pipeline.domains.code import sandbox
from pipeline.domains.code.sandbox import Limits, isolation, run_python, run_tests

ISO = isolation()
needs_landlock = pytest.mark.skipif(not ISO["landlock"], reason="no Landlock on this machine")
needs_kernel_network_layer = pytest.mark.skipif(
    not (ISO["network_namespace"] or ISO["landlock_network"]),
    reason="neither a network namespace nor Landlock TCP rules here: only the audit hook stands")
needs_netns = pytest.mark.skipif(not ISO["network_namespace"], reason="no network namespace on this machine")
needs_nproc = pytest.mark.skipif(not (ISO["per_run_uid"] or ISO["user_namespace"]),
                                 reason="RLIMIT_NPROC would count processes outside the sandbox here")
needs_pidns = pytest.mark.skipif(not ISO["pid_namespace"], reason="no PID namespace on this machine")

FAST = Limits(timeout_s=3.0)


def sandbox_processes(marker: str = sandbox._WORKDIR_PREFIX, uid: int | None = None) -> list[int]:
    """Live processes of a sandbox run: with `uid`, that run's uid; else `marker` in the
    command line. (Not "any sandbox uid": tests in the other xdist worker run sandboxes too.)"""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            owner = int((entry / "status").read_text().split("\nUid:")[1].split()[0])
        except (OSError, IndexError):
            continue  # ended meanwhile
        if (uid is not None and owner == uid) or (uid is None and marker.encode() in cmdline):
            found.append(int(entry.name))
    return found


@pytest.fixture
def listener():
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(0.3)
        yield server


def assert_nothing_received(server: socket.socket) -> None:
    with pytest.raises(TimeoutError):
        conn, _ = server.accept()
        conn.close()


# --- judging ---


def test_correct_implementation_passes():
    outcome = run_tests("def f(x):\n    return x + 1\n", "assert f(1) == 2\nassert f(2) == 3\n")
    assert outcome.passed, outcome
    assert outcome.reason is None and outcome.returncode == 0
    assert outcome.seconds < FAST.timeout_s


def test_wrong_implementation_names_the_first_failing_assert():
    outcome = run_tests("def f(x):\n    return x * 2\n", "assert f(1) == 2\nassert f(2) == 5\nassert f(3) == 7\n")
    assert not outcome.passed
    assert outcome.reason == "AssertionError: assert f(2) == 5"


def test_error_inside_the_function_names_the_assert_that_called_it():
    outcome = run_tests("def f(x):\n    return 1 / x\n", "assert f(1) == 1\nassert f(0) == 0\n")
    assert outcome.reason == "ZeroDivisionError: division by zero (line 5: assert f(0) == 0)"


def test_syntax_error_is_reported():
    outcome = run_tests("def f(x:\n    return x\n", "assert f(1) == 1\n")
    assert not outcome.passed and outcome.reason.startswith("SyntaxError")


def test_program_may_use_its_own_directory_and_subprocesses():
    code = ("import os, subprocess, sys\n"
            "open('a.txt', 'w').write('hello')\n"
            "assert open('a.txt').read() == 'hello'\n"
            "out = subprocess.run([sys.executable, '-c', 'print(6 * 7)'], capture_output=True, text=True)\n"
            "assert out.stdout == '42\\n', out\n")
    outcome = run_python(code, limits=FAST)
    assert outcome.passed, outcome


def test_invalid_limits_name_the_field():
    with pytest.raises(ValueError, match=r"timeout_s=0 \(expected > 0\)"):
        Limits(timeout_s=0)
    with pytest.raises(ValueError, match=r"memory_mb=1 \(expected >= 64\)"):
        Limits(memory_mb=1)


def test_concurrent_runs_do_not_interfere():
    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(lambda i: run_tests(f"def f():\n    return {i}\n", f"assert f() == {i}\n"),
                                 range(4)))
    assert all(o.passed for o in outcomes), outcomes


def test_isolation_reports_the_layers(figures):
    # The escape tests of this file (network, files, environment, /proc, limits, processes):
    # each one fails if the program got out; the Guarantees table shows their result beside this count.
    escapes = [n for n in globals() if n.startswith("test_") and n not in (
        "test_isolation_reports_the_layers", "test_correct_implementation_passes", "test_invalid_limits_name_the_field",
        "test_program_may_use_its_own_directory_and_subprocesses", "test_concurrent_runs_do_not_interfere",
        "test_wrong_implementation_names_the_first_failing_assert", "test_syntax_error_is_reported",
        "test_error_inside_the_function_names_the_assert_that_called_it")]
    figures.record("sandbox.escapes", escape_tests=len(escapes),
                   layers=sorted(k for k, v in ISO.items() if v is True and k not in ("root", "audit_hook")))
    assert ISO["audit_hook"] is True
    assert set(ISO) >= {"network_namespace", "pid_namespace", "landlock", "landlock_abi", "unprivileged_uid"}
    if ISO["root"]:  # as root the program never runs as root (or the run is refused)
        assert ISO["unprivileged_uid"] and ISO["per_run_uid"]


# --- network ---


def test_connect_to_the_parents_listener_is_refused(listener):
    port = listener.getsockname()[1]
    code = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\ns.sendall(b'leak')\n"
    outcome = run_python(code, limits=FAST)
    assert not outcome.passed and outcome.reason == "network unavailable"
    assert_nothing_received(listener)


def test_connect_to_an_external_address_is_refused():
    for host in ("1.1.1.1", "example.com"):
        outcome = run_python(f"import socket\nsocket.create_connection(({host!r}, 80), timeout=1)\n", limits=FAST)
        assert not outcome.passed and outcome.reason == "network unavailable", outcome


CTYPES_CONNECT = """\
import ctypes, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
failures = 0
for host, port in (("127.0.0.1", {port}), ("1.1.1.1", 80)):
    fd = libc.socket(socket.AF_INET, socket.SOCK_STREAM, 0)
    address = struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) + socket.inet_aton(host) + bytes(8)
    if libc.connect(fd, address, len(address)) != 0:
        failures += 1
        print(host, "errno", ctypes.get_errno())
    else:
        libc.send(fd, b"leak", 4, 0)
sys.exit(3 if failures == 2 else 0)
"""


@needs_kernel_network_layer
def test_connect_bypassing_the_audit_hook_is_refused_by_the_kernel(listener):
    port = listener.getsockname()[1]
    outcome = run_python(CTYPES_CONNECT.format(port=port), limits=FAST)
    assert outcome.returncode == 3, outcome  # both connect() calls failed
    assert not outcome.passed and outcome.reason == "exit status 3"
    assert_nothing_received(listener)


@needs_netns
def test_udp_bypassing_the_audit_hook_reaches_nothing():
    # Landlock does not filter UDP: this is the network namespace alone.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(0.3)
        port = server.getsockname()[1]
        code = ("import ctypes, socket, struct, sys\n"
                "libc = ctypes.CDLL(None, use_errno=True)\n"
                "fd = libc.socket(socket.AF_INET, socket.SOCK_DGRAM, 0)\n"
                f"a = struct.pack('=H', socket.AF_INET) + struct.pack('!H', {port}) + socket.inet_aton('127.0.0.1')"
                " + bytes(8)\n"
                "sys.exit(0 if libc.sendto(fd, b'leak', 4, 0, a, len(a)) == 4 else 3)\n")
        outcome = run_python(code, limits=FAST)
        assert outcome.returncode == 3, outcome
        with pytest.raises(TimeoutError):
            server.recvfrom(16)


# --- filesystem and secrets ---


def test_writing_outside_its_directory_is_refused(tmp_path):
    target = tmp_path / "escaped.txt"
    outcome = run_python(f"open({str(target)!r}, 'w').write('x')\n", limits=FAST)
    assert not outcome.passed and "PermissionError" in outcome.reason
    assert not target.exists()


@needs_landlock
def test_writing_to_a_world_writable_directory_is_refused():
    # /tmp lets every uid create files: only Landlock stops this.
    target = Path(tempfile.gettempdir()) / f"sparq-escape-{uuid.uuid4().hex}"
    try:
        outcome = run_python(f"open({str(target)!r}, 'w').write('x')\n", limits=FAST)
        assert not outcome.passed and "PermissionError" in outcome.reason
        assert not target.exists()
    finally:
        target.unlink(missing_ok=True)


def assert_secret_stays(outcome: sandbox.Outcome, secret: str) -> None:
    assert not outcome.passed, outcome
    assert secret not in outcome.stdout and secret not in outcome.stderr


def test_reading_a_secret_file_is_refused(tmp_path):
    secret = f"secret-{uuid.uuid4().hex}"
    path = tmp_path / "secret.txt"
    path.write_text(secret)
    assert_secret_stays(run_python(f"print(open({str(path)!r}).read())\n", limits=FAST), secret)


@needs_landlock
def test_reading_a_world_readable_file_outside_is_refused():
    secret = f"secret-{uuid.uuid4().hex}"
    with tempfile.NamedTemporaryFile("w", dir=tempfile.gettempdir(), suffix=".txt") as f:
        f.write(secret)
        f.flush()
        os.chmod(f.name, 0o644)
        assert_secret_stays(run_python(f"print(open({f.name!r}).read())\n", limits=FAST), secret)


@needs_landlock
def test_reading_the_projects_files_is_refused():
    source = Path(sandbox.__file__)
    line = "class SandboxError(RuntimeError):"
    assert line in source.read_text()
    assert_secret_stays(run_python(f"print(open({str(source)!r}).read())\n", limits=FAST), line)


def test_the_parents_environment_is_not_passed(monkeypatch):
    secret = f"secret-{uuid.uuid4().hex}"
    monkeypatch.setenv("SPARQ_TEST_API_KEY", secret)
    outcome = run_python("import os\nprint(dict(os.environ))\nprint(os.environ['SPARQ_TEST_API_KEY'])\n", limits=FAST)
    assert_secret_stays(outcome, secret)
    assert outcome.reason.startswith("KeyError: 'SPARQ_TEST_API_KEY'")


def test_the_parents_proc_entries_are_unreadable():
    me = Path(f"/proc/{os.getpid()}")
    for entry in ("environ", "cmdline"):  # what is there to steal: the longest variable, the longest argument
        secret = max((me / entry).read_bytes().split(b"\0"), key=len).decode()
        code = f"print(open('/proc/{os.getpid()}/{entry}', 'rb').read())\n"
        assert_secret_stays(run_python(code, limits=FAST), secret)
    # Landlock refuses /proc altogether; without it, the PID namespace's own /proc lists no process of ours.
    listing = run_python("import os\nprint(sorted(map(int, filter(str.isdigit, os.listdir('/proc')))))\n",
                         limits=FAST)
    assert str(os.getpid()) not in listing.stdout.strip("[]\n").split(", ")


# --- resources and processes ---


def test_infinite_loop_is_killed_at_the_timeout():
    outcome = run_python("while True:\n    pass\n", limits=Limits(timeout_s=1.0, cpu_s=30))
    assert not outcome.passed and outcome.reason == "timeout after 1 s"
    assert 1.0 <= outcome.seconds < 3.0


def test_cpu_bound_loop_hits_the_cpu_limit_before_the_timeout():
    outcome = run_python("while True:\n    pass\n", limits=Limits(timeout_s=20.0, cpu_s=1))
    assert not outcome.passed and outcome.reason == "cpu time limit", outcome
    assert outcome.seconds < 10.0


@pytest.mark.parametrize("code", ["x = bytearray(10**10)\n",
                                  "x = []\nwhile True:\n    x.append(bytearray(10**6))\n"])
def test_memory_blow_up_hits_the_memory_limit(code):
    outcome = run_python(code, limits=Limits(timeout_s=10.0, memory_mb=256))
    assert not outcome.passed and outcome.reason == "memory limit", outcome


def test_large_file_hits_the_file_size_limit():
    outcome = run_python("open('big', 'wb').write(b'x' * (3 << 20))\n", limits=Limits(file_mb=1))
    assert not outcome.passed and outcome.reason == "file size limit", outcome


def test_long_output_is_cut_without_failing_the_run():
    outcome = run_python("print('x' * 200_000)\nprint('end')\n", limits=Limits(output_bytes=1000))
    assert outcome.passed and outcome.output_cut
    assert outcome.stdout.startswith("x" * 100) and outcome.stdout.endswith("end\n")
    assert len(outcome.stdout) < 1100


def test_huge_output_keeps_the_parents_memory_bounded():
    tracemalloc.start()
    try:
        outcome = run_python("for _ in range(50_000):\n    print('x' * 1000)\n", limits=Limits(timeout_s=20.0))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert outcome.passed and outcome.output_cut, outcome.reason
    assert len(outcome.stdout) < 70_000
    assert peak < 5_000_000  # 50 MB went through; only the kept 64 KiB (and read buffers) stayed


@needs_nproc
def test_process_count_is_limited():
    code = ("import os, time\n"
            "n = 0\n"
            "try:\n"
            "    while True:\n"
            "        if os.fork() == 0:\n"
            "            time.sleep(60)\n"
            "            os._exit(0)\n"
            "        n += 1\n"
            "finally:\n"
            "    print(n)\n")
    outcome = run_python(code, limits=Limits(timeout_s=5.0, processes=8))
    assert not outcome.passed and outcome.reason.startswith("BlockingIOError"), outcome
    assert int(outcome.stdout) < 8  # the program itself is one of the 8
    assert outcome.uid is not None or not isolation().get("per_run_uid")
    if outcome.uid is not None:
        assert sandbox_processes(uid=outcome.uid) == []


@needs_pidns
def test_fork_bomb_is_contained_and_nothing_survives():
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    outcome = run_python(code, limits=Limits(timeout_s=1.5, processes=16))
    assert not outcome.passed and outcome.reason == "timeout after 1.5 s"
    assert outcome.uid is not None or not isolation().get("per_run_uid")
    if outcome.uid is not None:
        assert sandbox_processes(uid=outcome.uid) == []


@needs_pidns
@pytest.mark.parametrize("then", ["print('spawned')\n", "while True:\n    pass\n"])
def test_subprocess_outliving_the_program_is_killed(then):
    marker = f"sparq-orphan-{uuid.uuid4().hex}"
    # A new session, and a double fork: neither the process group nor the parent link leads to it.
    code = ("import os, subprocess, sys, time\n"
            "p = subprocess.Popen([sys.executable, '-c', "
            f"'import os, time\\nif os.fork() == 0:\\n    time.sleep(60)  # {marker}\\n'], start_new_session=True)\n"
            "time.sleep(0.3)\n" + then)
    outcome = run_python(code, limits=Limits(timeout_s=1.5))
    assert outcome.passed == then.startswith("print"), outcome
    assert sandbox_processes(marker) == []


def test_no_temporary_directory_is_left_behind():
    runs = [run_python("open('f', 'w').write('x')\nimport os\nos.mkdir('d')\nos.chmod('d', 0)\n", limits=FAST),
            run_python("while True:\n    pass\n", limits=Limits(timeout_s=0.5)),
            run_tests("def f(:\n", "assert f()\n")]
    for outcome in runs:
        assert outcome.workdir.startswith(os.path.join(tempfile.gettempdir(), sandbox._WORKDIR_PREFIX))
        assert not os.path.exists(outcome.workdir)
