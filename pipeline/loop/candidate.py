"""The records of one candidate on its way through a step: the parent it is made from
and the draft that collects its output, parse, checks, attempts and verdicts until it is
committed as a `Candidate` row (pipeline/loop/commit.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.config import Config
from pipeline.domains.base import Mutation, Validity, Verdict
from pipeline.store.records import Status


@dataclass(frozen=True)
class Parent:
    id: str
    problem: str
    solution: str
    answer: str
    depth: int
    # What this slot does with it (set by select_parents):
    operator: str = "sparq_mutate"
    second: Parent | None = None  # crossover: the second parent; niche: the example shown
    target: str | None = None  # niche: the target (the `target` column)
    target_text: str | None = None  # niche: the target as the prompt says it


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
    skills: tuple[str, ...] | None = None  # skill-set archive: the labeller's in-vocabulary key
    validity: Validity | None = None  # the deterministic checks (parsed drafts only)
    repair: str | None = None  # what `[validity] repair` corrected in the reference
    verification: Verdict | None = None  # the verifier's attempts judged against the reference
    verify_tokens: int = 0


# request_seed phases: mutation 1 + 20 x operator index, label 2, solve round r
# PHASE_SOLVE + r (r < 1024: k <= 1024), the verifier PHASE_VERIFY, a re-scoring's solve
# round r PHASE_RESCORE + r (its step number may equal a streamed candidate's sequence
# number: another phase keeps their seeds apart).
PHASE_SOLVE, PHASE_VERIFY, PHASE_RESCORE, PHASES = 100, 2048, 3072, 4096


def request_seed(config: Config, step: int, phase: int) -> int:
    """The seed of one engine call: `step` is the step (steps mode) or the candidate's
    sequence number (stream), `phase` one of the PHASE_* values (plus the operator's or
    the round's number). Each (step, phase) owns a block of seeds, as many as one call's
    prompts x samples can take (engines.prompt_seed), so no two samples of a run share a
    seed: adaptive rounds and the verifier draw new samples, not repeats of earlier ones
    counted as more evidence."""
    if not 0 <= phase < PHASES:
        raise ValueError(f"request_seed: phase {phase} outside [0, {PHASES})")
    block = max(1, config.run.batch_size) * max(1, config.solver.k, config.verifier.m)
    return (config.run.seed * 1_000_003 + (step * PHASES + phase) * block) % (2**62)


def archive_eligible(status: str, quality: float) -> bool:
    return status == Status.SEED or (status in Status.SCORED and quality > 0)


