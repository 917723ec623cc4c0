"""The committed shards of run directories, and a cheap check of each.

Only `step-NNNNNN.parquet` shards up to the step the checkpoint commits are exported
(pipeline.store.storage.RunDir.shard_paths): a shard of a later step or a temporary file is an
uncommitted write and is listed as ignored, never read. Every committed step must have
its candidates and attempts shard; one missing or unreadable is an error naming the file,
or with skip_corrupt a skipped step reported in the card.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from filters.errors import ExportInputError
from pipeline.store.records import ATTEMPTS_SCHEMA, CANDIDATES_SCHEMA
from pipeline.store.storage import RunDir, shard_name


@dataclass(frozen=True)
class ShardSpec:
    """One committed step of one run: its candidates and attempts shards."""

    run_index: int
    run_dir: str
    step: int
    candidates: str
    attempts: str

    @property
    def key(self) -> str:
        return f"{self.run_index:03d}-{self.step:06d}"


@dataclass(frozen=True)
class Skipped:
    path: str
    why: str
    rows: int | None  # candidate rows lost, when the candidates shard could tell


@dataclass(frozen=True)
class RunInfo:
    index: int
    path: str
    committed_step: int
    embedder: str | None  # archive.embedder of RUN/config.toml, None when there is none
    centroids: str | None  # RUN/archive/centroids.npy, None when absent
    domain: str = "math"  # domain.kind of RUN/config.toml (runs written before domains: math)


@dataclass(frozen=True)
class Discovery:
    runs: tuple[RunInfo, ...]
    shards: tuple[ShardSpec, ...]
    missing: tuple[Skipped, ...]  # files a committed step should have and does not
    ignored: tuple[str, ...]  # uncommitted shards and temporary files, never read


def _run_config(run: RunDir) -> dict:
    """RUN/config.toml as a dict ({} when there is none)."""
    if not run.config_path.is_file():
        return {}
    try:
        with run.config_path.open("rb") as fh:
            return tomllib.load(fh)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ExportInputError(f"{run.config_path}: not valid TOML ({exc})") from None


def _run_embedder(data: dict) -> str | None:
    if not data:
        return None
    archive = data.get("archive", {})
    return str(archive.get("embedder", "embedded")) if isinstance(archive, dict) else None


def _run_domain(data: dict) -> str:
    domain = data.get("domain", {})
    return str(domain.get("kind", "math")) if isinstance(domain, dict) else "math"


def discover(run_dirs: list[str]) -> Discovery:
    runs, shards, missing, ignored = [], [], [], []
    seen: set[Path] = set()
    for index, d in enumerate(run_dirs):
        run = RunDir(d)
        if not run.path.is_dir():
            raise ExportInputError(f"run directory {d}: not found")
        if run.path.resolve() in seen:
            raise ExportInputError(f"run directory {d}: given twice")
        seen.add(run.path.resolve())
        ckpt = run.read_checkpoint()  # RunError on an unreadable checkpoint
        if ckpt is None:
            raise ExportInputError(f"run directory {d}: no {run.checkpoint_path.name}, so no committed step "
                                   "(not a run directory, or its first step never committed)")
        centroids = run.archive_dir / "centroids.npy"
        data = _run_config(run)
        runs.append(RunInfo(index, str(run.path), ckpt.step, _run_embedder(data),
                            str(centroids) if centroids.is_file() else None, _run_domain(data)))
        for kind in ("candidates", "attempts"):
            folder = run.path / kind
            committed = {p.name for p in run.shard_paths(kind, upto=ckpt.step)}
            if folder.is_dir():
                ignored += [str(p) for p in sorted(folder.iterdir()) if p.name not in committed]
        for step in range(ckpt.step + 1):
            cand = run.candidates_dir / shard_name(step)
            att = run.attempts_dir / shard_name(step)
            lost = [p for p in (cand, att) if not p.is_file()]
            if lost:
                # The step's candidate rows are lost; the candidates footer can count them.
                rows = _footer(str(cand), CANDIDATES_SCHEMA)[0] if cand.is_file() else -1
                missing += [Skipped(str(p), "missing", rows if rows >= 0 else None) for p in lost]
                continue
            shards.append(ShardSpec(index, str(run.path), step, str(cand), str(att)))
    return Discovery(tuple(runs), tuple(shards), tuple(missing), tuple(ignored))


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def read_shard(path: str, schema: pa.Schema, columns: list[str] | None = None) -> pa.Table:
    """`columns` (default: all) of a shard, typed as `schema`.

    Nullable columns that a newer schema appended (second_parent_id, ...) come back as
    nulls for older shards; a missing required column or an unreadable file raises
    ExportInputError naming the file."""
    wanted = columns or schema.names
    try:
        present = set(pq.read_schema(path).names)
        missing = [n for n in wanted if n not in present and not schema.field(n).nullable]
        if missing:
            raise ExportInputError(f"{path}: not a {_table_name(schema)} shard (no column {missing[0]!r})")
        table = pq.read_table(path, columns=[n for n in wanted if n in present])
        for n in wanted:
            if n not in present:
                table = table.append_column(schema.field(n), pa.nulls(table.num_rows, schema.field(n).type))
        return table.select(wanted).cast(pa.schema([schema.field(n) for n in wanted]))
    except (OSError, pa.ArrowException) as exc:
        raise ExportInputError(f"{path}: unreadable Parquet shard ({_first_line(exc)})") from None


def _table_name(schema: pa.Schema) -> str:
    return schema.metadata[b"sparq.table"].decode()


def _footer(path: str, schema: pa.Schema) -> tuple[int, str | None]:
    """(rows, None) for a readable shard with the schema's required columns; (-1, why) otherwise."""
    try:
        meta = pq.ParquetFile(path).metadata
        got = meta.schema.to_arrow_schema()
    except (OSError, pa.ArrowException) as exc:
        return -1, f"unreadable Parquet ({_first_line(exc)})"
    missing = [f.name for f in schema if not f.nullable and f.name not in got.names]
    if missing:
        return -1, f"not a {_table_name(schema)} shard (no column {missing[0]!r})"
    return meta.num_rows, None


CHECK_META = pd.DataFrame({"key": pd.Series([], dtype=object), "rows": pd.Series([], dtype="int64"),
                           "candidates_error": pd.Series([], dtype=object),
                           "attempts_error": pd.Series([], dtype=object)})


def check_shard(spec: ShardSpec) -> pd.DataFrame:
    """One row per shard: its candidate row count and whether its footers and columns are sound."""
    rows, cand_err = _footer(spec.candidates, CANDIDATES_SCHEMA)
    _, att_err = _footer(spec.attempts, ATTEMPTS_SCHEMA)
    return pd.DataFrame({"key": [spec.key], "rows": [rows], "candidates_error": [cand_err],
                         "attempts_error": [att_err]}).astype(CHECK_META.dtypes.to_dict())
