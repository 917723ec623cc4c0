"""Re-scoring an archive with a new solver (between rounds, flows/rounds.py).

When the student changes, the solve rates that placed the elites are stale: a problem the
tuned model now always solves is no longer "hard but solvable". A re-scoring step re-solves
every generated elite with the campaign's current solver and commits each as a row of its
own (status `rescored`, `parent_id` = the elite it copies, the new k, solve rate and
quality). The archive after that step is the seeds plus the re-scored rows with quality > 0,
inserted in slot order (records.since_rescore), so problems that became too easy (or too
hard) lose their cells, and the archive property, archive = re-derivation from the
committed rows, still holds.

The functions here are pure; Campaign.rescore runs the solves and commits.
"""

from __future__ import annotations

import time
from dataclasses import fields, replace
from typing import Any

import pyarrow as pa

from archives import Archive
from pipeline.domains.base import Mutation
from pipeline.loop.candidate import PHASE_RESCORE, PHASE_SOLVE, Draft, Parent
from pipeline.loop.commit import attempt_rows, place
from pipeline.loop.lifecycle import Rules, run_solves
from pipeline.loop.population import rederive_archive
from pipeline.store.records import (
    CANDIDATES_SCHEMA,
    ArchiveOutcome,
    Candidate,
    Status,
    StepMetrics,
    candidate_id,
    now,
    to_table,
)
from pipeline.store.storage import crash_point

_FIELDS = [f.name for f in fields(Candidate)]


def elite_rows(archive: Archive, candidates: pa.Table) -> list[Candidate]:
    """The archive's generated elites (seeds are unscored and stay as they are), as their
    committed rows, in cell order."""
    data = archive.data()
    order = {cid: cell for cid, cell in zip(data.column("id").to_pylist(), data.column("cell").to_pylist(),
                                             strict=True)}
    rows = [r for r in candidates.filter(pa.compute.is_in(candidates["id"], pa.array(list(order), pa.string())))
            .to_pylist() if r["status"] in Status.SCORED]
    rows.sort(key=lambda r: order[r["id"]])
    return [Candidate(**{k: r.get(k) for k in _FIELDS}) for r in rows]


def elite_drafts(rows: list[Candidate]) -> list[Draft]:
    """A draft per elite row, ready for the solve phase (slot i = row i)."""
    return [Draft(slot=i, parent=Parent(r.id, r.problem or "", r.solution or "", r.answer or "", r.depth),
                  raw_output=r.raw_output or "", gen_tokens=0, status=Status.OK,
                  mutation=Mutation(r.problem or "", r.solution or "", r.answer or ""), problem_id=r.problem_id,
                  skills=tuple(r.skill.split(",")) if r.skill else None)
            for i, r in enumerate(rows)]


def rescored_row(row: Candidate, d: Draft, *, run_id: str, step: int, quality: float, solver: str,
                 created) -> Candidate:
    """The re-scored copy of elite `row` after draft `d`'s solves (its own id, this step)."""
    v, k = d.verdict, len(d.attempts)
    n_correct = sum(v.correct) if v else 0
    return replace(
        row, id=candidate_id(run_id, step, d.slot), step=step, slot=d.slot, parent_id=row.id,
        operator="rescore", status=Status.RESCORED, reason=None, k=k, n_correct=n_correct,
        solve_rate=n_correct / k if k else None, majority_answer=v.majority_answer if v else None,
        majority_share=v.majority_share if v else None, reference_agrees=v.reference_agrees if v else None,
        quality=quality if k else 0.0, cell=None, archive_outcome=ArchiveOutcome.INELIGIBLE,
        solver=solver if k else None, gen_tokens=0, solve_tokens=sum(t for _, t in d.attempts),
        verify_tokens=0, created_at=created, second_parent_id=None)


def place_rescored(archive: Archive, rows: list[Candidate]) -> list[Candidate]:
    """Each re-scored row's outcome in the re-derived `archive`: `new` where it holds its
    cell, else `not_added` (lost the cell to another) or `ineligible` (quality 0)."""
    held = set(archive.data().column("id").to_pylist())
    return [replace(r, archive_outcome=ArchiveOutcome.NEW if r.id in held else
                    ArchiveOutcome.NOT_ADDED if r.quality > 0 else ArchiveOutcome.INELIGIBLE) for r in rows]


def rescore_step(camp: Any) -> StepMetrics:
    """One step of `camp` (a Campaign) that re-solves every generated elite with the current
    solver and re-derives the archive from the re-scored rows. The verifier does not run
    again: the problems and references are unchanged."""
    assert camp.archive is not None
    step, started = camp.step + 1, time.perf_counter()
    before = camp.run.read_candidates(upto=camp.step)
    elites = elite_rows(camp.archive, before)
    camp.log(f"step {step}: re-scoring {len(elites)} elites with solver {camp.res.solver_name}")
    config = replace(camp.config, verifier=replace(camp.config.verifier, m=0))
    rules = Rules(config, camp.domain, camp.operators, camp.quality, camp.population.taken)
    drafts = run_solves(rules, camp.judge, step, elite_drafts(elites), camp.complete_for,
                        lambda st, phase: camp.request_seed(st, phase - PHASE_SOLVE + PHASE_RESCORE))
    solve_s = time.perf_counter() - started
    crash_point("rescore", step)
    created, solver = now(), camp.res.solver_name
    rows, attempts = [], []
    for row, d in zip(elites, drafts, strict=True):
        k = len(d.attempts)
        q = float(camp.quality(sum(d.verdict.correct) / k)) if k and d.verdict else 0.0
        new = rescored_row(row, d, run_id=camp.run_id, step=step, quality=q, solver=solver, created=created)
        rows.append(new)
        attempts.extend(attempt_rows(new, d, created, prompt_version=camp.rules.solve_prompt.version,
                                     solver=solver))
    rows = place(camp.archive, rows)
    table = to_table(rows, CANDIDATES_SCHEMA)
    camp.archive = rederive_archive(camp.archive, pa.concat_tables([before, table]))
    rows = place_rescored(camp.archive, rows)
    camp.population.remember(rows)
    camp.counters["rescored_steps"] = camp.counters.get("rescored_steps", 0) + 1
    return camp.commit_step(step, rows, attempts, 0.0, solve_s, started, [])
