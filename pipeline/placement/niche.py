"""Targets of the niche operator (ACES-style): steer a child toward an empty niche.

Where a child should go is the archive kind's own answer (`Archive.niches()`, its targets
described in archives/niches.py: a nearby empty CVT cell, a spot between two novelty
niches, a neighbouring skill-set key); this module reads it once per step (`NicheView`) and
says what the prompt's {{target}} asks for (`target_text`).

Draws use the campaign's checkpointed RNG; otherwise pure given the archive's state.
"""

from __future__ import annotations

import numpy as np

from archives import Archive, NicheTarget, skill_neighbours

__all__ = ["NicheTarget", "NicheView", "skill_neighbours", "target_text"]


class NicheView:
    """The archive's occupancy, read once per step, answering niche targets for parents."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        self.niches = archive.niches()

    def target(self, cell: int | None, rng: np.random.Generator) -> NicheTarget:
        """Where a child of a parent in `cell` should go (None: the parent has no niche)."""
        return self.niches.target(-1 if cell is None else int(cell), rng)


def target_text(target: NicheTarget, example_problem: str | None) -> str:
    """What the prompt's {{target}} says."""
    if target.skills:
        return "a problem that uses the skills " + ", ".join(s.replace("_", " ") for s in target.skills)
    if example_problem:
        return f'a problem like "{example_problem}"'
    return "a problem of a different kind"
