"""Targets of the niche operator (ACES-style): steer a child toward an empty niche.

Each kind answers through its ``niches()`` method, which reads the archive's occupancy once
(per step) into one of the views below:

- CVT (``CellNiches``): an empty cell among the 3 nearest to the parent's cell (by centroid
  cosine), and as the model's example the elite of the occupied cell nearest to that target.
  With no empty cell left, the target is one of the 3 nearest other cells (then its own
  elite is shown).
- novelty (``FoundedNiches``): no cell exists before a problem founds it, so the target is
  one of the 4 nearest other niches and its elite is the example: the child lands between
  two niches, where a new one can be founded.
- skill-set (``SkillNiches``): an unoccupied key next to the parent's (one skill added, or
  one swapped); the model is told the target skills. With every neighbour occupied, any
  neighbour.

Draws use the caller's RNG (the campaign's checkpointed one); otherwise pure given the
archive's state. What the prompt says about a target is the pipeline's (pipeline/placement/niche.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pyarrow as pa

__all__ = ["CellNiches", "FoundedNiches", "NicheTarget", "Niches", "SkillNiches", "skill_neighbours"]

_NEAREST_EMPTY = 3
_NEAREST_NICHES = 4


@dataclass(frozen=True)
class NicheTarget:
    label: str  # stored in the candidates' `target` column
    example_id: str | None  # the elite shown to the model (recorded as second_parent_id)
    skills: tuple[str, ...] = ()


class Niches(Protocol):
    """An archive's occupancy at one moment, answering niche targets for parents."""

    def target(self, cell: int, rng: np.random.Generator) -> NicheTarget:
        """Where a child of a parent in ``cell`` should go (-1: the parent has no niche)."""
        ...


class SkillKeys(Protocol):
    """What ``skill_neighbours`` and ``SkillNiches`` need of a skill-set archive."""

    vocabulary: tuple[str, ...]
    max_skills: int

    def cell_of_key(self, key: Sequence[str]) -> int: ...

    def skills_of(self, cell: int) -> tuple[str, ...]: ...


def _nearest(vectors: np.ndarray, of: int, among: np.ndarray, k: int) -> np.ndarray:
    """The k rows of `among` nearest to row `of` by cosine (float64; ties: lower index)."""
    if among.size == 0:
        return among
    sims = vectors[among].astype(np.float64) @ vectors[of].astype(np.float64)
    order = np.lexsort((among, -sims))
    return among[order[:k]]


class _Occupancy:
    """The occupied cells of an elites table (``data()``) and their elites' ids."""

    def __init__(self, elites: pa.Table) -> None:
        self.cells = np.asarray(elites.column("cell").to_pylist(), dtype=np.int64)
        self.ids: list[str] = elites.column("id").to_pylist()
        self.id_of = dict(zip(self.cells.tolist(), self.ids, strict=True))


class CellNiches(_Occupancy):
    """Fixed cells with positions (CVT centroids): aim at an empty cell near the parent's."""

    def __init__(self, centroids: np.ndarray, elites: pa.Table) -> None:
        super().__init__(elites)
        self.vectors = centroids

    def target(self, cell: int, rng: np.random.Generator) -> NicheTarget:
        n_cells = self.vectors.shape[0]
        if not 0 <= cell < n_cells:
            return NicheTarget(label=f"cell:{cell}", example_id=None)
        occupied = np.zeros(n_cells, dtype=bool)
        occupied[self.cells] = True
        empty = np.flatnonzero(~occupied)
        others = np.flatnonzero(np.arange(n_cells) != cell)
        near = _nearest(self.vectors, cell, empty if empty.size else others, _NEAREST_EMPTY)
        if near.size == 0:
            return NicheTarget(label=f"cell:{cell}", example_id=None)
        target = int(near[rng.integers(0, near.size)])
        shown = self.cells[self.cells != cell]
        if occupied[target]:
            example: str | None = self.id_of[target]
        elif shown.size:
            example = self.id_of[int(_nearest(self.vectors, target, shown, 1)[0])]
        else:
            example = None
        return NicheTarget(label=f"cell:{target}", example_id=example)


class FoundedNiches(_Occupancy):
    """Niches founded by the data (novelty), each at its elite: aim between two niches."""

    def __init__(self, elites: pa.Table) -> None:
        super().__init__(elites)
        self.vectors: np.ndarray | None = None
        if elites.num_rows:
            flat = elites.column("embedding").combine_chunks().flatten().to_numpy()
            self.vectors = flat.reshape(elites.num_rows, -1)

    def target(self, cell: int, rng: np.random.Generator) -> NicheTarget:
        n = self.cells.size
        if n < 2 or not 0 <= cell < n or self.vectors is None:
            return NicheTarget(label=f"niche:{cell}", example_id=None)
        near = _nearest(self.vectors, cell, np.flatnonzero(np.arange(n) != cell), _NEAREST_NICHES)
        target = int(near[rng.integers(0, near.size)])
        return NicheTarget(label=f"niche:{target}", example_id=self.ids[target])


class SkillNiches(_Occupancy):
    """Skill-set keys: aim at an unoccupied key one edit from the parent's."""

    def __init__(self, archive: SkillKeys, elites: pa.Table) -> None:
        super().__init__(elites)
        self.archive = archive

    def target(self, cell: int, rng: np.random.Generator) -> NicheTarget:
        archive = self.archive
        key = archive.skills_of(cell) if cell >= 0 else ()
        near = skill_neighbours(archive, key)
        if not near:
            return NicheTarget(label="skills:" + ",".join(key), example_id=None, skills=key)
        occupied = set(self.cells.tolist())
        empty = [k for k in near if archive.cell_of_key(k) not in occupied]
        pool = empty or near
        target = pool[int(rng.integers(0, len(pool)))]
        return NicheTarget(label="skills:" + ",".join(target), example_id=None, skills=target)


def skill_neighbours(archive: SkillKeys, key: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Keys one edit away: a skill added (if room) or one swapped; sorted by cell."""
    out: set[tuple[str, ...]] = set()
    for s in archive.vocabulary:
        if s in key:
            continue
        if len(key) < archive.max_skills:
            out.add(tuple(sorted((*key, s))))
        for drop in key:
            out.add(tuple(sorted((*(k for k in key if k != drop), s))))
    return sorted(out, key=archive.cell_of_key)
