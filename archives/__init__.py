"""Quality-diversity archives: CVT (fixed centroids), skill-set (SPARQ's niches), novelty.

All kinds follow the contract in archives/base.py and are registered in archives/registry.py
(`ARCHIVE_KINDS`); `new_archive` builds any kind from the archive config, `load_archive`
reads any snapshot.
"""

from __future__ import annotations

from archives.base import NO_STEP, AddStatus, Archive, ArchiveBuildError, ArchiveStats, Elite
from archives.centroids import build_centroids
from archives.cvt import CVTArchive
from archives.niches import Niches, NicheTarget, skill_neighbours
from archives.novelty import NoveltyArchive
from archives.registry import ARCHIVE_KINDS, LEGACY_KIND, archive_class, load_archive, new_archive, snapshot_kind
from archives.skillset import SkillSetArchive, parse_skill_labels, skill_key, skill_vocabulary

__all__ = [
    "ARCHIVE_KINDS", "LEGACY_KIND", "NO_STEP", "AddStatus", "Archive", "ArchiveBuildError", "ArchiveStats",
    "CVTArchive", "Elite", "NicheTarget", "Niches", "NoveltyArchive", "SkillSetArchive", "archive_class",
    "build_centroids", "load_archive", "new_archive", "parse_skill_labels", "skill_key", "skill_neighbours",
    "skill_vocabulary", "snapshot_kind",
]
