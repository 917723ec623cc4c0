"""Python functions with unit tests: a problem is a function specification, its reference
is an implementation, its "answer" is the unit tests (plain `assert` lines).

- The generator writes "New problem: ... New solution: <code> New tests: <asserts>"
  (pipeline/prompts/code_mutate_fewshot.toml), parsed here into a `Mutation` whose
  `solution` is the reference implementation and `answer` the tests.
- A solver attempt is an implementation; it is correct when it passes the reference's
  tests, run in the sandbox (pipeline/domains/code/sandbox.py), never in this process.
- The validity checks ask that the reference is Python that defines the function the
  problem names, that the tests call it, that the reference passes its own tests, and that
  a function returning None does not (tests that test nothing make every attempt "pass").
- An exported row is the specification as the user turn and the implementation as the
  assistant turn.

Code is only ever parsed here (`ast.parse`, which builds a tree and runs nothing); it runs
only through `pipeline.domains.code.sandbox`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from pipeline.config import CODE_CHECKS
from pipeline.domains.base import (
    MAX_PROBLEM_CHARS,
    MAX_SOLUTION_CHARS,
    MIN_PROBLEM_CHARS,
    Mutation,
    ParseFailure,
    Repair,
    Validity,
    Verdict,
    strip_reasoning,
)
from pipeline.domains.code.sandbox import Limits, run_tests

MIN_TESTS = 2
MAX_TESTS = 30
# Section markers. A small model mislabels them ("Original tests:" or "New test:" for its
# new tests, copying the parent's layout): after "New problem:", any solution or tests
# marker counts as the new one.
_MARKERS = re.compile(r"^[ \t]*(?:(New problem)|(?:New|Original)[ _]?(solution)s?|(?:New|Original)[ _]?(tests?)|"
                      r"(Original problem)|(Problem)|(Solution)|(###)):?", re.M | re.I)
_FENCE = re.compile(r"^[ \t]*```[a-zA-Z]{0,12}[ \t]*$", re.M)
# "`name(...)`", "function name(...)" or "function named/called name"
_NAMED = re.compile(r"`([A-Za-z_]\w{0,60})\s*\(|\bfunction\s+(?:(?:named|called)\s+`?([A-Za-z_]\w{0,60})|"
                    r"([A-Za-z_]\w{0,60})\s*\()", re.I)


_KEYS = ("New problem", "New solution", "New tests", "end", "end", "end", "end")


def _sections(text: str) -> dict[str, str]:
    """The text after each marker up to the next marker (the first occurrence wins), from
    the first "New problem:" on."""
    found: dict[str, str] = {}
    marks = [m for m in _MARKERS.finditer(text)]
    start = next((i for i, m in enumerate(marks) if m.group(1)), None)
    if start is None:
        return found
    marks = marks[start:]
    for m, nxt in zip(marks, [*marks[1:], None], strict=False):
        key = _KEYS[next(i for i, g in enumerate(m.groups()) if g)]
        if key == "end" and found:
            break  # another example begins
        if key not in found:
            found[key] = text[m.end(): nxt.start() if nxt else len(text)]
    return found


def clean_code(text: str) -> str:
    """An attempt or a reference without markdown fences and without prose before its
    first `def`/`import`/`from` line (a model often says a sentence first)."""
    text = _FENCE.sub("", text).strip("\n")
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"(def|import|from|class)\s", line) or re.match(r"@\w", line):
            return "\n".join(lines[i:]).strip("\n")
    return text.strip("\n")


def assert_lines(text: str) -> list[str]:
    """The `assert` lines of a tests section, up to the first line that is neither an
    assert nor blank."""
    out = []
    for line in _FENCE.sub("", text).splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("assert "):
            break
        out.append(stripped)
    return out


def defined_functions(code: str) -> list[str]:
    """Names of the top-level functions `code` defines ([] if it does not parse)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def named_function(problem: str) -> str | None:
    """The function the specification names ("Write a function `f(x)` ...")."""
    m = _NAMED.search(problem)
    return None if m is None else (m.group(1) or m.group(2) or m.group(3))


def parse_code_mutation(raw: str, response_prefix: str = "") -> Mutation | ParseFailure:
    if not isinstance(raw, str):
        return ParseFailure(f"output is {type(raw).__name__}, not text")
    text = strip_reasoning((response_prefix + raw).replace("\x00", ""))
    parts = _sections(text)
    if "New problem" not in parts:
        return ParseFailure("no problem found (expected 'New problem:')")
    if "New solution" not in parts:
        return ParseFailure("no solution found (expected 'New solution:')")
    if "New tests" not in parts:
        return ParseFailure("no tests found (expected 'New tests:' with assert lines)")
    problem, solution = parts["New problem"].strip(), clean_code(parts["New solution"])
    tests = assert_lines(parts["New tests"])
    if len(problem) < MIN_PROBLEM_CHARS:
        return ParseFailure(f"problem too short ({len(problem)} chars)")
    if len(problem) > MAX_PROBLEM_CHARS:
        return ParseFailure(f"problem too long ({len(problem)} chars > {MAX_PROBLEM_CHARS})")
    if not solution:
        return ParseFailure("empty solution")
    if len(solution) > MAX_SOLUTION_CHARS:
        return ParseFailure(f"solution too long ({len(solution)} chars > {MAX_SOLUTION_CHARS})")
    if not tests:
        return ParseFailure("no assert lines after 'New tests:'")
    return Mutation(problem=problem, solution=solution, answer="\n".join(tests[:MAX_TESTS]))


# -- validity checks: (problem, solution, tests) -> reason | None --------------------------

def check_syntax(problem: str, solution: str, tests: str) -> str | None:
    for what, code in (("solution", solution), ("tests", tests)):
        try:
            ast.parse(code)
        except SyntaxError as exc:
            return f"the {what} is not valid Python: {exc.msg} (line {exc.lineno})"
        except (ValueError, RecursionError, MemoryError) as exc:
            return f"the {what} cannot be parsed: {type(exc).__name__}"
    return None


def check_names_function(problem: str, solution: str, tests: str) -> str | None:
    name = named_function(problem)
    defined = defined_functions(solution)
    if name is None:
        return "ill-posed: the problem names no function (expected `name(...)` in backticks)"
    if name not in defined:
        return f"the problem asks for `{name}` but the solution defines {defined or 'no function'}"
    return None


def check_tests_call(problem: str, solution: str, tests: str) -> str | None:
    name = named_function(problem)
    lines = tests.splitlines()
    if len(lines) < MIN_TESTS:
        return f"{len(lines)} test(s); at least {MIN_TESTS} expected"
    if name is not None:
        calls = re.compile(rf"\b{re.escape(name)}\s*\(")
        idle = [line for line in lines if not calls.search(line)]
        if idle:
            return f"a test does not call `{name}`: {idle[0][:120]}"
    return None


LIMITS = Limits()


def check_reference_passes(problem: str, solution: str, tests: str) -> str | None:
    outcome = run_tests(solution, tests, limits=LIMITS)
    return None if outcome.passed else f"the reference fails its own tests: {outcome.reason}"


def stubbed(solution: str, name: str) -> str | None:
    """`solution` with function `name`'s body replaced by `return None` (None when the
    function is not there)."""
    try:
        tree = ast.parse(solution)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            node.body = [ast.Return(value=ast.Constant(value=None))]
            return ast.unparse(tree)
    return None


def check_tests_discriminate(problem: str, solution: str, tests: str) -> str | None:
    name = named_function(problem)
    stub = stubbed(solution, name) if name else None
    if stub is None:
        return None  # names_function says why
    outcome = run_tests(stub, tests, limits=LIMITS)
    return "the tests pass a function that returns None: they test nothing" if outcome.passed else None


CODE_CHECK_FUNCTIONS: dict[str, Callable[[str, str, str], str | None]] = {
    "syntax": check_syntax,
    "names_function": check_names_function,
    "tests_call": check_tests_call,
    "reference_passes": check_reference_passes,
    "tests_discriminate": check_tests_discriminate,
}


def check_code(problem: str, solution: str, tests: str, checks: tuple[str, ...] | None = None) -> Validity:
    """Run the named checks in CODE_CHECKS order; the sandboxed ones only when the cheap
    ones passed (code that does not parse is not run)."""
    failed, reasons = [], []
    for name in checks if checks is not None else CODE_CHECKS:
        if "syntax" in failed or (failed and name in ("reference_passes", "tests_discriminate")):
            continue  # what does not parse cannot be checked further
        reason = CODE_CHECK_FUNCTIONS[name](problem, solution, tests)
        if reason is not None:
            failed.append(name)
            reasons.append(f"{name}: {reason}")
    return Validity(tuple(failed), "; ".join(reasons) if reasons else None)


# -- judging attempts ----------------------------------------------------------------------

MAX_REASON_CHARS = 200


class CodeJudge:
    """Runs each attempt against the reference tests in the sandbox, a few at a time (each
    run is its own process; the threads only wait on them)."""

    def __init__(self, timeout_s: float, workers: int = 2) -> None:
        self.limits = Limits(timeout_s=max(1.0, min(float(timeout_s), LIMITS.timeout_s)))
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="code-judge")

    def _one(self, tests: str, attempt: str) -> tuple[bool, str]:
        code = clean_code(attempt)
        if not defined_functions(code):
            return False, "no function defined"
        outcome = run_tests(code, tests, limits=self.limits)
        return outcome.passed, "passed" if outcome.passed else (outcome.reason or "failed")[:MAX_REASON_CHARS]

    def judge_many(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[Verdict]:
        futures = [[self._pool.submit(self._one, tests, a) for a in attempts] for tests, attempts in items]
        verdicts = []
        for row in futures:
            results = [f.result() for f in row]
            correct = tuple(ok for ok, _ in results)
            share = sum(correct) / len(correct) if correct else 0.0
            # No "majority answer" to dispute a reference with: the tests are the reference
            # (the checks decide whether they hold). An attempt written independently that
            # passes them corroborates them (reference_agrees True, which the export's
            # validity filter asks for); none passing is no evidence either way (None).
            verdicts.append(Verdict(correct=correct, extracted=tuple(why for _, why in results),
                                    majority_answer=None, majority_share=share,
                                    reference_agrees=True if any(correct) else None, timed_out=False))
        return verdicts

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class CodeDomain:
    kind = "code"
    seed_columns = ("problem", "solution", "answer")
    default_prompts = {"generator": "code_mutate_fewshot", "solver": "code_solve_fewshot",
                       "verifier": "code_solve_fewshot"}
    check_names = CODE_CHECKS

    def parse(self, text: str, response_prefix: str) -> Mutation | ParseFailure:
        return parse_code_mutation(text, response_prefix)

    def check(self, mutation: Mutation, checks: tuple[str, ...]) -> Validity:
        return check_code(mutation.problem, mutation.solution, mutation.answer, checks)

    def repair(self, mutation: Mutation) -> Repair | None:
        return None  # a failing program has no one certain correction

    def new_judge(self, timeout_s: float) -> CodeJudge:
        return CodeJudge(timeout_s)

    def read_judgements(self, replies: list[str]) -> tuple[Verdict, str | None]:
        raise ValueError("the code domain has no LLM judge: its tests decide ([verifier] method = \"solve\")")

    def messages(self, problem: str, content: str) -> list[dict[str, str]]:
        return [{"role": "user", "content": problem}, {"role": "assistant", "content": clean_code(content)}]


DOMAIN = CodeDomain  # what pipeline.domains.DOMAINS builds for this kind
