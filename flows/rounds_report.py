"""The per-round report of a rounds campaign (flows/rounds.py): a row per round, and the
markdown / HTML / JSON files written beside the run (DIR/report.md, report.html, rounds.json).

A row holds:
- pass@1 and pass@k on the held-out split with their 95% intervals (bootstrap over problems,
  finetune/evaluate.py), and the paired pass@1 difference against the previous round's
  model and against the base (finetune.metrics.paired_difference: interval and p-value);
- the archive after the round's generation: elites, coverage, QD score; after its
  re-scoring: the elites the new solver kept (cells lost = problems that became too easy
  or too hard), and the mean change of the elites' solve rate;
- the valid share of the round's new candidates (of those the checks could judge) and the
  solve-rate histogram of its new ok candidates (10 bins of 0.1);
- diversity: the elites' mean pairwise cosine similarity of their problem embeddings (higher
  = more alike), cells held by generated elites, and skills held (distinct skill of each
  generated elite's nearest seed); the same mean cosine over the exported rows' problems;
- warnings: valid share falling, or the elites' mean cosine rising, by more than the
  configured thresholds from one round to the next (collapse).

Pure functions of the rounds directory, but for `write_report`.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

BINS = 10


def _eval(directory: Path, r: int) -> dict[str, Any] | None:
    path = directory / ("base" if r == 0 else f"round-{r:02d}") / "eval.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def mean_pairwise_cosine(emb: np.ndarray) -> float | None:
    """Mean cosine similarity over distinct pairs of rows (None for fewer than 2 rows)."""
    if len(emb) < 2:
        return None
    e = np.asarray(emb, dtype=np.float64)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    s = e @ e.T
    n = len(e)
    return float((s.sum() - np.trace(s)) / (n * (n - 1)))


def histogram(rates: list[float]) -> list[int]:
    """Counts of solve rates in [0, 0.1), ..., [0.9, 1.0]."""
    counts = [0] * BINS
    for x in rates:
        counts[min(BINS - 1, int(x * BINS))] += 1
    return counts


def _paired(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any] | None:
    from finetune.compare import per_problem_pass1
    from finetune.metrics import paired_difference

    if a is None or b is None or len(a["per_problem"]) != len(b["per_problem"]):
        return None
    return paired_difference(per_problem_pass1(a), per_problem_pass1(b)).as_dict()


def round_row(directory: str | Path, r: int, state: dict[str, Any], *, warn_valid_drop: float,
              warn_cosine_rise: float) -> dict[str, Any]:
    """Round r's report row (see the module doc)."""
    from pipeline.read.inspection import derive_elites
    from pipeline.store.records import Status
    from pipeline.store.storage import RunDir

    directory = Path(directory)
    info = state["rounds"].get(str(r), {})
    run = RunDir(directory / "run")
    cands = run.read_candidates()
    metrics = run.read_metrics().to_pylist()
    start, end = info.get("start_step", 0), info.get("target_step", 0)
    by_step = {m["step"]: m for m in metrics}
    last = by_step.get(end, metrics[-1] if metrics else {})
    new = [m for m in metrics if start < m["step"] <= end]
    valid, invalid = sum(m["valid"] or 0 for m in new), sum(m["invalid"] or 0 for m in new)
    upto = cands.filter(pc.less_equal(cands["step"], end))
    rows = upto.select(["id", "step", "status", "solve_rate", "parent_id"]).to_pylist()
    rates = [x["solve_rate"] for x in rows if start < x["step"] <= end and x["status"] == Status.OK
             and x["solve_rate"] is not None]
    elites = derive_elites(upto)
    gen = [e for e in elites if e["status"] in Status.SCORED]
    seeds = upto.filter(pc.equal(upto["status"], Status.SEED))
    seed_emb = np.asarray(seeds["embedding"].to_pylist(), dtype=np.float32) if seeds.num_rows else None
    gen_emb = np.asarray([e["embedding"] for e in gen], dtype=np.float32) if gen else np.zeros((0, 1))
    skills = set()
    if seed_emb is not None and len(gen):
        nearest = np.argmax(gen_emb @ seed_emb.T, axis=1)
        seed_skills = seeds["skill"].to_pylist()
        skills = {seed_skills[i] for i in nearest.tolist() if seed_skills[i]}
    # re-scoring at the start of this round
    rescore = None
    if "rescore_step" in info:
        rs = by_step.get(info["rescore_step"])
        old = {x["id"]: x["solve_rate"] for x in rows}
        res = [x for x in upto.filter(pc.equal(upto["step"], info["rescore_step"])).select(
            ["parent_id", "status", "solve_rate", "quality", "archive_outcome"]).to_pylist()
            if x["status"] == Status.RESCORED]
        deltas = [x["solve_rate"] - old[x["parent_id"]] for x in res
                  if x["solve_rate"] is not None and old.get(x["parent_id"]) is not None]
        before = by_step.get(info["rescore_step"] - 1, {})
        rescore = {"elites_rescored": len(res),
                   "kept": sum(x["archive_outcome"] == "new" for x in res),  # still hold a cell
                   "qd_before": before.get("qd_score"), "qd_after": rs["qd_score"] if rs else None,
                   "coverage_after": rs["coverage"] if rs else None,
                   "mean_solve_rate_change": round(float(np.mean(deltas)), 4) if deltas else None}
    export_cos = None
    data_dir = directory / f"round-{r:02d}" / "data" / "data"
    if data_dir.is_dir():
        ids = set()
        for f in sorted(data_dir.glob("*.parquet")):
            ids.update(pq.read_table(f, columns=["id"])["id"].to_pylist())
        emb = cands.filter(pc.is_in(cands["id"], _arr(ids)))["embedding"].to_pylist()
        export_cos = mean_pairwise_cosine(np.asarray(emb, dtype=np.float32)) if emb else None
    ev, prev, base = _eval(directory, r), _eval(directory, r - 1), _eval(directory, 0)
    k = ev["k"] if ev else None
    row = {
        "round": r, "tuned": bool(info.get("tuned")), "rows": info.get("rows"), "train_steps": info.get("train_steps"),
        "steps": [start + 1, end], "pass@1": ev["pass@1"] if ev else None,
        "k": k, "pass@k": ev[f"pass@{k}"] if ev else None,
        "problems": ev["problems"] if ev else None, "n": ev["n"] if ev else None,
        "vs_previous": _paired(ev, prev), "vs_base": _paired(ev, base),
        "elites": last.get("num_elites"), "coverage": last.get("coverage"), "qd_score": last.get("qd_score"),
        "candidates": sum(m["candidates"] for m in new), "valid": valid, "invalid": invalid,
        "valid_share": round(valid / (valid + invalid), 4) if valid + invalid else None,
        "solve_rate_histogram": histogram(rates),
        "elite_cosine": _r(mean_pairwise_cosine(gen_emb)), "generated_cells": len(gen),
        "skills_held": len(skills), "export_cosine": _r(export_cos), "rescore": rescore,
        "seconds": info.get("seconds", {}),
    }
    row["warnings"] = warnings(_previous_row(directory, r), row, warn_valid_drop, warn_cosine_rise)
    return row


def _arr(values):
    import pyarrow as pa

    return pa.array(sorted(values), pa.string())


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _previous_row(directory: Path, r: int) -> dict[str, Any] | None:
    path = directory / f"round-{r - 1:02d}" / "round.json"
    return json.loads(path.read_text(encoding="utf-8")) if r > 1 and path.is_file() else None


def warnings(prev: dict[str, Any] | None, row: dict[str, Any], valid_drop: float, cosine_rise: float) -> list[str]:
    """Collapse warnings of `row` against the previous round's row."""
    out = []
    if prev is None:
        return out
    if prev.get("valid_share") is not None and row.get("valid_share") is not None \
            and prev["valid_share"] - row["valid_share"] > valid_drop:
        out.append(f"valid share fell from {prev['valid_share']:.3f} to {row['valid_share']:.3f} "
                   f"(more than {valid_drop:g})")
    if prev.get("elite_cosine") is not None and row.get("elite_cosine") is not None \
            and row["elite_cosine"] - prev["elite_cosine"] > cosine_rise:
        out.append(f"elites grew alike: mean pairwise cosine {prev['elite_cosine']:.3f} -> "
                   f"{row['elite_cosine']:.3f} (more than +{cosine_rise:g})")
    return out


def load_rows(directory: str | Path) -> list[dict[str, Any]]:
    """The report rows written so far: round 0 (the base's evaluation) and each round's."""
    directory = Path(directory)
    rows = []
    base = _eval(directory, 0)
    if base is not None:
        k = base["k"]
        rows.append({"round": 0, "tuned": False, "pass@1": base["pass@1"], "k": k, "pass@k": base[f"pass@{k}"],
                     "problems": base["problems"], "n": base["n"], "warnings": []})
    for path in sorted(directory.glob("round-*/round.json")):
        rows.append(json.loads(path.read_text(encoding="utf-8")))
    return rows


def _est(e: dict[str, float] | None) -> str:
    return "-" if not e else f"{e['estimate']:.3f} [{e['ci_lo']:.3f}, {e['ci_hi']:.3f}]"


def _diff(d: dict[str, Any] | None) -> str:
    return "-" if not d else f"{d['difference']:+.3f} [{d['ci_lo']:+.3f}, {d['ci_hi']:+.3f}] p={d['p_value']:.2f}"


def _v(x: Any, digits: int = 3) -> str:
    if x is None:
        return "-"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


HEADERS = ["round", "rows", "pass@1 [95% CI]", "pass@k [95% CI]", "vs previous (pass@1)", "vs base (pass@1)",
           "elites", "coverage", "QD", "valid share (checked)", "elite cos", "gen. cells", "skills", "export cos",
           "re-scoring"]


def table_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    out = []
    for x in rows:
        rs = x.get("rescore")
        rescore = "-"
        if rs:
            rescore = f"{rs['kept']} of {rs['elites_rescored']} elites kept"
            if rs.get("mean_solve_rate_change") is not None:
                rescore += f", mean solve rate {rs['mean_solve_rate_change']:+.3f}"
            if rs.get("qd_before") is not None and rs.get("qd_after") is not None:
                rescore += f", QD {rs['qd_before']:.2f} -> {rs['qd_after']:.2f}"
        name = "base" if x["round"] == 0 else str(x["round"]) + ("" if x.get("tuned") else " (not tuned)")
        out.append([name, _v(x.get("rows")), _est(x.get("pass@1")),
                    (f"k={x['k']}: " if x.get("k") else "") + _est(x.get("pass@k")),
                    _diff(x.get("vs_previous")), _diff(x.get("vs_base")), _v(x.get("elites")),
                    _v(x.get("coverage")), _v(x.get("qd_score")), _v(x.get("valid_share")),
                    _v(x.get("elite_cosine")), _v(x.get("generated_cells")), _v(x.get("skills_held")),
                    _v(x.get("export_cosine")), rescore])
    return out


def report_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["# Rounds", "", "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(r) + " |" for r in table_rows(rows)]
    hist = [x for x in rows if x.get("solve_rate_histogram")]
    if hist:
        lines += ["", "Solve rates of each round's new ok candidates (bins of 0.1, from [0, 0.1) to [0.9, 1.0]):", ""]
        lines += [f"- round {x['round']}: {x['solve_rate_histogram']}" for x in hist]
    warn = [(x["round"], w) for x in rows for w in x.get("warnings", [])]
    lines += ["", "Warnings:" if warn else "No collapse warning.", *[f"- round {r}: {w}" for r, w in warn]]
    n = next((x for x in rows if x.get("problems")), None)
    if n:
        lines += ["", f"Held-out split: {n['problems']} problems, n = {n['n']} samples each; intervals are 95% "
                  "bootstrap over problems, differences paired over the same problems (sign-flip p-value)."]
    return "\n".join(lines) + "\n"


def report_html(rows: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADERS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in table_rows(rows))
    warn = "".join(f"<li class=warn>round {x['round']}: {html.escape(w)}</li>" for x in rows
                   for w in x.get("warnings", []))
    hist = "".join(f"<li>round {x['round']}: {x['solve_rate_histogram']}</li>" for x in rows
                   if x.get("solve_rate_histogram"))
    return ("<!doctype html><html><head><meta charset=utf-8><title>sparq rounds</title><style>"
            "body{font-family:system-ui,sans-serif;margin:24px}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}.warn{color:#b00}</style></head><body>"
            f"<h1>Rounds</h1><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            f"<h2>Solve rates of new candidates</h2><ul>{hist}</ul>"
            f"<h2>Warnings</h2><ul>{warn or '<li>none</li>'}</ul></body></html>")


def rebuild(directory: str | Path, *, warn_valid_drop: float = 0.10, warn_cosine_rise: float = 0.05) -> dict[str, str]:
    """Recompute every finished round's row from the directory (e.g. after this module
    changed) and rewrite the report files."""
    from pipeline.store.storage import atomic_write_bytes

    directory = Path(directory)
    state = json.loads((directory / "state.json").read_text(encoding="utf-8"))
    for path in sorted(directory.glob("round-*/round.json")):
        r = int(path.parent.name.split("-")[1])
        row = round_row(directory, r, state, warn_valid_drop=warn_valid_drop, warn_cosine_rise=warn_cosine_rise)
        atomic_write_bytes(path, json.dumps(row, indent=1).encode("utf-8"))
    return write_report(directory)


def write_report(directory: str | Path) -> dict[str, str]:
    """Write DIR/rounds.json, report.md and report.html from the rows so far."""
    from pipeline.store.storage import atomic_write_bytes

    directory = Path(directory)
    rows = load_rows(directory)
    files = {"json": directory / "rounds.json", "md": directory / "report.md", "html": directory / "report.html"}
    atomic_write_bytes(files["json"], json.dumps(rows, indent=1).encode("utf-8"))
    atomic_write_bytes(files["md"], report_markdown(rows).encode("utf-8"))
    atomic_write_bytes(files["html"], report_html(rows).encode("utf-8"))
    return {k: str(v) for k, v in files.items()}
