"""The `sparq-rounds` Prefect flow: a rounds campaign (flows/rounds.py) with each stage of
each round as a task (round-R-STAGE), the report as artifacts (a table and the markdown
report after every round), and the library driver doing the work. Without PREFECT_API_URL,
Prefect starts a temporary local server for the run.

(Not named `rounds.py`: that is the library driver, which never imports Prefect.)
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.artifacts import create_markdown_artifact, create_table_artifact  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

from flows.rounds import load_rounds_config, run_rounds  # noqa: E402
from flows.rounds_report import HEADERS, load_rows, report_markdown, table_rows  # noqa: E402


def artifact_key(directory: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    name = os.path.basename(os.path.abspath(directory)).lower()
    return "sparq-rounds-" + "".join(c if c.isascii() and c.isalnum() else "-" for c in name)[:40]


def publish(directory: str) -> None:
    rows = load_rows(directory)
    key = artifact_key(directory)
    create_table_artifact(key=f"{key}-table", table=[dict(zip(HEADERS, r, strict=True)) for r in table_rows(rows)],
                          description="per round: pass@1/pass@k with 95% intervals, paired differences, archive, "
                                      "validity and diversity")
    create_markdown_artifact(key=f"{key}-report", markdown=report_markdown(rows),
                             description=f"rounds report ({directory})")


@flow(name="sparq-rounds")
def rounds_flow(directory: str, config_path: str | None = None, rounds: int | None = None) -> list[dict[str, Any]]:
    """Run or resume the rounds campaign in `directory` (config: the packaged flows/rounds.toml
    when none is given; `rounds` overrides the number of rounds, e.g. to extend a finished one)."""
    logger = get_run_logger()
    section = load_rounds_config(config_path, rounds=rounds)

    def stage_hook(r: int, name: str, fn):
        result = task(name=f"round-{r}-{name}", cache_policy=NO_CACHE)(lambda: fn())()
        if name == "report" or r == 0:
            publish(directory)
        return result

    return run_rounds(directory, section, log=logger.info, stage_hook=stage_hook)
