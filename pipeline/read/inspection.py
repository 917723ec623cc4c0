"""What a run directory holds, summarised: status counts, archive, elites, lineage, yield.

Pure functions over the committed tables of a run directory (`load_run` reads them once,
validating every file it touches); `sparq inspect`, `sparq report` and the Prefect flow's
artifacts all build on `summarize` and `lineage`. No Prefect and no plotting here.

Named `inspection`, not `inspect`: a module called `inspect` inside a package shadows the
standard library's (which dataclasses imports) whenever the package directory is on sys.path.

The elites come from the archive snapshot (RUN/archive/elites.parquet, the archive's own
answer for any archive kind) joined with their candidate rows. A crash between the snapshot
and the checkpoint leaves a snapshot of the uncommitted next step; the elites are then
derived from the committed candidates with the archive rule (`derive_elites`), which the
archive property (docs/run-directory.md, `pipeline.loop.campaign.rederive_archive`) makes equal to a snapshot
of the committed step.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from archives import ARCHIVE_KINDS, snapshot_kind
from pipeline.store.records import CANDIDATES_SCHEMA, METRICS_SCHEMA, ArchiveOutcome, Status, since_rescore
from pipeline.store.storage import RunDir, RunError, shard_name

# The embedding is the bulk of a shard and nothing here needs it.
CANDIDATE_COLUMNS = [f.name for f in CANDIDATES_SCHEMA if f.name != "embedding"]
# Only what is shown, so metrics files with more (or newer) columns read the same.
METRIC_COLUMNS = ["step", "candidates", "accepted", "num_elites", "coverage", "qd_score"]
HISTOGRAM_BINS = 10
ARCHIVED = (ArchiveOutcome.NEW, ArchiveOutcome.IMPROVE)


class InspectError(RunError):
    """A run directory (or an id in it) that cannot be inspected; the message names which."""


@dataclass(frozen=True)
class RunTables:
    """The committed content of a run directory, as read by `load_run`."""

    path: Path
    run_id: str
    step: int  # last committed step
    candidates: pa.Table  # CANDIDATE_COLUMNS, steps 0..step, in (step, slot) order
    metrics: pa.Table  # METRIC_COLUMNS, steps 0..step
    elites: list[dict[str, Any]]  # candidate rows of the elites, cell/quality as archived, by cell
    elites_source: str  # "snapshot" or why they were derived from the shards
    archive_kind: str  # the snapshot's state.json `kind` (archives.LEGACY_KIND if it has none)
    cells: int | None  # number of cells, where the archive kind has a fixed number
    centroids: np.ndarray | None  # (cells, dim) for a kind with centroids (CVT), else None
    band: tuple[float, float] | None  # the run's quality band [lo, hi], if its config says


# -- reading -------------------------------------------------------------------------
def _read_parquet(path: Path, what: str, columns: list[str] | None = None) -> pa.Table:
    if not path.is_file():
        raise InspectError(f"{what} {path} is missing")
    try:
        return pq.read_table(path, columns=columns)
    except (OSError, pa.ArrowException) as exc:
        raise InspectError(f"{what} {path} is unreadable ({_first_line(exc)})") from None


def _read_shard(path: Path) -> pa.Table:
    """A candidates shard's CANDIDATE_COLUMNS; nullable columns that the schema gained after
    the shard was written (records.py appends them) come back as nulls."""
    schema = pa.schema([CANDIDATES_SCHEMA.field(c) for c in CANDIDATE_COLUMNS])
    if not path.is_file():
        raise InspectError(f"candidates shard {path} is missing")
    try:
        present = set(pq.read_schema(path).names)
        table = pq.read_table(path, columns=[c for c in CANDIDATE_COLUMNS if c in present])
    except (OSError, pa.ArrowException) as exc:
        raise InspectError(f"candidates shard {path} is unreadable ({_first_line(exc)})") from None
    for f in schema:
        if f.name not in present:
            if not f.nullable:
                raise InspectError(f"candidates shard {path} has no column {f.name!r}")
            table = table.append_column(f, pa.nulls(table.num_rows, type=f.type))
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowException, ValueError) as exc:
        raise InspectError(f"candidates shard {path} does not match the candidates schema "
                           f"({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _read_band(config_path: Path) -> tuple[float, float] | None:
    # Only for shading the band in figures: a config without it is no reason to refuse.
    try:
        quality = tomllib.loads(config_path.read_text(encoding="utf-8")).get("quality", {})
        return float(quality["lo"]), float(quality["hi"])
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError):
        return None


def load_run(path: Path | str) -> RunTables:
    """Read the committed tables of a run directory, or raise InspectError naming the bad file."""
    run = RunDir(path)
    if not run.path.is_dir():
        raise InspectError(f"{run.path} is not a directory")
    if not run.checkpoint_path.is_file():
        raise InspectError(f"{run.path} is not a run directory (no checkpoint.json: no step was "
                           "ever committed there)")
    ckpt = run.read_checkpoint()
    assert ckpt is not None
    shards = [_read_shard(run.candidates_dir / shard_name(step)) for step in range(ckpt.step + 1)]
    candidates = pa.concat_tables(shards).sort_by([("step", "ascending"), ("slot", "ascending")])
    metrics = _read_parquet(run.metrics_path, "metrics table", METRIC_COLUMNS)
    try:
        metrics = metrics.cast(pa.schema([METRICS_SCHEMA.field(c) for c in METRIC_COLUMNS]))
    except (pa.ArrowException, ValueError) as exc:
        raise InspectError(f"metrics table {run.metrics_path} does not match the metrics schema "
                           f"({_first_line(exc)})") from None
    metrics = metrics.filter(pc.less_equal(metrics["step"], ckpt.step))
    state = _read_state(run.archive_dir / "state.json")
    kind = snapshot_kind(state)
    elites, source = _committed_elites(run.archive_dir, state, ckpt.step, candidates)
    centroids_file = ARCHIVE_KINDS[kind].centroids_file if kind in ARCHIVE_KINDS else None
    centroids = _read_centroids(run.archive_dir / centroids_file) if centroids_file else None
    cells = int(centroids.shape[0]) if centroids is not None else state.get("cells")
    return RunTables(path=run.path, run_id=ckpt.run_id, step=ckpt.step, candidates=candidates,
                     metrics=metrics, elites=elites, elites_source=source, archive_kind=kind,
                     cells=None if cells is None else int(cells), centroids=centroids,
                     band=_read_band(run.config_path))


def _read_state(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InspectError(f"archive state {path} is missing")
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InspectError(f"archive state {path} is unreadable ({_first_line(exc)})") from None
    if not isinstance(state, dict):
        raise InspectError(f"archive state {path} must be a JSON object")
    return state


def _read_centroids(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InspectError(f"archive centroids {path} are missing")
    try:
        centroids = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InspectError(f"archive centroids {path} are unreadable ({_first_line(exc)})") from None
    if centroids.ndim != 2 or centroids.shape[0] == 0:
        raise InspectError(f"archive centroids {path} must be a (cells, dim) array; got shape {centroids.shape}")
    return centroids


def _committed_elites(archive_dir: Path, state: dict[str, Any], step: int,
                      candidates: pa.Table) -> tuple[list[dict[str, Any]], str]:
    snap_step = state.get("extra", {}).get("step") if isinstance(state.get("extra"), dict) else None
    if snap_step != step:
        return derive_elites(candidates), (f"derived from the shards (the snapshot is from step {snap_step}, "
                                           f"the checkpoint says {step})")
    path = archive_dir / "elites.parquet"
    table = _read_parquet(path, "archive elites", ["cell", "id", "quality", "step"])
    by_id = {r["id"]: r for r in candidates.to_pylist()}
    elites = []
    for e in table.to_pylist():
        row = by_id.get(e["id"])
        if row is None:
            raise InspectError(f"archive elites {path}: elite {e['id']!r} is not among the committed candidates")
        elites.append({**row, "cell": e["cell"], "quality": e["quality"]})
    return sorted(elites, key=lambda r: r["cell"]), "snapshot"


# -- derived tables --------------------------------------------------------------------
def derive_elites(candidates: pa.Table) -> list[dict[str, Any]]:
    """The archive's elites as candidate rows, by cell (the replace rule of every archive kind).

    Rows enter in (step, slot) order; a seed or an ok candidate with quality > 0 takes its
    cell if the cell is empty or its quality is strictly higher than the incumbent's. After
    a re-scoring, only the seeds, its rows and later ones count (records.since_rescore).
    """
    best: dict[int, dict[str, Any]] = {}
    for row in since_rescore(candidates).sort_by([("step", "ascending"), ("slot", "ascending")]).to_pylist():
        eligible = row["status"] == Status.SEED or (row["status"] in Status.SCORED and row["quality"] > 0)
        if not eligible or row["cell"] is None or row["cell"] < 0:  # -1: no niche for it
            continue
        cur = best.get(row["cell"])
        if cur is None or row["quality"] > cur["quality"]:
            best[row["cell"]] = row
    return [best[c] for c in sorted(best)]


def solve_rate_bin(rate: float, bins: int = HISTOGRAM_BINS) -> int:
    # floor with a tolerance: 0.3 is bin 3 although 0.3 * 10 is 2.9999999999999996.
    return min(bins - 1, int(math.floor(rate * bins + 1e-9)))


def solve_rate_histogram(rates: list[float], bins: int = HISTOGRAM_BINS) -> dict[str, list]:
    """Counts of solve rates in `bins` equal bins over [0, 1] (the last bin includes 1)."""
    counts = [0] * bins
    for r in rates:
        counts[solve_rate_bin(r, bins)] += 1
    return {"edges": [round(i / bins, 6) for i in range(bins + 1)], "counts": counts}


def ok_solve_rates(candidates: pa.Table) -> list[dict[str, Any]]:
    """(step, solve_rate) of every ok candidate that was solved."""
    rows = candidates.select(["step", "status", "solve_rate"]).to_pylist()
    return [{"step": r["step"], "solve_rate": r["solve_rate"]} for r in rows
            if r["status"] == Status.OK and r["solve_rate"] is not None]


def operator_yield(candidates: pa.Table) -> list[dict[str, Any]]:
    """Per mutation operator: candidates, their statuses, archived, and archived per candidate."""
    rows = candidates.select(["step", "operator", "status", "archive_outcome"]).to_pylist()
    stats: dict[str, Counter] = {}
    for r in rows:
        if r["step"] == 0:  # seeds are not the product of an operator
            continue
        c = stats.setdefault(r["operator"], Counter())
        c["candidates"] += 1
        c[r["status"]] += 1
        if r["status"] == Status.OK and r["archive_outcome"] in ARCHIVED:
            c["archived"] += 1
    return [{"operator": op, "candidates": c["candidates"], "ok": c[Status.OK],
             "unparseable": c[Status.UNPARSEABLE], "duplicate": c[Status.DUPLICATE], "invalid": c[Status.INVALID],
             "failed": c[Status.FAILED], "archived": c["archived"], "yield": round(c["archived"] / c["candidates"], 4)}
            for op, c in sorted(stats.items())]


def _first_check(row: dict[str, Any]) -> str:
    return (row["invalid_checks"] or "unknown").split(",")[0]


def validity_summary(candidates: pa.Table) -> dict[str, Any]:
    """The validity checks' outcome over generated candidates: totals, counts per first
    failed check, and per step. Rows never checked (older runs, unparseable, duplicates)
    have a null `valid` and are left out, so an old run shows no share rather than 0."""
    rows = candidates.select(["step", "valid", "invalid_checks", "repair"]).to_pylist()
    checked = [r for r in rows if r["step"] > 0 and r["valid"] is not None]
    per: dict[int, Counter] = {}
    for r in checked:
        per.setdefault(r["step"], Counter())[bool(r["valid"])] += 1
    n_valid = sum(bool(r["valid"]) for r in checked)
    return {
        "checked": len(checked), "valid": n_valid, "invalid": len(checked) - n_valid,
        "repaired": sum(r["repair"] is not None for r in checked),
        "valid_share": round(n_valid / len(checked), 4) if checked else None,
        "reasons": dict(Counter(_first_check(r) for r in checked if not r["valid"]).most_common()),
        "per_step": [{"step": st, "checked": c[True] + c[False], "valid": c[True],
                      "valid_share": round(c[True] / (c[True] + c[False]), 4)} for st, c in sorted(per.items())],
    }


def depth_counts(depths: list[int]) -> list[dict[str, int]]:
    counts = Counter(depths)
    return [{"depth": d, "count": counts[d]} for d in sorted(counts)]


def _elite_view(row: dict[str, Any], max_chars: int | None = None) -> dict[str, Any]:
    problem = row["problem"] or ""
    if max_chars is not None and len(problem) > max_chars:
        problem = problem[: max_chars - 3] + "..."
    return {"id": row["id"], "cell": row["cell"], "quality": row["quality"],
            "solve_rate": row["solve_rate"], "k": row["k"], "step": row["step"], "depth": row["depth"],
            "operator": row["operator"], "problem": problem, "answer": row["answer"],
            # crossover rows have a second parent; niche rows a target (None otherwise)
            "second_parent_id": row.get("second_parent_id"), "target": row.get("target"),
            # None where never checked (seeds, older runs)
            "valid": row.get("valid"), "validity_reason": row.get("validity_reason"),
            "repair": row.get("repair")}


def top_elites(elites: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The `n` best generated elites (seeds are unscored, quality 0, and left out)."""
    generated = [e for e in elites if e["status"] in Status.SCORED]
    generated.sort(key=lambda e: (-e["quality"], e["step"], e["slot"]))
    return [_elite_view(e) for e in generated[:n]]


def summarize(run: RunTables, top: int = 10) -> dict[str, Any]:
    """Everything `sparq inspect` prints, as one JSON-serialisable dict."""
    cands = run.candidates
    steps = cands["step"].to_pylist()
    statuses = cands["status"].to_pylist()
    generated = [s for st, s in zip(steps, statuses, strict=True) if st > 0]
    elites = run.elites
    qd = float(sum(e["quality"] for e in elites))
    # An archive kind without a fixed cell count reports its own coverage in the metrics.
    last = run.metrics.num_rows and run.metrics.slice(run.metrics.num_rows - 1).to_pylist()[0]
    coverage = len(elites) / run.cells if run.cells else (last["coverage"] if last else 0.0)
    operators = operator_yield(cands)
    rates = ok_solve_rates(cands)
    gen_depths = [d for st, d in zip(steps, cands["depth"].to_pylist(), strict=True) if st > 0]
    per_step = run.metrics.to_pylist()
    return {
        "run_dir": str(run.path),
        "run_id": run.run_id,
        "steps": run.step,
        "archive_kind": run.archive_kind,
        "elites_source": run.elites_source,
        "cells": run.cells,
        "seeds": sum(st == 0 for st in steps),
        "candidates": len(generated),
        "status": {s: generated.count(s) for s in (Status.OK, Status.INVALID, Status.UNPARSEABLE, Status.DUPLICATE,
                                                           Status.FAILED)},
        "accepted": sum(o["archived"] for o in operators),
        "elites": len(elites),
        "seed_elites": sum(e["status"] == Status.SEED for e in elites),
        "generated_elites": sum(e["status"] in Status.SCORED for e in elites),
        "valid_elites": sum(e["status"] in Status.SCORED and e.get("valid") is True for e in elites),
        "invalid_elites": sum(e["status"] in Status.SCORED and e.get("valid") is False for e in elites),
        "validity": validity_summary(cands),
        "coverage": round(coverage, 6),
        "qd_score": round(qd, 6),
        "quality_band": list(run.band) if run.band else None,
        "solve_rate_histogram": solve_rate_histogram([r["solve_rate"] for r in rates]),
        "top_elites": top_elites(elites, top),
        "elite_depth": depth_counts([e["depth"] for e in elites]),
        "candidate_depth": depth_counts(gen_depths),
        "operators": operators,
        "per_step": per_step,
    }


# -- lineage -------------------------------------------------------------------------
def resolve_id(candidates: pa.Table, ident: str) -> str:
    """A full candidate id from an id or a unique prefix of one (ids are 16 hex digits)."""
    ids = candidates["id"].to_pylist()
    if ident in ids:
        return ident
    matches = [i for i in ids if i.startswith(ident)] if len(ident) >= 4 else []
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise InspectError(f"elite id {ident!r} is ambiguous: {len(matches)} candidates start with it")
    raise InspectError(f"unknown elite id {ident!r}: no candidate of this run has it")


def lineage(run: RunTables, ident: str) -> list[dict[str, Any]]:
    """The candidate `ident` and its ancestors back to its seed, newest first.

    Follows `parent_id` through the candidates table; the chain must end at a step-0 seed.
    """
    by_id = {r["id"]: r for r in run.candidates.to_pylist()}
    row = by_id[resolve_id(run.candidates, ident)]
    elite_cells = {e["id"]: e["cell"] for e in run.elites}
    chain = []
    seen: set[str] = set()
    while True:
        seen.add(row["id"])
        view = _elite_view(row)
        view["status"] = row["status"]
        view["elite_now"] = row["id"] in elite_cells
        chain.append(view)
        parent = row["parent_id"]
        if parent is None:
            break
        if parent in seen:
            raise InspectError(f"lineage of {ident!r} loops at candidate {parent!r}")
        if parent not in by_id:
            raise InspectError(f"lineage of {ident!r} is broken: parent {parent!r} of candidate "
                               f"{row['id']!r} is not in the committed candidates")
        row = by_id[parent]
    if chain[-1]["step"] != 0 or chain[-1]["status"] != Status.SEED:
        raise InspectError(f"lineage of {ident!r} ends at candidate {chain[-1]['id']!r}, which is not "
                           "a step-0 seed")
    return chain


def deepest_elite(run: RunTables) -> str | None:
    """Id of the generated elite with the longest lineage (best quality among equals)."""
    gen = [e for e in run.elites if e["status"] in Status.SCORED]
    if not gen:
        return None
    return max(gen, key=lambda e: (e["depth"], e["quality"], -e["step"]))["id"]
