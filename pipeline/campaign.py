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
pipeline/population.py, a candidate's records (Parent, Draft) in pipeline/candidate.py,
and the rows, archive insertion, metrics and the atomic write in pipeline/commit.py.

The phases are separate methods so an orchestrator (flows/generate.py) can wrap the
engine-bound ones in retried tasks (`run_step(phase)`). That is steps mode, where each
phase waits for its slowest request; pipeline/stream.py runs the same candidates as a
stream through the per-draft helpers (`mutation_request`, `parse_draft`,
`label_request`, `attempts_wanted`, `solve_sampling`) and commits with `finish_step`.

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

from archives import AddStatus, Archive, load_archive, skill_key
from pipeline.answers import Verdict
from pipeline.archiving import build_archive, descriptors_for, kind_labels_skills
from pipeline.candidate import Draft, Parent, archive_eligible  # noqa: F401 (re-exported: stream, flows)
from pipeline.commit import OUTCOME, attempt_rows, candidate_row, commit, insert, place, step_metrics
from pipeline.config import Config, dump_config, load_config
from pipeline.domains import Judge, make_domain
from pipeline.embedding import Embedder
from pipeline.engines import Completion, Engine, RequestError, Sampling, make_engine
from pipeline.engines.base import complete_each
from pipeline.failures import Refusals, failed_reason
from pipeline.labels import label_examples, parse_skills, render_label
from pipeline.mutation import ParseFailure
from pipeline.operators import (
    OperatorSpec,
    load_operators,
    operator_metrics,
)
from pipeline.population import Population, rederive_archive
from pipeline.prompts import Prompt, load_prompt
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
from pipeline.solverate import AdaptiveConfig, next_round, quality_function
from pipeline.storage import Checkpoint, RunDir, RunError, crash_point
from pipeline.validity import Validity

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
        self.mutate_prompt = load_prompt(config.generator.prompt)
        self.solve_prompt = load_prompt(config.solver.prompt)
        self.quality = quality_function(config.quality.function, config.quality.lo, config.quality.hi)
        self.adaptive = AdaptiveConfig(
            k_max=config.solver.k, round_size=config.solver.round_size, delta=config.solver.delta,
            prior_a=config.solver.prior_a, prior_b=config.solver.prior_b,
            min_attempts=min(config.solver.min_attempts, config.solver.k))
        self.operators: list[OperatorSpec] = load_operators(config)
        labels_skills = kind_labels_skills(config.archive.kind)  # the archive places rows by skill labels
        self.label_prompt = load_prompt(config.archive.label_prompt) if labels_skills else None
        self.label_examples = ""
        self.archive: Archive | None = None
        self.rng = np.random.default_rng(config.run.seed)
        self.step = -1  # last committed step
        self.counters: dict[str, float] = {}
        self.population = Population()  # the parent pool, taken problem ids, operator counts
        self._embed_pool: ThreadPoolExecutor | None = None
        self._prefetched: tuple[tuple[str, ...], Future] | None = None
        v = config.verifier
        self.verify_prompt = load_prompt(v.judge_prompt if v.method == "judge" else v.prompt)
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
        return self.config.verifier.m > 0 and self.config.validity.gate != "none"

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
        self._set_label_examples([(s.problem, s.solution, s.skill) for s in seeds])
        self.population.remember(rows)
        metrics = self._metrics(0, rows, [], 0.0, 0.0, time.perf_counter() - t0)
        self._commit(0, rows, [], metrics, [])
        self.log(f"step 0: {len(rows)} seeds in {self.archive.stats.num_elites} of {self.archive.cells} "
                 f"{self.archive.kind} cells")

    def _set_label_examples(self, seeds: list[tuple[str, str, str | None]]) -> None:
        if self.label_prompt is not None and self.archive is not None and self.archive.labels_skills:
            self.label_examples = label_examples(seeds, self.archive.vocabulary, self.archive.max_skills)

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
        self._set_label_examples([(r["problem"], r["solution"] or "", r["skill"]) for r in rows
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

    def _spec(self, parent: Parent) -> OperatorSpec:
        # A parent built elsewhere (no operator set) gets the first configured operator.
        return next((s for s in self.operators if s.name == parent.operator), self.operators[0])

    def _render(self, spec: OperatorSpec, p: Parent) -> Prompt:
        # (answer: the code domain's prompts show a parent's tests; math's ignore it)
        values = {"problem": p.problem, "solution": p.solution, "answer": p.answer}
        if spec.role == "crossover":
            second = p.second or p
            values.update(problem2=second.problem, solution2=second.solution)
        elif spec.role == "niche":
            values["target"] = p.target_text or "a problem of a different kind"
        return spec.prompt.render(**values)

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
        """A mutation per parent (one engine call per operator), parsed (failures kept as
        rows); for the skill-set archive the ok ones are then labelled."""
        g = self.config.generator
        specs = [self._spec(p) for p in parents]
        outputs: list = [None] * len(parents)
        for k, spec in enumerate(self.operators):
            idx = [i for i, s in enumerate(specs) if s is spec]
            if not idx:
                continue
            # Phase 1 for the first operator keeps the default run's engine seeds unchanged.
            sampling = Sampling(n=1, temperature=g.temperature, top_p=g.top_p, max_tokens=g.max_tokens,
                                stop=spec.prompt.stop, seed=self.request_seed(step, 1 + 20 * k))
            outs = self.complete(self.engine, [self._render(spec, parents[i]) for i in idx], sampling)
            for i, o in zip(idx, outs, strict=True):
                outputs[i] = o
        crash_point("mutate", step)  # test-only fault injection (pipeline/storage.py)
        batch_ids: set[str] = set()
        drafts = [self.failed_draft(slot, parent, outs) if isinstance(outs, RequestError)
                  else self.parse_draft(slot, parent, outs[0], batch_ids)
                  for slot, (parent, outs) in enumerate(zip(parents, outputs, strict=True))]
        return self.label(step, drafts)

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

    def failed_draft(self, slot: int, parent: Parent, exc: RequestError) -> Draft:
        """The draft of a parent whose mutation request was refused."""
        return Draft(slot=slot, parent=parent, raw_output="", gen_tokens=0, status=Status.FAILED,
                     reason=failed_reason("mutation", exc))

    @staticmethod
    def fail(d: Draft, stage: str, exc: RequestError) -> None:
        """Draft `d` fails: its `stage` request was refused (it is solved no further)."""
        d.status, d.reason = Status.FAILED, failed_reason(stage, exc)

    def mutation_request(self, parent: Parent, seed: int | None) -> tuple[Prompt, Sampling]:
        """The generator's prompt and sampling for one parent (its slot's operator)."""
        g, spec = self.config.generator, self._spec(parent)
        return self._render(spec, parent), Sampling(n=1, temperature=g.temperature, top_p=g.top_p,
                                                    max_tokens=g.max_tokens, stop=spec.prompt.stop, seed=seed)

    def parse_draft(self, slot: int, parent: Parent, out: Completion, pending: set[str]) -> Draft:
        """A mutation's output as a draft: ok, unparseable, or a duplicate of a committed
        problem or of one in `pending` (the problem ids not yet committed; updated here)."""
        parsed = self.domain.parse(out.text, self._spec(parent).prompt.response_prefix)
        d = Draft(slot=slot, parent=parent, raw_output=out.text, gen_tokens=out.tokens, status=Status.OK)
        if isinstance(parsed, ParseFailure):
            d.status, d.reason = Status.UNPARSEABLE, parsed.reason
        else:
            d.mutation = parsed
            d.problem_id = problem_id(parsed.problem)
            if self.population.taken(d.problem_id) or d.problem_id in pending:
                d.status, d.reason = Status.DUPLICATE, "problem text already in the run"
            else:
                self.check(d)
            pending.add(d.problem_id)
        return d

    def check(self, d: Draft) -> None:
        """The deterministic validity checks, as soon as a draft is parsed: with the
        archive gate, a draft they reject is invalid and never solved."""
        m = d.mutation
        d.validity = self.domain.check(m, self.config.validity.checks)
        if not d.validity.valid and self.config.validity.gate == "archive":
            d.status, d.reason = Status.INVALID, d.validity.reason

    def label(self, step: int, drafts: list[Draft]) -> list[Draft]:
        """Skill-set archive: label each ok draft's skills (greedy, one engine call).

        Labels outside the vocabulary map to nothing; the key keeps the labeller's first
        `max_skills` known labels. Labelling tokens count as generator tokens.
        """
        todo = [d for d in drafts if self.needs_label(d)]
        if not todo:
            return drafts
        requests = [self.label_request(d, self.request_seed(step, 2)) for d in todo]
        outputs = self.complete(self.engine, [p for p, _ in requests], requests[0][1])
        for d, outs in zip(todo, outputs, strict=True):
            if isinstance(outs, RequestError):
                self.fail(d, "label", outs)
            else:
                self.apply_label(d, outs[0])
        return drafts

    def needs_label(self, d: Draft) -> bool:
        return (d.status == Status.OK and self.label_prompt is not None
                and self.archive is not None and self.archive.labels_skills)

    def label_request(self, d: Draft, seed: int | None) -> tuple[Prompt, Sampling]:
        a = self.archive
        prompt = render_label(self.label_prompt, d.mutation.problem, d.mutation.solution, a.vocabulary,
                              self.label_examples, a.max_skills)
        return prompt, Sampling(n=1, temperature=0.0, top_p=1.0, max_tokens=self.config.archive.label_max_tokens,
                                stop=self.label_prompt.stop, seed=seed)

    def apply_label(self, d: Draft, out: Completion) -> None:
        a = self.archive
        d.skills = skill_key(parse_skills(out.text, self.label_prompt.response_prefix), a.vocabulary, a.max_skills)
        d.gen_tokens += out.tokens

    def solve(self, step: int, drafts: list[Draft]) -> list[Draft]:
        """Solver attempts for every ok draft: k each, or adaptive rounds up to k."""
        s = self.config.solver
        todo = [d for d in drafts if d.status == Status.OK]
        for d in todo:  # idempotent: a retried solve starts over
            d.attempts, d.verdict = [], None
        if not todo:
            return drafts
        self._prefetch_embeddings([d.mutation.problem for d in todo])
        round_no = 0
        while todo:
            batch = [(d, n) for d in todo if (n := self.attempts_wanted(d)) > 0]
            if not batch:
                break
            # Group by sample count: one engine call per distinct n shares prefills.
            for n in sorted({n for _, n in batch}):
                group = [d for d, m in batch if m == n]
                prompts = [self.solve_prompt.render(problem=d.mutation.problem) for d in group]
                sampling = self.solve_sampling(n, self.request_seed(step, PHASE_SOLVE + round_no))
                outputs = self.complete(self.engine, prompts, sampling)
                crash_point("solve", step)
                for d, outs in zip(group, outputs, strict=True):
                    if isinstance(outs, RequestError):
                        self.fail(d, "solve", outs)
                    else:
                        d.attempts.extend((o.text, o.tokens) for o in outs)
            batch = [(d, n) for d, n in batch if d.status == Status.OK]
            verdicts = self.judge.judge_many(
                [(d.mutation.answer, [t for t, _ in d.attempts]) for d, _ in batch])
            for (d, _), v in zip(batch, verdicts, strict=True):
                d.verdict = v
            todo = [d for d, _ in batch] if s.adaptive else []
            round_no += 1
        return self.verify(step, drafts)

    # -- the verifier ------------------------------------------------------------------
    def verify(self, step: int, drafts: list[Draft]) -> list[Draft]:
        """The verifier's m attempts for every solved draft that could enter the archive
        (one engine call), judged against the reference."""
        todo = [d for d in drafts if self.needs_verify(d)]
        for d in todo:  # idempotent: a retried phase starts over
            d.verification, d.verify_tokens = None, 0
        if not todo:
            return drafts
        requests = [self.verify_request(d, None) for d in todo]
        outputs = self.complete(self.verifier_engine, [p for p, _ in requests],
                                replace(requests[0][1], seed=self.request_seed(step, PHASE_VERIFY)))
        crash_point("solve", step)
        for d, outs in zip(todo, outputs, strict=True):
            if isinstance(outs, RequestError):
                self.fail(d, "verifier", outs)
        self.apply_verifications([(d, outs) for d, outs in zip(todo, outputs, strict=True)
                                  if not isinstance(outs, RequestError)])
        return drafts

    def apply_verifications(self, done: list[tuple[Draft, list[Completion]]]) -> None:
        """Judge the verifier's outputs of several drafts (one call to the answer judge's
        workers) and record them: re-solves are judged against the reference; an LLM
        judge's replies (method "judge") are read for their verdicts."""
        if self.config.verifier.method == "judge":
            for d, outs in done:
                verdict, why = self.domain.read_judgements([o.text for o in outs])
                self.apply_verification(d, verdict, sum(o.tokens for o in outs), why)
            return
        verdicts = self.judge.judge_many([(d.mutation.answer, [o.text for o in outs]) for d, outs in done])
        for (d, outs), v in zip(done, verdicts, strict=True):
            self.apply_verification(d, v, sum(o.tokens for o in outs))

    def would_archive(self, d: Draft) -> bool:
        """A solved ok draft whose quality is above 0 (it would be inserted)."""
        if d.status != Status.OK or not d.attempts or d.verdict is None:
            return False
        return float(self.quality(sum(d.verdict.correct) / len(d.attempts))) > 0

    def needs_verify(self, d: Draft) -> bool:
        return (self.verifies and d.verification is None and self.would_archive(d)
                and (d.validity is None or d.validity.valid))

    def verify_request(self, d: Draft, seed: int | None) -> tuple[Prompt, Sampling]:
        v = self.config.verifier
        m = d.mutation
        values = {"problem": m.problem} if v.method == "solve" else {
            "problem": m.problem, "solution": m.solution, "answer": m.answer}
        return self.verify_prompt.render(**values), Sampling(
            n=v.m, temperature=v.temperature, top_p=v.top_p, max_tokens=v.max_tokens,
            stop=self.verify_prompt.stop, seed=seed)

    def apply_verification(self, d: Draft, verdict: Verdict, tokens: int, why: str | None = None) -> None:
        """Record the verifier's verdict: a majority of at least `share` that contradicts
        the reference (or, for an LLM judge, that says "invalid") fails the draft (the
        archive gate makes it invalid)."""
        d.verification, d.verify_tokens = verdict, d.verify_tokens + tokens
        if verdict.reference_agrees is False and verdict.majority_share >= self.config.verifier.share:
            if self.config.verifier.method == "judge":
                reason = (f"verifier: {verdict.majority_share:.0%} of {len(verdict.correct)} judgements say "
                          f"invalid" + (f" ({why})" if why else ""))
            else:
                reason = (f"verifier: {verdict.majority_share:.0%} of {len(verdict.correct)} attempts answer "
                          f"{verdict.majority_answer!r}, the reference says {d.mutation.answer!r}")
            prev = d.validity or Validity((), None)
            d.validity = Validity(prev.failed + ("verifier",), "; ".join(r for r in (prev.reason, reason) if r))
            if self.config.validity.gate == "archive":
                d.status, d.reason = Status.INVALID, d.validity.reason

    def attempts_wanted(self, d: Draft) -> int:
        """How many more solver attempts draft `d` needs: k at first, then (adaptive) the
        next round until the fixed-k decision is settled; 0 when done."""
        s = self.config.solver
        if not s.adaptive:
            return 0 if d.attempts else s.k
        c = sum(d.verdict.correct) if d.verdict else 0
        return next_round(c, len(d.attempts), self.adaptive, self.config.quality.lo, self.config.quality.hi)

    def solve_sampling(self, n: int, seed: int | None) -> Sampling:
        s = self.config.solver
        return Sampling(n=n, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens,
                        stop=self.solve_prompt.stop, seed=seed)

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
                                quality=self.quality, spec=self._spec(d.parent), engine=self.engine.name,
                                threshold=self.config.validity.threshold)
            rows.append(row)
            attempts.extend(attempt_rows(row, d, created, prompt_version=self.solve_prompt.version,
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
