"""Explicit arithmetic in math text: claims found and evaluated with exact rationals.

A generator's reference solution states its arithmetic ("5 times 8 is 40", "4 + 5 = 9
apples", "20% of 50 is 0.2 times 50, which is 10"). This module finds those statements
and evaluates them with `fractions.Fraction`, by a small parser of its own: nothing is
passed to eval/exec or sympy, so hostile text costs time linear in its length (capped at
`MAX_CHARS`) and can run nothing.

What is understood:
- numbers: integers, decimals, thousands separators ("1,200"), "$5", percents ("20%",
  "20 percent"), fractions written a/b, the number words zero..twenty, thirty..ninety,
  hundred, thousand, dozen, and "half/third/quarter of", "twice";
- operators: + - * / ^ ( ) and the symbols x × ÷ − ·, and the words plus, minus, times,
  multiplied by, divided by, squared, cubed; "of" after a percent or a fraction multiplies;
- relations: "=", "is", "are", "equals", "is equal to", "gives", "makes", ", which is";
- units: words after a number are its unit; the lengths, masses, times, volumes and money
  in `UNITS` convert into each other ("2 hours = 120 minutes" is a true claim);
- variables: a single letter other than "a" next to a number or operator ("2x + 3 = 11")
  makes its side symbolic, so it is never checked as a claim, but it can be bound
  (`evaluate(text, {"x": 4})`) to substitute an answer into an equation.

A `Claim` is two adjacent sides of a chain "e1 = e2 = e3 ..." that both evaluate and of
which at least one computes (has an operator or a percent), or two bare quantities in
convertible, different units. A bare "Tom is 5" is no claim.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

MAX_CHARS = 20_000  # longer text is cut: a reference solution is a few hundred characters
MAX_DEPTH = 32  # nested parentheses deeper than this end the expression
MAX_DIGITS = 40  # a longer digit run is no quantity (and would cost big-integer time)
MAX_EXPONENT = 64  # a^b with |b| above this is not evaluated (no huge numbers)

_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000, "dozen": 12,
}
_PART_WORDS = {"half": Fraction(1, 2), "third": Fraction(1, 3), "quarter": Fraction(1, 4)}

# unit word -> (dimension, size in the dimension's base unit)
UNITS: dict[str, tuple[str, Fraction]] = {}
for _names, _dim, _size in (
    (("mm", "millimeter", "millimeters", "millimetre", "millimetres"), "length", Fraction(1, 1000)),
    (("cm", "centimeter", "centimeters", "centimetre", "centimetres"), "length", Fraction(1, 100)),
    (("m", "meter", "meters", "metre", "metres"), "length", Fraction(1)),
    (("km", "kilometer", "kilometers", "kilometre", "kilometres"), "length", Fraction(1000)),
    (("g", "gram", "grams"), "mass", Fraction(1)),
    (("kg", "kilogram", "kilograms"), "mass", Fraction(1000)),
    (("s", "sec", "second", "seconds"), "time", Fraction(1)),
    (("min", "mins", "minute", "minutes"), "time", Fraction(60)),
    (("h", "hr", "hrs", "hour", "hours"), "time", Fraction(3600)),
    (("day", "days"), "time", Fraction(86400)),
    (("week", "weeks"), "time", Fraction(604800)),
    (("ml", "milliliter", "milliliters", "millilitre", "millilitres"), "volume", Fraction(1, 1000)),
    (("l", "liter", "liters", "litre", "litres"), "volume", Fraction(1)),
    (("in", "inch", "inches"), "length", Fraction(254, 10000)),
    (("ft", "foot", "feet"), "length", Fraction(254 * 12, 10000)),
    (("yd", "yard", "yards"), "length", Fraction(254 * 36, 10000)),
    (("mile", "miles"), "length", Fraction(254 * 12 * 5280, 10000)),
    (("oz", "ounce", "ounces"), "mass", Fraction(45359237, 16 * 10**8)),
    (("lb", "lbs", "pound", "pounds"), "mass", Fraction(45359237, 10**8)),
    (("cup", "cups"), "us_volume", Fraction(1)),
    (("pint", "pints"), "us_volume", Fraction(2)),
    (("quart", "quarts"), "us_volume", Fraction(4)),
    (("gallon", "gallons"), "us_volume", Fraction(16)),
    (("cent", "cents"), "money", Fraction(1, 100)),
    (("dollar", "dollars"), "money", Fraction(1)),
):
    for _n in _names:
        UNITS[_n] = (_dim, _size)

# Phrases rewritten before tokenising (longest first); the right side is a token spelling.
_PHRASES = [
    (re.compile(r",?\s*which\s+(?:is|equals|gives|makes)\b", re.I), " = "),
    (re.compile(r"\bis\s+equal\s+to\b", re.I), " = "),
    (re.compile(r"\bmultiplied\s+by\b", re.I), " * "),
    (re.compile(r"\bdivided\s+by\b", re.I), " / "),
    (re.compile(r"\bper\s*cent\b", re.I), "% "),
    # "Adding 9 gives 24 + 9 = 33": the added number is no side of a claim.
    (re.compile(r"\b(adding|subtracting|taking\s+away|removing)\s+(\$?\d[\d.,]{0,40})((?:\s+[a-z]+)?)\s+(?:gives|makes)\b",
                re.I), r"\1 \2\3, so"),
    # "49 / 9 is 5 with remainder 4" claims 49 = 9 * 5 + 4 (true or false as that is).
    # (?<!\d) and bounded digit runs: a 20,000-digit number costs linear time, not quadratic.
    (re.compile(r"(?<!\d)(\d{1,40})\s*(?:/|÷|divided\s+by)\s*(\d{1,40})\s+(?:is|=|equals|gives)\s+(\d{1,40})\s*,?\s*"
                r"(?:with\s+(?:a\s+)?remainder(?:\s+of)?|remainder|r)\s+(\d+)", re.I), r"\1 = \2 * \3 + \4"),
]
_RELATION_WORDS = {"is", "are", "equals", "equal", "gives", "makes", "was", "were"}
_OP_WORDS = {"plus": "+", "minus": "-", "times": "*"}
_POWER_WORDS = {"squared": 2, "cubed": 3}
_TOKEN_RE = re.compile(
    r"(?P<num>\d+(?:,\d{3})+(?:\.\d+)?(?!\d)|\d+(?:\.\d+)?|\.\d+)"
    r"|(?P<word>[A-Za-z]+)"
    r"|(?P<op>[-+*/^()=%×÷−·–])"
    r"|(?P<sep>[.;:!?,\n])"
    r"|(?P<other>[^\s])"
)
_OP_SYMBOLS = {"×": "*", "·": "*", "÷": "/", "−": "-", "–": "-"}
_STOP_WORDS = {  # never a unit: they end a quantity
    "and", "or", "so", "then", "to", "of", "the", "for", "with", "from", "in", "on", "at", "by",
    "each", "more", "less", "left", "which", "that", "this", "we", "he", "she", "it", "they",
    "if", "than", "answer", "total", "is", "are", "equals", "gives", "makes",
}
_MAX_UNIT_WORDS = 3


@dataclass(frozen=True)
class Token:
    kind: str  # num | op | eq | var | word | sep
    text: str
    value: Fraction | None = None
    pos: int = 0  # index of the token's first character in the (rewritten) text


@dataclass(frozen=True)
class Side:
    """One side of a chain: its text, value (None: symbolic), whether it computes, its
    number literals, and its unit when it is one bare quantity."""

    text: str
    value: Fraction | None
    computes: bool
    literals: tuple[Fraction, ...]
    unit: str | None
    start: int  # token index range in the tokenised text
    end: int
    variables: tuple[str, ...] = ()


@dataclass(frozen=True)
class Claim:
    left: Side
    right: Side

    @property
    def text(self) -> str:
        return f"{self.left.text} = {self.right.text}"

    def holds(self) -> bool:
        """Exact equality, after unit conversion where both sides are bare quantities in
        known units of one dimension; a right side written as a rounded decimal holds
        when the left side rounds to it."""
        lv, rv = self.left.value, self.right.value
        assert lv is not None and rv is not None
        lu, ru = UNITS.get(self.left.unit or ""), UNITS.get(self.right.unit or "")
        if lu and ru and lu[0] == ru[0] and not (self.left.computes or self.right.computes):
            # "1 mile is 1.6 kilometers": each side rounds in the other's unit.
            return lv * lu[1] == rv * ru[1] or _rounds_to(lv * lu[1] / ru[1], self.right.text) \
                or _rounds_to(rv * ru[1] / lu[1], self.left.text)
        # A conversion is stated quantity first ("12 feet is 12 * 12 = 144"); a computation
        # set equal to a quantity of the same number ("10000 / 100 = 10000 meters") is false.
        if lv == rv or _converted(self.left, self.right):
            return True
        if _percent_points(self.right, lv) or _percent_points(self.left, rv):
            return True
        return _rounds_to(lv, self.right.text) or _rounds_to(rv, self.left.text)


def _percent_points(side: Side, other: Fraction) -> bool:
    """ "0.6 times 100 = 60%": a bare percent set equal to its number of points."""
    return bool(re.fullmatch(r"\s*[\d.,]+\s*%\s*", side.text)) and side.value is not None and other == side.value * 100


def _converted(quantity: Side, computed: Side) -> bool:
    """ "12 feet is 12 * 12 = 144": a bare quantity in a known unit, set equal to a unitless
    computation that multiplies or divides it by a conversion factor written in it (12
    inches per foot), states the conversion, not an equality of numbers."""
    unit = UNITS.get(quantity.unit or "")
    if unit is None or quantity.computes or not computed.computes or computed.unit:
        return False
    assert quantity.value is not None and computed.value is not None
    if quantity.value == 0 or computed.value == 0:
        return False
    ratio = computed.value / quantity.value
    sizes = {size for dim, size in UNITS.values() if dim == unit[0]}
    factors = {unit[1] / s for s in sizes} | {s / unit[1] for s in sizes}
    return ratio in factors and (ratio in computed.literals or 1 / ratio in computed.literals)


def _rounds_to(value: Fraction, text: str) -> bool:
    m = re.fullmatch(r"\s*-?\$?\d*\.(\d+)\b.*", text)
    if m is None or "+" in text or "*" in text or "/" in text:
        return False
    digits = len(m.group(1))
    shown = _first_number(text)
    return shown is not None and abs(value - shown) <= Fraction(1, 2 * 10**digits)


def _first_number(text: str) -> Fraction | None:
    m = re.search(r"-?\d*\.?\d+", text.replace(",", ""))
    return Fraction(m.group(0)) if m else None


def tokenize(text: str) -> list[Token]:
    """Tokens of `text` (cut at MAX_CHARS) with the verbal forms rewritten as operators."""
    text = text[:MAX_CHARS].replace("$", " ").replace("\\times", "*").replace("\\cdot", "*")
    text = text.replace("\\div", "/").replace("\\%", "%")
    for pattern, repl in _PHRASES:
        text = pattern.sub(repl, text)
    raw: list[Token] = []
    for m in _TOKEN_RE.finditer(text):
        kind, s = m.lastgroup, m.group(0)
        if kind == "num" and len(s) > MAX_DIGITS:
            # No quantity has this many digits; Fraction() would refuse it past 4,300 anyway.
            raw.append(Token("sep", s, pos=m.start()))
        elif kind == "num":
            raw.append(Token("num", s, Fraction(s.replace(",", "")), m.start()))
        elif kind == "op":
            s = _OP_SYMBOLS.get(s, s)
            raw.append(Token("eq" if s == "=" else "op", s, pos=m.start()))
        elif kind == "word":
            raw.append(Token("word", s, pos=m.start()))
        elif kind == "sep":
            raw.append(Token("sep", s, pos=m.start()))
        else:
            raw.append(Token("sep", s, pos=m.start()))
    return _rewrite_words(raw)


def _rewrite_words(raw: list[Token]) -> list[Token]:
    out: list[Token] = []
    for i, t in enumerate(raw):
        if t.kind != "word":
            out.append(t)
            continue
        w = t.text.lower()
        prev = out[-1] if out else None
        nxt = raw[i + 1] if i + 1 < len(raw) else None
        if w in _NUMBER_WORDS and not (w == "hundred" and prev is not None and prev.kind == "num"):
            out.append(Token("num", t.text, Fraction(_NUMBER_WORDS[w]), t.pos))
        elif w == "hundred" and prev is not None and prev.kind == "num":
            out[-1] = Token("num", prev.text + " hundred", prev.value * 100, prev.pos)
        elif w in _OP_WORDS:
            out.append(Token("op", _OP_WORDS[w], pos=t.pos))
        elif w in _POWER_WORDS:
            out += [Token("op", "^", pos=t.pos), Token("num", str(_POWER_WORDS[w]), Fraction(_POWER_WORDS[w]), t.pos)]
        elif w == "twice":
            out += [Token("num", "2", Fraction(2), t.pos), Token("op", "*", pos=t.pos)]
        elif w in _PART_WORDS and nxt is not None and nxt.kind == "word" and nxt.text.lower() == "of":
            out.append(Token("num", t.text, _PART_WORDS[w], t.pos))
        elif w == "of" and prev is not None and _of_multiplies(out):
            out.append(Token("op", "*", pos=t.pos))
        elif w == "x" and prev is not None and prev.kind == "num" and nxt is not None and nxt.kind == "num":
            out.append(Token("op", "*", pos=t.pos))
        elif w in _RELATION_WORDS:
            out.append(Token("eq", w, pos=t.pos))
        elif len(w) == 1 and w not in ("a", "i") and not (w in UNITS and prev is not None and prev.kind == "num"):
            out.append(Token("var", w, pos=t.pos))
        else:
            out.append(Token("word", t.text, pos=t.pos))
    return out


def _of_multiplies(out: list[Token]) -> bool:
    # "20% of", "3/4 of", "half of": a part of something.
    last = out[-1]
    if last.kind == "op" and last.text == "%":
        return True
    if last.kind == "num" and last.value is not None and last.text.lower() in _PART_WORDS:
        return True
    return len(out) >= 3 and last.kind == "num" and out[-2].text == "/" and out[-3].kind == "num"


class _Parser:
    """Recursive descent over tokens[i:]: expr := term (+|- term)*; term := factor
    (*|/ factor | implicit factor)*; factor := unary (^ factor)?; unary := - unary | primary
    [%]; primary := number [units] | variable | ( expr ).  A value of None is symbolic."""

    def __init__(self, tokens: list[Token], env: dict[str, Fraction] | None = None) -> None:
        self.t = tokens
        self.env = env or {}
        self.i = 0
        self.computes = False
        self.literals: list[Fraction] = []
        self.unit: str | None = None
        self.primaries = 0
        self.depth = 0
        self.variables: list[str] = []

    def peek(self, offset: int = 0) -> Token | None:
        j = self.i + offset
        return self.t[j] if j < len(self.t) else None

    def at_op(self, ops: str) -> bool:
        t = self.peek()
        return t is not None and t.kind == "op" and t.text in ops

    def starts_primary(self) -> bool:
        t = self.peek()
        if t is None:
            return False
        if t.kind in ("num", "var"):
            return True
        if t.kind == "op" and t.text == "(":
            return True
        return t.kind == "op" and t.text == "-" and (n := self.peek(1)) is not None and n.kind in ("num", "var")

    def expr(self) -> Fraction | None | bool:
        value = self.term()
        while self.at_op("+-") and self._operand_follows():
            op = self.t[self.i].text
            self.i += 1
            self.computes = True
            rhs = self.term()
            value = _apply(op, value, rhs)
        return value

    def _operand_follows(self) -> bool:
        n = self.peek(1)
        return n is not None and (n.kind in ("num", "var") or (n.kind == "op" and n.text in "(-"))

    def term(self) -> Fraction | None:
        value = self.factor()
        while True:
            if self.at_op("*/") and self._operand_follows():
                op = self.t[self.i].text
                self.i += 1
                self.computes = True
                value = _apply(op, value, self.factor())
            elif (t := self.peek()) is not None and (t.kind == "var" or (t.kind == "op" and t.text == "(")):
                at = self.i
                rhs = self.factor()  # implicit: 2x, 3(4 + 1)
                if self.i == at:  # a "(" past MAX_DEPTH is not parsed: stop, or loop forever
                    return None
                value = _apply("*", value, rhs)
                self.computes = True
            else:
                return value

    def factor(self) -> Fraction | None:
        base = self.unary()
        if self.at_op("^") and self._operand_follows():
            self.i += 1
            self.computes = True
            exp = self.factor()
            if (base is None or exp is None or exp.denominator != 1 or abs(exp) > MAX_EXPONENT
                    or (base == 0 and exp < 0)):
                return None
            return base**int(exp)
        return base

    def unary(self) -> Fraction | None:
        if self.at_op("-"):
            self.i += 1
            v = self.unary()
            return None if v is None else -v
        v = self.primary()
        if self.at_op("%"):
            self.i += 1
            self.computes = True
            v = None if v is None else v / 100
        return v

    def primary(self) -> Fraction | None:
        t = self.peek()
        if t is None:
            return None
        self.primaries += 1
        if t.kind == "num":
            self.i += 1
            self.literals.append(t.value)
            self._units()
            return t.value
        if t.kind == "var":
            self.i += 1
            self.variables.append(t.text)
            return self.env.get(t.text)
        if t.kind == "op" and t.text == "(" and self.depth < MAX_DEPTH:
            self.i += 1
            self.depth += 1
            v = self.expr()
            self.depth -= 1
            if self.at_op(")"):
                self.i += 1
            return v
        return None

    def _units(self) -> None:
        """Skip the unit words after a number when an operator or relation follows them;
        remember the first unit word."""
        j, words = self.i, []
        while j < len(self.t) and len(words) < _MAX_UNIT_WORDS and self.t[j].kind == "word" \
                and self.t[j].text.lower() not in _STOP_WORDS:
            words.append(self.t[j].text.lower())
            j += 1
        if words:
            self.unit = next((w for w in words if w in UNITS), words[0])
        nxt = self.t[j] if j < len(self.t) else None
        if words and nxt is not None and (nxt.kind == "eq" or (nxt.kind == "op" and nxt.text in "+-*/")):
            self.i = j


def _apply(op: str, a: Fraction | None, b: Fraction | None) -> Fraction | None:
    if a is None or b is None:
        return None
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    return None if b == 0 else a / b


def _side(tokens: list[Token], start: int, env: dict[str, Fraction] | None = None) -> Side | None:
    p = _Parser(tokens, env)
    p.i = start
    if not p.starts_primary():
        return None
    value = p.expr()
    end = p.i
    text = " ".join(t.text for t in tokens[start:end])
    unit = p.unit if p.primaries == 1 else None
    return Side(text, value, p.computes, tuple(p.literals), unit, start, end, tuple(p.variables))


def _skip_words(tokens: list[Token], i: int) -> int:
    """Past up to a few unit words after a side ("9 apples = ...")."""
    j = i
    while j < len(tokens) and j - i < _MAX_UNIT_WORDS and tokens[j].kind == "word" \
            and tokens[j].text.lower() not in _STOP_WORDS:
        j += 1
    return j


def chains(text: str, env: dict[str, Fraction] | None = None) -> list[list[Side]]:
    """Every chain "e1 = e2 = ..." of two or more sides in `text`, in order (`env`: values
    for variables)."""
    tokens = tokenize(text)
    found: list[list[Side]] = []
    i = 0
    while i < len(tokens):
        side = _side(tokens, i, env)
        if side is None or side.end == i:
            i += 1
            continue
        chain = [side]
        j = side.end
        while True:
            k = _skip_words(tokens, j)
            if k < len(tokens) and tokens[k].kind == "eq":
                nxt = _side(tokens, k + 1, env)
                if nxt is not None and nxt.end > k + 1:
                    chain.append(nxt)
                    j = nxt.end
                    continue
            break
        if len(chain) >= 2 and _names_a_part(tokens, chain):
            # "The 10th multiple of 6 is 10 times 6 = 60", "6 rows of 7 is 6 x 7": the bare
            # number ends a noun phrase ("... of 6") that is the subject, not the value.
            chain = chain[1:]
        if len(chain) >= 2:
            found.append(chain)
        i = max(j, i + 1)
    return found


def _names_a_part(tokens: list[Token], chain: list[Side]) -> bool:
    first, second = chain[0], chain[1]
    if first.computes or not second.computes or first.start == 0:
        return False
    before = tokens[first.start - 1]
    relation = tokens[_skip_words(tokens, first.end)]
    if relation.text == "=":
        return False
    if before.kind == "word" and before.text.lower() == "of":
        return True
    # "The sum of 22 and 22 is 22 + 22": the second of two numbers after "of".
    return (before.text.lower() == "and" and first.start >= 3 and tokens[first.start - 2].kind == "num"
            and tokens[first.start - 3].text.lower() == "of")


def claims(text: str) -> list[Claim]:
    """The checkable claims of `text` (see the module doc), in order."""
    out = []
    for chain in chains(text):
        for a, b in zip(chain, chain[1:], strict=False):
            if a.value is None or b.value is None:
                continue
            if a.computes or b.computes or _converts(a, b):
                out.append(Claim(a, b))
    return out


def _converts(a: Side, b: Side) -> bool:
    # Two bare quantities in known units of one dimension: "2 hours = 120 minutes", and
    # "4 days is 2 days" (same unit, so the same number or false).
    ua, ub = UNITS.get(a.unit or ""), UNITS.get(b.unit or "")
    return bool(ua and ub and ua[0] == ub[0])


def numbers(text: str) -> list[Fraction]:
    """Every number literal in `text` (number words included), with a percent's value
    both as written and divided by 100."""
    tokens = tokenize(text)
    out: list[Fraction] = []
    for i, t in enumerate(tokens):
        if t.kind == "num" and t.value is not None:
            out.append(t.value)
            if i + 1 < len(tokens) and tokens[i + 1].text == "%":
                out.append(t.value / 100)
    return out


def evaluate(text: str, env: dict[str, Fraction] | None = None, *, whole: bool = True) -> Fraction | None:
    """The value of `text` as one expression (None if it is not one, or is symbolic).

    whole=True: the expression must cover every token but trailing unit words and
    punctuation ("12 eggs." is 12; "12 or 13" is None).
    """
    tokens = tokenize(text)
    side = _side(tokens, 0, env)
    if side is None or side.value is None:
        return None
    if whole and any(t.kind not in ("word", "sep") for t in tokens[side.end:]):
        return None
    return side.value


def number_value(answer: str) -> Fraction | None:
    """A final answer's value when it is a number, a fraction, a percent or a short
    expression of them, with an optional unit ("12", "3/4", "$4.50", "25%", "12 eggs")."""
    text = answer.strip().strip("$").replace("\\frac{", "(").replace("}{", ")/(").replace("}", ")")
    if not re.search(r"\d", text):
        return None
    return evaluate(text)
