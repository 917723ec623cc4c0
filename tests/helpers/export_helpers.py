"""Synthetic run directories with the real schemas, and a deterministic stand-in embedder.

`fake_embed` is a bag of digit-normalised tokens hashed into 256 dimensions: the same
words in any order and with any numbers give cosine 1, different words give a low cosine.
Synthetic runs store `fake_embed(problem)` as their embedding, so the export's
decontamination (given `embed=fake_embed`) compares vectors of one embedder, as it must.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from filters.decontam import ngram_tokens
from pipeline.store.records import (
    ATTEMPTS_SCHEMA,
    CANDIDATES_SCHEMA,
    ArchiveOutcome,
    Attempt,
    Candidate,
    candidate_id,
    problem_id,
    to_table,
)
from pipeline.store.storage import Checkpoint, atomic_write_bytes, atomic_write_table, shard_name

DIM = 256
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def fake_embed(texts: list[str]) -> np.ndarray:
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    for i, t in enumerate(texts):
        for tok in ngram_tokens(t):
            out[i, int(hashlib.md5(tok.encode()).hexdigest(), 16) % DIM] += 1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms == 0, 1.0, norms)


def cand(run_id: str, step: int, slot: int, problem: str | None, *, status: str = "ok", sr: float | None = 0.5,
         agrees: bool | None = True, quality: float | None = None, cell: int | None = 0, k: int = 4,
         solution: str = "Work it out. The answer is 7.", answer: str = "7",
         embedding: np.ndarray | None = None) -> Candidate:
    emb = fake_embed([problem])[0] if problem is not None and embedding is None else embedding
    q = quality if quality is not None else (1 - sr if sr is not None and 0.1 <= sr <= 0.9 else 0.0)
    return Candidate(
        id=candidate_id(run_id, step, slot), run_id=run_id, step=step, slot=slot, parent_id=None, depth=1,
        operator="sparq_mutate", problem_id=problem_id(problem) if problem else None, problem=problem,
        solution=solution if problem else None, answer=answer if problem else None, raw_output="raw",
        status=status, reason=None, k=k if sr is not None else 0,
        n_correct=round((sr or 0) * k), solve_rate=sr, majority_answer=answer if agrees else "3",
        majority_share=0.75 if agrees is not None else None, reference_agrees=agrees, quality=q, cell=cell,
        archive_outcome=ArchiveOutcome.NEW, embedding=None if emb is None else [float(x) for x in emb],
        skill=None, prompt_version="v", generator="g", solver="s", gen_tokens=1, solve_tokens=1, created_at=T0)


def attempts_for(c: Candidate) -> list[Attempt]:
    """k attempts, the first n_correct correct (text ends with the reference answer)."""
    return [Attempt(candidate_id=c.id, run_id=c.run_id, step=c.step, attempt=i,
                    text=f" Attempt {i} of {c.id}. The answer is {c.answer if i < c.n_correct else 3}.",
                    extracted=c.answer if i < c.n_correct else "3", correct=i < c.n_correct, tokens=5,
                    prompt_version="v", solver="s", created_at=T0) for i in range(c.k)]


def write_run(path: Path, steps: list[list[Candidate]], *, embedder: str = "embedded",
              centroids: np.ndarray | None = None) -> Path:
    """Committed shards for steps 0..len(steps)-1 (slots renumbered in order) and a checkpoint."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "candidates").mkdir(exist_ok=True)
    (path / "attempts").mkdir(exist_ok=True)
    run_id = path.name
    for step, rows in enumerate(steps):
        rows = [replace(r, run_id=run_id, step=step, slot=i, id=candidate_id(run_id, step, i))
                for i, r in enumerate(rows)]
        atomic_write_table(path / "candidates" / shard_name(step), to_table(rows, CANDIDATES_SCHEMA))
        atts = [a for r in rows for a in attempts_for(r)]
        atomic_write_table(path / "attempts" / shard_name(step), to_table(atts, ATTEMPTS_SCHEMA))
    (path / "config.toml").write_text(f'[archive]\nembedder = "{embedder}"\n')
    if centroids is not None:
        (path / "archive").mkdir(exist_ok=True)
        np.save(path / "archive" / "centroids.npy", centroids)
    ckpt = Checkpoint(run_id=run_id, step=len(steps) - 1, rng_state={})
    atomic_write_bytes(path / "checkpoint.json", ckpt.to_json().encode())
    return path
