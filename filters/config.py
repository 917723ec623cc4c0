"""The `[export]` configuration: frozen dataclasses loaded from TOML.

Kept apart from pipeline/config.py's generation config: an export reads finished runs and
has its own knobs. It is read by pipeline/config.py's loader, so the rules are the same:
the packaged defaults (filters/export.toml) load first, a user file overrides any subset
of keys, and unknown keys, wrong types, non-finite numbers and out-of-range values fail
with an `ExportConfigError` whose one-line message names the key.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from filters.errors import ExportConfigError
from pipeline.config import build, check, load_layered, merge, read_toml, to_dict
from pipeline.store.records import Status

DEFAULT_EXPORT_CONFIG = Path(__file__).parent / "export.toml"

SELECTIONS = ("random", "quality", "diversity")
SOURCES = ("student", "generator")
SCHEDULERS = ("processes", "threads", "sync")
HELDOUT_NAME = "heldout"  # the bundled eval split, always a decontamination benchmark


_check = functools.partial(check, error=ExportConfigError)


@dataclass(frozen=True)
class DifficultyConfig:
    enabled: bool = True
    lo: float = 0.1
    hi: float = 0.9

    def validate(self, p: str) -> None:
        _check(0 <= self.lo <= 1, f"{p}.lo", "a number in [0, 1]", self.lo)
        _check(0 <= self.hi <= 1, f"{p}.hi", "a number in [0, 1]", self.hi)
        _check(self.lo <= self.hi, f"{p}.lo", f"lo <= hi ({self.hi})", self.lo)


@dataclass(frozen=True)
class ValidityConfig:
    enabled: bool = True  # the reference answer must agree with the solver majority
    checks: bool = True  # drop rows the generation's validity checks marked invalid

    def validate(self, p: str) -> None:
        pass


@dataclass(frozen=True)
class DedupConfig:
    enabled: bool = True

    def validate(self, p: str) -> None:
        pass


@dataclass(frozen=True)
class NearDupConfig:
    enabled: bool = True
    threshold: float = 0.95
    exact_below: int = 20_000
    nlist: int = 0
    nprobe: int = 3

    def validate(self, p: str) -> None:
        _check(0 < self.threshold <= 1, f"{p}.threshold", "a cosine in (0, 1]", self.threshold)
        _check(self.exact_below >= 0, f"{p}.exact_below", "an integer >= 0", self.exact_below)
        _check(self.nlist >= 0, f"{p}.nlist", "an integer >= 0", self.nlist)
        _check(self.nprobe >= 1, f"{p}.nprobe", "an integer >= 1", self.nprobe)


@dataclass(frozen=True)
class BenchmarkSpec:
    """A benchmark set: a local .jsonl/.parquet file or `hf:NAME`, and the column with the problem."""

    name: str = ""
    source: str = ""
    column: str = "problem"
    split: str = "test"
    subset: str = ""

    def validate(self, p: str) -> None:
        _check(bool(self.name), f"{p}.name", "a non-empty name", self.name)
        _check(self.name != HELDOUT_NAME, f"{p}.name", f"a name other than {HELDOUT_NAME!r} (always included)",
               self.name)
        _check(bool(self.source), f"{p}.source", "a .jsonl/.parquet path or hf:NAME", self.source)
        _check(bool(self.column), f"{p}.column", "a column name", self.column)


@dataclass(frozen=True)
class DecontamConfig:
    enabled: bool = True
    ngram: int = 8
    ngram_threshold: float = 0.5
    cosine_threshold: float = 0.9
    embedder: str = "embedded"
    benchmarks: tuple[BenchmarkSpec, ...] = ()

    def validate(self, p: str) -> None:
        _check(self.ngram >= 1, f"{p}.ngram", "an integer >= 1", self.ngram)
        _check(0 < self.ngram_threshold <= 1, f"{p}.ngram_threshold", "a number in (0, 1]",
               self.ngram_threshold)
        _check(0 < self.cosine_threshold <= 1, f"{p}.cosine_threshold", "a number in (0, 1]",
               self.cosine_threshold)
        _check(bool(self.embedder), f"{p}.embedder", "a model name or path", self.embedder)
        names = [b.name for b in self.benchmarks]
        dup = next((n for n in names if names.count(n) > 1), None)
        _check(dup is None, f"{p}.benchmarks", "unique benchmark names", dup)


@dataclass(frozen=True)
class ExportConfig:
    budget: int = 0
    selection: str = "diversity"
    max_per_cell: int = 0
    max_per_problem: int = 1
    sources: tuple[str, ...] = ("student",)
    statuses: tuple[str, ...] = (Status.OK,)
    seed: int = 0
    scheduler: str = "processes"
    workers: int = 0
    difficulty: DifficultyConfig = field(default_factory=DifficultyConfig)
    validity: ValidityConfig = field(default_factory=ValidityConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    near_dup: NearDupConfig = field(default_factory=NearDupConfig)
    decontam: DecontamConfig = field(default_factory=DecontamConfig)

    def validate(self, p: str) -> None:
        _check(self.budget >= 0, f"{p}.budget", "an integer >= 0 (0 = no budget)", self.budget)
        _check(self.selection in SELECTIONS, f"{p}.selection", f"one of {SELECTIONS}", self.selection)
        _check(self.max_per_cell >= 0, f"{p}.max_per_cell", "an integer >= 0 (0 = no cap)", self.max_per_cell)
        _check(self.max_per_problem >= 0, f"{p}.max_per_problem", "an integer >= 0 (0 = no cap)",
               self.max_per_problem)
        _check(bool(self.sources) and set(self.sources) <= set(SOURCES) and len(set(self.sources)) == len(
            self.sources), f"{p}.sources", f"a non-empty list of distinct values from {SOURCES}", list(self.sources))
        _check(bool(self.statuses) and set(self.statuses) <= set(Status.ALL), f"{p}.statuses",
               f"a non-empty list of values from {Status.ALL}", list(self.statuses))
        _check(self.scheduler in SCHEDULERS, f"{p}.scheduler", f"one of {SCHEDULERS}", self.scheduler)
        _check(self.workers >= 0, f"{p}.workers", "an integer >= 0 (0 = one per core)", self.workers)

    def replace(self, **changes: Any) -> ExportConfig:
        cfg = dataclasses.replace(self, **changes)
        cfg.validate("export")
        return cfg


@dataclass(frozen=True)
class ExportFile:
    """An export config file: one `[export]` table."""

    export: ExportConfig = field(default_factory=ExportConfig)


def export_config_from_dict(data: dict[str, Any], source: str = "<dict>") -> ExportConfig:
    """Build from a dict shaped like the `[export]` table, over the packaged defaults."""
    defaults = read_toml(DEFAULT_EXPORT_CONFIG, ExportConfigError)
    return build(ExportFile, merge(defaults, {"export": data}), "", source, ExportConfigError).export


def load_export_config(path: Path | str | None = None) -> ExportConfig:
    """The packaged defaults, overridden by the `[export]` keys of `path` (if given)."""
    return load_layered(ExportFile, DEFAULT_EXPORT_CONFIG, path, ExportConfigError).export


def export_config_toml(cfg: ExportConfig) -> str:
    """TOML text of a resolved export config (for the dataset card)."""
    return tomli_w.dumps({"export": to_dict(cfg)})
