"""One candidate's lifecycle, the same object in both modes.

A `Lifecycle` is a small state machine over a `Draft`:

    mutate -> (skill-set archive: label) -> solve (k samples, or adaptive rounds) -> judge
           -> (could enter the archive and the verifier is on: verify -> judge) -> done

- `next_request()` gives the engine request the candidate waits for (a `Request`: its
  prompt, its sampling without a seed, and the seed phase it draws from), or None when
  it waits for its attempts to be judged or is done;
- `accept(outputs)` takes that request's completions, or the `RequestError` that refused
  it (the candidate is then finished, as failed);
- `to_judge()` gives (reference, attempts) while it waits for a judgement, and
  `judged(verdict)` records it; judging is left to the driver so that many candidates'
  attempts go to the judge's workers in one call.

Steps mode (`run_mutations`, `run_solves`: `Campaign.mutate` and `Campaign.solve`) moves
a step's candidates together, one engine call per phase and group, with the step's seeds;
the stream (pipeline/loop/stream.py) moves each one on its own, with seeds of its sequence
number. `Rules` is what the machine asks of the campaign's configuration: prompts,
sampling, the domain's parse and checks, the gate, the verifier, the skill labels.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from archives import Archive, skill_key
from pipeline.config import Config
from pipeline.domains import Domain, Judge
from pipeline.domains.base import MIN_PROBLEM_CHARS, ParseFailure, Validity, Verdict
from pipeline.engines import Completion, RequestError, Sampling
from pipeline.loop.candidate import PHASE_SOLVE, PHASE_VERIFY, Draft, Parent
from pipeline.loop.failures import failed_reason
from pipeline.loop.operators import OperatorSpec
from pipeline.loop.solverate import AdaptiveConfig, next_round
from pipeline.placement.labels import label_examples, parse_skills, render_label
from pipeline.prompts import Prompt, PromptTemplate, load_prompt
from pipeline.store.records import Status, problem_id
from pipeline.store.storage import crash_point

_OPENING_TAG = re.compile(r"<problem>", re.I)

MUTATE, LABEL, SOLVE, JUDGE, VERIFY, VERIFY_JUDGE, DONE = "mutate", "label", "solve", "judge", "verify", \
    "verify_judge", "done"


@dataclass(frozen=True)
class Request:
    """An engine request of one candidate: `sampling` has no seed yet (the driver gives
    it one from `phase`); `role`: the engine it goes to, the campaign's ("generator"), the
    solver's or the verifier's (each the campaign's unless configured with its own)."""

    prompt: Prompt
    sampling: Sampling
    phase: int
    role: str = "generator"


class Rules:
    """What a candidate's lifecycle asks of the campaign's configuration."""

    def __init__(self, config: Config, domain: Domain, operators: list[OperatorSpec],
                 quality: Callable[[float], float], taken: Callable[[str], bool]) -> None:
        self.config = config
        self.domain = domain
        self.operators = operators
        self.quality = quality
        self.taken = taken  # whether a committed row has this problem id
        s = config.solver
        self.solve_prompt = load_prompt(s.prompt)
        self.adaptive = AdaptiveConfig(k_max=s.k, round_size=s.round_size, delta=s.delta, prior_a=s.prior_a,
                                       prior_b=s.prior_b, min_attempts=min(s.min_attempts, s.k))
        v = config.verifier
        self.verify_prompt = load_prompt(v.judge_prompt if v.method == "judge" else v.prompt)
        self.verifies = v.m > 0 and config.validity.gate != "none"
        self.label_prompt: PromptTemplate | None = None
        self.label_examples = ""
        self.archive: Archive | None = None  # set when the campaign has one (its skill vocabulary)

    # -- the archive's skill labels -----------------------------------------------------
    def use_archive(self, archive: Archive, seeds: Sequence[tuple[str, str, str | None]]) -> None:
        """The archive candidates go to; a skill-set archive's label prompt shows `seeds`."""
        self.archive = archive
        if archive.labels_skills:
            self.label_prompt = load_prompt(self.config.archive.label_prompt)
            self.label_examples = label_examples(list(seeds), archive.vocabulary, archive.max_skills)

    # -- requests -----------------------------------------------------------------------
    def spec(self, parent: Parent) -> OperatorSpec:
        # A parent built elsewhere (no operator set) gets the first configured operator.
        return next((s for s in self.operators if s.name == parent.operator), self.operators[0])

    def render(self, spec: OperatorSpec, p: Parent) -> Prompt:
        # (answer: the code domain's prompts show a parent's tests; math's ignore it)
        values = {"problem": p.problem, "solution": p.solution, "answer": p.answer}
        if spec.role == "crossover":
            second = p.second or p
            values.update(problem2=second.problem, solution2=second.solution)
        elif spec.role == "niche":
            values["target"] = p.target_text or "a problem of a different kind"
        return spec.prompt.render(**values)

    def mutation_request(self, parent: Parent, parent_stop: bool = True) -> Request:
        """The generator's prompt and sampling for one parent (its slot's operator); phase
        1 + 20 x the operator's index (1 for the first keeps the default run's seeds).
        `parent_stop`: with the parent's problem as a stop string, where configured."""
        g, spec = self.config.generator, self.spec(parent)
        k = next(i for i, s in enumerate(self.operators) if s is spec)
        stop = spec.prompt.stop + (self.parent_stops(spec, parent) if parent_stop else ())
        return Request(self.render(spec, parent), Sampling(n=1, temperature=g.temperature, top_p=g.top_p,
                                                           max_tokens=g.max_tokens, stop=stop),
                       1 + 20 * k)

    def parent_stops(self, spec: OperatorSpec, parent: Parent) -> tuple[str, ...]:
        """The parent's problem as a stop string (`[generator] stop_at_parent`): an output
        that repeats its parent word for word is a duplicate whatever follows, so the engine
        stops there instead of writing a solution nobody reads. At the default temperature
        the embedded model copies its parent in about one output in four (237 of 960 in
        eight default campaigns). OpenAI's API takes at most 4 stop strings, so it is added
        only while the prompt's own leave room.
        Steps mode sends a step's mutations in one call with one sampling and does without."""
        text = parent.problem.strip()
        if not self.config.generator.stop_at_parent or len(spec.prompt.stop) >= 4 or len(text) < MIN_PROBLEM_CHARS:
            return ()
        return (text,)

    def stopped_at_parent(self, parent: Parent, out: Completion, parent_stop: bool = True) -> bool:
        """Whether `out` is an output the parent's stop string ended before anything of its
        own: nothing but a "<problem>" tag or blanks before the stop. (An output that another
        of its stop strings ends at once is as empty and is counted a copy too: that is rare,
        and it holds no problem either way.)"""
        if not parent_stop or out.finish_reason != "stop" or not self.parent_stops(self.spec(parent), parent):
            return False
        return not _OPENING_TAG.sub("", out.text).strip()

    def label_request(self, d: Draft) -> Request:
        a = self.archive
        prompt = render_label(self.label_prompt, d.mutation.problem, d.mutation.solution, a.vocabulary,
                              self.label_examples, a.max_skills)
        sampling = Sampling(n=1, temperature=0.0, top_p=1.0, max_tokens=self.config.archive.label_max_tokens,
                            stop=self.label_prompt.stop)
        return Request(prompt, sampling, 2)

    def solve_sampling(self, n: int, seed: int | None = None) -> Sampling:
        s = self.config.solver
        return Sampling(n=n, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens,
                        stop=self.solve_prompt.stop, seed=seed)

    def solve_request(self, d: Draft, n: int, round_no: int) -> Request:
        return Request(self.solve_prompt.render(problem=d.mutation.problem), self.solve_sampling(n),
                       PHASE_SOLVE + round_no, role="solver")

    def verify_request(self, d: Draft) -> Request:
        v, m = self.config.verifier, d.mutation
        values = {"problem": m.problem} if v.method == "solve" else {
            "problem": m.problem, "solution": m.solution, "answer": m.answer}
        return Request(self.verify_prompt.render(**values),
                       Sampling(n=v.m, temperature=v.temperature, top_p=v.top_p, max_tokens=v.max_tokens,
                                stop=self.verify_prompt.stop), PHASE_VERIFY, role="verifier")

    # -- what happens to a draft ----------------------------------------------------------
    def parse(self, slot: int, parent: Parent, out: Completion, pending: set[str], parent_stop: bool = True) -> Draft:
        """A mutation's output as a draft: ok, unparseable, or a duplicate of a committed
        problem or of one in `pending` (the problem ids not yet committed; updated here);
        an ok draft is checked at once."""
        parsed = self.domain.parse(out.text, self.spec(parent).prompt.response_prefix)
        d = Draft(slot=slot, parent=parent, raw_output=out.text, gen_tokens=out.tokens, status=Status.OK)
        if isinstance(parsed, ParseFailure):
            if self.stopped_at_parent(parent, out, parent_stop):
                # the copy's text is its parent's: the parent owns that problem id
                d.problem_id = problem_id(parent.problem)
                d.status, d.reason = Status.DUPLICATE, "repeats its parent's problem (generation stopped there)"
            else:
                d.status, d.reason = Status.UNPARSEABLE, parsed.reason
            return d
        d.mutation = parsed
        d.problem_id = problem_id(parsed.problem)
        if self.taken(d.problem_id) or d.problem_id in pending:
            d.status, d.reason = Status.DUPLICATE, "problem text already in the run"
        else:
            self.check(d)
        pending.add(d.problem_id)
        return d

    def check(self, d: Draft) -> None:
        """The deterministic validity checks, as soon as a draft is parsed: with the
        archive gate, a draft they reject is invalid and never solved. A reference the
        domain can repair (`[validity] repair`, with a gate on) goes on repaired when the
        repaired one passes every check."""
        cfg = self.config.validity
        d.validity = self.domain.check(d.mutation, cfg.checks)
        if not d.validity.valid and cfg.repair and cfg.gate != "none":
            fixed = self.domain.repair(d.mutation)
            if fixed is not None:
                again = self.domain.check(fixed.mutation, cfg.checks)
                if again.valid:
                    d.mutation, d.validity, d.repair = fixed.mutation, again, fixed.note
        if not d.validity.valid and cfg.gate == "archive":
            d.status, d.reason = Status.INVALID, d.validity.reason

    def needs_label(self, d: Draft) -> bool:
        return d.status == Status.OK and self.label_prompt is not None and self.archive is not None

    def apply_label(self, d: Draft, out: Completion) -> None:
        a = self.archive
        d.skills = skill_key(parse_skills(out.text, self.label_prompt.response_prefix), a.vocabulary, a.max_skills)
        d.gen_tokens += out.tokens

    def attempts_wanted(self, d: Draft) -> int:
        """How many more solver attempts draft `d` needs: k at first, then (adaptive) the
        next round until the fixed-k decision is settled; 0 when done."""
        s = self.config.solver
        if d.status != Status.OK:
            return 0
        if not s.adaptive:
            return 0 if d.attempts else s.k
        c = sum(d.verdict.correct) if d.verdict else 0
        return next_round(c, len(d.attempts), self.adaptive, self.config.quality.lo, self.config.quality.hi)

    def would_archive(self, d: Draft) -> bool:
        """A solved ok draft whose quality is above 0 (it would be inserted)."""
        if d.status != Status.OK or not d.attempts or d.verdict is None:
            return False
        return float(self.quality(sum(d.verdict.correct) / len(d.attempts))) > 0

    def needs_verify(self, d: Draft) -> bool:
        return (self.verifies and d.verification is None and self.would_archive(d)
                and (d.validity is None or d.validity.valid))

    def apply_verification(self, d: Draft, verdict: Verdict, tokens: int, why: str | None = None) -> None:
        """Record the verifier's verdict: a majority of at least `share` that contradicts
        the reference (or, for an LLM judge, that says "invalid") fails the draft (the
        archive gate makes it invalid)."""
        v = self.config.verifier
        d.verification, d.verify_tokens = verdict, d.verify_tokens + tokens
        if verdict.reference_agrees is False and verdict.majority_share >= v.share:
            if v.method == "judge":
                reason = (f"verifier: {verdict.majority_share:.0%} of {len(verdict.correct)} judgements say "
                          f"invalid" + (f" ({why})" if why else ""))
            else:
                reason = (f"verifier: {verdict.majority_share:.0%} of {len(verdict.correct)} attempts answer "
                          f"{verdict.majority_answer!r}, the reference says {d.mutation.answer!r}")
            prev = d.validity or Validity((), None)
            d.validity = Validity(prev.failed + ("verifier",), "; ".join(r for r in (prev.reason, reason) if r))
            if self.config.validity.gate == "archive":
                d.status, d.reason = Status.INVALID, d.validity.reason

    @staticmethod
    def failed_draft(slot: int, parent: Parent, exc: RequestError) -> Draft:
        """The draft of a parent whose mutation request was refused."""
        return Draft(slot=slot, parent=parent, raw_output="", gen_tokens=0, status=Status.FAILED,
                     reason=failed_reason("mutation", exc))

    @staticmethod
    def fail(d: Draft, stage: str, exc: RequestError) -> None:
        """Draft `d` fails: its `stage` request was refused (it is solved no further)."""
        d.status, d.reason = Status.FAILED, failed_reason(stage, exc)


class Lifecycle:
    """One candidate (see the module doc). `slot` is its slot in steps mode (0 in the
    stream, which numbers slots at the commit); `pending` the problem ids not yet
    committed, shared by the candidates of a step or of the stream."""

    def __init__(self, rules: Rules, parent: Parent, *, slot: int = 0, pending: set[str] | None = None) -> None:
        self.rules, self.parent, self.slot = rules, parent, slot
        self.pending = pending if pending is not None else set()
        self.draft: Draft | None = None
        self.stage = MUTATE
        self.round_no = 0  # solve rounds judged so far
        self._out: list[Completion] | RequestError | None = None  # steps mode: an answer not yet accepted
        self.parent_stop = True  # its mutation request stops at its parent's problem (steps mode: not)
        self._verifier_outs: list[Completion] = []

    @classmethod
    def solving(cls, rules: Rules, draft: Draft) -> Lifecycle:
        """A parsed (and labelled) draft's lifecycle from its solves on, started over:
        steps mode's solve phase is retried as a whole."""
        draft.attempts, draft.verdict, draft.verification, draft.verify_tokens = [], None, None, 0
        life = cls(rules, draft.parent, slot=draft.slot)
        life.draft, life.stage = draft, SOLVE
        life._to_solve()
        return life

    @property
    def done(self) -> bool:
        return self.stage == DONE

    def next_request(self) -> Request | None:
        r, d = self.rules, self.draft
        if self.stage == MUTATE:
            return r.mutation_request(self.parent, self.parent_stop)
        if self.stage == LABEL:
            return r.label_request(d)
        if self.stage == SOLVE:
            return r.solve_request(d, r.attempts_wanted(d), self.round_no)
        if self.stage == VERIFY:
            return r.verify_request(d)
        return None

    def accept(self, outs: list[Completion] | RequestError) -> None:
        """The completions of the request `next_request` gave (or the error refusing it)."""
        r = self.rules
        if isinstance(outs, RequestError):
            if self.draft is None:
                self.draft = r.failed_draft(self.slot, self.parent, outs)
            else:
                r.fail(self.draft, {VERIFY: "verifier"}.get(self.stage, self.stage), outs)
            self.stage = DONE
            return
        if self.stage == MUTATE:
            self.draft = r.parse(self.slot, self.parent, outs[0], self.pending, self.parent_stop)
            self._after_parse()
        elif self.stage == LABEL:
            r.apply_label(self.draft, outs[0])
            self._to_solve()
        elif self.stage == SOLVE:
            self.draft.attempts.extend((o.text, o.tokens) for o in outs)
            self.stage = JUDGE
        elif self.stage == VERIFY:
            self._verifier_outs = outs
            self.stage = VERIFY_JUDGE
        else:
            raise RuntimeError(f"lifecycle: no request outstanding in stage {self.stage!r}")

    def to_judge(self) -> tuple[str, list[str]] | None:
        """(reference, texts to judge against it) while a judgement is awaited."""
        d = self.draft
        if self.stage == JUDGE:
            return d.mutation.answer, [t for t, _ in d.attempts]
        if self.stage == VERIFY_JUDGE:
            return d.mutation.answer, [o.text for o in self._verifier_outs]
        return None

    def judged(self, verdict: Verdict, why: str | None = None) -> None:
        if self.stage == JUDGE:
            self.draft.verdict = verdict
            self.round_no += 1
            self._to_solve()
        elif self.stage == VERIFY_JUDGE:
            self.rules.apply_verification(self.draft, verdict, sum(o.tokens for o in self._verifier_outs), why)
            self.stage = DONE
        else:
            raise RuntimeError(f"lifecycle: nothing to judge in stage {self.stage!r}")

    def _after_parse(self) -> None:
        self.stage = LABEL if self.rules.needs_label(self.draft) else SOLVE
        if self.stage == SOLVE:
            self._to_solve()

    def _to_solve(self) -> None:
        """Solve again while attempts are wanted, else verify or finish."""
        r, d = self.rules, self.draft
        if r.attempts_wanted(d) > 0:
            self.stage = SOLVE
        elif r.needs_verify(d):
            self.stage = VERIFY
        else:
            self.stage = DONE


def judge_all(rules: Rules, judge: Judge, lives: Sequence[Lifecycle]) -> None:
    """Judge every candidate of `lives` that awaits a judgement, in one call to the judge
    (an LLM judge's verifier replies are read instead: `[verifier] method = "judge"`)."""
    waiting = [life for life in lives if life.to_judge() is not None]
    if rules.config.verifier.method == "judge":
        for life in [x for x in waiting if x.stage == VERIFY_JUDGE]:
            verdict, why = rules.domain.read_judgements(life.to_judge()[1])
            life.judged(verdict, why)
        waiting = [x for x in waiting if x.stage == JUDGE]
    if waiting:
        for life, verdict in zip(waiting, judge.judge_many([life.to_judge() for life in waiting]), strict=True):
            life.judged(verdict)


# -- steps mode: a step's candidates together, phase by phase --------------------------------

Complete = Callable[[str, list[Prompt], Sampling], list]  # (role, prompts, sampling) -> outputs
Seed = Callable[[int, int], int]  # (step, phase) -> the seed of that call


def run_mutations(rules: Rules, step: int, parents: list[Parent], complete: Complete, seed: Seed,
                  pending_of_committed: Callable[[], set[str]] | None = None) -> list[Draft]:
    """Steps mode's mutate phase: one engine call per operator (slot order within it),
    then the skill labels in one call. Returns the drafts, in slot order."""
    pending: set[str] = set()
    lives = [Lifecycle(rules, p, slot=i, pending=pending) for i, p in enumerate(parents)]
    for k, spec in enumerate(rules.operators):
        group = [life for life in lives if rules.spec(life.parent) is spec]
        if group:
            _call(group, complete, seed(step, 1 + 20 * k), mutate_only=True)
    crash_point("mutate", step)  # test-only fault injection (pipeline/store/storage.py)
    # Parsed in slot order (duplicates within the step are found in that order).
    for life in lives:
        life.accept(life._out)
    labelling = [life for life in lives if life.stage == LABEL]
    if labelling:
        _call(labelling, complete, seed(step, 2))
        for life in labelling:
            life.accept(life._out)
    return [life.draft for life in lives]


def run_solves(rules: Rules, judge: Judge, step: int, drafts: list[Draft], complete: Complete, seed: Seed,
               prefetch: Callable[[list[str]], None] | None = None) -> list[Draft]:
    """Steps mode's solve phase (retried as a whole: it starts each draft's solves over):
    round by round, one engine call per distinct sample count, one judge call per round;
    then the verifier in one call and one judge call."""
    lives = [Lifecycle.solving(rules, d) for d in drafts if d.status == Status.OK]
    if lives and prefetch is not None:
        prefetch([life.draft.mutation.problem for life in lives])
    round_no = 0
    while True:
        solving = [life for life in lives if life.stage == SOLVE]
        if not solving:
            break
        wanted = {id(life): rules.attempts_wanted(life.draft) for life in solving}
        for n in sorted(set(wanted.values())):  # one call per n shares prefills
            group = [life for life in solving if wanted[id(life)] == n]
            _call(group, complete, seed(step, PHASE_SOLVE + round_no))
            crash_point("solve", step)
        for life in solving:
            life.accept(life._out)
        judge_all(rules, judge, [life for life in solving if life.stage == JUDGE])
        round_no += 1
        if not rules.config.solver.adaptive:
            break
    verifying = [life for life in lives if life.stage == VERIFY]
    if verifying:
        _call(verifying, complete, seed(step, PHASE_VERIFY))
        crash_point("solve", step)
        for life in verifying:
            life.accept(life._out)
        judge_all(rules, judge, [life for life in verifying if life.stage == VERIFY_JUDGE])
    return drafts


def _call(group: list[Lifecycle], complete: Complete, seed: int, mutate_only: bool = False) -> None:
    """One engine call for `group` (their requests share sampling but for the seed);
    each candidate's outputs wait in `_out` until the caller accepts them in order.
    Mutations go without their parents' stop strings, which differ from parent to parent."""
    if mutate_only:
        for life in group:
            life.parent_stop = False
    requests = [life.next_request() for life in group]
    outs = complete(requests[0].role, [q.prompt for q in requests], replace(requests[0].sampling, seed=seed))
    for life, o in zip(group, outs, strict=True):
        life._out = o
