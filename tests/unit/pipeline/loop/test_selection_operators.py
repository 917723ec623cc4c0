"""Pure pieces of selection, operators, niche targets and skill labels, on small inputs."""

from __future__ import annotations

import numpy as np
import pytest

from archives import CVTArchive, NoveltyArchive, SkillSetArchive
from pipeline.config import load_config
from pipeline.loop.operators import Counts, OperatorSpec, choose_operators, load_operators
from pipeline.loop.selection import PoolRow, select_parent_ids, working_set
from pipeline.placement.labels import label_examples, parse_skills
from pipeline.placement.niche import NicheView, skill_neighbours, target_text
from pipeline.prompts import load_prompt


def rows() -> list[PoolRow]:
    # Seeds s0..s5 (quality 0) in niches 0, 0, 1, 1, 2, 2; generated rows g* with quality.
    out = [PoolRow(f"s{i}", 0.0, i // 2, True) for i in range(6)]
    out += [PoolRow("g1", 0.9, 0, False), PoolRow("g2", 0.5, 0, False), PoolRow("g3", 0.5, 3, False, disputed=True),
            PoolRow("g4", 0.2, None, False)]
    return out


def test_working_sets_of_each_variant():
    r = rows()
    ids = lambda ws: [x.id for x in ws]  # noqa: E731
    assert ids(working_set(r, "static_uniform", working_set=2, niche_size=1)) == [f"s{i}" for i in range(6)]
    assert ids(working_set(r, "dynamic_uniform", working_set=3, niche_size=1)) == ["g1", "g2", "g3"]
    # top-1 per niche: niche 0 -> g1, 3 -> g3, None -> g4, 1 -> s2, 2 -> s4 (ties by id)
    assert ids(working_set(r, "dynamic_diverse", working_set=1, niche_size=1)) == ["g1", "g3", "g4", "s2", "s4"]
    assert len(working_set(r, "dynamic_diverse", working_set=1, niche_size=2)) == 8  # niche 0 keeps g1, g2
    with pytest.raises(ValueError, match="selection must be one of"):
        working_set(r, "archive", working_set=1, niche_size=1)


def test_diverse_draws_are_uniform_over_niches_not_rows():
    # Niche 0 has 4 seeds, niche 1 one: static_diverse picks niche 1 half the time.
    r = [PoolRow(f"a{i}", 0.0, 0, True) for i in range(4)] + [PoolRow("b", 0.0, 1, True)]
    picks = select_parent_ids("static_diverse", r, [], 4000, np.random.default_rng(0), working_set_size=1,
                              niche_size=1, exclude_disputed=False)
    assert abs(picks.count("b") / 4000 - 0.5) < 0.03
    uniform = select_parent_ids("static_uniform", r, [], 4000, np.random.default_rng(0), working_set_size=1,
                                niche_size=1, exclude_disputed=False)
    assert abs(uniform.count("b") / 4000 - 0.2) < 0.03


def test_archive_variant_draws_like_sample_elites():
    rng = np.random.default_rng(3)
    cents = rng.standard_normal((10, 4))
    archive = CVTArchive(centroids=cents / np.linalg.norm(cents, axis=1, keepdims=True))
    archive.add([f"e{i}" for i in range(30)], rng.standard_normal((30, 4)), rng.random(30))
    data = archive.data()
    elites = list(zip(data["cell"].to_pylist(), data["id"].to_pylist(), strict=True))
    ids = select_parent_ids("archive", [], elites, 25, np.random.default_rng(7), working_set_size=1,
                            niche_size=1, exclude_disputed=False)
    assert ids == [e.id for e in archive.sample_elites(25, np.random.default_rng(7))]


def test_exclusion_and_its_fallback():
    r = rows()
    kw = {"working_set_size": 3, "niche_size": 1}
    picks = select_parent_ids("dynamic_uniform", r, [], 300, np.random.default_rng(0), exclude_disputed=True, **kw)
    assert set(picks) == {"g1", "g2", "g4"}
    only_bad = [PoolRow("x", 0.5, 0, False, disputed=True)]
    assert select_parent_ids("dynamic_uniform", only_bad, [], 2, np.random.default_rng(0), exclude_disputed=True,
                             **kw) == ["x", "x"]  # nothing else to draw from: the flag is ignored
    elites = [(0, "g3"), (1, "s2")]
    assert set(select_parent_ids("archive", r, elites, 50, np.random.default_rng(0), exclude_disputed=True,
                                 **kw)) == {"s2"}


def test_selection_is_reproducible_from_the_rng_state():
    rng = np.random.default_rng(11)
    state = rng.bit_generator.state
    a = select_parent_ids("dynamic_diverse", rows(), [], 20, rng, working_set_size=1, niche_size=2,
                          exclude_disputed=False)
    rng2 = np.random.default_rng(0)
    rng2.bit_generator.state = state
    assert a == select_parent_ids("dynamic_diverse", rows(), [], 20, rng2, working_set_size=1, niche_size=2,
                                  exclude_disputed=False)


# ---------------------------------------------------------------- operators


def specs(*roles: str) -> list[OperatorSpec]:
    prompt = load_prompt("mutate_fewshot")
    return [OperatorSpec(r, r, 1.0, prompt) for r in roles]


def test_single_operator_draws_nothing_from_the_rng():
    rng = np.random.default_rng(0)
    before = rng.bit_generator.state
    assert [s.role for s in choose_operators(specs("mutate"), {}, 5, rng, bandit="thompson")] == ["mutate"] * 5
    assert rng.bit_generator.state == before


def test_weights_and_bandits():
    three = specs("a", "b", "c")
    three[2] = OperatorSpec("c", "c", 0.0001, three[2].prompt)
    picks = [s.name for s in choose_operators(three, {}, 3000, np.random.default_rng(0), bandit="none")]
    assert abs(picks.count("a") / 3000 - 0.5) < 0.04 and picks.count("c") < 10
    counts = {"a": Counts(100, 50), "b": Counts(100, 5)}
    # ucb1: the untried arm first, then by mean + bonus, pending pulls counted
    ucb = [s.name for s in choose_operators(specs("a", "b", "c"), counts, 4, np.random.default_rng(0),
                                            bandit="ucb1", ucb_c=0.1)]
    assert ucb[0] == "c" and ucb.count("a") >= 2
    ts = [s.name for s in choose_operators(specs("a", "b"), counts, 1000, np.random.default_rng(0),
                                           bandit="thompson")]
    assert ts.count("a") > 950
    with pytest.raises(ValueError, match="bandit must be one of"):
        choose_operators(specs("a", "b"), {}, 1, np.random.default_rng(0), bandit="greedy")


def test_load_operators_names_and_prompts():
    cfg = load_config().replace("operators", harder=1.0, crossover=2.0)
    got = [(s.role, s.name, s.prompt.version) for s in load_operators(cfg)]
    assert got == [("mutate", "sparq_mutate", "mutate-fewshot-v3"), ("harder", "harder", "harder-fewshot-v1"),
                   ("crossover", "crossover", "crossover-fewshot-v1")]


# ---------------------------------------------------------------- niche targets


def test_cvt_target_is_a_near_empty_cell_with_a_neighbour_example():
    eye = np.eye(4, dtype=np.float32)
    # Cells: +e0, +e1, a unit vector near +e0 (cell 2), -e0 (cell 3) ... plus +e2, +e3.
    near = np.array([0.9, 0.0, np.sqrt(1 - 0.81), 0.0], dtype=np.float32)
    archive = CVTArchive(centroids=np.stack([eye[0], eye[1], near, -eye[0], eye[2], eye[3]]))
    archive.add(["p", "q"], np.stack([eye[0], eye[1]]), [0.5, 0.5])
    view = NicheView(archive)
    targets = {view.target(0, np.random.default_rng(s)).label for s in range(30)}
    assert "cell:2" in targets and "cell:3" not in targets  # the 3 nearest empty cells only
    t = view.target(0, np.random.default_rng(0))
    assert t.example_id == "q"  # the parent's own cell is never the example


def test_novelty_target_shows_a_neighbouring_elite():
    archive = NoveltyArchive(dim=3, radius=0.5, capacity=10)
    archive.add(["a", "b"], np.array([[1.0, 0, 0], [0, 1.0, 0]]), [0.1, 0.2])
    t = NicheView(archive).target(0, np.random.default_rng(0))
    assert (t.label, t.example_id) == ("niche:1", "b")
    assert NicheView(archive.new_empty()).target(None, np.random.default_rng(0)).example_id is None


def test_skill_neighbours_and_targets():
    archive = SkillSetArchive(vocabulary=("money", "area", "ratios"), max_skills=2)
    assert skill_neighbours(archive, ("money",)) == [("area",), ("ratios",), ("area", "money"),
                                                     ("money", "ratios")]
    assert skill_neighbours(archive, ("area", "money")) == [("money", "ratios"), ("area", "ratios")]  # by cell
    archive.add(["x", "y"], ["money", "area, money"], [0.0, 0.0])
    cell = archive.cell_of_key(("money",))
    labels = {NicheView(archive).target(cell, np.random.default_rng(s)).label for s in range(30)}
    assert labels == {"skills:area", "skills:ratios", "skills:money,ratios"}  # unoccupied neighbours only
    t = NicheView(archive).target(cell, np.random.default_rng(0))
    assert target_text(t, None).startswith("a problem that uses the skills ")
    assert target_text(t.__class__("cell:1", "e"), "What is 2+2?") == 'a problem like "What is 2+2?"'


# ---------------------------------------------------------------- labels


@pytest.mark.parametrize(("raw", "prefix", "want"), [
    (" money, Percentages.\nProblem: x", "Skills:", ["money", "percentages"]),
    ("<skills>linear equations,area-perimeter</skills>", "", ["linear_equations", "area_perimeter"]),
    ("I think Skills: ratios", "", ["ratios"]),
    ("no labels at all", "", []),
    ("", "Skills:", []),
])
def test_parse_skills(raw: str, prefix: str, want: list[str]):
    assert parse_skills(raw, prefix) == want


def test_label_examples_use_the_vocabulary():
    seeds = [("p1", "s1", "money"), ("p2", "s2", "area"), ("p3", "s3", "money"), ("p4", "s4", "unknown")]
    text = label_examples(seeds, ("money", "area"), max_skills=3)
    assert text == "Problem: p1\nSolution: s1\nSkills: money\n\nProblem: p2\nSolution: s2\nSkills: area\n\n"
