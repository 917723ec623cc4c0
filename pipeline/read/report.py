"""`sparq report`: the figures of a run as PNG files and one self-contained HTML page.

RUN/report/ gets archive-map.png, progress.png, solve-rates.png, operator-yield.png and
index.html. The page inlines the figures as base64 PNGs and its CSS, loads nothing and runs
no script, so it can be mailed or attached as a single file. Every piece of run text
(problems, answers, operators, paths) is HTML-escaped: generated problems are model output.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from archives import plots
from pipeline.read.inspection import RunTables, deepest_elite, lineage, load_run, ok_solve_rates, summarize
from pipeline.store.records import Status
from pipeline.store.storage import atomic_write_bytes

REPORT_DIR = "report"


@dataclass(frozen=True)
class FigureSpec:
    name: str  # file name under RUN/report/
    title: str
    caption: str


FIGURES = (
    FigureSpec("archive-map.png", "Archive map",
               "Every cell's centroid projected to 2-D with PCA. Hollow grey: empty cell; brown "
               "square: cell still held by a seed (unscored); coloured dot: generated elite, colour "
               "= quality. Nearby dots are cells with similar problems (as the embedder sees them)."),
    FigureSpec("progress.png", "Progress over steps",
               "Coverage (share of cells occupied), QD score (sum of elite qualities) and the "
               "number of candidates archived at each committed step."),
    FigureSpec("solve-rates.png", "Solve rates by step",
               "How often the solver answered each ok candidate correctly. Only problems inside "
               "the green band score quality > 0; most mass at 0 or 1 means too hard or too easy."),
    FigureSpec("operator-yield.png", "Operator yield",
               "What became of each operator's candidates; the label is archived per candidate."),
)


def make_figures(run: RunTables, summary: dict[str, Any]) -> dict[str, bytes]:
    """PNG bytes of each figure in FIGURES, by file name."""
    metrics = summary["per_step"]
    rates = ok_solve_rates(run.candidates)
    ops = summary["operators"]
    figures = {}
    if run.centroids is not None:  # only a CVT archive has cells with positions to draw
        figures["archive-map.png"] = plots.archive_map(run.centroids, [e["cell"] for e in run.elites],
                                                       [e["quality"] for e in run.elites],
                                                       [e["status"] == Status.SEED for e in run.elites])
    return figures | {
        "progress.png": plots.progress([m["step"] for m in metrics], [m["coverage"] for m in metrics],
                                       [m["qd_score"] for m in metrics], [m["accepted"] for m in metrics]),
        "solve-rates.png": plots.solve_rate_histograms([r["step"] for r in rates],
                                                       [r["solve_rate"] for r in rates], band=run.band),
        "operator-yield.png": plots.operator_yield([o["operator"] for o in ops], [o["archived"] for o in ops],
                                                   [o["ok"] for o in ops], [o["duplicate"] for o in ops],
                                                   [o["unparseable"] for o in ops]),
    }


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# -- HTML ------------------------------------------------------------------------------
_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d1d1f;
       background: #f6f7f9; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
header { background: #1f3b57; color: #fff; padding: 22px 28px; }
header h1 { margin: 0 0 4px; font-size: 24px; }
header p { margin: 0; opacity: 0.85; }
h2 { margin: 36px 0 10px; font-size: 20px; border-bottom: 2px solid #d9dee5; padding-bottom: 4px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin-top: 20px; }
.card { background: #fff; border: 1px solid #d9dee5; border-radius: 8px; padding: 12px 16px; min-width: 130px; }
.card .v { font-size: 24px; font-weight: 600; }
.card .l { font-size: 12px; color: #5a6270; text-transform: uppercase; letter-spacing: 0.04em; }
figure { background: #fff; border: 1px solid #d9dee5; border-radius: 8px; margin: 0 0 16px; padding: 12px; }
figure img { max-width: 100%; height: auto; display: block; margin: 0 auto; }
figcaption { color: #5a6270; font-size: 14px; margin-top: 8px; }
table { border-collapse: collapse; background: #fff; width: 100%; font-size: 14px; }
th, td { border: 1px solid #d9dee5; padding: 6px 8px; text-align: left; vertical-align: top; }
table.compact { width: auto; min-width: 420px; }
th { background: #eef1f5; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.text { white-space: pre-wrap; }
code { font-size: 12px; color: #5a6270; }
ol.lineage { list-style: none; padding: 0; }
ol.lineage li { background: #fff; border: 1px solid #d9dee5; border-left: 4px solid #1f3b57;
                border-radius: 6px; padding: 10px 14px; margin: 0 0 10px; }
ol.lineage li.seed { border-left-color: #8c6d46; }
ol.lineage .meta { font-size: 13px; color: #5a6270; margin-bottom: 6px; }
ol.lineage .text { white-space: pre-wrap; }
.muted { color: #5a6270; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: float | None, digits: int = 3) -> str:
    return "&ndash;" if value is None else f"{value:.{digits}f}"


def _card(value: str, label: str) -> str:
    return f'<div class="card"><div class="v">{value}</div><div class="l">{_e(label)}</div></div>'


def _table(headers: list[str], rows: list[list[str]], numeric: frozenset[int] = frozenset(),
           compact: bool = False) -> str:
    """A table from already-escaped cells; `numeric` columns are right-aligned; a compact
    table (numbers only) is as wide as its content rather than the page."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    cls = ' class="compact"' if compact else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _elites_html(elites: list[dict[str, Any]]) -> str:
    if not elites:
        return '<p class="muted">No generated elites yet: no generated candidate has quality &gt; 0.</p>'
    rows = [[str(i), _num(e["quality"]), _num(e["solve_rate"], 2), _e(e["cell"]), _e(e["step"]), _e(e["depth"]),
             f'<div class="text">{_e(e["problem"])}</div>', _e(e["answer"]), _validity_cell(e),
             f"<code>{_e(e['id'])}</code>"] for i, e in enumerate(elites, 1)]
    return _table(["#", "quality", "solve rate", "cell", "step", "depth", "problem", "answer", "validity", "id"], rows,
                  numeric=frozenset({0, 1, 2, 3, 4, 5}))


def _validity_cell(e: dict[str, Any]) -> str:
    if e.get("valid") is None:
        return '<span class="muted">not checked</span>'
    if e["valid"] and e.get("repair"):
        return f'valid, repaired: {_e(e["repair"])}'
    return "valid" if e["valid"] else f'invalid: {_e(e.get("validity_reason"))}'


def _validity_html(s: dict[str, Any]) -> str:
    v = s["validity"]
    if not v["checked"]:
        return '<p class="muted">Not checked: this run is older than the validity checks.</p>'
    head = (f"<p>{v['checked']} generated candidates checked: {v['valid']} valid (share "
            f"{_num(v['valid_share'])}), {v['invalid']} invalid. Generated elites: {s['valid_elites']} valid, "
            f"{s['invalid_elites']} invalid.</p>")
    reasons = _table(["first failed check", "candidates"], [[_e(k), str(n)] for k, n in v["reasons"].items()],
                     numeric=frozenset({1}), compact=True) if v["reasons"] else ""
    steps = _table(["step", "checked", "valid", "valid share"],
                   [[_e(p["step"]), _e(p["checked"]), _e(p["valid"]), _num(p["valid_share"])] for p in v["per_step"]],
                   numeric=frozenset({0, 1, 2, 3}), compact=True)
    return head + reasons + "<h3>Valid share per step</h3>" + steps


def _status_html(s: dict[str, Any]) -> str:
    total = max(1, s["candidates"])
    rows = [[_e(k), str(v), f"{100 * v / total:.1f}%"] for k, v in s["status"].items()]
    rows.append(["archived (ok, took a cell)", str(s["accepted"]), f"{100 * s['accepted'] / total:.1f}%"])
    status = _table(["status of generated candidates", "count", "share"], rows, numeric=frozenset({1, 2}),
                    compact=True)
    steps = [[_e(m["step"]), _e(m["candidates"]), _e(m["accepted"]), _e(m["num_elites"]), _num(m["coverage"]),
              _num(m["qd_score"])] for m in s["per_step"]]
    per_step = _table(["step", "candidates", "archived", "elites", "coverage", "QD score"], steps,
                      numeric=frozenset({0, 1, 2, 3, 4, 5}), compact=True)
    return status + "<h3>Per step</h3>" + per_step


def _operators_html(s: dict[str, Any]) -> str:
    if not s["operators"]:
        return '<p class="muted">No generated candidates yet.</p>'
    rows = [[_e(o["operator"]), str(o["candidates"]), str(o["ok"]), str(o["invalid"]), str(o["duplicate"]),
             str(o["unparseable"]), str(o["failed"]), str(o["archived"]), _num(o["yield"])] for o in s["operators"]]
    return _table(["operator", "candidates", "ok", "invalid", "duplicate", "unparseable", "failed", "archived",
                   "yield"], rows, numeric=frozenset({1, 2, 3, 4, 5, 6, 7, 8}), compact=True)


def _lineage_html(chain: list[dict[str, Any]] | None) -> str:
    if not chain:
        return '<p class="muted">No generated elite yet, so no lineage to show.</p>'
    intro = (f"<p>The generated elite with the longest lineage, <code>{_e(chain[0]['id'])}</code> (cell "
             f"{_e(chain[0]['cell'])}), and its ancestors back to seed <code>{_e(chain[-1]['id'])}</code>; "
             f"<code>sparq inspect RUN --elite ID</code> prints the same for any candidate.</p>")
    items = []
    for node in chain:
        if node["status"] == Status.SEED:
            meta = f"depth 0 &middot; seed (step 0, unscored) &middot; cell {_e(node['cell'])}"
        else:
            meta = (f"depth {_e(node['depth'])} &middot; step {_e(node['step'])} &middot; operator "
                    f"{_e(node['operator'])} &middot; solve rate {_num(node['solve_rate'], 2)} "
                    f"({_e(node['k'])} attempts) "
                    f"&middot; quality {_num(node['quality'])} &middot; cell {_e(node['cell'])}")
        cls = ' class="seed"' if node["status"] == Status.SEED else ""
        answer = f'<div class="meta">answer: {_e(node["answer"])}</div>' if node["answer"] is not None else ""
        if node.get("second_parent_id"):
            answer += f'<div class="meta">second parent: <code>{_e(node["second_parent_id"])}</code></div>'

        items.append(f'<li{cls}><div class="meta">{meta} &middot; <code>{_e(node["id"])}</code></div>'
                     f'<div class="text">{_e(node["problem"])}</div>{answer}</li>')
    return intro + '<ol class="lineage">' + "".join(items) + "</ol>"


def render_html(summary: dict[str, Any], figures: dict[str, bytes], chain: list[dict[str, Any]] | None,
                generated_at: datetime) -> str:
    """The report page (pure: the same inputs give the same page)."""
    s = summary
    yield_all = s["accepted"] / s["candidates"] if s["candidates"] else None
    cards = "".join([
        _card(str(s["steps"]), "steps"),
        _card(str(s["candidates"]), "generated candidates"),
        _card(str(s["accepted"]), "archived"),
        _card(f"{s['elites']} / {s['cells']}" if s["cells"] else str(s["elites"]), "cells occupied"),
        _card(_num(s["coverage"]), "coverage"),
        _card(_num(s["qd_score"]), "QD score"),
        _card(_num(yield_all), "archived per candidate"),
    ])
    figs = "".join(
        f'<h2>{_e(f.title)}</h2><figure><img alt="{_e(f.title)}" src="{data_uri(figures[f.name])}">'
        f"<figcaption>{_e(f.caption)}</figcaption></figure>" for f in FIGURES if f.name in figures)
    if "archive-map.png" not in figures:
        figs = (f'<p class="muted">No archive map: a {_e(s["archive_kind"])} archive has no centroids to '
                f"place its cells by.</p>") + figs
    band = s["quality_band"]
    band_text = (f"Quality is &gt; 0 only for solve rates in [{_e(band[0])}, {_e(band[1])}]. " if band else "")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sparq report: {_e(s["run_id"])}</title>
<style>{_CSS}</style>
</head>
<body>
<header><h1>sparq run {_e(s["run_id"])}</h1>
<p>{_e(s["run_dir"])} &middot; {_e(s["steps"])} committed step(s) &middot; report generated
{_e(generated_at.strftime("%Y-%m-%d %H:%M UTC"))}</p></header>
<main>
<div class="cards">{cards}</div>
<p>{_e(s["seeds"])} seeds started the archive ({_e(s["seed_elites"])} cells still held by a seed);
{_e(s["generated_elites"])} cells hold a generated problem. {band_text}The QD score is the sum of the
elites' qualities (seeds count 0).</p>
{figs}
<h2>Top elites</h2>
{_elites_html(s["top_elites"])}
<h2>Candidates</h2>
{_status_html(s)}
<h2>Validity</h2>
{_validity_html(s)}
<h2>Operators</h2>
{_operators_html(s)}
<h2>Lineage example</h2>
{_lineage_html(chain)}
</main>
</body>
</html>
"""


@dataclass(frozen=True)
class Report:
    """What `build_report` wrote, and the data it was made from (for other publishers)."""

    html_path: Path
    summary: dict[str, Any]
    figures: dict[str, bytes]  # PNG bytes by file name, also written next to html_path


def build_report(run_dir: Path | str, top: int = 10) -> Report:
    """Write RUN/report/*.png and RUN/report/index.html."""
    run = load_run(run_dir)
    summary = summarize(run, top=top)
    figures = make_figures(run, summary)
    deepest = deepest_elite(run)
    chain = lineage(run, deepest) if deepest else None
    out = run.path / REPORT_DIR
    out.mkdir(exist_ok=True)
    for name, png in figures.items():
        atomic_write_bytes(out / name, png)
    page = render_html(summary, figures, chain, datetime.now(UTC))
    atomic_write_bytes(out / "index.html", page.encode("utf-8"))
    return Report(html_path=out / "index.html", summary=summary, figures=figures)
