"""Scheduled campaigns: a Prefect deployment that extends one run directory per run.

`extend_campaign` is the deployed flow. Each flow run resumes RUN_DIR and adds
`steps_per_run` steps to what is committed there (or starts the campaign when nothing
is), so a nightly schedule grows one campaign a little every night. With `fresh=True`
every flow run starts a new campaign in RUN_DIR/<UTC time of the run> instead; nothing
already written is ever replaced.

`serve_schedule` creates the deployment on the Prefect server named by PREFECT_API_URL
and serves it from this process (scheduled and manual runs execute here until
interrupted); `deploy_schedule` registers it with a work pool for a separate
`prefect worker start --pool POOL` instead. Scheduling needs a persistent server: the
temporary one Prefect starts for a single flow forgets its schedules when it exits.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from prefect import flow, get_run_logger  # noqa: E402

from flows.generate import run_generate  # noqa: E402
from pipeline.store.storage import RunDir, RunError  # noqa: E402

FLOW_NAME = "sparq-campaign"
REPO = Path(__file__).resolve().parent.parent


def campaign_target(run_dir: str | Path, steps_per_run: int) -> tuple[bool, int]:
    """(resume, total steps) for one scheduled run: committed steps + steps_per_run."""
    ckpt = RunDir(run_dir).read_checkpoint()
    if ckpt is None:
        return False, steps_per_run
    return True, ckpt.step + steps_per_run


@flow(name=FLOW_NAME, log_prints=True)
def extend_campaign(run_dir: str, config_path: str | None = None, steps_per_run: int = 1,
                    fresh: bool = False) -> dict[str, Any]:
    """Add `steps_per_run` steps to the campaign in `run_dir` (a new campaign per run if `fresh`)."""
    logger = get_run_logger()
    target_dir = Path(run_dir)
    if fresh:
        target_dir = target_dir / datetime.now(UTC).strftime("run-%Y%m%d-%H%M%S")
        if target_dir.exists():
            raise RunError(f"fresh run directory {target_dir} already exists; runs are less than "
                           "a second apart, schedule them further apart")
    resume, steps = campaign_target(target_dir, steps_per_run)
    logger.info(f"{'extending' if resume else 'starting'} the campaign in {target_dir} "
                f"to {steps} committed step(s)")
    return run_generate(run_dir=str(target_dir), config_path=config_path, steps=steps, resume=resume)


ROUNDS_FLOW_NAME = "sparq-rounds-campaign"


def rounds_target(directory: str | Path, rounds_per_run: int) -> int:
    """The round count one scheduled run of a rounds campaign runs to: the rounds finished
    in `directory` + `rounds_per_run` (a round a killed run left unfinished is not counted,
    so the next run finishes it first)."""
    path = Path(directory) / "state.json"
    if not path.is_file():
        return rounds_per_run
    state = json.loads(path.read_text(encoding="utf-8"))
    done = state["round"] if state["stage"] == "done" else max(0, state["round"] - 1)
    return done + rounds_per_run


@flow(name=ROUNDS_FLOW_NAME)
def extend_rounds(directory: str, config_path: str | None = None, rounds_per_run: int = 1) -> list[dict[str, Any]]:
    """Add `rounds_per_run` rounds to the rounds campaign in `directory` (flows/rounds.py)."""
    from flows.rounds_flow import rounds_flow

    target = rounds_target(directory, rounds_per_run)
    get_run_logger().info(f"running the rounds campaign in {directory} to {target} round(s)")
    return rounds_flow(directory=directory, config_path=config_path, rounds=target)


@dataclass(frozen=True)
class ScheduleSpec:
    run_dir: str
    config_path: str | None
    cron: str | None
    interval_s: float | None
    steps_per_run: int
    fresh: bool
    name: str
    timezone: str | None = None
    rounds_per_run: int = 0  # > 0: a rounds campaign (config_path is a [rounds] file), this many rounds a run

    def parameters(self) -> dict[str, Any]:
        if self.rounds_per_run:
            return {"directory": self.run_dir, "config_path": self.config_path,
                    "rounds_per_run": self.rounds_per_run}
        return {"run_dir": self.run_dir, "config_path": self.config_path,
                "steps_per_run": self.steps_per_run, "fresh": self.fresh}

    @property
    def flow(self):
        return extend_rounds if self.rounds_per_run else extend_campaign

    @property
    def entrypoint(self) -> str:
        return "flows/schedule.py:" + self.flow.fn.__name__

    @property
    def description(self) -> str:
        if self.rounds_per_run:
            return f"add {self.rounds_per_run} round(s) to the sparq rounds campaign in {self.run_dir} per run"
        return f"extend the sparq campaign in {self.run_dir} by {self.steps_per_run} step(s) per run"

    def schedule_kwargs(self) -> dict[str, Any]:
        if self.cron is not None:
            from prefect.client.schemas.schedules import CronSchedule

            return {"schedule": CronSchedule(cron=self.cron, timezone=self.timezone)}
        return {"interval": timedelta(seconds=self.interval_s)}

    @property
    def deployment(self) -> str:
        return f"{ROUNDS_FLOW_NAME if self.rounds_per_run else FLOW_NAME}/{self.name}"


def check_cron(expr: str) -> str | None:
    """None when `expr` is a valid cron expression, else why not (one line)."""
    from prefect.client.schemas.schedules import CronSchedule

    try:
        CronSchedule(cron=expr)
    except ValueError as exc:
        return " ".join(str(exc).split())
    return None


def serve_schedule(spec: ScheduleSpec) -> None:
    """Create (or update) the deployment and run its flow runs in this process until interrupted."""
    from prefect import serve

    # One flow run at a time: a second writer would be refused by the run directory's
    # lock, so a run that outlasts the interval makes the next one wait instead of fail.
    deployment = spec.flow.to_deployment(
        name=spec.name, parameters=spec.parameters(), concurrency_limit=1, description=spec.description,
        tags=["sparq"], **spec.schedule_kwargs())
    serve(deployment, print_starting_message=True)


def deploy_schedule(spec: ScheduleSpec, work_pool: str) -> str:
    """Register the deployment with `work_pool` (a process pool, created if missing); returns its id."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(work_pool)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=work_pool, type="process"))
    source = spec.flow.from_source(source=str(REPO), entrypoint=spec.entrypoint)
    return str(source.deploy(
        name=spec.name, work_pool_name=work_pool, parameters=spec.parameters(), concurrency_limit=1,
        description=spec.description, tags=["sparq"], print_next_steps=False, build=False, push=False,
        **spec.schedule_kwargs()))
