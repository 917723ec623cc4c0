"""Committing a step: finished drafts become `Candidate` and `Attempt` rows, are placed in
and inserted into the archive, and the step's rows, metrics, operator metrics, archive
snapshot and checkpoint are written atomically (pipeline/store/storage.py's `commit_step`).

Pure functions of their arguments, but for `commit`, which writes the run directory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from archives import AddStatus, Archive
from pipeline.config import Config
from pipeline.loop.candidate import Draft, archive_eligible
from pipeline.loop.operators import OperatorSpec
from pipeline.placement.archiving import descriptors_for, has_descriptor
from pipeline.store.records import (
    ATTEMPTS_SCHEMA,
    CANDIDATES_SCHEMA,
    METRICS_SCHEMA,
    OPERATORS_SCHEMA,
    ArchiveOutcome,
    Attempt,
    Candidate,
    OperatorMetrics,
    Status,
    StepMetrics,
    candidate_id,
    now,
    problem_id,
    to_table,
)
from pipeline.store.seeds import Seed
from pipeline.store.storage import Checkpoint, RunDir

OUTCOME = {AddStatus.NEW: ArchiveOutcome.NEW, AddStatus.IMPROVE_EXISTING: ArchiveOutcome.IMPROVE,
           AddStatus.NOT_ADDED: ArchiveOutcome.NOT_ADDED}


def candidate_row(d: Draft, *, run_id: str, step: int, embedding: np.ndarray | None, created,
                  quality: Callable[[float], float], spec: OperatorSpec, engine: str,
                  threshold: float, solver: str | None = None) -> Candidate:
    """A finished draft as its committed row: solve rate, quality, depth, validity flag.
    `spec` is the operator of the draft's slot, `engine` the name of the engine that
    generated it, `solver` of the one that solved it (default `engine`), `threshold` the
    share of a solver majority that disputes it."""
    v, m = d.verdict, d.mutation
    k = len(d.attempts)
    n_correct = sum(v.correct) if v else 0
    sr = n_correct / k if k else None
    q = float(quality(sr)) if sr is not None and d.status == Status.OK else 0.0
    val, ver = d.validity, d.verification
    # A crossover child descends from both parents; a niche example is no parent.
    depth = max(d.parent.depth, d.parent.second.depth if spec.role == "crossover" and d.parent.second
                else 0) + 1
    # A confident solver majority against the reference answer: likely an invalid
    # problem or a wrong reference (SPARQ's "high quality but invalid").
    disputed = None if v is None else bool(v.reference_agrees is False and v.majority_share >= threshold)
    return Candidate(
        id=candidate_id(run_id, step, d.slot), run_id=run_id, step=step, slot=d.slot,
        parent_id=d.parent.id, depth=depth, operator=spec.name,
        problem_id=d.problem_id, problem=m.problem if m else None,
        solution=m.solution if m else None, answer=m.answer if m else None,
        raw_output=d.raw_output, status=d.status,
        reason=d.reason or ("verification timed out" if v and v.timed_out else None),
        k=k, n_correct=n_correct, solve_rate=sr,
        majority_answer=v.majority_answer if v else None,
        majority_share=v.majority_share if v else None,
        reference_agrees=v.reference_agrees if v else None, quality=q, cell=None,
        archive_outcome=ArchiveOutcome.INELIGIBLE, embedding=embedding,
        skill=",".join(d.skills) if d.skills is not None else None,
        prompt_version=spec.prompt.version, generator=engine,
        solver=(solver or engine) if k else None, gen_tokens=d.gen_tokens,
        solve_tokens=sum(t for _, t in d.attempts), created_at=created,
        second_parent_id=d.parent.second.id if d.parent.second else None, target=d.parent.target,
        disputed=disputed, valid=None if val is None else val.valid,
        invalid_checks=",".join(val.failed) if val is not None and val.failed else None,
        validity_reason=None if val is None else val.reason,
        verifier_answer=ver.majority_answer if ver else None,
        verifier_share=ver.majority_share if ver else None,
        verifier_agrees=ver.reference_agrees if ver else None, verify_tokens=d.verify_tokens,
        repair=d.repair)


def attempt_rows(row: Candidate, d: Draft, created, *, prompt_version: str, solver: str) -> list[Attempt]:
    v = d.verdict
    return [Attempt(candidate_id=row.id, run_id=row.run_id, step=row.step, attempt=i, text=text,
                    extracted=v.extracted[i] if v else None, correct=bool(v.correct[i]) if v else False,
                    tokens=tokens, prompt_version=prompt_version, solver=solver, created_at=created)
            for i, (text, tokens) in enumerate(d.attempts)]


def _descriptors(archive: Archive, rows: list[Candidate], idx: list[int]) -> object:
    return descriptors_for(archive, [rows[i].embedding for i in idx], [rows[i].skill for i in idx])


def place(archive: Archive, rows: list[Candidate]) -> list[Candidate]:
    """Every placeable row gets the cell it falls in before this step's insertions
    (None: no niche yet)."""
    idx = [i for i, r in enumerate(rows) if has_descriptor(archive, r.embedding, r.skill)]
    if idx:
        for i, c in zip(idx, archive.index_of(_descriptors(archive, rows, idx)).tolist(), strict=True):
            rows[i] = replace(rows[i], cell=c if c >= 0 else None)
    return rows


def insert(archive: Archive, step: int, rows: list[Candidate]) -> list[Candidate]:
    """The eligible rows, inserted in slot order, get their outcome and the cell they
    competed in (for the novelty archive, possibly a niche they founded)."""
    elig = [i for i, r in enumerate(rows) if archive_eligible(r.status, r.quality)]
    if elig:
        statuses, cells = archive.add([rows[i].id for i in elig], _descriptors(archive, rows, elig),
                                      [rows[i].quality for i in elig], steps=[step] * len(elig))
        for i, st, c in zip(elig, statuses.tolist(), cells.tolist(), strict=True):
            rows[i] = replace(rows[i], archive_outcome=OUTCOME[AddStatus(st)], cell=c if c >= 0 else None)
    return rows


def step_metrics(archive: Archive, step: int, rows: list[Candidate], attempts: list[Attempt], *, lo: float,
                 hi: float, mutate_s: float, solve_s: float, seconds: float) -> StepMetrics:
    st = archive.stats
    # A re-scoring step's rows are copies of elites, not new candidates (their attempts
    # and tokens count: they were spent).
    made = [r for r in rows if r.status != Status.RESCORED]
    return StepMetrics(
        step=step, candidates=len(made),
        ok=sum(r.status == Status.OK for r in rows),
        unparseable=sum(r.status == Status.UNPARSEABLE for r in rows),
        duplicate=sum(r.status == Status.DUPLICATE for r in rows),
        in_band=sum(r.solve_rate is not None and lo <= r.solve_rate <= hi
                    and r.status == Status.OK for r in rows),
        accepted=sum(r.archive_outcome in (ArchiveOutcome.NEW, ArchiveOutcome.IMPROVE)
                     and r.status == Status.OK for r in rows),
        new_cells=sum(r.archive_outcome == ArchiveOutcome.NEW and r.status == Status.OK
                      for r in rows),
        num_elites=st.num_elites, coverage=st.coverage, qd_score=st.qd_score,
        attempts=len(attempts), gen_tokens=sum(r.gen_tokens for r in rows),
        solve_tokens=sum(r.solve_tokens for r in rows), mutate_seconds=mutate_s,
        solve_seconds=solve_s, seconds=seconds, created_at=now(),
        valid=sum(r.valid is True for r in made if r.status != Status.SEED),
        invalid=sum(r.valid is False for r in made if r.status != Status.SEED),
        verify_tokens=sum(r.verify_tokens or 0 for r in rows),
        failed=sum(r.status == Status.FAILED for r in rows),
        repaired=sum(r.repair is not None for r in made))


def add_counters(counters: dict[str, float], step: int, metrics: StepMetrics) -> None:
    """The run's running totals (the checkpoint's counters) after a step."""
    generated = metrics.candidates if step > 0 else 0  # step 0 holds the seeds
    for key, value in (("candidates", generated), ("accepted", metrics.accepted),
                       ("attempts", metrics.attempts), ("gen_tokens", metrics.gen_tokens),
                       ("solve_tokens", metrics.solve_tokens), ("verify_tokens", metrics.verify_tokens or 0),
                       ("valid", metrics.valid or 0), ("invalid", metrics.invalid or 0),
                       ("failed", metrics.failed or 0), ("repaired", metrics.repaired or 0),
                       ("seconds", metrics.seconds)):
        counters[key] = counters.get(key, 0) + value


def commit(run: RunDir, run_id: str, step: int, rows: list[Candidate], attempts: list[Attempt],
           metrics: StepMetrics, operators: list[OperatorMetrics] | None, *, archive: Archive,
           rng: np.random.Generator, counters: dict[str, float]) -> None:
    """Write the step (rows, metrics, operator metrics, archive snapshot, then the
    checkpoint with `rng`'s state and `counters`, which are updated here first)."""
    add_counters(counters, step, metrics)
    ckpt = Checkpoint(run_id=run_id, step=step, rng_state=rng.bit_generator.state, counters=counters)
    run.commit_step(
        step, to_table(rows, CANDIDATES_SCHEMA), to_table(attempts, ATTEMPTS_SCHEMA),
        to_table([metrics], METRICS_SCHEMA), ckpt,
        save_archive=lambda d: archive.save(d, extra={"step": step, "run_id": run_id}),
        operator_rows=None if operators is None else to_table(operators, OPERATORS_SCHEMA))


def seed_rows(run_id: str, seeds: list[Seed], emb: np.ndarray) -> list[Candidate]:
    """Step 0's rows: the seeds, with their embeddings, before the archive places them."""
    created = now()
    return [Candidate(
        id=candidate_id(run_id, 0, i), run_id=run_id, step=0, slot=i,
        parent_id=None, depth=0, operator="seed", problem_id=problem_id(s.problem),
        problem=s.problem, solution=s.solution, answer=s.answer, raw_output=None,
        status=Status.SEED, reason=None, k=0, n_correct=0, solve_rate=None,
        majority_answer=None, majority_share=None, reference_agrees=None, quality=0.0,
        cell=None, archive_outcome=ArchiveOutcome.NOT_ADDED, embedding=e, skill=s.skill,
        prompt_version=None, generator=None, solver=None, gen_tokens=0, solve_tokens=0,
        created_at=created) for i, (s, e) in enumerate(zip(seeds, emb, strict=True))]


def run_summary(run: RunDir, archive: Archive, counters: dict[str, float], config: Config, engine: str,
                step: int) -> dict[str, float | int | str]:
    """The campaign's summary (what `sparq generate` prints and the flow publishes)."""
    st, c = archive.stats, counters
    return {
        "run_dir": str(run.path), "engine": engine,
        "steps": step, "elites": st.num_elites,
        "cells": st.num_cells, "coverage": round(st.coverage, 4),
        "qd_score": round(st.qd_score, 4),
        "candidates": int(c.get("candidates", 0)),
        "accepted": int(c.get("accepted", 0)),
        "attempts": int(c.get("attempts", 0)),
        "tokens": int(c.get("gen_tokens", 0) + c.get("solve_tokens", 0) + c.get("verify_tokens", 0)),
        "verify_tokens": int(c.get("verify_tokens", 0)),
        "gate": config.validity.gate,
        "valid": int(c.get("valid", 0)),
        "invalid": int(c.get("invalid", 0)),
        "failed": int(c.get("failed", 0)),
        "repaired": int(c.get("repaired", 0)),  # valid after [validity] repair corrected them
        # Of the generated candidates the checks could judge (parsed, not duplicates).
        "valid_share": round(c.get("valid", 0) / max(1, c.get("valid", 0) + c.get("invalid", 0)), 4),
        "seconds": round(c.get("seconds", 0.0), 1),
    }
