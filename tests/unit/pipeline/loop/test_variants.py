"""Selection variants, archive kinds, operators and validity flags with the scripted engine.

Every run here is checked for the archive re-derivation property with its own kind; the
real-model counterparts are in tests/real/test_variants_real.py (slow).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from archives import load_archive
from pipeline.config import Config, ConfigError, load_config
from pipeline.loop.campaign import Campaign, rederive_archive
from pipeline.loop.generate import run_generation
from pipeline.loop.selection import SELECTIONS
from pipeline.store.records import OPERATORS_SCHEMA
from pipeline.store.seeds import BUNDLED_SEEDS
from pipeline.store.storage import RunDir

QUIET = {"show_bar": False, "progress": lambda m: None}

# Distinct problems so that few become duplicates; every third fails to parse. Answers
# cycle through 17, 56, 3, 42 and the solver's five answers cycle past k = 4 attempts, so
# solve rates vary (0, 0.25, 0.5) and some candidates enter the archive.
ANSWERS = (17, 56, 3, 42)
MUTATE = [
    f" Bag {i} holds some marbles. How many marbles are in bag {i}?\n"
    f"New solution: Counting them gives {ANSWERS[i % 4]}. The answer is {ANSWERS[i % 4]}." if i % 3 else
    " no solution here"
    for i in range(1, 60)
]
SOLVE = [" The answer is 17.", " The answer is 17.", " The answer is 56.", " The answer is 3.", " The answer is 99."]
LABELS = [" arithmetic", " money, percentages", " nonsense-skill", " ratios, fractions, counting, money"]


def small_seeds(path: Path, per_skill: int = 3) -> Path:
    rows = [json.loads(line) for line in BUNDLED_SEEDS.read_text().splitlines()]
    picked, seen = [], {}
    for r in rows:
        if seen.get(r["skill"], 0) < per_skill:
            seen[r["skill"]] = seen.get(r["skill"], 0) + 1
            picked.append(r)
    path.write_text("".join(json.dumps(r) + "\n" for r in picked))
    return path


def make_config(tmp_path: Path, *, mutate=MUTATE, solve=SOLVE, label=LABELS, steps: int = 2,
                batch: int = 4, k: int = 4, **sections: dict) -> Config:
    tmp_path.mkdir(parents=True, exist_ok=True)
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"mutate": list(mutate), "solve": list(solve), "label": list(label)}))
    cfg = load_config()
    cfg = cfg.replace("engine", kind="scripted", scripted={"script": str(script)})
    cfg = cfg.replace("seeds", source=str(small_seeds(tmp_path / "seeds.jsonl")))
    cfg = cfg.replace("run", steps=steps, batch_size=batch)
    cfg = cfg.replace("solver", k=k)
    cfg = cfg.replace("archive", cells=32)
    for section, changes in sections.items():
        cfg = cfg.replace(section, **changes)
    return cfg


def check_run(run_dir: Path, steps: int, kind: str) -> None:
    run = RunDir(run_dir)
    assert run.read_checkpoint().step == steps
    cands = run.read_candidates()
    archive, state = load_archive(run.archive_dir)
    assert archive.kind == kind and state["step"] == steps
    assert archive == rederive_archive(archive, cands)
    ops = run.read_operators()
    assert ops.schema.remove_metadata() == OPERATORS_SCHEMA.remove_metadata()
    gen = cands.filter(np.asarray(cands["step"]) > 0)
    assert sum(ops["attempts"].to_pylist()) == gen.num_rows
    assert sorted(set(ops["step"].to_pylist())) == list(range(1, steps + 1))


# ---------------------------------------------------------------- selection variants


@pytest.mark.parametrize("selection", SELECTIONS)
def test_each_selection_variant_runs_two_steps(tmp_path: Path, selection: str):
    cfg = make_config(tmp_path, run={"selection": selection, "working_set": 3, "niche_size": 1})
    summary = run_generation(cfg, tmp_path / "run", **QUIET)
    assert summary["steps"] == 2
    check_run(tmp_path / "run", 2, "cvt")
    rows = RunDir(tmp_path / "run").read_candidates().to_pylist()
    seeds = {r["id"] for r in rows if r["step"] == 0}
    parents = [r["parent_id"] for r in rows if r["step"] > 0]
    if selection.startswith("static"):
        assert set(parents) <= seeds
    if selection == "dynamic_uniform":
        # Step 2 draws from the top 3 eligible rows after step 1, by quality then id.
        elig = [r for r in rows if r["step"] <= 1 and (r["status"] == "seed" or
                                                      (r["status"] == "ok" and r["quality"] > 0))]
        top = {r["id"] for r in sorted(elig, key=lambda r: (-r["quality"], r["id"]))[:3]}
        assert {r["parent_id"] for r in rows if r["step"] == 2} <= top


def test_resume_draws_the_same_parents_operators_and_targets(tmp_path: Path):
    sections = {"run": {"selection": "dynamic_diverse", "niche_size": 2},
                "operators": {"mutate": 1.0, "harder": 1.0, "niche": 1.0, "crossover": 1.0, "bandit": "thompson"}}
    cfg = make_config(tmp_path, steps=3, **sections)
    # Same directory name, so the same run id and row ids (selection breaks ties by id).
    straight, resumed = tmp_path / "a" / "run", tmp_path / "b" / "run"
    run_generation(cfg, straight, **QUIET)
    run_generation(cfg.replace("run", steps=2), resumed, **QUIET)
    run_generation(cfg, resumed, resume=True, steps=3, **QUIET)

    def step3(run_dir: Path) -> list[dict]:
        cands = RunDir(run_dir).read_candidates()
        cols = ["slot", "parent_id", "operator", "second_parent_id", "target"]
        return cands.filter(np.asarray(cands["step"]) == 3).select(cols).to_pylist()

    assert step3(straight) == step3(resumed)
    check_run(resumed, 3, "cvt")


# ---------------------------------------------------------------- archive kinds


@pytest.mark.parametrize("kind", ["cvt", "novelty", "skillset"])
def test_each_archive_kind_runs_two_steps_and_rederives(tmp_path: Path, kind: str):
    cfg = make_config(tmp_path, archive={"kind": kind, "cells": 32, "radius": 0.3})
    run_generation(cfg, tmp_path / "run", **QUIET)
    check_run(tmp_path / "run", 2, kind)
    rows = RunDir(tmp_path / "run").read_candidates().to_pylist()
    ok = [r for r in rows if r["status"] == "ok"]
    assert ok
    if kind == "skillset":
        archive, _ = load_archive(RunDir(tmp_path / "run").archive_dir)
        assert len(archive.vocabulary) == 12  # the bundled seeds' skills
        vocab = set(archive.vocabulary)
        for r in ok:  # stored labels: sorted, in-vocabulary, at most 3, "" when none known
            labels = r["skill"].split(",") if r["skill"] else []
            assert labels == sorted(labels) and set(labels) <= vocab and len(labels) <= 3
            assert (r["cell"] is None) == (not labels)
        assert {r["skill"] for r in ok} & {"", "arithmetic", "money,percentages", "counting,fractions,ratios"}
    else:  # a novelty row far from every niche has none unless it founded one
        assert all(r["cell"] is not None for r in ok if r["quality"] > 0 or kind == "cvt")
    assert any(r["archive_outcome"] in ("new", "improve") for r in ok)


def test_novelty_resume_rebuilds_a_stale_snapshot(tmp_path: Path):
    cfg = make_config(tmp_path, archive={"kind": "novelty", "cells": 32, "radius": 0.3})
    run_generation(cfg, tmp_path / "run", **QUIET)
    run = RunDir(tmp_path / "run")
    # A snapshot from step 1 with a checkpoint at step 2: resume must re-derive it.
    camp = Campaign.open(run.path, resume=True, progress=lambda m: None)
    ck = run.checkpoint_path.read_text()
    stale = camp.archive.new_empty()
    cands = run.read_candidates(upto=1)
    stale = rederive_archive(stale, cands)
    camp.close()
    stale.save(run.archive_dir, extra={"step": 1, "run_id": camp.run_id})
    run.checkpoint_path.write_text(ck)
    summary = run_generation(cfg, run.path, resume=True, steps=3, **QUIET)
    assert summary["steps"] == 3
    check_run(run.path, 3, "novelty")


def test_skillset_needs_seed_labels(tmp_path: Path):
    cfg = make_config(tmp_path, archive={"kind": "skillset"}, seeds={"skill": "no_such_column"})
    with pytest.raises(ConfigError, match="archive.kind"):
        run_generation(cfg, tmp_path / "run", **QUIET)


# ---------------------------------------------------------------- operators


def test_every_operator_writes_its_name_version_and_lineage(tmp_path: Path):
    ops = {"mutate": 1.0, "harder": 1.0, "easier": 1.0, "niche": 1.0, "crossover": 1.0}
    cfg = make_config(tmp_path, steps=3, batch=10, operators=ops)
    run_generation(cfg, tmp_path / "run", **QUIET)
    check_run(tmp_path / "run", 3, "cvt")
    gen = [r for r in RunDir(tmp_path / "run").read_candidates().to_pylist() if r["step"] > 0]
    versions = {"sparq_mutate": "mutate-fewshot-v3", "harder": "harder-fewshot-v1",
                "easier": "easier-fewshot-v1", "niche": "niche-fewshot-v1", "crossover": "crossover-fewshot-v1"}
    assert {r["operator"] for r in gen} == set(versions)
    for r in gen:
        assert r["prompt_version"] == versions[r["operator"]]
        assert (r["second_parent_id"] is not None) == (r["operator"] in ("crossover", "niche"))
        assert (r["target"] is not None) == (r["operator"] == "niche")
        if r["operator"] == "niche":
            assert r["target"].startswith("cell:")
    ops_table = RunDir(tmp_path / "run").read_operators().to_pylist()
    for row in ops_table:
        mine = [r for r in gen if r["step"] == row["step"] and r["operator"] == row["operator"]]
        archived = sum(r["archive_outcome"] in ("new", "improve") for r in mine)
        assert (row["attempts"], row["archived"]) == (len(mine), archived)
        assert row["archive_yield"] == archived / len(mine)


def test_skillset_niche_operator_names_target_skills(tmp_path: Path):
    cfg = make_config(tmp_path, archive={"kind": "skillset"}, operators={"mutate": 0.0, "niche": 1.0})
    run_generation(cfg, tmp_path / "run", **QUIET)
    gen = [r for r in RunDir(tmp_path / "run").read_candidates().to_pylist() if r["step"] > 0]
    assert gen and all(r["operator"] == "niche" and r["target"].startswith("skills:") for r in gen)
    # Seeds hold one skill each; the nearest empty keys add a second skill.
    assert all(len(r["target"].removeprefix("skills:").split(",")) == 2 for r in gen if r["step"] == 1)


@pytest.mark.parametrize("bandit", ["ucb1", "thompson"])
def test_bandits_run_and_resume_counts_from_shards(tmp_path: Path, bandit: str):
    cfg = make_config(tmp_path, steps=3, operators={"harder": 1.0, "easier": 1.0, "bandit": bandit})
    run_generation(cfg, tmp_path / "run", **QUIET)
    camp = Campaign.open(tmp_path / "run", resume=True, progress=lambda m: None)
    gen = [r for r in RunDir(tmp_path / "run").read_candidates().to_pylist() if r["step"] > 0]
    for name, c in camp.population.op_counts.items():
        mine = [r for r in gen if r["operator"] == name]
        assert (c.attempts, c.archived) == (len(mine), sum(r["archive_outcome"] in ("new", "improve")
                                                           for r in mine))
    camp.close()
    if bandit == "ucb1":  # every arm is tried before any is repeated
        assert {r["operator"] for r in gen if r["step"] == 1} == {"sparq_mutate", "harder", "easier"}


def test_operator_prompt_without_its_placeholders_is_a_config_error(tmp_path: Path):
    cfg = make_config(tmp_path, operators={"crossover": 1.0, "crossover_prompt": "harder_fewshot"})
    with pytest.raises(ConfigError, match="operators.crossover_prompt"):
        Campaign(cfg, RunDir(tmp_path / "run"))


# ---------------------------------------------------------------- validity


def _disputed_config(tmp_path: Path, **sections: dict) -> Config:
    # Every problem's reference is 17; three of four attempts say 99: solve rate 0.25
    # (quality 0.75, eligible) and a 0.75 majority against the reference (disputed). The
    # disputed flag is SPARQ's own signal, so the validity gate is off ("none"): with it on,
    # the verifier's 0.75 majority for 99 makes these rows invalid instead.
    mutate = [f" Problem {i}: what is 12 plus 5?\nNew solution: 12 + 5 = 17. The answer is 17." for i in range(60)]
    solve = [" The answer is 99.", " The answer is 99.", " The answer is 99.", " The answer is 17."]
    validity = {"gate": "none", **sections.pop("validity", {})}
    return make_config(tmp_path, mutate=mutate, solve=solve, validity=validity, **sections)


def test_disputed_flag_follows_majority_share_and_agreement(tmp_path: Path):
    cfg = make_config(tmp_path, steps=3)
    run_generation(cfg, tmp_path / "run", **QUIET)
    rows = RunDir(tmp_path / "run").read_candidates().to_pylist()
    for r in rows:
        if r["k"] == 0:
            assert r["disputed"] is None
        else:
            assert r["disputed"] == (r["reference_agrees"] is False and r["majority_share"] >= 0.75)
    cfg = _disputed_config(tmp_path / "d")
    run_generation(cfg, tmp_path / "d" / "run", **QUIET)
    ok = [r for r in RunDir(tmp_path / "d" / "run").read_candidates().to_pylist() if r["status"] == "ok"]
    assert ok and all(r["disputed"] and r["quality"] == 0.75 for r in ok)
    ops = RunDir(tmp_path / "d" / "run").read_operators().to_pylist()
    assert sum(o["disputed"] for o in ops) == len(ok)


@pytest.mark.parametrize("selection", ["archive", "dynamic_uniform", "dynamic_diverse"])
def test_exclude_parents_keeps_disputed_rows_out_of_selection(tmp_path: Path, selection: str):
    run_cfg = {"selection": selection, "working_set": 4, "niche_size": 1}
    for exclude in (False, True):
        cfg = _disputed_config(tmp_path / str(exclude), steps=3, run=run_cfg, validity={"exclude_parents": exclude})
        run_generation(cfg, tmp_path / str(exclude) / "run", **QUIET)
        rows = RunDir(tmp_path / str(exclude) / "run").read_candidates().to_pylist()
        disputed = {r["id"] for r in rows if r["disputed"]}
        parents = {r["parent_id"] for r in rows if r["step"] >= 2}
        if exclude:
            assert disputed and not parents & disputed
        elif selection == "dynamic_uniform":
            assert parents & disputed  # the top-4 by quality are disputed rows
