"""Each selection variant and each archive kind, 2 real steps with the embedded model (slow).

One process, one model: the engine is loaded once and handed to every campaign
(`run_generation(..., engine=...)`; a campaign does not close an engine it was given).
Kept small: 36 seeds, batch 2, k 2, short outputs, 32 cells. The operators ride along
(crossover + niche on the skill-set run, harder/easier with a Thompson bandit on the
novelty run) so every prompt file meets the real model at least once.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from archives import load_archive
from pipeline.config import Config, load_config
from pipeline.engines import make_engine
from pipeline.loop.campaign import rederive_archive
from pipeline.loop.generate import run_generation
from pipeline.loop.selection import SELECTIONS
from pipeline.store.storage import RunDir
from tests.unit.pipeline.loop.test_variants import small_seeds

# Minutes of real-model work: part of CI (CI=1), skipped by a local `make test` unless -m ci.
pytestmark = [pytest.mark.slow, pytest.mark.ci]

# SPARQ's four variants on the CVT archive (the default `archive` selection has its own real
# runs in tests/real/test_e2e.py), then the two other archive kinds.
RUNS: dict[str, dict[str, dict]] = {
    **{f"selection-{s}": {"run": {"selection": s, "working_set": 4, "niche_size": 1}} for s in SELECTIONS[1:]},
    "archive-skillset": {"archive": {"kind": "skillset"},
                         "operators": {"mutate": 1.0, "niche": 1.0, "crossover": 1.0}},
    "archive-novelty": {"archive": {"kind": "novelty", "radius": 0.3},
                        "operators": {"mutate": 1.0, "harder": 1.0, "easier": 1.0, "bandit": "thompson"},
                        "validity": {"exclude_parents": True}},
}


def small_config(tmp_path: Path, sections: dict[str, dict]) -> Config:
    cfg = load_config()
    cfg = cfg.replace("seeds", source=str(small_seeds(tmp_path / "seeds.jsonl")))
    cfg = cfg.replace("run", steps=2, batch_size=2)
    cfg = cfg.replace("generator", max_tokens=72)
    cfg = cfg.replace("solver", k=2, max_tokens=32)
    cfg = cfg.replace("archive", cells=32, label_max_tokens=8)
    for section, changes in sections.items():
        cfg = cfg.replace(section, **changes)
    return cfg


def test_every_variant_and_archive_kind_runs_two_real_steps(tmp_path: Path, capsys):
    cfg = small_config(tmp_path, {})
    t0 = time.perf_counter()
    engine = make_engine(cfg.engine, seed=cfg.run.seed)
    timings = {"load model": time.perf_counter() - t0}
    try:
        for name, sections in RUNS.items():
            run_dir = tmp_path / name
            run_cfg = small_config(tmp_path, sections)
            t1 = time.perf_counter()
            summary = run_generation(run_cfg, run_dir, engine=engine, show_bar=False, progress=lambda m: None)
            timings[name] = time.perf_counter() - t1
            with capsys.disabled():
                print(f"\n  {name}: {timings[name]:.1f}s ({summary['accepted']} archived)", flush=True)
            assert summary["steps"] == 2 and summary["candidates"] == 4
            run = RunDir(run_dir)
            cands = run.read_candidates()
            archive, state = load_archive(run.archive_dir)
            assert archive.kind == run_cfg.archive.kind and state["step"] == 2
            assert archive == rederive_archive(archive, cands)
            gen = [r for r in cands.to_pylist() if r["step"] > 0]
            assert all(r["generator"].startswith("vllm:gemma-3-270m") for r in gen)
            ops = run.read_operators().to_pylist()
            assert sum(o["attempts"] for o in ops) == 4
            if name.startswith("selection-static"):
                seeds = {r["id"] for r in cands.to_pylist() if r["step"] == 0}
                assert {r["parent_id"] for r in gen} <= seeds
            if run_cfg.archive.kind == "skillset":
                assert all(r["skill"] is not None for r in gen if r["status"] == "ok")
    finally:
        engine.close()
    with capsys.disabled():
        print("\n" + "\n".join(f"  {k}: {v:.1f}s" for k, v in timings.items()), flush=True)
