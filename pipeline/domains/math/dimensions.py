"""Length dimensions of the quantities in a geometry word problem and in its solution.

The generator often answers a geometry question with a computation of the wrong
dimension: "the volume of a 6 ft by 4 ft box is 6 times 4 = 24", "the perimeter of a 5 ft
by 4 ft rectangle is 5 times 4 = 20", "the length of a rectangle of 36 square meters is
36 / 2 = 18". Such a reference cannot be right whatever the numbers are. This module
gives a length exponent (1 for feet, 2 for square feet, 3 for cubic feet, 0 for a pure
number or a non-length unit) to the problem's quantities, to the solution's results and
to what the question asks for, and evaluates the exponent of a computation over exact
tokens of pipeline/domains/math/arith.py.

It only ever answers where it is sure: a number whose unit it cannot tell ("10 by 8
meters": is 10 a length?), a rate ("5 km per cm", "60 km/h") or a scale ("1 cm = 5 km")
has no known exponent, and any computation that touches one has none either, so the
check built on it (pipeline/domains/math/validity.py, `dimensions`) passes it.
"""

from __future__ import annotations

import re
from fractions import Fraction

from pipeline.domains.math.arith import _STOP_WORDS, UNITS, Token, claims, tokenize

_LENGTH_UNITS = frozenset(w for w, (dim, _) in UNITS.items() if dim == "length" and len(w) > 1) | {"m"}
_POWER_PREFIX = {"square": 2, "sq": 2, "cubic": 3, "cu": 3}
# Words after a quantity's unit that make it a rate or a ratio, not a length.
_RATE_WORDS = frozenset({"per", "each", "every", "an", "a", "for"})
_SCALE_BEFORE = frozenset({"represents", "equals", "="})  # "1 cm = 5 km" (not "is": "a box is 6 feet long")
_UNIT_RE = "|".join(sorted((re.escape(u) for u in _LENGTH_UNITS), key=len, reverse=True))
_ASKED_POWER_RE = (
    (re.compile(rf"\b(?:cubic|cu\.?)\s+(?:{_UNIT_RE})\b|\b(?:{_UNIT_RE})\s*(?:\^\s*3|cubed|³)", re.I), 3),
    (re.compile(rf"\b(?:square|sq\.?)\s+(?:{_UNIT_RE})\b|\b(?:{_UNIT_RE})\s*(?:\^\s*2|squared|²)", re.I), 2),
    (re.compile(rf"\bin\s+(?:{_UNIT_RE})\b(?!\s*(?:per\b|/|an?\s+(?:hour|minute|second|day)))", re.I), 1),
)
# The noun a question asks for: "What is the area ...", "Find its perimeter", "How far ...".
_ASKED_NOUN_RE = re.compile(
    r"\b(?:what\s+is|what's|find|calculate|compute|determine)\s+(?:the\s+|its\s+|their\s+|his\s+|her\s+)?"
    r"(?:total\s+|new\s+|combined\s+)?(?P<noun>[a-z]+)|\bhow\s+(?P<how>far|wide|tall|high|deep)\b", re.I)
_NOUN_POWERS = {"volume": 3, "area": 2, "perimeter": 1, "circumference": 1, "length": 1, "width": 1,
                "height": 1, "side": 1, "distance": 1, "depth": 1, "radius": 1, "diameter": 1}
# Units a question may ask its answer in that are no length: then it asks for no length.
_OTHER_UNIT_RE = re.compile(
    r"\bin\s+(?:liters?|litres?|ml|milliliters?|gallons?|cups?|quarts?|pints?|dollars?|cents?|"
    r"hours?|minutes?|seconds?|days?|grams?|kilograms?|kg|pounds?|ounces?)\b", re.I)
POWER_NAMES = {0: "a pure number", 1: "a length", 2: "an area", 3: "a volume"}


def question(problem: str) -> str:
    """The problem's question: its last sentence that ends in "?", else its last sentence."""
    sentences = [s for s in re.split(r"(?<=[.?!])\s+", problem.strip()) if s]
    asked = [s for s in sentences if s.rstrip().endswith("?")]
    return (asked or sentences or [""])[-1]


def asked_power(problem: str) -> int | None:
    """The length exponent the question asks for (2 for "in square feet", 3 for "its
    volume", 1 for "its perimeter" or "in inches"), or None where it asks for no length
    or cannot be told."""
    q = question(problem)
    if _OTHER_UNIT_RE.search(q):
        return None
    m = _ASKED_NOUN_RE.search(q)
    noun = None if m is None else 1 if m.group("how") else _NOUN_POWERS.get(m.group("noun").lower())
    unit = next((power for pattern, power in _ASKED_POWER_RE if pattern.search(q)), None)
    if noun is not None and unit is not None and noun != unit:
        # "What is its area in inches?" disagrees with itself: for other checks (and
        # other readers) to judge.
        return None
    return unit if unit is not None else noun


def _unit_power(tokens: list[Token], i: int) -> int | None:
    """The exponent of the quantity at tokens[i] from the words after it: 1 for "6 feet",
    2 for "36 square meters", 0 for "5 apples" or "$5", None for a bare number ("10 by 8"),
    a rate ("5 km per cm", "60 km/h") or a number set equal to another ("1 cm = 5 km")."""
    prev = tokens[i - 1] if i else None
    if prev is not None and prev.text.lower() in _SCALE_BEFORE:
        return None
    j, power = i + 1, 1
    if j < len(tokens) and tokens[j].text.lower() in _POWER_PREFIX:
        power, j = _POWER_PREFIX[tokens[j].text.lower()], j + 1
    if j >= len(tokens) or tokens[j].kind not in ("word", "var"):
        return None
    unit = tokens[j].text.lower()
    if unit in _STOP_WORDS:
        return None
    after = tokens[j + 1] if j + 1 < len(tokens) else None
    if after is not None and (after.text.lower() in _RATE_WORDS or after.text == "/"):
        return None
    if unit not in _LENGTH_UNITS:
        return 0 if power == 1 else None
    if after is not None and after.kind == "op" and after.text == "^":
        nxt = tokens[j + 2] if j + 2 < len(tokens) else None
        return power * int(nxt.value) if nxt is not None and nxt.value in (2, 3) else None
    return power


def quantity_powers(text: str) -> dict[Fraction, int | None]:
    """Each number of `text` and its length exponent; None where the number appears with
    two different exponents, or where its unit cannot be told."""
    tokens = tokenize(text)
    out: dict[Fraction, int | None] = {}
    for i, t in enumerate(tokens):
        if t.kind != "num" or t.value is None:
            continue
        power = _unit_power(tokens, i)
        if t.value in out and out[t.value] != power:
            power = None
        out[t.value] = power
    return out


class _Eval:
    """Exponent of a flat arithmetic over number tokens (units skipped): + and - need
    equal exponents, * and / add and subtract them, ^ n multiplies; None is unknown."""

    def __init__(self, tokens: list[Token], power_of: dict[Fraction, int | None]) -> None:
        self.t = [t for t in tokens if t.kind in ("num", "op")]
        self.power_of = power_of
        self.i = 0
        self.ok = True

    def run(self) -> int | None:
        p = self.expr()
        return p if self.ok and self.i == len(self.t) else None

    def _peek(self) -> str | None:
        return self.t[self.i].text if self.i < len(self.t) and self.t[self.i].kind == "op" else None

    def expr(self) -> int | None:
        p = self.term()
        while self._peek() in ("+", "-"):
            self.i += 1
            q = self.term()
            p = p if p is not None and p == q else None
            if p is None:
                self.ok = False
        return p

    def term(self) -> int | None:
        p = self.factor()
        while self._peek() in ("*", "/"):
            op = self.t[self.i].text
            self.i += 1
            q = self.factor()
            p = None if p is None or q is None else (p + q if op == "*" else p - q)
        return p

    def factor(self) -> int | None:
        p = self.primary()
        if self._peek() == "^":
            self.i += 1
            e = self.t[self.i] if self.i < len(self.t) else None
            self.i += 1
            if e is None or e.value is None or e.value.denominator != 1 or p is None:
                return None
            p = p * int(e.value)
        return p

    def primary(self) -> int | None:
        if self.i >= len(self.t):
            self.ok = False
            return None
        t = self.t[self.i]
        self.i += 1
        if t.kind == "num":
            return self.power_of.get(t.value) if t.value is not None else None
        if t.text == "(":
            p = self.expr()
            if self._peek() == ")":
                self.i += 1
            else:
                self.ok = False
            return p
        self.ok = False  # "%", a unary sign, a stray ")": not a computation this reads
        return None


def _operand_power(value: Fraction, powers: dict[Fraction, int | None], constants: frozenset[Fraction]) -> int | None:
    """A number of the problem has its quantity's exponent; one the problem never gives
    is a pure number (a constant, a count); one that is both a constant and a length of
    the problem ("2 times 7" for a 5 cm by 2 cm rectangle's perimeter) cannot be told."""
    if value not in powers:
        return 0
    power = powers[value]
    return power if value not in constants or power == 0 else None


def final_power(problem: str, body: str, constants: frozenset[Fraction]) -> tuple[str, int] | None:
    """(text, exponent) of the last computation of a solution body, with the problem's
    quantities, the solution's earlier results and the constants (pure numbers: 2 for
    a rectangle's perimeter, 1/2 for a triangle's area, 3.14 for pi) as its operands; None
    where any operand's exponent is unknown."""
    powers = {v: p for v, p in quantity_powers(problem).items()}
    found = claims(body)
    if not found:
        return None
    tokens = tokenize(body)
    result: tuple[str, int] | None = None
    for claim in found:
        side = claim.left if claim.left.computes else claim.right
        if not side.computes:
            continue
        span = tokens[side.start:side.end]
        own = {t.value: p for k, t in enumerate(span) if t.kind == "num" and t.value is not None
               and (p := _unit_power(span, k)) is not None and p > 0}
        operands = {t.value for t in span if t.kind == "num" and t.value is not None}
        power_of = {v: own[v] if v in own else _operand_power(v, powers, constants) for v in operands}
        power = _Eval(span, power_of).run()
        result = None if power is None else (side.text, power)
        value = claim.right.value if claim.left.computes else claim.left.value
        if value is not None and value not in powers:
            powers[value] = power
    return result
