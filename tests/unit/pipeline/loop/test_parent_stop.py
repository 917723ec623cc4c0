"""`[generator] stop_at_parent`: the parent's problem as a stop string, so that an output
copying its parent ends there as a duplicate instead of writing a solution nobody reads."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from archives import load_archive
from pipeline.domains.math import MathDomain
from pipeline.engines import Completion, Sampling
from pipeline.engines.base import EngineStats, truncate_at_stop
from pipeline.loop.campaign import rederive_archive
from pipeline.loop.candidate import Parent
from pipeline.loop.generate import run_generation
from pipeline.loop.lifecycle import Rules
from pipeline.loop.operators import load_operators
from pipeline.prompts import Prompt
from pipeline.store.records import Status, problem_id
from pipeline.store.storage import RunDir
from tests.unit.pipeline.loop.test_variants import QUIET, make_config

COPIED = "repeats its parent's problem (generation stopped there)"
_PARENT = re.compile(r"Original problem: (.*?)\nOriginal solution:", re.S)


class CopyingEngine:
    """A batch-wise engine whose every other mutation copies its parent's problem (the
    prompt's last "Original problem:") and then writes a solution, as the embedded model
    does; the others are new problems. It cuts at stop strings and says "stop" there, as
    vLLM does. Solves answer 17 once in four."""

    def __init__(self) -> None:
        self.name = "copying"
        self.stats = EngineStats()
        self.mutations = 0
        self.solves = 0

    def complete(self, prompts: Sequence[Prompt], sampling: Sampling) -> list[list[Completion]]:
        out = []
        for p in prompts:
            if p.rstrip().endswith("Solution:"):
                texts = []
                for _ in range(sampling.n):
                    self.solves += 1
                    texts.append(" The answer is 17." if self.solves % 4 == 0 else " The answer is 5.")
            else:
                self.mutations += 1
                i = self.mutations
                problem = _PARENT.findall(p)[-1] if i % 2 else f"Shelf {i} has 12 books and gets 5 more. How many?"
                texts = [f" {problem}\nNew solution: 12 + 5 = 17. It has 17 books in all, as counted here. "
                         "The answer is 17."]
            row = []
            for t in texts:
                cut, stopped = truncate_at_stop(t, sampling.stop)
                row.append(Completion(cut, max(1, len(cut.split())), "stop" if stopped else "length"))
            out.append(row)
        return out

    def close(self) -> None:
        pass


def _run(tmp_path: Path, mode: str, **generator) -> list[dict]:
    cfg = make_config(tmp_path, steps=3, batch=6, run={"mode": mode}, generator=generator)
    run_generation(cfg, tmp_path / "run", engine=CopyingEngine(), **QUIET)
    run = RunDir(tmp_path / "run")
    cands = run.read_candidates()
    archive, _ = load_archive(run.archive_dir)
    assert archive == rederive_archive(archive, cands)
    return [r for r in cands.to_pylist() if r["step"] > 0]


def test_stream_stops_a_copy_of_its_parent_as_a_duplicate(tmp_path: Path):
    rows = _run(tmp_path, "stream")
    by_id = {r["id"]: r for r in RunDir(tmp_path / "run").read_candidates().to_pylist()}
    copies = [r for r in rows if r["reason"] == COPIED]
    assert len(copies) >= 6
    for r in copies:
        assert r["status"] == Status.DUPLICATE and r["problem"] is None and r["k"] == 0
        assert r["problem_id"] == problem_id(by_id[r["parent_id"]]["problem"])
        assert r["raw_output"].strip() == "" and r["gen_tokens"] <= 1  # nothing past the stop
    new = [r for r in rows if r["status"] == Status.OK]
    assert new and all(r["gen_tokens"] > 10 for r in new)


@pytest.mark.parametrize(("mode", "generator"), [("steps", {}), ("stream", {"stop_at_parent": False})])
def test_without_the_stop_a_copy_is_written_out_and_found_a_duplicate(tmp_path: Path, mode: str, generator: dict):
    # Steps mode sends a step's mutations in one call, with one sampling: no parent's stop.
    rows = _run(tmp_path, mode, **generator)
    assert not [r for r in rows if r["reason"] == COPIED]
    copies = [r for r in rows if r["status"] == Status.DUPLICATE]
    assert len(copies) >= 6
    assert all(r["reason"] == "problem text already in the run" and r["gen_tokens"] > 10 for r in copies)


def _rules(tmp_path: Path, **generator) -> Rules:
    cfg = make_config(tmp_path, generator=generator)
    return Rules(cfg, MathDomain(), load_operators(cfg), quality=lambda sr: 1 - sr, taken=lambda pid: False)


PARENT = Parent(id="p", problem="  What is 6 + 7?\n", solution="6 + 7 = 13. The answer is 13.", answer="13", depth=0)


def test_the_request_stops_at_the_parents_problem(tmp_path: Path):
    rules = _rules(tmp_path)
    own = rules.spec(PARENT).prompt.stop
    assert rules.mutation_request(PARENT).sampling.stop == (*own, "What is 6 + 7?")
    assert rules.mutation_request(PARENT, parent_stop=False).sampling.stop == own
    off = _rules(tmp_path / "off", stop_at_parent=False)
    assert off.mutation_request(PARENT).sampling.stop == own
    short = Parent(id="s", problem="2 + 2?", solution="4. The answer is 4.", answer="4", depth=0)
    assert rules.mutation_request(short).sampling.stop == own  # too short to be a problem's whole text


def test_a_stop_string_is_added_only_within_four(tmp_path: Path):
    rules = _rules(tmp_path)
    spec = rules.spec(PARENT)
    full = type(spec.prompt)(**{**vars(spec.prompt), "stop": ("a", "b", "c", "d")})
    assert rules.parent_stops(type(spec)(**{**vars(spec), "prompt": full}), PARENT) == ()


@pytest.mark.parametrize(("text", "finish", "parent_stop", "status"), [
    (" ", "stop", True, Status.DUPLICATE),
    ("<problem>", "stop", True, Status.DUPLICATE),
    (" ", "length", True, Status.UNPARSEABLE),  # cut by max_tokens, not by the stop
    (" ", None, True, Status.UNPARSEABLE),
    (" ", "stop", False, Status.UNPARSEABLE),  # sent without the parent's stop (steps mode)
    (" What", "stop", True, Status.UNPARSEABLE),  # something of its own before the stop
])
def test_only_an_output_ended_at_once_is_a_copy(tmp_path: Path, text, finish, parent_stop, status):
    rules = _rules(tmp_path)
    d = rules.parse(0, PARENT, Completion(text, 1, finish), set(), parent_stop)
    assert d.status == status
    if status == Status.DUPLICATE:
        assert d.reason == COPIED and d.problem_id == problem_id(PARENT.problem) and d.mutation is None
