"""A generation campaign: the SPARQ-style quality-diversity loop over a run directory.

One step:
  1. select  - an operator per slot (pipeline/operators.py) and parents by the configured
               variant (pipeline/selection.py; default: uniform over the archive's
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

What a step is made of lives beside this coordinator: the parent pool and selection in
pipeline/population.py; each candidate's lifecycle (mutate, parse and check, label,
solve, judge, verify) in pipeline/lifecycle.py, the same object in both modes; the rows,
archive insertion, metrics and the atomic write in pipeline/commit.py.

The phases are separate methods so an orchestrator (flows/generate.py) can wrap the
engine-bound ones in retried tasks (`run_step(phase)`). That is steps mode, where each
phase waits for its slowest request; pipeline/stream.py runs the same lifecycles as a
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
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from archives import AddStatus, Archive, load_archive
from pipeline.archiving import build_archive, descriptors_for
from pipeline.candidate import Draft, Parent, archive_eligible  # noqa: F401 (re-exported: stream, flows)
from pipeline.commit import OUTCOME, attempt_rows, candidate_row, commit, insert, place, step_metrics
from pipeline.config import Config, dump_config, load_config
from pipeline.domains import Judge, make_domain
from pipeline.embedding import Embedder
from pipeline.engines import Completion, Engine, RequestError, Sampling, make_engine
from pipeline.engines.base import complete_each
from pipeline.failures import Refusals
from pipeline.lifecycle import Rules, run_mutations, run_solves
from pipeline.operators import (
    OperatorSpec,
    load_operators,
    operator_metrics,
)
from pipeline.population import Population, rederive_archive
from pipeline.prompts import Prompt
from pipeline.records import (
    ArchiveOutcome,
    Attempt,
    Candidate,
    OperatorMetrics,
    Status,
    StepMetrics,
    candidate_id,
    now,
    problem_id,
)
from pipeline.seeds import Seed, load_seeds
from pipeline.solverate import quality_function
from pipeline.storage import Checkpoint, RunDir, RunError, crash_point

Progress = Callable[[str], None]
# Runs one engine-bound phase of a step: phase(name, fn, step, arg) -> fn(step, arg).
Phase = Callable[[str, Callable, int, object], object]


# request_seed phases: mutation 1 + 20 x operator index, label 2, solve round r
# PHASE_SOLVE + r (r < 1024: k <= 1024), the verifier PHASE_VERIFY.
PHASE_SOLVE, PHASE_VERIFY, PHASES = 100, 2048, 4096


def effective_config(run: RunDir, config: Config | None, resume: bool) -> Config | None:
    """The config a campaign in `run` runs with: the saved one once it has committed steps
    (or when resuming a directory that has one), else `config`."""
    if run.read_checkpoint() is not None or (resume and run.config_path.is_file()):
        return load_config(run.config_path)
    return config


class Campaign:
    """Owns the engine, embedder, judge, archive and run directory of one campaign."""

    def __init__(self, config: Config, run: RunDir, *, engine: Engine | None = None,
                 judge: Judge | None = None, progress: Progress = print) -> None:
        self.config = config
        self.run = run
        self.domain = make_domain(config.domain)
        self.run_id = run.path.resolve().name
        self.log = progress
        self._engine = engine
        # An engine handed in belongs to the caller (e.g. one model shared by several
        # campaigns): close() only drops it. One the campaign builds, it closes.
        self._owns_engine = engine is None
        self._embedder: Embedder | None = None
        # A judge handed in (e.g. one that fans out to a cluster) must offer judge_many and close.
        self._judge: Judge | None = judge
        self.quality = quality_function(config.quality.function, config.quality.lo, config.quality.hi)
        self.operators: list[OperatorSpec] = load_operators(config)
        self.population = Population()  # the parent pool, taken problem ids, operator counts
        # What a candidate's lifecycle asks of this config (pipeline/lifecycle.py).
        self.rules = Rules(config, self.domain, self.operators, self.quality, self.population.taken)
        self.archive: Archive | None = None
        self.rng = np.random.default_rng(config.run.seed)
        self.step = -1  # last committed step
        self.counters: dict[str, float] = {}
        self._embed_pool: ThreadPoolExecutor | None = None
        self._prefetched: tuple[tuple[str, ...], Future] | None = None
        self._verifier_engine: Engine | None = None
        self.refusals = Refusals(config.run.max_failed_in_a_row)

    # -- opening -------------------------------------------------------------------
    @classmethod
    def open(cls, run_dir: Path | str, *, config: Config | None = None, resume: bool = False,
             steps: int | None = None, engine: Engine | None = None, judge: Judge | None = None,
             progress: Progress = print) -> Campaign:
        """Open a new run directory, or resume a committed one.

        A new run needs `config` (the resolved config is written to RUN/config.toml).
        `resume=True` continues from RUN/config.toml (a given `config` is then ignored, so
        a campaign keeps its settings); `steps` overrides the target step count.
        Resuming a directory with no committed step starts it fresh; starting fresh over
        committed steps is refused.
        """
        run = RunDir(run_dir)
        ckpt = run.read_checkpoint()
        if ckpt is not None and not resume:
            raise RunError(f"run directory {run.path} already has {ckpt.step} committed step(s); "
                           "pass --resume to continue it or choose another directory")
        config = effective_config(run, config, resume)
        if config is None:
            raise RunError(f"run directory {run.path} has no config.toml; give a config")
        if steps is not None:
            config = replace(config, run=replace(config.run, steps=steps))
        camp = cls(config, run, engine=engine, judge=judge, progress=progress)
        if ckpt is not None:
            camp._restore(ckpt)
        return camp

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            model = "" if self.config.engine.kind == "scripted" else f":{self.config.engine.model}"
            self.log(f"loading engine {self.config.engine.kind}{model} ...")
            self._engine = make_engine(self.config.engine, seed=self.config.run.seed)
            self._owns_engine = True
        return self._engine

    @property
    def verifier_engine(self) -> Engine:
        """The verifier's engine: the campaign's own, or its own [verifier.own] engine."""
        if self.config.verifier.engine == "campaign":
            return self.engine
        if self._verifier_engine is None:
            own = self.config.verifier.own
            self.log(f"loading verifier engine {own.kind}:{own.model} ...")
            self._verifier_engine = make_engine(own, seed=self.config.run.seed + 1)
        return self._verifier_engine

    @property
    def verifies(self) -> bool:
        """Whether the verifier runs: attempts configured and a gate that uses it."""
        return self.rules.verifies

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = Embedder(self.config.archive.embedder)
        return self._embedder

    @property
    def judge(self) -> Judge:
        if self._judge is None:
            self._judge = self.domain.new_judge(self.config.solver.verify_timeout_s)
        return self._judge

    def close(self) -> None:
        if self._embed_pool is not None:
            self._embed_pool.shutdown(wait=True, cancel_futures=True)
            self._embed_pool, self._prefetched = None, None
        if self._judge is not None:
            self._judge.close()
            self._judge = None
        if self._verifier_engine is not None:
            self._verifier_engine.close()
            self._verifier_engine = None
        if self._engine is not None:
            if self._owns_engine:
                self._engine.close()
            self._engine = None

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
        rows = self._seed_rows(seeds, emb)
        statuses, cells = self.archive.add([r.id for r in rows], descriptors_for(self.archive, emb, skills),
                                           [0.0] * len(rows), steps=[0] * len(rows))
        rows = [replace(r, cell=int(c) if c >= 0 else None, archive_outcome=OUTCOME[AddStatus(int(s))])
                for r, s, c in zip(rows, statuses, cells, strict=True)]
        self.rules.use_archive(self.archive, [(s.problem, s.solution, s.skill) for s in seeds])
        self.population.remember(rows)
        metrics = self._metrics(0, rows, [], 0.0, 0.0, time.perf_counter() - t0)
        self._commit(0, rows, [], metrics, [])
        self.log(f"step 0: {len(rows)} seeds in {self.archive.stats.num_elites} of {self.archive.cells} "
                 f"{self.archive.kind} cells")

    def _seed_rows(self, seeds: list[Seed], emb: np.ndarray) -> list[Candidate]:
        created = now()
        rows = []
        for i, (s, e) in enumerate(zip(seeds, emb, strict=True)):
            rows.append(Candidate(
                id=candidate_id(self.run_id, 0, i), run_id=self.run_id, step=0, slot=i,
                parent_id=None, depth=0, operator="seed", problem_id=problem_id(s.problem),
                problem=s.problem, solution=s.solution, answer=s.answer, raw_output=None,
                status=Status.SEED, reason=None, k=0, n_correct=0, solve_rate=None,
                majority_answer=None, majority_share=None, reference_agrees=None, quality=0.0,
                cell=None, archive_outcome=ArchiveOutcome.NOT_ADDED, embedding=e, skill=s.skill,
                prompt_version=None, generator=None, solver=None, gen_tokens=0, solve_tokens=0,
                created_at=created))
        return rows

    # -- resume --------------------------------------------------------------------
    def _restore(self, ckpt: Checkpoint) -> None:
        removed = self.run.recover(ckpt.step)
        if removed:
            self.log(f"resume: discarded uncommitted {', '.join(removed)}")
        self.step = ckpt.step
        self.rng.bit_generator.state = ckpt.rng_state
        self.counters = dict(ckpt.counters)
        candidates = self.run.read_candidates(upto=ckpt.step)
        archive, state = None, {}
        try:
            archive, state = load_archive(self.run.archive_dir)
        except (OSError, ValueError, KeyError) as exc:
            self.log(f"resume: archive snapshot unreadable ({exc}); rebuilding from shards")
        if archive is None or state.get("step") != ckpt.step:
            if archive is None:
                raise RunError(f"run directory {self.run.path}: no readable archive snapshot to "
                               "take the cells from; the run cannot be resumed")
            self.log(f"resume: archive snapshot is from step {state.get('step')}, rebuilding "
                     f"it from the shards of steps 0..{ckpt.step}")
            archive = rederive_archive(archive, candidates)
        if archive.kind != self.config.archive.kind:
            raise RunError(f"run directory {self.run.path}: the archive snapshot is of kind {archive.kind!r} but "
                           f"config key 'archive.kind' is {self.config.archive.kind!r}")
        self.archive = archive
        rows = self.population.restore(candidates)
        self.rules.use_archive(archive, [(r["problem"], r["solution"] or "", r["skill"]) for r in rows
                                  if r["step"] == 0])
        self.log(f"resumed {self.run.path} at step {self.step} "
                 f"({self.archive.stats.num_elites} elites)")

    # -- one step --------------------------------------------------------------------
    def select_parents(self, count: int | None = None) -> list[Parent]:
        """A parent per slot (`count` slots, default `run.batch_size`) with the slot's
        operator, and its second parent or target (pipeline/population.py)."""
        assert self.archive is not None, "initialize() or resume first"
        count = self.config.run.batch_size if count is None else count
        return self.population.select(self.config, self.archive, self.operators, self.rng, count)

    def request_seed(self, step: int, phase: int) -> int:
        """The seed of one engine call: `step` is the step (steps mode) or the candidate's
        sequence number (stream), `phase` one of the PHASE_* values (plus the operator's or
        the round's number). Each (step, phase) owns a block of `seed_block` seeds, as many
        as one call's prompts x samples can take (engines.prompt_seed), so no two samples
        of a run share a seed: adaptive rounds and the verifier draw new samples, not
        repeats of earlier ones counted as more evidence."""
        if not 0 <= phase < PHASES:
            raise ValueError(f"request_seed: phase {phase} outside [0, {PHASES})")
        return (self.config.run.seed * 1_000_003 + (step * PHASES + phase) * self.seed_block) % (2**62)

    @property
    def seed_block(self) -> int:
        c = self.config
        return max(1, c.run.batch_size) * max(1, c.solver.k, c.verifier.m)

    def mutate(self, step: int, parents: list[Parent]) -> list[Draft]:
        """Steps mode's mutate phase: a mutation per parent, parsed and checked (failures kept
        as rows); for the skill-set archive the ok ones are then labelled."""
        return run_mutations(self.rules, step, parents, self._complete, self.request_seed)

    def solve(self, step: int, drafts: list[Draft]) -> list[Draft]:
        """Steps mode's solve phase: solver attempts for every ok draft (k each, or adaptive
        rounds up to k), judged; then the verifier where it is on."""
        return run_solves(self.rules, self.judge, step, drafts, self._complete, self.request_seed,
                          prefetch=self._prefetch_embeddings)

    def _complete(self, verifier: bool, prompts: list[Prompt], sampling: Sampling) -> list:
        return self.complete(self.verifier_engine if verifier else self.engine, prompts, sampling)

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

    def _prefetch_embeddings(self, problems: list[str]) -> None:
        """Embed the step's new problems in the background while their solves run: with a
        fast remote engine the embedding would otherwise leave every endpoint idle."""
        if self._embed_pool is None:
            self._embed_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sparq-embed")
        embedder = self.embedder  # loaded here, not in the thread
        self._prefetched = (tuple(problems), self._embed_pool.submit(embedder.encode, problems))

    def embed_async(self, problems: list[str]) -> Future:
        """Embed `problems` on the campaign's embedding thread; a future of the array."""
        if self._embed_pool is None:
            self._embed_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sparq-embed")
        return self._embed_pool.submit(self.embedder.encode, problems)

    def _embeddings(self, problems: list[str]) -> np.ndarray:
        pre, self._prefetched = self._prefetched, None
        if pre is not None and pre[0] == tuple(problems):
            return pre[1].result()
        return self.embedder.encode(problems)

    def finish_step(self, step: int, drafts: list[Draft], mutate_s: float, solve_s: float,
                    started: float, embeddings: dict[int, np.ndarray] | None = None) -> StepMetrics:
        """Score, embed, insert into the archive, and commit the step.

        `embeddings`: the ok drafts' problem embeddings by slot, when the caller computed
        them already (the streaming loop embeds as candidates finish).
        """
        assert self.archive is not None
        if embeddings is None:
            ok = [d for d in drafts if d.status == Status.OK]
            emb = self._embeddings([d.mutation.problem for d in ok])
            embeddings = {d.slot: e for d, e in zip(ok, emb, strict=True)}
        crash_point("embed", step)
        created = now()
        rows, attempts = [], []
        for d in drafts:
            row = candidate_row(d, run_id=self.run_id, step=step, embedding=embeddings.get(d.slot), created=created,
                                quality=self.quality, spec=self.rules.spec(d.parent), engine=self.engine.name,
                                threshold=self.config.validity.threshold)
            rows.append(row)
            attempts.extend(attempt_rows(row, d, created, prompt_version=self.rules.solve_prompt.version,
                                         solver=self.engine.name))
        rows = insert(self.archive, step, place(self.archive, rows))
        self.population.remember(rows)
        metrics = self._metrics(step, rows, attempts, mutate_s, solve_s, time.perf_counter() - started)
        ops = operator_metrics(step, rows, self.config.quality.lo, self.config.quality.hi)
        self._commit(step, rows, attempts, metrics, ops)
        return metrics

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

    # -- bookkeeping -----------------------------------------------------------------
    def _metrics(self, step: int, rows: list[Candidate], attempts: list[Attempt],
                 mutate_s: float, solve_s: float, seconds: float) -> StepMetrics:
        q = self.config.quality
        return step_metrics(self.archive, step, rows, attempts, lo=q.lo, hi=q.hi, mutate_s=mutate_s,
                            solve_s=solve_s, seconds=seconds)

    def _commit(self, step: int, rows: list[Candidate], attempts: list[Attempt],
                metrics: StepMetrics, operators: list[OperatorMetrics] | None = None) -> None:
        commit(self.run, self.run_id, step, rows, attempts, metrics, operators, archive=self.archive, rng=self.rng,
               counters=self.counters)
        self.step = step

    def record_launched(self, seq: int) -> None:
        """The stream's candidates launched so far (checkpointed with the next commit, so a
        resumed stream numbers its candidates, and so seeds them, after these)."""
        self.counters["launched"] = float(seq)

    def summary(self) -> dict[str, float | int | str]:
        st = self.archive.stats
        return {
            "run_dir": str(self.run.path),
            # The engine that ran (none built: every step was already committed).
            "engine": self._engine.name if self._engine is not None else self.config.engine.kind,
            "steps": self.step, "elites": st.num_elites,
            "cells": st.num_cells, "coverage": round(st.coverage, 4),
            "qd_score": round(st.qd_score, 4),
            "candidates": int(self.counters.get("candidates", 0)),
            "accepted": int(self.counters.get("accepted", 0)),
            "attempts": int(self.counters.get("attempts", 0)),
            "tokens": int(self.counters.get("gen_tokens", 0) + self.counters.get("solve_tokens", 0)
                          + self.counters.get("verify_tokens", 0)),
            "verify_tokens": int(self.counters.get("verify_tokens", 0)),
            "gate": self.config.validity.gate,
            "valid": int(self.counters.get("valid", 0)),
            "invalid": int(self.counters.get("invalid", 0)),
            "failed": int(self.counters.get("failed", 0)),
            # Of the generated candidates the checks could judge (parsed, not duplicates).
            "valid_share": round(self.counters.get("valid", 0)
                                 / max(1, self.counters.get("valid", 0) + self.counters.get("invalid", 0)), 4),
            "seconds": round(self.counters.get("seconds", 0.0), 1),
        }
