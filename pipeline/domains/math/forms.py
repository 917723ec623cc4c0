"""Closed forms: questions whose answer follows from their words alone.

Many generated problems are one of a few textbook forms ("What is the remainder when 12
is divided by 4?", "In how many orders can 4 friends stand in a line?", "A rectangle is 2
m long and 4 m wide. What is its area?"). For those the answer can be worked out here,
independently of the generator's solution, so a wrong reference is caught even when every
claim of its solution is true arithmetic ("4 times 3 = 12" for 4 friends in a line).

`expected(problem)` returns the forms that match, each with the value the answer must
have; a form matches only when the problem gives no other number that could change it
(a rectangle with a path around it is no longer the plain form). Pure functions, bounded
regexes (each quantifier has a limit), no evaluation of text as code.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

from pipeline.domains.math.arith import UNITS, number_value, numbers
from pipeline.domains.math.dimensions import question

_NUM = r"(\$?\d{1,12}(?:,\d{3}){0,4}(?:\.\d{1,8})?(?:\s{0,2}/\s{0,2}\d{1,12})?)"
_UNIT = r"([a-z]{1,12})"
_FACTORIAL_MAX = 12


@dataclass(frozen=True)
class Form:
    """One recognised form: its name, the value the answer must have, and whether that
    value is exact (a metric-imperial conversion is not: an answer rounded to 1% passes)."""

    name: str
    value: Fraction | None  # None: no answer fits (the problem's numbers cannot exist)
    exact: bool = True


def _num(text: str) -> Fraction | None:
    return number_value(text.replace(",", "").strip())


def _given(problem: str) -> list[Fraction]:
    """The distinct numbers the problem states (a percent once, as written)."""
    out: list[Fraction] = []
    for x in numbers(problem):
        if x not in out and x * 100 not in out:
            out.append(x)
    return out


# -- forms on two numbers ---------------------------------------------------------------

_REMAINDER_RE = re.compile(rf"\bremainder\s+(?:is\s+left\s+)?when\s+{_NUM}\s+is\s+divided\s+by\s+{_NUM}", re.I)
_LCM_RE = re.compile(rf"\b(?:least|smallest|lowest)\s+common\s+multiple\s+of\s+{_NUM}\s*,?\s+and\s+{_NUM}", re.I)
_GCD_RE = re.compile(rf"\b(?:greatest|largest|highest)\s+common\s+(?:factor|divisor)\s+of\s+{_NUM}\s*,?\s+and\s+{_NUM}",
                     re.I)
_MORE_THAN_RE = re.compile(rf"\bhow\s+(?:many|much)\s+more\s+than\s+{_NUM}\s+is\s+{_NUM}\s*\?", re.I)
_MORE_IS_RE = re.compile(rf"\bhow\s+(?:many|much)\s+more\s+is\s+{_NUM}\s+than\s+{_NUM}\s*\?", re.I)
_NTH_MULTIPLE_RE = re.compile(r"\b(\d{1,6})(?:st|nd|rd|th)\s+multiple\s+of\s+(\d{1,9})\b", re.I)
_VERB_RE = re.compile(rf"^\s*(multiply|divide|add|subtract)\s+{_NUM}\s+(by|and|to|from)\s+{_NUM}\s*[.?!]?\s*$", re.I)


def _whole(*values: Fraction | None) -> list[int] | None:
    if any(v is None or v.denominator != 1 or v <= 0 for v in values):
        return None
    return [int(v) for v in values if v is not None]


def _two_number_forms(problem: str) -> list[Form]:
    q = question(problem)
    out: list[Form] = []
    if m := _REMAINDER_RE.search(q):
        ab = _whole(_num(m.group(1)), _num(m.group(2)))
        if ab:
            out.append(Form("remainder", Fraction(ab[0] % ab[1])))
    if m := _LCM_RE.search(q):
        ab = _whole(_num(m.group(1)), _num(m.group(2)))
        if ab:
            out.append(Form("least common multiple", Fraction(math.lcm(*ab))))
    if m := _GCD_RE.search(q):
        ab = _whole(_num(m.group(1)), _num(m.group(2)))
        if ab:
            out.append(Form("greatest common factor", Fraction(math.gcd(*ab))))
    for regex, sign in ((_MORE_THAN_RE, 1), (_MORE_IS_RE, -1)):
        if m := regex.search(q):
            a, b = _num(m.group(1)), _num(m.group(2))
            if a is not None and b is not None:
                out.append(Form("difference", (b - a) * sign))
    if (m := _NTH_MULTIPLE_RE.search(q)) and len(_given(problem)) <= 2:
        # "What is the 4th multiple of 7?" is 28 (the n-th multiple of m is n x m).
        out.append(Form("n-th multiple", Fraction(int(m.group(1)) * int(m.group(2)))))
    if m := _VERB_RE.match(problem):
        verb, a, link, b = m.group(1).lower(), _num(m.group(2)), m.group(3).lower(), _num(m.group(4))
        if a is not None and b is not None:
            value = {("multiply", "by"): a * b, ("add", "and"): a + b, ("add", "to"): a + b,
                     ("subtract", "from"): b - a, ("divide", "by"): a / b if b else None}.get((verb, link))
            if value is not None:
                out.append(Form(verb, value))
    return out


# -- unit conversion ----------------------------------------------------------------------

# The amount ends the question: "in 2 feet and 9 inches" is a sum, no conversion.
_HOW_MANY_IN_RE = re.compile(
    rf"\bhow\s+many\s+{_UNIT}\s+(?:are\s+)?(?:there\s+)?in\s+{_NUM}\s+{_UNIT}\s*[?.]?\s*$", re.I)
_CONVERT_RE = re.compile(rf"\bconvert\s+{_NUM}\s+{_UNIT}\s+(?:in)?to\s+{_UNIT}\b", re.I)
_METRIC = frozenset({"mm", "cm", "m", "km", "g", "kg", "ml", "l"})
_METRIC_NAMES = ("milli", "centi", "kilo", "meter", "metre", "gram", "liter", "litre")


def _metric(unit: str) -> bool:
    return unit in _METRIC or any(unit.startswith(n) or n in unit for n in _METRIC_NAMES)


def _conversion(problem: str) -> list[Form]:
    q = question(problem)
    found = []
    if m := _HOW_MANY_IN_RE.search(q):
        found.append((m.group(3), _num(m.group(2)), m.group(1)))
    if m := _CONVERT_RE.search(q):
        found.append((m.group(2), _num(m.group(1)), m.group(3)))
    out = []
    for source, amount, target in found:
        a, b = UNITS.get(source.lower()), UNITS.get(target.lower())
        if amount is None or a is None or b is None or a[0] != b[0] or source.lower() == target.lower():
            continue
        exact = _metric(source.lower()) == _metric(target.lower())
        out.append(Form(f"{source} to {target}", amount * a[1] / b[1], exact))
    return out


# -- shapes -------------------------------------------------------------------------------

_LENGTH = r"(?:mm|cm|m|km|in|ft|yd|millimet(?:er|re)s?|centimet(?:er|re)s?|met(?:er|re)s?|kilomet(?:er|re)s?|" \
          r"inch(?:es)?|feet|foot|yards?|miles?|units?)"
_RECT_PAIRS = (
    re.compile(rf"{_NUM}\s*{_LENGTH}?\s+long\s*,?\s+and\s+{_NUM}\s*{_LENGTH}?\s+wide\b", re.I),
    re.compile(rf"{_NUM}\s*{_LENGTH}?\s+wide\s*,?\s+and\s+{_NUM}\s*{_LENGTH}?\s+long\b", re.I),
    re.compile(rf"\blength\s+of\s+{_NUM}\s*{_LENGTH}?\s*,?\s+and\s+(?:a\s+)?width\s+of\s+{_NUM}", re.I),
    re.compile(rf"\bwidth\s+of\s+{_NUM}\s*{_LENGTH}?\s*,?\s+and\s+(?:a\s+)?length\s+of\s+{_NUM}", re.I),
    re.compile(rf"{_NUM}\s*{_LENGTH}?\s+by\s+{_NUM}\s*{_LENGTH}?\b", re.I),
)
_AREA_RE = re.compile(r"\barea\b", re.I)
_PERIMETER_RE = re.compile(r"\b(?:perimeter|fenc\w{0,3}|border|around)\b", re.I)
RECT_RE = re.compile(r"\brectang\w{0,4}\b", re.I)
_LONG_WIDE_RE = re.compile(rf"{_NUM}\s*{_LENGTH}\s+(?:long|wide)\s*,?\s+and\s+{_NUM}\s*{_LENGTH}\s+(?:wide|long)\b",
                           re.I)
_SOLID_OR_ROUND_RE = re.compile(r"\b(?:box\w{0,2}|prisms?|cubes?|cuboids?|tanks?|pools?|containers?|bricks?|"
                                r"circl\w{0,3}|round|diameter|radius|tall|high|deep|height|depth)\b", re.I)
_SQUARE_RE = re.compile(r"\bsquare\b(?!\s+(?:units?|feet|foot|met(?:er|re)s?|inch(?:es)?|yards?|miles?|"
                        r"centimet(?:er|re)s?|millimet(?:er|re)s?|kilomet(?:er|re)s?|root|numbers?|cm|mm|m|km|in|"
                        r"ft|yd)\b)", re.I)
_SQUARE_SIDE_RE = re.compile(rf"\b(?:sides?|edges?)\s+(?:of\s+|length\s+of\s+|that\s+(?:is|are)\s+|(?:is|are)\s+)?"
                             rf"{_NUM}|{_NUM}\s*{_LENGTH}\s+(?:on\s+each\s+side|per\s+side|long|wide)\b", re.I)
_SQUARE_PERIMETER_RE = re.compile(rf"\bperimeter\s+(?:of|is)\s+{_NUM}", re.I)
_SQUARE_AREA_RE = re.compile(rf"\barea\s+(?:of|is)\s+{_NUM}", re.I)
_TRIANGLE_RE = re.compile(r"\btriang\w{0,4}\b", re.I)
_BASE_RE = re.compile(rf"\bbase\s+(?:of\s+|is\s+)?{_NUM}", re.I)
_HEIGHT_RE = re.compile(rf"\bheight\s+(?:of\s+|is\s+)?{_NUM}", re.I)
_OTHER_UNIT_IN_QUESTION_RE = re.compile(
    r"\b(?:in|into)\s+(?:square\s+|sq\.?\s+|cubic\s+)?(mm|cm|m|km|in|ft|yd|millimet\w{0,3}|centimet\w{0,3}|"
    r"met(?:er|re)s?|kilomet\w{0,3}|inch(?:es)?|feet|foot|yards?|miles?)\b", re.I)
_ANY_LENGTH_RE = re.compile(rf"\d\s*({_LENGTH})\b", re.I)


def _one_unit(problem: str) -> bool:
    """The problem's lengths are all in one unit and the question asks in that unit (or
    names none), so no conversion changes the plain value."""
    units = {UNITS.get(u.lower(), (None, u.lower()))[1] for u in _ANY_LENGTH_RE.findall(problem)
             if u.lower() not in ("unit", "units")}
    asked = _OTHER_UNIT_IN_QUESTION_RE.search(question(problem))
    if asked is not None:
        units.add(UNITS.get(asked.group(1).lower(), (None, asked.group(1).lower()))[1])
    return len(units) <= 1


def _length_scale(problem: str) -> tuple[Fraction, bool] | None:
    """(size of the problem's one length unit in the asked unit, exact) where the problem
    states its lengths in one unit and the question asks in another ("3 cm wide and 5 cm
    long ... in square meters": 1/100); None where the units are mixed or unknown."""
    units = {u.lower() for u in _ANY_LENGTH_RE.findall(problem) if u.lower() not in ("unit", "units")}
    asked = _OTHER_UNIT_IN_QUESTION_RE.search(question(problem))
    sizes = {UNITS[u] for u in units if u in UNITS}
    if asked is None or len(units) != 1 or len(sizes) != 1 or asked.group(1).lower() not in UNITS:
        return None
    (dim, given), (asked_dim, wanted) = next(iter(sizes)), UNITS[asked.group(1).lower()]
    if dim != "length" or asked_dim != "length":
        return None
    return given / wanted, _metric(next(iter(units))) == _metric(asked.group(1).lower())


def _shape_forms(problem: str) -> list[Form]:
    q = question(problem)
    given = _given(problem)
    wants_area, wants_perimeter = bool(_AREA_RE.search(q)), bool(_PERIMETER_RE.search(q))
    if wants_area == wants_perimeter:
        return []
    scale, exact = (Fraction(1), True) if _one_unit(problem) else (_length_scale(problem) or (None, True))
    if scale is None:
        return []
    # A rectangle by name, or a flat thing given as "6 feet long and 4 feet wide" (a
    # garden, a poster): not a box, whose area is a surface, nor another named shape.
    plain = not (_SQUARE_RE.search(problem) or _SOLID_OR_ROUND_RE.search(problem) or _TRIANGLE_RE.search(problem))
    if plain and len(given) <= 2 and (RECT_RE.search(problem) or _LONG_WIDE_RE.search(problem)):
        for regex in _RECT_PAIRS:
            if m := regex.search(problem):
                a, b = _num(m.group(1)), _num(m.group(2))
                if a is not None and b is not None and a > 0 and b > 0:
                    value = a * b * scale * scale if wants_area else 2 * (a + b) * scale
                    return [Form("rectangle " + ("area" if wants_area else "perimeter"), value, exact)]
                break
    if scale != 1:
        return []
    if _SQUARE_RE.search(problem) and not RECT_RE.search(problem):
        side, stated = None, None
        if (m := _SQUARE_PERIMETER_RE.search(problem)) and not wants_perimeter:
            p = stated = _num(m.group(1))
            side = p / 4 if p is not None else None
        elif (m := _SQUARE_AREA_RE.search(problem)) and not wants_area:
            a = stated = _num(m.group(1))
            if a is not None and a > 0:
                root = Fraction(math.isqrt(a.numerator), math.isqrt(a.denominator))
                side = root if root * root == a else None
        elif m := _SQUARE_SIDE_RE.search(problem):
            side = stated = _num(m.group(1) or m.group(2))
        # Besides the side, only a count of sides ("2 sides that are 5 cm") may be given.
        if side is not None and side > 0 and all(x == stated or x in (2, 4) for x in given):
            return [Form("square " + ("area" if wants_area else "perimeter"), side * side if wants_area else 4 * side)]
    if _TRIANGLE_RE.search(problem) and wants_area and len(given) == 2:
        b, h = _BASE_RE.search(problem), _HEIGHT_RE.search(problem)
        if b and h:
            bv, hv = _num(b.group(1)), _num(h.group(1))
            if bv is not None and hv is not None:
                return [Form("triangle area", bv * hv / 2)]
    return []


# -- counting, prices, percent change, restated counts -----------------------------------

_LINE_ORDERS_RE = re.compile(
    rf"\bhow\s+many\s+(?:different\s+)?(?:ways|orders)\s+can\s+{_NUM}\s+(?:[a-z]{{1,15}}\s+){{1,2}}"
    r"(?:stand|sit|line\s+up|be\s+(?:arranged|lined\s+up|ordered))\s+(?:(?:in|on)\s+a\s+(?:line|row)|in\s+order)?\s*\?",
    re.I)


def _orders(problem: str) -> list[Form]:
    m = _LINE_ORDERS_RE.search(question(problem))
    if m is None or re.search(r"\b(?:round|circle|circular)\b", problem, re.I) or len(_given(problem)) != 1:
        return []
    n = _num(m.group(1))
    if n is None or n.denominator != 1 or not 0 < n <= _FACTORIAL_MAX:
        return []
    return [Form("orders in a line", Fraction(math.factorial(int(n))))]


_PRICE_RE = re.compile(rf"\b(?:a|an|one|each)\s+([a-z]{{1,15}}(?:\s+of\s+[a-z]{{1,15}})?)\s+costs?\s+{_NUM}", re.I)
_NOUN = r"[a-z]{1,15}(?:\s+of\s+[a-z]{1,15})?"
_HOW_MUCH_RE = re.compile(
    rf"\bhow\s+much\s+(?:do|does|would|will)\s+(?:{_NUM}\s+(?P<noun>{_NOUN})|it|one|each|"
    rf"(?:a|an|the)\s+(?P<same>{_NOUN}))\s+cost\b(?:\s*,?\s+in\s+(?P<unit>dollars|cents))?", re.I)


def _stem(word: str) -> str:
    word = word.lower()
    for suffix in ("es", "s"):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            return word[: -len(suffix)]
    return word


def _price(problem: str) -> list[Form]:
    """ "A book costs $4. How much do 2 books cost, in cents?" is 800; "How much does it
    cost?" asks the price back."""
    price, ask = _PRICE_RE.search(problem), _HOW_MUCH_RE.search(question(problem))
    if price is None or ask is None or "$" not in price.group(2):
        return []
    noun = ask.group("noun") or ask.group("same")
    if noun is not None and _stem(price.group(1).split()[-1]) != _stem(noun.split()[-1]):
        return []
    each = _num(price.group(2))
    count = _num(ask.group(1)) if ask.group(1) else Fraction(1)
    if each is None or count is None or any(x not in (each, count) for x in _given(problem)):
        return []
    cents = (ask.group("unit") or "").lower() == "cents"
    return [Form("price of several", each * count * (100 if cents else 1))]


_CHANGE_RE = re.compile(rf"\b(grew|grows|increased|increases|rose|rises|went\s+up|decreased|decreases|fell|falls|"
                        rf"dropped|drops|went\s+down)\s+by\s+{_NUM}\s*(?:%|percent)", re.I)
_NOW_RE = re.compile(r"\bhow\s+many\b.{0,60}\b(?:now|after\s+(?:the|this|that)\s+(?:increase|decrease|change))\b",
                     re.I)


def _percent_change(problem: str) -> list[Form]:
    m = _CHANGE_RE.search(problem)
    if m is None or not _NOW_RE.search(question(problem)):
        return []
    p = _num(m.group(2))
    others = [x for x in _given(problem) if x not in (p, p / 100 if p is not None else None)]
    if p is None or len(others) != 1:
        return []
    up = m.group(1).lower().split()[0] in ("grew", "grows", "increased", "increases", "rose", "rises", "went") \
        and "down" not in m.group(1).lower()
    factor = 1 + p / 100 if up else 1 - p / 100
    return [Form("percent change", others[0] * factor)]


_HAS_RE = re.compile(r"^\s*(?:[A-Za-z]{1,15}\s+){1,4}?(has|have|contains?|sells?|owns?|holds?)\s+(.{1,200}?)\s*\.\s*$",
                     re.I)
# "3 tables", "4 red balls", "2 bags of rice": a count and its noun (one adjective at most).
_ITEM_RE = re.compile(r"(?:^|,\s*|\s+and\s+)(\d{1,12})\s+((?:[a-z]{1,15}\s+)?[a-z]{1,15}(?:\s+of\s+[a-z]{1,15})?)"
                      r"(?=\s*(?:,|\s+and\b|$))", re.I)
_ASK_COUNT_RE = re.compile(
    r"^\s*how\s+many\s+([a-z]{1,15}(?:\s+of\s+[a-z]{1,15})?)\s+(?:does|do|did)\s+(?:[a-z]{1,15}\s+){1,3}?"
    r"(have|contain|sell|own|hold)\s*\?\s*$", re.I)
# "How many red balls are there (in the box)?" asks the same of any of the verbs.
_ASK_THERE_RE = re.compile(
    r"^\s*how\s+many\s+((?:[a-z]{1,15}\s+)?[a-z]{1,15}(?:\s+of\s+[a-z]{1,15})?)\s+are\s+there"
    r"(?:\s+in\s+(?:the|his|her|their)\s+[a-z]{1,15})?\s*\?\s*$", re.I)


_VERBS = {"has": "have", "have": "have", "contains": "contain", "contain": "contain", "sells": "sell",
          "sell": "sell", "owns": "own", "own": "own", "holds": "hold", "hold": "hold"}


def _restated_count(problem: str) -> list[Form]:
    """ "A restaurant has 3 tables and 2 chairs. How many tables does the restaurant have?"
    asks back a number it states: the answer can only be that number (and the problem is
    then a restatement, which the grounding check rejects)."""
    sentences = [s for s in re.split(r"(?<=[.?!])\s+", problem.strip()) if s]
    if len(sentences) != 2:
        return []
    has, ask, there = _HAS_RE.match(sentences[0]), _ASK_COUNT_RE.match(sentences[1]), _ASK_THERE_RE.match(sentences[1])
    if has is None or (there is None and (ask is None or _VERBS.get(has.group(1).lower()) != ask.group(2).lower())):
        return []
    ask = ask or there
    assert ask is not None
    items = [(Fraction(int(n)), noun.lower()) for n, noun in _ITEM_RE.findall(has.group(2))]
    if not items or len(items) != len(re.findall(r"\d+", has.group(2))):
        return []
    wanted = ask.group(1).lower()
    hits = [n for n, noun in items if noun == wanted]
    return [Form("count the problem states", hits[0])] if len(hits) == 1 else []


_MORE_NOUN_RE = re.compile(r"\bhow\s+many\s+more\s+([a-z]{1,15})\b[^?]{0,60}?\bthan\s+(?:the\s+)?([a-z]{1,15})\b", re.I)


def _more_of_one_than_other(problem: str) -> list[Form]:
    """ "A man has 22 apples and 18 oranges. How many more apples than oranges?" is 22 - 18."""
    m = _MORE_NOUN_RE.search(question(problem))
    if m is None or len(_given(problem)) != 2:
        return []
    counts = {}
    for n, noun in re.findall(r"(?<![\d.,/])(\d{1,12})\s+([a-z]{1,15})\b", problem, re.I):
        counts.setdefault(_stem(noun), Fraction(int(n)))
    a, b = counts.get(_stem(m.group(1))), counts.get(_stem(m.group(2)))
    if a is None or b is None or a == b and _stem(m.group(1)) == _stem(m.group(2)):
        return []
    return [Form("difference of two counts", a - b)]


_MEASURE = (r"(?:(?:cups?|tablespoons?|teaspoons?|spoons?|scoops?|grams?|kilograms?|kg|pounds?|ounces?|liters?|litres?|"
            r"ml|pieces?|parts?|bags?|cans?|jars?|bottles?|packs?|boxes?)\s+of\s+)?")
_RATIO_RE = re.compile(rf"(?<![\d.,/]){_NUM}\s+{_MEASURE}([a-z]{{1,15}})\s+(?:for\s+every|for\s+each|to\s+every)\s+"
                       rf"{_NUM}\s+{_MEASURE}([a-z]{{1,15}})\b", re.I)
_HOW_MANY_NOUN_RE = re.compile(rf"\bhow\s+(?:many|much)\s+{_MEASURE}([a-z]{{1,15}})\b", re.I)
_SCALE_UNITS = (r"(?:mm|cm|m|km|in|inch(?:es)?|ft|feet|foot|yd|yards?|mi|miles?|millimet(?:er|re)s?|"
                r"centimet(?:er|re)s?|met(?:er|re)s?|kilomet(?:er|re)s?)")
_SCALE_RE = re.compile(rf"(?<![\d.,/]){_NUM}\s+({_SCALE_UNITS})\s+(?:on\s+(?:a|the)\s+map\s+)?"
                       rf"(?:stands?\s+for|represents?|equals?|is|are|means?)\s+{_NUM}\s+({_SCALE_UNITS})\b", re.I)
_SCALE_ASK_RE = re.compile(rf"\bhow\s+many\s+({_SCALE_UNITS})\s+(?:do|does|would|will|is|are)\s+{_NUM}\s+"
                           rf"({_SCALE_UNITS})\b", re.I)


def _proportion(problem: str) -> list[Form]:
    """ "2 cups of flour for every 1 cup of sugar. How many cups of sugar for 6 cups of
    flour?" is 6 x 1 / 2; "4 cm stand for 10 km. How many km do 10 cm stand for?" is
    10 x 10 / 4. Only with the three numbers and nothing else."""
    given = _given(problem)
    if len(given) != 3 and not (len(given) == 2 and len(numbers(problem)) == 3):
        return []
    q = question(problem)
    if (m := _SCALE_RE.search(problem)) and (ask := _SCALE_ASK_RE.search(q)):
        a, b, c = _num(m.group(1)), _num(m.group(3)), _num(ask.group(2))
        same = _stem(ask.group(1)) == _stem(m.group(4)) and _stem(ask.group(3)) == _stem(m.group(2))
        if same and a and b is not None and c is not None:
            return [Form("scale", c * b / a)]
        return []
    m, ask = _RATIO_RE.search(problem), _HOW_MANY_NOUN_RE.search(q)
    if m is None or ask is None or m.start() > len(problem) - len(q):  # the ratio is not in the question
        return []
    a, x, b, y = _num(m.group(1)), _stem(m.group(2)), _num(m.group(3)), _stem(m.group(4))
    wanted = _stem(ask.group(1))
    rest = [v for v in numbers(q)]
    if x == y or len(rest) != 1 or not a or not b:
        return []
    c = rest[0]
    if wanted == y and re.search(rf"\b{re.escape(x)}", q[ask.end():], re.I):
        return [Form("ratio", c * b / a)]
    if wanted == x and re.search(rf"\b{re.escape(y)}", q[ask.end():], re.I):
        return [Form("ratio", c * a / b)]
    return []


_RATE_RE = re.compile(rf"(?<![\d.,/]){_NUM}\s+([a-z]{{1,15}})\s+(?:per|an|each|every|a)\s+(hour|minute)\b", re.I)
_IN_TIME_RE = re.compile(rf"\bin\s+{_NUM}\s+(hours?|minutes?)\b", re.I)


def _rate_over_time(problem: str) -> list[Form]:
    """ "A machine makes 2 toys per hour. How many toys does it make in 6 minutes?" is
    2 x 6 / 60: a rate per hour over minutes (or per minute over hours) is converted."""
    m, t = _RATE_RE.search(problem), _IN_TIME_RE.search(question(problem))
    if m is None or t is None or len(_given(problem)) != 2 or not re.search(r"\bhow\s+many\b", question(problem), re.I):
        return []
    rate, span = _num(m.group(1)), _num(t.group(1))
    per, unit = m.group(3).lower(), t.group(2).lower().rstrip("s")
    if rate is None or span is None or per == unit:
        return []
    return [Form("rate over time", rate * span / 60 if per == "hour" else rate * span * 60)]


_MEAN_OF_RE = re.compile(rf"\b(?:average|mean)\s+of\s+(?:the\s+numbers\s+)?{_NUM}((?:\s*,\s*{_NUM}){{0,8}})\s*,?"
                         rf"\s+and\s+{_NUM}", re.I)
_COUNT_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "1": 1, "2": 2, "3": 3, "4": 4, "5": 5}
_MEAN_IS_RE = re.compile(rf"\b(?:average|mean)\s+of\s+(two|three|four|five|[2-5])\s+numbers\s+is\s+{_NUM}", re.I)
_OTHER_RE = re.compile(r"\bwhat\s+is\s+the\s+(other|second|third|fourth|fifth|sixth|last|missing|remaining)\s+number\b",
                       re.I)
_ORDINALS = {"second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6}
_SOME_ARE_RE = re.compile(rf"\b(one|two|three|four|[1-4])\s+of\s+them\s+(?:are|is)\s+(?:each\s+|all\s+)?{_NUM}", re.I)


def _mean(problem: str) -> list[Form]:
    """ "What is the average of 50 and 100?" is 75 (not their sum); "The average of two
    numbers is 2. One of them is 10. What is the other number?" is 2 x 2 - 10. Only when the
    problem gives no other number."""
    given = _given(problem)
    if m := _MEAN_OF_RE.search(question(problem)):
        values = [_num(m.group(1)), *(_num(x) for x in re.findall(_NUM, m.group(2))), _num(m.group(m.re.groups))]
        if all(v is not None for v in values) and len(set(values)) == len(given) and set(values) <= set(given):
            return [Form("average", sum(values, Fraction(0)) / len(values))]
        return []
    m = _MEAN_IS_RE.search(problem)
    other = _OTHER_RE.search(question(problem))
    if m is None or other is None:
        return []
    n, mean = _COUNT_WORDS[m.group(1).lower()], _num(m.group(2))
    if mean is None:
        return []
    if _ORDINALS.get(other.group(1).lower(), 0) > n:
        # "The average of two numbers is 15. What is the third number?"
        return [Form(f"{other.group(1).lower()} of {n} numbers", None)]
    # The numbers written in digits, after the mean: each one of the n numbers (a count
    # word such as "Two of them" is no number of the set), or "Three of them are 2".
    after = problem[m.end():]
    if (same := _SOME_ARE_RE.search(after)) and _COUNT_WORDS[same.group(1).lower()] == n - 1 and \
            len(re.findall(_NUM, after)) == 1 and (x := _num(same.group(2))) is not None:
        return [Form("missing number of an average", n * mean - (n - 1) * x)]
    rest = [_num(x) for x in re.findall(_NUM, after)]
    if any(x is None for x in rest) or len(rest) > n - 1:
        return []
    if len(rest) < n - 1:
        # "The average of three numbers is 14. One of them is 4. What is the other number?"
        return [Form(f"missing number of {n} numbers from {len(rest) + 1} given", None)]
    others = [x for x in rest if x is not None]
    return [Form("missing number of an average", n * mean - sum(others, Fraction(0)))]


_MEDIAN_RE = re.compile(rf"\bmedian\s+of\s+(?:the\s+numbers\s+)?{_NUM}((?:\s*,\s*{_NUM}){{0,8}})\s*,?\s+and\s+{_NUM}",
                        re.I)


def _median(problem: str) -> list[Form]:
    """ "What is the median of 4 and 6?" is 5: the middle of the sorted numbers, or the
    mean of the two middle ones. Only when the problem gives no other number."""
    m = _MEDIAN_RE.search(question(problem))
    if m is None:
        return []
    values = [_num(m.group(1)), *(_num(x) for x in re.findall(_NUM, m.group(2))), _num(m.group(m.re.groups))]
    if any(v is None for v in values) or len(re.findall(r"\d+(?:\.\d+)?", problem)) != len(values):
        return []
    xs = sorted(v for v in values if v is not None)
    mid = len(xs) // 2
    return [Form("median", xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2)]


_CONSECUTIVE_RE = re.compile(
    rf"\bsum\s+of\s+(two|three|four|five|[2-5])\s+consecutive\s+(?:(even|odd)\s+)?(?:whole\s+|positive\s+)?"
    rf"(?:numbers|integers)\s+is\s+{_NUM}", re.I)
_WHICH_OF_RE = re.compile(r"\b(smallest|least|largest|greatest|biggest|middle)\b", re.I)


def _consecutive(problem: str) -> list[Form]:
    """ "The sum of three consecutive odd numbers is 15. What is the smallest?" is 3: n
    numbers a step apart (1, or 2 for even or odd) from x sum to n x + step n(n-1)/2. No
    such whole numbers (two consecutive even numbers summing to 36) make the problem
    ill-posed: a form whose value is None."""
    m, which = _CONSECUTIVE_RE.search(problem), _WHICH_OF_RE.search(question(problem))
    if m is None or which is None or len(_given(problem)) > 2:
        return []
    n, kind, total = _COUNT_WORDS[m.group(1).lower()], (m.group(2) or "").lower(), _num(m.group(3))
    if total is None:
        return []
    step = 2 if kind else 1
    first = (total - step * n * (n - 1) // 2) / n
    if first.denominator != 1 or (kind == "even" and first % 2) or (kind == "odd" and not first % 2):
        return [Form(f"sum of {n} consecutive {kind or 'whole'} numbers", None)]
    pick = which.group(1).lower()
    value = first if pick in ("smallest", "least") else first + step * (n - 1) if pick != "middle" else \
        first + Fraction(step * (n - 1), 2)
    return [Form(f"{pick} of {n} consecutive {kind + ' ' if kind else ''}numbers", value)]


_MULTIPLES_IN_RE = re.compile(
    rf"\bhow\s+many\s+(?:whole\s+|positive\s+)?(?:numbers|integers)\s+from\s+{_NUM}\s+to\s+{_NUM}"
    rf"(?:,?\s+(?:counting\s+both|inclusive))?,?\s+are\s+(?:multiples\s+of|divisible\s+by)\s+{_NUM}"
    rf"(?:\s+(or|and)\s+{_NUM})?\s*\?", re.I)


def _multiples_in(problem: str) -> list[Form]:
    """ "How many whole numbers from 1 to 22 are multiples of 7?" is 3; "... of 5 or 7"
    counts either (inclusion-exclusion), "... of 5 and 7" both."""
    m = _MULTIPLES_IN_RE.search(question(problem))
    if m is None:
        return []
    ends = _whole(_num(m.group(1)), _num(m.group(2)), _num(m.group(3)))
    if ends is None or ends[0] > ends[1]:
        return []
    lo, hi, a = ends

    def count(d: int) -> int:
        return hi // d - (lo - 1) // d

    if m.group(4) is None:
        return [Form("multiples in a range", Fraction(count(a)))]
    b = _whole(_num(m.group(5)))
    if b is None:
        return []
    both = count(math.lcm(a, b[0]))
    value = count(a) + count(b[0]) - both if m.group(4).lower() == "or" else both
    return [Form("multiples in a range", Fraction(value))]


_OUTFITS_RE = re.compile(rf"\b{_NUM}\s+(?:different\s+)?shirts?\s*,?\s+and\s+{_NUM}\s+(?:different\s+)?"
                         r"(?:pairs?\s+of\s+)?(?:pants|trousers|shorts|skirts)\b", re.I)
_OUTFITS_ASKED_RE = re.compile(r"\bhow\s+many\s+(?:different\s+)?outfits\b", re.I)


def _outfits(problem: str) -> list[Form]:
    """ "Zoe has 4 shirts and 5 pairs of pants. How many different outfits can she make?"
    is 4 x 5, when the problem gives no other number (and asks for no fewest or most)."""
    m = _OUTFITS_RE.search(problem)
    if m is None or not _OUTFITS_ASKED_RE.search(question(problem)) or len(_given(problem)) != 2 or \
            re.search(r"\b(?:least|fewest|most|greatest|without|not|except)\b", problem, re.I):
        return []
    a, b = _num(m.group(1)), _num(m.group(2))
    return [] if a is None or b is None else [Form("outfits of one shirt and one pair", a * b)]


_FORMS = (_two_number_forms, _conversion, _shape_forms, _orders, _price, _percent_change, _restated_count,
          _more_of_one_than_other, _proportion, _rate_over_time, _mean, _median, _consecutive,
          _multiples_in, _outfits)


def expected(problem: str) -> list[Form]:
    """The closed forms `problem` matches, with the value each requires of the answer."""
    out: list[Form] = []
    for form in _FORMS:
        out.extend(form(problem))
    return out


def agrees(form: Form, value: Fraction) -> bool:
    """Whether an answer's value is the form's value: exactly, as a rounding of it to the
    answer's own decimals, or within 1% where the form is not exact."""
    if form.value is None:
        return False
    if value == form.value:
        return True
    if not form.exact:
        return abs(value - form.value) <= abs(form.value) / 100
    if value.denominator != 1 or form.value.denominator != 1:
        # "3.33" for 10/3: equal when rounded to the answer's decimals (at most 4).
        for digits in range(1, 5):
            if value * 10**digits == round(value * 10**digits) and \
                    abs(value - form.value) <= Fraction(1, 2 * 10**digits):
                return True
    return False
