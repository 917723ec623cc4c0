"""The records every domain speaks in, and the loop reads: a parsed generator output
(`Mutation` or `ParseFailure`), the deterministic checks' outcome (`Validity`), a corrected
reference (`Repair`), and the
judgement of a problem's attempts against its reference (`Verdict`).

They live here, not in a domain, so that the loop and each domain import the same
definitions and no domain reaches into another (math's answers, code's tests).
"""

from __future__ import annotations

from dataclasses import dataclass

# Bounds of a parsed problem and solution, the same in every domain (characters).
MAX_PROBLEM_CHARS = 2000
MAX_SOLUTION_CHARS = 6000
MIN_PROBLEM_CHARS = 8

_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"


@dataclass(frozen=True)
class Mutation:
    problem: str
    solution: str
    answer: str


@dataclass(frozen=True)
class ParseFailure:
    reason: str


@dataclass(frozen=True)
class Repair:
    """A reference the domain corrected (`[validity] repair`): the corrected mutation and
    what was changed (the row's `repair` column)."""

    mutation: Mutation
    note: str


@dataclass(frozen=True)
class Validity:
    """The checks' outcome for one candidate: `failed` names the checks that failed, in
    the order of the domain's checks, and `reason` joins their reasons ("check: reason; ...")."""

    failed: tuple[str, ...]
    reason: str | None

    @property
    def valid(self) -> bool:
        return not self.failed


@dataclass(frozen=True)
class Verdict:
    """The judgement of one problem's attempts against its reference answer.

    ``majority_share`` is the majority class size over *all* attempts
    (attempts without an extractable answer count against it).
    ``reference_agrees`` is None when there is no majority, or when the
    judge timed out (unknown). On timeout every attempt counts as incorrect
    and the classes are grouped by normalised string only.
    """

    correct: tuple[bool, ...]
    extracted: tuple[str | None, ...]
    majority_answer: str | None
    majority_share: float
    reference_agrees: bool | None
    timed_out: bool


def strip_reasoning(text: str) -> str:
    """The answer part of a reasoning model's output: what follows the last ``</think>``.

    A ``<think>`` that never closes is reasoning cut off by the token limit: it has no
    answer part, so the result is empty (a draft answer inside the reasoning is not the
    model's answer). Text without think tags is returned unchanged.
    """
    close = text.rfind(_THINK_CLOSE)
    if close >= 0:
        return text[close + len(_THINK_CLOSE):]
    return "" if _THINK_OPEN in text else text
