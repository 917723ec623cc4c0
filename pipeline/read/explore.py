"""`sparq explore`: one self-contained, interactive HTML page over one or more run directories.

The page (template in pipeline/read/explore_page/, inlined at write time) loads nothing: its
script, style and data are in the file, and a Content-Security-Policy of `default-src 'none'`
keeps it from requesting anything, so it works opened from file:// with no network.

Data shape (`run_data`, one dict per run, JSON-serialisable, columnar so 25,000 candidates
stay a few MB):
- `c`: the candidates in (step, slot) order, one list per column. Rows refer to each other
  by position: `parent`/`parent2` are row indices (-1: none). Strings that repeat
  (operator, status, archive outcome) are codes into `dict`.
- `events`: every change of a cell's holder, in insertion order, as parallel lists
  (`step`, `cell`, `cand`). The archive after step N is the replay of the events of steps
  0..N: the archive property (pipeline.loop.campaign.rederive_archive) says that equals the
  archive the campaign had after step N, so the page computes the timeline from it.
- `xy`: each cell's position on the map: the PCA projection of the CVT centroids (the same
  projection as `sparq report`'s archive map); archives without centroids (skill-set,
  novelty) get their cells laid out on a grid by cell number.
- `blocks`: per step, the solutions and solver attempts of that step's candidates as
  zlib-compressed JSON in base64; the page inflates a block only when a candidate of that
  step is opened (DecompressionStream), which keeps the first paint fast. Attempt texts are
  cut at ATTEMPT_CHARS characters and solutions at SOLUTION_CHARS (the page says so).

Runs that share centroids (same cells, e.g. two seeds of one config) are compared cell by
cell (`exclusive_cells`); runs with different centroids only side by side over steps,
because the same cell number names a different region of embedding space in each.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from archives.plots import pca_2d
from pipeline.read.inspection import InspectError, RunTables, load_run
from pipeline.store.records import Status
from pipeline.store.storage import RunDir, atomic_write_bytes, shard_name

ATTEMPT_CHARS = 1000
SOLUTION_CHARS = 4000
DIGITS = 4  # decimals kept for qualities, solve rates and map positions
EXPLORE_FILE = "explore.html"
_PAGE_PACKAGE = "pipeline.read.explore_page"
_MARK_CSS, _MARK_JS, _MARK_DATA = "/*@CSS@*/", "/*@JS@*/", "@DATA@"


def _round(x: float | None) -> float | None:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    return round(float(x), DIGITS)


def _codes(values: list[str | None], vocab: list[str]) -> list[int]:
    """Indices into `vocab` (extended in place; None becomes the empty string)."""
    index = {v: i for i, v in enumerate(vocab)}
    out = []
    for v in values:
        v = "" if v is None else v
        if v not in index:
            index[v] = len(vocab)
            vocab.append(v)
        out.append(index[v])
    return out


def cell_positions(run: RunTables, candidates_cells: list[int | None]) -> tuple[list[list[float]], str]:
    """(cells, 2) map positions and how they were made. CVT: PCA of the centroids; other
    kinds: a square grid over cell numbers 0..max (they have no positions to project)."""
    if run.centroids is not None:
        xy, explained = pca_2d(run.centroids)
        how = (f"PCA of the {run.centroids.shape[0]} centroids ({run.centroids.shape[1]}-d); the axes explain "
               f"{100 * explained[0]:.0f}% and {100 * explained[1]:.0f}% of their variance")
        return [[_round(a), _round(b)] for a, b in xy.tolist()], how
    n = max(run.cells or 0, max([c for c in candidates_cells if c is not None and c >= 0], default=-1) + 1)
    side = max(1, math.ceil(math.sqrt(n)))
    how = f"{run.archive_kind} archive: no centroids, cells laid out on a grid by cell number"
    return [[float(i % side), float(-(i // side))] for i in range(n)], how


def archive_events(steps: list[int], statuses: list[str], qualities: list[float],
                   cells: list[int | None]) -> dict[str, list[int]]:
    """Every change of a cell's holder when the rows (already in (step, slot) order) are
    re-inserted with the archive rule: a seed, or an ok row with quality > 0, takes its cell
    if the cell is empty or its quality is strictly higher (pipeline.read.inspection.derive_elites).
    A re-scoring step (rows of status `rescored`) first gives every cell back to its seed,
    or empties it (cand -1), then its rows compete as new ones (records.since_rescore)."""
    best: dict[int, float] = {}
    holder: dict[int, int] = {}
    seeds: dict[int, int] = {}  # cell -> its first seed's row index
    ev: dict[str, list[int]] = {"step": [], "cell": [], "cand": []}
    rescored_at = None

    def event(st: int, cell: int, cand: int) -> None:
        ev["step"].append(st)
        ev["cell"].append(cell)
        ev["cand"].append(cand)

    for i, (st, status, q, cell) in enumerate(zip(steps, statuses, qualities, cells, strict=True)):
        if status == Status.RESCORED and rescored_at != st:
            rescored_at = st
            for c in sorted(holder):
                back = seeds.get(c, -1)
                if holder[c] != back:
                    event(st, c, back)
            holder = dict(seeds)
            best = {c: 0.0 for c in seeds}
        eligible = status == Status.SEED or (status in Status.SCORED and q > 0)
        if not eligible or cell is None or cell < 0:
            continue
        if cell not in best or q > best[cell]:
            best[cell] = q
            holder[cell] = i
            if status == Status.SEED:
                seeds.setdefault(cell, i)
            event(st, cell, i)
    return ev


def occupancy_after(events: dict[str, list[int]], step: int) -> dict[int, int]:
    """cell -> row index of its elite after `step` (the replay the page does in JS; cand -1
    empties a cell)."""
    held: dict[int, int] = {}
    for st, cell, cand in zip(events["step"], events["cell"], events["cand"], strict=True):
        if st > step:
            break
        if cand < 0:
            held.pop(cell, None)
        else:
            held[cell] = cand
    return held


def _pack(obj: Any) -> str:
    raw = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    return base64.b64encode(zlib.compress(raw, 6)).decode("ascii")


def _cut(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "\u2026"


def _blocks(steps: list[int], solutions: list[str | None], attempts: dict[int, list[list[Any]]]) -> dict[str, str]:
    by_step: dict[int, list[list[Any]]] = {}
    for i, st in enumerate(steps):
        by_step.setdefault(st, []).append([i, _cut(solutions[i], SOLUTION_CHARS), attempts.get(i, [])])
    return {str(st): _pack(rows) for st, rows in by_step.items()}


def read_attempts(run: RunTables, row_of: dict[str, int]) -> dict[int, list[list[Any]]]:
    """row index -> [[text, extracted, correct (0/1)], ...] in attempt order, from the
    committed attempts shards (steps 0..run.step; a missing shard means no attempts)."""
    rd = RunDir(run.path)
    out: dict[int, list[list[Any]]] = {}
    for s in range(run.step + 1):
        path = rd.attempts_dir / shard_name(s)
        if not path.is_file():
            continue
        try:
            table = pq.read_table(path, columns=["candidate_id", "attempt", "text", "extracted", "correct"])
        except (OSError, pa.ArrowException) as exc:
            raise InspectError(f"attempts shard {path} is unreadable ({str(exc).strip().splitlines()[0]})") from None
        table = table.sort_by([("candidate_id", "ascending"), ("attempt", "ascending")])
        cols = [table[c].to_pylist() for c in ("candidate_id", "text", "extracted", "correct")]
        for cid, text, extracted, correct in zip(*cols, strict=True):
            row = row_of.get(cid)
            if row is not None:
                out.setdefault(row, []).append([_cut(text, ATTEMPT_CHARS), extracted, 1 if correct else 0])
    return out


def _valid_shares(metrics: dict[str, list]) -> list[float]:
    valid, invalid = metrics.get("valid") or [], metrics.get("invalid") or []
    out = []
    for v, i in zip(valid, invalid, strict=True):
        checked = (v or 0) + (i or 0)
        out.append(_round((v or 0) / checked) if checked else 0.0)
    return out if out else [0.0] * len(metrics["step"])


def centroid_key(run: RunTables) -> str | None:
    """A hash of the centroids (None without them): runs with equal keys share their cells."""
    if run.centroids is None:
        return None
    c = np.ascontiguousarray(run.centroids, dtype=np.float32)
    return hashlib.sha256(repr(c.shape).encode() + c.tobytes()).hexdigest()[:16]


def run_data(run: RunTables) -> dict[str, Any]:
    """The explorer's data of one run (see the module doc for the shape)."""
    t: pa.Table = run.candidates
    col = {name: t[name].to_pylist() for name in t.column_names}
    ids = col["id"]
    row_of = {cid: i for i, cid in enumerate(ids)}
    dicts: dict[str, list[str]] = {"op": [], "status": [], "outcome": [], "reason": []}
    xy, projection = cell_positions(run, col["cell"])
    metrics = {name: run.metrics[name].to_pylist() for name in run.metrics.column_names}
    return {
        "run_id": run.run_id,
        "path": str(run.path),
        "steps": run.step,
        "archive_kind": run.archive_kind,
        "cells": len(xy),
        "band": list(run.band) if run.band else None,
        "projection": projection,
        "centroid_key": centroid_key(run),
        "xy": xy,
        "metrics": {"step": metrics["step"], "coverage": [_round(x) for x in metrics["coverage"]],
                    "qd_score": [_round(x) for x in metrics["qd_score"]], "num_elites": metrics["num_elites"],
                    "accepted": metrics["accepted"], "candidates": metrics["candidates"],
                    # share of the step's checked candidates that passed the validity
                    # checks (0 where none was checked: seeds, runs older than the checks)
                    "valid_share": _valid_shares(metrics)},
        "dict": dicts,
        "c": {
            "id": ids,
            "step": col["step"],
            "slot": col["slot"],
            "parent": [row_of.get(p, -1) if p is not None else -1 for p in col["parent_id"]],
            "parent2": [row_of.get(p, -1) if p is not None else -1 for p in col["second_parent_id"]],
            "depth": col["depth"],
            "op": _codes(col["operator"], dicts["op"]),
            "status": _codes(col["status"], dicts["status"]),
            "outcome": _codes(col["archive_outcome"], dicts["outcome"]),
            "reason": _codes(col["reason"], dicts["reason"]),
            "k": col["k"],
            "nc": col["n_correct"],
            "sr": [_round(x) for x in col["solve_rate"]],
            "q": [_round(x) for x in col["quality"]],
            "cell": [-1 if c is None else c for c in col["cell"]],
            "disp": [None if d is None else int(d) for d in col["disputed"]],
            # validity checks: 1 valid, 0 invalid, None not checked; the failed checks' reasons
            "valid": [None if v is None else int(v) for v in col["valid"]],
            "vreason": col["validity_reason"],
            "repair": col["repair"],  # what [validity] repair corrected (None: nothing)
            "maj": col["majority_answer"],
            "share": [_round(x) for x in col["majority_share"]],
            "target": col["target"],
            "problem": col["problem"],
            "answer": col["answer"],
        },
        "events": archive_events(col["step"], col["status"], col["quality"], col["cell"]),
        "blocks": _blocks(col["step"], col["solution"], read_attempts(run, row_of)),
        "rounds": rounds_of(Path(run.path)),
    }


def rounds_of(run_dir: Path) -> list[dict[str, Any]] | None:
    """The per-round rows of the rounds campaign this run belongs to (`sparq rounds` writes
    DIR/rounds.json beside its run DIR/run), trimmed to what the Rounds panel shows; None
    for a run of its own."""
    path = run_dir.parent / "rounds.json"
    if run_dir.name != "run" or not path.is_file():
        return None
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None

    def est(e: dict[str, Any] | None) -> list[float] | None:
        return None if not e else [_round(e["estimate"]), _round(e["ci_lo"]), _round(e["ci_hi"])]

    def diff(d: dict[str, Any] | None) -> list[float] | None:
        return None if not d else [_round(d[key]) for key in ("difference", "ci_lo", "ci_hi", "p_value")]

    return [{"round": r["round"], "tuned": r.get("tuned"), "rows": r.get("rows"), "k": r.get("k"),
             "pass1": est(r.get("pass@1")), "passk": est(r.get("pass@k")), "prev": diff(r.get("vs_previous")),
             "base": diff(r.get("vs_base")), "coverage": _round(r.get("coverage")), "qd": _round(r.get("qd_score")),
             "valid": _round(r.get("valid_share")), "cos": _round(r.get("elite_cosine")),
             "warnings": r.get("warnings", [])} for r in rows]


def exclusive_cells(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Which cells only one run fills (final archives), among the runs that share the first
    run's centroids. Runs with other centroids are listed as not comparable cell by cell."""
    first = runs[0]["centroid_key"]
    group = [i for i, r in enumerate(runs) if first is not None and r["centroid_key"] == first]
    other = [i for i in range(len(runs)) if i not in group]
    filled = [set(occupancy_after(runs[i]["events"], runs[i]["steps"])) for i in group]
    only = {}
    for gi, i in enumerate(group):
        others = set().union(*(f for gj, f in enumerate(filled) if gj != gi)) if len(group) > 1 else set()
        only[str(i)] = sorted(filled[gi] - others)
    return {"group": group, "not_comparable": other, "only": only,
            "both": sorted(set.intersection(*filled)) if filled else []}


def explore_data(runs: Sequence[RunTables]) -> dict[str, Any]:
    """The page's whole data: every run, and the cell comparison of runs sharing centroids."""
    data = [run_data(r) for r in runs]
    return {"generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "attempt_chars": ATTEMPT_CHARS,
            "solution_chars": SOLUTION_CHARS, "runs": data, "compare": exclusive_cells(data)}


def _asset(name: str) -> str:
    return resources.files(_PAGE_PACKAGE).joinpath(name).read_text(encoding="utf-8")


def render_page(data: dict[str, Any]) -> str:
    """The page: template with its CSS, JS and the data inlined. `<` in the JSON is written
    as \\u003c, so no run text (model output) can close the data's script element."""
    page = _asset("explore.html")
    for mark, name in ((_MARK_CSS, "explore.css"), (_MARK_JS, "explore.js")):
        if page.count(mark) != 1:
            raise ValueError(f"explorer template must contain {mark} once")
        page = page.replace(mark, _asset(name))
    head, sep, tail = page.partition(_MARK_DATA)
    if not sep or _MARK_DATA in tail:
        raise ValueError(f"explorer template must contain {_MARK_DATA} once")
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return head + payload.replace("<", "\\u003c") + tail


@dataclass(frozen=True)
class Explorer:
    """What `write_explorer` wrote."""

    path: Path
    bytes: int
    runs: int
    candidates: int  # rows over all runs, seeds included


def default_out(run_dirs: Sequence[Path | str]) -> Path:
    """RUN/report/explore.html for one run; ./explore.html for several."""
    return Path(run_dirs[0]) / "report" / EXPLORE_FILE if len(run_dirs) == 1 else Path(EXPLORE_FILE)


def write_explorer(run_dirs: Sequence[Path | str], out: Path | str | None = None,
                   log: Callable[[str], None] = lambda msg: None) -> Explorer:
    """Read every run (InspectError names a bad one) and write the page to `out`."""
    if not run_dirs:
        raise ValueError("run_dirs must name at least one run directory")
    # Every file is read before anything is printed: a bad one fails with its one-line error.
    runs = [load_run(d) for d in run_dirs]
    data = explore_data(runs)
    path = Path(out) if out is not None else default_out(run_dirs)
    log(f"read {len(runs)} run(s), {sum(r.candidates.num_rows for r in runs)} candidates; writing {path}")
    page = render_page(data).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, page)
    return Explorer(path=path, bytes=len(page), runs=len(runs),
                    candidates=sum(r.candidates.num_rows for r in runs))
