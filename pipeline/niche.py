"""Targets of the niche operator (ACES-style): steer a child toward an empty niche.

- CVT: an empty cell among the 3 nearest to the parent's cell (by centroid cosine), and as
  the model's example the elite of the occupied cell nearest to that target. With no empty
  cell left, the target is one of the 3 nearest other cells (then its own elite is shown).
- novelty: no cell exists before a problem founds it, so the target is one of the 4
  nearest other niches and its elite is the example: the child lands between two niches,
  where a new one can be founded.
- skill-set: an unoccupied key next to the parent's (one skill added, or one swapped);
  the model is told the target skills. With every neighbour occupied, any neighbour.

Draws use the campaign's checkpointed RNG; otherwise pure given the archive's state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from archives import Archive, CVTArchive, NoveltyArchive, SkillSetArchive

_NEAREST_EMPTY = 3
_NEAREST_NICHES = 4


@dataclass(frozen=True)
class NicheTarget:
    label: str  # stored in the candidates' `target` column
    example_id: str | None  # the elite shown to the model (recorded as second_parent_id)
    skills: tuple[str, ...] = ()


def _nearest(vectors: np.ndarray, of: int, among: np.ndarray, k: int) -> np.ndarray:
    """The k rows of `among` nearest to row `of` by cosine (float64; ties: lower index)."""
    if among.size == 0:
        return among
    sims = vectors[among].astype(np.float64) @ vectors[of].astype(np.float64)
    order = np.lexsort((among, -sims))
    return among[order[:k]]


class NicheView:
    """The archive's occupancy, read once per step, answering niche targets for parents."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        elites = archive.data()
        self.cells = np.asarray(elites.column("cell").to_pylist(), dtype=np.int64)
        self.ids: list[str] = elites.column("id").to_pylist()
        self.id_of = dict(zip(self.cells.tolist(), self.ids, strict=True))
        self.vectors: np.ndarray | None = None
        if isinstance(archive, CVTArchive):
            self.vectors = archive.centroids
        elif isinstance(archive, NoveltyArchive) and elites.num_rows:
            flat = elites.column("embedding").combine_chunks().flatten().to_numpy()
            self.vectors = flat.reshape(elites.num_rows, -1)

    def target(self, cell: int | None, rng: np.random.Generator) -> NicheTarget:
        """Where a child of a parent in `cell` should go (None: the parent has no niche)."""
        c = -1 if cell is None else int(cell)
        if isinstance(self.archive, SkillSetArchive):
            return self._skill_target(self.archive, c, rng)
        if isinstance(self.archive, NoveltyArchive):
            return self._novelty_target(c, rng)
        if isinstance(self.archive, CVTArchive):
            return self._cvt_target(c, rng)
        raise TypeError(f"archive: no niche targets for {type(self.archive).__name__}")

    def _cvt_target(self, cell: int, rng: np.random.Generator) -> NicheTarget:
        assert self.vectors is not None
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

    def _novelty_target(self, cell: int, rng: np.random.Generator) -> NicheTarget:
        n = self.cells.size
        if n < 2 or not 0 <= cell < n or self.vectors is None:
            return NicheTarget(label=f"niche:{cell}", example_id=None)
        near = _nearest(self.vectors, cell, np.flatnonzero(np.arange(n) != cell), _NEAREST_NICHES)
        target = int(near[rng.integers(0, near.size)])
        return NicheTarget(label=f"niche:{target}", example_id=self.ids[target])

    def _skill_target(self, archive: SkillSetArchive, cell: int, rng: np.random.Generator) -> NicheTarget:
        key = archive.skills_of(cell) if cell >= 0 else ()
        near = skill_neighbours(archive, key)
        if not near:
            return NicheTarget(label="skills:" + ",".join(key), example_id=None, skills=key)
        occupied = set(self.cells.tolist())
        empty = [k for k in near if archive.cell_of_key(k) not in occupied]
        pool = empty or near
        target = pool[int(rng.integers(0, len(pool)))]
        return NicheTarget(label="skills:" + ",".join(target), example_id=None, skills=target)


def skill_neighbours(archive: SkillSetArchive, key: tuple[str, ...]) -> list[tuple[str, ...]]:
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


def target_text(target: NicheTarget, example_problem: str | None) -> str:
    """What the prompt's {{target}} says."""
    if target.skills:
        return "a problem that uses the skills " + ", ".join(s.replace("_", " ") for s in target.skills)
    if example_problem:
        return f'a problem like "{example_problem}"'
    return "a problem of a different kind"
