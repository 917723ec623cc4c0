"""Engine and storage faults: retried where they can pass, then one clean error; the run stays intact.

Engine faults run against the local fake OpenAI-compatible server (tests/helpers/fake_openai.py)
on 127.0.0.1 in every fault mode. Storage faults use a real tmpfs mounted by the test
(read-only remount, a full disk) when the test runs as root and `mount` works; otherwise
they are simulated at the write call (and the recorded figures say which).
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.config import EngineConfig, OpenAISettings, load_config
from pipeline.engines import EngineError, Sampling, make_engine
from pipeline.loop.generate import open_campaign, run_generation
from pipeline.store.storage import RunDir, RunError, RunLockedError
from tests.conftest import REPO, scripted_config, sparq_cmd
from tests.guarantees.test_crash import Ledger, Proc, check_run
from tests.helpers.fake_openai import FakeOpenAI
from tests.helpers.figures import files_changed, row_figures
from tests.unit.flows.test_cli import one_line_error
from tests.unit.pipeline.engines.test_engines import _closed_port

SEEDS = 40
ENV = dict(os.environ, PYTHONPATH=str(REPO))
RETRIES, BACKOFF_S, TIMEOUT_S = 2, 0.2, 0.5
# Every way an endpoint can fail; "refused" is a closed port.
MODES = ["http500", "malformed", "empty", "slow", "hang", "trickle", "close", "refused"]
TIMEOUT_MODES = {"slow", "hang", "trickle"}


def _quiet(msg: str) -> None:
    pass


def _tree(path: Path) -> dict[str, str]:
    """sha256 of every file under `path` (the lock file holds a pid and is left out)."""
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file() and p.name != ".lock"}


# -- engine faults -------------------------------------------------------------------------


def _engine(url: str, **kw):
    settings = dict(base_urls=(url,), retries=RETRIES, backoff_s=BACKOFF_S, timeout_s=TIMEOUT_S) | kw
    return make_engine(EngineConfig(kind="openai", model="m", openai=OpenAISettings(**settings)))


@contextmanager
def _endpoint(mode: str) -> Iterator[tuple[str, FakeOpenAI | None]]:
    if mode == "refused":
        yield f"http://127.0.0.1:{_closed_port()}/v1", None
    else:
        with FakeOpenAI(fault=mode, delay_s=30) as server:
            yield server.url, server


@pytest.mark.parametrize("mode", MODES)
def test_engine_fault_retries_with_backoff_then_names_the_endpoint(mode: str, figures):
    with _endpoint(mode) as (url, server):
        started = time.perf_counter()
        with pytest.raises(EngineError) as info:
            _engine(url).complete(["Problem: 1 + 1?\nSolution:"], Sampling())
        elapsed = time.perf_counter() - started
        msg = str(info.value)
        assert url in msg and "\n" not in msg, msg
        backoff = BACKOFF_S * (1 + 2)  # two waits: backoff, then 2 x backoff
        assert elapsed >= backoff
        if mode in TIMEOUT_MODES:
            # Each try is cut at timeout_s, however the server stalls (trickle included).
            assert "timeout_s" in msg
            assert elapsed >= (RETRIES + 1) * TIMEOUT_S
            assert elapsed < (RETRIES + 1) * TIMEOUT_S + backoff + 3.0
        else:
            assert elapsed < backoff + 3.0
        if server is not None:
            times = [r["t"] for r in server.requests]
            assert len(times) == RETRIES + 1
            gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
            # Exponential backoff between tries (timeout modes add the timeout itself).
            assert gaps[0] >= BACKOFF_S * 0.9 and gaps[1] >= 2 * BACKOFF_S * 0.9, gaps
    figures.record(f"engine.{mode}", faults_injected=RETRIES + 1, tries=RETRIES + 1,
                   seconds=round(elapsed, 2), message=msg[:200])


@pytest.mark.parametrize("mode", [m for m in MODES if m != "refused"])
def test_engine_recovers_when_the_fault_passes(mode: str):
    with FakeOpenAI(fault=mode, faults=1, delay_s=30) as server:
        out = _engine(server.url).complete(["Problem: 1 + 1?\nSolution:"], Sampling(n=2))
        assert len(out) == 1 and len(out[0]) == 2
        assert len(server.requests) == 2  # one fault, one retry


def test_engine_client_error_is_not_retried():
    with FakeOpenAI(fault="http401") as server:
        with pytest.raises(EngineError, match="401") as info:
            _engine(server.url).complete(["x"], Sampling())
        assert server.url in str(info.value) and len(server.requests) == 1


def test_engine_fails_over_from_a_hanging_endpoint():
    with FakeOpenAI(fault="hang") as bad, FakeOpenAI() as good:
        engine = _engine(bad.url, base_urls=(bad.url, good.url))
        out = engine.complete(["a", "b", "c", "d"], Sampling())
        assert len(out) == 4 and len(good.requests) == 4


@pytest.fixture(scope="module")
def fault_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(delay_s=30) as server:
        yield server


@pytest.fixture(scope="module")
def openai_run(tmp_path_factory: pytest.TempPathFactory, fault_server: FakeOpenAI) -> Path:
    """A run with step 0 committed whose config points at `fault_server` (step 0 needs no engine)."""
    base = tmp_path_factory.mktemp("openai-run")
    cfg = base / "config.toml"
    cfg.write_text(f'[run]\nbatch_size = 4\n[engine]\nkind = "openai"\nmodel = "m"\n'
                   f'[engine.openai]\nbase_urls = ["{fault_server.url}"]\n'
                   f'retries = {RETRIES}\nbackoff_s = {BACKOFF_S}\n'
                   f'timeout_s = {TIMEOUT_S}\n[solver]\nk = 2\n[seeds]\nlimit = {SEEDS}\n'
                   '[archive]\ncells = 64\n')
    run_generation(load_config(cfg), base / "run", steps=0, show_bar=False, progress=_quiet)
    return base / "run"


@pytest.mark.parametrize("mode", MODES)
def test_engine_fault_fails_the_step_cleanly(mode: str, openai_run: Path, fault_server: FakeOpenAI,
                                             tmp_path: Path, figures):
    run_dir = tmp_path / "run"
    shutil.copytree(openai_run, run_dir)
    url = fault_server.url
    if mode == "refused":
        url = f"http://127.0.0.1:{_closed_port()}/v1"
        conf = run_dir / "config.toml"
        conf.write_text(conf.read_text().replace(fault_server.url, url))
    before = _tree(run_dir)
    fault_server.fault = None if mode == "refused" else mode
    try:
        with pytest.raises(EngineError) as info:
            run_generation(load_config(run_dir / "config.toml"), run_dir, resume=True, steps=1,
                           show_bar=False, progress=_quiet)
    finally:
        fault_server.fault = None
    assert url in str(info.value)
    # Nothing of the failed step reached the disk: same files, same bytes.
    after_fault = _tree(run_dir)
    assert after_fault == before
    assert RunDir(run_dir).read_checkpoint().step == 0
    with RunDir(run_dir).locked():  # and the lock was released
        pass
    # The fault passed (for "refused": the endpoint is back up): the same run continues.
    if mode == "refused":
        conf.write_text(conf.read_text().replace(url, fault_server.url))
    summary = run_generation(load_config(run_dir / "config.toml"), run_dir, resume=True, steps=1,
                             show_bar=False, progress=_quiet)
    assert summary["steps"] == 1
    figures.record(f"engine_step.{mode}", faults_injected=1, files_changed=files_changed(before, after_fault),
                   **row_figures(run_dir, seeds=SEEDS, batch=4))


@pytest.mark.parametrize("mode", ["hang", "http500"])
def test_generate_cli_exits_with_one_line_on_engine_fault(mode: str, openai_run: Path,
                                                          fault_server: FakeOpenAI, tmp_path: Path):
    run_dir = tmp_path / "run"
    shutil.copytree(openai_run, run_dir)
    fault_server.fault = mode
    try:
        proc = subprocess.run(sparq_cmd("generate", "--run-dir", str(run_dir), "--resume", "--steps", "1",
                                        "--no-prefect", "--quiet"),
                              cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    finally:
        fault_server.fault = None
    one_line_error(proc, fault_server.url, code=3)
    assert RunDir(run_dir).read_checkpoint().step == 0


# -- storage faults ------------------------------------------------------------------------


def _can_mount() -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    probe = Path(f"/tmp/.sparq-mount-probe-{os.getpid()}")
    probe.mkdir(exist_ok=True)
    try:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)],
                            capture_output=True).returncode == 0
        if ok:
            subprocess.run(["umount", str(probe)], check=True)
        return ok
    finally:
        probe.rmdir()


# SPARQ_TEST_NO_MOUNT=1 forces the simulated path (to test it where mount works).
CAN_MOUNT = not os.environ.get("SPARQ_TEST_NO_MOUNT") and _can_mount()


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _set_readonly(path: Path, ro: bool) -> None:
    # A bind mount of the directory onto itself can be made read-only on its own, even while
    # files elsewhere on the tmpfs are open (the run's lock file).
    if ro:
        subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
        subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], check=True)
    else:
        subprocess.run(["umount", str(path)], check=True)


def _scripted(tmp_path: Path, steps: int):
    return load_config(scripted_config(tmp_path, steps=steps, batch=4, k=4,
                                       extra=f"[seeds]\nlimit = {SEEDS}\n"))


def _one_line_naming(exc: BaseException, path: Path) -> None:
    msg = str(exc)
    assert "\n" not in msg and str(path) in msg, msg


class Simulated:
    """Without mount: every Parquet write and every file opened for writing by the run
    storage fails with an errno (the fault as the write call would report it)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.mp = monkeypatch

    def install(self, code: int) -> None:
        import builtins

        import pipeline.store.storage as storage

        def fail_write(*args, **kwargs):
            raise OSError(code, os.strerror(code))

        real_open = builtins.open

        def fail_open(file, mode="r", *args, **kwargs):
            if any(c in mode for c in "wa+"):
                raise OSError(code, os.strerror(code), str(file))
            return real_open(file, mode, *args, **kwargs)

        self.mp.setattr(pq, "write_table", fail_write)
        self.mp.setattr(storage, "open", fail_open, raising=False)

    def undo(self) -> None:
        self.mp.undo()


@pytest.fixture
def simulate(monkeypatch: pytest.MonkeyPatch) -> Simulated:
    return Simulated(monkeypatch)


def test_read_only_run_directory(tmp_path: Path, figures, simulate):
    base = tmp_path / "mnt"
    cfg = _scripted(tmp_path, steps=2)
    mode = "tmpfs remount ro" if CAN_MOUNT else "simulated EROFS at the write call"
    with (tmpfs(base, "64m") if CAN_MOUNT else _nullpath(base)):
        run_dir = base / "run"
        camp = None
        with RunDir(run_dir).locked():
            camp = open_campaign(cfg, run_dir, resume=False, progress=_quiet)
            try:
                camp.run_step()  # step 1 committed
                before = _tree(run_dir)
                # The run directory turns read-only while the campaign runs.
                if CAN_MOUNT:
                    _set_readonly(run_dir / "candidates", True)
                else:
                    simulate.install(errno.EROFS)
                with pytest.raises(RunError) as info:
                    camp.run_step()
                _one_line_naming(info.value, run_dir)
                assert "step-000002.parquet" in str(info.value)
                assert _tree(run_dir) == before  # step 1 intact, nothing of step 2 written
            finally:
                camp.close()
        if CAN_MOUNT:
            _set_readonly(run_dir / "candidates", False)
            # A whole read-only run directory: the CLI refuses with one line naming it.
            subprocess.run(["mount", "-o", "remount,ro", str(base)], check=True)
            proc = subprocess.run(sparq_cmd("generate", "--run-dir", str(run_dir), "--resume", "--steps", "2",
                                            "--no-prefect", "--quiet"),
                                  cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
            one_line_error(proc, str(run_dir))
            assert "Read-only file system" in proc.stderr
            assert _tree(run_dir) == before
            subprocess.run(["mount", "-o", "remount,rw", str(base)], check=True)
        else:
            simulate.undo()
        run_generation(cfg, run_dir, resume=True, steps=2, show_bar=False, progress=_quiet)
        rows = check_run(run_dir, 2, seeds=SEEDS, batch=4)
        counted = row_figures(run_dir, seeds=SEEDS, batch=4)  # before the tmpfs goes
    figures.record("storage.read_only", mode=mode, faults_injected=2 if CAN_MOUNT else 1,
                   candidate_rows=rows, **counted)


@contextmanager
def _nullpath(path: Path) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    yield path


def _fill(directory: Path, leave: int) -> Path:
    """Fill the file system of `directory` until `leave` bytes (rounded to pages) are free."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as fh:  # unbuffered: nothing left to flush at close
        for chunk in (1 << 20, 1 << 16, 1 << 12):
            try:
                while True:
                    fh.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    size = filler.stat().st_size
    os.truncate(filler, max(0, size - leave))
    return filler


# 0 bytes free: the first shard write fails. 48 KiB free: the step's shards and metrics fit
# but the archive snapshot (centroids + elites, ~150 KiB) does not, so uncommitted shards are
# in place when the error comes.
@pytest.mark.parametrize("free", [0, 48 << 10])
def test_disk_full(tmp_path: Path, free: int, figures, simulate):
    base = tmp_path / "mnt"
    cfg = _scripted(tmp_path, steps=2)
    mode = "tmpfs full" if CAN_MOUNT else "simulated ENOSPC at the write call"
    if not CAN_MOUNT and free:
        pytest.skip("partial fill needs a real tmpfs")
    with (tmpfs(base, "16m") if CAN_MOUNT else _nullpath(base)):
        run_dir = base / "run"
        with RunDir(run_dir).locked():
            camp = open_campaign(cfg, run_dir, resume=False, progress=_quiet)
            try:
                camp.run_step()  # step 1 committed
                ledger = Ledger(run_dir)
                ledger.after_kill()  # records the committed shards' hashes
                filler = _fill(base, free) if CAN_MOUNT else None
                if not CAN_MOUNT:
                    simulate.install(errno.ENOSPC)
                with pytest.raises(RunError) as info:
                    camp.run_step()
                _one_line_naming(info.value, run_dir)
                assert "No space left on device" in str(info.value) or "errno 28" in str(info.value)
                # With room for the shards, they are in place but uncommitted: the archive failed.
                partial = (run_dir / "candidates" / "step-000002.parquet").exists()
                assert partial == bool(free), str(info.value)
            finally:
                camp.close()
        ledger.after_kill()  # committed step 1 and its shards unchanged
        assert ledger.committed == 1
        assert not [p for p in run_dir.rglob("*") if ".tmp-" in p.name], "a failed write left its temp file"
        if filler is not None:
            filler.unlink()
        else:
            simulate.undo()
        run_generation(cfg, run_dir, resume=True, steps=2, show_bar=False, progress=_quiet)
        rows = check_run(run_dir, 2, ledger, seeds=SEEDS, batch=4)
        counted = row_figures(run_dir, seeds=SEEDS, batch=4)  # before the tmpfs goes
    figures.record(f"storage.disk_full_{free}", mode=mode, faults_injected=1, candidate_rows=rows,
                   free_bytes=free, **counted)


def test_second_writer_is_refused_with_the_holders_pid(tmp_path: Path, figures):
    cfg = scripted_config(tmp_path, steps=1000, batch=4, k=4, delay_s=1.0, extra=f"[seeds]\nlimit = {SEEDS}\n")
    run_dir = tmp_path / "run"
    first = Proc(cfg, run_dir)
    try:
        assert first.wait_for("loading engine"), first.stderr()
        second = subprocess.run(sparq_cmd("generate", "--config", str(cfg), "--run-dir", str(run_dir),
                                          "--resume", "--no-prefect", "--quiet"),
                                cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
        one_line_error(second, f"pid {first.proc.pid}")
        refused = [second.returncode != 0 and f"pid {first.proc.pid}" in second.stderr]
        assert str(run_dir) in second.stderr
        assert first.proc.poll() is None, "the second writer disturbed the first"
    finally:
        first.kill_group()
    # In-process too: run_generation takes the lock before touching the directory.
    with RunDir(run_dir).locked():
        with pytest.raises(RunLockedError, match=f"pid {os.getpid()}") as info:
            run_generation(_scripted(tmp_path, 1), run_dir, resume=True, show_bar=False, progress=_quiet)
        refused.append(f"pid {os.getpid()}" in str(info.value))
    figures.record("storage.second_writer", faults_injected=len(refused), refused=sum(refused))


@pytest.mark.slow  # a throwaway Prefect server: 30-90 s on 2 cores
def test_prefect_flow_takes_the_lock(tmp_path: Path):
    # The default `sparq generate` path (the Prefect flow) refuses a locked run directory
    # before it reads or writes anything in it.
    from prefect.testing.utilities import prefect_test_harness

    from flows.generate import generate

    cfg = scripted_config(tmp_path, steps=1, extra=f"[seeds]\nlimit = {SEEDS}\n")
    run_dir = tmp_path / "run"
    with prefect_test_harness(server_startup_timeout=120):
        with RunDir(run_dir).locked():
            with pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
                generate(run_dir=str(run_dir), config_path=str(cfg))
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]
