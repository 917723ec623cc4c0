"""A generation campaign: the SPARQ-style quality-diversity loop over a run directory.

One step:
  1. select  - parents sampled uniformly over the archive's occupied cells (seeds are the
               initial population: step 0 inserts them with quality 0);
  2. mutate  - the generator writes a new problem + solution + answer from each parent;
  3. solve   - the solver attempts each parseable, new problem k times (or adaptively);
  4. score   - solve rate -> quality; majority answer and agreement are recorded;
  5. archive - problems are embedded and inserted (one elite per cell, strictly better
               quality replaces, ties keep the incumbent);
  6. commit  - every candidate and attempt is written, then the checkpoint.

The phases are separate methods so an orchestrator (flows/generate.py) can wrap the
engine-bound ones in retried tasks; `run_step` chains them for plain use.

Archive property: the archive after step N equals `rederive_archive(centroids,
candidates of steps 0..N)`, i.e. re-inserting, in (step, slot) order, every committed
row that is a seed or an ok candidate with quality > 0. Resume relies on it: if the
snapshot is not from the committed step, it is rebuilt from the shards.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from archives import AddStatus, CVTArchive, build_centroids
from pipeline.answers import AnswerJudge, Verdict
from pipeline.config import Config, dump_config, load_config
from pipeline.embedding import Embedder
from pipeline.engines import Engine, Sampling, make_engine
from pipeline.mutation import Mutation, ParseFailure, parse_mutation, render_mutation
from pipeline.prompts import load_prompt
from pipeline.records import (
    ATTEMPTS_SCHEMA,
    CANDIDATES_SCHEMA,
    METRICS_SCHEMA,
    ArchiveOutcome,
    Attempt,
    Candidate,
    Status,
    StepMetrics,
    candidate_id,
    now,
    problem_id,
    to_table,
)
from pipeline.seeds import Seed, load_seeds
from pipeline.solverate import AdaptiveConfig, next_round, quality_function
from pipeline.storage import Checkpoint, RunDir, RunError

_OUTCOME = {AddStatus.NEW: ArchiveOutcome.NEW, AddStatus.IMPROVE_EXISTING: ArchiveOutcome.IMPROVE,
            AddStatus.NOT_ADDED: ArchiveOutcome.NOT_ADDED}

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Parent:
    id: str
    problem: str
    solution: str
    answer: str
    depth: int


@dataclass
class Draft:
    """A candidate being built during a step (becomes a `Candidate` row at commit)."""

    slot: int
    parent: Parent
    raw_output: str
    gen_tokens: int
    status: str
    reason: str | None = None
    mutation: Mutation | None = None
    problem_id: str | None = None
    attempts: list[tuple[str, int]] = field(default_factory=list)  # (text, tokens)
    verdict: Verdict | None = None


def archive_eligible(status: str, quality: float) -> bool:
    return status == Status.SEED or (status == Status.OK and quality > 0)


def rederive_archive(centroids: np.ndarray, candidates: pa.Table) -> CVTArchive:
    """The archive as a pure function of the committed candidates (see module doc)."""
    archive = CVTArchive(centroids=centroids)
    table = candidates.sort_by([("step", "ascending"), ("slot", "ascending")])
    mask = pc.or_(pc.equal(table["status"], Status.SEED),
                  pc.and_(pc.equal(table["status"], Status.OK), pc.greater(table["quality"], 0.0)))
    table = table.filter(mask)
    if table.num_rows:
        emb = np.asarray(table["embedding"].to_pylist(), dtype=np.float32)
        archive.add(table["id"].to_pylist(), emb, table["quality"].to_pylist(),
                    steps=table["step"].to_pylist())
    return archive


class Campaign:
    """Owns the engine, embedder, judge, archive and run directory of one campaign."""

    def __init__(self, config: Config, run: RunDir, *, engine: Engine | None = None,
                 progress: Progress = print) -> None:
        self.config = config
        self.run = run
        self.run_id = run.path.resolve().name
        self.log = progress
        self._engine = engine
        self._embedder: Embedder | None = None
        self._judge: AnswerJudge | None = None
        self.mutate_prompt = load_prompt(config.generator.prompt)
        self.solve_prompt = load_prompt(config.solver.prompt)
        self.quality = quality_function(config.quality.function, config.quality.lo, config.quality.hi)
        self.adaptive = AdaptiveConfig(
            k_max=config.solver.k, round_size=config.solver.round_size, delta=config.solver.delta,
            prior_a=config.solver.prior_a, prior_b=config.solver.prior_b,
            min_attempts=min(config.solver.min_attempts, config.solver.k))
        self.archive: CVTArchive | None = None
        self.rng = np.random.default_rng(config.run.seed)
        self.step = -1  # last committed step
        self.counters: dict[str, float] = {}
        self.pool: dict[str, Parent] = {}  # every archive-eligible row, by candidate id
        self.seen: set[str] = set()  # problem ids of committed seeds and ok candidates

    # -- opening -------------------------------------------------------------------
    @classmethod
    def open(cls, run_dir: Path | str, *, config: Config | None = None, resume: bool = False,
             steps: int | None = None, engine: Engine | None = None,
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
        if ckpt is not None or (resume and run.config_path.is_file()):
            config = load_config(run.config_path)
        if config is None:
            raise RunError(f"run directory {run.path} has no config.toml; give a config")
        if steps is not None:
            config = replace(config, run=replace(config.run, steps=steps))
        camp = cls(config, run, engine=engine, progress=progress)
        if ckpt is not None:
            camp._restore(ckpt)
        return camp

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            model = "" if self.config.engine.kind == "scripted" else f":{self.config.engine.model}"
            self.log(f"loading engine {self.config.engine.kind}{model} ...")
            self._engine = make_engine(self.config.engine, seed=self.config.run.seed)
        return self._engine

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = Embedder(self.config.archive.embedder)
        return self._embedder

    @property
    def judge(self) -> AnswerJudge:
        if self._judge is None:
            self._judge = AnswerJudge(timeout_s=self.config.solver.verify_timeout_s)
        return self._judge

    def close(self) -> None:
        if self._judge is not None:
            self._judge.close()
            self._judge = None
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    # -- step 0: the seeds ---------------------------------------------------------
    def initialize(self) -> None:
        """Step 0: load and embed the seeds, build the cells, insert the seeds, commit."""
        if self.step >= 0:
            return
        seeds = load_seeds(self.config.seeds)  # validated before any model work
        self.run.create(dump_config(self.config))
        self.log(f"{len(seeds)} seeds from {self.config.seeds.source}; embedding ...")
        t0 = time.perf_counter()
        emb = self.embedder.encode([s.problem for s in seeds])
        n_cells = self.config.archive.cells
        centroids = build_centroids(emb, n_cells=n_cells, seed=self.config.run.seed,
                                    kmeans_iters=self.config.archive.kmeans_iters)
        self.archive = CVTArchive(centroids=centroids)
        rows = self._seed_rows(seeds, emb)
        statuses, cells = self.archive.add([r.id for r in rows], emb, [0.0] * len(rows),
                                           steps=[0] * len(rows))
        rows = [replace(r, cell=int(c), archive_outcome=_OUTCOME[AddStatus(int(s))])
                for r, s, c in zip(rows, statuses, cells, strict=True)]
        self._remember(rows)
        metrics = self._metrics(0, rows, [], 0.0, 0.0, time.perf_counter() - t0)
        self._commit(0, rows, [], metrics)
        self.log(f"step 0: {len(rows)} seeds in {self.archive.stats.num_elites} of {n_cells} cells")

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
            archive, state = CVTArchive.load(self.run.archive_dir)
        except (OSError, ValueError, KeyError) as exc:
            self.log(f"resume: archive snapshot unreadable ({exc}); rebuilding from shards")
        if archive is None or state.get("step") != ckpt.step:
            if archive is None:
                raise RunError(f"run directory {self.run.path}: no readable archive snapshot to "
                               "take the cells from; the run cannot be resumed")
            self.log(f"resume: archive snapshot is from step {state.get('step')}, rebuilding "
                     f"it from the shards of steps 0..{ckpt.step}")
            archive = rederive_archive(archive.centroids, candidates)
        self.archive = archive
        rows = candidates.select(["id", "status", "quality", "problem_id", "problem", "solution",
                                  "answer", "depth"]).to_pylist()
        for r in rows:
            if r["status"] in (Status.SEED, Status.OK) and r["problem_id"]:
                self.seen.add(r["problem_id"])
            if archive_eligible(r["status"], r["quality"]):
                self.pool[r["id"]] = Parent(r["id"], r["problem"], r["solution"] or "",
                                            r["answer"] or "", r["depth"])
        self.log(f"resumed {self.run.path} at step {self.step} "
                 f"({self.archive.stats.num_elites} elites)")

    def _remember(self, rows: list[Candidate]) -> None:
        for r in rows:
            if r.status in (Status.SEED, Status.OK) and r.problem_id:
                self.seen.add(r.problem_id)
            if archive_eligible(r.status, r.quality):
                self.pool[r.id] = Parent(r.id, r.problem or "", r.solution or "", r.answer or "",
                                         r.depth)

    # -- one step --------------------------------------------------------------------
    def select_parents(self) -> list[Parent]:
        assert self.archive is not None, "initialize() or resume first"
        elites = self.archive.sample_elites(self.config.run.batch_size, self.rng)
        return [self.pool[e.id] for e in elites]

    def _seed_for(self, step: int, phase: int) -> int:
        return (self.config.run.seed * 1_000_003 + step * 7919 + phase) % (2**31)

    def mutate(self, step: int, parents: list[Parent]) -> list[Draft]:
        """One engine call: a mutation per parent, parsed (failures kept as rows)."""
        g = self.config.generator
        prompts = [render_mutation(self.mutate_prompt, p.problem, p.solution) for p in parents]
        sampling = Sampling(n=1, temperature=g.temperature, top_p=g.top_p, max_tokens=g.max_tokens,
                            stop=self.mutate_prompt.stop, seed=self._seed_for(step, 1))
        outputs = self.engine.complete(prompts, sampling)
        drafts = []
        batch_ids: set[str] = set()
        for slot, (parent, outs) in enumerate(zip(parents, outputs, strict=True)):
            out = outs[0]
            parsed = parse_mutation(out.text, self.mutate_prompt.response_prefix)
            d = Draft(slot=slot, parent=parent, raw_output=out.text, gen_tokens=out.tokens,
                      status=Status.OK)
            if isinstance(parsed, ParseFailure):
                d.status, d.reason = Status.UNPARSEABLE, parsed.reason
            else:
                d.mutation = parsed
                d.problem_id = problem_id(parsed.problem)
                if d.problem_id in self.seen or d.problem_id in batch_ids:
                    d.status, d.reason = Status.DUPLICATE, "problem text already in the run"
                batch_ids.add(d.problem_id)
            drafts.append(d)
        return drafts

    def solve(self, step: int, drafts: list[Draft]) -> list[Draft]:
        """Solver attempts for every ok draft: k each, or adaptive rounds up to k."""
        s = self.config.solver
        todo = [d for d in drafts if d.status == Status.OK]
        for d in todo:  # idempotent: a retried solve starts over
            d.attempts, d.verdict = [], None
        if not todo:
            return drafts
        lo, hi = self.config.quality.lo, self.config.quality.hi
        round_no = 0
        while todo:
            if s.adaptive:
                wants = []
                for d in todo:
                    c = sum(d.verdict.correct) if d.verdict else 0
                    wants.append(next_round(c, len(d.attempts), self.adaptive, lo, hi))
            else:
                wants = [s.k] * len(todo)
            batch = [(d, n) for d, n in zip(todo, wants, strict=True) if n > 0]
            if not batch:
                break
            # Group by sample count: one engine call per distinct n shares prefills.
            for n in sorted({n for _, n in batch}):
                group = [d for d, m in batch if m == n]
                prompts = [self.solve_prompt.render(problem=d.mutation.problem) for d in group]
                sampling = Sampling(n=n, temperature=s.temperature, top_p=s.top_p,
                                    max_tokens=s.max_tokens, stop=self.solve_prompt.stop,
                                    seed=self._seed_for(step, 100 + round_no))
                outputs = self.engine.complete(prompts, sampling)
                for d, outs in zip(group, outputs, strict=True):
                    d.attempts.extend((o.text, o.tokens) for o in outs)
            verdicts = self.judge.judge_many(
                [(d.mutation.answer, [t for t, _ in d.attempts]) for d, _ in batch])
            for (d, _), v in zip(batch, verdicts, strict=True):
                d.verdict = v
            todo = [d for d, _ in batch] if s.adaptive else []
            round_no += 1
        return drafts

    def finish_step(self, step: int, drafts: list[Draft], mutate_s: float, solve_s: float,
                    started: float) -> StepMetrics:
        """Score, embed, insert into the archive, and commit the step."""
        assert self.archive is not None
        created = now()
        rows: list[Candidate] = []
        attempts: list[Attempt] = []
        ok = [d for d in drafts if d.status == Status.OK]
        emb = self.embedder.encode([d.mutation.problem for d in ok])
        emb_by_slot = {d.slot: e for d, e in zip(ok, emb, strict=True)}
        for d in drafts:
            cid = candidate_id(self.run_id, step, d.slot)
            v, m = d.verdict, d.mutation
            k = len(d.attempts)
            n_correct = sum(v.correct) if v else 0
            sr = n_correct / k if k else None
            quality = float(self.quality(sr)) if sr is not None and d.status == Status.OK else 0.0
            rows.append(Candidate(
                id=cid, run_id=self.run_id, step=step, slot=d.slot, parent_id=d.parent.id,
                depth=d.parent.depth + 1, operator=self.mutate_prompt.operator or "sparq_mutate",
                problem_id=d.problem_id, problem=m.problem if m else None,
                solution=m.solution if m else None, answer=m.answer if m else None,
                raw_output=d.raw_output, status=d.status,
                reason=d.reason or ("verification timed out" if v and v.timed_out else None),
                k=k, n_correct=n_correct, solve_rate=sr,
                majority_answer=v.majority_answer if v else None,
                majority_share=v.majority_share if v else None,
                reference_agrees=v.reference_agrees if v else None, quality=quality, cell=None,
                archive_outcome=ArchiveOutcome.INELIGIBLE, embedding=emb_by_slot.get(d.slot),
                skill=None, prompt_version=self.mutate_prompt.version, generator=self.engine.name,
                solver=self.engine.name if k else None, gen_tokens=d.gen_tokens,
                solve_tokens=sum(t for _, t in d.attempts), created_at=created))
            for i, (text, tokens) in enumerate(d.attempts):
                attempts.append(Attempt(
                    candidate_id=cid, run_id=self.run_id, step=step, attempt=i, text=text,
                    extracted=v.extracted[i] if v else None, correct=bool(v.correct[i]) if v else False,
                    tokens=tokens, prompt_version=self.solve_prompt.version, solver=self.engine.name,
                    created_at=created))
        # Insert in slot order; rows that are not eligible still get their cell recorded.
        idx = [i for i, r in enumerate(rows) if r.embedding is not None]
        if idx:
            cells = self.archive.index_of(np.stack([rows[i].embedding for i in idx]))
            for i, c in zip(idx, cells, strict=True):
                rows[i] = replace(rows[i], cell=int(c))
        elig = [i for i, r in enumerate(rows) if archive_eligible(r.status, r.quality)]
        if elig:
            statuses, _ = self.archive.add([rows[i].id for i in elig],
                                           np.stack([rows[i].embedding for i in elig]),
                                           [rows[i].quality for i in elig], steps=[step] * len(elig))
            for i, st in zip(elig, statuses, strict=True):
                rows[i] = replace(rows[i], archive_outcome=_OUTCOME[AddStatus(int(st))])
        self._remember(rows)
        metrics = self._metrics(step, rows, attempts, mutate_s, solve_s, time.perf_counter() - started)
        self._commit(step, rows, attempts, metrics)
        return metrics

    def run_step(self) -> StepMetrics:
        step = self.step + 1
        started = time.perf_counter()
        parents = self.select_parents()
        drafts = self.mutate(step, parents)
        mutate_s = time.perf_counter() - started
        t1 = time.perf_counter()
        drafts = self.solve(step, drafts)
        solve_s = time.perf_counter() - t1
        return self.finish_step(step, drafts, mutate_s, solve_s, started)

    # -- bookkeeping -----------------------------------------------------------------
    def _metrics(self, step: int, rows: list[Candidate], attempts: list[Attempt],
                 mutate_s: float, solve_s: float, seconds: float) -> StepMetrics:
        st = self.archive.stats
        lo, hi = self.config.quality.lo, self.config.quality.hi
        return StepMetrics(
            step=step, candidates=len(rows),
            ok=sum(r.status == Status.OK for r in rows),
            unparseable=sum(r.status == Status.UNPARSEABLE for r in rows),
            duplicate=sum(r.status == Status.DUPLICATE for r in rows),
            in_band=sum(r.solve_rate is not None and lo <= r.solve_rate <= hi
                        and r.status == Status.OK for r in rows),
            accepted=sum(r.archive_outcome in (ArchiveOutcome.NEW, ArchiveOutcome.IMPROVE)
                         and r.status == Status.OK for r in rows),
            new_cells=sum(r.archive_outcome == ArchiveOutcome.NEW and r.status == Status.OK
                          for r in rows),
            num_elites=st.num_elites, coverage=st.coverage, qd_score=st.qd_score,
            attempts=len(attempts), gen_tokens=sum(r.gen_tokens for r in rows),
            solve_tokens=sum(r.solve_tokens for r in rows), mutate_seconds=mutate_s,
            solve_seconds=solve_s, seconds=seconds, created_at=now())

    def _commit(self, step: int, rows: list[Candidate], attempts: list[Attempt],
                metrics: StepMetrics) -> None:
        generated = metrics.candidates if step > 0 else 0  # step 0 holds the seeds
        for key, value in (("candidates", generated), ("accepted", metrics.accepted),
                           ("attempts", metrics.attempts), ("gen_tokens", metrics.gen_tokens),
                           ("solve_tokens", metrics.solve_tokens), ("seconds", metrics.seconds)):
            self.counters[key] = self.counters.get(key, 0) + value
        ckpt = Checkpoint(run_id=self.run_id, step=step, rng_state=self.rng.bit_generator.state,
                          counters=self.counters)
        archive = self.archive
        self.run.commit_step(
            step, to_table(rows, CANDIDATES_SCHEMA), to_table(attempts, ATTEMPTS_SCHEMA),
            to_table([metrics], METRICS_SCHEMA), ckpt,
            save_archive=lambda d: archive.save(d, extra={"step": step, "run_id": self.run_id}))
        self.step = step

    def summary(self) -> dict[str, float | int | str]:
        st = self.archive.stats
        return {
            "run_dir": str(self.run.path), "steps": self.step, "elites": st.num_elites,
            "cells": st.num_cells, "coverage": round(st.coverage, 4),
            "qd_score": round(st.qd_score, 4),
            "candidates": int(self.counters.get("candidates", 0)),
            "accepted": int(self.counters.get("accepted", 0)),
            "attempts": int(self.counters.get("attempts", 0)),
            "tokens": int(self.counters.get("gen_tokens", 0) + self.counters.get("solve_tokens", 0)),
            "seconds": round(self.counters.get("seconds", 0.0), 1),
        }
