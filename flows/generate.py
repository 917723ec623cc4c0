"""The `generate` flow: a campaign run by the same loop as the CLI (pipeline/loop/generate.py `drive`).

Streaming mode (the default on vllm and openai engines; pipeline/loop/stream.py) runs inside
the flow: the engine keeps its batch full, and every commit is logged and moves the
progress artifact. Steps mode runs each step's phases as batch-sized Prefect tasks (a
step's mutations, a step's solves), not per problem: a task costs milliseconds of
overhead. Only the engine-bound tasks retry. The archive and the commit stay in the flow:
a single writer per run directory.

Without PREFECT_API_URL, Prefect starts a temporary local server for the run.

With the config's [dask] table enabled (or `run_generate(dask_address=...)`), the flow
runs on prefect-dask's DaskTaskRunner and the engine calls and verification go out as
chunk tasks to the cluster (flows/fanout.py); the rest stays here. The same `run.mode`
rules apply: in steps mode each phase's calls go out as chunk tasks, in streaming mode
the stream's loop (in this flow's thread) sends its requests as chunk tasks whenever
candidates free up.
"""

from __future__ import annotations

import dataclasses
import os
from contextlib import ExitStack
from typing import Any

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.artifacts import (  # noqa: E402
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE  # noqa: E402

from flows.artifacts import publish_report  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.loop.campaign import Campaign, Draft, Parent, effective_config  # noqa: E402
from pipeline.loop.failures import TooManyRefusals  # noqa: E402
from pipeline.loop.generate import run_generation, summary_markdown  # noqa: E402
from pipeline.store.records import StepMetrics  # noqa: E402
from pipeline.store.storage import RunDir  # noqa: E402


def retry_unless_refused(task, task_run, state) -> bool:
    """Retry an engine-bound phase, except when the run stops for refusals: each request of
    the phase has been refused already, and would be again (pipeline/loop/failures.py)."""
    return not isinstance(state.result(raise_on_failure=False), TooManyRefusals)


@task(name="mutate", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE, retry_condition_fn=retry_unless_refused)
def mutate_task(camp: Campaign, step: int, parents: list[Parent]) -> list[Draft]:
    return camp.mutate(step, parents)


@task(name="solve", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE, retry_condition_fn=retry_unless_refused)
def solve_task(camp: Campaign, step: int, drafts: list[Draft]) -> list[Draft]:
    return camp.solve(step, drafts)


def _artifact_key(run_dir: str) -> str:
    # Artifact keys allow lowercase letters, digits and dashes only.
    name = os.path.basename(os.path.abspath(run_dir)).lower()
    return "sparq-" + "".join(c if c.isascii() and c.isalnum() else "-" for c in name)[:40]


@flow(name="sparq-generate", log_prints=True)
def generate(run_dir: str, config_path: str | None = None, steps: int | None = None,
             resume: bool = False, fanout: bool = False) -> dict[str, Any]:
    """Run or resume a generation campaign in `run_dir` until `steps` steps are committed.

    `fanout`: send engine calls and verification as chunk tasks to the flow's task
    runner (a DaskTaskRunner: see run_generate) instead of running them here.
    """
    logger = get_run_logger()
    config = load_config(config_path)
    engine = judge = None
    if fanout:
        from flows.fanout import FanoutEngine, FanoutJudge

        # The campaign's own engine settings (saved ones when resuming); the chunking
        # comes from the given config, which describes this execution, not the campaign.
        own = effective_config(RunDir(run_dir), config, resume) or config
        engine = FanoutEngine(own.engine, seed=own.run.seed, chunk_size=config.dask.chunk_size)
        judge = FanoutJudge(timeout_s=own.solver.verify_timeout_s, chunk_size=config.dask.chunk_size,
                            domain=own.domain.kind)

    key = _artifact_key(run_dir)
    progress_id = create_progress_artifact(progress=0.0, key=f"{key}-progress",
                                           description=f"generation progress of {run_dir}")

    def on_commit(metrics: StepMetrics, done: int, total: int) -> None:
        # Each commit (a step; in streaming mode, `commit_every` finished candidates) moves
        # the progress artifact; its line goes to the flow's log (step_lines below).
        update_progress_artifact(progress_id, progress=100.0 * done / total)

    def phase(name: str, fn, step: int, arg):
        # Steps mode only (a stream has no phases): each phase is a retried task. Fanned
        # out, the phase runs here and its chunk tasks carry the retries instead.
        if fanout:
            return fn(step, arg)
        return (mutate_task if name == "mutate" else solve_task)(fn.__self__, step, arg)  # fn: camp.mutate or .solve

    try:
        summary = run_generation(config, run_dir, resume=resume, steps=steps, progress=logger.info, engine=engine,
                                 judge=judge, phase=phase, on_commit=on_commit, step_lines=logger.info)
        update_progress_artifact(progress_id, progress=100.0)
        create_markdown_artifact(key=f"{key}-summary", markdown=summary_markdown(summary),
                                 description=f"generation summary of {run_dir}")
        publish_report(run_dir, key, logger)  # RUN/report/ + overview, top-elites, figures artifacts
        return summary
    finally:
        if fanout:
            from flows.fanout import close_workers

            logger.info(f"fan-out: {engine.tasks} engine chunk task(s), {judge.tasks} verify chunk task(s)")
            try:
                engine.close()  # a stopped stream's chunk tasks: none may start after the close below
            finally:
                close_workers(logger)


def run_generate(run_dir: str, config_path: str | None = None, steps: int | None = None,
                 resume: bool = False, dask_address: str | None = None) -> dict[str, Any]:
    """The generate flow, on a DaskTaskRunner when [dask] is enabled or an address is given."""
    dask_cfg = load_config(config_path).dask
    if dask_address:
        dask_cfg = dataclasses.replace(dask_cfg, enabled=True, address=dask_address)
    if not dask_cfg.enabled:
        return generate(run_dir=run_dir, config_path=config_path, steps=steps, resume=resume)
    from flows.fanout import dask_task_runner

    with ExitStack() as stack:
        if not os.environ.get("PREFECT_API_URL"):
            # Without a server, every Dask worker would start a temporary Prefect server of
            # its own, which outlives a killed worker. One temporary server for the flow,
            # named in the environment that LocalCluster workers inherit, avoids both.
            from prefect.server.api.server import SubprocessASGIServer

            server = SubprocessASGIServer()
            server.start()  # stopped at exit, after Prefect has sent the last logs
            stack.callback(os.environ.pop, "PREFECT_API_URL", None)
            os.environ["PREFECT_API_URL"] = server.api_url
            from prefect.settings import PREFECT_API_URL, temporary_settings

            stack.enter_context(temporary_settings({PREFECT_API_URL: server.api_url}))
        return generate.with_options(task_runner=dask_task_runner(dask_cfg))(
            run_dir=run_dir, config_path=config_path, steps=steps, resume=resume, fanout=True)
