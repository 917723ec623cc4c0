"""The run directory: the system of record of a campaign, committed atomically per step.

Layout:
    RUN/config.toml                       resolved config (no secrets)
    RUN/candidates/step-NNNNNN.parquet    every candidate of the step (step 0 = the seeds)
    RUN/attempts/step-NNNNNN.parquet      every solver attempt of the step
    RUN/archive/                          latest archive snapshot (elites.parquet, centroids.npy, state.json)
    RUN/metrics.parquet                   one row per committed step
    RUN/operators.parquet                 one row per committed step and mutation operator
    RUN/checkpoint.json                   the commit point: last committed step, RNG state, counters

Commit protocol for step N: write each file to a temporary name in the same directory,
fsync, rename into place; the checkpoint is renamed last. A step is committed iff the
checkpoint says so. Anything of a later step (a shard, a metrics row, an archive
snapshot, a temporary file) is ignored and removed on resume, so a crash at any instant
loses at most the step in flight and leaves nothing a reader would trust by mistake:
readers only list `step-NNNNNN.parquet` names up to the checkpoint's step.

A write that fails (read-only directory, disk full) raises `RunError` naming the file;
its temporary file is removed and the last committed step is untouched.

Fault injection (tests only, tests/guarantees/test_crash.py): with SPARQ_CRASH_AT=<phase>:<step> in
the environment, `crash_point` SIGKILLs the process when step <step> reaches <phase>:
mutate, solve, embed (campaign.py, after the engine/embedder answered); shard-tmp (the
candidates shard written under its temporary name), shard (renamed into place),
metrics, archive (old snapshot moved aside, new one not yet in place), checkpoint-tmp,
committed (checkpoint renamed); recover (resume removed later shards, metrics not yet
truncated). Unset, it costs one dictionary lookup.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.store.records import ATTEMPTS_SCHEMA, CANDIDATES_SCHEMA, FORMAT_VERSION, METRICS_SCHEMA, OPERATORS_SCHEMA

_SHARD = re.compile(r"^step-(\d{6})\.parquet$")


class RunError(RuntimeError):
    """A run directory that cannot be used as asked; the message says why and what to do."""


class RunLockedError(RunError):
    pass


@dataclass(frozen=True)
class Checkpoint:
    run_id: str
    step: int
    rng_state: dict[str, Any]
    counters: dict[str, float] = field(default_factory=dict)
    format_version: str = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps({"format_version": self.format_version, "run_id": self.run_id,
                           "step": self.step, "rng_state": self.rng_state,
                           "counters": self.counters}, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, path: Path) -> Checkpoint:
        try:
            data = json.loads(text)
            return cls(run_id=data["run_id"], step=int(data["step"]), rng_state=data["rng_state"],
                       counters=data.get("counters", {}), format_version=data["format_version"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise RunError(f"checkpoint {path} is unreadable ({exc}); the run cannot be resumed") from None


CRASH_ENV = "SPARQ_CRASH_AT"


def crash_point(phase: str, step: int) -> None:
    """Test-only: SIGKILL this process here if SPARQ_CRASH_AT names this phase and step."""
    if os.environ.get(CRASH_ENV) == f"{phase}:{step}":
        os.kill(os.getpid(), signal.SIGKILL)


def _write_failed(path: Path, exc: OSError) -> RunError:
    # pyarrow's OSError carries no filename, so the message names the file itself.
    reason = exc.strerror or str(exc) or type(exc).__name__
    return RunError(f"cannot write {path}: {reason}; the last committed step is intact "
                    "(fix the cause, then continue with --resume)")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, crash: tuple[str, int] | None = None) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if crash:
            crash_point(*crash)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        _unlink_quietly(tmp)
        raise _write_failed(path, exc) from None


def atomic_write_table(path: Path, table: pa.Table, crash: tuple[str, int] | None = None) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        pq.write_table(table, tmp, compression="zstd")
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        if crash:
            crash_point(*crash)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        _unlink_quietly(tmp)
        raise _write_failed(path, exc) from None


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:  # a read-only directory: resume removes it later
        pass


def _read_shard(path: Path, schema: pa.Schema) -> pa.Table:
    """Read `schema`'s columns; nullable columns a newer schema appended (older shards lack
    them) come back as nulls."""
    present = set(pq.read_schema(path).names)
    table = pq.read_table(path, columns=[n for n in schema.names if n in present])
    for f in schema:
        if f.name not in present:
            if not f.nullable:
                raise RunError(f"shard {path} has no column {f.name!r}")
            table = table.append_column(f, pa.nulls(table.num_rows, type=f.type))
    return table.select(schema.names)


def shard_name(step: int) -> str:
    return f"step-{step:06d}.parquet"


class RunDir:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.candidates_dir = self.path / "candidates"
        self.attempts_dir = self.path / "attempts"
        self.archive_dir = self.path / "archive"
        self.checkpoint_path = self.path / "checkpoint.json"
        self.metrics_path = self.path / "metrics.parquet"
        self.operators_path = self.path / "operators.parquet"
        self.config_path = self.path / "config.toml"
        self._lock_fh = None

    # -- lifecycle -----------------------------------------------------------------
    def create(self, config_text: str) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self.candidates_dir.mkdir(exist_ok=True)
            self.attempts_dir.mkdir(exist_ok=True)
        except OSError as exc:
            raise _write_failed(Path(exc.filename or self.path), exc) from None
        atomic_write_bytes(self.config_path, config_text.encode("utf-8"))

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive lock so two writers never share a run directory."""
        lock_path = self.path / ".lock"
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fh = open(lock_path, "a+")
        except OSError as exc:
            raise RunError(f"run directory {self.path}: cannot take the lock {lock_path} "
                           f"({exc.strerror or exc})") from None
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise RunLockedError(f"run directory {self.path} is in use by another process "
                                 f"(pid {holder}); wait for it or stop it") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()

    def read_checkpoint(self) -> Checkpoint | None:
        if not self.checkpoint_path.is_file():
            return None
        return Checkpoint.from_json(self.checkpoint_path.read_text(encoding="utf-8"),
                                    self.checkpoint_path)

    # -- commit --------------------------------------------------------------------
    def commit_step(self, step: int, candidates: pa.Table, attempts: pa.Table,
                    metrics_row: pa.Table, checkpoint: Checkpoint,
                    save_archive, operator_rows: pa.Table | None = None) -> None:
        """Write every file of `step`, then the checkpoint (the commit point)."""
        if candidates.schema != CANDIDATES_SCHEMA:
            raise ValueError("candidates table does not match CANDIDATES_SCHEMA")
        atomic_write_table(self.candidates_dir / shard_name(step), candidates, crash=("shard-tmp", step))
        crash_point("shard", step)
        atomic_write_table(self.attempts_dir / shard_name(step), attempts.cast(ATTEMPTS_SCHEMA))
        metrics = self.read_metrics(upto=step - 1)
        metrics = pa.concat_tables([metrics, metrics_row.cast(METRICS_SCHEMA)])
        atomic_write_table(self.metrics_path, metrics)
        if operator_rows is not None:
            ops = pa.concat_tables([self.read_operators(upto=step - 1), operator_rows.cast(OPERATORS_SCHEMA)])
            atomic_write_table(self.operators_path, ops)
        crash_point("metrics", step)
        self._write_archive(save_archive, step)
        atomic_write_bytes(self.checkpoint_path, checkpoint.to_json().encode("utf-8"),
                           crash=("checkpoint-tmp", step))
        crash_point("committed", step)

    def _write_archive(self, save_archive, step: int) -> None:
        tmp = self.path / f".archive.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            save_archive(tmp)
            old = self.path / ".archive.old"
            shutil.rmtree(old, ignore_errors=True)
            if self.archive_dir.exists():
                os.replace(self.archive_dir, old)
            crash_point("archive", step)
            os.replace(tmp, self.archive_dir)
            _fsync_dir(self.path)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise _write_failed(Path(getattr(exc, "filename", None) or self.archive_dir), exc) from None
        shutil.rmtree(old, ignore_errors=True)

    # -- recovery ------------------------------------------------------------------
    def recover(self, committed_step: int) -> list[str]:
        """Remove everything past the committed step; return what was removed."""
        removed = []
        for d in (self.candidates_dir, self.attempts_dir):
            if not d.exists():
                continue
            for p in sorted(d.iterdir()):
                m = _SHARD.match(p.name)
                if (m and int(m.group(1)) > committed_step) or ".tmp-" in p.name:
                    p.unlink()
                    removed.append(str(p.relative_to(self.path)))
        crash_point("recover", committed_step)
        for p in sorted(self.path.iterdir()):
            if ".tmp-" in p.name or p.name == ".archive.old":
                if p.is_dir() and p.name.startswith(".archive"):
                    if not self.archive_dir.exists() and p.name == ".archive.old":
                        os.replace(p, self.archive_dir)  # crashed between the two renames
                        continue
                    shutil.rmtree(p)
                else:
                    p.unlink()
                removed.append(p.name)
        if self.metrics_path.exists():
            metrics = self.read_metrics()
            kept = self.read_metrics(upto=committed_step)
            if kept.num_rows != metrics.num_rows:
                atomic_write_table(self.metrics_path, kept)
                removed.append(f"metrics rows after step {committed_step}")
        if self.operators_path.exists():
            ops = self.read_operators()
            kept = self.read_operators(upto=committed_step)
            if kept.num_rows != ops.num_rows:
                atomic_write_table(self.operators_path, kept)
                removed.append(f"operators rows after step {committed_step}")
        return removed

    # -- readers -------------------------------------------------------------------
    def shard_paths(self, kind: str, upto: int | None = None) -> list[Path]:
        d = self.path / kind
        if not d.exists():
            return []
        out = []
        for p in sorted(d.iterdir()):
            m = _SHARD.match(p.name)
            if m and (upto is None or int(m.group(1)) <= upto):
                out.append(p)
        return out

    def read_candidates(self, upto: int | None = None, columns: list[str] | None = None) -> pa.Table:
        schema = CANDIDATES_SCHEMA if columns is None else pa.schema(
            [CANDIDATES_SCHEMA.field(c) for c in columns])
        tables = [_read_shard(p, schema) for p in self.shard_paths("candidates", upto)]
        if not tables:
            return schema.empty_table()
        return pa.concat_tables([t.cast(schema) for t in tables])

    def read_attempts(self, upto: int | None = None) -> pa.Table:
        tables = [pq.read_table(p) for p in self.shard_paths("attempts", upto)]
        return pa.concat_tables(tables) if tables else ATTEMPTS_SCHEMA.empty_table()

    def read_operators(self, upto: int | None = None) -> pa.Table:
        """Per-step, per-operator yield (empty for runs written before the table existed)."""
        if not self.operators_path.exists():
            return OPERATORS_SCHEMA.empty_table()
        table = pq.read_table(self.operators_path).cast(OPERATORS_SCHEMA)
        if upto is not None:
            import pyarrow.compute as pc

            table = table.filter(pc.less_equal(table["step"], upto))
        return table

    def read_metrics(self, upto: int | None = None) -> pa.Table:
        if not self.metrics_path.exists():
            return METRICS_SCHEMA.empty_table()
        table = _read_shard(self.metrics_path, METRICS_SCHEMA).cast(METRICS_SCHEMA)
        if upto is not None:
            import pyarrow.compute as pc

            table = table.filter(pc.less_equal(table["step"], upto))
        return table
