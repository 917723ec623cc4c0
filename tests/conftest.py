"""Shared fixtures: small configs and scripted engine files for control-flow tests."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# Prefect waits 20 s for a temporary server; with both cores busy (two test processes,
# Chromium, vLLM) a Dask run's server once took longer ("Timed out while attempting to
# connect to ephemeral Prefect API server"), so the tests and their subprocesses wait 90.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
# Every vLLM engine the tests start (in-process, `sparq` subprocesses, `vllm serve`) gets a
# 1 GiB KV cache instead of the default 2 (pipeline/engines/vllm_engine.py:
# CPU_KV_CACHE_GIB); 1 GiB holds ~58,000 tokens of the embedded model, far more than a
# test's batches. An engine is ~5 GB here (core, worker: weights, KV cache, sampling
# buffers). In CI the two test workers held three at once (a rounds run's campaign and
# tuned-solver engines beside `vllm serve`): 22.4 of the machine's 23.6 GiB in use, and
# one more engine had the OOM killer take an engine's worker mid-test.
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

# Property-based tests draw the same examples on every run (derandomize) and keep no
# example database: a run of the suite is reproducible, and CI cannot go red by chance on a
# correct change (a fresh draw once found a config key quoting case that a fixed test now
# covers). HYPOTHESIS_PROFILE=explore draws new examples for a local search.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SCRIPT_MUTATE = [
    " A farmer has 12 cows and buys 5 more. How many cows does he have?\n"
    "New solution: 12 + 5 = 17. The answer is 17.",
    " What is 8 times 7?\nNew solution: 8 times 7 is 56. The answer is 56.",
    " this output has no solution section at all",
    " A box holds 6 rows of 3 pens. How many pens are in it?\n"
    "New solution: 6 times 3 = 18. The answer is 18.",
]
SCRIPT_SOLVE = [
    " 12 + 5 = 17. The answer is 17.",
    " The answer is 56.",
    " I think the answer is 18.",
    " The answer is 3.",
]


def write_script(path: Path, mutate=SCRIPT_MUTATE, solve=SCRIPT_SOLVE, delay_s: float = 0.0) -> Path:
    path.write_text(json.dumps({"mutate": list(mutate), "solve": list(solve), "delay_s": delay_s}))
    return path


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def scripted_config(tmp_path: Path, *, steps: int = 3, batch: int = 4, k: int = 4,
                    delay_s: float = 0.0, extra: str = "", run_extra: str = "") -> Path:
    """A scripted-engine config; `run_extra`: more lines of its [run] table, `extra`: more tables."""
    script = write_script(tmp_path / "script.json", delay_s=delay_s)
    return write_config(tmp_path / "config.toml", f"""
[run]
steps = {steps}
batch_size = {batch}
{run_extra}
[engine]
kind = "scripted"
[engine.scripted]
script = "{script}"
[solver]
k = {k}
[archive]
cells = 64
{extra}
""")


def sparq_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "flows.cli", *args]


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def figures(tmp_path_factory: pytest.TempPathFactory):
    """Where guarantee tests record their figures (see tests/helpers/figures.py)."""
    from tests.helpers.figures import ENV, Figures

    path = os.environ.get(ENV)
    return Figures(Path(path) if path else tmp_path_factory.getbasetemp() / "guarantees.json")


def vllm_problem() -> str | None:
    """Why vLLM cannot run in this venv (pipeline.engines.vllm_install), or None."""
    from pipeline.engines.vllm_install import problems

    found = problems()
    return "; ".join(found) if found else None


# The files that take minutes, longest first. pytest-xdist (--dist loadfile) hands files to
# its 2 workers in collection order, so a long file collected last (test_vllm_cpu.py, by
# name) ran alone at the end while the other worker idled; started first, they overlap
# with the many short files instead.
LONG_FILES = ("test_vllm_cpu.py", "test_crash.py", "test_e2e.py", "test_schedule.py", "test_dask.py",
              "test_finetune.py")


def _long_first(item: pytest.Item) -> int:
    name = item.path.name
    return LONG_FILES.index(name) if name in LONG_FILES else len(LONG_FILES)


# The suite writes up to about 3 GB under the temp directory at once (merged models of the
# fine-tuning and rounds tests, vLLM's compile caches; a CI run of 2026-12-06 took 2.9 GB
# beyond its venv, sampled every 30 s). With less free, a test fails deep in a model save
# with "No space left on device"; a warning says so first (`make test` runs with -q, which
# hides the report header).
SCRATCH_NEEDED_GB = 4.0


def _scratch() -> tuple[str, float]:
    """A line on the free space where the tests' temporary directories go, and that space in GB."""
    free = shutil.disk_usage(tempfile.gettempdir()).free / 1e9
    return f"scratch: {free:.1f} GB free under {tempfile.gettempdir()} (the suite writes up to about 3 GB)", free


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [_scratch()[0]]


def pytest_configure(config: pytest.Config) -> None:
    line, free = _scratch()
    if free < SCRATCH_NEEDED_GB and not hasattr(config, "workerinput"):  # once, in the controller, not per xdist worker
        config.issue_config_time_warning(pytest.PytestWarning(
            f"{line}: under {SCRATCH_NEEDED_GB:.0f} GB, the fine-tuning and rounds tests may fail with "
            f"'No space left on device'"), stacklevel=2)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    asked = (config.getoption("markexpr") or "").split()
    items.sort(key=_long_first)  # stable: each file's own order is kept
    # Long variants (@pytest.mark.ci) run only in CI (CI set) or when asked for with -m ci.
    if not (os.environ.get("CI") or "ci" in asked):
        skip = pytest.mark.skip(reason="long variant: runs with CI=1 or -m ci")
        for item in items:
            if "ci" in item.keywords:
                item.add_marker(skip)
    # vLLM tests (@pytest.mark.vllm) run wherever vLLM is installed, as `make test` installs
    # it; in CI (CI set) or with -m vllm a missing vLLM is an error, not a skip.
    if not any("vllm" in item.keywords for item in items):
        return
    problem = vllm_problem()
    if problem and (os.environ.get("CI") or "vllm" in asked):
        raise pytest.UsageError(f"the vLLM tests must run here, but: {problem}")
    if problem:
        skip = pytest.mark.skip(reason=f"vLLM cannot run in this venv: {problem}")
        for item in items:
            if "vllm" in item.keywords:
                item.add_marker(skip)


# vLLM engines of both test workers share the machine's memory (an engine is ~4.5 GB here).
# A test marked `vllm` holds this lock shared while it runs; one marked `vllm_exclusive`
# (more than one engine at once: a rounds run's campaign and tuned-solver engines) holds it
# exclusively, so no vLLM test of the other worker runs beside it. A module's shared
# engine holds it shared while it lives (tests/real/test_vllm_cpu.py). In CI, without it,
# a rounds run beside `vllm serve` and the module's engine brought the OOM killer.
VLLM_LOCK = Path(tempfile.gettempdir()) / f"sparq-tests-vllm-{os.getuid()}.lock"
VLLM_LOCK_WAIT_S = 1800.0


@contextmanager
def vllm_memory(exclusive: bool = False):
    """Hold the vLLM memory lock (shared, or exclusive) for the body."""
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    with VLLM_LOCK.open("a") as fh:
        deadline = time.monotonic() + VLLM_LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(fh, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"waited {VLLM_LOCK_WAIT_S:.0f} s for {VLLM_LOCK} "
                                       f"({'exclusive' if exclusive else 'shared'}); another test "
                                       "process holds it") from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture(autouse=True)
def vllm_memory_lock(request: pytest.FixtureRequest):
    exclusive = request.node.get_closest_marker("vllm_exclusive") is not None
    if not exclusive and request.node.get_closest_marker("vllm") is None:
        yield
        return
    with vllm_memory(exclusive):
        yield


_OWN = ("pipeline", "flows", "filters", "finetune", "archives")


def _leaked_mocks() -> list[str]:
    from unittest import mock

    found = []
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] not in _OWN:
            continue
        for attr, value in list(vars(module).items()):
            if isinstance(value, mock.Base):
                found.append(f"{name}.{attr}")
    return found


@pytest.fixture(autouse=True)
def no_leaked_mocks():
    """A test leaves no mock bound in the project's modules. A module first imported while a
    name it imports is patched keeps the mock for good, and a later test in the same worker
    then fails far from the cause (a model 'loaded' by a mock in a Dask test)."""
    before = set(_leaked_mocks())
    yield
    leaked = sorted(set(_leaked_mocks()) - before)
    assert not leaked, f"this test left mocks bound in: {', '.join(leaked)}"
