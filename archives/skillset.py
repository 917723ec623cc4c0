"""SPARQ's niches: a skill-set archive keyed by the sorted tuple of a problem's skills.

The vocabulary is the ``M`` most common skills of the seed set (ties alphabetical); a
problem's key is the alphabetically sorted tuple of at most ``max_skills`` distinct
in-vocabulary labels. Labels outside the vocabulary map to nothing, so a problem whose
labels are all unknown has the empty key and no niche (it is NOT_ADDED, cell -1): an
"unlabelled" niche would collect the labeller's failures.

Cells are numbered canonically, independent of insertion order: keys of one skill first,
then of two, then of three, each size in the colexicographic order of the skills'
vocabulary positions. So ``stats.num_cells`` is every possible key
(C(M,1) + ... + C(M,k): 298 for the 12 bundled skills, 166,750 for SPARQ's M = 100, k = 3)
and elites are stored sparsely.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from math import comb
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from archives.base import (
    AddStatus,
    ArchiveBase,
    ArchiveBuildError,
    ArchiveStats,
    Elite,
    check_batch,
    read_elites,
    read_state,
    write_snapshot,
)
from archives.niches import SkillNiches

__all__ = ["SkillSetArchive", "normalize_skill", "parse_skill_labels", "skill_key", "skill_vocabulary"]

FORMAT_VERSION = 1
_NO_EMBEDDING = np.zeros(0, dtype=np.float32)
_NO_EMBEDDING.setflags(write=False)
_SEPARATORS = re.compile(r"[,;\n]")
_SPACES = re.compile(r"[\s\-]+")

Descriptor = str | Sequence[str] | None


def normalize_skill(label: str) -> str:
    """Canonical label: case-folded, spaces and hyphens as '_', outer punctuation dropped."""
    text = label.strip().strip(".:;'\"`*()[]{}").strip().casefold()
    return _SPACES.sub("_", text)


def parse_skill_labels(text: str | None) -> list[str]:
    """Labels of a comma-joined string ("a, b"), normalised, empty parts dropped, in order."""
    if not text:
        return []
    return [s for s in (normalize_skill(p) for p in _SEPARATORS.split(text)) if s]


def skill_vocabulary(labels: Iterable[str | None], m: int) -> tuple[str, ...]:
    """The ``m`` most common normalised labels over rows of comma-joined labels.

    Ties are broken alphabetically, so the vocabulary is a function of the label multiset.
    """
    if m < 1:
        raise ValueError(f"m must be >= 1; got {m}")
    counts = Counter(s for text in labels for s in dict.fromkeys(parse_skill_labels(text)))
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return tuple(s for s, _ in ranked[:m])


def skill_key(labels: Descriptor, vocabulary: Iterable[str], max_skills: int) -> tuple[str, ...]:
    """Sorted tuple of the first ``max_skills`` distinct in-vocabulary labels (others dropped)."""
    vocab = vocabulary if isinstance(vocabulary, set | frozenset | dict) else set(vocabulary)
    items = parse_skill_labels(labels) if labels is None or isinstance(labels, str) else \
        [normalize_skill(s) for s in labels]
    kept = [s for s in dict.fromkeys(items) if s in vocab][:max_skills]
    return tuple(sorted(kept))


class SkillSetArchive(ArchiveBase):
    """One elite per skill-set key over a fixed vocabulary.

    Args:
        vocabulary: distinct normalised skill names (e.g. from :func:`skill_vocabulary`).
        max_skills: the most skills in a key (SPARQ's k = 3).
    """

    kind = "skillset"
    labels_skills = True

    def __init__(self, *, vocabulary: Sequence[str], max_skills: int = 3) -> None:
        vocab = tuple(vocabulary)
        if not vocab:
            raise ValueError("vocabulary must hold at least one skill")
        for i, s in enumerate(vocab):
            if not isinstance(s, str) or not s or normalize_skill(s) != s:
                raise ValueError(f"vocabulary[{i}] must be a normalised skill name; got {s!r}")
        if len(set(vocab)) != len(vocab):
            raise ValueError("vocabulary must not repeat a skill")
        if max_skills < 1:
            raise ValueError(f"max_skills must be >= 1; got {max_skills}")
        self.vocabulary, self.max_skills = vocab, int(max_skills)
        self._pos = {s: i for i, s in enumerate(vocab)}
        m = len(vocab)
        # Cells of keys with fewer skills come first: offset[s] = cells of sizes 1..s-1.
        self._offset = [0]
        for size in range(1, self.max_skills + 1):
            self._offset.append(self._offset[-1] + comb(m, size))
        self.cells = self._offset[-1]
        self._elites: dict[int, tuple[str, float, int]] = {}  # cell -> (id, quality, step)
        self._stats: ArchiveStats | None = None

    @classmethod
    def from_config(cls, cfg: Any, *, seed: int, embeddings: np.ndarray,
                    seed_skills: Sequence[str | None]) -> SkillSetArchive:
        """The ``cfg.skills`` most common seed skills, keys of at most ``cfg.max_skills``."""
        vocab = skill_vocabulary(seed_skills, cfg.skills)
        if not vocab:
            raise ArchiveBuildError("'skillset' needs seed skill labels, but the seeds have none "
                                    "(map a column with seeds.skill)")
        return cls(vocabulary=vocab, max_skills=cfg.max_skills)

    def new_empty(self) -> SkillSetArchive:
        """A new archive with the same vocabulary and max_skills and no elites."""
        return SkillSetArchive(vocabulary=self.vocabulary, max_skills=self.max_skills)

    def niches(self) -> SkillNiches:
        return SkillNiches(self, self.data())

    # ------------------------------------------------------------------ keys and cells

    def key_of(self, labels: Descriptor) -> tuple[str, ...]:
        return skill_key(labels, self._pos, self.max_skills)

    def cell_of_key(self, key: Sequence[str]) -> int:
        """Canonical cell of a key (-1 for the empty key)."""
        if not key:
            return -1
        pos = sorted(self._pos[s] for s in key)
        # Colexicographic rank of a combination: sum over j of C(c_j, j + 1).
        return self._offset[len(pos) - 1] + sum(comb(c, j + 1) for j, c in enumerate(pos))

    def skills_of(self, cell: int) -> tuple[str, ...]:
        """The key of a cell (the inverse of :meth:`cell_of_key`)."""
        if not 0 <= cell < self.cells:
            raise ValueError(f"cell must be in [0, {self.cells}); got {cell}")
        size = next(s for s in range(1, self.max_skills + 1) if cell < self._offset[s])
        rank = cell - self._offset[size - 1]
        pos = []
        for j in range(size, 0, -1):  # greedy decoding of the combinatorial number system
            c = j - 1
            while comb(c + 1, j) <= rank:
                c += 1
            pos.append(c)
            rank -= comb(c, j)
        return tuple(sorted(self.vocabulary[c] for c in pos))

    def _cells(self, descriptors: Sequence[Descriptor]) -> np.ndarray:
        if isinstance(descriptors, str) or not isinstance(descriptors, Sequence):
            raise ValueError(f"descriptors must be a sequence of skill lists; got {type(descriptors).__name__}")
        out = np.zeros(len(descriptors), dtype=np.int64)
        for i, d in enumerate(descriptors):
            if d is not None and not isinstance(d, str) and not all(isinstance(s, str) for s in d):
                raise ValueError(f"descriptors[{i}] must be a string, a list of strings or None; got {d!r}")
            out[i] = self.cell_of_key(self.key_of(d))
        return out

    def index_of(self, descriptors: Sequence[Descriptor]) -> np.ndarray:
        """Cell of each row's key (-1 when no label is in the vocabulary)."""
        return self._cells(descriptors)

    # ------------------------------------------------------------------ insertion

    def add(self, ids: Sequence[str], descriptors: Sequence[Descriptor], qualities: Sequence[float], *,
            steps: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Insert rows in order; descriptors are label lists or comma-joined label strings."""
        cells = self._cells(descriptors)
        ids, qual, step = check_batch(ids, qualities, steps, cells.size)
        status = np.zeros(len(ids), dtype=np.int8)
        for i, cell in enumerate(cells.tolist()):
            if cell < 0:
                continue  # no niche: NOT_ADDED
            inc = self._elites.get(cell)
            if inc is None:
                status[i] = AddStatus.NEW
            elif qual[i] > inc[1]:
                status[i] = AddStatus.IMPROVE_EXISTING
            else:
                continue
            self._elites[cell] = (ids[i], float(qual[i]), int(step[i]))
            self._stats = None
        return status, cells

    # ------------------------------------------------------------------ queries

    def __len__(self) -> int:
        return len(self._elites)

    def retrieve(self, descriptors: Sequence[Descriptor]) -> tuple[np.ndarray, list[str | None]]:
        cells = self.index_of(descriptors).tolist()
        found = [self._elites.get(c) for c in cells]
        return np.array([f is not None for f in found], dtype=bool), [f[0] if f else None for f in found]

    def _elite_at(self, cell: int) -> Elite:
        ident, quality, step = self._elites[cell]
        return Elite(id=ident, cell=cell, quality=quality, step=step, embedding=_NO_EMBEDDING)

    def _holds(self, cell: int) -> bool:
        return cell in self._elites

    def _qualities(self) -> np.ndarray:
        return np.array([self._elites[c][1] for c in sorted(self._elites)], dtype=np.float64)

    def occupied(self) -> np.ndarray:
        return np.array(sorted(self._elites), dtype=np.int64)

    def data(self) -> pa.Table:
        """Elites sorted by cell: cell, id, quality, step, skills (sorted, comma-joined)."""
        cells = sorted(self._elites)
        rows = [self._elites[c] for c in cells]
        return pa.table({
            "cell": pa.array(cells, type=pa.int64()),
            "id": pa.array([r[0] for r in rows], type=pa.string()),
            "quality": pa.array([r[1] for r in rows], type=pa.float64()),
            "step": pa.array([r[2] for r in rows], type=pa.int64()),
            "skills": pa.array([",".join(self.skills_of(c)) for c in cells], type=pa.string()),
        })

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SkillSetArchive):
            return NotImplemented
        return (self.vocabulary, self.max_skills, self._elites) == (other.vocabulary, other.max_skills,
                                                                     other._elites)

    # ------------------------------------------------------------------ persistence

    def save(self, directory: Path, *, extra: Mapping[str, Any] | None = None) -> None:
        state = {"format_version": FORMAT_VERSION, "kind": self.kind, "vocabulary": list(self.vocabulary),
                 "max_skills": self.max_skills, "cells": self.cells, "num_elites": len(self),
                 "extra": dict(extra or {})}
        write_snapshot(Path(directory), self.data(), state)

    @classmethod
    def load(cls, directory: Path) -> tuple[SkillSetArchive, dict[str, Any]]:
        state = read_state(directory, FORMAT_VERSION)
        archive = cls(vocabulary=state["vocabulary"], max_skills=state["max_skills"])
        table = read_elites(directory, state["num_elites"])
        cells = table.column("cell").to_pylist()
        if any(not 0 <= c < archive.cells for c in cells) or len(set(cells)) != len(cells):
            raise ValueError(f"elites.parquet cells must be distinct and in [0, {archive.cells})")
        for c, ident, q, s in zip(cells, table.column("id").to_pylist(), table.column("quality").to_pylist(),
                                  table.column("step").to_pylist(), strict=True):
            archive._elites[c] = (ident, float(q), int(s))
        return archive, dict(state.get("extra", {}))
