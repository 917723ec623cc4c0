"""The validity gate ([validity] gate) and the verifier ([verifier]) in whole campaigns on
the scripted engine, in steps and in stream mode: where an invalid candidate stops, what
it costs, and that the archive stays a function of the committed rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from archives import load_archive
from pipeline.loop.campaign import rederive_archive
from pipeline.loop.generate import run_generation
from pipeline.store.storage import RunDir
from tests.unit.pipeline.loop.test_variants import QUIET, make_config

# Even slots: a true computation (12 + 5 = 17); odd slots: the generator's own wrong
# arithmetic, twice (so no repair applies: [validity] repair corrects one slip in the last
# step, tested below). Every problem is distinct; the solver says 17 in 1 of 4 attempts, so
# every solved problem has solve rate 0.25 or 0 and the valid ones enter the archive.
MUTATE = []
for i in range(80):
    if i % 2:
        MUTATE.append(f" Crate {i} holds 5 rows of 8 jars. How many jars?\nNew solution: 5 times 8 is 25, "
                      "and 8 times 5 is 25. The answer is 25.")
    else:
        MUTATE.append(f" Shelf {i} has 12 books and gets 5 more. How many books?\nNew solution: 12 + 5 = 17. "
                      "The answer is 17.")
SOLVE = [" The answer is 17.", " The answer is 40.", " The answer is 40.", " The answer is 40."]


def _run(tmp_path: Path, mode: str, solve=SOLVE, mutate=MUTATE, **sections) -> list[dict]:
    cfg = make_config(tmp_path, mutate=mutate, solve=solve, steps=3, batch=6, run={"mode": mode}, **sections)
    run_generation(cfg, tmp_path / "run", **QUIET)
    run = RunDir(tmp_path / "run")
    cands = run.read_candidates()
    archive, _ = load_archive(run.archive_dir)
    assert archive == rederive_archive(archive, cands)
    return cands.to_pylist()


def _wrong(r: dict) -> bool:
    return r["step"] > 0 and r["problem"] is not None and "5 rows of 8" in r["problem"]


@pytest.mark.parametrize("mode", ["steps", "stream"])
def test_archive_gate_stops_invalid_candidates_before_any_solve(tmp_path: Path, mode: str):
    rows = _run(tmp_path, mode)
    wrong = [r for r in rows if _wrong(r)]
    assert wrong
    for r in wrong:
        assert r["status"] == "invalid" and r["valid"] is False
        assert r["invalid_checks"].split(",")[0] == "arithmetic"
        assert "5 * 8" in r["validity_reason"] and r["reason"] == r["validity_reason"]
        assert r["k"] == 0 and r["solve_tokens"] == 0 and r["archive_outcome"] not in ("new", "improve")
        assert r["cell"] is None
    right = [r for r in rows if r["step"] > 0 and r["status"] == "ok"]
    assert right and all(r["valid"] is True and r["k"] == 4 for r in right)
    # Never a parent: no later candidate descends from an invalid one.
    invalid_ids = {r["id"] for r in wrong}
    assert not {r["parent_id"] for r in rows} & invalid_ids
    attempts = RunDir(tmp_path / "run").read_attempts().to_pylist()
    assert not {a["candidate_id"] for a in attempts} & invalid_ids
    metrics = RunDir(tmp_path / "run").read_metrics().to_pylist()
    assert sum(m["invalid"] for m in metrics) == len(wrong)
    assert sum(m["valid"] for m in metrics) == len(right)
    # The run's summary (what `sparq generate` prints) reports the gate and the valid share.
    from pipeline.loop.generate import format_summary

    summary = run_generation(make_config(tmp_path, mutate=MUTATE, solve=SOLVE, steps=3, batch=6,
                                         run={"mode": mode}), tmp_path / "run", resume=True, **QUIET)
    assert summary["gate"] == "archive" and (summary["valid"], summary["invalid"]) == (len(right), len(wrong))
    assert summary["valid_share"] == round(len(right) / (len(right) + len(wrong)), 4)
    assert "valid_share" in format_summary(summary)


def test_export_gate_archives_invalid_rows_and_none_records_them(tmp_path: Path):
    for gate in ("export", "none"):
        rows = _run(tmp_path / gate, "steps", validity={"gate": gate})
        wrong = [r for r in rows if _wrong(r)]
        assert wrong and all(r["status"] == "ok" and r["valid"] is False and r["k"] == 4 for r in wrong)
        assert all("5 * 8" in r["validity_reason"] for r in wrong)
        # solve rate 0 (the solver never says 25): quality 0, so not archived here, but
        # nothing stopped them from being solved and weighed like any other
        assert all(r["solve_tokens"] > 0 for r in wrong)


# One slip, in the last step: [validity] repair corrects it (40) and the candidate goes on.
SLIPS = [f" Crate {i} holds 5 rows of 8 jars. How many jars?\nNew solution: 5 times 8 is 25. The answer is 25."
         for i in range(80)]


@pytest.mark.parametrize("mode", ["steps", "stream"])
def test_a_repaired_reference_is_solved_against_its_corrected_answer(tmp_path: Path, mode: str):
    rows = [r for r in _run(tmp_path, mode, mutate=SLIPS, validity={"repair": True}) if r["step"] > 0]
    assert rows and all(r["status"] == "ok" and r["valid"] is True and r["answer"] == "40" for r in rows)
    for r in rows:
        assert r["solution"] == "5 times 8 is 40. The answer is 40."
        assert "5 times 8 is 25" in r["raw_output"]  # the generator's own text is kept
        assert r["repair"] == "5 * 8 = 25 was false: 25 -> 40 in the solution and the answer"
        # Judged against 40: the solver's three 40s are right, its 17 is wrong.
        assert (r["k"], r["n_correct"]) == (4, 3)
    # Counted in the metrics, the run's summary and `sparq inspect`.
    from pipeline.read.inspection import load_run, summarize
    from pipeline.read.inspection_text import format_summary

    metrics = RunDir(tmp_path / "run").read_metrics().to_pylist()
    assert sum(m["repaired"] for m in metrics) == len(rows)
    summary = run_generation(make_config(tmp_path, mutate=SLIPS, solve=SOLVE, steps=3, batch=6,
                                         run={"mode": mode}, validity={"repair": True}),
                             tmp_path / "run", resume=True, **QUIET)
    assert summary["repaired"] == summary["valid"] == len(rows)
    inspected = summarize(load_run(tmp_path / "run"))
    assert inspected["validity"]["repaired"] == len(rows)
    assert f"{len(rows)} of them repaired" in format_summary(inspected)


def test_no_repair_without_a_gate_or_when_off(tmp_path: Path):
    for name, validity in (("none", {"gate": "none", "repair": True}), ("off", {"repair": False})):
        rows = [r for r in _run(tmp_path / name, "steps", mutate=SLIPS, validity=validity) if r["step"] > 0]
        assert rows and all(r["repair"] is None and r["answer"] == "25" and r["valid"] is False for r in rows)
        assert all(r["status"] == ("ok" if name == "none" else "invalid") for r in rows)


@pytest.mark.parametrize("mode", ["steps", "stream"])
def test_verifier_majority_against_the_reference_makes_a_candidate_invalid(tmp_path: Path, mode: str):
    # The solver (and, on the campaign's engine, the verifier) answers 40 in 3 of 4 attempts:
    # a 0.75 majority against the reference 17 of the valid-looking problems.
    rows = _run(tmp_path, mode, verifier={"m": 4, "share": 0.75})
    right = [r for r in rows if r["step"] > 0 and r["problem"] and "12 books" in r["problem"]]
    assert right
    for r in right:
        assert r["k"] == 4 and r["solve_rate"] == 0.25  # solved first: it could enter the archive
        assert r["status"] == "invalid" and r["invalid_checks"] == "verifier"
        assert r["verifier_answer"] == "40" and r["verifier_share"] == 0.75 and r["verifier_agrees"] is False
        assert "75% of 4 attempts answer '40'" in r["validity_reason"]
        assert r["verify_tokens"] > 0 and r["cell"] is None
    # The checks' rejects were never solved, so never verified.
    assert all(r["verify_tokens"] == 0 and r["verifier_share"] is None for r in rows if _wrong(r))
    metrics = RunDir(tmp_path / "run").read_metrics().to_pylist()
    assert sum(m["verify_tokens"] for m in metrics) == sum(r["verify_tokens"] or 0 for r in rows)


def test_verifier_share_and_eligibility(tmp_path: Path):
    # share 1.0: a 0.75 majority is not enough to reject.
    rows = _run(tmp_path / "share", "steps", verifier={"m": 4, "share": 1.0})
    right = [r for r in rows if r["step"] > 0 and r["problem"] and "12 books" in r["problem"]]
    assert right and all(r["status"] == "ok" and r["valid"] is True and r["verifier_share"] == 0.75 for r in right)
    # Every attempt right: solve rate 1, quality 0, never archived, so never verified.
    rows = _run(tmp_path / "easy", "steps", solve=[" The answer is 17."], verifier={"m": 4})
    right = [r for r in rows if r["step"] > 0 and r["problem"] and "12 books" in r["problem"]]
    assert right and all(r["verifier_share"] is None and r["verify_tokens"] == 0 for r in right)
    # gate "none": SPARQ exactly, no verifier whatever m says.
    rows = _run(tmp_path / "none", "steps", verifier={"m": 4}, validity={"gate": "none"})
    assert all(r["verify_tokens"] in (0, None) for r in rows)


class _SeedLog:
    """The scripted engine, recording every sample's seed as the real engines assign it
    (engines.prompt_seed: seed + index * n, then the n samples from there)."""

    def __init__(self, inner) -> None:
        self.inner, self.seeds = inner, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def complete(self, prompts, sampling):
        from pipeline.engines.base import prompt_seed

        for i in range(len(prompts)):
            s = prompt_seed(sampling, i)
            self.seeds += [s + j for j in range(sampling.n)]
        return self.inner.complete(prompts, sampling)


@pytest.mark.parametrize("mode", ["steps", "stream"])
def test_no_two_samples_of_a_run_share_a_seed(tmp_path: Path, mode: str):
    # Adaptive rounds (round r used to be seed + r, overlapping round 0's n samples) and the
    # verifier: every sample the run draws has its own seed.
    from pipeline.engines import make_engine

    cfg = make_config(tmp_path, mutate=MUTATE, solve=[" The answer is 17.", " The answer is 40."], steps=3,
                      batch=6, k=8, run={"mode": mode}, solver={"adaptive": True, "round_size": 2, "min_attempts": 4},
                      verifier={"m": 4, "share": 1.0})
    engine = _SeedLog(make_engine(cfg.engine, seed=cfg.run.seed))
    run_generation(cfg, tmp_path / "run", engine=engine, **QUIET)
    assert engine.seeds and None not in engine.seeds
    assert len(set(engine.seeds)) == len(engine.seeds)
    rows = RunDir(tmp_path / "run").read_candidates().to_pylist()
    assert any(r["verify_tokens"] for r in rows)  # the verifier ran
    assert any(r["k"] > 2 for r in rows)  # a second adaptive round was sent


def test_stream_commits_an_original_no_later_than_its_duplicates(tmp_path: Path):
    # A duplicate finishes at once (nothing to solve) while its original is still solving;
    # committed first, a kill in between would leave a duplicate whose original is lost.
    same = " Shelf 1 has 12 books and gets 5 more. How many books?\nNew solution: 12 + 5 = 17. The answer is 17."
    mutate = [same if i % 3 else MUTATE[2 * i] for i in range(40)]
    cfg = make_config(tmp_path, mutate=mutate, solve=SOLVE, steps=6, batch=4,
                      run={"mode": "stream", "commit_every": 1, "in_flight": 8})
    engine = _SlowSolves(cfg)
    run_generation(cfg, tmp_path / "run", engine=engine, **QUIET)
    rows = RunDir(tmp_path / "run").read_candidates().to_pylist()
    owner_step = {}
    for r in rows:
        if r["status"] in ("ok", "invalid", "seed") and r["problem_id"]:
            owner_step.setdefault(r["problem_id"], r["step"])
    dups = [r for r in rows if r["status"] == "duplicate"]
    assert dups
    for r in dups:
        assert r["problem_id"] in owner_step and owner_step[r["problem_id"]] <= r["step"], r["problem"]


class _SlowSolves:
    """The scripted engine, with solve requests slower than mutations (as on a real engine:
    k samples against one), so a duplicate finishes before its original."""

    def __init__(self, cfg) -> None:
        from pipeline.engines import make_engine

        self.inner = make_engine(cfg.engine, seed=cfg.run.seed)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def complete(self, prompts, sampling):
        import time

        if sampling.n > 1:
            time.sleep(0.05)
        return self.inner.complete(prompts, sampling)
