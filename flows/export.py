"""The `export` flow: `filters.export.export_runs` as a Prefect flow, the card as an artifact.

The work is a dask graph (local processes or the cluster at `dask_address`), so the flow
is one task around the library call rather than a task per shard: Prefect adds run
tracking, retries of the whole export and the card in the UI; dask does the fan-out.
Without PREFECT_API_URL, Prefect starts a temporary local server for the run.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.artifacts import create_markdown_artifact  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

from filters.config import load_export_config  # noqa: E402
from filters.export import ExportResult, export_runs  # noqa: E402

# The YAML header of the card is for `datasets`; the artifact shows the markdown only.
_YAML_END = "---\n\n"


def artifact_key(out_dir: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    name = os.path.basename(os.path.abspath(out_dir)).lower()
    return "sparq-export-" + "".join(c if c.isascii() and c.isalnum() else "-" for c in name)[:40]


def card_markdown(card: str) -> str:
    if card.startswith("---\n") and _YAML_END in card:
        return card.split(_YAML_END, 1)[1]
    return card


@task(name="export-runs", cache_policy=NO_CACHE)
def export_task(run_dirs: list[str], out: str, config_path: str | None, budget: int | None,
                dask_address: str | None, skip_corrupt: bool) -> ExportResult:
    logger = get_run_logger()
    return export_runs(run_dirs, out, config=load_export_config(config_path), budget=budget,
                       dask_address=dask_address, skip_corrupt=skip_corrupt, log=logger.info)


@flow(name="sparq-export", log_prints=True)
def export(run_dirs: list[str], out: str, config_path: str | None = None, budget: int | None = None,
           dask_address: str | None = None, skip_corrupt: bool = False) -> dict[str, Any]:
    """Export `run_dirs` into `out`; publish the dataset card as a markdown artifact."""
    result = export_task(run_dirs, out, config_path, budget, dask_address, skip_corrupt)
    create_markdown_artifact(key=artifact_key(out), markdown=card_markdown(result.card),
                             description=f"dataset card of {out}")
    return {"out_dir": result.out_dir, "data_rows": result.data_rows, "rejected_rows": result.rejected_rows,
            "candidates": result.candidates, "skipped": len(result.skipped), "seconds": result.seconds}
