"""Parent selection: the archive's uniform-over-cells rule and SPARQ's four variants (§2.1).

Every function here is pure given its inputs and the campaign's numpy RNG, which is
checkpointed with each step, so a resumed run draws the same parents.

- ``archive``: uniform over the archive's occupied cells, the cell's elite is the parent.
- ``static_uniform``: the working set is the seeds, uniformly.
- ``static_diverse``: a niche uniformly among the seeds' niches, then a seed in it.
- ``dynamic_uniform``: the working set is the top-T archive-eligible rows by quality.
- ``dynamic_diverse``: the top-T rows of each niche; a niche uniformly, then a row in it.

A row's niche is its archive cell (CVT cell, novelty niche, or skill-set key's cell).
Ties in quality are broken by row id, a content hash: effectively at random but
reproducibly. (By (step, slot) the bundled seeds, which are grouped by skill, would fill
the initial top-T from the first few skills only.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SELECTIONS = ("archive", "static_uniform", "static_diverse", "dynamic_uniform", "dynamic_diverse")
NO_NICHE = -1  # rows without a niche (e.g. a skill-set row with no known skill) share this one


@dataclass(frozen=True)
class PoolRow:
    """What selection needs of an archive-eligible row (a seed, or ok with quality > 0)."""

    id: str
    quality: float
    niche: int | None
    seed: bool
    disputed: bool = False


def working_set(rows: Sequence[PoolRow], selection: str, *, working_set: int, niche_size: int) -> list[PoolRow]:
    """The rows a variant draws from, in a canonical order (quality desc, then id)."""
    if selection not in SELECTIONS[1:]:
        raise ValueError(f"selection must be one of {SELECTIONS[1:]}; got {selection!r}")
    ranked = sorted(rows, key=lambda r: (-r.quality, r.id))
    if selection.startswith("static"):
        return [r for r in ranked if r.seed]
    if selection == "dynamic_uniform":
        return ranked[:working_set]
    kept: list[PoolRow] = []
    per_niche: dict[int, int] = {}
    for r in ranked:
        key = NO_NICHE if r.niche is None else r.niche
        if per_niche.get(key, 0) < niche_size:
            per_niche[key] = per_niche.get(key, 0) + 1
            kept.append(r)
    return kept


def draw_uniform(members: Sequence[str], n: int, rng: np.random.Generator) -> list[str]:
    if not members:
        raise ValueError("cannot select parents from an empty working set")
    return [members[i] for i in rng.integers(0, len(members), size=n).tolist()]


def draw_diverse(groups: dict[int, list[str]], n: int, rng: np.random.Generator) -> list[str]:
    """A niche uniformly (niches in sorted order), then a member uniformly within it."""
    if not groups:
        raise ValueError("cannot select parents from an empty working set")
    keys = sorted(groups)
    picks = rng.integers(0, len(keys), size=n)
    sizes = np.array([len(groups[keys[k]]) for k in picks.tolist()], dtype=np.int64)
    members = rng.integers(0, sizes) if n else np.zeros(0, dtype=np.int64)
    return [groups[keys[k]][m] for k, m in zip(picks.tolist(), members.tolist(), strict=True)]


@dataclass(frozen=True)
class Sampler:
    """A variant's working set, built once per step; `draw` may be called many times."""

    members: tuple[str, ...] = ()  # uniform variants
    groups: tuple[tuple[int, tuple[str, ...]], ...] = ()  # diverse variants: (niche, members), sorted

    def draw(self, n: int, rng: np.random.Generator) -> list[str]:
        if n < 0:
            raise ValueError(f"n must be >= 0; got {n}")
        if self.groups:
            return draw_diverse({k: list(v) for k, v in self.groups}, n, rng)
        return draw_uniform(self.members, n, rng)


def make_sampler(selection: str, rows: Sequence[PoolRow], elites: Sequence[tuple[int, str]], *,
                 working_set_size: int, niche_size: int, exclude_disputed: bool) -> Sampler:
    """The working set of `selection`.

    Args:
        rows: every archive-eligible row, in any order.
        elites: the archive's (cell, elite id), sorted by cell (the ``archive`` variant).
        exclude_disputed: leave out rows flagged ``disputed``; if that leaves nothing to draw
            from, the flag is ignored for this step rather than stalling the run.
    """
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}; got {selection!r}")
    disputed = {r.id for r in rows if r.disputed} if exclude_disputed else set()
    if selection == "archive":
        return Sampler(members=tuple([i for _, i in elites if i not in disputed] or [i for _, i in elites]))
    pool = [r for r in rows if r.id not in disputed] or list(rows)
    ws = working_set(pool, selection, working_set=working_set_size, niche_size=niche_size)
    if selection.endswith("uniform"):
        return Sampler(members=tuple(r.id for r in ws))
    groups: dict[int, list[str]] = {}
    for r in ws:
        groups.setdefault(NO_NICHE if r.niche is None else r.niche, []).append(r.id)
    return Sampler(groups=tuple((k, tuple(groups[k])) for k in sorted(groups)))


def select_parent_ids(selection: str, rows: Sequence[PoolRow], elites: Sequence[tuple[int, str]], n: int,
                      rng: np.random.Generator, *, working_set_size: int, niche_size: int,
                      exclude_disputed: bool) -> list[str]:
    """Ids of ``n`` parents (with replacement); see `make_sampler`."""
    sampler = make_sampler(selection, rows, elites, working_set_size=working_set_size, niche_size=niche_size,
                           exclude_disputed=exclude_disputed)
    return sampler.draw(n, rng)
