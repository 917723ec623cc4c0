"""The `sparq-finetune` flow: export -> finetune -> evaluate base and fine-tuned -> comparison artifact.

Each stage is one task around a library call (filters.export, finetune.train,
finetune.evaluate); Prefect adds run tracking, per-stage logs and the artifacts: a table of
pass@1/pass@k with 95% intervals and a markdown artifact with the plot inlined (data URI,
as flows/artifacts.py does for the run report). Without PREFECT_API_URL, Prefect starts a
temporary local server for the run.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.artifacts import create_markdown_artifact, create_table_artifact  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

from filters.config import load_export_config  # noqa: E402
from filters.export import export_runs  # noqa: E402
from finetune.compare import comparison_markdown, comparison_plot, comparison_rows, write_comparison  # noqa: E402
from finetune.config import load_finetune_config  # noqa: E402
from finetune.evaluate import evaluate  # noqa: E402
from finetune.train import finetune  # noqa: E402
from pipeline.read.report import data_uri  # noqa: E402


def artifact_key(model_dir: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    name = os.path.basename(os.path.abspath(model_dir)).lower()
    return "sparq-finetune-" + "".join(c if c.isascii() and c.isalnum() else "-" for c in name)[:40]


@task(name="export", cache_policy=NO_CACHE)
def export_task(run_dirs: list[str], dataset_dir: str, export_config: str | None) -> int:
    result = export_runs(run_dirs, dataset_dir, config=load_export_config(export_config), log=get_run_logger().info)
    return result.data_rows


@task(name="finetune", cache_policy=NO_CACHE)
def finetune_task(dataset_dir: str, model_dir: str, finetune_config: str | None) -> dict[str, Any]:
    res = finetune(dataset_dir, model_dir, config=load_finetune_config(finetune_config), log=get_run_logger().info)
    return {"model_dir": res.model_dir, "steps": res.steps, "seconds": res.seconds, "step_seconds": res.step_seconds,
            "final_loss": res.final_loss}


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate_task(model: str, finetune_config: str | None) -> dict[str, Any]:
    return evaluate(model, config=load_finetune_config(finetune_config).evaluate, log=get_run_logger().info)


# No log_prints: `datasets` disassembles functions into a buffer while fingerprinting a map
# (print(..., file=buf)), and Prefect's print capture turned that into hundreds of log lines.
@flow(name="sparq-finetune")
def finetune_flow(run_dirs: list[str] | None, dataset_dir: str, model_dir: str, compare_dir: str,
                  export_config: str | None = None, finetune_config: str | None = None,
                  evaluate_base: bool = True) -> dict[str, Any]:
    """Export `run_dirs` into `dataset_dir` (skipped when run_dirs is None: an existing export),
    fine-tune into `model_dir`, evaluate, and publish the comparison."""
    cfg = load_finetune_config(finetune_config)  # fail on a bad config before any work
    rows = export_task(run_dirs, dataset_dir, export_config) if run_dirs else None
    trained = finetune_task(dataset_dir, model_dir, finetune_config)
    results: dict[str, dict[str, Any]] = {}
    if evaluate_base:
        results["base"] = evaluate_task(cfg.model.base, finetune_config)
    results["finetuned"] = evaluate_task(model_dir, finetune_config)
    paths = write_comparison(results, compare_dir)
    key = artifact_key(model_dir)
    create_table_artifact(key=f"{key}-table", table=comparison_rows(results),
                          description="pass@1 / pass@k with 95% bootstrap intervals over problems")
    create_markdown_artifact(key=f"{key}-comparison",
                             markdown=comparison_markdown(results, data_uri(comparison_plot(results))),
                             description=f"base vs fine-tuned ({model_dir})")
    return {"dataset_rows": rows, "train": trained, "results": results, "files": paths}
