"""Quality-diversity archives: CVT (fixed centroids), skill-set (SPARQ's niches), novelty.

All kinds follow the contract in archives/base.py; `load_archive` reads any snapshot.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from archives.base import NO_STEP, AddStatus, Archive, ArchiveStats, Elite
from archives.centroids import build_centroids
from archives.cvt import CVTArchive
from archives.novelty import NoveltyArchive
from archives.skillset import SkillSetArchive, parse_skill_labels, skill_key, skill_vocabulary

ARCHIVE_KINDS: dict[str, type] = {"cvt": CVTArchive, "skillset": SkillSetArchive, "novelty": NoveltyArchive}


def load_archive(directory: Path | str) -> tuple[Archive, dict[str, Any]]:
    """Load a snapshot of any kind; snapshots without a `kind` are CVT (written before kinds)."""
    state = json.loads((Path(directory) / "state.json").read_text(encoding="utf-8"))
    kind = state.get("kind", "cvt")
    if kind not in ARCHIVE_KINDS:
        raise ValueError(f"state.json kind must be one of {sorted(ARCHIVE_KINDS)}; got {kind!r}")
    return ARCHIVE_KINDS[kind].load(Path(directory))


__all__ = [
    "ARCHIVE_KINDS", "NO_STEP", "AddStatus", "Archive", "ArchiveStats", "CVTArchive", "Elite", "NoveltyArchive",
    "SkillSetArchive", "build_centroids", "load_archive", "parse_skill_labels", "skill_key", "skill_vocabulary",
]
