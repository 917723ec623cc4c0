"""Typed records and the one pyarrow schema of each run-directory table.

Every table written under a run directory is declared here, with a format version
stored in the Parquet schema metadata, so readers can refuse files they do not know.

Tables:
- candidates: one row per generated candidate (and one per seed, at step 0), accepted
  or not, with its lineage, solve-rate statistics, quality, cell and embedding.
- attempts: one row per solver attempt (text, extracted answer, correct).
- metrics: one row per committed step.
- operators: one row per committed step and mutation operator used in it (yield per operator).

Columns added after format version 1 was first written (second_parent_id, target, disputed)
sit at the end of the candidates schema and are nullable; readers fill them with nulls
for older shards (pipeline.store.storage.RunDir.read_candidates). Format version 2 added the
validity columns (valid, invalid_checks, validity_reason, verifier_*, verify_tokens) and the
`invalid` status, and the metrics' valid / invalid / verify_tokens. Format version 3 added
the `failed` status and the metrics' `failed` count. Format version 4 added the candidates'
`repair` (what `[validity] repair` corrected in the reference) and the metrics' `repaired`
count. Older files are still read
(their validity columns are null: never checked; their failed count null: none could
fail; their repair and repaired null: nothing repaired).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa

FORMAT_VERSION = "4"
READABLE_VERSIONS = ("1", "2", "3", "4")


def _schema(name: str, fields: list[pa.Field]) -> pa.Schema:
    return pa.schema(fields, metadata={"sparq.table": name, "sparq.format_version": FORMAT_VERSION})


class Status:
    """Candidate statuses. A parse failure or a duplicate is a status, never a dropped row."""

    SEED = "seed"
    OK = "ok"
    UNPARSEABLE = "unparseable"
    DUPLICATE = "duplicate"
    # Rejected by the validity gate ([validity] gate = "archive"): committed with the
    # reasons, never archived, never a parent.
    INVALID = "invalid"
    # A request of the candidate was refused for a reason of its own (prompt longer than the
    # context, rejected by the server): committed with the reason, never solved further,
    # never archived; the run goes on (pipeline.engines.RequestError).
    FAILED = "failed"
    # An elite re-solved by a new solver between rounds (pipeline/loop/rescore.py): a copy of
    # the elite's row (`parent_id`) with the new solve rate and quality; it replaces the
    # elite in the archive and as a parent.
    RESCORED = "rescored"
    ALL = (SEED, OK, UNPARSEABLE, DUPLICATE, INVALID, FAILED, RESCORED)
    # Statuses of generated rows that can hold a cell (quality > 0).
    SCORED = (OK, RESCORED)
    # Statuses that own their problem id: a later copy of the problem is a duplicate.
    OWNERS = (SEED, OK, INVALID, FAILED)


class ArchiveOutcome:
    """What the archive did with a candidate (mirrors archives.AddStatus, plus ineligible)."""

    NEW = "new"
    IMPROVE = "improve"
    NOT_ADDED = "not_added"
    INELIGIBLE = "ineligible"  # not inserted at all: bad status or quality 0


CANDIDATES_SCHEMA = _schema(
    "candidates",
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("step", pa.int64(), nullable=False),
        pa.field("slot", pa.int64(), nullable=False),
        pa.field("parent_id", pa.string()),
        pa.field("depth", pa.int64(), nullable=False),
        pa.field("operator", pa.string(), nullable=False),
        pa.field("problem_id", pa.string()),
        pa.field("problem", pa.string()),
        pa.field("solution", pa.string()),
        pa.field("answer", pa.string()),
        pa.field("raw_output", pa.string()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("reason", pa.string()),
        pa.field("k", pa.int64(), nullable=False),
        pa.field("n_correct", pa.int64(), nullable=False),
        pa.field("solve_rate", pa.float64()),
        pa.field("majority_answer", pa.string()),
        pa.field("majority_share", pa.float64()),
        pa.field("reference_agrees", pa.bool_()),
        pa.field("quality", pa.float64(), nullable=False),
        pa.field("cell", pa.int64()),
        pa.field("archive_outcome", pa.string(), nullable=False),
        pa.field("embedding", pa.list_(pa.float32())),
        pa.field("skill", pa.string()),
        pa.field("prompt_version", pa.string()),
        pa.field("generator", pa.string()),
        pa.field("solver", pa.string()),
        pa.field("gen_tokens", pa.int64(), nullable=False),
        pa.field("solve_tokens", pa.int64(), nullable=False),
        pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
        # crossover: the second parent; niche operator: the example row shown to the model
        pa.field("second_parent_id", pa.string()),
        # niche operator: the target niche ("cell:17", "niche:4" or "skills:a,b")
        pa.field("target", pa.string()),
        # solved, and a solver majority with share >= validity.threshold disagrees with the
        # reference answer (None: not solved)
        pa.field("disputed", pa.bool_()),
        # format 2: the validity checks (pipeline/domains/math/validity.py) and the verifier. valid: None
        # = not checked (no parsed problem, or a version 1 row); invalid_checks: the failed
        # checks' names, comma-separated ("verifier" for the verifier); validity_reason: why.
        pa.field("valid", pa.bool_()),
        pa.field("invalid_checks", pa.string()),
        pa.field("validity_reason", pa.string()),
        pa.field("verifier_answer", pa.string()),  # the verifier's majority answer
        pa.field("verifier_share", pa.float64()),  # its share of the m attempts
        pa.field("verifier_agrees", pa.bool_()),  # it equals the reference (None: not verified)
        pa.field("verify_tokens", pa.int64()),
        # format 4: what [validity] repair corrected ("12 * 15 = 160 was false: 160 -> 180
        # in the solution and the answer"); problem, solution and answer are the repaired
        # ones, raw_output the generator's own text. None: nothing repaired.
        pa.field("repair", pa.string()),
    ],
)

ATTEMPTS_SCHEMA = _schema(
    "attempts",
    [
        pa.field("candidate_id", pa.string(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("step", pa.int64(), nullable=False),
        pa.field("attempt", pa.int64(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("extracted", pa.string()),
        pa.field("correct", pa.bool_(), nullable=False),
        pa.field("tokens", pa.int64(), nullable=False),
        pa.field("prompt_version", pa.string(), nullable=False),
        pa.field("solver", pa.string(), nullable=False),
        pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ],
)

METRICS_SCHEMA = _schema(
    "metrics",
    [
        pa.field("step", pa.int64(), nullable=False),
        pa.field("candidates", pa.int64(), nullable=False),
        pa.field("ok", pa.int64(), nullable=False),
        pa.field("unparseable", pa.int64(), nullable=False),
        pa.field("duplicate", pa.int64(), nullable=False),
        pa.field("in_band", pa.int64(), nullable=False),
        pa.field("accepted", pa.int64(), nullable=False),
        pa.field("new_cells", pa.int64(), nullable=False),
        pa.field("num_elites", pa.int64(), nullable=False),
        pa.field("coverage", pa.float64(), nullable=False),
        pa.field("qd_score", pa.float64(), nullable=False),
        pa.field("attempts", pa.int64(), nullable=False),
        pa.field("gen_tokens", pa.int64(), nullable=False),
        pa.field("solve_tokens", pa.int64(), nullable=False),
        pa.field("mutate_seconds", pa.float64(), nullable=False),
        pa.field("solve_seconds", pa.float64(), nullable=False),
        pa.field("seconds", pa.float64(), nullable=False),
        pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
        # format 2 (null in older runs): generated candidates that passed / failed validity
        pa.field("valid", pa.int64()),
        pa.field("invalid", pa.int64()),
        pa.field("verify_tokens", pa.int64()),
        # format 3 (null in older runs): candidates whose request was refused (status failed)
        pa.field("failed", pa.int64()),
        # format 4: candidates whose reference [validity] repair corrected (counted in valid)
        pa.field("repaired", pa.int64()),
    ],
)

OPERATORS_SCHEMA = _schema(
    "operators",
    [
        pa.field("step", pa.int64(), nullable=False),
        pa.field("operator", pa.string(), nullable=False),
        pa.field("attempts", pa.int64(), nullable=False),  # candidates it generated
        pa.field("ok", pa.int64(), nullable=False),
        pa.field("in_band", pa.int64(), nullable=False),
        pa.field("archived", pa.int64(), nullable=False),  # new or improved an elite
        pa.field("disputed", pa.int64(), nullable=False),
        pa.field("archive_yield", pa.float64(), nullable=False),  # archived / attempts
        pa.field("gen_tokens", pa.int64(), nullable=False),
        pa.field("solve_tokens", pa.int64(), nullable=False),
        pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ],
)


@dataclass(frozen=True)
class Candidate:
    """One row of the candidates table (field names and order match CANDIDATES_SCHEMA)."""

    id: str
    run_id: str
    step: int
    slot: int
    parent_id: str | None
    depth: int
    operator: str
    problem_id: str | None
    problem: str | None
    solution: str | None
    answer: str | None
    raw_output: str | None
    status: str
    reason: str | None
    k: int
    n_correct: int
    solve_rate: float | None
    majority_answer: str | None
    majority_share: float | None
    reference_agrees: bool | None
    quality: float
    cell: int | None
    archive_outcome: str
    embedding: Sequence[float] | None
    skill: str | None
    prompt_version: str | None
    generator: str | None
    solver: str | None
    gen_tokens: int
    solve_tokens: int
    created_at: datetime
    second_parent_id: str | None = None
    target: str | None = None
    disputed: bool | None = None
    valid: bool | None = None
    invalid_checks: str | None = None
    validity_reason: str | None = None
    verifier_answer: str | None = None
    verifier_share: float | None = None
    verifier_agrees: bool | None = None
    verify_tokens: int | None = 0
    repair: str | None = None


@dataclass(frozen=True)
class Attempt:
    """One row of the attempts table."""

    candidate_id: str
    run_id: str
    step: int
    attempt: int
    text: str
    extracted: str | None
    correct: bool
    tokens: int
    prompt_version: str
    solver: str
    created_at: datetime


@dataclass(frozen=True)
class StepMetrics:
    """One row of the metrics table."""

    step: int
    candidates: int
    ok: int
    unparseable: int
    duplicate: int
    in_band: int
    accepted: int
    new_cells: int
    num_elites: int
    coverage: float
    qd_score: float
    attempts: int
    gen_tokens: int
    solve_tokens: int
    mutate_seconds: float
    solve_seconds: float
    seconds: float
    created_at: datetime
    valid: int | None = 0
    invalid: int | None = 0
    verify_tokens: int | None = 0
    failed: int | None = 0
    repaired: int | None = 0


@dataclass(frozen=True)
class OperatorMetrics:
    """One row of the operators table."""

    step: int
    operator: str
    attempts: int
    ok: int
    in_band: int
    archived: int
    disputed: int
    archive_yield: float
    gen_tokens: int
    solve_tokens: int
    created_at: datetime


def to_table(records: Sequence[object], schema: pa.Schema) -> pa.Table:
    """Turn a list of record dataclasses into a table with exactly `schema`."""
    rows = [{f.name: getattr(r, f.name) for f in dataclasses.fields(r)} for r in records]
    for row in rows:
        emb = row.get("embedding")
        if emb is not None and not isinstance(emb, list):
            row["embedding"] = [float(x) for x in emb]
    return pa.Table.from_pylist(rows, schema=schema)


def now() -> datetime:
    return datetime.now(UTC)


_WS = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Normalised problem text: case-folded, whitespace collapsed (what duplicates share)."""
    return _WS.sub(" ", text).strip().casefold()


def problem_id(text: str) -> str:
    """Content hash of the normalised problem text, stable across runs."""
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()[:16]


def candidate_id(run_id: str, step: int, slot: int) -> str:
    """Deterministic row id: re-running a step after a crash gives the same ids."""
    return hashlib.sha256(f"{run_id}/{step}/{slot}".encode()).hexdigest()[:16]


def since_rescore(candidates: pa.Table) -> pa.Table:
    """The rows the archive is a function of: all of them, or, once a step re-scored the
    archive (rows of status `rescored`, pipeline/loop/rescore.py), the seeds, the last such
    step's rows and every later row. A re-scoring replaces every generated elite by its
    re-scored copy, so nothing before it but the seeds can hold a cell."""
    import pyarrow.compute as pc

    if not candidates.num_rows:
        return candidates
    rescored = candidates.filter(pc.equal(candidates["status"], Status.RESCORED))
    if not rescored.num_rows:
        return candidates
    last = pc.max(rescored["step"]).as_py()
    keep = pc.or_(pc.equal(candidates["status"], Status.SEED),
                  pc.or_(pc.greater(candidates["step"], last),
                         pc.and_(pc.equal(candidates["step"], last),
                                 pc.equal(candidates["status"], Status.RESCORED))))
    return candidates.filter(keep)

