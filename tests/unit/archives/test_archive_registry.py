"""The archive-kind registry (archives/registry.py) and what the pipeline asks of a kind.

The pipeline names no archive class: it builds a kind through the registry and asks the
archive (`labels_skills`, `centroids_file`, `niches()`). These tests pin that each kind
answers as the pipeline's old per-class checks did.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from archives import (
    ARCHIVE_KINDS,
    LEGACY_KIND,
    ArchiveBuildError,
    CVTArchive,
    NoveltyArchive,
    SkillSetArchive,
    archive_class,
    build_centroids,
    load_archive,
    new_archive,
    skill_vocabulary,
    snapshot_kind,
)
from archives.base import ArchiveBase
from pipeline import config as config_module
from pipeline.config import ArchiveConfig, ConfigError
from pipeline.placement.archiving import ArchiveSetupError, build_archive, kind_labels_skills, uses_skills
from pipeline.placement.niche import NicheView

DIM = 8
SKILLS = ["ratios, money", "area", None, "money", "algebra, area, ratios", "counting"] * 5


def _unit(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _cfg(kind: str) -> ArchiveConfig:
    return ArchiveConfig(kind=kind, cells=12, kmeans_iters=5, radius=0.4, skills=4, max_skills=2)


def test_the_configs_kind_list_is_the_registrys():
    # pipeline/config.py keeps its own tuple (it must not import faiss); same names, same order.
    assert config_module.ARCHIVE_KINDS == tuple(ARCHIVE_KINDS)
    assert [cls.kind for cls in ARCHIVE_KINDS.values()] == list(ARCHIVE_KINDS)


def test_config_does_not_import_the_archives():
    code = "import sys, pipeline.config; print(any(m == 'archives' or m.startswith('archives.') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[3])
    assert out.stdout.strip() == "False"


def test_archive_class_and_snapshot_kind():
    assert archive_class("cvt") is CVTArchive and archive_class("novelty") is NoveltyArchive
    assert archive_class("skillset") is SkillSetArchive
    with pytest.raises(ValueError, match="archive kind must be one of"):
        archive_class("grid")
    assert snapshot_kind({"kind": "novelty"}) == "novelty"
    assert snapshot_kind({}) == LEGACY_KIND == "cvt"  # snapshots from before kinds were CVT


@pytest.mark.parametrize("kind", list(ARCHIVE_KINDS))
def test_build_archive_is_what_the_old_if_chain_built(kind: str):
    emb = _unit(30)
    cfg = _cfg(kind)
    expected = {
        "cvt": lambda: CVTArchive(centroids=build_centroids(emb, n_cells=12, seed=7, kmeans_iters=5)),
        "novelty": lambda: NoveltyArchive(dim=DIM, radius=0.4, capacity=12),
        "skillset": lambda: SkillSetArchive(vocabulary=skill_vocabulary(SKILLS, 4), max_skills=2),
    }[kind]()
    built = build_archive(cfg, seed=7, embeddings=emb, seed_skills=SKILLS)
    assert type(built) is type(expected) and built == expected
    assert new_archive(cfg, seed=7, embeddings=emb, seed_skills=SKILLS) == expected


def test_build_archive_errors_name_the_config_key():
    with pytest.raises(ArchiveSetupError) as err:
        build_archive(_cfg("skillset"), seed=0, embeddings=_unit(4), seed_skills=[None] * 4)
    assert str(err.value) == ("config key 'archive.kind': 'skillset' needs seed skill labels, but the seeds have "
                              "none (map a column with seeds.skill)")
    assert isinstance(err.value, ConfigError)
    with pytest.raises(ArchiveBuildError):
        new_archive(_cfg("skillset"), seed=0, embeddings=_unit(4), seed_skills=[None] * 4)
    with pytest.raises(ArchiveSetupError, match="unknown archive kind 'grid'"):
        build_archive(_cfg("grid"), seed=0, embeddings=_unit(4), seed_skills=[None] * 4)


@pytest.mark.parametrize("kind", list(ARCHIVE_KINDS))
def test_capabilities_match_the_old_class_checks(kind: str, tmp_path: Path):
    archive = build_archive(_cfg(kind), seed=1, embeddings=_unit(30), seed_skills=SKILLS)
    labels = kind == "skillset"  # the old isinstance(archive, SkillSetArchive)
    assert archive.labels_skills is uses_skills(archive) is kind_labels_skills(kind) is labels
    assert ARCHIVE_KINDS[kind].labels_skills is labels
    # Only CVT has centroids, and its snapshot holds them in the file it names.
    assert (archive.centroids_file is not None) is (kind == "cvt")
    archive.save(tmp_path / "snap")
    if archive.centroids_file is not None:
        assert (tmp_path / "snap" / archive.centroids_file).is_file()
    loaded, _ = load_archive(tmp_path / "snap")
    assert loaded == archive and loaded.kind == kind
    # Every kind answers niche targets, even when empty.
    t = NicheView(archive).target(None, np.random.default_rng(0))
    assert t.example_id is None


def test_unregistered_kind_has_no_labels_and_no_niches():
    assert kind_labels_skills("grid") is False

    class Bare(CVTArchive):
        def niches(self):  # what a kind without niche targets inherits
            return ArchiveBase.niches(self)

    with pytest.raises(TypeError, match="no niche targets for Bare"):
        NicheView(Bare(centroids=_unit(3)))
