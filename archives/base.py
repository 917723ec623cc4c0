"""What every archive shares: the contract, batch validation, stats, snapshot files.

The contract (checked for every class by tests/test_archive_contract.py):

- ``add(ids, descriptors, qualities, *, steps=None) -> (status int8, cells int64)``
  inserts rows in order, exactly as if each were added alone; a niche holds one elite,
  strictly higher quality replaces it, ties keep the incumbent. A row with no niche
  (cell -1) is NOT_ADDED.
- ``index_of(descriptors)``: the cell each row would compete in now (-1: none yet).
- ``retrieve``, ``sample_elites`` (uniform over occupied cells), ``elite``, ``data()``
  (a table sorted by cell with at least cell, id, quality, step), ``stats``,
  ``save(dir, extra=)`` / ``load(dir)``, ``__eq__``, ``__len__`` and ``empty()`` (the same
  kind and parameters, no elites: what re-derivation starts from).

Each archive is a pure function of its ordered insertions; descriptors are whatever the
kind places rows by: unit embeddings (CVT, novelty) or skill labels (skill-set).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from archives.cvt import NO_STEP, ArchiveStats, Elite

__all__ = ["Archive", "check_batch", "compute_stats", "read_elites", "read_state", "sample_cells", "write_snapshot"]

ELITES_FILE = "elites.parquet"
STATE_FILE = "state.json"


@runtime_checkable
class Archive(Protocol):
    kind: str
    cells: int

    def add(self, ids: Sequence[str], descriptors: Any, qualities: Sequence[float], *,
            steps: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]: ...

    def index_of(self, descriptors: Any) -> np.ndarray: ...

    def retrieve(self, descriptors: Any) -> tuple[np.ndarray, list[str | None]]: ...

    def sample_elites(self, n: int, rng: np.random.Generator) -> list[Elite]: ...

    def elite(self, cell: int) -> Elite | None: ...

    def data(self) -> pa.Table: ...

    @property
    def stats(self) -> ArchiveStats: ...

    def save(self, directory: Path, *, extra: Mapping[str, Any] | None = None) -> None: ...

    def empty(self) -> Archive: ...

    def __len__(self) -> int: ...


def check_batch(ids: Sequence[str], qualities: Sequence[float], steps: Sequence[int] | None,
                n_descriptors: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Validate the per-row arguments of ``add``; messages name the argument (as CVT's do)."""
    ids = list(ids)
    n = len(ids)
    if n_descriptors != n:
        raise ValueError(f"descriptors must have one row per id: expected {n}; got {n_descriptors}")
    for i, row_id in enumerate(ids):
        if not isinstance(row_id, str):
            raise ValueError(f"ids must be str; ids[{i}] is {type(row_id).__name__}")
    qual = np.asarray(qualities, dtype=np.float64)
    if qual.shape != (n,):
        raise ValueError(f"qualities must have shape ({n},); got shape {qual.shape}")
    if not np.isfinite(qual).all():
        bad = int(np.flatnonzero(~np.isfinite(qual))[0])
        raise ValueError(f"qualities must be finite; qualities[{bad}] is {qual[bad]}")
    if steps is None:
        return ids, qual, np.full(n, NO_STEP, dtype=np.int64)
    step = np.asarray(steps)
    if step.shape != (n,):
        raise ValueError(f"steps must have shape ({n},); got shape {step.shape}")
    if n and not np.issubdtype(step.dtype, np.integer):
        raise ValueError(f"steps must be integers; got dtype {step.dtype}")
    return ids, qual, step.astype(np.int64)


def compute_stats(qualities: np.ndarray, num_cells: int) -> ArchiveStats:
    """Stats from the stored qualities (sorted by cell), so equal archives give equal floats."""
    num = int(qualities.size)
    qd = float(qualities.sum()) if num else 0.0
    return ArchiveStats(num_cells=num_cells, num_elites=num, coverage=num / num_cells if num_cells else 0.0,
                        qd_score=qd, best=float(qualities.max()) if num else None,
                        mean=qd / num if num else None)


def sample_cells(occupied: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` cells drawn with replacement, uniformly over the sorted occupied cells.

    The same draw as CVTArchive.sample_elites, so every kind consumes the RNG alike.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0; got {n}")
    if occupied.size == 0:
        raise ValueError("cannot sample elites from an empty archive")
    return occupied[rng.integers(0, occupied.size, size=n)]


def write_snapshot(directory: Path, table: pa.Table, state: dict[str, Any]) -> None:
    """Write ``elites.parquet`` then ``state.json`` (last: a directory with it is complete)."""
    directory = Path(directory)
    # Serialise first: a non-JSON ``extra`` then fails before anything is written.
    state_text = json.dumps(state, indent=2, sort_keys=True, allow_nan=False)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / (ELITES_FILE + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, directory / ELITES_FILE)
    tmp = directory / (STATE_FILE + ".tmp")
    tmp.write_text(state_text + "\n", encoding="utf-8")
    os.replace(tmp, directory / STATE_FILE)


def read_state(directory: Path, format_version: int) -> dict[str, Any]:
    state = json.loads((Path(directory) / STATE_FILE).read_text(encoding="utf-8"))
    version = state.get("format_version")
    if version != format_version:
        raise ValueError(f"state.json format_version must be {format_version}; got {version!r}")
    return state


def read_elites(directory: Path, expected_rows: int) -> pa.Table:
    table = pq.read_table(Path(directory) / ELITES_FILE)
    if table.num_rows != expected_rows:
        raise ValueError(f"elites.parquet must have {expected_rows} rows per state.json; got {table.num_rows}")
    return table
