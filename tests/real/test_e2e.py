"""End to end with the real embedded model (Gemma 3 270M on CPU) on the default engine,
in-process vLLM (its CPU build): slow, minutes.

One 2-step run through the Prefect flow (temporary local server), checked file by file;
then the same run is resumed towards step 4, SIGKILLed during step 3, and resumed again.
"""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from archives import CVTArchive
from pipeline.loop.campaign import rederive_archive
from pipeline.store.records import ATTEMPTS_SCHEMA, CANDIDATES_SCHEMA, METRICS_SCHEMA
from pipeline.store.storage import RunDir
from tests.conftest import REPO, sparq_cmd

pytestmark = pytest.mark.slow

# A step (in streaming mode, the default on vLLM, a commit) holds batch_size candidates; no
# time-based commit, so that holds however slowly the shared machine runs.
SMALL = """
[run]
batch_size = 4
commit_seconds = 3600
[generator]
max_tokens = 128
[solver]
k = 4
max_tokens = 48
"""


@pytest.fixture(scope="module")
def two_step_run(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("e2e")
    config = base / "small.toml"
    config.write_text(SMALL)
    run_dir = base / "run"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(sparq_cmd("generate", "--config", str(config), "--run-dir", str(run_dir),
                                    "--steps", "2"), cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "run directory:" in proc.stdout and "qd_score" in proc.stdout
    return run_dir


def _invariants(run_dir: Path, steps: int) -> None:
    run = RunDir(run_dir)
    assert run.read_checkpoint().step == steps
    cands = run.read_candidates()
    assert sorted(set(cands["step"].to_pylist())) == list(range(steps + 1))
    ids = cands["id"].to_pylist()
    assert len(ids) == len(set(ids))
    assert run.read_metrics()["step"].to_pylist() == list(range(steps + 1))
    archive, state = CVTArchive.load(run.archive_dir)
    assert state["step"] == steps
    assert archive == rederive_archive(archive.centroids, cands)
    assert not [p for p in run.path.rglob("*") if ".tmp-" in p.name]


def test_two_real_steps_through_prefect(two_step_run: Path):
    run = RunDir(two_step_run)
    assert run.config_path.is_file()
    assert "[engine]" in run.config_path.read_text()
    for kind, schema in (("candidates", CANDIDATES_SCHEMA), ("attempts", ATTEMPTS_SCHEMA)):
        paths = run.shard_paths(kind)
        assert [p.name for p in paths] == [f"step-00000{i}.parquet" for i in range(3)]
        for p in paths:
            s = pq.read_schema(p)
            assert s.remove_metadata() == schema.remove_metadata()
            assert s.metadata[b"sparq.format_version"] == b"4"
    assert pq.read_schema(run.metrics_path).remove_metadata() == METRICS_SCHEMA.remove_metadata()
    for name in ("elites.parquet", "centroids.npy", "state.json"):
        assert (run.archive_dir / name).is_file()
    cands = run.read_candidates().to_pylist()
    gen = [r for r in cands if r["step"] > 0]
    assert len(gen) == 8
    for r in gen:
        assert r["generator"].startswith("vllm:gemma-3-270m")  # the default engine
        assert r["prompt_version"] == "mutate-fewshot-v3" and r["raw_output"] is not None
        assert r["status"] in ("ok", "invalid", "unparseable", "duplicate")
        if r["status"] == "ok":
            assert r["k"] == 4 and r["embedding"] is not None and r["cell"] is not None
    attempts = run.read_attempts()
    assert attempts.num_rows == sum(r["k"] for r in gen)
    _invariants(two_step_run, 2)


@pytest.mark.ci
# Long (about 70 s): a CI variant, for make test's 15-minute budget on 2 cores; kills mid-step are tested in every
# make test by tests/guarantees/test_crash.py and test_lifeline.py.
def test_sigkill_during_step_3_then_resume(two_step_run: Path, tmp_path: Path):
    run_dir = tmp_path / "run"
    shutil.copytree(two_step_run, run_dir)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = sparq_cmd("generate", "--run-dir", str(run_dir), "--resume", "--steps", "4",
                    "--no-prefect", "--quiet")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if "loading engine" in line:  # step 3 has begun
            break
    time.sleep(8.0)  # model loaded, mutations in flight
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert RunDir(run_dir).read_checkpoint().step == 2
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    _invariants(run_dir, 4)
    steps = RunDir(run_dir).read_candidates()["step"].to_pylist()
    assert [steps.count(s) for s in (1, 2, 3, 4)] == [4, 4, 4, 4]  # each step exactly once
