"""The run report as Prefect artifacts: overview and top-elites tables, figures as markdown.

The payload builders are pure (tested without a Prefect server); `publish_report` writes
RUN/report/ through `pipeline.read.report` and creates the artifacts. Figures go into the
markdown as `data:image/png` URIs: Prefect 3.8's UIs render them (the V2 UI's markdown
renderer lets `data:image/` sources through; checked with a screenshot of both UIs), so the
figures show without the server reaching the run directory. Each figure's PNG path is
listed under it too, for readers of the raw markdown.

The explorer (`sparq explore`, one interactive self-contained page) is written beside the
report as RUN/report/explore.html and linked from the figures artifact: a file:// link
(a browser opens it from the machine that holds the run directory; the Prefect UI, served
over http, may refuse to follow it, so the path is printed beside it to copy).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from pipeline.read.explore import write_explorer
from pipeline.read.inspection_text import occupancy
from pipeline.read.report import FIGURES, Report, build_report, data_uri
from pipeline.store.storage import RunError

PROBLEM_CHARS = 300
_KEY = re.compile(r"^[a-z0-9-]+$")

# Summary fields shown in the overview table, in order, with their labels.
OVERVIEW = (("steps", "committed steps"), ("candidates", "generated candidates"), ("accepted", "archived"),
            ("elites", "elites"), ("cells", "cells"), ("coverage", "coverage"), ("qd_score", "QD score"),
            ("generated_elites", "generated elites"), ("seed_elites", "seed elites"), ("seeds", "seeds"))


def check_key(key: str) -> str:
    """Prefect refuses artifact keys other than lowercase letters, digits and dashes."""
    if not _KEY.match(key):
        raise ValueError(f"artifact key {key!r} must use only lowercase letters, digits and dashes")
    return key


def overview_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [{"metric": label, "value": summary[name]} for name, label in OVERVIEW]
    rows += [{"metric": f"status {k}", "value": v} for k, v in summary["status"].items()]
    rows += [{"metric": f"yield {o['operator']}", "value": f"{o['archived']}/{o['candidates']} = {o['yield']:.3f}"}
             for o in summary["operators"]]
    return rows


def elite_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for rank, e in enumerate(summary["top_elites"], 1):
        problem = " ".join((e["problem"] or "").split())
        if len(problem) > PROBLEM_CHARS:
            problem = problem[: PROBLEM_CHARS - 3] + "..."
        # Problem first after the scores: the UI's table is narrow and cuts the last columns.
        rows.append({"rank": rank, "quality": round(e["quality"], 4),
                     "solve_rate": None if e["solve_rate"] is None else round(e["solve_rate"], 4),
                     "problem": problem, "depth": e["depth"], "step": e["step"], "cell": e["cell"], "id": e["id"]})
    return rows


def figures_markdown(report: Report, explorer: Path | None = None) -> str:
    s = report.summary
    lines = [f"# Run report: {s['run_id']}", "",
             f"{s['steps']} steps, {s['candidates']} candidates, {s['accepted']} archived, "
             f"{occupancy(s)} (coverage {s['coverage']:.3f}), QD score {s['qd_score']:.3f}.",
             "", f"Full report: `{report.html_path}`", ""]
    if explorer is not None:
        path = Path(explorer).resolve()
        lines += [f"Explorer (archive map with its timeline, every elite with its attempts and lineage, all "
                  f"candidates): [open explore.html]({path.as_uri()}) `{path}`", ""]
    for spec in FIGURES:
        if spec.name not in report.figures:
            continue
        lines += [f"## {spec.title}", "", f"![{spec.title}]({data_uri(report.figures[spec.name])})", "",
                  f"{spec.caption} File: `{report.html_path.parent / spec.name}`", ""]
    return "\n".join(lines)


def publish_report(run_dir: str, key: str, logger: logging.Logger | logging.LoggerAdapter, top: int = 10) -> bool:
    """Write RUN/report/ (with the explorer) and publish it as artifacts `KEY-overview`,
    `KEY-top-elites`, `KEY-figures` (which links the explorer).

    A report that cannot be made is logged as a warning and False returned: the steps are
    committed by then, and `sparq report RUN` can make it later.
    """
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    try:
        report = build_report(run_dir, top=top)
    except (RunError, OSError, ValueError) as exc:
        logger.warning(f"run report not published: {exc}")
        return False
    create_table_artifact(key=check_key(f"{key}-overview"), table=overview_rows(report.summary),
                          description=f"run overview of {run_dir}")
    create_table_artifact(key=check_key(f"{key}-top-elites"), table=elite_rows(report.summary),
                          description=f"top {len(report.summary['top_elites'])} generated elites of {run_dir}")
    explorer = None
    try:
        explorer = write_explorer([run_dir]).path  # RUN/report/explore.html
    except (RunError, OSError, ValueError) as exc:
        logger.warning(f"run explorer not written: {exc}")
    create_markdown_artifact(key=check_key(f"{key}-figures"), markdown=figures_markdown(report, explorer),
                             description=f"figures of {run_dir} ({Path(report.html_path)})")
    logger.info(f"run report: {report.html_path}" + (f", explorer: {explorer}" if explorer else ""))
    return True
