"""Repairing a reference whose one slip is its last computation.

The embedded model's most common fault is a wrong product or quotient in the solution's
last step ("4 times 22 is 12. The answer is 12."). The problem is often sound: its words
and the computation the solution writes out are right, only the result is not. Rejecting
it throws away the tokens that wrote it; the exact value of the computation the solution
itself states is known (pipeline/domains/math/arith.py), so the result can be written in
its place.

`repair_reference` does that, and only where nothing else is changed by it:

- exactly one claim of the solution is false, and it is the solution's last claim, so no
  later step used the wrong result;
- its left side computes and its right side is one bare number, written once in the
  solution's body, and the final answer is that number (the slip carried to the answer);
- the exact value is not negative and has a short decimal (a count or a price, not 8/3).

The repaired solution says the exact value where the wrong one stood, in the body and in
its final-answer phrase, and the answer says it too. The caller runs every check again on
the repaired reference: a repair makes a candidate valid only when all of them pass (a
sum where the question asks for an average stays a wrong answer, whatever its arithmetic).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from pipeline.domains.math.arith import claims, number_value
from pipeline.domains.math.validity import solution_body

# A number as the model writes it: "12", "1,200", "3.60", ".5".
_NUMBER_RE = re.compile(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,]*\d)|(?<![\w.])\d*\.?\d+(?![\d])")
_DECIMALS = 4  # at most this many decimals in a repaired value


@dataclass(frozen=True)
class Repaired:
    solution: str
    answer: str
    note: str  # what was changed, for the row's `repair` column


def _value(text: str) -> Fraction | None:
    try:
        return Fraction(text.replace(",", ""))
    except (ValueError, ZeroDivisionError):
        return None


def _decimal(x: Fraction) -> str | None:
    """`x` as a short decimal ("88", "6.6", "2.56"); None when it needs more digits."""
    scaled = x * 10**_DECIMALS
    if scaled.denominator != 1:
        return None
    if x.denominator == 1:
        return str(x.numerator)
    return f"{float(x):.{_DECIMALS}f}".rstrip("0").rstrip(".")


def _replace_values(text: str, old: Fraction, new: str) -> tuple[str, int]:
    """Every number in `text` whose value is `old` written as `new`; with the count."""
    count = 0

    def sub(m: re.Match[str]) -> str:
        nonlocal count
        if _value(m.group(0)) == old:
            count += 1
            return new
        return m.group(0)

    return _NUMBER_RE.sub(sub, text), count


def repair_reference(problem: str, solution: str, answer: str) -> Repaired | None:
    """The reference with its last computation's result corrected (module doc), or None
    when the solution's slips are not of that one kind."""
    found = claims(solution)
    false = [c for c in found if not c.holds()]
    if len(false) != 1 or found[-1] is not false[0]:
        return None
    claim = false[0]
    left, right = claim.left, claim.right
    if not left.computes or right.computes or left.unit or left.value is None or right.value is None:
        return None
    if len(right.literals) != 1 or left.value < 0:
        return None
    exact = _decimal(left.value)
    if exact is None:
        return None
    wrong = right.value
    cut = len(solution_body(solution))  # the body ends where the final-answer phrase starts
    body, in_body = _replace_values(solution[:cut], wrong, exact)
    if in_body != 1:  # written more than once: which one was the slip is unclear
        return None
    tail, _ = _replace_values(solution[cut:], wrong, exact)
    new_answer, in_answer = _replace_values(answer, wrong, exact)
    if in_answer != 1 or number_value(answer) != wrong:
        return None
    note = f"{claim.text} was false: {answer.strip()} -> {new_answer.strip()} in the solution and the answer"
    return Repaired(body + tail, new_answer, note)
