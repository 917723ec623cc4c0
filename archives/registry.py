"""The archive kinds, each registered once: adding a kind is its module and one line here.

A kind is its class: the name it is configured and saved under (``kind``), how it is built
from the archive config (``from_config``) and read back from a snapshot (``load``), and what
the pipeline asks of it (``labels_skills``, ``centroids_file``, ``niches()``; archives/base.py).
pipeline/config.py keeps its own tuple of the names (it must stay cheap to import); a test
checks it equals ``tuple(ARCHIVE_KINDS)``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from archives.base import Archive, ArchiveBase
from archives.cvt import CVTArchive
from archives.novelty import NoveltyArchive
from archives.skillset import SkillSetArchive

__all__ = ["ARCHIVE_KINDS", "LEGACY_KIND", "archive_class", "load_archive", "new_archive", "snapshot_kind"]

# Adding an archive kind: its module, and one entry here (in the order the config lists kinds).
ARCHIVE_KINDS: dict[str, type[ArchiveBase]] = {cls.kind: cls for cls in (CVTArchive, SkillSetArchive, NoveltyArchive)}

# The kind of a snapshot whose state.json has no `kind` (written before there were kinds).
LEGACY_KIND = CVTArchive.kind


def archive_class(kind: str) -> type[ArchiveBase]:
    """The class registered as ``kind``; ValueError naming the kinds if there is none."""
    if kind not in ARCHIVE_KINDS:
        raise ValueError(f"archive kind must be one of {sorted(ARCHIVE_KINDS)}; got {kind!r}")
    return ARCHIVE_KINDS[kind]


def new_archive(cfg: Any, *, seed: int, embeddings: np.ndarray, seed_skills: Sequence[str | None]) -> Archive:
    """A new, empty archive of kind ``cfg.kind`` built from the archive config and the seeds
    (their embeddings and skill labels); ArchiveBuildError when the seeds cannot build it."""
    return archive_class(cfg.kind).from_config(cfg, seed=seed, embeddings=embeddings, seed_skills=seed_skills)


def snapshot_kind(state: Mapping[str, Any]) -> str:
    """The kind a snapshot's state.json names (``LEGACY_KIND`` when it names none)."""
    return str(state.get("kind", LEGACY_KIND))


def load_archive(directory: Path | str) -> tuple[Archive, dict[str, Any]]:
    """Load a snapshot of any kind; snapshots without a `kind` are CVT (written before kinds)."""
    state = json.loads((Path(directory) / "state.json").read_text(encoding="utf-8"))
    kind = state.get("kind", LEGACY_KIND)
    if kind not in ARCHIVE_KINDS:
        raise ValueError(f"state.json kind must be one of {sorted(ARCHIVE_KINDS)}; got {kind!r}")
    return ARCHIVE_KINDS[kind].load(Path(directory))
