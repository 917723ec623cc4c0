"""SPARQ's mutation operator: render the prompt for a parent, parse the model's output.

Parsing is pure and total: every output becomes either a `Mutation` or a
`ParseFailure` with a reason, so an unparseable output is a row with status
`unparseable` and its raw text, never a crash and never a silent drop.

Two output formats are understood, after any <think>...</think> reasoning block:
- few-shot completion (base models): "New problem: ... New solution: ... The answer is X."
- tagged (instruction models, SPARQ's prompt): <problem>...</problem><solution>...</solution>
  with the final answer in \\boxed{}.
"""

from __future__ import annotations

import re

from pipeline.domains.base import (  # noqa: F401 (the bounds and records: re-exported)
    MAX_PROBLEM_CHARS,
    MAX_SOLUTION_CHARS,
    MIN_PROBLEM_CHARS,
    Mutation,
    ParseFailure,
    strip_reasoning,
)
from pipeline.domains.math.answers import extract_final
from pipeline.prompts import Prompt, PromptTemplate

_OPEN = {name: re.compile(rf"<{name}>", re.I) for name in ("problem", "solution")}
_CLOSE = {name: re.compile(rf"</{name}>", re.I) for name in ("problem", "solution")}
_NEW_PROBLEM = re.compile(r"New problem:", re.I)
_NEW_SOLUTION = re.compile(r"New solution:", re.I)
_ORIGINAL_SOLUTION = re.compile(r"Original solution:", re.I)
_ORIGINAL_PROBLEM = re.compile(r"Original problem:", re.I)


def tagged(text: str, name: str) -> str | None:
    """What re.search(r"<name>(.*?)</name>", re.S | re.I) captures, in linear time.

    The lazy regex rescans to the end from every opening tag: quadratic on output full of
    unclosed tags (180 KB took 20 s). The first opening tag with a closing tag after it is
    the first opening tag, if any closing tag follows it at all.
    """
    opening = _OPEN[name].search(text)
    if opening is None:
        return None
    closing = _CLOSE[name].search(text, opening.end())
    return None if closing is None else text[opening.end() : closing.start()]


def render_mutation(template: PromptTemplate, problem: str, solution: str) -> Prompt:
    return template.render(problem=problem, solution=solution)


def parse_mutation(raw: str, response_prefix: str = "") -> Mutation | ParseFailure:
    """Parse a mutation output (the completion, without the prompt)."""
    if not isinstance(raw, str):
        return ParseFailure(f"output is {type(raw).__name__}, not text")
    text = (response_prefix + raw).replace("\x00", "")
    if not text.strip():
        return ParseFailure("empty output")
    # A reasoning model thinks in <think>...</think> first (drafts, tags and all); only
    # what follows is its answer.
    answer_part = strip_reasoning(text)
    if not answer_part.strip():
        return ParseFailure("reasoning never finished (<think> without </think>: cut off by max_tokens?)")
    text = answer_part
    tagged_problem, tagged_solution = tagged(text, "problem"), tagged(text, "solution")
    if tagged_problem is not None and tagged_solution is not None:
        problem, solution = tagged_problem, tagged_solution
    else:
        p = _NEW_PROBLEM.search(text)
        s = _NEW_SOLUTION.search(text, p.end() if p else 0)
        if not p:
            return ParseFailure("no problem found (expected 'New problem:' or <problem> tags)")
        if not s:
            # About one output in twelve of the embedded model labels its new problem's
            # solution with the examples' other label; what follows is still that
            # problem's solution, and the checks judge it like any other. Not after an
            # "Original problem:": that solution is of another problem.
            s = _ORIGINAL_SOLUTION.search(text, p.end())
            if s and _ORIGINAL_PROBLEM.search(text, p.end(), s.start()):
                s = None
        if not s:
            return ParseFailure("no solution found (expected 'New solution:' or <solution> tags)")
        problem = text[p.end() : s.start()]
        solution = text[s.end() :]
        # A model that echoes the example layout puts "Original solution:" inside the
        # problem; the problem ends there.
        echo = re.search(r"Original (?:problem|solution):", problem)
        if echo:
            problem = problem[: echo.start()]
        # A model that keeps going writes another example; keep only the first.
        nxt = _NEW_PROBLEM.search(solution) or re.search(r"Original problem:", solution)
        if nxt:
            solution = solution[: nxt.start()]
    problem, solution = problem.strip(), solution.strip()
    if len(problem) < MIN_PROBLEM_CHARS:
        return ParseFailure(f"problem too short ({len(problem)} chars)")
    if len(problem) > MAX_PROBLEM_CHARS:
        return ParseFailure(f"problem too long ({len(problem)} chars > {MAX_PROBLEM_CHARS})")
    if len(solution) > MAX_SOLUTION_CHARS:
        return ParseFailure(f"solution too long ({len(solution)} chars > {MAX_SOLUTION_CHARS})")
    answer = extract_final(solution)
    if answer is None or not answer.strip():
        return ParseFailure("no final answer in the solution (expected 'The answer is X.' or \\boxed{X})")
    return Mutation(problem=problem, solution=solution, answer=answer.strip())
