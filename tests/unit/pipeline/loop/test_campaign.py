"""Control flow of a campaign with the scripted engine (the real model is in test_e2e)."""

import os
import signal
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from archives import CVTArchive
from pipeline.config import load_config
from pipeline.loop.campaign import Campaign, rederive_archive
from pipeline.loop.generate import run_generation
from pipeline.store.records import ATTEMPTS_SCHEMA, CANDIDATES_SCHEMA, METRICS_SCHEMA
from pipeline.store.storage import RunDir, RunError
from tests.conftest import REPO, scripted_config, sparq_cmd


def _check_run(run_dir: Path, steps: int) -> None:
    run = RunDir(run_dir)
    ck = run.read_checkpoint()
    assert ck is not None and ck.step == steps
    cands = run.read_candidates()
    assert sorted(set(cands["step"].to_pylist())) == list(range(steps + 1))
    ids = cands["id"].to_pylist()
    assert len(ids) == len(set(ids)), "duplicate candidate ids"
    for p in run.shard_paths("candidates"):
        assert pq.read_schema(p).remove_metadata() == CANDIDATES_SCHEMA.remove_metadata()
    for p in run.shard_paths("attempts"):
        assert pq.read_schema(p).remove_metadata() == ATTEMPTS_SCHEMA.remove_metadata()
    metrics = run.read_metrics()
    assert metrics.schema.remove_metadata() == METRICS_SCHEMA.remove_metadata()
    assert metrics["step"].to_pylist() == list(range(steps + 1))
    archive, state = CVTArchive.load(run.archive_dir)
    assert state["step"] == steps
    assert archive == rederive_archive(archive.centroids, cands)
    assert not [p for p in run.path.rglob("*") if ".tmp-" in p.name]


def test_scripted_campaign_writes_every_candidate(tmp_path: Path):
    cfg = load_config(scripted_config(tmp_path, steps=3, batch=4, k=4))
    summary = run_generation(cfg, tmp_path / "run", show_bar=False, progress=lambda m: None)
    assert summary["steps"] == 3 and summary["candidates"] == 12
    _check_run(tmp_path / "run", 3)
    cands = RunDir(tmp_path / "run").read_candidates()
    gen = cands.filter(cands["step"].to_numpy() > 0).to_pylist()
    statuses = {r["status"] for r in gen}
    assert {"ok", "unparseable", "duplicate"} <= statuses
    unparseable = [r for r in gen if r["status"] == "unparseable"]
    assert all(r["raw_output"] and r["reason"] for r in unparseable)
    ok = [r for r in gen if r["status"] == "ok"]
    for r in ok:
        assert r["k"] == 4 and 0 <= r["n_correct"] <= 4 and r["solve_rate"] == r["n_correct"] / 4
        assert r["depth"] >= 1 and r["parent_id"] and r["prompt_version"] == "mutate-fewshot-v3"
        assert r["majority_answer"] is not None and r["cell"] is not None
    attempts = RunDir(tmp_path / "run").read_attempts()
    assert attempts.num_rows == sum(r["k"] for r in gen)


def test_adaptive_mode_records_attempts_spent(tmp_path: Path):
    cfg = load_config(scripted_config(tmp_path, steps=2, batch=4, k=16))
    cfg = cfg.replace("solver", adaptive=True, round_size=4)
    run_generation(cfg, tmp_path / "run", show_bar=False, progress=lambda m: None)
    cands = RunDir(tmp_path / "run").read_candidates()
    ks = [r["k"] for r in cands.to_pylist() if r["status"] == "ok"]
    assert ks and all(4 <= k <= 16 and k % 4 == 0 for k in ks)
    assert min(ks) < 16  # some decisions settle early


def test_existing_run_is_not_overwritten(tmp_path: Path):
    cfg = load_config(scripted_config(tmp_path, steps=1))
    run_generation(cfg, tmp_path / "run", show_bar=False, progress=lambda m: None)
    with pytest.raises(RunError, match="--resume"):
        Campaign.open(tmp_path / "run", config=cfg)


def test_resume_after_lost_step_rederives(tmp_path: Path):
    cfg = load_config(scripted_config(tmp_path, steps=2))
    run_generation(cfg, tmp_path / "run", show_bar=False, progress=lambda m: None)
    run = RunDir(tmp_path / "run")
    # Simulate a crash after the shards of step 3 and the archive were written but
    # before the checkpoint: the step must be discarded and the archive rebuilt.
    camp = Campaign.open(run.path, resume=True, steps=3, progress=lambda m: None)
    ck_text = run.checkpoint_path.read_text()
    camp.run_step()
    camp.close()
    run.checkpoint_path.write_text(ck_text)
    summary = run_generation(cfg, run.path, resume=True, steps=3, show_bar=False,
                             progress=lambda m: None)
    assert summary["steps"] == 3
    _check_run(run.path, 3)


def test_sigkill_mid_step_then_resume(tmp_path: Path):
    config = scripted_config(tmp_path, steps=2)
    run_dir = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    subprocess.run(sparq_cmd("generate", "--config", str(config), "--run-dir", str(run_dir),
                             "--no-prefect", "--quiet"), cwd=REPO, env=env, check=True,
                   capture_output=True)
    # Make every engine call slow, then kill the process while step 3 is in flight.
    script = Path(load_config(config).engine.scripted.script)
    script.write_text(script.read_text().replace('"delay_s": 0.0', '"delay_s": 2.0'))
    proc = subprocess.Popen(sparq_cmd("generate", "--run-dir", str(run_dir), "--resume", "--steps",
                                      "4", "--no-prefect", "--quiet"), cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if "loading engine" in line:  # step 3 has started: it cannot commit before its 2 s engine calls
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert RunDir(run_dir).read_checkpoint().step == 2
    script.write_text(script.read_text().replace('"delay_s": 2.0', '"delay_s": 0.0'))
    done = subprocess.run(sparq_cmd("generate", "--run-dir", str(run_dir), "--resume", "--steps",
                                    "4", "--no-prefect", "--quiet"), cwd=REPO, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    _check_run(run_dir, 4)
