"""A CVT MAP-Elites archive over unit-norm embeddings, with faiss for the cell lookup.

The archive keeps at most one elite per Voronoi cell of a fixed set of centroids on the
unit sphere. Its contents are a pure function of the ordered sequence of insertions: an
``add`` of many rows gives the same archive as adding the rows one at a time, in order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pyarrow as pa

from archives.base import (
    NO_STEP,
    AddStatus,
    ArchiveBase,
    ArchiveStats,
    Elite,
    check_batch,
    check_embeddings,
    elites_table,
    one_embedding,
    read_elites,
    read_embeddings,
    read_state,
    write_snapshot,
)
from archives.centroids import build_centroids
from archives.niches import CellNiches

__all__ = ["CVTArchive"]

FORMAT_VERSION = 1

_CENTROIDS_FILE = "centroids.npy"

# Nearest-centroid candidates faiss returns before the float64 re-rank (see _lookup).
_RERANK_K = 4
# How far from 1 a centroid's norm may be; build_centroids' rows are within ~1e-7.
_NORM_TOLERANCE = 1e-4


class CVTArchive(ArchiveBase):
    """MAP-Elites archive whose cells are the Voronoi cells of fixed unit-norm centroids.

    A row's cell is its nearest centroid by cosine similarity. Each cell holds at most one
    elite; a candidate replaces the incumbent only with strictly higher quality, so ties
    keep the incumbent. Embeddings are normalised before lookup and stored normalised.

    Args:
        centroids: float array (cells, dim) with unit-norm rows (e.g. from
            :func:`archives.build_centroids`); stored as float32, unchanged otherwise.

    Raises:
        ValueError: ``centroids`` is not 2-D, is empty, or has non-unit or non-finite rows.
    """

    kind = "cvt"
    centroids_file = _CENTROIDS_FILE

    def __init__(self, *, centroids: np.ndarray) -> None:
        arr = np.asarray(centroids)
        if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
            raise ValueError(
                f"centroids must be a non-empty 2-D array (cells, dim); got shape {arr.shape}"
            )
        cents = np.array(arr, dtype=np.float32, order="C", copy=True)
        if not np.isfinite(cents).all():
            raise ValueError("centroids must be finite")
        norms = np.sqrt(np.sum(cents.astype(np.float64) ** 2, axis=1))
        worst = int(np.argmax(np.abs(norms - 1.0)))
        if abs(norms[worst] - 1.0) > _NORM_TOLERANCE:
            # Not normalised here on purpose: renormalising already-unit float32 rows can
            # move their last bit, and a save/load round trip must give equal centroids.
            raise ValueError(
                f"centroids must have unit-norm rows; row {worst} has norm {norms[worst]:.6g}"
            )
        cents.setflags(write=False)
        self._centroids = cents
        self.cells, self.dim = (int(s) for s in cents.shape)
        self._index = faiss.IndexFlatIP(self.dim)
        self._index.add(cents)

        # Column store indexed by cell: one numpy write per batch instead of per-row
        # objects, and ``data()``/``save()`` are slices of these arrays.
        self._occupied = np.zeros(self.cells, dtype=bool)
        self._quality = np.zeros(self.cells, dtype=np.float64)
        self._step = np.full(self.cells, NO_STEP, dtype=np.int64)
        self._embedding = np.zeros((self.cells, self.dim), dtype=np.float32)
        self._ids: list[str | None] = [None] * self.cells
        self._stats: ArchiveStats | None = None

    @classmethod
    def from_config(cls, cfg: Any, *, seed: int, embeddings: np.ndarray,
                    seed_skills: Sequence[str | None]) -> CVTArchive:
        """``cfg.cells`` centroids fitted to the seeds' embeddings (k-means, ``cfg.kmeans_iters``)."""
        return cls(centroids=build_centroids(embeddings, n_cells=cfg.cells, seed=seed, kmeans_iters=cfg.kmeans_iters))

    def new_empty(self) -> CVTArchive:
        """A new archive with the same centroids and no elites (what re-derivation starts from)."""
        return CVTArchive(centroids=self._centroids)

    def niches(self) -> CellNiches:
        return CellNiches(self._centroids, self.data())

    # ------------------------------------------------------------------ lookup

    @property
    def centroids(self) -> np.ndarray:
        """A copy of the centroids, float32 (cells, dim)."""
        return self._centroids.copy()

    def _lookup(self, unit: np.ndarray) -> np.ndarray:
        """Nearest centroid of each (already normalised) row, int64."""
        n = unit.shape[0]
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        k = min(_RERANK_K, self.cells)
        _, cand = self._index.search(unit, k)
        # faiss computes scores with BLAS for large batches and SIMD loops for small ones,
        # whose float32 roundings differ; a near-tie could then go to different cells in a
        # batch add and in single adds. Re-ranking the top candidates in float64, one row
        # at a time in effect, makes the cell a function of the row alone. Candidates are
        # sorted by cell so that exact ties go to the lowest cell index.
        cand = np.sort(cand, axis=1)
        # float32 -> float64 is exact; casting the gathered rows avoids a float64 copy
        # of all centroids (300 MB at 100K cells x 384).
        cand_vecs = self._centroids[cand].astype(np.float64)
        scores = np.sum(cand_vecs * unit[:, None, :].astype(np.float64), axis=2)
        return cand[np.arange(n), np.argmax(scores, axis=1)].astype(np.int64)

    def index_of(self, embeddings: np.ndarray) -> np.ndarray:
        """Cell index (int64) of each row of ``embeddings`` (n, dim); any non-zero scale."""
        return self._lookup(check_embeddings(embeddings, self.dim))

    # ------------------------------------------------------------------ insertion

    def add(
        self,
        ids: Sequence[str],
        embeddings: np.ndarray,
        qualities: Sequence[float],
        *,
        steps: Sequence[int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Insert rows in order, exactly as if each were added alone.

        Args:
            ids: one string id per row.
            embeddings: (n, dim) array, any non-zero scale; stored normalised.
            qualities: one finite quality per row; higher is better.
            steps: one int per row (e.g. the generation step); default ``NO_STEP``.

        Returns:
            ``(status, cells)``: int8 :class:`AddStatus` values and int64 cells, one per row.
            A row is NEW if its cell was empty when it arrived, IMPROVE_EXISTING if it beat
            the elite there at that moment, else NOT_ADDED.

        Raises:
            ValueError: mismatched lengths, wrong embedding shape, non-string id, or a
                non-finite quality. Nothing is inserted when this is raised.
        """
        ids = list(ids)
        unit = check_embeddings(embeddings, self.dim, len(ids))
        ids, qual, step = check_batch(ids, qualities, steps, unit.shape[0])

        cells = self._lookup(unit)
        status, winners = self._resolve(cells, qual)
        if winners.size:
            won = cells[winners]
            self._occupied[won] = True
            self._quality[won] = qual[winners]
            self._step[won] = step[winners]
            self._embedding[won] = unit[winners]
            for row, cell in zip(winners.tolist(), won.tolist(), strict=True):
                self._ids[cell] = ids[row]
            self._stats = None
        return status, cells

    def _resolve(self, cells: np.ndarray, qual: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sequential-insertion outcome of a batch, computed without a per-row loop.

        Within one cell, inserting rows one at a time accepts a row iff the cell is empty
        or the row's quality is strictly above the running maximum of the incumbent and
        the earlier rows for that cell. So: group the rows by cell (incumbent first, then
        rows in order), take a running maximum per group, and compare each row with the
        maximum before it. The last accepted row of a group is the cell's final elite.

        Returns:
            int8 status per row, and the sorted row indices that end as elites.
        """
        n = cells.size
        status = np.zeros(n, dtype=np.int8)
        if n == 0:
            return status, np.zeros(0, dtype=np.int64)
        ucells, group = np.unique(cells, return_inverse=True)
        occupied = self._occupied[ucells]
        inc_group = np.flatnonzero(occupied)
        # Incumbents enter as pseudo-rows at position -1, ahead of the batch's rows.
        grp = np.concatenate([group, inc_group])
        pos = np.concatenate([np.arange(n), np.full(inc_group.size, -1)])
        q = np.concatenate([qual, self._quality[ucells[inc_group]]])
        order = np.lexsort((pos, grp))
        grp, pos, q = grp[order], pos[order], q[order]
        # Dense ranks turn quality into integers with the same order and ties, so a
        # per-group offset can be added; a single running maximum then never crosses
        # from one group into the next because every later group's keys are larger.
        _, rank = np.unique(q, return_inverse=True)
        width = int(rank.max()) + 1
        key = grp.astype(np.int64) * width + rank
        run_max = np.maximum.accumulate(key)
        first = np.ones(grp.size, dtype=bool)
        first[1:] = grp[1:] != grp[:-1]
        before = np.empty_like(key)
        before[0] = -1
        before[1:] = run_max[:-1]
        # A group's first entry is the incumbent if there is one, so a real row that comes
        # first found its cell empty.
        new = first
        improve = ~first & (key > before)
        real = pos >= 0
        status[pos[real & new]] = AddStatus.NEW
        status[pos[real & improve]] = AddStatus.IMPROVE_EXISTING
        accepted = real & (new | improve)
        # Accepted entries of a group strictly increase, so the last one is the winner.
        acc_grp = grp[accepted]
        last = np.ones(acc_grp.size, dtype=bool)
        last[:-1] = acc_grp[1:] != acc_grp[:-1]
        return status, np.sort(pos[accepted][last])

    def _one_row(self, embedding: np.ndarray) -> np.ndarray:
        return one_embedding(embedding, self.dim)

    # ------------------------------------------------------------------ queries

    def __len__(self) -> int:
        return int(np.count_nonzero(self._occupied))

    def retrieve(self, embeddings: np.ndarray) -> tuple[np.ndarray, list[str | None]]:
        """For each row: whether its cell is occupied, and the elite's id there (or None)."""
        cells = self.index_of(embeddings)
        return self._occupied[cells].copy(), [self._ids[c] for c in cells.tolist()]

    def occupied(self) -> np.ndarray:
        """The occupied cells, sorted (int64)."""
        return np.flatnonzero(self._occupied).astype(np.int64)

    def _holds(self, cell: int) -> bool:
        return bool(self._occupied[cell])

    def _qualities(self) -> np.ndarray:
        return self._quality[self._occupied]

    def _elite_at(self, cell: int) -> Elite:
        emb = self._embedding[cell].copy()
        emb.setflags(write=False)
        ident = self._ids[cell]
        assert ident is not None
        return Elite(
            id=ident,
            cell=cell,
            quality=float(self._quality[cell]),
            step=int(self._step[cell]),
            embedding=emb,
        )

    def data(self) -> pa.Table:
        """All elites as a table sorted by cell.

        Columns: cell int64, id string, quality float64, step int64,
        embedding fixed_size_list<float32>[dim].
        """
        cells = self.occupied()
        return elites_table(cells, [self._ids[c] for c in cells.tolist()], self._quality[cells], self._step[cells],
                            self._embedding[cells], self.dim)

    def __eq__(self, other: object) -> bool:
        """Same centroids and same elites (id, cell, quality, step, embedding)."""
        if not isinstance(other, CVTArchive):
            return NotImplemented
        if self._centroids.shape != other._centroids.shape:
            return False
        occ = self._occupied
        return (
            np.array_equal(self._centroids, other._centroids)
            and np.array_equal(occ, other._occupied)
            and np.array_equal(self._quality[occ], other._quality[occ])
            and np.array_equal(self._step[occ], other._step[occ])
            and np.array_equal(self._embedding[occ], other._embedding[occ])
            and self._ids == other._ids
        )

    # ------------------------------------------------------------------ persistence

    def save(self, directory: Path, *, extra: Mapping[str, Any] | None = None) -> None:
        """Write ``elites.parquet``, ``centroids.npy`` and ``state.json`` into ``directory``.

        ``extra`` is any JSON-serialisable mapping (e.g. run step, config hash), returned
        by :meth:`load`. Each file is written under a temporary name and then renamed,
        and ``state.json`` goes last, so a directory with a ``state.json`` is complete.
        """
        state = {
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "cells": self.cells,
            "dim": self.dim,
            "num_elites": len(self),
            "extra": dict(extra or {}),
        }
        write_snapshot(Path(directory), self.data(), state, {_CENTROIDS_FILE: self._centroids})

    @classmethod
    def load(cls, directory: Path) -> tuple[CVTArchive, dict[str, Any]]:
        """Read an archive written by :meth:`save`; returns ``(archive, extra)``.

        Raises:
            ValueError: unknown format version or files that disagree with each other.
        """
        directory = Path(directory)
        state = read_state(directory, FORMAT_VERSION)
        centroids = np.load(directory / _CENTROIDS_FILE, allow_pickle=False)
        expected = (state["cells"], state["dim"])
        if centroids.shape != expected:
            raise ValueError(
                f"centroids.npy must have shape {expected} per state.json; "
                f"got shape {centroids.shape}"
            )
        archive = cls(centroids=centroids)
        table = read_elites(directory, state["num_elites"])
        cells = table.column("cell").to_numpy().astype(np.int64)
        if cells.size and (
            cells.min() < 0 or cells.max() >= archive.cells or np.unique(cells).size != cells.size
        ):
            raise ValueError(f"elites.parquet cells must be distinct and in [0, {archive.cells})")
        emb = read_embeddings(table, archive.dim)
        archive._occupied[cells] = True
        archive._quality[cells] = table.column("quality").to_numpy()
        archive._step[cells] = table.column("step").to_numpy()
        archive._embedding[cells] = emb
        for cell, ident in zip(cells.tolist(), table.column("id").to_pylist(), strict=True):
            archive._ids[cell] = ident
        archive._stats = None
        return archive, dict(state.get("extra", {}))
