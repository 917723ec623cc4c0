"""A novelty archive: niches are made by the data, not by fixed centroids.

A row founds a new niche when its nearest elite is farther than ``radius`` in cosine
distance (and fewer than ``capacity`` niches exist); otherwise it competes with that
elite, and a strictly better row replaces it (the niche then sits at the new elite). It
suits a campaign that should keep finding regions no seed-fitted centroid anticipated.

Rows are placed one at a time against the elites present at that moment, so an ``add``
of many rows equals adding them singly in order, and the archive is a pure function of
the ordered insertions. The nearest elite is found with faiss's flat inner-product search
(``faiss.knn`` over the current elite matrix) and the few best candidates are re-ranked in
float64, as in the CVT archive, so float32 near-ties cannot depend on the matrix layout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pyarrow as pa

from archives.base import (
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
from archives.niches import FoundedNiches

__all__ = ["NoveltyArchive"]

FORMAT_VERSION = 1
_RERANK_K = 4


class NoveltyArchive(ArchiveBase):
    """Niches founded by distance: one elite each, at most ``capacity`` niches.

    Args:
        dim: embedding dimension.
        radius: cosine distance (1 - cosine similarity) beyond which a row founds a new
            niche; in (0, 2].
        capacity: the most niches; once reached, every row competes with its nearest elite.
            It is also ``stats.num_cells``, so coverage is niches / capacity.
    """

    kind = "novelty"

    def __init__(self, *, dim: int, radius: float, capacity: int) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1; got {dim}")
        if not 0 < radius <= 2:
            raise ValueError(f"radius must be in (0, 2]; got {radius}")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1; got {capacity}")
        self.dim, self.radius, self.capacity = int(dim), float(radius), int(capacity)
        self.cells = self.capacity
        self._n = 0
        self._emb = np.zeros((min(capacity, 64), dim), dtype=np.float32)  # grows by doubling
        self._quality: list[float] = []
        self._step: list[int] = []
        self._ids: list[str] = []
        self._stats: ArchiveStats | None = None

    @classmethod
    def from_config(cls, cfg: Any, *, seed: int, embeddings: np.ndarray,
                    seed_skills: Sequence[str | None]) -> NoveltyArchive:
        """The seeds' embedding dim, ``cfg.radius``, at most ``cfg.cells`` niches."""
        return cls(dim=int(embeddings.shape[1]), radius=cfg.radius, capacity=cfg.cells)

    def new_empty(self) -> NoveltyArchive:
        """A new archive with the same dim, radius and capacity and no niches."""
        return NoveltyArchive(dim=self.dim, radius=self.radius, capacity=self.capacity)

    def niches(self) -> FoundedNiches:
        return FoundedNiches(self.data())

    # ------------------------------------------------------------------ lookup

    def _nearest(self, unit_row: np.ndarray) -> tuple[int, float]:
        """Nearest niche of one unit row and its cosine similarity; (-1, -inf) if none."""
        if self._n == 0:
            return -1, -np.inf
        elites = self._emb[: self._n]
        k = min(_RERANK_K, self._n)
        _, cand = faiss.knn(unit_row[None, :], elites, k, metric=faiss.METRIC_INNER_PRODUCT)
        cand = np.sort(cand[0][cand[0] >= 0])  # sorted: exact ties go to the oldest niche
        scores = np.sum(elites[cand].astype(np.float64) * unit_row.astype(np.float64), axis=1)
        best = int(np.argmax(scores))
        return int(cand[best]), float(scores[best])

    def _place(self, unit_row: np.ndarray) -> int:
        """The niche a row competes in now, or -1 if it would found a new one."""
        cell, sim = self._nearest(unit_row)
        if cell < 0 or (1.0 - sim > self.radius and self._n < self.capacity):
            return -1
        return cell

    def index_of(self, embeddings: np.ndarray) -> np.ndarray:
        """Niche each row would compete in against the current elites (-1: a new niche)."""
        unit = check_embeddings(embeddings, self.dim)
        return np.array([self._place(row) for row in unit], dtype=np.int64)

    # ------------------------------------------------------------------ insertion

    def add(self, ids: Sequence[str], embeddings: np.ndarray, qualities: Sequence[float], *,
            steps: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Insert rows in order; returns int8 AddStatus and the int64 niche of each row."""
        ids = list(ids)
        unit = check_embeddings(embeddings, self.dim, len(ids))
        ids, qual, step = check_batch(ids, qualities, steps, unit.shape[0])
        status = np.zeros(len(ids), dtype=np.int8)
        cells = np.zeros(len(ids), dtype=np.int64)
        for i, row in enumerate(unit):
            cell = self._place(row)
            if cell < 0:
                cell = self._grow()
                status[i] = AddStatus.NEW
            elif qual[i] > self._quality[cell]:
                status[i] = AddStatus.IMPROVE_EXISTING
            else:
                status[i] = AddStatus.NOT_ADDED
                cells[i] = cell
                continue
            self._emb[cell] = row
            self._quality[cell] = float(qual[i])
            self._step[cell] = int(step[i])
            self._ids[cell] = ids[i]
            cells[i] = cell
            self._stats = None
        return status, cells

    def _grow(self) -> int:
        if self._n == self._emb.shape[0]:
            bigger = np.zeros((min(self.capacity, 2 * self._n), self.dim), dtype=np.float32)
            bigger[: self._n] = self._emb[: self._n]
            self._emb = bigger
        self._quality.append(0.0)
        self._step.append(0)
        self._ids.append("")
        self._n += 1
        return self._n - 1

    def _one_row(self, embedding: np.ndarray) -> np.ndarray:
        return one_embedding(embedding, self.dim)

    # ------------------------------------------------------------------ queries

    def __len__(self) -> int:
        return self._n

    def retrieve(self, embeddings: np.ndarray) -> tuple[np.ndarray, list[str | None]]:
        cells = self.index_of(embeddings)
        return cells >= 0, [self._ids[c] if c >= 0 else None for c in cells.tolist()]

    def _elite_at(self, cell: int) -> Elite:
        emb = self._emb[cell].copy()
        emb.setflags(write=False)
        return Elite(id=self._ids[cell], cell=cell, quality=self._quality[cell], step=self._step[cell],
                     embedding=emb)

    def occupied(self) -> np.ndarray:
        """The occupied niches, sorted (int64): niches are numbered in creation order."""
        return np.arange(self._n, dtype=np.int64)

    def _holds(self, cell: int) -> bool:
        return cell < self._n

    def _qualities(self) -> np.ndarray:
        return np.asarray(self._quality, dtype=np.float64)

    def data(self) -> pa.Table:
        """Elites sorted by niche (niche ids are creation order): cell, id, quality, step, embedding."""
        return elites_table(self.occupied(), self._ids, self._quality, self._step, self._emb[: self._n], self.dim)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NoveltyArchive):
            return NotImplemented
        return ((self.dim, self.radius, self.capacity, self._n) == (other.dim, other.radius, other.capacity, other._n)
                and self._ids == other._ids and self._quality == other._quality and self._step == other._step
                and np.array_equal(self._emb[: self._n], other._emb[: other._n]))

    # ------------------------------------------------------------------ persistence

    def save(self, directory: Path, *, extra: Mapping[str, Any] | None = None) -> None:
        """``elites.parquet`` holds every niche (a niche is its elite), then ``state.json``."""
        state = {"format_version": FORMAT_VERSION, "kind": self.kind, "dim": self.dim, "radius": self.radius,
                 "capacity": self.capacity, "cells": self.cells, "num_elites": self._n, "extra": dict(extra or {})}
        write_snapshot(Path(directory), self.data(), state)

    @classmethod
    def load(cls, directory: Path) -> tuple[NoveltyArchive, dict[str, Any]]:
        state = read_state(directory, FORMAT_VERSION)
        archive = cls(dim=state["dim"], radius=state["radius"], capacity=state["capacity"])
        table = read_elites(directory, state["num_elites"])
        cells = table.column("cell").to_numpy().astype(np.int64)
        if not np.array_equal(cells, np.arange(cells.size)):
            raise ValueError("elites.parquet cells must be 0..n-1 in order for a novelty archive")
        emb = read_embeddings(table, archive.dim)
        archive._emb = np.zeros((max(cells.size, min(archive.capacity, 64)), archive.dim), dtype=np.float32)
        archive._emb[: cells.size] = emb
        archive._n = int(cells.size)
        archive._ids = table.column("id").to_pylist()
        archive._quality = [float(q) for q in table.column("quality").to_pylist()]
        archive._step = [int(s) for s in table.column("step").to_pylist()]
        return archive, dict(state.get("extra", {}))
