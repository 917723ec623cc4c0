"""Running a campaign to a target step count, with progress and a summary.

`drive` is the one loop: a stream (pipeline/loop/stream.py) or steps, by `run.mode`.
`run_generation` is the one driver: it holds the run directory's lock, opens (or resumes)
the campaign, shows progress, and returns the summary. `sparq generate --no-prefect` and
the tests call it as it is; the Prefect flow (flows/generate.py) calls it with its steps'
phases as retried tasks, its logger and a hook that moves its progress artifact.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.config import Config
from pipeline.engines import streams as engine_streams
from pipeline.loop.campaign import Campaign, Phase, Progress
from pipeline.store.records import StepMetrics
from pipeline.store.storage import RunDir


def open_campaign(config: Config, run_dir: Path | str, *, resume: bool, steps: int | None = None,
                  progress: Progress = print, engine=None, judge=None, solver_engine=None,
                  config_override: bool = False) -> Campaign:
    camp = Campaign.open(run_dir, config=config, resume=resume, steps=steps, engine=engine,
                         judge=judge, progress=progress, solver_engine=solver_engine,
                         config_override=config_override)
    camp.initialize()
    return camp


def streams(camp: Campaign) -> bool:
    """Whether `drive` runs this campaign as a stream: by `run.mode` and the campaign's
    engine kind. With Dask fan-out that is the engine the workers build, and
    the stream drives their chunk tasks (flows/fanout.py)."""
    return camp.config.run.streams(engine_streams(camp.config.engine.kind))


def drive(camp: Campaign, on_commit, *, phase: Phase | None = None) -> str:
    """Run `camp` until `config.run.steps` steps are committed, calling `on_commit(metrics)`
    after each commit; returns the mode it ran in ("stream" or "steps")."""
    target = camp.config.run.steps
    if camp.step >= target:
        return "steps"
    if streams(camp):
        from pipeline.loop.stream import run_stream

        run_stream(camp, target, on_commit)
        return "stream"
    while camp.step < target:
        on_commit(camp.run_step(phase))
    return "steps"


def step_line(m: StepMetrics) -> str:
    failed = f"{m.failed} failed, " if m.failed else ""
    repaired = f" ({m.repaired} repaired)" if m.repaired else ""
    return (f"step {m.step}: {m.candidates} candidates, {m.ok} ok{repaired}, {m.unparseable} unparseable, "
            f"{m.duplicate} dup, {failed}{m.in_band} in band, {m.accepted} archived | elites {m.num_elites} "
            f"coverage {m.coverage:.3f} qd {m.qd_score:.3f} | {m.seconds:.0f}s")


# on_commit(metrics, done, total): `done` commits of the `total` this call makes
CommitHook = Callable[[StepMetrics, int, int], None]


def run_generation(config: Config, run_dir: Path | str, *, resume: bool = False,
                   steps: int | None = None, progress: Progress | None = None, engine=None, judge=None,
                   show_bar: bool = True, phase: Phase | None = None, on_commit: CommitHook | None = None,
                   step_lines: Progress | None = None, solver_engine=None,
                   config_override: bool = False) -> dict[str, Any]:
    """Run (or resume) a campaign until `config.run.steps` steps are committed.

    `progress` gets the campaign's messages (default: stderr); `step_lines` each commit's
    line (default: written above the progress bar); `phase` runs the engine-bound phases of
    a step (steps mode); `on_commit` is called after each commit. An `engine`, `judge` or
    `solver_engine` handed in belongs to the caller. `config_override`: resume with
    `config` instead of the saved one (rounds change the solver between rounds)."""
    from tqdm import tqdm

    log = progress or (lambda msg: print(msg, file=sys.stderr, flush=True))
    # One writer per run directory, from before recovery until the last commit.
    with RunDir(run_dir).locked():
        camp = open_campaign(config, run_dir, resume=resume, steps=steps, progress=log, engine=engine,
                             judge=judge, solver_engine=solver_engine, config_override=config_override)
        first, target = camp.step, camp.config.run.steps
        t0 = time.perf_counter()
        try:
            bar = tqdm(total=max(0, target - first), desc="generate", unit="step",
                       disable=not show_bar, file=sys.stderr, dynamic_ncols=True)
            say = step_lines or (lambda line: bar.write(line, file=sys.stderr))

            def committed(m: StepMetrics) -> None:
                say(step_line(m))
                bar.update(1)
                bar.set_postfix(elites=m.num_elites, qd=f"{m.qd_score:.2f}", acc=m.accepted)
                if on_commit is not None:
                    on_commit(m, camp.step - first, max(1, target - first))

            with bar:
                mode = drive(camp, committed, phase=phase)
            summary = camp.summary()
            summary["mode"] = mode
            summary["wall_seconds"] = round(time.perf_counter() - t0, 1)
            return summary
        finally:
            camp.close()


def format_summary(summary: dict[str, Any]) -> str:
    lines = ["", "== generation summary =="]
    width = max(len(k) for k in summary)
    lines += [f"{k.ljust(width)}  {v}" for k, v in summary.items()]
    return "\n".join(lines)


def summary_markdown(summary: dict[str, Any]) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in summary.items())
    return f"# Generation summary\n\n| metric | value |\n|---|---|\n{rows}\n"
