"""The archive contract (archives/base.py), checked for every archive kind.

Each kind gets a small factory and a descriptor generator; the tests are the same. Kind-
specific behaviour (centroid lookup, niche founding, skill keys) is tested below them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from archives import (
    ARCHIVE_KINDS,
    AddStatus,
    CVTArchive,
    NoveltyArchive,
    SkillSetArchive,
    load_archive,
    skill_key,
    skill_vocabulary,
)

NEW, IMPROVE, NOT_ADDED = AddStatus.NEW, AddStatus.IMPROVE_EXISTING, AddStatus.NOT_ADDED
DIM = 8
VOCAB = ("ratios", "algebra", "counting", "money", "area", "time_rates")  # not alphabetical on purpose


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _skills(rng: np.random.Generator, n: int) -> list[Any]:
    out: list[Any] = []
    for _ in range(n):
        size = int(rng.integers(0, 4))
        labels = [VOCAB[i] for i in rng.choice(len(VOCAB), size=size, replace=False)]
        if rng.random() < 0.2:
            labels.append("not-a-skill")  # out of vocabulary: mapped to nothing
        out.append(", ".join(labels) if rng.random() < 0.5 else labels)
    return out


@dataclass(frozen=True)
class Kind:
    name: str
    make: Callable[[], Any]
    descriptors: Callable[[np.random.Generator, int], Any]
    take: Callable[[Any, int, int], Any]  # slice of a descriptor batch
    one: Callable[[Any, int], Any]  # descriptor batch of one row


def _slice_rows(d: Any, lo: int, hi: int) -> Any:
    return d[lo:hi]


def _one_row(d: Any, i: int) -> Any:
    return d[i : i + 1]


KINDS = {
    "cvt": Kind("cvt", lambda: CVTArchive(centroids=_unit(np.random.default_rng(99), 20)), _unit,
                _slice_rows, _one_row),
    # With radius 0.5, 300 random 8-d rows found niches until about row 100 and then fill
    # the capacity of 25, so both founding and competition (and the full case) are exercised.
    "novelty": Kind("novelty", lambda: NoveltyArchive(dim=DIM, radius=0.5, capacity=25), _unit,
                    _slice_rows, _one_row),
    "skillset": Kind("skillset", lambda: SkillSetArchive(vocabulary=VOCAB, max_skills=3), _skills,
                     _slice_rows, _one_row),
}


@pytest.fixture(params=sorted(KINDS))
def kind(request) -> Kind:
    return KINDS[request.param]


def test_every_registered_kind_is_tested():
    assert set(ARCHIVE_KINDS) == set(KINDS)


def test_empty_archive(kind: Kind):
    archive = kind.make()
    assert archive.kind == kind.name
    assert len(archive) == 0
    st = archive.stats
    assert (st.num_elites, st.coverage, st.qd_score, st.best, st.mean) == (0, 0.0, 0.0, None, None)
    assert st.num_cells == archive.cells >= 1
    table = archive.data()
    assert table.num_rows == 0 and {"cell", "id", "quality", "step"} <= set(table.column_names)
    with pytest.raises(ValueError, match="empty archive"):
        archive.sample_elites(1, np.random.default_rng(0))
    assert archive.new_empty() == archive
    with pytest.warns(DeprecationWarning, match="new_empty"):  # the old name, kept for a while
        assert archive.empty() == archive
    status, cells = archive.add([], kind.descriptors(np.random.default_rng(0), 0), [])
    assert status.shape == (0,) and cells.shape == (0,)


def _fill(kind: Kind, seed: int, n: int = 300):
    rng = np.random.default_rng(seed)
    desc = kind.descriptors(rng, n)
    qual = rng.integers(0, 6, size=n).astype(float) / 2  # a small set: ties are common
    steps = rng.integers(0, 100, size=n)
    ids = [f"p{i}" for i in range(n)]
    return rng, ids, desc, qual, steps


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_add_equals_sequential_single_adds(kind: Kind, seed: int):
    rng, ids, desc, qual, steps = _fill(kind, seed)
    n = len(ids)
    batched, single = kind.make(), kind.make()
    cuts = np.sort(rng.choice(np.arange(1, n), size=6, replace=False))
    bounds = [0, *cuts.tolist(), n]
    b_status, b_cells = [], []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        s, c = batched.add(ids[lo:hi], kind.take(desc, lo, hi), qual[lo:hi], steps=steps[lo:hi])
        b_status.append(s)
        b_cells.append(c)
    s_status, s_cells = [], []
    for i in range(n):
        s, c = single.add([ids[i]], kind.one(desc, i), [qual[i]], steps=[steps[i]])
        s_status += s.tolist()
        s_cells += c.tolist()
    assert np.concatenate(b_status).dtype == np.int8 and np.concatenate(b_cells).dtype == np.int64
    assert np.concatenate(b_status).tolist() == s_status
    assert np.concatenate(b_cells).tolist() == s_cells
    assert batched == single
    assert batched.stats == single.stats
    assert batched.data().equals(single.data())


@pytest.mark.parametrize("seed", [3, 4])
def test_statuses_follow_the_one_elite_per_niche_rule(kind: Kind, seed: int):
    """The rule written out one row at a time, against the cells the archive reports."""
    _, ids, desc, qual, steps = _fill(kind, seed)
    archive = kind.make()
    best: dict[int, tuple[float, str, int]] = {}
    status, cells = archive.add(ids, desc, qual, steps=steps)
    for st, cell, q, ident, step in zip(status.tolist(), cells.tolist(), qual.tolist(), ids, steps.tolist(),
                                        strict=True):
        if cell < 0:
            assert st == NOT_ADDED  # no niche for this row
        elif cell not in best:
            assert st == NEW
            best[cell] = (q, ident, step)
        elif q > best[cell][0]:
            assert st == IMPROVE
            best[cell] = (q, ident, step)
        else:
            assert st == NOT_ADDED
    assert len(archive) == len(best)
    for cell, (q, ident, step) in best.items():
        elite = archive.elite(cell)
        assert (elite.id, elite.quality, elite.step, elite.cell) == (ident, q, step, cell)
    table = archive.data()
    assert table.column("cell").to_pylist() == sorted(best)
    assert table.column("id").to_pylist() == [best[c][1] for c in sorted(best)]


def _placeable(kind: Kind, d: Any, n: int) -> int:
    """A row that gets a niche in an empty archive (a skill-set row needs a known skill)."""
    return next(i for i in range(n) if kind.make().add(["t"], kind.one(d, i), [0.0])[1][0] >= 0)


def test_tie_keeps_incumbent_and_better_replaces(kind: Kind):
    archive = kind.make()
    d = kind.descriptors(np.random.default_rng(5), 40)
    row = kind.one(d, _placeable(kind, d, 40))
    s, c = archive.add(["a"], row, [1.0], steps=[1])
    assert s.tolist() == [NEW] and c[0] >= 0
    s, c2 = archive.add(["b"], row, [1.0], steps=[2])
    assert s.tolist() == [NOT_ADDED] and c2.tolist() == c.tolist()
    assert archive.elite(int(c[0])).id == "a"
    s, c3 = archive.add(["c"], row, [2.0], steps=[3])
    assert s.tolist() == [IMPROVE] and c3.tolist() == c.tolist()
    assert archive.elite(int(c[0])).id == "c" and len(archive) == 1


def test_index_of_and_retrieve_agree_with_add(kind: Kind):
    _, ids, desc, qual, steps = _fill(kind, 6, n=80)
    archive = kind.make()
    archive.add(ids[:40], kind.take(desc, 0, 40), qual[:40], steps=steps[:40])
    rest = kind.take(desc, 40, 80)
    before = archive.index_of(rest)
    assert before.dtype == np.int64 and before.shape == (40,)
    occupied, elite_ids = archive.retrieve(rest)
    for cell, occ, ident in zip(before.tolist(), occupied.tolist(), elite_ids, strict=True):
        assert occ == (cell >= 0 and archive.elite(cell) is not None)
        assert ident == (archive.elite(cell).id if occ else None)
    # The first row of `rest` competes where index_of said (unless it founds a new niche).
    _, c = archive.add(["x"], kind.one(rest, 0), [0.0])
    if before[0] >= 0:
        assert c[0] == before[0]


def test_stats_follow_the_elites(kind: Kind):
    _, ids, desc, qual, steps = _fill(kind, 7)
    archive = kind.make()
    archive.add(ids, desc, qual, steps=steps)
    q = np.array(archive.data().column("quality").to_pylist())
    st = archive.stats
    assert st.num_elites == len(archive) == q.size > 0
    assert st.qd_score == float(q.sum()) and st.best == float(q.max())
    assert st.coverage == len(archive) / archive.cells


def test_sample_elites_uniform_over_occupied_cells_and_reproducible(kind: Kind):
    _, ids, desc, qual, steps = _fill(kind, 8)
    archive = kind.make()
    archive.add(ids, desc, qual, steps=steps)
    samples = archive.sample_elites(3000, np.random.default_rng(1))
    cells = np.array([e.cell for e in samples])
    occupied = archive.data().column("cell").to_pylist()
    assert set(cells.tolist()) == set(occupied)
    counts = np.array([np.sum(cells == c) for c in occupied])
    assert counts.max() / counts.min() < 3  # uniform over cells, not rows
    assert {e.id for e in samples} == set(archive.data().column("id").to_pylist())
    assert archive.sample_elites(20, np.random.default_rng(2)) == archive.sample_elites(20, np.random.default_rng(2))
    assert archive.sample_elites(0, np.random.default_rng(0)) == []
    with pytest.raises(ValueError, match="n must be >= 0"):
        archive.sample_elites(-1, np.random.default_rng(0))


def test_save_load_round_trip_and_carry_on(kind: Kind, tmp_path):
    _, ids, desc, qual, steps = _fill(kind, 9)
    archive = kind.make()
    archive.add(ids[:200], kind.take(desc, 0, 200), qual[:200], steps=steps[:200])
    extra = {"step": 12, "run_id": "r"}
    archive.save(tmp_path / "snap", extra=extra)
    state = json.loads((tmp_path / "snap" / "state.json").read_text())
    assert state["kind"] == kind.name and state["num_elites"] == len(archive)
    loaded, loaded_extra = type(archive).load(tmp_path / "snap")
    assert loaded == archive and loaded_extra == extra
    assert loaded.stats == archive.stats and loaded.data().equals(archive.data())
    generic, _ = load_archive(tmp_path / "snap")
    assert type(generic) is type(archive) and generic == archive
    rest = kind.take(desc, 200, 300)
    s1, c1 = archive.add(ids[200:], rest, qual[200:], steps=steps[200:])
    s2, c2 = loaded.add(ids[200:], rest, qual[200:], steps=steps[200:])
    assert s1.tolist() == s2.tolist() and c1.tolist() == c2.tolist()
    assert loaded == archive


def test_save_load_empty_and_reject_unknown_version(kind: Kind, tmp_path):
    archive = kind.make()
    archive.save(tmp_path)
    loaded, extra = load_archive(tmp_path)
    assert loaded == archive and extra == {}
    state = json.loads((tmp_path / "state.json").read_text())
    state["format_version"] = 99
    (tmp_path / "state.json").write_text(json.dumps(state))
    with pytest.raises(ValueError, match="format_version must be 1; got 99"):
        load_archive(tmp_path)


def test_empty_copy_rederives_the_same_archive(kind: Kind):
    """The archive is a pure function of its ordered insertions (campaign re-derivation)."""
    _, ids, desc, qual, steps = _fill(kind, 10)
    archive = kind.make()
    for lo in range(0, 300, 37):
        hi = min(300, lo + 37)
        archive.add(ids[lo:hi], kind.take(desc, lo, hi), qual[lo:hi], steps=steps[lo:hi])
    fresh = archive.new_empty()
    assert len(fresh) == 0 and fresh.cells == archive.cells
    fresh.add(ids, desc, qual, steps=steps)
    assert fresh == archive


def test_equality_sees_every_field(kind: Kind):
    d = kind.descriptors(np.random.default_rng(11), 30)
    i = _placeable(kind, d, 30)

    def filled(step: int = 1, quality: float = 1.0, ident: str = "a"):
        archive = kind.make()
        archive.add([ident], kind.one(d, i), [quality], steps=[step])
        return archive

    assert filled() == filled()
    assert filled(step=2) != filled()
    assert filled(quality=2.0) != filled()
    assert filled(ident="b") != filled()
    assert filled() != kind.make()


def test_bad_rows_raise_naming_the_argument_and_insert_nothing(kind: Kind):
    archive = kind.make()
    d = kind.descriptors(np.random.default_rng(12), 2)
    with pytest.raises(ValueError, match=r"qualities must be finite; qualities\[1\] is nan"):
        archive.add(["a", "b"], d, [1.0, float("nan")])
    with pytest.raises(ValueError, match=r"qualities must have shape \(2,\)"):
        archive.add(["a", "b"], d, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"steps must have shape \(2,\)"):
        archive.add(["a", "b"], d, [1.0, 2.0], steps=[1])
    with pytest.raises(ValueError, match=r"ids must be str; ids\[1\] is int"):
        archive.add(["a", 7], d, [1.0, 2.0])
    with pytest.raises(ValueError, match="one row per id"):
        archive.add(["a", "b", "c"], d, [1.0, 2.0, 3.0])
    assert len(archive) == 0


# ---------------------------------------------------------------- novelty specifics


def test_novelty_founds_niches_beyond_the_radius_and_stops_at_capacity():
    e0, e1 = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]
    archive = NoveltyArchive(dim=3, radius=0.5, capacity=2)
    assert archive.add_single("a", np.array(e0), 1.0) == (NEW, 0)
    # cosine distance 1 - 0.8 = 0.2 <= 0.5: competes with "a" and loses
    assert archive.add_single("b", np.array([0.8, 0.6, 0.0]), 0.5) == (NOT_ADDED, 0)
    assert archive.add_single("c", np.array(e1), 0.0) == (NEW, 1)  # distance 1 > 0.5
    assert archive.index_of(np.array([[0.0, 0.0, 1.0]])).tolist() == [0]  # full: nearest (tie -> oldest)
    assert archive.add_single("d", np.array([0.1, 0.0, 1.0]), 2.0) == (IMPROVE, 0)
    assert archive.elite(0).id == "d" and archive.stats.coverage == 1.0
    np.testing.assert_allclose(archive.elite(0).embedding, np.array([0.1, 0.0, 1.0]) / np.hypot(0.1, 1.0),
                               rtol=1e-6)


def test_novelty_index_of_says_new_niche_with_minus_one():
    archive = NoveltyArchive(dim=3, radius=0.5, capacity=10)
    assert archive.index_of(np.array([[1.0, 0.0, 0.0]])).tolist() == [-1]
    archive.add(["a"], np.array([[1.0, 0.0, 0.0]]), [0.0])
    assert archive.index_of(np.array([[1.0, 0.1, 0.0], [0.0, 1.0, 0.0]])).tolist() == [0, -1]
    occupied, ids = archive.retrieve(np.array([[1.0, 0.1, 0.0], [0.0, 1.0, 0.0]]))
    assert occupied.tolist() == [True, False] and ids == ["a", None]


def test_novelty_constructor_errors_name_the_argument():
    with pytest.raises(ValueError, match="radius must be in"):
        NoveltyArchive(dim=3, radius=0.0, capacity=2)
    with pytest.raises(ValueError, match="capacity must be >= 1"):
        NoveltyArchive(dim=3, radius=0.3, capacity=0)
    with pytest.raises(ValueError, match=r"embeddings must have shape \(n, 3\)"):
        NoveltyArchive(dim=3, radius=0.3, capacity=2).add(["a"], np.ones((1, 4)), [1.0])


# ---------------------------------------------------------------- skill-set specifics


def test_skill_key_sorts_drops_unknown_and_caps():
    vocab = set(VOCAB)
    assert skill_key("Money, area , Not A Skill", vocab, 3) == ("area", "money")
    assert skill_key(["time rates", "Time-Rates", "ratios"], vocab, 3) == ("ratios", "time_rates")
    assert skill_key("ratios, algebra, counting, money", vocab, 3) == ("algebra", "counting", "ratios")
    assert skill_key("algebra, counting", vocab, 1) == ("algebra",)  # the labeller's first skills
    assert skill_key(None, vocab, 3) == () and skill_key("", vocab, 3) == ()


def test_skill_vocabulary_most_common_then_alphabetical():
    labels = ["b", "a", "c, a", "b", None, "d", "c"]
    assert skill_vocabulary(labels, 3) == ("a", "b", "c")
    assert skill_vocabulary(labels, 10) == ("a", "b", "c", "d")


def test_skillset_cells_are_canonical_and_cover_every_key():
    archive = SkillSetArchive(vocabulary=VOCAB, max_skills=3)
    assert archive.cells == 6 + 15 + 20
    seen = set()
    from itertools import combinations

    for size in (1, 2, 3):
        for combo in combinations(VOCAB, size):
            cell = archive.cell_of_key(tuple(sorted(combo)))
            assert archive.skills_of(cell) == tuple(sorted(combo))
            seen.add(cell)
    assert seen == set(range(archive.cells))
    assert archive.cell_of_key(()) == -1
    status, cells = archive.add(["x", "y"], ["", ["nothing-known"]], [1.0, 1.0])
    assert status.tolist() == [NOT_ADDED, NOT_ADDED] and cells.tolist() == [-1, -1] and len(archive) == 0
    archive.add(["z"], ["money, area"], [0.5])
    assert archive.data().column("skills").to_pylist() == ["area,money"]


def test_skillset_sparq_scale_is_sparse():
    archive = SkillSetArchive(vocabulary=[f"s{i}" for i in range(100)], max_skills=3)
    assert archive.cells == 166_750
    archive.add(["a"], [["s99", "s0", "s50"]], [1.0])
    assert archive.data().column("skills").to_pylist() == ["s0,s50,s99"]


def test_skillset_constructor_errors():
    with pytest.raises(ValueError, match="at least one skill"):
        SkillSetArchive(vocabulary=[])
    with pytest.raises(ValueError, match=r"vocabulary\[0\] must be a normalised skill name"):
        SkillSetArchive(vocabulary=["Money"])
    with pytest.raises(ValueError, match="max_skills must be >= 1"):
        SkillSetArchive(vocabulary=["a"], max_skills=0)
    with pytest.raises(ValueError, match=r"descriptors\[1\] must be"):
        SkillSetArchive(vocabulary=["a"]).add(["x", "y"], ["a", [3]], [1.0, 1.0])
