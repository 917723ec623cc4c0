"""The export's filters one by one: runner semantics, row filters, dedup, near-duplicates,
decontamination, selection, config and benchmark loading."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from filters.base import Batch, Filter, Verdicts, funnel, predicate_filter, run_filters
from filters.benchmarks import BenchItem, load_benchmark, load_benchmarks
from filters.config import BenchmarkSpec, export_config_from_dict, load_export_config
from filters.decontam import DecontamIndex, decontam_filter, ngram_tokens
from filters.dedup import exact_dedup_filter, near_dup_filter
from filters.errors import ExportConfigError, ExportInputError
from filters.neighbors import similar_pairs
from filters.rows import difficulty_filter, pairs_filter, status_filter, validity_filter
from filters.select import select_pairs
from tests.helpers.export_helpers import fake_embed


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


# -- runner -------------------------------------------------------------------------


def test_runner_applies_in_order_and_keeps_reasons():
    frame = pd.DataFrame({"x": [1, 2, 3, 4, 5, 6]})
    odd = predicate_filter("odd", ["x"], lambda r: True if r["x"] % 2 else (False, "even", f"{r['x']} is even"))
    small = Filter("small", lambda b: Verdicts(np.where(b.frame["x"].to_numpy() < 4, None, "too_big").astype(object)))
    marks = run_filters(Batch(frame), [odd, small])
    assert marks.filter.tolist() == [None, "odd", None, "odd", "small", "odd"]
    assert marks.reason.tolist() == [None, "even", None, "even", "too_big", "even"]
    assert marks.detail.tolist() == [None, "2 is even", None, "4 is even", None, "6 is even"]
    assert marks.reason_counts() == {("odd", "even"): 3, ("small", "too_big"): 1}
    assert [(c.name, c.seen, c.rejected, c.kept) for c in marks.counts] == [("odd", 6, 3, 3), ("small", 3, 1, 2)]
    # A later filter sees only what the earlier ones kept: 'small' never saw 4 or 6.
    assert [(c.name, c.seen, c.rejected) for c in funnel(["odd", "small"], {"odd": 3, "small": 1}, 6)] == \
        [("odd", 6, 3), ("small", 3, 1)]


def test_predicate_must_return_true_or_reason():
    bad = predicate_filter("bad", ["x"], lambda r: False)
    with pytest.raises(TypeError, match="bad"):
        run_filters(Batch(pd.DataFrame({"x": [1]})), [bad])
    # A reason with a value in it would count as a reason of its own in the card.
    wordy = predicate_filter("wordy", ["x"], lambda r: (False, f"x is {r['x']}"))
    with pytest.raises(RuntimeError, match="snake_case code"):
        run_filters(Batch(pd.DataFrame({"x": [1]})), [wordy])


def _rows(**cols) -> Batch:
    return Batch(pd.DataFrame(cols))


def test_status_difficulty_validity_pairs():
    b = _rows(status=["ok", "seed", "unparseable"], reason=[None, None, "no solution found"])
    v = status_filter(["ok"])(b)
    assert v.reasons.tolist() == [None, "status_excluded", "status_excluded"]
    assert v.details.tolist() == [None, "status 'seed'", "status 'unparseable': no solution found"]
    b = _rows(solve_rate=[0.1, 0.9, 0.05, 1.0, None])
    v = difficulty_filter(0.1, 0.9)(b)
    assert v.reasons.tolist() == [None, None,  # the band is inclusive
                                  "solve_rate_below_band", "solve_rate_above_band", "no_solve_rate"]
    r = v.details.tolist()
    assert "0.050 < 0.1" in r[2] and "1.000 > 0.9" in r[3] and "no solve rate" in r[4]
    b = _rows(reference_agrees=[True, False, None], majority_answer=["7", "3", None],
              majority_share=[0.5, 0.75, None])
    v = validity_filter()(b)
    assert v.reasons.tolist() == [None, "reference_disputed", "no_solver_majority"]
    r = v.details.tolist()
    assert "disagrees" in r[1] and "'3'" in r[1] and "no solver majority" in r[2]
    b = _rows(n_student=[0, 2, 0], has_generator=[True, False, False])
    v = pairs_filter(["student"])(b)
    assert v.reasons.tolist() == ["no_sft_pair", None, "no_sft_pair"]
    assert v.details.tolist() == ["no correct student attempt", None, "no correct student attempt"]
    assert pairs_filter(["student", "generator"])(b).details.tolist() == [
        None, None, "no correct student attempt or generator solution"]


# -- duplicates ---------------------------------------------------------------------


def test_exact_dedup_keeps_the_best_copy():
    b = _rows(id=["a", "b", "c", "d"], problem_id=["p", "p", "q", "p"], priority=[2, 0, 1, 3])
    v = exact_dedup_filter()(b)
    assert v.reasons[1] is None and v.reasons[2] is None  # b is the best copy of p
    assert v.reasons[0] == v.reasons[3] == "exact_duplicate"
    assert v.matched.tolist() == ["b", None, None, "b"]


def test_near_dup_greedy_keeps_higher_quality():
    # a~b (0.98), b~c (0.98), a and c further apart: b goes with a, so c survives.
    ang = np.deg2rad([0.0, 11.0, 22.0])
    emb = np.stack([np.cos(ang), np.sin(ang), np.zeros(3)], axis=1).astype(np.float32)
    emb = np.vstack([emb, [[0, 0, 1]]]).astype(np.float32)
    b = Batch(pd.DataFrame({"id": ["a", "b", "c", "z"], "priority": [0, 1, 2, 3]}), emb)
    v = near_dup_filter(0.97, exact_below=100, nlist=0, nprobe=1, seed=0)(b)
    assert v.reasons[0] is None and v.reasons[2] is None and v.reasons[3] is None
    assert v.matched[1] == "a" and v.reasons[1] == "near_duplicate" and "cosine 0.98" in v.details[1]
    # With c the best, c removes b, and a survives.
    b2 = Batch(pd.DataFrame({"id": ["a", "b", "c", "z"], "priority": [2, 1, 0, 3]}), emb)
    v2 = near_dup_filter(0.97, exact_below=100, nlist=0, nprobe=1, seed=0)(b2)
    assert v2.matched.tolist() == [None, "c", None, None]


def test_ivf_search_finds_the_near_duplicates_brute_force_finds():
    rng = np.random.default_rng(0)
    base = _unit(rng.standard_normal((6000, 48)))
    copies = _unit(base[:400] + 0.03 * rng.standard_normal((400, 48)))
    emb = np.vstack([base, copies]).astype(np.float16)
    exact = similar_pairs(emb, 0.95, exact_below=10**9)
    ivf = similar_pairs(emb, 0.95, exact_below=0, nlist=64, nprobe=4)
    pairs = lambda r: {(min(a, b), max(a, b)) for a, b in zip(r[0].tolist(), r[1].tolist(), strict=True)}  # noqa: E731
    want, got = pairs(exact), pairs(ivf)
    assert len(want) >= 300  # the test is about something
    assert got <= want and len(got) >= 0.98 * len(want)


# -- decontamination ----------------------------------------------------------------


def test_ngram_tokens_hide_numbers_keep_operators():
    assert ngram_tokens("Compute 6 * 9.") == ["compute", "#", "*", "#", "."]
    assert ngram_tokens("Compute  17*3.5.") == ngram_tokens("compute 1 * 2.")
    assert ngram_tokens("Compute 6 + 9.") != ngram_tokens("Compute 6 * 9.")


HELD = ["A farmer has 12 cows and buys 5 more at the market on Sunday. How many cows does he have now?",
        "Compute 6 * 9."]


def _index(texts: list[str], embed=fake_embed) -> DecontamIndex:
    items = [BenchItem("bench", str(i), t) for i, t in enumerate(texts)]
    return DecontamIndex.build(items, embed(texts), n=8, ngram_threshold=0.5, cosine_threshold=0.9)


def _decontam(problems: list[str], embed=fake_embed) -> Verdicts:
    index = _index(HELD, embed)
    return decontam_filter(index)(Batch(pd.DataFrame({"problem": problems}), embed(problems)))


def test_decontam_catches_copies_numbers_changed_and_reordered():
    v = _decontam([
        HELD[0],  # verbatim
        "A farmer has 40 cows and buys 17 more at the market on Sunday. How many cows does he have now?",
        "On Sunday a farmer with 12 cows buys 5 more at the market. Now how many cows does he have?",
        "Compute 71 * 3.",  # a short item: copied whole with new numbers
        "A ship sails 30 km north and then 40 km east. How far is it from where it started?",
        "Compute 6 + 9.",
    ])
    assert [r is not None for r in v.reasons] == [True, True, True, True, False, False]
    assert v.matched[0] == f"bench:0: {HELD[0]}" and v.matched[3].startswith("bench:1:")
    assert v.reasons[1] == "benchmark_leak" and "n-gram overlap 1.00" in v.details[1]
    assert "n-gram overlap 0.00" in v.details[2]  # reordered: n-grams break, the embedding does not


def test_decontam_with_the_real_embedder_on_the_heldout_split():
    """The shipped thresholds against the real embedder: edited held-out items are caught."""
    from pipeline.placement.embedding import Embedder

    embedder = Embedder("embedded")
    heldout = [it.text for it in load_benchmarks(())[0].items]
    rng = random.Random(0)

    def renumber(t: str) -> str:
        return re.sub(r"\d+", lambda m: str(int(m.group()) + rng.randint(1, 9)), t)

    def swap_two(t: str) -> str:
        w = t.rstrip(".?").split()
        i = rng.randrange(len(w) - 1)
        w[i], w[i + 1] = w[i + 1], w[i]
        return " ".join(w) + "?"

    cfg = load_export_config().decontam
    items = [BenchItem("heldout", str(i), t) for i, t in enumerate(heldout)]
    index = DecontamIndex.build(items, embedder.encode(heldout), n=cfg.ngram, ngram_threshold=cfg.ngram_threshold,
                                cosine_threshold=cfg.cosine_threshold)
    for edit, floor in ((lambda t: t, 1.0), (renumber, 1.0), (swap_two, 0.9)):
        edited = [edit(t) for t in heldout]
        v = decontam_filter(index)(Batch(pd.DataFrame({"problem": edited}), embedder.encode(edited)))
        assert v.rejected.mean() >= floor
    unrelated = ["A ship sails 30 km north and then 40 km east. How far is it from where it started?",
                 "Prove that the square root of 2 is irrational."]
    v = decontam_filter(index)(Batch(pd.DataFrame({"problem": unrelated}), embedder.encode(unrelated)))
    assert not v.rejected.any()


# -- selection ----------------------------------------------------------------------


def _select(strategy: str, **kw):
    cells = np.array([0, 0, 0, 1, 1, 2])
    quality = np.array([0.9, 0.5, 0.1, 0.8, 0.7, 0.2])
    n_pairs = np.array([2, 1, 1, 1, 3, 1])
    args = dict(budget=0, max_per_cell=0, max_per_problem=0, seed=0) | kw
    return select_pairs(cells, quality, n_pairs, strategy=strategy, **args)


def test_selection_caps_and_budget():
    s = _select("quality", max_per_problem=1)
    assert s.count == 6 and set(s.reason[~s.selected]) == {"per_problem_cap"}
    assert set(s.detail[~s.selected]) == {"per-problem cap (1)"}
    s = _select("quality", max_per_problem=1, max_per_cell=1)
    assert sorted(s.problem[s.selected].tolist()) == [0, 3, 5]  # the best of each cell
    s = _select("quality", max_per_problem=1, budget=2)
    assert sorted(s.problem[s.selected].tolist()) == [0, 3]
    assert (s.reason == "over_budget").sum() == (s.detail == "over budget (2)").sum() == 4
    s = _select("random", budget=4)
    assert s.count == 4 and s.selected.tolist() == _select("random", budget=4).selected.tolist()


def test_diversity_is_round_robin_over_cells_best_first():
    s = _select("diversity", max_per_problem=1, budget=3)
    assert sorted(s.problem[s.selected].tolist()) == [0, 3, 5]  # one per cell, the best of each
    s = _select("diversity", max_per_problem=1, budget=5)
    assert sorted(s.problem[s.selected].tolist()) == [0, 1, 3, 4, 5]
    # Quality-first would rather take a second pair of the best problems.
    q = _select("quality", budget=3)
    assert sorted(zip(q.problem[q.selected].tolist(), q.pair_no[q.selected].tolist(), strict=True)) == \
        [(0, 0), (0, 1), (3, 0)]
    # Diversity: every cell's first pairs before any cell's second; the rounds go on over
    # cells, so the 6th row is cell 1's next pair (a second one of problem 4, quality 0.7),
    # not cell 0's weaker problem 2 (0.1).
    d = _select("diversity", budget=6)
    assert sorted(zip(d.problem[d.selected].tolist(), d.pair_no[d.selected].tolist(), strict=True)) == \
        [(0, 0), (1, 0), (3, 0), (4, 0), (4, 1), (5, 0)]


# -- config and benchmarks ----------------------------------------------------------


@pytest.mark.parametrize(("data", "needle"), [
    ({"budgett": 3}, "export.budgett"),
    ({"near_dup": {"thresh": 0.9}}, "export.near_dup.thresh"),
    ({"budget": "many"}, "export.budget"),
    ({"selection": "best"}, "export.selection"),
    ({"sources": ["teacher"]}, "export.sources"),
    ({"difficulty": {"lo": 0.8, "hi": 0.2}}, "export.difficulty.lo"),
    ({"decontam": {"benchmarks": [{"name": "x", "source": "a.jsonl", "colum": "q"}]}},
     "export.decontam.benchmarks[0].colum"),
    ({"decontam": {"benchmarks": [{"name": "heldout", "source": "a.jsonl"}]}}, "export.decontam.benchmarks[0].name"),
])
def test_bad_config_names_the_key(data, needle):
    with pytest.raises(ExportConfigError, match=re.escape(needle)):
        export_config_from_dict(data)


def test_config_file_overrides_a_subset(tmp_path: Path):
    p = tmp_path / "e.toml"
    p.write_text('[export]\nbudget = 7\n[export.near_dup]\nthreshold = 0.9\n'
                 '[[export.decontam.benchmarks]]\nname = "mine"\nsource = "b.jsonl"\ncolumn = "question"\n')
    cfg = load_export_config(p)
    assert cfg.budget == 7 and cfg.near_dup.threshold == 0.9 and cfg.near_dup.nprobe == 3  # the default
    assert cfg.decontam.benchmarks == (BenchmarkSpec(name="mine", source="b.jsonl", column="question"),)
    p.write_text("[run]\nsteps = 3\n")
    with pytest.raises(ExportConfigError, match="'run'"):
        load_export_config(p)


def test_benchmark_files(tmp_path: Path):
    j = tmp_path / "b.jsonl"
    j.write_text(json.dumps({"question": "What is 2 + 2?", "id": "q1"}) + "\n" + json.dumps({"question": ""}) + "\n")
    s = load_benchmark(BenchmarkSpec(name="b", source=str(j), column="question"))
    assert [(i.item_id, i.text) for i in s.items] == [("q1", "What is 2 + 2?")] and s.empty_rows == 1
    with pytest.raises(ExportInputError, match=r"b\.jsonl.*no column 'problem'"):
        load_benchmark(BenchmarkSpec(name="b", source=str(j), column="problem"))
    pq.write_table(pa.table({"text": ["What is 3 + 3?"]}), tmp_path / "b.parquet")
    with pytest.raises(ExportInputError, match=r"b\.parquet.*no column 'question'"):
        load_benchmark(BenchmarkSpec(name="b", source=str(tmp_path / "b.parquet"), column="question"))
    with pytest.raises(ExportInputError, match=r"nope\.jsonl\): file not found"):
        load_benchmark(BenchmarkSpec(name="b", source=str(tmp_path / "nope.jsonl")))
    # A `datasets` name: a local dataset directory loads through datasets.load_dataset.
    d = tmp_path / "ds"
    d.mkdir()
    pq.write_table(pa.table({"problem": ["What is 5 + 5?", "What is 6 + 6?"]}), d / "test.parquet")
    s = load_benchmark(BenchmarkSpec(name="hfb", source=f"hf:{d}", column="problem", split="test"))
    assert len(s.items) == 2
    assert load_benchmarks(())[0].name == "heldout" and len(load_benchmarks(())[0].items) == 120
