"""Deterministic validity checks of a generated problem and its reference solution.

A generator's own arithmetic is often wrong ("5 times 8 is 25"), and a wrong reference
makes every correct solver attempt count as a failure, so such a problem looks hard and
scores the highest quality. These checks read the problem, the reference solution and
the final answer, and need no model: they run as soon as a mutation is parsed, before
any solve is sent.

Each check is a pure function `(problem, solution, answer) -> str | None`: None when it
passes (or has nothing to check), else the reason, naming the claim or the numbers. The
checks (their names are what rows record):

- `arithmetic`: every explicit claim of the solution (pipeline/domains/math/arith.py) holds, exactly,
  and so do its lists of multiples or factors and its claims in words ("the least common
  multiple of 4, 6 and 8 is 12", "12 less than 10 is 6", "each meter is 20 centimeters");
- `final_answer`: a solution that ends in a computation ends in the final answer;
- `problem_expression`: a problem that is one computation ("What is 5 times 8?",
  "Compute 3 * 8.") has the answer that computation gives;
- `equation`: an answer substituted into the problem's equation in one variable
  ("Solve for x: x + 7 = 28.") satisfies it;
- `grounding`: the numbers the solution computes from come from the problem, from its
  own earlier results, or from `constants_for(problem)`; a problem that gives no number at all while
  its solution computes one is ill-posed, and so is an answer that only restates one of
  the problem's numbers with nothing computed.
- `unused_data`: the solution uses every number the problem gives (as written or
  converted to another unit); "a rectangle 10 cm by 8 cm" solved as "10 times 10" left
  the 8 out, and so did a solution that answers only part of the question;
- `dimensions`: the last computation has the dimension the question asks for (a volume
  is no product of two lengths, a perimeter no product of two lengths, a length no area
  divided by 2), read from the units of its operands (pipeline/domains/math/dimensions.py);
- `shape`: a square is given no two different side lengths ("a square 20 m long and 10 m
  wide", "a square garden 10 m by 2 m");
- `closed_form`: a question of a form whose answer follows from its words alone (a
  remainder, a least common multiple, orders of n people in a line, a rectangle's or
  triangle's area, a unit conversion, ...: pipeline/domains/math/forms.py) has that answer, whatever
  the solution computed;
- `asks`: the problem asks something (a question or an instruction; "2 * 8 is 16." asks
  nothing);
- `well_posed`: the problem's data can answer its question (money asked and none given, a
  ratio with no amount, a volume from two lengths, a rectangle from one number, a unit
  converted to itself), and it states no computation of its own ("What is the value of
  10 + 20 = 30?") and no false one.

`check_reference` runs them all and returns a `Validity`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from fractions import Fraction

from pipeline.domains.base import Validity, Verdict
from pipeline.domains.math.arith import (
    MAX_CHARS,
    MAX_DIGITS,
    UNITS,
    Claim,
    chains,
    claims,
    evaluate,
    number_value,
    numbers,
    tokenize,
)
from pipeline.domains.math.dimensions import POWER_NAMES, asked_power, final_power, quantity_powers, question
from pipeline.domains.math.forms import RECT_RE, agrees, expected

# Numbers a solution may use that no problem states. 0, 1 and 2 always; the others only
# where the problem's words call for them (60 where it speaks of minutes or hours, 100 of
# percents, cents or metres, ...): an unconditional 100 or 10 let "1,000 - 100" and
# "13 times 10" through on problems that gave neither.
CONSTANTS = frozenset({Fraction(0), Fraction(1), Fraction(2)})
_CONTEXT_CONSTANTS: tuple[tuple[re.Pattern[str], tuple[Fraction, ...]], ...] = tuple(
    (re.compile(words, re.I), tuple(Fraction(v) for v in values)) for words, values in (
        (r"\bten|dime|decade|digit|centim|millim|\bcm\b|\bmm\b|%|percent", (10,)),
        (r"dozen|month|year|inch|foot|feet|hour|clock", (12,)),
        (r"\bday|hour", (24,)),
        (r"minute|hour|second|speed|mph|km/h|per hour", (60, 3600)),
        (r"%|percent|cent|centim|met(?:er|re)|century|dollar|\$", (100, Fraction(1, 100))),
        (r"kilo|milli|thousand|gram|lit(?:er|re)|met(?:er|re)|\bkg\b|\bkm\b|\bml\b", (1000,)),
        (r"week|\bday", (7,)),
        (r"year|\bday", (365,)),
        (r"week|year", (52,)),
        (r"half|halves", (Fraction(1, 2),)),
        (r"square", (4,)),  # its sides (2 for a rectangle is always there)
        (r"triangle|triangular", (3,)),
        (r"pentagon", (5,)),
        (r"hexagon", (6,)),
        (r"octagon", (8,)),
    ))


def constants_for(problem: str) -> frozenset[Fraction]:
    """The constants a solution of `problem` may use without the problem stating them."""
    extra = {v for pattern, values in _CONTEXT_CONSTANTS if pattern.search(problem) for v in values}
    return CONSTANTS | extra


_WORD_NUMBERS = {"half": (2, Fraction(1, 2)), "double": (2,), "twice": (2,), "triple": (3,), "third": (3,),
                 "quarter": (4, Fraction(1, 4)), "pair": (2,), "dozen": (12,), "percent": (100,)}

_COMPUTATION_RE = re.compile(
    r"^\s*(?:what\s+is|what's|compute|calculate|evaluate|find\s+the\s+value\s+of|find|simplify|work\s+out)"
    r"\s*:?\s+(?P<expr>[^?!]*?)\s*[?.!]*\s*$", re.I)
_ANSWER_PHRASE_RE = re.compile(r"(?:the\s+)?(?:final\s+)?answer\s*(?:is|:)", re.I)
_VARIABLE_ANSWER_RE = re.compile(r"^\s*[a-z]\s*=\s*", re.I)


def _answer_value(answer: str) -> Fraction | None:
    return number_value(_VARIABLE_ANSWER_RE.sub("", answer))


def _same(value: Fraction, answer: Fraction, answer_text: str) -> bool:
    # "25%" is 1/4 to the parser; a solution may end in 25 (percent points) or 0.25.
    return value == answer or ("%" in answer_text and value == answer * 100)


def _fmt(x: Fraction) -> str:
    if x.denominator == 1:
        return str(x.numerator)
    decimal = float(x)
    return f"{x.numerator}/{x.denominator}" if abs(decimal - round(decimal, 6)) > 1e-12 else f"{decimal:g}"


def solution_body(solution: str) -> str:
    """The solution without its final-answer phrase and what follows it."""
    starts = [m.start() for m in _ANSWER_PHRASE_RE.finditer(solution)]
    return solution[: starts[-1]] if starts else solution


def check_arithmetic(problem: str, solution: str, answer: str) -> str | None:
    false = [f"{c.text} is false ({c.left.text} = {_fmt(c.left.value)})" for c in claims(solution) if not c.holds()]
    false += list_claims(problem, solution)
    return "; ".join(false[:3]) if false else None


# Claims about lists, in the phrasing the bundled seeds use and the generator copies:
# "Multiples of 15: 15, 30.", "Factors of 12: 1, 2, 3, 4, 6, 12.", "The first number in
# both lists is 30.", "The denominators are both 5".
_LIST_RE = re.compile(
    r"\b(multiples|factors|divisors)\s+of\s+(\d{1,9})\s*(?:are|:)\s*((?:\d{1,9}\s*,\s*){0,30}\d{1,9})", re.I)
_BOTH_LISTS_RE = re.compile(r"\b(?:first|smallest|least|largest|greatest)\s+number\s+(?:in|on)\s+both\s+lists\s+is\s+"
                            r"(\d{1,9})\b", re.I)
_DENOMINATORS_RE = re.compile(r"\bdenominators\s+are\s+(?:both|all)\s+(\d{1,9})(?![\d/])", re.I)


def list_claims(problem: str, solution: str) -> list[str]:
    """The false claims of `solution` about lists of multiples or factors, and about the
    denominators of the problem's fractions."""
    false, lists = [], []
    for m in _LIST_RE.finditer(solution[:MAX_CHARS]):
        kind, n = m.group(1).lower(), int(m.group(2))
        items = [int(x) for x in re.findall(r"\d+", m.group(3))]
        lists.append(set(items))
        wrong = [x for x in items if (x % n if kind == "multiples" else not x or n % x)] if n else []
        if wrong:
            false.append(f"{kind} of {n}: {m.group(3)} lists {wrong[0]}, which is not a {kind[:-1]} of {n}")
    both = _BOTH_LISTS_RE.search(solution[:MAX_CHARS])
    if both and len(lists) >= 2 and not all(int(both.group(1)) in found for found in lists[-2:]):
        false.append(f"{both.group(1)} is not in both lists")
    for m in _DENOMINATORS_RE.finditer(solution[:MAX_CHARS]):
        denominators = [int(b) for _, b in _FRACTION_RE.findall(problem[:MAX_CHARS])]
        if len(denominators) >= 2 and any(d != int(m.group(1)) for d in denominators):
            shown = " and ".join(str(d) for d in denominators[:4])
            false.append(f"the denominators are {shown}, not both {m.group(1)}")
    return false + word_claims(problem, solution)


# Claims written in words that the expression parser does not read: "the least common
# multiple of 4, 6 and 8 is 12", "12 less than 10 is 6", "each meter is 20 centimeters".
_COMMON_RE = re.compile(
    r"\b(?:(least|lowest|smallest)\s+common\s+multiple|(greatest|highest|largest)\s+common\s+(?:factor|divisor))\s+"
    r"of\s+((?:\d{1,9}\s*,\s*){0,8}\d{1,9}\s*,?\s+and\s+\d{1,9})\s+(?:is|=)\s+(\d{1,12})(?![\d.,]\d)", re.I)
_LESS_MORE_RE = re.compile(r"\b(\d{1,9})\s+(less|more|fewer)\s+than\s+(\d{1,9})\s+is\s+(-?\d{1,12})(?![\d.,]\d)", re.I)
_UNIT_FACT_RE = re.compile(
    r"\b(?:each|one|a|1)\s+([a-z]{1,12})\s+(?:is|equals|has)\s+(\d{1,9}(?:\.\d{1,6})?)\s+([a-z]{1,12})\b", re.I)
# A problem that sets its own scale ("1 centimeter stands for 3 kilometers") makes "each
# centimeter is 3 kilometers" true there.
_SCALE_RE = re.compile(r"\d\s*[a-z]{1,12}\s+(?:stands?\s+for|represents?|=|on\s+the\s+map)\s+\d|\bscale\b", re.I)


def word_claims(problem: str, solution: str) -> list[str]:
    """The false claims of `solution` written in words (see above)."""
    text, false = solution[:MAX_CHARS], []
    for m in _COMMON_RE.finditer(text):
        xs = [int(x) for x in re.findall(r"\d+", m.group(3))]
        if 0 in xs:
            continue
        value = math.lcm(*xs) if m.group(1) else math.gcd(*xs)
        if value != int(m.group(4)):
            false.append(f"the {'least common multiple' if m.group(1) else 'greatest common factor'} of {m.group(3)} "
                         f"is {value}, not {m.group(4)}")
    for m in _LESS_MORE_RE.finditer(text):
        a, b, c = int(m.group(1)), int(m.group(3)), int(m.group(4))
        value = b - a if m.group(2).lower() != "more" else b + a
        if value != c:
            false.append(f"{m.group(1)} {m.group(2)} than {m.group(3)} is {value}, not {m.group(4)}")
    if not _SCALE_RE.search(problem):
        for m in _UNIT_FACT_RE.finditer(text):
            a, b = UNITS.get(m.group(1).lower()), UNITS.get(m.group(3).lower())
            if a is None or b is None or a[0] != b[0] or m.group(1).lower() == m.group(3).lower():
                continue
            value, said = a[1] / b[1], number_value(m.group(2))
            # a decimal holds when the factor rounds to it ("1 foot is 0.3 meters")
            decimals = len(m.group(2).partition(".")[2])
            rounded = decimals and abs(said - value) <= Fraction(1, 2 * 10**decimals) if said is not None else False
            if said is not None and said != value and not rounded:
                false.append(f"1 {m.group(1)} is {_fmt(value)} {m.group(3)}, not {m.group(2)}")
    return false


def check_final_answer(problem: str, solution: str, answer: str) -> str | None:
    value = _answer_value(answer)
    if value is None:
        return None
    body = solution_body(solution)
    found = claims(body)
    if not found:
        return None
    last: Claim = found[-1]
    # Only when the computation is where the solution ends: no number after it ("... = 3.
    # That gives 3/3." ends in 3/3, not in 3).
    if any(t.kind == "num" for t in tokenize(body)[last.right.end:]):
        return None
    result = last.right.value
    if _same(result, value, answer) or _same(last.left.value, value, answer):
        return None
    return f"the solution ends in {_fmt(result)} ({last.text}) but the answer is {answer}"


def check_problem_expression(problem: str, solution: str, answer: str) -> str | None:
    m = _COMPUTATION_RE.match(problem.strip())
    if m is None:
        # "40/4 = 10. Find 3/4 of 40.": a last sentence that is one computation of numbers
        # only (no words: "What is 5 times that number?" refers to earlier text).
        m = _COMPUTATION_RE.match(question(problem).strip())
        if m is None or any(t.kind not in ("num", "op") for t in tokenize(m.group("expr"))):
            return None
    expected = evaluate(m.group("expr"))
    value = _answer_value(answer)
    if expected is None or value is None or not chains(f"{m.group('expr')} = 0") or _same(expected, value, answer):
        return None
    side = chains(f"{m.group('expr')} = 0")[0][0]
    if not side.computes:
        return None
    return f"the problem asks for {side.text} = {_fmt(expected)} but the answer is {answer}"


_SOLVE_FOR_RE = re.compile(r"\b(?:solve|find)\s+(?:for\s+)?([a-z])\s*(?:[:.,]|when|if|in|$)", re.I)


def check_equation(problem: str, solution: str, answer: str) -> str | None:
    if (m := _SOLVE_FOR_RE.search(problem)) and m.group(1).lower() not in ("a", "i"):
        rest = problem[:m.start()] + problem[m.end():]
        if "=" in rest and not re.search(rf"(?<![A-Za-z]){m.group(1)}(?![A-Za-z])", rest):
            # "Solve for y: 12 = 9." has no y to solve for.
            return f"the problem asks for {m.group(1)}, but its equation has no {m.group(1)}"
    value = _answer_value(answer)
    if value is None:
        return None
    for chain in chains(problem):
        for a, b in zip(chain, chain[1:], strict=False):
            names = set(a.variables) | set(b.variables)
            if len(names) != 1 or (a.value is not None and b.value is not None):
                continue
            name = names.pop()
            bound = chains(problem, {name: value})
            for bchain in bound:
                for ba, bb in zip(bchain, bchain[1:], strict=False):
                    if ba.start == a.start and bb.start == b.start and ba.value is not None \
                            and bb.value is not None and ba.value != bb.value:
                        return (f"{name} = {answer} does not satisfy {a.text} = {b.text} "
                                f"({_fmt(ba.value)} against {_fmt(bb.value)})")
    return None


def problem_numbers(problem: str) -> set[Fraction]:
    """The numbers a problem gives: its literals and percents, and the numbers words such
    as "half" or "twice" imply."""
    given = set(numbers(problem))
    low = problem.lower()
    for word, values in _WORD_NUMBERS.items():
        if re.search(rf"\b{word}", low):
            given.update(Fraction(v) for v in values)
    return given


def factors_for(problem: str) -> frozenset[Fraction]:
    """Ratios between units of the dimensions the problem speaks of (100 cm in a m, 60 s
    in a minute): a given number converted to another unit is still given ("4 meters" ->
    400 centimeters). Only the problem's dimensions: every factor of every dimension would
    ground almost any number (1,000 / 10)."""
    words = {w.lower() for w in re.findall(r"[A-Za-z]+", problem)}
    dims = {UNITS[w][0] for w in words if w in UNITS and len(w) > 1}
    sizes: dict[str, set[Fraction]] = {}
    for dim, size in UNITS.values():
        if dim in dims:
            sizes.setdefault(dim, set()).add(size)
    return frozenset(a / b for group in sizes.values() for a in group for b in group if a > b)


def check_grounding(problem: str, solution: str, answer: str) -> str | None:
    given = problem_numbers(problem)
    factors = factors_for(problem)
    constants = constants_for(problem)
    converted = {g * f for g in given for f in factors} | {g / f for g in given for f in factors}
    allowed = given | constants | converted | derived_numbers(problem, given)
    allowed |= _parts(allowed)
    foreign: list[Fraction] = []
    computes = False
    for chain in chains(solution_body(solution)):
        # A side that restates the value of a grounded side of its chain ("2/3 = 10/15",
        # "9 / 45 = 1/5") grounds its own numbers: they are that value written otherwise.
        grounded = {side.value for side in chain if side.value is not None and side.computes
                    and all(x in allowed for x in side.literals)}
        for side in chain:
            if side.computes:
                computes = True
                if side.value in grounded or (side.value in allowed and side.value not in CONSTANTS):
                    # it restates a given number or an earlier result (not 0, 1 or 2,
                    # which "14 - 12 = 2" would reach from anywhere)
                    continue
                foreign += [x for x in side.literals if x not in allowed and x not in foreign]
        for side in chain:  # a chain's results may be used by what follows
            if side.value is not None:
                allowed.add(side.value)
                allowed |= _parts({side.value})
            allowed.update(side.literals)
    if not given and computes:
        return "ill-posed: the problem gives no numbers but the solution computes with some"
    value = _answer_value(answer)
    if not given and value is not None and value not in constants:
        return f"ill-posed: the problem gives no numbers but the answer is {answer}"
    computing_claims = [c for c in claims(solution_body(solution)) if c.left.computes or c.right.computes
                        or c.left.value != c.right.value or c.left.unit != c.right.unit]
    if value is not None and value in given and not computing_claims and not _PICKS_RE.search(problem) \
            and not any(t.kind == "var" and problem[t.pos - 1 : t.pos] not in ("'", "’") for t in tokenize(problem)):
        # ("110 miles = 110 miles" restates, it computes nothing; the "s" of "the bus's" is
        # no unknown.)
        # "There are 14 red beads and 14 blue beads. How many of each?" -> 14; "1 teacher
        # for every 6 students, 4 teachers: how many students?" -> "Each teacher has 6."
        return f"ill-posed: the answer {answer} restates a number the problem gives, and nothing is computed"
    nowhere = _answer_from_nowhere(problem, solution_body(solution), answer, value)
    if nowhere is not None:
        return nowhere
    doubled = _self_combined(problem, solution_body(solution))
    if doubled is not None:
        return (f"ill-posed: the answer comes from {doubled}, the problem's one {doubled.split()[0]} "
                "combined with itself")
    cancel = None if _COMPUTATION_RE.match(problem.strip()) else _self_cancelling(solution_body(solution))
    if cancel is not None:  # ("Find the value of 10 divided by 10." asks for exactly that)
        return f"ill-posed: the result comes from {cancel}, a number cancelling itself"
    if foreign:
        shown = ", ".join(_fmt(x) for x in foreign[:4])
        return f"ill-posed: the solution computes with {shown}, which the problem never gives"
    return None


# Questions whose answer may be one of the given numbers ("the least common multiple of 3
# and 9" is 9, "which is larger").
_PICKS_RE = re.compile(
    r"common\s+(?:multiple|factor|divisor)|\b(?:gcd|lcm|gcf|which|largest|smallest|greatest|least)\b", re.I)
_COUNTING_RE = re.compile(r"\b(?:ways?|orders?|arrange\w*|codes?|handshakes?|choose|chosen|permutations?|"
                          r"combinations?|line|digits?|teams?|committees?|pairs?)\b", re.I)
_AVERAGE_RE = re.compile(r"\b(?:average|mean)\b", re.I)
_DIVIDES_RE = re.compile(r"\b(?:remainder|left\s+over|multiples?|divisible|divided|shared\s+equally|as\s+many\s+as)\b",
                         re.I)
_MAX_DERIVED_FROM = 24
_TIMES_AS_RE = re.compile(r"\btimes\s+as\b", re.I)
_RATIO_RE = re.compile(r"(?<!\d)(\d{1,12})\s*:\s*(\d{1,12})(?:\s*:\s*(\d{1,12}))?")


def derived_numbers(problem: str, given: set[Fraction]) -> set[Fraction]:
    """Numbers a correct solution derives from the problem's without a stated computation:
    n - 1, n - 2, ... in counting (8 digits, then 7 for the second), how many numbers an
    average is over, the parts of a ratio 2:5 (7 in all, 3 more), and whole quotients
    (34 / 5 -> 6) where the problem speaks of remainders or multiples."""
    out: set[Fraction] = set()
    if len(given) > _MAX_DERIVED_FROM:  # pairs of many numbers would ground anything (and cost time)
        return out
    ints = sorted(int(g) for g in given if g.denominator == 1 and 0 < g <= 10**6)
    if _COUNTING_RE.search(problem):
        out |= {Fraction(k) for n in ints if n <= 12 for k in range(1, n)}
    if _AVERAGE_RE.search(problem):
        out |= {Fraction(k) for k in range(2, len(numbers(problem)) + 2)}
    for m in _RATIO_RE.finditer(problem):
        parts = [int(x) for x in m.groups() if x]
        out |= {Fraction(sum(parts))} | {Fraction(abs(a - b)) for a in parts for b in parts if a != b}
        out |= {Fraction(a + b) for a in parts for b in parts if a != b}
    if _TIMES_AS_RE.search(problem):  # "4 times as old as Sam, together 50": 4 + 1 = 5 parts
        out |= {g + d for g in given for d in (1, -1)}
    if any(t.kind == "var" for t in tokenize(problem)):  # "8x + 13 = 3x + 73": 8 - 3 = 5
        out |= {a - b for a in given for b in given if a > b} | {a + b for a in given for b in given}
    if _DIVIDES_RE.search(problem):
        out |= {Fraction(a // b + d) for a in ints for b in ints if a > b > 1 for d in (0, 1)}
    return out


def _parts(values: set[Fraction]) -> set[Fraction]:
    """The numerators and denominators of fractions: 1/5 of an hour is "1/5 of 60"."""
    return {Fraction(v.numerator) for v in values if v.denominator != 1} | \
        {Fraction(v.denominator) for v in values if v.denominator != 1}


_FRACTION_RE = re.compile(r"(?<!\d)(\d{1,12})\s*/\s*(\d{1,12})(?!\d)")


def _answer_from_nowhere(problem: str, body: str, answer: str, value: Fraction | None) -> str | None:
    """A numeric answer that neither the problem, nor any number or result of a solution
    that has numbers, contains ("1 ticket and 2 tickets cost $5. The answer is 15.")."""
    written = set(numbers(body))
    if value is None or not written:
        return None
    results = {side.value for chain in chains(body) for side in chain if side.value is not None}
    results |= {Fraction(int(a), int(b)) for a, b in _FRACTION_RE.findall(body[:MAX_CHARS]) if int(b)}
    known = written | results | set(numbers(problem)) | _parts(written | results)
    if any(_same(v, value, answer) or v == value for v in known):
        return None
    return f"ill-posed: the answer {answer} appears nowhere in the solution, which never computes it"


# Words that make a number's use twice natural ("a square of side 5: 5 x 5", "each of the 3
# teams has 3 players", "twice").
# Words that call for a number twice. "square" as a shape, not as a unit: "500 yards long.
# What is its area in square yards?" -> "500 x 500" squares a length no shape calls square.
_REPEAT_RE = re.compile(r"\b(?:squares?(?!\s+(?:units?|feet|foot|yards?|met(?:er|re)s?|inch(?:es)?|miles?|"
                        r"centimet(?:er|re)s?|millimet(?:er|re)s?|kilomet(?:er|re)s?|cm|mm|m|km|in|ft|yd)\b)|"
                        r"squared|cubes?|cubed|twice|double[sd]?|each|every|per|both|same|times\s+as|again)\b", re.I)


def _self_combined(problem: str, body: str) -> str | None:
    """The solution's one computation when it is "a + a" or "a x a" of a number the problem
    states once, with nothing calling for it twice ("A bag contains 3 boxes. How many
    boxes?" -> "3 times 3 = 9"; "A car has 10 seats. How many cars?" -> "10 + 10")."""
    found = claims(body)
    if len(found) != 1:  # after other steps, a result may equal a given number ("6 / 3 = 2; 2 x 2")
        return None
    side = found[0].left if found[0].left.computes else found[0].right
    lits = side.literals
    if len(lits) != 2 or lits[0] != lits[1] or lits[0] in constants_for(problem) or _REPEAT_RE.search(problem):
        return None
    if not re.fullmatch(r"[\d.,]+[+*][\d.,]+", re.sub(r"[A-Za-z\s$]", "", side.text)):
        return None
    return side.text if numbers(problem).count(lits[0]) == 1 else None


def _self_cancelling(body: str) -> str | None:
    """The solution's last computation when it is "a - a" or "a / a": a problem whose
    answer comes from a number cancelling itself ("30 - 30 = 0", "450 / 450 = 1") asks
    for nothing its data determine."""
    found = claims(body)
    if not found:
        return None
    side = found[-1].left if found[-1].left.computes else found[-1].right
    lits = side.literals
    text = re.sub(r"[A-Za-z\s]", "", side.text)  # "15 minutes - 15" cancels as "15 - 15" does
    if len(lits) == 2 and lits[0] == lits[1] and side.value in (0, 1) and re.fullmatch(r"[\d.,]+[-/][\d.,]+", text):
        return side.text
    return None


# Numbers written in digits (number words are as often phrasing, "two-digit codes", "no
# digit used twice", as data), with whether a percent sign or word follows.
_DIGITS_RE = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?!\w)(\s*%|\s*percent)?", re.I)


# A number that names a thing is no datum: "Crate 3 holds ...", "Room 12", "#4", "No. 7".
_LABEL_BEFORE_RE = re.compile(r"(?:\b[A-Z][a-z]*|#|\bNo\.)\s*$")


def _named_factors(text: str) -> set[Fraction]:
    """Ratios between the units `text` names ("4 meters" and "10 centimeters": 100), not
    every unit of their dimension: 3 feet and a 30 would pass as 3 * 10 mm per cm."""
    words = {w.lower() for w in re.findall(r"[A-Za-z]+", text)}
    sizes: dict[str, set[Fraction]] = {}
    for w in words:
        if w in UNITS and len(w) > 1:
            dim, size = UNITS[w]
            sizes.setdefault(dim, set()).add(size)
    return {a / b for group in sizes.values() for a in group for b in group if a > b}


def check_unused_data(problem: str, solution: str, answer: str) -> str | None:
    # 0 and 1 are often words of the text, not data ("one shirt and one pair of pants").
    # Digits only: number words are as often phrasing ("two-digit codes", "Two of them")
    # as data; 0 and 1 are often words of the text too ("1 to 8", "one pair of pants").
    given: dict[Fraction, bool] = {}  # value -> written as a percent
    for m in _DIGITS_RE.finditer(problem[:MAX_CHARS]):
        if len(m.group(1)) > MAX_DIGITS or _LABEL_BEFORE_RE.search(problem[max(0, m.start() - 24):m.start()]):
            continue
        value = Fraction(m.group(1).replace(",", ""))
        if value not in (0, 1):
            given[value] = given.get(value, False) or bool(m.group(2))
    if not given or _COMPUTATION_RE.match(problem.strip()) or \
            any(t.kind == "var" or t.text == "=" for t in tokenize(problem)):
        # An equation's solution needs not restate its right side ("5x + 18 = 58": "5x = 40").
        return None
    if not claims(solution_body(solution)):
        return None  # a solution that shows no computation says nothing of what it used
    used = set(numbers(solution)) | set(numbers(answer))
    factors = _named_factors(f"{problem} {solution}")
    unused = [g for g, percent in given.items() if g not in used
              and not any(g * f in used or g / f in used for f in factors) and not (percent and g / 100 in used)]
    if not unused:
        return None
    shown = ", ".join(_fmt(x) for x in unused[:4])
    return f"the problem gives {shown}, which the solution never uses"


_WORDED_ANSWER_RE = re.compile(
    r"^\s*\$?\d[\d,]{0,20}(?:\.\d{1,12})?(?:\s{0,2}/\s{0,2}\d{1,12})?(?:\s+[a-z]{1,20}){1,4}\s*\.?\s*$", re.I)


def check_dimensions(problem: str, solution: str, answer: str) -> str | None:
    asked = asked_power(problem)
    if asked is None:
        return None
    value = _answer_value(answer)
    if value is not None and _WORDED_ANSWER_RE.match(answer):
        # "400 feet" for an area asked in square feet: the answer's own unit is wrong
        power = quantity_powers(answer).get(value)
        if power is not None and power != asked:
            got = POWER_NAMES.get(power, f"length^{power}")
            return f"the question asks for {POWER_NAMES[asked]} but the answer {answer} is {got}"
    found = final_power(problem, solution_body(solution), constants_for(problem))
    if found is None or found[1] == asked:
        return None
    text, power = found
    got = POWER_NAMES.get(power, f"length^{power}")
    return f"the question asks for {POWER_NAMES[asked]} but {text} gives {got}"


_EQUAL_SIDES_RE = re.compile(r"\b(?:all|each|every|sides)\b", re.I)  # "a rectangle with sides 2 m long": a square
_SQUARE_SHAPE_RE = re.compile(r"\bsquare\b(?!\s+(?:units?|feet|foot|meters?|metres?|inch(?:es)?|yards?|miles?|"
                              r"centimet(?:er|re)s?|millimet(?:er|re)s?|kilomet(?:er|re)s?|cm|mm|km|m|ft|in|yd|root)\b)",
                              re.I)
_SIDE_RE = re.compile(r"(\d[\d,.]*)\s*[a-z]*\s*(?:long|wide|tall|high|in\s+length|in\s+width)\b", re.I)
_BY_RE = re.compile(r"(\d[\d,.]*)\s*[a-z]*\s+by\s+(\d[\d,.]*)", re.I)


def check_shape(problem: str, solution: str, answer: str) -> str | None:
    if not _SQUARE_SHAPE_RE.search(problem):
        return None
    lengths = {v: p for v, p in quantity_powers(problem).items() if p == 1}
    sides = []
    found = [m.group(1) for m in _SIDE_RE.finditer(problem)]
    found += [g for m in _BY_RE.finditer(problem) for g in m.groups()]  # "a square garden 10 m by 2 m"
    for text in found:
        value = number_value(text.rstrip(".,"))
        if value is not None and value in lengths and value not in sides:
            sides.append(value)
    if len(sides) < 2:
        return None
    return f"ill-posed: a square with sides {_fmt(sides[0])} and {_fmt(sides[1])}"


def check_closed_form(problem: str, solution: str, answer: str) -> str | None:
    value = _answer_value(answer)
    if value is None:
        return None
    for form in expected(problem):
        if form.value is None:
            return f"the question is a {form.name}, and no such numbers exist"
        if not _same(form.value, value, answer) and not agrees(form, value):
            return f"the question is a {form.name}, which gives {_fmt(form.value)}, but the answer is {answer}"
    return None


# -- well-posedness: a question the problem's data cannot answer ---------------------------

_MONEY_ASKED_RE = re.compile(
    r"\bhow\s+much\s+(?:money|change)\b|\b(?:total\s+)?(?:cost|price|bill)\b|\bhow\s+many\s+(?:dollars|cents)\b|"
    r"\bin\s+(?:dollars|cents)\b|\bhow\s+much\s+(?:do|does|did|will|would)\b[^?]{0,60}\b(?:spend|pay|earn|save|cost)\b",
    re.I)
_MONEY_GIVEN_RE = re.compile(
    r"[$€£¢]\s?\d|\d\s*(?:dollars?|cents?|euros?|¢)\b|\b(?:costs?|priced?|sells?\s+for|pays?|paid|earns?|charges?)\b"
    r"[^.?!]{0,30}?\d", re.I)
_MONEY_AMOUNT_RE = re.compile(r"[$€£]\s?\d[\d,]*(?:\.\d+)?|\d[\d,]*(?:\.\d+)?\s*(?:dollars?|cents?|euros?|¢)", re.I)
_CHANGE_RE = re.compile(r"\bchange\b", re.I)
_RATIO_ONLY_RE = re.compile(r"\bratio\b[^.?!]{0,60}?(?<![\d.])\d{1,9}\s*(?:to|:)\s*\d{1,9}(?!\d|\.\d)|"
                            r"(?<![\d.])\d{1,9}\s+[a-z]{1,15}\s+for\s+every\s+\d{1,9}(?!\d|\.\d)", re.I)
_HOW_MANY_RE = re.compile(r"\bhow\s+(?:many|much)\b", re.I)
_VOLUME_RE = re.compile(r"\b(?:volume|cubic)\b", re.I)
_CUBE_RE = re.compile(r"\bcub(?:e|es|ic\s+box)\b|\bcubed\b", re.I)
_CHECKING_RE = re.compile(r"\b(?:true|false|correct|incorrect|mistake|error|wrong|check|right)\b|^\s*(?:is|are|does)\b",
                          re.I)
_LIST_SUM_RE = re.compile(
    r"\b(sum|product)\s+of\s+((?:\d{1,9}\s*,\s*){1,12}(?:and\s+)?\d{1,9})\s+(?:is|equals)\s+(\d{1,12})\b", re.I)


def _stated_computation(problem: str) -> str | None:
    """A computation the problem states with its result: "What is the value of 10 + 20 =
    30?" asks nothing, "The sum of 2, 3, 4, 5, 6, 7 is 14." states a falsehood. Problems
    that ask whether a statement holds ("Is 3 + 4 = 8 true?") are left alone."""
    for sentence in re.split(r"(?<=[.?!])\s+", problem.strip()):
        if _CHECKING_RE.search(sentence):
            continue
        for c in claims(sentence):
            if not c.holds():
                return f"ill-posed: the problem states {c.text}, which is false"
            if c.left.computes != c.right.computes and not c.left.variables and not c.right.variables:
                return f"ill-posed: the problem states the computation {c.text} and its result"
        for m in _LIST_SUM_RE.finditer(sentence):
            xs = [int(x) for x in re.findall(r"\d+", m.group(2))]
            value = sum(xs) if m.group(1).lower() == "sum" else math.prod(xs)
            if value != int(m.group(3)):
                return f"ill-posed: the problem states that the {m.group(1).lower()} of {m.group(2)} is {m.group(3)} " \
                       f"(it is {value})"
    return None


_SAME_UNIT_RE = (
    re.compile(r"\bconvert\s+\d[\d,.]*\s+([a-z]{1,12})\s+(?:in)?to\s+([a-z]{1,12})\b", re.I),
    re.compile(r"\bhow\s+many\s+([a-z]{1,12})\s+(?:are\s+)?(?:there\s+)?in\s+\d[\d,.]*\s+([a-z]{1,12})\b", re.I),
)


def check_well_posed(problem: str, solution: str, answer: str) -> str | None:
    q = question(problem)
    stated = _stated_computation(problem)
    if stated is not None:
        return stated
    for regex in _SAME_UNIT_RE:
        if (m := regex.search(q)) and m.group(1).lower() == m.group(2).lower() and m.group(1).lower() in UNITS:
            return f"ill-posed: a conversion of {m.group(1)} to {m.group(2)}"
    if _MONEY_ASKED_RE.search(q) and not _MONEY_GIVEN_RE.search(problem):
        return "ill-posed: the question asks for an amount of money, and the problem gives no price or amount"
    if _CHANGE_RE.search(q) and _MONEY_ASKED_RE.search(q) and len(_MONEY_AMOUNT_RE.findall(problem)) == 1 \
            and len(_DIGITS_RE.findall(problem)) <= 2:
        return "ill-posed: change from a payment, with no price given"
    digits = _DIGITS_RE.findall(problem)
    ratio = _RATIO_ONLY_RE.search(problem)
    if ratio and _HOW_MANY_RE.search(q) and len(digits) == 2 and not re.search(r"\bratio\b", q, re.I):
        return (f"ill-posed: the problem gives only a ratio ({ratio.group(0)}) and no amount, so no count "
                "follows")
    if _VOLUME_RE.search(q) and not _CUBE_RE.search(problem) and len(digits) == 2:
        lengths = [p for p in quantity_powers(problem).values() if p == 1]
        if len(lengths) == 2:
            return "ill-posed: a volume from two lengths (no height or depth is given)"
    if RECT_RE.search(problem) and re.search(r"\b(?:area|perimeter)\b", q, re.I) and len(digits) == 1 \
            and not _SQUARE_SHAPE_RE.search(problem) and not _EQUAL_SIDES_RE.search(problem):
        return "ill-posed: a rectangle's area or perimeter from one number"
    return None


_ASKS_RE = re.compile(
    r"\?|\b(?:what|how|which|who|whom|whose|when|where|why|find|compute|calculate|evaluate|solve|simplify|"
    r"determine|convert|express|write|give|list|round|estimate|show|prove|multiply|divide|add|subtract|factor|"
    r"expand|name|count|tell|work\s+out|figure\s+out)\b", re.I)


def check_asks(problem: str, solution: str, answer: str) -> str | None:
    if _ASKS_RE.search(problem) or evaluate(problem.strip().rstrip(".=")) is not None:
        return None  # a bare expression ("12 * 10.") asks for its value
    return "ill-posed: the problem asks nothing (no question and no instruction)"


Check = Callable[[str, str, str], "str | None"]
CHECKS: dict[str, Check] = {
    "arithmetic": check_arithmetic,
    "final_answer": check_final_answer,
    "problem_expression": check_problem_expression,
    "equation": check_equation,
    "grounding": check_grounding,
    "unused_data": check_unused_data,
    "dimensions": check_dimensions,
    "shape": check_shape,
    "closed_form": check_closed_form,
    "asks": check_asks,
    "well_posed": check_well_posed,
}


def check_reference(problem: str, solution: str, answer: str, checks: tuple[str, ...] | None = None) -> Validity:
    """Run the named checks (default: all of CHECKS) on one parsed candidate."""
    failed, reasons = [], []
    for name in checks if checks is not None else tuple(CHECKS):
        reason = CHECKS[name](problem, solution, answer)
        if reason is not None:
            failed.append(name)
            reasons.append(f"{name}: {reason}")
    return Validity(tuple(failed), "; ".join(reasons) if reasons else None)


# -- an LLM judge's replies ---------------------------------------------------------------

_VERDICT_RE = re.compile(r"verdict\W{0,3}\s*(valid|invalid)\b", re.I)
_REASON_RE = re.compile(r"reason\W{0,3}\s*(.+)", re.I)


def read_judgement(text: str) -> tuple[str | None, str | None]:
    """("valid" | "invalid" | None, reason) of one judge reply: its last "VERDICT: ..." and
    the first "REASON: ..." line; (None, None) when it gives no verdict."""
    found = _VERDICT_RE.findall(text)
    if not found:
        return None, None
    why = _REASON_RE.search(text)
    return found[-1].lower(), (why.group(1).strip()[:200] if why else None)


def judge_verdict(replies: list[str]) -> tuple[Verdict, str | None]:
    """The replies of an LLM judge as a Verdict over "valid"/"invalid" (a reply without a
    verdict counts against the majority, as an attempt without an answer does), and the
    first reason given for the majority's side."""
    read = [read_judgement(t) for t in replies]
    votes = [v for v, _ in read]
    counts = {v: votes.count(v) for v in ("valid", "invalid")}
    top = max(counts, key=lambda v: counts[v]) if any(counts.values()) else None
    tie = counts["valid"] == counts["invalid"]
    share = counts[top] / len(replies) if top and replies else 0.0
    agrees = None if top is None or tie else top == "valid"
    why = next((r for v, r in read if v == top and r), None)
    return Verdict(correct=tuple(v == "valid" for v in votes), extracted=tuple(votes),
                   majority_answer=None if tie else top, majority_share=share, reference_agrees=agrees,
                   timed_out=False), why
