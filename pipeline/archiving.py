"""Which archive a campaign uses, and what each kind places rows by (its descriptors).

CVT and novelty archives place rows by their problem embedding; the skill-set archive by
the skill labels stored in the candidates' `skill` column. Both the live campaign and
`rederive_archive` go through `descriptors_for`, so they feed an archive identically.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from archives import Archive, CVTArchive, NoveltyArchive, SkillSetArchive, build_centroids, skill_vocabulary
from pipeline.config import ArchiveConfig, ConfigError


class ArchiveSetupError(ConfigError):
    """The configured archive cannot be built from these seeds; the message names the key."""


def build_archive(cfg: ArchiveConfig, *, seed: int, embeddings: np.ndarray,
                  seed_skills: Sequence[str | None]) -> Archive:
    """A new, empty archive of kind `cfg.kind`, fitted to the seeds where the kind needs it."""
    if cfg.kind == "cvt":
        centroids = build_centroids(embeddings, n_cells=cfg.cells, seed=seed, kmeans_iters=cfg.kmeans_iters)
        return CVTArchive(centroids=centroids)
    if cfg.kind == "novelty":
        return NoveltyArchive(dim=int(embeddings.shape[1]), radius=cfg.radius, capacity=cfg.cells)
    if cfg.kind == "skillset":
        vocab = skill_vocabulary(seed_skills, cfg.skills)
        if not vocab:
            raise ArchiveSetupError("config key 'archive.kind': 'skillset' needs seed skill labels, but the "
                                    "seeds have none (map a column with seeds.skill)")
        return SkillSetArchive(vocabulary=vocab, max_skills=cfg.max_skills)
    raise ArchiveSetupError(f"config key 'archive.kind': unknown archive kind {cfg.kind!r}")


def uses_skills(archive: Archive) -> bool:
    return isinstance(archive, SkillSetArchive)


def descriptors_for(archive: Archive, embeddings: Sequence[object], skills: Sequence[str | None]) -> object:
    """Descriptors of rows for `archive`: an (n, dim) array, or the rows' skill strings."""
    if uses_skills(archive):
        return list(skills)
    if not len(embeddings):
        return np.zeros((0, getattr(archive, "dim", 1)), dtype=np.float32)
    return np.asarray([np.asarray(e, dtype=np.float32) for e in embeddings], dtype=np.float32)


def table_descriptors(archive: Archive, table: pa.Table) -> object:
    """Descriptors of candidate rows read from the shards."""
    if uses_skills(archive):
        return descriptors_for(archive, [], table["skill"].to_pylist())
    return descriptors_for(archive, table["embedding"].to_pylist(), [])


def has_descriptor(archive: Archive, embedding: object | None, skill: str | None) -> bool:
    """Whether a row can be placed at all (ok rows always have an embedding; skills may be
    missing when a row was not labelled)."""
    return skill is not None if uses_skills(archive) else embedding is not None
