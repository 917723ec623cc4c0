"""What every archive shares: the contract, batch validation, stats, snapshot files.

The contract (checked for every class by tests/unit/archives/test_archive_contract.py):

- ``add(ids, descriptors, qualities, *, steps=None) -> (status int8, cells int64)``
  inserts rows in order, exactly as if each were added alone; a niche holds one elite,
  strictly higher quality replaces it, ties keep the incumbent. A row with no niche
  (cell -1) is NOT_ADDED.
- ``index_of(descriptors)``: the cell each row would compete in now (-1: none yet).
- ``retrieve``, ``sample_elites`` (uniform over occupied cells), ``elite``, ``data()``
  (a table sorted by cell with at least cell, id, quality, step), ``stats``,
  ``save(dir, extra=)`` / ``load(dir)``, ``__eq__``, ``__len__`` and ``new_empty()`` (a new
  archive of the same kind and parameters with no elites: what re-derivation starts from).

Each archive is a pure function of its ordered insertions; descriptors are whatever the
kind places rows by: unit embeddings (CVT, novelty) or skill labels (skill-set).

This module owns what the kinds share: the record types (``AddStatus``, ``Elite``,
``ArchiveStats``, ``NO_STEP``), ``ArchiveBase`` (the methods that read the same for every
kind: ``add_single``, ``elite``, ``sample_elites``, ``stats``) and the batch, stats,
sampling and snapshot helpers. A kind adds only "which cell?" and "does it replace?", and
what the pipeline asks of a kind (so nothing outside archives/ tests a class):

- ``from_config(cfg, *, seed, embeddings, seed_skills)``: a new, empty archive built from the
  archive config (pipeline/config.py's ``ArchiveConfig``, read by attribute) and the seeds;
  raises ``ArchiveBuildError`` when these seeds cannot build the kind;
- ``labels_skills``: rows are placed by skill labels (the candidates' ``skill`` column, which
  a model gives each new row) rather than by the problem embedding; such a kind also has
  ``vocabulary`` and ``max_skills`` (what the label prompt offers and allows);
- ``centroids_file``: the snapshot file holding the cells' centroids, if the kind has them;
- ``niches()``: the niche operator's targets (archives/niches.py).

The kinds are registered in archives/registry.py.
"""

from __future__ import annotations

import json
import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from archives.centroids import normalize_rows
from archives.niches import Niches

__all__ = [
    "NO_STEP", "AddStatus", "Archive", "ArchiveBase", "ArchiveBuildError", "ArchiveStats", "Elite", "check_batch",
    "check_embeddings", "compute_stats", "elites_table", "read_elites", "read_embeddings", "read_state",
    "sample_cells", "write_snapshot",
]

ELITES_FILE = "elites.parquet"
STATE_FILE = "state.json"
# Step recorded for rows added without ``steps``.
NO_STEP = -1


class ArchiveBuildError(ValueError):
    """An archive kind cannot be built from this config and these seeds (``from_config``);
    the message says why and what to set."""


class AddStatus(IntEnum):
    """Outcome of inserting one row, as if rows were inserted one at a time."""

    NOT_ADDED = 0
    IMPROVE_EXISTING = 1
    NEW = 2


@dataclass(frozen=True)
class ArchiveStats:
    """Summary of the elites' qualities; ``best`` and ``mean`` are None when empty."""

    num_cells: int
    num_elites: int
    coverage: float
    qd_score: float
    best: float | None
    mean: float | None


@dataclass(frozen=True, eq=False)
class Elite:
    """One cell's elite. ``embedding`` is the stored unit-norm float32 vector (read-only);
    empty for kinds that place rows by labels."""

    id: str
    cell: int
    quality: float
    step: int
    embedding: np.ndarray

    def __eq__(self, other: object) -> bool:
        # The generated __eq__ would compare the arrays element-wise and then fail on
        # the truth value of the result.
        if not isinstance(other, Elite):
            return NotImplemented
        return (
            self.id == other.id
            and self.cell == other.cell
            and self.quality == other.quality
            and self.step == other.step
            and np.array_equal(self.embedding, other.embedding)
        )


@runtime_checkable
class Archive(Protocol):
    kind: str
    cells: int
    labels_skills: bool
    centroids_file: str | None

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

    def new_empty(self) -> Archive: ...

    def niches(self) -> Niches: ...

    def __len__(self) -> int: ...


class ArchiveBase(ABC):
    """The methods every kind shares, written once over a few per-kind hooks.

    A kind sets ``cells`` and provides ``add``, ``new_empty``, ``occupied()`` (sorted
    occupied cells, int64), ``_holds(cell)``, ``_elite_at(cell)`` and ``_qualities()`` (the
    elites' qualities sorted by cell). Descriptors of one row are turned into a batch of one by
    ``_one_row`` (embedding kinds check the shape there).
    """

    cells: int
    _stats: ArchiveStats | None
    # Capabilities the pipeline asks about (see the module doc); a kind overrides them.
    labels_skills: ClassVar[bool] = False
    centroids_file: ClassVar[str | None] = None

    @classmethod
    @abstractmethod
    def from_config(cls, cfg: Any, *, seed: int, embeddings: np.ndarray, seed_skills: Sequence[str | None]) -> Any:
        """A kind's own; see the module docstring."""

    def niches(self) -> Niches:
        """The niche operator's view of this archive now (archives/niches.py)."""
        raise TypeError(f"archive: no niche targets for {type(self).__name__}")

    @abstractmethod
    def add(self, ids: Sequence[str], descriptors: Any, qualities: Sequence[float], *,
            steps: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """A kind's own; see the class docstring."""

    @abstractmethod
    def new_empty(self) -> Any:
        """A kind's own; see the class docstring."""

    @abstractmethod
    def occupied(self) -> np.ndarray:
        """A kind's own; see the class docstring."""

    @abstractmethod
    def _holds(self, cell: int) -> bool:
        """A kind's own; see the class docstring."""

    @abstractmethod
    def _elite_at(self, cell: int) -> Elite:
        """A kind's own; see the class docstring."""

    @abstractmethod
    def _qualities(self) -> np.ndarray:
        """A kind's own; see the class docstring."""

    def empty(self) -> Any:
        """Deprecated name of :meth:`new_empty` (pyribs' ``empty`` is a boolean, not a new archive)."""
        warnings.warn("Archive.empty() is deprecated: use new_empty()", DeprecationWarning, stacklevel=2)
        return self.new_empty()

    def _one_row(self, descriptor: Any) -> Any:
        return [descriptor]

    def add_single(self, id: str, descriptor: Any, quality: float, *,
                   step: int | None = None) -> tuple[AddStatus, int]:
        """Insert one row (an embedding of shape (dim,), or one row's labels); returns (status, cell)."""
        status, cells = self.add([id], self._one_row(descriptor), [quality],
                                 steps=None if step is None else [step])
        return AddStatus(int(status[0])), int(cells[0])

    def elite(self, cell: int) -> Elite | None:
        """The elite in ``cell``, or None if the cell is empty."""
        if not 0 <= cell < self.cells:
            raise ValueError(f"cell must be in [0, {self.cells}); got {cell}")
        return self._elite_at(int(cell)) if self._holds(int(cell)) else None

    def sample_elites(self, n: int, rng: np.random.Generator) -> list[Elite]:
        """``n`` elites drawn with replacement, uniformly over occupied cells.

        Uniform over cells rather than over inserted rows, so crowded regions of the space
        are not favoured as parents.
        """
        return [self._elite_at(int(c)) for c in sample_cells(self.occupied(), n, rng)]

    @property
    def stats(self) -> ArchiveStats:
        """Statistics over the elites; recomputed from the stored qualities after any change.

        Computed rather than updated incrementally, so that two archives with the same
        elites report identical floats however they were filled.
        """
        if self._stats is None:
            self._stats = compute_stats(self._qualities(), self.cells)
        return self._stats

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value


def check_embeddings(embeddings: Any, dim: int, n: int | None = None) -> np.ndarray:
    """Rows of ``embeddings`` (n, dim), any non-zero scale, normalised to float32 unit rows.

    ``n``: the number of ids they belong to, if known (the message then names both shapes).
    """
    arr = np.asarray(embeddings)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f"embeddings must have shape (n, {dim}); got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"embeddings must have one row per id: expected shape ({n}, {dim}); got shape {arr.shape}")
    if arr.shape[0] == 0:
        return np.zeros((0, dim), dtype=np.float32)
    return normalize_rows(arr, name="embeddings")


def one_embedding(embedding: Any, dim: int) -> np.ndarray:
    """One embedding of shape (dim,) as a batch of one row."""
    emb = np.asarray(embedding)
    if emb.ndim != 1:
        raise ValueError(f"embedding must have shape ({dim},); got shape {emb.shape}")
    return emb[None, :]


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

    Every kind samples through here, so every kind consumes the RNG alike.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0; got {n}")
    if occupied.size == 0:
        raise ValueError("cannot sample elites from an empty archive")
    return occupied[rng.integers(0, occupied.size, size=n)]


def write_snapshot(directory: Path, table: pa.Table, state: dict[str, Any],
                   arrays: Mapping[str, np.ndarray] | None = None) -> None:
    """Write ``elites.parquet``, then each of ``arrays`` as ``NAME`` (.npy, no pickle), then
    ``state.json``, each under a temporary name renamed into place; ``state.json`` goes
    last, so a directory with it is complete."""
    directory = Path(directory)
    # Serialise first: a non-JSON ``extra`` then fails before anything is written.
    state_text = json.dumps(state, indent=2, sort_keys=True, allow_nan=False)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / (ELITES_FILE + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, directory / ELITES_FILE)
    for name, array in (arrays or {}).items():
        tmp = directory / (name + ".tmp")
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
        os.replace(tmp, directory / name)
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


def elites_table(cells: Any, ids: Sequence[str | None], qualities: Any, steps: Any, embeddings: np.ndarray,
                 dim: int) -> pa.Table:
    """The ``data()`` table of an embedding archive: cell int64, id string, quality float64,
    step int64, embedding fixed_size_list<float32>[dim], one row per elite."""
    flat = pa.array(np.asarray(embeddings, dtype=np.float32).reshape(-1), type=pa.float32())
    return pa.table({
        "cell": pa.array(np.asarray(cells, dtype=np.int64), type=pa.int64()),
        "id": pa.array(list(ids), type=pa.string()),
        "quality": pa.array(np.asarray(qualities, dtype=np.float64), type=pa.float64()),
        "step": pa.array(np.asarray(steps, dtype=np.int64), type=pa.int64()),
        "embedding": pa.FixedSizeListArray.from_arrays(flat, dim),
    })


def read_embeddings(table: pa.Table, dim: int) -> np.ndarray:
    """The ``embedding`` column of an elites table as float32 (rows, dim)."""
    # flatten() honours slicing offsets, unlike .values.
    emb = table.column("embedding").combine_chunks().flatten().to_numpy().astype(np.float32).reshape(-1, dim)
    if emb.shape[0] != table.num_rows:
        raise ValueError(f"elites.parquet embedding must have shape ({table.num_rows}, {dim}); got {emb.shape}")
    return emb
