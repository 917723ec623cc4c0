"""Final-answer extraction and comparison.

Extraction and normalisation are pure regex code and safe to call anywhere.
Comparison goes through math-verify (sympy), which can run for minutes or
hours on adversarial LaTeX such as ``9^{9^{9^{9}}}``. math-verify's own
timeout uses ``signal.alarm``, which raises outside the main thread (our
orchestrator runs tasks in threads), so we always disable it
(``parsing_timeout=None``, ``timeout_seconds=None``) and enforce a limit
ourselves: ``AnswerJudge`` runs ``judge`` in the worker processes of a
``TimedPool`` (pipeline/runtime/timed_pool.py, the generic part), which kills a worker
that runs past the limit. Problems whose comparisons are all decided
without math-verify (``judge_fast``: equal normalised strings, distinct
plain numbers) are judged in the caller, with the same verdict.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from types import TracebackType

from math_verify import parse, verify

from pipeline.domains.base import Verdict, strip_reasoning
from pipeline.runtime.timed_pool import TimedPool

# Only the tail of a long generation can hold its final answer; capping the
# scan keeps extraction linear in a bounded size whatever the model emits.
SCAN_CHARS = 4000

_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
# "The answer is X", "the final answer is X", "Final answer: X", "Answer: X": the phrase;
# its answer is what follows on the same line.
_ANSWER_PHRASE_RE = re.compile(r"\b(?:final\s+)?answer\s*(?:is\b\s*:?|:)[ \t]*", re.IGNORECASE)
# A period that ends a sentence: followed by whitespace or the end. Keeps
# the decimal point in "2.5".
_SENTENCE_END_RE = re.compile(r"\.(?=\s|$)")
_MATH_DELIMITED_RE = re.compile(r"^(?:\$\$?(.+?)\$\$?|\\\((.+?)\\\)|\\\[(.+?)\\\])", re.DOTALL)





def extract_final(text: str) -> str | None:
    """The final answer in model output, or None.

    Reasoning in ``<think>...</think>`` is skipped (`strip_reasoning`). Prefers the last
    ``\\boxed{...}`` with balanced braces; otherwise the last "The answer is X" /
    "the final answer is X" / "Answer: X" phrase, also within one line ("the answer is 7.
    Wait, recount: the answer is 12." gives 12); a phrase with nothing after it is skipped.
    """
    text = strip_reasoning(text) if text else text
    if not text:
        return None
    tail = text[-SCAN_CHARS:]
    boxed = _last_boxed(tail)
    if boxed is not None:
        return boxed
    for match in reversed(list(_ANSWER_PHRASE_RE.finditer(tail))):
        line_end = tail.find("\n", match.end())
        answer = _clean_phrase_answer(tail[match.end(): len(tail) if line_end < 0 else line_end])
        if answer:
            return answer
    return None


def _last_boxed(text: str) -> str | None:
    # Walk back over \boxed occurrences: the last one may be cut off by the
    # generation limit (unbalanced), in which case an earlier one counts.
    closing = _closing_braces(text)
    for match in reversed(list(_BOXED_RE.finditer(text))):
        close = closing.get(match.end() - 1)
        if close is not None and text[match.end() : close].strip():
            return text[match.end() : close].strip()
    return None


def _closing_braces(text: str) -> dict[int, int]:
    """Index of each balanced ``{`` -> index of its ``}``, in one pass.

    One pass for all groups, rather than a scan per ``\boxed``, keeps text
    full of unclosed ``\boxed{`` linear.
    """
    pairs: dict[int, int] = {}
    stack: list[int] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            # Escaped braces (\{ \}) are literal set braces, not grouping.
            i += 2
            continue
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            pairs[stack.pop()] = i
        i += 1
    return pairs


def _clean_phrase_answer(raw: str) -> str:
    s = raw.strip().strip("*").strip()
    math = _MATH_DELIMITED_RE.match(s)
    if math is not None:
        # "$\frac{3}{4}$. Done." -> the math, whatever follows it.
        s = next(g for g in math.groups() if g is not None)
    else:
        end = _SENTENCE_END_RE.search(s)
        if end is not None:
            s = s[: end.start()]
    return s.strip().strip("*$").strip().rstrip(".").strip()


_FRAC_RE = re.compile(r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}")
_FRAC_DIGITS_RE = re.compile(r"\\[dt]?frac(\d)(\d)")
_ATOM_RE = re.compile(r"-?(?:[0-9.]+|[A-Za-z]|\\[A-Za-z]+)")
_THOUSANDS_RE = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_DECIMAL_RE = re.compile(r"-?\d+\.\d*")
# Nesting deeper than this is left partly unrewritten: the form only has to
# be consistent, and a bound keeps adversarial input from going quadratic.
_MAX_FRAC_PASSES = 8
_SPACING_COMMANDS = (r"\,", r"\!", r"\;", r"\:", "\\ ")


def normalize_answer(ans: str) -> str:
    """Light canonical form used to group answers and as a fast equality path.

    Strips ``$`` and LaTeX spacing, drops thousands separators in plain
    numbers ("1,200" -> "1200"), trailing decimal zeros ("12.50" -> "12.5",
    "12.0" -> "12"), rewrites simple ``\\frac{a}{b}`` as "a/b" and removes
    whitespace. Apart from the "1,200" rule it does not merge answers that
    differ in value (compound parts and fractions next to other terms keep
    parentheses), since the grouping and the equality fast path trust it.
    """
    s = ans.strip().replace("$", "")
    for command in _SPACING_COMMANDS:
        s = s.replace(command, "")
    s = s.replace("{,}", ",").strip()
    if _THOUSANDS_RE.fullmatch(s):
        s = s.replace(",", "")
    s = "".join(s.split())
    s = _FRAC_DIGITS_RE.sub(r"\\frac{\1}{\2}", s)
    # Innermost fractions first, one nesting level per pass.
    for _ in range(_MAX_FRAC_PASSES):
        replaced = _FRAC_RE.sub(_frac_as_slash, s)
        if replaced == s:
            break
        s = replaced
    if _DECIMAL_RE.fullmatch(s):
        s = s.rstrip("0").rstrip(".")
    return s


# A fraction may drop its parentheses only next to these (or the ends):
# "2\frac{1}{2}" must not become "21/2", the form of \frac{21}{2}.
_FREE_BEFORE = frozenset("+-*=(,[{<>")
_FREE_AFTER = frozenset("+-*/=),]}<>")


def _frac_as_slash(match: re.Match[str]) -> str:
    num, den = (p if _ATOM_RE.fullmatch(p) else f"({p})" for p in match.groups())
    text, start, end = match.string, match.start(), match.end()
    free_before = start == 0 or text[start - 1] in _FREE_BEFORE
    free_after = end == len(text) or text[end] in _FREE_AFTER
    return f"{num}/{den}" if free_before and free_after else f"({num}/{den})"


def _as_math(ans: str) -> str:
    # math-verify only extracts LaTeX inside delimiters or \boxed.
    return f"${ans.strip().strip('$').strip()}$"


# Plain numbers whose value math-verify reads exactly: integers (sympy Integer, exact,
# up to 15 digits) and short decimals (sympy Float, compared after rounding to 6 places;
# at most 12 significant digits, so the rounding is exact). No leading zeros ("007" and
# "7" are equal in value but differ as strings: math-verify decides those).
_PLAIN_NUMBER_RE = re.compile(r"-?(?:0|[1-9]\d{0,14})|-?(?:0|[1-9]\d{0,5})\.\d{1,6}")


# A unit after a number: "12 eggs", "5 square meters", "12cm" (two letters or more when
# stuck to the number; "12x" is algebra). Not a unit: the math words below.
_UNIT_RE = re.compile(r"^\s*(?P<value>[-+]?\$?\s*(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:\s*/\s*\d+)?)"
                      r"(?:\s+(?P<spaced>[A-Za-z][A-Za-z ]{0,40})|(?P<stuck>[A-Za-z]{2,40}))\s*\.?\s*$")
_NOT_UNITS = frozenset({"pi", "i", "e", "sqrt", "x", "y", "z", "n", "k"})


def split_unit(answer: str) -> tuple[str, str | None]:
    """`answer` as (value, unit): "12 eggs" -> ("12", "egg"); "$4" -> ("4", "dollar").

    The unit rule of the judge: a unit is a word (or words) after a number; it is compared
    case-folded and singular ("eggs" = "egg"). A "$" before the number is the unit "dollar".
    Answers that are no number with a unit come back unchanged with unit None.
    """
    m = _UNIT_RE.match(answer)
    if m is None:
        value = answer.strip()
        if value.startswith("$") and _UNIT_RE.match(value[1:] + " dollar"):
            return value[1:].strip(), "dollar"
        return answer, None
    unit = " ".join((m.group("spaced") or m.group("stuck")).lower().split())
    if unit in _NOT_UNITS:
        return answer, None
    value = m.group("value").replace(" ", "")
    if value.startswith("$"):
        value = value[1:]
    words = unit.split(" ")
    last = words[-1]
    if len(last) > 3 and last.endswith("s") and not last.endswith("ss"):
        last = last[:-1]  # a plural: "eggs", "meters", "dollars"
    return value, " ".join(words[:-1] + [last])


def _units_apart(reference: str, predicted: str) -> tuple[str, str] | None:
    """The two answers' values when their units allow a comparison (a bare number matches
    the same number with any unit; two units must be the same unit), else None."""
    ref_v, ref_u = split_unit(reference)
    pred_v, pred_u = split_unit(predicted)
    if ref_u is not None and pred_u is not None and ref_u != pred_u:
        return None
    return ref_v, pred_v


def fast_equal(reference: str, predicted: str) -> bool | None:
    """``answers_equal`` where it is decided without math-verify, else None.

    Empty answers are never equal; equal normalised strings are equal; two plain
    numbers (see ``_PLAIN_NUMBER_RE``) of different value are different, which is what
    math-verify answers for them (tests/unit/pipeline/domains/test_answers.py checks it on many pairs). Most
    wrong answers of a solver are such numbers, so most problems need no sympy at all.
    """
    ref_norm, pred_norm = normalize_answer(reference), normalize_answer(predicted)
    if not ref_norm or not pred_norm:
        return False
    if ref_norm == pred_norm:
        return True
    values = _units_apart(reference, predicted)
    if values is None:
        return False
    ref_norm, pred_norm = normalize_answer(values[0]), normalize_answer(values[1])
    if not ref_norm or not pred_norm:
        return False
    if ref_norm == pred_norm:
        return True
    if (_PLAIN_NUMBER_RE.fullmatch(ref_norm) and _PLAIN_NUMBER_RE.fullmatch(pred_norm)
            and Decimal(ref_norm) != Decimal(pred_norm)):
        return False
    return None


def answers_equal(reference: str, predicted: str) -> bool:
    """Whether ``predicted`` is mathematically the same answer as ``reference``.

    The cheap decisions of ``fast_equal`` first (normalised string equality covers most
    agreement, distinct plain numbers most disagreement); then math-verify. Empty
    answers are never equal to anything. Unbounded in time on adversarial input: call
    it in an ``AnswerJudge`` worker.
    """
    decided = fast_equal(reference, predicted)
    if decided is not None:
        return decided
    values = _units_apart(reference, predicted)  # fast_equal returned False when None
    assert values is not None
    return math_verify_equal(*values)


def math_verify_equal(reference: str, predicted: str) -> bool:
    """math-verify's answer alone (no fast path): unbounded in time, as ``answers_equal``."""
    # math-verify catches sympy/parse errors itself (raise_on_error=False)
    # and reports them as "no parse" / "not equal", which is what we want.
    gold = parse(_as_math(reference), parsing_timeout=None)
    pred = parse(_as_math(predicted), parsing_timeout=None)
    if not gold or not pred:
        return False
    return bool(verify(gold, pred, timeout_seconds=None))


@dataclass
class _AnswerClass:
    representative: str
    count: int
    correct: bool


def judge(reference: str, attempts: Sequence[str]) -> Verdict:
    """Judge one problem: correctness per attempt, majority answer, agreement.

    Extracted answers are grouped by normalised string, then classes whose
    representatives are ``answers_equal`` are merged; the majority is the
    largest merged class (ties: the one seen first). Unbounded in time on
    adversarial input: run it through ``AnswerJudge``.
    """
    return _judge(reference, attempts, answers_equal)


class _NeedsMathVerify(Exception):
    pass


def _fast_or_raise(reference: str, predicted: str) -> bool:
    decided = fast_equal(reference, predicted)
    if decided is None:
        raise _NeedsMathVerify
    return decided


def judge_fast(reference: str, attempts: Sequence[str]) -> Verdict | None:
    """``judge(reference, attempts)`` if no comparison it makes needs math-verify, else None.

    Regex work only (bounded time), so safe to call in the orchestrator: ``AnswerJudge``
    sends only the problems for which this returns None to its workers.
    """
    try:
        return _judge(reference, attempts, _fast_or_raise)
    except _NeedsMathVerify:
        return None


def _judge(reference: str, attempts: Sequence[str], equal: Callable[[str, str], bool]) -> Verdict:
    extracted = tuple(extract_final(a) for a in attempts)
    # One math-verify comparison per distinct normalised answer, not per attempt.
    # An answer that normalises to "" (e.g. "\\,") is no answer: it is never
    # correct and does not form a class.
    keys = tuple(None if a is None else normalize_answer(a) or None for a in extracted)
    by_norm: dict[str, _AnswerClass] = {}
    for ans, key in zip(extracted, keys, strict=True):
        if key is None or ans is None:
            continue
        if key in by_norm:
            by_norm[key].count += 1
        else:
            by_norm[key] = _AnswerClass(ans, 1, equal(reference, ans))
    correct = tuple(key is not None and by_norm[key].correct for key in keys)

    merged: list[_AnswerClass] = []
    for cls in by_norm.values():
        target = next((m for m in merged if _same_class(m, cls, equal)), None)
        if target is None:
            merged.append(_AnswerClass(cls.representative, cls.count, cls.correct))
        else:
            target.count += cls.count

    majority = max(merged, key=lambda m: m.count, default=None)  # max keeps the first of ties
    if majority is None:
        return Verdict(correct, extracted, None, 0.0, None, timed_out=False)
    return Verdict(
        correct,
        extracted,
        majority.representative,
        majority.count / len(attempts),
        majority.correct,
        timed_out=False,
    )


def _same_class(existing: _AnswerClass, new: _AnswerClass, equal: Callable[[str, str], bool]) -> bool:
    # Answers equal to the reference are equal to each other, and an answer
    # equal to it differs from one that is not, so only pairs of wrong
    # answers need a comparison. This also keeps reference_agrees consistent
    # with the per-attempt correctness.
    if existing.correct or new.correct:
        return existing.correct and new.correct
    return equal(existing.representative, new.representative)


def timed_out_verdict(reference: str, attempts: Sequence[str]) -> Verdict:
    """The verdict for a problem the judge gave up on (regex work only)."""
    del reference  # comparing against it is what ran too long
    extracted = tuple(extract_final(a) for a in attempts)
    by_norm: dict[str, _AnswerClass] = {}
    for ans in extracted:
        key = None if ans is None else normalize_answer(ans)
        if ans is not None and key:
            by_norm.setdefault(key, _AnswerClass(ans, 0, correct=False)).count += 1
    best = max(by_norm.values(), key=lambda m: m.count, default=None)
    return Verdict(
        correct=(False,) * len(extracted),
        extracted=extracted,
        majority_answer=None if best is None else best.representative,
        majority_share=0.0 if best is None else best.count / len(attempts),
        reference_agrees=None,
        timed_out=True,
    )


# --- worker pool ----------------------------------------------------------------


class _DropTimeoutDisabledWarning(logging.Filter):
    # math-verify warns once per process that its timeout is off; in our
    # workers that is by design (the pool enforces the limit), and every
    # restarted worker would print it again.
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timeout is disabled")


# sympy pays ~0.1 s the first time it meets each kind of expression (numbers,
# symbols, radicals, equations); measured, a cold worker took ~0.5 s on its first
# problem and ~0.06 s after.
_WARMUP_PAIRS = (
    ("1/2", "0.5"),
    ("x+1", "1+x"),
    (r"\sqrt{2}/2", r"\frac{1}{\sqrt{2}}"),
    ("x=2", "2"),
)


def _init_worker() -> None:
    for name in ("math_verify.parser", "math_verify.grader"):
        logging.getLogger(name).addFilter(_DropTimeoutDisabledWarning())
    # Pay sympy's first-use costs at start-up, not against a problem's limit.
    for reference, predicted in _WARMUP_PAIRS:
        answers_equal(reference, predicted)


class AnswerJudge:
    """Judges problems in worker processes with a per-problem time limit
    (pipeline/runtime/timed_pool.py: timeouts, restarts, a crash charged only to its culprit).

    Use as a context manager (or call ``close``). ``judge_many`` may be called from any
    thread; calls are serialised, because a restart after a timeout kills every worker and
    would break another caller's in-flight work. The pool is started once and reused.
    """

    def __init__(self, max_workers: int = 2, timeout_s: float = 10.0, *, startup_timeout_s: float = 120.0) -> None:
        # math_verify and this module are preloaded into the forkserver, so a restarted
        # worker does not pay the ~1 s sympy import.
        self.pool: TimedPool[Verdict] = TimedPool(
            judge, max_workers=max_workers, timeout_s=timeout_s, startup_timeout_s=startup_timeout_s,
            initializer=_init_worker, preload=("math_verify", __name__), name="answer-judge")
        self.max_workers = self.pool.max_workers
        self.timeout_s = self.pool.timeout_s
        self.startup_timeout_s = self.pool.startup_timeout_s

    @property
    def restarts(self) -> int:
        """Pool restarts after timeouts or crashes, for monitoring."""
        return self.pool.restarts

    @property
    def judge_fn(self) -> Callable[[str, tuple[str, ...]], Verdict]:
        """What a worker runs per problem: a module-level function (workers import it by name)."""
        return self.pool.fn

    @judge_fn.setter
    def judge_fn(self, fn: Callable[[str, tuple[str, ...]], Verdict]) -> None:
        self.pool.fn = fn

    @property
    def _executor(self):  # the live executor (tests kill its workers)
        return self.pool.executor

    def __enter__(self) -> AnswerJudge:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def start(self) -> None:
        """Start and warm the worker pool if it is not running."""
        self.pool.start()

    def close(self) -> None:
        """Stop the workers (killing any still busy)."""
        self.pool.close()

    def judge_many(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[Verdict]:
        """Judge ``(reference, attempts)`` items, in order, each within ``timeout_s``.

        A problem that runs past the limit gets ``timed_out_verdict`` and the pool is
        restarted; problems that were in flight beside it are resubmitted, not penalised.
        A worker crash names no culprit, so every problem in flight at the crash runs again
        alone: a problem is charged (timed out) only for a crash while it ran alone, after
        an earlier crash too; one merely beside the culprit gets its real verdict.
        """
        work = [(reference, tuple(attempts)) for reference, attempts in items]
        # Problems decided without math-verify (regex work, bounded) are judged here: a
        # round trip to a worker costs more than the judging itself, and on a loaded
        # machine far more (measured: bench/ceiling.py).
        results: list[Verdict | None] = [judge_fast(*item) for item in work]
        todo = [i for i, r in enumerate(results) if r is None]
        if todo or self.pool.executor is None or getattr(self.pool.executor, "_broken", False):
            # Also with nothing to send: the pool starts (or restarts after an idle death) now.
            judged = self.pool.run_many([work[i] for i in todo], timed_out_verdict)
            for i, v in zip(todo, judged, strict=True):
                results[i] = v
        return results  # type: ignore[return-value]  # every item has its verdict
