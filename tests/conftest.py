"""Shared fixtures: small configs and scripted engine files for control-flow tests."""

from __future__ import annotations

import json
import os
import sys
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
