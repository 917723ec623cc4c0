"""Which archive a campaign uses, and what each kind places rows by (its descriptors).

Most kinds place rows by their problem embedding; a kind with `labels_skills` (skill-set)
by the skill labels stored in the candidates' `skill` column. Both the live campaign and
`rederive_archive` go through `descriptors_for`, so they feed an archive identically.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from archives import ARCHIVE_KINDS, Archive, ArchiveBuildError, new_archive
from pipeline.config import ArchiveConfig, ConfigError


class ArchiveSetupError(ConfigError):
    """The configured archive cannot be built from these seeds; the message names the key."""


def build_archive(cfg: ArchiveConfig, *, seed: int, embeddings: np.ndarray,
                  seed_skills: Sequence[str | None]) -> Archive:
    """A new, empty archive of kind `cfg.kind`, fitted to the seeds where the kind needs it
    (the kind's `from_config`, archives/registry.py)."""
    if cfg.kind not in ARCHIVE_KINDS:
        raise ArchiveSetupError(f"config key 'archive.kind': unknown archive kind {cfg.kind!r}")
    try:
        return new_archive(cfg, seed=seed, embeddings=embeddings, seed_skills=seed_skills)
    except ArchiveBuildError as exc:
        raise ArchiveSetupError(f"config key 'archive.kind': {exc}") from None


def kind_labels_skills(kind: str) -> bool:
    """Whether archives of `kind` place rows by skill labels, so every new row needs a label
    from the model before it is placed (False for a kind that is not registered)."""
    cls = ARCHIVE_KINDS.get(kind)
    return cls is not None and cls.labels_skills


def uses_skills(archive: Archive) -> bool:
    """Whether `archive` places rows by their skill labels (else by their embedding)."""
    return archive.labels_skills


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
