"""A generation campaign: the SPARQ-style quality-diversity loop over a run directory.

One step:
  1. select  - an operator per slot (pipeline/loop/operators.py) and parents by the configured
               variant (pipeline/loop/selection.py; default: uniform over the archive's
               occupied cells); seeds are the initial population: step 0 inserts them
               with quality 0;
  2. mutate  - the generator writes a new problem + solution + answer from each parent with
               the slot's operator; for the skill-set archive the model then labels skills;
  3. solve   - the solver attempts each parseable, new problem k times (or adaptively);
  4. score   - solve rate -> quality; majority answer and agreement are recorded;
  5. archive - problems are embedded and placed by the configured archive (CVT cell,
               novelty niche or skill-set key) and inserted (one elite per niche, strictly
               better quality replaces, ties keep the incumbent);
  6. commit  - every candidate and attempt is written, then the checkpoint.

Beside this coordinator: the parent pool (population.py), each candidate's lifecycle, the
same object in both modes (lifecycle.py), and the rows, archive and atomic write (commit.py).

The phases are separate methods so an orchestrator (flows/generate.py) can wrap the
engine-bound ones in retried tasks (`run_step(phase)`). That is steps mode, where each
phase waits for its slowest request; pipeline/loop/stream.py runs the same lifecycles as a
stream, each on its own, and commits with `finish_step`.

Archive property: the archive after step N equals `rederive_archive(base, candidates of
steps 0..N)`, i.e. re-inserting into an empty archive of the same kind and parameters
(`base`: the CVT centroids, or any archive of the run), in (step, slot) order, every
committed row that is a seed or an ok candidate with quality > 0, placed by its stored
embedding (CVT, novelty) or stored skill labels (skill-set). Resume relies on it: if the
snapshot is not from the committed step, it is rebuilt from the shards.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path

import numpy as np

from archives import AddStatus, Archive
from pipeline.config import Config, dump_config
from pipeline.domains import Judge, make_domain
from pipeline.engines import Completion, Engine, RequestError, Sampling
from pipeline.engines.base import complete_each
from pipeline.loop.candidate import Draft, Parent, request_seed
from pipeline.loop.commit import (
    OUTCOME,
    attempt_rows,
    candidate_row,
    commit,
    insert,
    place,
    run_summary,
    seed_rows,
    step_metrics,
)
from pipeline.loop.failures import Refusals
from pipeline.loop.lifecycle import Rules, run_mutations, run_solves
from pipeline.loop.operators import OperatorSpec, load_operators, operator_metrics
from pipeline.loop.population import Population, rederive_archive, resume_archive  # noqa: F401 (re-exported)
from pipeline.loop.resources import Resources
from pipeline.loop.run_config import effective_config, resolve_config  # noqa: F401 (re-exported)
from pipeline.loop.solverate import quality_function
from pipeline.placement.archiving import build_archive, descriptors_for
from pipeline.prompts import Prompt
from pipeline.store.records import (
    Attempt,
    Candidate,
    OperatorMetrics,
    Status,
    StepMetrics,
    now,
)
from pipeline.store.seeds import load_seeds
from pipeline.store.storage import Checkpoint, RunDir, crash_point

Progress = Callable[[str], None]
# Runs one engine-bound phase of a step: phase(name, fn, step, arg) -> fn(step, arg).
Phase = Callable[[str, Callable, int, object], object]


class Campaign:
    """Owns the engine, embedder, judge, archive and run directory of one campaign."""

    def __init__(self, config: Config, run: RunDir, *, engine: Engine | None = None,
                 judge: Judge | None = None, progress: Progress = print,
                 solver_engine: Engine | None = None) -> None:
        self.config = config
        self.run = run
        self.domain = make_domain(config.domain)
        self.run_id = run.path.resolve().name
        self.log = progress
        # The engine, verifier engine, embedder and judge: built on first use, closed together.
        self.res = Resources(config, self.domain, engine=engine, judge=judge, log=progress,
                             solver_engine=solver_engine)
        self.quality = quality_function(config.quality.function, config.quality.lo, config.quality.hi)
        self.operators: list[OperatorSpec] = load_operators(config)
        self.population = Population()  # the parent pool, taken problem ids, operator counts
        # What a candidate's lifecycle asks of this config (pipeline/loop/lifecycle.py).
        self.rules = Rules(config, self.domain, self.operators, self.quality, self.population.taken)
        self.archive: Archive | None = None
        self.rng = np.random.default_rng(config.run.seed)
        self.step = -1  # last committed step
        self.counters: dict[str, float] = {}
        self.refusals = Refusals(config.run.max_failed_in_a_row)

    # -- opening -------------------------------------------------------------------
    @classmethod
    def open(cls, run_dir: Path | str, *, config: Config | None = None, resume: bool = False,
             steps: int | None = None, engine: Engine | None = None, judge: Judge | None = None,
             progress: Progress = print, solver_engine: Engine | None = None,
             config_override: bool = False) -> Campaign:
        """Open a new run directory, or resume a committed one.

        A new run needs `config` (the resolved config is written to RUN/config.toml).
        `resume=True` continues from RUN/config.toml (a given `config` is then ignored, so
        a campaign keeps its settings); `steps` overrides the target step count.
        Resuming a directory with no committed step starts it fresh; starting fresh over
        committed steps is refused. `config_override=True` resumes with `config` instead and
        saves it as RUN/config.toml (rounds give the campaign a new solver each round); it
        must keep what the committed rows depend on (domain, seeds, archive, quality).
        """
        run = RunDir(run_dir)
        ckpt = run.read_checkpoint()
        config = resolve_config(run, ckpt, config, resume=resume, steps=steps, config_override=config_override)
        camp = cls(config, run, engine=engine, judge=judge, progress=progress, solver_engine=solver_engine)
        if ckpt is not None:
            camp._restore(ckpt)
        return camp

    # The resources, by the names the drivers and benchmarks use.
    engine = property(lambda self: self.res.engine)
    verifier_engine = property(lambda self: self.res.verifier_engine)
    solver_engine = property(lambda self: self.res.solver_engine)
    embedder = property(lambda self: self.res.embedder)
    judge = property(lambda self: self.res.judge)
    verifies = property(lambda self: self.rules.verifies)  # the verifier is on and a gate uses it

    def embed_async(self, problems: list[str]) -> Future:
        return self.res.embed_async(problems)

    def close(self) -> None:
        self.res.close()

    # -- step 0: the seeds ---------------------------------------------------------
    def initialize(self) -> None:
        """Step 0: load and embed the seeds, build the cells, insert the seeds, commit."""
        if self.step >= 0:
            return
        seeds = load_seeds(self.config.seeds)  # validated before any model work
        self.run.create(dump_config(self.config))
        self.run.recover(-1)  # leftovers of a step 0 that died before its checkpoint
        self.log(f"{len(seeds)} seeds from {self.config.seeds.source}; embedding ...")
        t0 = time.perf_counter()
        emb = self.embedder.encode_cached([s.problem for s in seeds])
        skills = [s.skill for s in seeds]
        self.archive = build_archive(self.config.archive, seed=self.config.run.seed, embeddings=emb,
                                     seed_skills=skills)
        rows = seed_rows(self.run_id, seeds, emb)
        statuses, cells = self.archive.add([r.id for r in rows], descriptors_for(self.archive, emb, skills),
                                           [0.0] * len(rows), steps=[0] * len(rows))
        rows = [replace(r, cell=int(c) if c >= 0 else None, archive_outcome=OUTCOME[AddStatus(int(s))])
                for r, s, c in zip(rows, statuses, cells, strict=True)]
        self.rules.use_archive(self.archive, [(s.problem, s.solution, s.skill) for s in seeds])
        self.population.remember(rows)
        self.commit_step(0, rows, [], 0.0, 0.0, t0, [])
        self.log(f"step 0: {len(rows)} seeds in {self.archive.stats.num_elites} of {self.archive.cells} "
                 f"{self.archive.kind} cells")

    # -- resume --------------------------------------------------------------------
    def _restore(self, ckpt: Checkpoint) -> None:
        removed = self.run.recover(ckpt.step)
        if removed:
            self.log(f"resume: discarded uncommitted {', '.join(removed)}")
        self.step = ckpt.step
        self.rng.bit_generator.state = ckpt.rng_state
        self.counters = dict(ckpt.counters)
        candidates = self.run.read_candidates(upto=ckpt.step)
        archive = resume_archive(self.run, ckpt.step, candidates, self.config.archive.kind, self.log)
        self.archive = archive
        rows = self.population.restore(candidates)
        self.rules.use_archive(archive, [(r["problem"], r["solution"] or "", r["skill"]) for r in rows
                                  if r["step"] == 0])
        self.log(f"resumed {self.run.path} at step {self.step} "
                 f"({self.archive.stats.num_elites} elites)")

    # -- one step --------------------------------------------------------------------
    def select_parents(self, count: int | None = None) -> list[Parent]:
        """A parent per slot (`count` slots, default `run.batch_size`) with the slot's
        operator, and its second parent or target (pipeline/loop/population.py)."""
        assert self.archive is not None, "initialize() or resume first"
        count = self.config.run.batch_size if count is None else count
        return self.population.select(self.config, self.archive, self.operators, self.rng, count)

    def request_seed(self, step: int, phase: int) -> int:
        """The seed of one engine call (pipeline/loop/candidate.py's `request_seed`)."""
        return request_seed(self.config, step, phase)

    def mutate(self, step: int, parents: list[Parent]) -> list[Draft]:
        """Steps mode's mutate phase: a mutation per parent, parsed and checked (failures kept
        as rows); for the skill-set archive the ok ones are then labelled."""
        return run_mutations(self.rules, step, parents, self.complete_for, self.request_seed)

    def solve(self, step: int, drafts: list[Draft]) -> list[Draft]:
        """Steps mode's solve phase: solver attempts for every ok draft (k each, or adaptive
        rounds up to k), judged; then the verifier where it is on."""
        return run_solves(self.rules, self.judge, step, drafts, self.complete_for, self.request_seed,
                          prefetch=self.res.prefetch_embeddings)

    def complete_for(self, role: str, prompts: list[Prompt], sampling: Sampling) -> list:
        return self.complete(self.res.engine_for(role), prompts, sampling)

    def complete(self, engine: Engine, prompts: list[Prompt],
                 sampling: Sampling) -> list[list[Completion] | RequestError]:
        """`engine.complete` with a refused prompt's `RequestError` in its place (counted:
        past `run.max_failed_in_a_row` in a row the run stops)."""
        outs = complete_each(engine, prompts, sampling)
        for o in outs:
            self.count_outcome(o)
        return outs

    def count_outcome(self, out: object) -> None:
        """Count one request's outcome: refused (may stop the run) or answered."""
        if isinstance(out, RequestError):
            self.refusals.refused(out)
        else:
            self.refusals.answered()

    def finish_step(self, step: int, drafts: list[Draft], mutate_s: float, solve_s: float,
                    started: float, embeddings: dict[int, np.ndarray] | None = None) -> StepMetrics:
        """Score, embed, insert into the archive, and commit the step.

        `embeddings`: the ok drafts' problem embeddings by slot, when the caller computed
        them already (the streaming loop embeds as candidates finish).
        """
        assert self.archive is not None
        if embeddings is None:
            ok = [d for d in drafts if d.status == Status.OK]
            emb = self.res.embeddings([d.mutation.problem for d in ok])
            embeddings = {d.slot: e for d, e in zip(ok, emb, strict=True)}
        crash_point("embed", step)
        created = now()
        rows, attempts = [], []
        solver = self.res.solver_name
        for d in drafts:
            row = candidate_row(d, run_id=self.run_id, step=step, embedding=embeddings.get(d.slot), created=created,
                                quality=self.quality, spec=self.rules.spec(d.parent), engine=self.engine.name,
                                threshold=self.config.validity.threshold, solver=solver)
            rows.append(row)
            attempts.extend(attempt_rows(row, d, created, prompt_version=self.rules.solve_prompt.version,
                                         solver=solver))
        rows = insert(self.archive, step, place(self.archive, rows))
        self.population.remember(rows)
        ops = operator_metrics(step, rows, self.config.quality.lo, self.config.quality.hi)
        return self.commit_step(step, rows, attempts, mutate_s, solve_s, started, ops)

    def run_step(self, phase: Phase | None = None) -> StepMetrics:
        """One step with its phases as barriers (steps mode). `phase(name, fn, step, arg)`
        runs the engine-bound phases (mutate, solve), e.g. as retried orchestrator tasks."""
        phase = phase or (lambda name, fn, step, arg: fn(step, arg))
        step = self.step + 1
        started = time.perf_counter()
        parents = self.select_parents()
        drafts = phase("mutate", self.mutate, step, parents)
        mutate_s = time.perf_counter() - started
        t1 = time.perf_counter()
        drafts = phase("solve", self.solve, step, drafts)
        solve_s = time.perf_counter() - t1
        return self.finish_step(step, drafts, mutate_s, solve_s, started)

    # -- re-scoring (rounds) ------------------------------------------------------------
    def rescore(self) -> StepMetrics:
        """One step that re-solves every generated elite with the current solver and
        re-derives the archive from the re-scored rows (pipeline/loop/rescore.py)."""
        from pipeline.loop.rescore import rescore_step

        return rescore_step(self)

    # -- bookkeeping -----------------------------------------------------------------
    def commit_step(self, step: int, rows: list[Candidate], attempts: list[Attempt], mutate_s: float, solve_s: float,
                started: float, operators: list[OperatorMetrics]) -> StepMetrics:
        q = self.config.quality
        metrics = step_metrics(self.archive, step, rows, attempts, lo=q.lo, hi=q.hi, mutate_s=mutate_s,
                               solve_s=solve_s, seconds=time.perf_counter() - started)
        commit(self.run, self.run_id, step, rows, attempts, metrics, operators, archive=self.archive, rng=self.rng,
               counters=self.counters)
        self.step = step
        return metrics

    def record_launched(self, seq: int) -> None:
        """The stream's candidates launched so far (checkpointed with the next commit, so a
        resumed stream numbers its candidates, and so seeds them, after these)."""
        self.counters["launched"] = float(seq)

    def summary(self) -> dict[str, float | int | str]:
        return run_summary(self.run, self.archive, self.counters, self.config, self.res.engine_name, self.step)
