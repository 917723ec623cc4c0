"""`sparq rounds`: open-ended rounds, in which the tuned model becomes the next round's solver.

One campaign directory DIR holds every round:

    DIR/rounds.toml           the resolved [rounds] section (resume reads it)
    DIR/state.json            where the rounds stand: round, stage, targets (atomic writes)
    DIR/run/                  the generation run, carried over from round to round
    DIR/base/eval.json        the base model on the held-out split (round 0)
    DIR/round-RR/data/        round RR's export (every valid, in-band, decontaminated row so far)
    DIR/round-RR/model/       round RR's fine-tuned model (merged)
    DIR/round-RR/eval.json    its held-out evaluation
    DIR/round-RR/round.json   its report row (flows/rounds_report.py)
    DIR/rounds.json, DIR/report.md, DIR/report.html   the per-round report

Round r (1-based) runs these stages, each committed by rewriting state.json after its
outputs are complete:
  rescore  (r > 1) every elite is re-solved by the new solver (pipeline/loop/rescore.py), one
           committed step of the run, so the archive property still holds;
  generate the run grows by `steps_per_round` steps, with round r-1's model as the solver
           (`tune = "solver"`) or as generator and solver (`"both"`, SPARQ's single model);
  export   the whole run, through the export filters, into a fresh directory;
  finetune the base model on that export (see below), into a fresh directory;
  evaluate the tuned model on the held-out split;
  report   the round's row and the report files.

Each round trains from the **base** weights on all the data so far, not from the previous
round's weights: the export of a carried-over run is already cumulative, so training the
previous model on it again would repeat early rows in every round (and a LoRA merged into
weights that already hold a merged LoRA drifts further with each round); from the base,
each round's model is a function of its data alone, which is what the report compares.

A kill in any stage resumes in that stage: generation resumes its run (steps are atomic);
a re-scoring step is committed or not; an export or model directory that a stage left
unfinished is removed and made again. Engines: one per model, built when first needed and
kept for the stages that use the same model (the tuned model of round r is evaluated,
then re-scores and solves in round r+1: one engine start per round).

Fault injection (tests only): SPARQ_ROUNDS_CRASH_AT=<stage>:<round> SIGKILLs the process
when that stage's work is done but before state.json records it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from finetune.errors import FinetuneConfigError
from pipeline.config import build, check, read_toml
from pipeline.store.storage import RunError, atomic_write_bytes

Log = Callable[[str], None]
# Runs one stage: stage_hook(round, stage, fn) -> fn() (the Prefect flow makes each a task).
StageHook = Callable[[int, str, Callable[[], Any]], Any]

STAGES = ("rescore", "generate", "export", "finetune", "evaluate", "report")
TUNE = ("solver", "both")
DEFAULT_ROUNDS_CONFIG = Path(__file__).parent / "rounds.toml"


@dataclass(frozen=True)
class RoundsSection:
    rounds: int = 3
    steps_per_round: int = 15
    tune: str = "solver"
    generate_config: str = ""  # "" = the packaged default
    export_config: str = ""
    finetune_config: str = ""
    evaluate_base: bool = True
    # The report warns when, from one round to the next, the valid share falls by more
    # than `warn_valid_drop` or the elites' mean pairwise cosine rises by more than
    # `warn_cosine_rise` (they grow alike: the collapse B-STaR and R-Zero report).
    warn_valid_drop: float = 0.10
    warn_cosine_rise: float = 0.05

    def validate(self, p: str) -> None:
        check(1 <= self.rounds <= 1000, f"{p}.rounds", "an integer in [1, 1000]", self.rounds,
              error=FinetuneConfigError)
        check(1 <= self.steps_per_round <= 1_000_000, f"{p}.steps_per_round", "an integer >= 1",
              self.steps_per_round, error=FinetuneConfigError)
        check(self.tune in TUNE, f"{p}.tune", f"one of {TUNE}", self.tune, error=FinetuneConfigError)
        check(0 <= self.warn_valid_drop <= 1, f"{p}.warn_valid_drop", "a number in [0, 1]", self.warn_valid_drop,
              error=FinetuneConfigError)
        check(0 <= self.warn_cosine_rise <= 2, f"{p}.warn_cosine_rise", "a number in [0, 2]",
              self.warn_cosine_rise, error=FinetuneConfigError)


@dataclass(frozen=True)
class RoundsFile:
    rounds: RoundsSection = RoundsSection()


def load_rounds_config(path: str | Path | None = None, **overrides: Any) -> RoundsSection:
    """The [rounds] section of `path` (default: the packaged flows/rounds.toml), with
    `overrides` (CLI options) applied."""
    path = Path(path) if path else DEFAULT_ROUNDS_CONFIG
    data = read_toml(path, FinetuneConfigError)
    if "rounds" not in data:
        raise FinetuneConfigError(f"config file {path}: no [rounds] table")
    data["rounds"].update({k: v for k, v in overrides.items() if v is not None})
    section = build(RoundsFile, data, "", str(path), FinetuneConfigError).rounds
    # A relative config path: from the working directory, or else beside this file.
    found = {}
    for key in ("generate_config", "export_config", "finetune_config"):
        value = getattr(section, key)
        if value and not Path(value).is_absolute() and not Path(value).exists() and (path.parent / value).is_file():
            found[key] = str((path.parent / value).resolve())
    return replace(section, **found)


def crash_point(stage: str, round_no: int) -> None:
    if os.environ.get("SPARQ_ROUNDS_CRASH_AT") == f"{stage}:{round_no}":
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class Stages:
    """The library calls a round makes (tests may stand in their own for the slow ones)."""

    export: Callable[..., Any]
    finetune: Callable[..., Any]
    evaluate: Callable[..., dict[str, Any]]

    @classmethod
    def real(cls) -> Stages:
        from filters.export import export_runs
        from finetune.evaluate import evaluate
        from finetune.train import finetune

        return cls(export=export_runs, finetune=finetune, evaluate=evaluate)


class RoundsError(RunError):
    """A rounds directory that cannot be used as asked; the message says why."""


class Rounds:
    """One rounds campaign in `directory` (see the module doc)."""

    def __init__(self, directory: str | Path, section: RoundsSection, *, log: Log = print,
                 stages: Stages | None = None, stage_hook: StageHook | None = None) -> None:
        from filters.config import load_export_config
        from finetune.config import load_finetune_config
        from pipeline.config import load_config

        self.dir = Path(directory)
        self.log = log
        self.stages = stages or Stages.real()
        self.hook = stage_hook or (lambda r, name, fn: fn())
        saved = self.dir / "rounds.toml"
        if saved.is_file():  # a campaign keeps its settings; only the round count may grow
            kept = load_rounds_config(saved)
            section = replace(kept, rounds=section.rounds)
        self.s = section
        # Every config loads before any work: a typo fails before hours of generation.
        self.gen_cfg = load_config(section.generate_config or None)
        self.exp_cfg = load_export_config(section.export_config or None)
        self.ft_cfg = load_finetune_config(section.finetune_config or None)
        self.engines: dict[str, Any] = {}

    # -- paths and state ------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        return self.dir / "run"

    def round_dir(self, r: int) -> Path:
        return self.dir / ("base" if r == 0 else f"round-{r:02d}")

    def read_state(self) -> dict[str, Any]:
        path = self.dir / "state.json"
        if not path.is_file():
            return {"round": 0, "stage": "base", "rounds": {}}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RoundsError(f"rounds directory {self.dir}: state.json unreadable ({exc})") from None

    def write_state(self, state: dict[str, Any]) -> None:
        atomic_write_bytes(self.dir / "state.json", json.dumps(state, indent=1).encode("utf-8"))

    def model_of(self, r: int, state: dict[str, Any]) -> str:
        """Round r's model: the base for round 0 and for a round that trained nothing."""
        if r == 0:
            return self.ft_cfg.model.base
        info = state["rounds"].get(str(r), {})
        return str(self.round_dir(r) / "model") if info.get("tuned") else self.model_of(r - 1, state)

    # -- engines ----------------------------------------------------------------------------
    def engine(self, model: str, keep: set[str]):
        """The engine serving `model` (built on first use); engines of models not in `keep`
        are closed first (their memory goes to the new one)."""
        from pipeline.engines import make_engine

        for name in [m for m in self.engines if m != model and m not in keep]:
            self.engines.pop(name).close()
        if model not in self.engines:
            self.log(f"loading engine {self.gen_cfg.engine.kind}:{model} ...")
            self.engines[model] = make_engine(replace(self.gen_cfg.engine, model=model), seed=self.gen_cfg.run.seed)
        return self.engines[model]

    def close(self) -> None:
        for engine in self.engines.values():
            engine.close()
        self.engines.clear()

    def round_config(self, r: int, state: dict[str, Any]):
        """The generation config of round r: the previous round's model solves (and, with
        `tune = "both"`, generates)."""
        cfg, model = self.gen_cfg, self.model_of(r - 1, state)
        if model == self.ft_cfg.model.base:
            return cfg
        if self.s.tune == "both":
            return replace(cfg, engine=replace(cfg.engine, model=model))
        return replace(cfg, solver=replace(cfg.solver, engine="own", own=replace(cfg.engine, model=model)))

    def campaign_engines(self, r: int, state: dict[str, Any]) -> tuple[Any, Any]:
        """(generator engine, solver engine) of round r."""
        base, model = self.gen_cfg.engine.model, self.model_of(r - 1, state)
        generator_model = model if self.s.tune == "both" else base
        generator = self.engine(generator_model, keep={model})
        return generator, self.engine(model, keep={generator_model})

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> list[dict[str, Any]]:
        """Run (or resume) the rounds; returns the report rows."""
        self.dir.mkdir(parents=True, exist_ok=True)
        lock = open(self.dir / ".lock", "a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise RoundsError(f"rounds directory {self.dir} is in use by another process") from None
        try:
            atomic_write_bytes(self.dir / "rounds.toml", _dump_section(self.s).encode("utf-8"))
            return self._run()
        finally:
            self.close()
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()

    def _run(self) -> list[dict[str, Any]]:
        state = self.read_state()
        if state["round"] == 0:
            if state["stage"] != "done" and self.s.evaluate_base:
                self.log("round 0: evaluating the base model")
                self.hook(0, "evaluate", lambda: self._evaluate(0, state))
                crash_point("evaluate", 0)
            state.update(round=1, stage=STAGES[1])
            self.write_state(state)
        while state["round"] <= self.s.rounds:
            r = state["round"]
            if state["stage"] == "done":  # rounds grew after a finished campaign
                state.update(round=r + 1, stage=STAGES[0])
                continue
            for stage in STAGES[STAGES.index(state["stage"]):]:
                if stage == "rescore" and r == 1:
                    continue
                self.log(f"round {r}: {stage}")
                t0 = time.perf_counter()
                self.hook(r, stage, lambda stage=stage, r=r: getattr(self, "_" + stage)(r, state))
                crash_point(stage, r)
                info = state["rounds"].setdefault(str(r), {})
                info.setdefault("seconds", {})[stage] = round(time.perf_counter() - t0, 1)
                nxt = STAGES.index(stage) + 1
                state["stage"] = STAGES[nxt] if nxt < len(STAGES) else "done"
                self.write_state(state)
            if r < self.s.rounds:
                state.update(round=r + 1, stage=STAGES[0])
                self.write_state(state)
            else:
                break
        from flows.rounds_report import load_rows

        return load_rows(self.dir)

    # -- stages -----------------------------------------------------------------------------
    def _rescore(self, r: int, state: dict[str, Any]) -> None:
        from pipeline.loop.campaign import Campaign
        from pipeline.store.storage import RunDir

        info = state["rounds"].setdefault(str(r), {})
        run = RunDir(self.run_dir)
        ckpt = run.read_checkpoint()
        if ckpt is None:
            raise RoundsError(f"rounds directory {self.dir}: round {r} would re-score, but {self.run_dir} "
                              "has no committed step")
        if "rescore_step" in info and ckpt.step >= info["rescore_step"]:
            return  # committed before a kill
        info["rescore_step"] = ckpt.step + 1
        self.write_state(state)
        generator, solver = self.campaign_engines(r, state)
        with run.locked():
            camp = Campaign.open(self.run_dir, config=self.round_config(r, state), resume=True,
                                 config_override=True, engine=generator, solver_engine=solver, progress=self.log)
            try:
                m = camp.rescore()
            finally:
                camp.close()
        self.log(f"round {r}: re-scored, {m.num_elites} elites, coverage {m.coverage:.3f}, qd {m.qd_score:.3f}")

    def _generate(self, r: int, state: dict[str, Any]) -> None:
        from pipeline.loop.generate import run_generation
        from pipeline.store.storage import RunDir

        info = state["rounds"].setdefault(str(r), {})
        ckpt = RunDir(self.run_dir).read_checkpoint()
        if "target_step" not in info:
            start = ckpt.step if ckpt is not None else 0
            info.update(start_step=start, target_step=start + self.s.steps_per_round)
            self.write_state(state)
        generator, solver = self.campaign_engines(r, state)
        summary = run_generation(self.round_config(r, state), self.run_dir, resume=ckpt is not None,
                                 steps=info["target_step"], progress=self.log, engine=generator,
                                 solver_engine=solver if solver is not generator else None,
                                 show_bar=False, config_override=ckpt is not None)
        self.log(f"round {r}: generated to step {summary['steps']}, {summary['elites']} elites, "
                 f"coverage {summary['coverage']}, qd {summary['qd_score']}")

    def _export(self, r: int, state: dict[str, Any]) -> None:
        out = self.round_dir(r) / "data"
        shutil.rmtree(out, ignore_errors=True)  # an export a kill left unfinished
        result = self.stages.export([str(self.run_dir)], str(out), config=self.exp_cfg, log=self.log)
        state["rounds"].setdefault(str(r), {})["rows"] = int(result.data_rows)

    def _finetune(self, r: int, state: dict[str, Any]) -> None:
        info = state["rounds"].setdefault(str(r), {})
        out = self.round_dir(r) / "model"
        shutil.rmtree(out, ignore_errors=True)
        if not info.get("rows"):
            info["tuned"] = False
            self.log(f"round {r}: the export has no rows; the solver stays {self.model_of(r - 1, state)}")
            return
        trained = self.stages.finetune(str(self.round_dir(r) / "data"), str(out), config=self.ft_cfg, log=self.log)
        info.update(tuned=True, train_steps=int(trained.steps), final_loss=trained.final_loss)

    def _evaluate(self, r: int, state: dict[str, Any]) -> None:
        out = self.round_dir(r) / "eval.json"
        info = state["rounds"].get(str(r), {})
        if r > 0 and not info.get("tuned"):
            prev = self.round_dir(r - 1) / "eval.json"
            if prev.is_file():  # the same model as last round: its evaluation stands
                _write_json(out, json.loads(prev.read_text(encoding="utf-8")))
            return
        model = self.model_of(r, state)
        # The base model's engine (the generator's) or the new model's, which then re-scores
        # and solves in the next round: no engine is built for the evaluation alone.
        keep = {self.gen_cfg.engine.model} if self.s.tune == "solver" else set()
        engine = self.engine(model, keep=keep)
        result = self.stages.evaluate(model, config=self.ft_cfg.evaluate, log=self.log, engine=engine)
        _write_json(out, result)

    def _report(self, r: int, state: dict[str, Any]) -> None:
        from flows.rounds_report import round_row, write_report

        row = round_row(self.dir, r, state, warn_valid_drop=self.s.warn_valid_drop,
                        warn_cosine_rise=self.s.warn_cosine_rise)
        _write_json(self.round_dir(r) / "round.json", row)
        write_report(self.dir)
        for line in row["warnings"]:
            self.log(f"round {r}: WARNING {line}")


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps(obj, indent=1).encode("utf-8"))


def _dump_section(s: RoundsSection) -> str:
    import tomli_w

    return tomli_w.dumps({"rounds": asdict(s)})


def run_rounds(directory: str | Path, section: RoundsSection, *, log: Log = print, stages: Stages | None = None,
               stage_hook: StageHook | None = None) -> list[dict[str, Any]]:
    """Run or resume the rounds campaign in `directory`; returns its report rows."""
    return Rounds(directory, section, log=log, stages=stages, stage_hook=stage_hook).run()
