"""Map step 1, one task per committed shard: the per-row filters.

Reads one step's candidates (all columns) and the `correct` flags of its attempts, runs
the row filters (status, difficulty, validity, pairs, embedding, decontamination), writes
the rows they reject, with reasons, to OUT/rejected/, and returns the small columns the
global steps need for every row: ids, cell, quality, counts, the rejecting filter, and
the embedding (float16 bytes) of the rows still in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from filters.base import Batch, Filter, Marks, run_filters
from filters.config import ExportConfig
from filters.decontam import DecontamIndex, decontam_filter
from filters.errors import ExportInputError
from filters.rows import (
    checks_filter,
    difficulty_filter,
    embedding_filter,
    pairs_filter,
    status_filter,
    validity_filter,
)
from filters.schema import CANDIDATE_COLUMNS, REJECTED_SCHEMA
from filters.shards import ShardSpec, read_shard
from pipeline.store.records import ATTEMPTS_SCHEMA, CANDIDATES_SCHEMA, problem_id
from pipeline.store.storage import atomic_write_table

log = logging.getLogger(__name__)

KEYS_META = pd.DataFrame({
    "run": pd.Series([], dtype="int64"), "step": pd.Series([], dtype="int64"),
    "slot": pd.Series([], dtype="int64"), "id": pd.Series([], dtype=object),
    "problem_id": pd.Series([], dtype=object), "cell": pd.Series([], dtype="int64"),
    "quality": pd.Series([], dtype="float64"), "solve_rate": pd.Series([], dtype="float64"),
    "n_student": pd.Series([], dtype="int64"), "has_generator": pd.Series([], dtype=bool),
    "filter": pd.Series([], dtype=object),
    "reason": pd.Series([], dtype=object),
    "count": pd.Series([], dtype="int64"),  # 1 for a kept row; the rejections, on a (filter, reason) row
    "emb": pd.Series(pd.array([], dtype=pd.ArrowDtype(pa.binary()))),
})


@dataclass(frozen=True)
class ScanPlan:
    out_dir: str
    statuses: tuple[str, ...]
    difficulty: tuple[float, float] | None
    validity: bool
    checks: bool
    sources: tuple[str, ...]
    need_embeddings: bool
    decontam: DecontamIndex | None
    skip_corrupt: bool

    @classmethod
    def from_config(cls, cfg: ExportConfig, out_dir: Path, decontam: DecontamIndex | None,
                    skip_corrupt: bool) -> ScanPlan:
        d = cfg.difficulty
        return cls(str(out_dir), cfg.statuses, (d.lo, d.hi) if d.enabled else None, cfg.validity.enabled,
                   cfg.validity.checks, cfg.sources, cfg.near_dup.enabled or decontam is not None, decontam,
                   skip_corrupt)

    def filters(self) -> list[Filter]:
        # The checks come first so that rows the gate stopped (status "invalid") are counted
        # under the check that failed rather than as an excluded status.
        out = [checks_filter()] if self.checks else []
        out.append(status_filter(self.statuses))
        if self.difficulty is not None:
            out.append(difficulty_filter(*self.difficulty))
        if self.validity:
            out.append(validity_filter())
        out.append(pairs_filter(self.sources))
        if self.need_embeddings:
            out.append(embedding_filter())
        if self.decontam is not None:
            out.append(decontam_filter(self.decontam))
        return out

    def filter_names(self) -> list[str]:
        return [f.name for f in self.filters()]


def embeddings_of(table: pa.Table, path: str) -> tuple[np.ndarray, np.ndarray]:
    """(float32 (rows, dim) with zero rows where missing, has-embedding mask) of a candidates table."""
    col = table["embedding"].combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False)
    has = lengths > 0
    dims = set(np.unique(lengths[has]).tolist())
    if len(dims) > 1:
        raise ExportInputError(f"{path}: embeddings of different sizes {sorted(dims)}")
    dim = dims.pop() if dims else 0
    out = np.zeros((len(lengths), dim), dtype=np.float32)
    if dim:
        out[has] = pc.list_flatten(col).to_numpy(zero_copy_only=False).reshape(-1, dim)
    return out, has


def _fp16_bytes(emb: np.ndarray, keep: np.ndarray) -> pa.Array:
    """A binary column holding each kept row's embedding as float16 bytes (null elsewhere).

    Built from buffers, not per-row Python bytes: a shard has tens of thousands of rows.
    float16 halves what the reduce step holds; cosines move by ~1e-3."""
    n, dim = emb.shape
    width = 2 * dim
    offsets = np.zeros(n + 1, dtype=np.int32)
    offsets[1:] = np.cumsum(np.where(keep, width, 0))
    data = np.ascontiguousarray(emb[keep], dtype=np.float16).tobytes()
    validity = pa.array(keep).buffers()[1] if not keep.all() else None
    return pa.Array.from_buffers(pa.binary(), n, [validity, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data)],
                                 null_count=int(n - keep.sum()))


def _frame(table: pa.Table, attempts: pa.Table, has_emb: np.ndarray) -> pd.DataFrame:
    correct = attempts.filter(pc.equal(attempts["correct"], True))
    n_student = pd.Series(correct["candidate_id"].to_numpy(zero_copy_only=False)).value_counts()
    f = pd.DataFrame({c: table[c].to_numpy(zero_copy_only=False) for c in (
        "id", "step", "slot", "status", "reason", "solve_rate", "reference_agrees", "majority_answer",
        "majority_share", "quality", "problem", "problem_id", "valid", "invalid_checks", "validity_reason")})
    for c in ("id", "status", "reason", "majority_answer", "problem", "problem_id", "reference_agrees", "valid",
              "invalid_checks", "validity_reason"):
        f[c] = f[c].astype(object).where(f[c].notna(), None)
    missing_pid = f["problem_id"].isna() & f["problem"].notna()
    f.loc[missing_pid, "problem_id"] = [problem_id(t) for t in f.loc[missing_pid, "problem"]]
    f["cell"] = pc.fill_null(table["cell"], -1).to_numpy(zero_copy_only=False)
    f["n_student"] = f["id"].map(n_student).fillna(0).astype("int64")
    solution = pc.utf8_length(pc.utf8_trim_whitespace(pc.fill_null(table["solution"], "")))
    f["has_generator"] = pc.greater(solution, 0).to_numpy(zero_copy_only=False)
    f["has_embedding"] = has_emb
    return f


def _write_rejected(table: pa.Table, mask: np.ndarray, marks: Marks, out: Path) -> None:
    rows = table.select(CANDIDATE_COLUMNS).filter(pa.array(mask))
    n = rows.num_rows
    extra = {
        "filter": pa.array(marks.filter[mask].tolist(), pa.string()),
        "filter_reason": pa.array(marks.reason[mask].tolist(), pa.string()),
        "filter_detail": pa.array(marks.detail[mask].tolist(), pa.string()),
        "matched": pa.array(marks.matched[mask].tolist(), pa.string()),
        "source": pa.nulls(n, pa.string()), "attempt": pa.nulls(n, pa.int64()),
        "content": pa.nulls(n, pa.string()),
    }
    for name, col in extra.items():
        rows = rows.append_column(name, col)
    atomic_write_table(out, rows.cast(REJECTED_SCHEMA))


def scan_shard(spec: ShardSpec, plan: ScanPlan) -> pd.DataFrame:
    try:
        table = read_shard(spec.candidates, CANDIDATES_SCHEMA)
        attempts = read_shard(spec.attempts, ATTEMPTS_SCHEMA, ["candidate_id", "correct"])
    except ExportInputError as exc:
        if not plan.skip_corrupt:
            raise
        # The driver sees this shard's rows missing from the result and reports it as skipped.
        log.warning("skipping %s", exc)
        return KEYS_META.copy()
    emb, has_emb = embeddings_of(table, spec.candidates)
    if plan.decontam is not None and emb.shape[1] and emb.shape[1] != plan.decontam.dim:
        raise ExportInputError(f"{spec.candidates}: embeddings have {emb.shape[1]} dimensions, the "
                               f"decontamination embedder gives {plan.decontam.dim}")
    frame = _frame(table, attempts, has_emb)
    marks = run_filters(Batch(frame, emb if plan.need_embeddings else None), plan.filters())
    rejected = ~marks.kept
    if rejected.any():
        _write_rejected(table, rejected, marks, Path(plan.out_dir) / "rejected" / f"rows-{spec.key}.parquet")
    # Rejected rows only need counting from here on (they are written above): one row per
    # (filter, reason) with its count, so the reduce step receives the kept rows only.
    kept = marks.kept
    keys = pd.DataFrame({
        "run": np.full(int(kept.sum()), spec.run_index, dtype=np.int64),
        "step": frame["step"].to_numpy(dtype=np.int64)[kept], "slot": frame["slot"].to_numpy(dtype=np.int64)[kept],
        "id": frame["id"].to_numpy()[kept], "problem_id": frame["problem_id"].to_numpy()[kept],
        "cell": frame["cell"].to_numpy(dtype=np.int64)[kept], "quality": frame["quality"].to_numpy(dtype=float)[kept],
        "solve_rate": frame["solve_rate"].to_numpy(dtype=float)[kept],
        "n_student": frame["n_student"].to_numpy(dtype=np.int64)[kept],
        "has_generator": frame["has_generator"].to_numpy(dtype=bool)[kept], "filter": None, "reason": None,
        "count": 1,
    })
    emb_kept = emb[kept] if plan.need_embeddings else np.zeros((int(kept.sum()), 0), dtype=np.float32)
    keys["emb"] = pd.Series(pd.arrays.ArrowExtensionArray(_fp16_bytes(emb_kept, has_emb[kept] & plan.need_embeddings)))
    counts = marks.reason_counts()
    tally = pd.DataFrame({"run": spec.run_index, "step": spec.step, "slot": -1, "id": None, "problem_id": None,
                          "cell": -1, "quality": 0.0, "solve_rate": np.nan, "n_student": 0, "has_generator": False,
                          "filter": pd.Series([f for f, _ in counts], dtype=object),
                          "reason": pd.Series([r for _, r in counts], dtype=object),
                          "count": pd.Series(list(counts.values()), dtype=np.int64)})
    tally["emb"] = pd.Series(pd.array([None] * len(tally), dtype=pd.ArrowDtype(pa.binary())))
    return pd.concat([keys.astype(KEYS_META.dtypes.to_dict()), tally.astype(KEYS_META.dtypes.to_dict())],
                     ignore_index=True)
