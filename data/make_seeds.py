"""Generate the bundled seed set and the held-out eval split of easy math word problems.

Why the set looks like this:

- The student whose solve rates drive the search is a tiny 270M base model. On hard
  problems it scores 0 on everything and on trivial ones 1 on everything, and then solve
  rates carry no signal. So most problems here are genuinely easy (one operation on one-
  or two-digit numbers), with a smaller share of two-step and short multi-step word
  problems, which spreads the model's solve rates over (0, 1).
- Every answer is exact (an integer, a reduced fraction or a short terminating decimal),
  computed here with ``fractions.Fraction`` and checked against the worked solution, so
  answer matching never depends on rounding.
- Every solution is a few plain sentences ending with ``The answer is X.``, the same
  format the few-shot solving prompt asks the model for.
- The held-out split is drawn from a different RNG stream and is disjoint from the seeds
  by normalised problem text (lowercase, collapsed whitespace), so evaluation never sees
  a seed problem again.

Every problem comes from the templates below; nothing is copied from an existing dataset.
The output is deterministic: running the script twice gives byte-identical files.

The files are package data of `pipeline` (pipeline/data/), so that an installed package
finds them without this checkout.

Usage: python data/make_seeds.py [--seed 2506] [--out-dir pipeline/data] [--n-seeds 360] [--n-eval 120]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

DEFAULT_SEED = 2506
DEFAULT_N_SEEDS = 360  # 30 per skill; with 12 skills this hits the 45/35/20 mix exactly
DEFAULT_N_EVAL = 120
MIN_SEEDS_PER_SKILL = 20
# Target percent of difficulty 1, 2 and 3: mostly easy problems for a 270M student.
DIFFICULTY_PERCENT = (45, 35, 20)
MAX_TRIES = 500  # fresh draws per slot before giving up on finding an unseen problem

SEEDS_PATH = Path("seeds") / "seeds.jsonl"
EVAL_PATH = Path("eval") / "heldout.jsonl"
README_PATH = Path("README.md")

ROW_FIELDS = ("id", "skill", "difficulty", "problem", "solution", "answer")
# Integer, reduced fraction, or terminating decimal without trailing zeros.
ANSWER_RE = re.compile(r"^(0|[1-9]\d*)(/[1-9]\d*|\.\d*[1-9])?$")

NAMES = (
    "Ava", "Ben", "Chloe", "Diego", "Emma", "Farid", "Grace", "Hiro", "Isla", "Jamal",
    "Kofi", "Lena", "Maya", "Noah", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tariq",
    "Uma", "Victor", "Wen", "Yusuf", "Zoe", "Leo", "Mia", "Nina",
)
ITEMS = (
    "apples", "marbles", "stickers", "pencils", "books", "cards", "shells", "stamps",
    "cookies", "balloons", "crayons", "beads", "coins", "toy cars", "erasers",
)
# (singular, plural) goods for the money problems.
GOODS = (
    ("notebook", "notebooks"), ("pen", "pens"), ("sandwich", "sandwiches"),
    ("ticket", "tickets"), ("toy car", "toy cars"), ("book", "books"), ("muffin", "muffins"),
    ("bottle of water", "bottles of water"), ("comic", "comics"), ("bag of rice", "bags of rice"),
)
LENGTH_UNITS = ("centimeters", "meters", "feet", "inches")
# Rectangular things with a unit that suits their size (no 9-meter photos).
RECTANGLES = (
    ("rectangular rug", "feet"), ("rectangular rug", "meters"),
    ("rectangular garden", "meters"), ("rectangular garden", "feet"),
    ("rectangular photo", "centimeters"), ("rectangular photo", "inches"),
    ("rectangular table top", "inches"), ("rectangular table top", "centimeters"),
    ("rectangular playground", "meters"), ("rectangular poster", "inches"),
)
# (big unit plural, big unit singular, small unit plural, factor)
CONVERSIONS = (
    ("meters", "meter", "centimeters", 100),
    ("kilometers", "kilometer", "meters", 1000),
    ("kilograms", "kilogram", "grams", 1000),
    ("liters", "liter", "milliliters", 1000),
    ("hours", "hour", "minutes", 60),
    ("minutes", "minute", "seconds", 60),
    ("feet", "foot", "inches", 12),
    ("yards", "yard", "feet", 3),
    ("days", "day", "hours", 24),
    ("weeks", "week", "days", 7),
)


@dataclass(frozen=True)
class Draft:
    """One generated problem before it gets an id: text, solution steps, exact answer."""

    problem: str
    steps: tuple[str, ...]
    value: Fraction
    as_fraction: bool = False  # write a non-integer answer as "a/b" instead of a decimal


# --------------------------------------------------------------------------- formatting


def num(x: Fraction | int) -> str:
    """An exact number as an integer or a terminating decimal with no trailing zeros."""
    x = Fraction(x)
    if x.denominator == 1:
        return str(x.numerator)
    digits, scaled = 0, x
    while scaled.denominator != 1:
        scaled *= 10
        digits += 1
        if digits > 12:  # only 2s and 5s in the denominator terminate
            raise ValueError(f"{x} has no short terminating decimal")
    text = str(abs(scaled.numerator)).rjust(digits + 1, "0")
    sign = "-" if x < 0 else ""
    return f"{sign}{text[:-digits]}.{text[-digits:]}"


def frac(x: Fraction | int) -> str:
    """An exact number as an integer or a reduced fraction "a/b"."""
    x = Fraction(x)
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


def usd(x: Fraction | int) -> str:
    """Dollars as written in a problem: "$4" or "$4.50"."""
    cents = Fraction(x) * 100
    if cents.denominator != 1:
        raise ValueError(f"{x} is not a whole number of cents")
    whole, rest = divmod(int(cents), 100)
    return f"${whole}" if rest == 0 else f"${whole}.{rest:02d}"


def listing(values: list[int] | tuple[int, ...]) -> str:
    """"4, 8, and 12" / "4 and 8"."""
    words = [str(v) for v in values]
    if len(words) == 2:
        return f"{words[0]} and {words[1]}"
    return ", ".join(words[:-1]) + f", and {words[-1]}"


def count_of(n: int, singular: str, plural: str = "") -> str:
    """"1 hour" / "3 hours": keeps small counts grammatical."""
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def simplify_note(numerator: int, denominator: int) -> str:
    """Finish a fraction step: say whether numerator/denominator reduces."""
    value = Fraction(numerator, denominator)
    if value.denominator == denominator:
        return f"{numerator}/{denominator}."
    return f"{numerator}/{denominator}, which simplifies to {frac(value)}."


def answer_text(draft: Draft) -> str:
    return frac(draft.value) if draft.as_fraction else num(draft.value)


def normalise(text: str) -> str:
    """The key used for duplicate and overlap checks: lowercase, collapsed whitespace."""
    return " ".join(text.lower().split())


NAME_RE = re.compile(r"\b(?:" + "|".join(NAMES) + r")\b")


def template_key(text: str) -> str:
    """normalise() with every person's name masked.

    Generation rejects a draw whose key was seen before, so two problems never differ only
    by the name in them (stricter than, and implying, distinct normalised texts).
    """
    return normalise(NAME_RE.sub("<name>", text))


# ----------------------------------------------------------------------- skill: arithmetic


def gen_arithmetic(rng: random.Random, difficulty: int) -> Draft:
    if difficulty == 1:
        op = rng.choice("+-*/")
        if op == "+":
            a, b = rng.randint(2, 50), rng.randint(2, 50)
        elif op == "-":
            b = rng.randint(2, 30)
            a = b + rng.randint(1, 40)
        elif op == "*":
            a, b = rng.randint(2, 12), rng.randint(2, 12)
        else:  # pick the quotient first so division is exact
            b = rng.randint(2, 9)
            a = b * rng.randint(2, 12)
        word = {"+": "plus", "-": "minus", "*": "times", "/": "divided by"}[op]
        value = {"+": a + b, "-": a - b, "*": a * b, "/": a // b}[op]
        expr = rng.choice([f"{a} {word} {b}", f"{a} {op} {b}"])
        problem = rng.choice(
            [f"What is {expr}?", f"Compute {expr}.", f"Find the value of {expr}."]
        )
        return Draft(problem, (f"{a} {word} {b} is {value}.",), Fraction(value))

    if difficulty == 2:
        a, b, c = rng.randint(2, 12), rng.randint(2, 12), rng.randint(2, 12)
        form = rng.randrange(4)
        if form == 0:  # tests order of operations
            first, value = b * c, a + b * c
            expr = f"{a} + {b} * {c}"
            steps = (f"Multiply first: {b} times {c} = {first}.", f"Then {a} + {first} = {value}.")
        elif form == 1:
            first, value = a + b, (a + b) * c
            expr = f"({a} + {b}) * {c}"
            steps = (
                f"Work inside the parentheses first: {a} + {b} = {first}.",
                f"Then {first} times {c} = {value}.",
            )
        elif form == 2:
            c = rng.randint(1, a * b - 1)  # keep the result positive
            first, value = a * b, a * b - c
            expr = f"{a} * {b} - {c}"
            steps = (f"Multiply first: {a} times {b} = {first}.", f"Then {first} - {c} = {value}.")
        else:
            a = b * rng.randint(2, 10)
            first, value = a // b, a // b + c
            expr = f"{a} / {b} + {c}"
            steps = (f"Divide first: {a} / {b} = {first}.", f"Then {first} + {c} = {value}.")
        problem = rng.choice(
            [f"What is {expr}?", f"Evaluate {expr}.", f"Find the value of {expr}."]
        )
        return Draft(problem, steps, Fraction(value))

    name = rng.choice(NAMES)
    form = rng.randrange(3)
    if form == 0:
        item = rng.choice(ITEMS)
        boxes, per = rng.randint(2, 6), rng.randint(3, 9)
        total = boxes * per
        give, buy = rng.randint(1, total - 1), rng.randint(2, 15)
        value = total - give + buy
        problem = (
            f"{name} has {boxes} boxes with {per} {item} in each box. {name} gives away {give} "
            f"{item} and then buys {buy} more. How many {item} does {name} have now?"
        )
        steps = (
            f"{name} starts with {boxes} times {per} = {total} {item}.",
            f"After giving away {give}, {name} has {total} - {give} = {total - give}.",
            f"After buying {buy} more, {name} has {total - give} + {buy} = {value}.",
        )
    elif form == 1:
        trays, per = rng.randint(2, 5), rng.randint(6, 12)
        total = trays * per
        morning = rng.randint(1, total // 2)
        afternoon = rng.randint(1, total - morning - 1)
        value = total - morning - afternoon
        problem = (
            f"A baker makes {trays} trays of {per} muffins. {morning} muffins are sold in the "
            f"morning and {afternoon} in the afternoon. How many muffins are left?"
        )
        steps = (
            f"The baker makes {trays} times {per} = {total} muffins.",
            f"After the morning, {total} - {morning} = {total - morning} are left.",
            f"After the afternoon, {total - morning} - {afternoon} = {value} are left.",
        )
    else:
        while True:  # books taken out = whatever makes the rest split evenly; must be > 0
            rooms, each = rng.randint(2, 5), rng.randint(3, 12)
            shelves, per = rng.randint(2, 6), rng.randint(5, 10)
            total = shelves * per
            taken = total - rooms * each
            if taken > 0:
                break
        value = each
        problem = (
            f"A library has {shelves} shelves with {per} books on each shelf. {taken} books "
            f"are taken out, and the rest are shared equally among {rooms} classrooms. "
            f"How many books does each classroom get?"
        )
        steps = (
            f"The library has {shelves} times {per} = {total} books.",
            f"After {taken} are taken out, {total} - {taken} = {total - taken} books remain.",
            f"Each classroom gets {total - taken} / {rooms} = {value} books.",
        )
    return Draft(problem, steps, Fraction(value))


# ---------------------------------------------------------------------- skill: percentages


def percent_base(rng: random.Random, pct: int, hi: int) -> int:
    """A whole number <= hi whose pct% is a whole number."""
    step = 100 // math.gcd(pct, 100)
    return rng.choice(range(step, hi + 1, step))


def gen_percentages(rng: random.Random, difficulty: int) -> Draft:
    if difficulty == 1:
        pct = rng.choice((10, 20, 25, 50, 75, 30, 40))
        base = percent_base(rng, pct, 100)
        value = Fraction(pct * base, 100)
        if rng.random() < 0.5:
            problem = rng.choice([f"What is {pct}% of {base}?", f"Find {pct}% of {base}."])
        else:
            name, item = rng.choice(NAMES), rng.choice(ITEMS)
            problem = (
                f"{name} has {base} {item}. {pct}% of them are new. "
                f"How many of {name}'s {item} are new?"
            )
        steps = (f"{pct}% of {base} is {pct} / 100 times {base} = {num(value)}.",)
        return Draft(problem, steps, value)

    if difficulty == 2:
        form = rng.randrange(3)
        if form == 0:
            pct = rng.choice((10, 20, 25, 50))
            price = percent_base(rng, pct, 120)
            off = Fraction(pct * price, 100)
            value = price - off
            thing = rng.choice(("shirt", "lamp", "backpack", "game", "jacket", "clock"))
            problem = (
                f"A {thing} costs ${price}. It is on sale for {pct}% off. "
                f"What is the sale price in dollars?"
            )
            steps = (
                f"The discount is {pct}% of {price} = {num(off)} dollars.",
                f"The sale price is {price} - {num(off)} = {num(value)} dollars.",
            )
        elif form == 1:
            pct = rng.choice((10, 20, 50))
            base = percent_base(rng, pct, 300)
            extra = Fraction(pct * base, 100)
            value = base + extra
            problem = (
                f"A club had {base} members. The number of members grew by {pct}%. "
                f"How many members does the club have now?"
            )
            steps = (
                f"The increase is {pct}% of {base} = {num(extra)}.",
                f"Now there are {base} + {num(extra)} = {num(value)} members.",
            )
        else:
            total = rng.choice((10, 20, 25, 50))
            right = rng.randint(1, total - 1)
            share = Fraction(right, total)
            value = share * 100
            name = rng.choice(NAMES)
            problem = (
                f"{name} answered {right} out of {total} questions correctly. "
                f"What percent of the questions did {name} get right?"
            )
            steps = (
                f"{right} / {total} = {num(share)}.",
                f"As a percent, {num(share)} times 100 = {num(value)}%.",
            )
        return Draft(problem, steps, value)

    # difficulty 3: chained percentages. The form is drawn once (so all three stay equally
    # likely) and only its numbers are resampled until every step is a whole number.
    form = rng.randrange(3)
    while True:
        if form == 0:
            total = rng.randrange(40, 201, 20)
            p1, p2 = rng.choice((10, 20, 25, 50)), rng.choice((10, 20, 25, 50))
            sold1 = Fraction(p1 * total, 100)
            rest = total - sold1
            sold2 = Fraction(p2, 100) * rest
            value = rest - sold2
            problem = (
                f"A store has {total} shirts. It sells {p1}% of them on Monday and {p2}% of the "
                f"remaining shirts on Tuesday. How many shirts are left?"
            )
            steps = (
                f"On Monday it sells {p1}% of {total} = {num(sold1)}, leaving "
                f"{total} - {num(sold1)} = {num(rest)}.",
                f"On Tuesday it sells {p2}% of {num(rest)} = {num(sold2)}.",
                f"That leaves {num(rest)} - {num(sold2)} = {num(value)} shirts.",
            )
            parts = (sold1, sold2)
        elif form == 1:
            price = rng.randrange(20, 201, 10)
            off, tax = rng.choice((10, 20, 25, 50)), rng.choice((5, 10, 20))
            cut = Fraction(off * price, 100)
            sale = price - cut
            added = Fraction(tax, 100) * sale
            value = sale + added
            problem = (
                f"A jacket costs ${price}. It is {off}% off, and then a {tax}% sales tax is "
                f"added to the sale price. What is the final price in dollars?"
            )
            steps = (
                f"The discount is {off}% of {price} = {num(cut)}, so the sale price is "
                f"{price} - {num(cut)} = {num(sale)}.",
                f"The tax is {tax}% of {num(sale)} = {num(added)}.",
                f"The final price is {num(sale)} + {num(added)} = {num(value)} dollars.",
            )
            parts = (cut, added)
        else:
            students = rng.randrange(20, 201, 10)
            p1, p2 = rng.choice((40, 50, 60)), rng.choice((10, 20, 25, 50))
            girls = Fraction(p1 * students, 100)
            value = Fraction(p2, 100) * girls
            problem = (
                f"A school has {students} students, and {p1}% of them are girls. {p2}% of the "
                f"girls play soccer. How many girls play soccer?"
            )
            steps = (
                f"The number of girls is {p1}% of {students} = {p1} / 100 times {students} = "
                f"{num(girls)}.",
                f"{p2}% of {num(girls)} is {p2} / 100 times {num(girls)} = {num(value)}.",
                f"So {num(value)} girls play soccer.",
            )
            parts = (girls,)
        if all(p.denominator == 1 for p in (*parts, value)):
            return Draft(problem, steps, value)


# ------------------------------------------------------------------------ skill: fractions

FRACTION_DENOMINATORS = (2, 3, 4, 5, 6, 8, 10, 12)


def proper_fraction(rng: random.Random, denominator: int) -> tuple[int, int]:
    """A reduced fraction below 1 with this denominator (problems never show 4/6)."""
    numerators = [a for a in range(1, denominator) if math.gcd(a, denominator) == 1]
    return rng.choice(numerators), denominator


def add_fraction_steps(a: int, b: int, c: int, d: int, sign: str) -> tuple[list[str], Fraction]:
    """Steps for a/b +- c/d over a common denominator, and the exact result."""
    common = math.lcm(b, d)
    left, right = a * common // b, c * common // d
    top = left + right if sign == "+" else left - right
    steps = [f"A common denominator of {b} and {d} is {common}."]
    steps.append(f"{a}/{b} = {left}/{common} and {c}/{d} = {right}/{common}.")
    steps.append(
        f"So {left}/{common} {sign} {right}/{common} = " + simplify_note(top, common)
    )
    return steps, Fraction(top, common)


def gen_fractions(rng: random.Random, difficulty: int) -> Draft:
    if difficulty == 1:
        form = rng.randrange(4)
        if form in (0, 1):  # same denominators: add or subtract numerators only
            d = rng.randint(3, 12)
            if form == 0:  # keep the sum below 1
                sign, a = "+", rng.randint(1, d - 2)
                b = rng.randint(1, d - 1 - a)
            else:  # keep the difference positive
                sign, a = "-", rng.randint(2, d - 1)
                b = rng.randint(1, a - 1)
            top = a + b if sign == "+" else a - b
            expr = f"{a}/{d} {sign} {b}/{d}"
            problem = rng.choice([f"What is {expr}?", f"Compute {expr}."])
            verb = "add" if sign == "+" else "subtract"
            steps = (
                f"The denominators are both {d}, so {verb} the numerators: {a} {sign} {b} = {top}.",
                "That gives " + simplify_note(top, d),
            )
            return Draft(problem, steps, Fraction(top, d), as_fraction=True)
        if form == 2:
            k, m = rng.randint(2, 9), rng.randint(2, 10)
            problem = rng.choice([f"What is 1/{k} of {k * m}?", f"Find 1/{k} of {k * m}."])
            steps = (f"1/{k} of {k * m} is {k * m} / {k} = {m}.",)
            return Draft(problem, steps, Fraction(m), as_fraction=True)
        q = rng.randint(2, 9)
        p = rng.choice([p for p in range(1, q) if math.gcd(p, q) == 1])
        g = rng.randint(2, 6)
        problem = rng.choice(
            [f"Write {p * g}/{q * g} in simplest form.", f"Simplify the fraction {p * g}/{q * g}."]
        )
        steps = (
            f"The greatest common factor of {p * g} and {q * g} is {g}.",
            f"{p * g} / {g} = {p} and {q * g} / {g} = {q}, so the fraction is {p}/{q}.",
        )
        return Draft(problem, steps, Fraction(p, q), as_fraction=True)

    if difficulty == 2:
        form = rng.randrange(3)
        if form == 0:  # unlike denominators
            b, d = rng.sample(FRACTION_DENOMINATORS, 2)
            (a, b), (c, d) = proper_fraction(rng, b), proper_fraction(rng, d)
            sign = rng.choice("+-")
            if sign == "-" and Fraction(a, b) < Fraction(c, d):
                a, b, c, d = c, d, a, b
            if sign == "-" and Fraction(a, b) == Fraction(c, d):
                sign = "+"
            steps, value = add_fraction_steps(a, b, c, d, sign)
            expr = f"{a}/{b} {sign} {c}/{d}"
            problem = rng.choice([f"What is {expr}?", f"Compute {expr}."])
            return Draft(problem, tuple(steps), value, as_fraction=True)
        if form == 1:
            a, b = proper_fraction(rng, rng.randint(2, 6))
            c, d = proper_fraction(rng, rng.randint(2, 6))
            problem = rng.choice(
                [f"What is {a}/{b} times {c}/{d}?", f"Multiply {a}/{b} by {c}/{d}."]
            )
            steps = (
                f"Multiply the numerators: {a} times {c} = {a * c}.",
                f"Multiply the denominators: {b} times {d} = {b * d}.",
                "The product is " + simplify_note(a * c, b * d),
            )
            return Draft(problem, steps, Fraction(a * c, b * d), as_fraction=True)
        b = rng.randint(3, 8)
        a = rng.choice([a for a in range(2, b) if math.gcd(a, b) == 1])  # a reduced a/b
        m = rng.randint(2, 10)
        problem = rng.choice([f"What is {a}/{b} of {b * m}?", f"Find {a}/{b} of {b * m}."])
        steps = (f"First, {b * m} / {b} = {m}.", f"Then {m} times {a} = {m * a}.")
        return Draft(problem, steps, Fraction(m * a), as_fraction=True)

    form = rng.randrange(3)
    if form == 0:
        name1, name2 = rng.sample(NAMES, 2)
        while True:  # two different denominators, and something must be left
            a, b = 1, rng.choice((2, 3, 4))
            c, d = proper_fraction(rng, rng.choice((3, 4, 5, 6, 8)))
            if b != d and Fraction(a, b) + Fraction(c, d) < 1:
                break
        steps, eaten = add_fraction_steps(a, b, c, d, "+")
        steps = [f"Together they ate {a}/{b} + {c}/{d}. " + steps[0], *steps[1:]]
        value = 1 - eaten
        steps.append(f"The part left is 1 - {frac(eaten)} = {frac(value)}.")
        problem = (
            f"{name1} ate {a}/{b} of a pizza and {name2} ate {c}/{d} of the same pizza. "
            f"What fraction of the pizza is left?"
        )
        return Draft(problem, tuple(steps), value, as_fraction=True)
    if form == 1:
        name = rng.choice(NAMES)
        a, b = rng.randint(2, 4), rng.randint(2, 4)
        length = a * b * rng.randint(1, 5)
        used1 = length // a
        rest = length - used1
        used2 = rest // b
        value = rest - used2
        problem = (
            f"A ribbon is {length} meters long. {name} uses 1/{a} of it, then uses 1/{b} of "
            f"what is left. How many meters of ribbon remain?"
        )
        steps = (
            f"1/{a} of {length} is {used1}, so {length} - {used1} = {rest} meters are left.",
            f"1/{b} of {rest} is {used2}.",
            f"So {rest} - {used2} = {value} meters remain.",
        )
        return Draft(problem, steps, Fraction(value), as_fraction=True)
    name = rng.choice(NAMES)
    a, b = rng.sample((2, 3, 4, 5, 6), 2)  # distinct, so 1/a + 1/b < 1 and pages remain
    pages = math.lcm(a, b) * rng.randint(2, 8)
    day1, day2 = pages // a, pages // b
    value = pages - day1 - day2
    problem = (
        f"A book has {pages} pages. {name} reads 1/{a} of the book on Monday and 1/{b} of "
        f"the book on Tuesday. How many pages are left to read?"
    )
    steps = (
        f"On Monday {name} reads {pages} / {a} = {day1} pages.",
        f"On Tuesday {name} reads {pages} / {b} = {day2} pages.",
        f"Pages left: {pages} - {day1} - {day2} = {value}.",
    )
    return Draft(problem, steps, Fraction(value), as_fraction=True)


# --------------------------------------------------------------------------- skill: ratios

RATIO_PAIRS = (
    ("cats", "dogs", "at an animal shelter"),
    ("red beads", "blue beads", "in a jar"),
    ("boys", "girls", "in a class"),
    ("apples", "oranges", "in a basket"),
    ("pencils", "pens", "in a box"),
    ("cars", "trucks", "in a parking lot"),
)


def coprime_pair(rng: random.Random, hi: int) -> tuple[int, int]:
    while True:
        a, b = rng.randint(1, hi), rng.randint(1, hi)
        if a != b and math.gcd(a, b) == 1:
            return a, b


def gen_ratios(rng: random.Random, difficulty: int) -> Draft:
    if difficulty == 1:
        k, n = rng.randint(2, 9), rng.randint(2, 9)
        form = rng.randrange(4)
        if form == 0:
            problem = (
                f"A recipe uses {k} cups of flour for every 1 cup of sugar. "
                f"How many cups of flour are needed for {n} cups of sugar?"
            )
            steps = (f"Each cup of sugar needs {k} cups of flour, so {n} times {k} = {n * k}.",)
            value = n * k
        elif form == 1:
            k = rng.choice((2, 3, 4, 5, 10, 20))
            problem = (
                f"On a map, 1 centimeter stands for {k} kilometers. "
                f"How many kilometers do {n} centimeters stand for?"
            )
            steps = (f"Each centimeter is {k} kilometers, so {n} times {k} = {n * k}.",)
            value = n * k
        elif form == 2:
            problem = (
                f"On a school trip there is 1 teacher for every {k} students. "
                f"There are {n} teachers. How many students are on the trip?"
            )
            steps = (f"Each teacher has {k} students, so {n} times {k} = {n * k}.",)
            value = n * k
        else:
            problem = (
                f"A recipe uses {k} cups of flour for every 1 cup of sugar. "
                f"How many cups of sugar go with {n * k} cups of flour?"
            )
            steps = (f"Every {k} cups of flour need 1 cup of sugar, so {n * k} / {k} = {n}.",)
            value = n
        return Draft(problem, steps, Fraction(value))

    if difficulty == 2:
        a, b = coprime_pair(rng, 7)
        m = rng.randint(2, 9)
        if rng.random() < 0.6:
            first, second, place = rng.choice(RATIO_PAIRS)
            problem = (
                f"The ratio of {first} to {second} {place} is {a}:{b}. "
                f"There are {a * m} {first}. How many {second} are there?"
            )
        else:
            name = rng.choice(NAMES)
            first, second = "blue paint", "yellow paint"
            problem = (
                f"{name} mixes blue paint and yellow paint in the ratio {a}:{b}. "
                f"{name} uses {a * m} liters of blue paint. How many liters of yellow paint "
                f"does {name} need?"
            )
        steps = (
            f"Each part is {a * m} / {a} = {m}.",
            f"For the {second}, take {count_of(b, 'part')}: {b} times {m} = {b * m}.",
        )
        return Draft(problem, steps, Fraction(b * m))

    form = rng.randrange(3)
    if form in (0, 1):
        a, b = coprime_pair(rng, 7)
        m = rng.randint(2, 12)
        total = (a + b) * m
        name1, name2 = rng.sample(NAMES, 2)
        item = rng.choice(ITEMS)
        story = (
            f"{name1} and {name2} share {total} {item} in the ratio {a}:{b}. "
        )
        steps = [
            f"The ratio has {a} + {b} = {a + b} parts.",
            f"Each part is {total} / {a + b} = {m}.",
        ]
        if form == 0:
            problem = story + f"How many {item} does {name2} get?"
            steps.append(f"{name2} gets {count_of(b, 'part')}: {b} times {m} = {b * m}.")
            value = b * m
        else:
            more, less = (name1, name2) if a > b else (name2, name1)
            problem = story + f"How many more {item} does {more} get than {less}?"
            diff = abs(a - b)
            steps.append(f"{more} gets {count_of(diff, 'part')} more: "
                         f"{diff} times {m} = {diff * m}.")
            value = diff * m
        return Draft(problem, tuple(steps), Fraction(value))
    a, b, c = rng.sample(range(1, 6), 3)
    m = rng.randint(2, 10)
    total = (a + b + c) * m
    problem = (
        f"A bag has red, green and yellow marbles in the ratio {a}:{b}:{c}. There are {total} "
        f"marbles in all. How many green marbles are there?"
    )
    steps = (
        f"The ratio has {a} + {b} + {c} = {a + b + c} parts.",
        f"Each part is {total} / {a + b + c} = {m} marbles.",
        f"Green is {b} parts: {b} times {m} = {b * m}.",
    )
    return Draft(problem, steps, Fraction(b * m))


# ---------------------------------------------------------------- skill: linear_equations


def equation_prompt(rng: random.Random, var: str, equation: str) -> str:
    return rng.choice(
        [f"Solve for {var}: {equation}.", f"If {equation}, what is {var}?",
         f"Find {var} when {equation}."]
    )


def gen_linear_equations(rng: random.Random, difficulty: int) -> Draft:
    var = rng.choice("xxnyk")  # mostly x, sometimes another letter
    x = rng.randint(1, 15)
    if difficulty == 1:
        a = rng.randint(2, 9)
        form = rng.randrange(4)
        if form == 0:
            a = rng.randint(2, 20)
            eq, steps = f"{var} + {a} = {x + a}", (f"Subtract {a} from both sides: "
                                                   f"{var} = {x + a} - {a} = {x}.",)
        elif form == 1:
            a = rng.randint(2, 20)
            eq = f"{var} - {a} = {x}"
            steps = (f"Add {a} to both sides: {var} = {x} + {a} = {x + a}.",)
            x += a
        elif form == 2:
            eq, steps = f"{a}{var} = {a * x}", (f"Divide both sides by {a}: "
                                               f"{var} = {a * x} / {a} = {x}.",)
        else:
            eq, steps = f"{var} / {a} = {x}", (f"Multiply both sides by {a}: "
                                              f"{var} = {x} times {a} = {a * x}.",)
            x *= a
        return Draft(equation_prompt(rng, var, eq), steps, Fraction(x))

    if difficulty == 2:
        a, b = rng.randint(2, 9), rng.randint(1, 20)
        form = rng.randrange(4)
        if form == 0:
            eq = f"{a}{var} + {b} = {a * x + b}"
            steps = (f"Subtract {b} from both sides: {a}{var} = {a * x}.",
                     f"Divide both sides by {a}: {var} = {x}.")
        elif form == 1:
            b = rng.randint(1, a * x)
            eq = f"{a}{var} - {b} = {a * x - b}"
            steps = (f"Add {b} to both sides: {a}{var} = {a * x}.",
                     f"Divide both sides by {a}: {var} = {x}.")
        elif form == 2:
            eq = f"{var} / {a} + {b} = {x + b}"
            steps = (f"Subtract {b} from both sides: {var} / {a} = {x}.",
                     f"Multiply both sides by {a}: {var} = {a * x}.")
            x *= a
        else:
            eq = f"{a}({var} + {b}) = {a * (x + b)}"
            steps = (f"Divide both sides by {a}: {var} + {b} = {x + b}.",
                     f"Subtract {b} from both sides: {var} = {x}.")
        return Draft(equation_prompt(rng, var, eq), steps, Fraction(x))

    form = rng.randrange(4)
    if form == 0:
        c = rng.randint(2, 5)
        a, b = c + rng.randint(2, 5), rng.randint(1, 20)  # a - c >= 2: three real steps
        d = (a - c) * x + b
        eq = f"{a}{var} + {b} = {c}{var} + {d}"
        steps = (
            f"Subtract {c}{var} from both sides: {a - c}{var} + {b} = {d}.",
            f"Subtract {b} from both sides: {a - c}{var} = {d - b}.",
            f"Divide both sides by {a - c}: {var} = {x}.",
        )
        return Draft(equation_prompt(rng, var, eq), steps, Fraction(x))
    if form == 1:
        name1, name2 = rng.sample(NAMES, 2)
        k, x = rng.randint(2, 5), rng.randint(2, 12)
        total = (k + 1) * x
        problem = (
            f"{name1} is {k} times as old as {name2}. Together their ages add up to {total} "
            f"years. How old is {name2}?"
        )
        steps = (
            f"Let {name2}'s age be x. Then {name1}'s age is {k}x.",
            f"x + {k}x = {k + 1}x = {total}.",
            f"So x = {total} / {k + 1} = {x}.",
        )
        return Draft(problem, steps, Fraction(x))
    if form == 2:
        x = rng.randint(2, 40)
        total = 3 * x + 3
        problem = (
            f"The sum of three consecutive whole numbers is {total}. "
            f"What is the smallest of the three numbers?"
        )
        steps = (
            "Call the numbers x, x + 1 and x + 2.",
            f"Their sum is 3x + 3 = {total}, so 3x = {total - 3}.",
            f"Then x = {total - 3} / 3 = {x}.",
        )
        return Draft(problem, steps, Fraction(x))
    a, b = rng.randint(2, 5), rng.randint(1, 9)
    result = 2 * (a * x + b)
    problem = (
        f"I think of a number. I multiply it by {a}, add {b}, and then double the result. "
        f"I get {result}. What is my number?"
    )
    steps = (
        f"Undo the doubling: {result} / 2 = {a * x + b}.",
        f"Undo adding {b}: {a * x + b} - {b} = {a * x}.",
        f"Undo multiplying by {a}: {a * x} / {a} = {x}.",
    )
    return Draft(problem, steps, Fraction(x))


# ----------------------------------------------------------------- skill: area_perimeter


def gen_area_perimeter(rng: random.Random, difficulty: int) -> Draft:
    unit = rng.choice(LENGTH_UNITS)  # for bare shapes; named things bring their own unit
    thing, thing_unit = rng.choice(RECTANGLES)
    if difficulty == 1:
        form = rng.randrange(3)
        if form == 0:
            length = rng.randint(3, 12)
            width = rng.randint(2, length - 1)
            unit = thing_unit
            problem = (
                f"A {thing} is {length} {unit} long and {width} {unit} wide. "
                f"What is its area in square {unit}?"
            )
            steps = (f"Area = length times width = {length} times {width} = {length * width}.",)
            value = length * width
        elif form == 1:
            side = rng.randint(2, 15)
            problem = rng.choice([
                f"A square has sides that are {side} {unit} long. What is its perimeter in {unit}?",
                f"What is the perimeter of a square with side {side} {unit}, in {unit}?",
            ])
            steps = (f"A square has 4 equal sides, so the perimeter is 4 times {side} = "
                     f"{4 * side}.",)
            value = 4 * side
        else:
            side = rng.randint(2, 12)
            problem = (
                f"What is the area, in square {unit}, of a square with sides {side} {unit} long?"
            )
            steps = (f"Area = side times side = {side} times {side} = {side * side}.",)
            value = side * side
        return Draft(problem, steps, Fraction(value))

    if difficulty == 2:
        form = rng.randrange(3)
        if form == 0:
            length = rng.randint(4, 20)
            width = rng.randint(2, min(length - 1, 12))
            unit = thing_unit
            problem = (
                f"A {thing} is {length} {unit} long and {width} {unit} wide. "
                f"What is its perimeter in {unit}?"
            )
            steps = (f"Length plus width is {length} + {width} = {length + width}.",
                     f"The perimeter is 2 times {length + width} = {2 * (length + width)}.")
            value = 2 * (length + width)
        elif form == 1:
            base, height = rng.randint(2, 14), rng.randint(2, 12)
            if base * height % 2:
                base += 1
            problem = (
                f"A triangle has a base of {base} {unit} and a height of {height} {unit}. "
                f"What is its area in square {unit}?"
            )
            steps = (f"Base times height is {base} times {height} = {base * height}.",
                     f"The area is half of that: {base * height} / 2 = {base * height // 2}.")
            value = base * height // 2
        else:
            side = rng.randint(2, 12)
            problem = (
                f"A square has a perimeter of {4 * side} {unit}. "
                f"What is its area in square {unit}?"
            )
            steps = (f"Each side is {4 * side} / 4 = {side}.",
                     f"The area is {side} times {side} = {side * side}.")
            value = side * side
        return Draft(problem, steps, Fraction(value))

    form = rng.randrange(3)
    if form == 0:
        length = rng.randint(4, 12)
        width = rng.randint(2, length - 1)
        problem = (
            f"A rectangle has an area of {length * width} square {unit}. Its length is {length} "
            f"{unit}. What is its perimeter in {unit}?"
        )
        steps = (
            f"The width is {length * width} / {length} = {width}.",
            f"Length plus width is {length} + {width} = {length + width}.",
            f"The perimeter is 2 times {length + width} = {2 * (length + width)}.",
        )
        return Draft(problem, steps, Fraction(2 * (length + width)))
    if form == 1:
        length, cost = rng.randint(5, 20), rng.randint(2, 9)
        width = rng.randint(3, min(length - 1, 12))
        perimeter = 2 * (length + width)
        problem = (
            f"A rectangular garden is {length} meters long and {width} meters wide. A fence "
            f"around it costs ${cost} per meter. How many dollars does the fence cost?"
        )
        steps = (
            f"Length plus width is {length} + {width} = {length + width}.",
            f"The perimeter is 2 times {length + width} = {perimeter} meters.",
            f"The fence costs {perimeter} times {cost} = {perimeter * cost} dollars.",
        )
        return Draft(problem, steps, Fraction(perimeter * cost))
    unit = rng.choice(("meters", "feet"))
    l1, w1 = rng.randint(4, 10), rng.randint(3, 8)
    l2, w2 = rng.randint(2, 6), rng.randint(2, 5)
    area1, area2 = l1 * w1, l2 * w2
    problem = (
        f"A floor is made of two rectangles. One is {l1} {unit} by {w1} {unit} and the other "
        f"is {l2} {unit} by {w2} {unit}. What is the total area of the floor in square {unit}?"
    )
    steps = (
        f"The first rectangle has area {l1} times {w1} = {area1}.",
        f"The second rectangle has area {l2} times {w2} = {area2}.",
        f"The total area is {area1} + {area2} = {area1 + area2}.",
    )
    return Draft(problem, steps, Fraction(area1 + area2))


# ------------------------------------------------------------------------ skill: counting


def gen_counting(rng: random.Random, difficulty: int) -> Draft:
    if difficulty == 1:
        form = rng.randrange(4)
        a, b = rng.randint(2, 7), rng.randint(2, 7)
        if form == 0:
            name = rng.choice(NAMES)
            problem = (
                f"{name} has {a} shirts and {b} pairs of pants. How many different outfits of "
                f"one shirt and one pair of pants can {name} make?"
            )
            steps = (f"Each of the {a} shirts goes with each of the {b} pairs of pants, so "
                     f"{a} times {b} = {a * b}.",)
            value = a * b
        elif form == 1:
            problem = (
                f"A cafe offers {a} kinds of sandwiches and {b} kinds of drinks. How many "
                f"different lunches of one sandwich and one drink can you choose?"
            )
            steps = (f"There are {a} choices of sandwich and {b} of drink, so "
                     f"{a} times {b} = {a * b}.",)
            value = a * b
        elif form == 2:
            lo = rng.randint(2, 40)
            hi = lo + rng.randint(3, 25)
            problem = f"How many whole numbers are there from {lo} to {hi}, counting both?"
            steps = (f"The count is {hi} - {lo} + 1 = {hi - lo + 1}.",)
            value = hi - lo + 1
        else:
            lo = rng.randint(2, 60)
            hi = lo + rng.randint(3, 30)
            problem = (
                f"A chapter of a book starts on page {lo} and ends on page {hi}. "
                f"How many pages does the chapter have?"
            )
            steps = (f"The chapter has {hi} - {lo} + 1 = {hi - lo + 1} pages.",)
            value = hi - lo + 1
        return Draft(problem, steps, Fraction(value))

    if difficulty == 2:
        form = rng.randrange(4)
        if form == 0:
            n = rng.randint(3, 5)
            chain = " times ".join(str(k) for k in range(n, 0, -1))
            problem = rng.choice([
                f"In how many different orders can {n} friends stand in a line?",
                f"In how many ways can {n} different books be arranged on a shelf?",
            ])
            steps = (f"There are {n} choices for the first place, {n - 1} for the next, and so on.",
                     f"So {chain} = {math.factorial(n)}.")
            value = math.factorial(n)
        elif form == 1:
            n = rng.randint(4, 10)
            problem = (
                f"{n} people meet, and every person shakes hands with every other person once. "
                f"How many handshakes are there?"
            )
            steps = (f"Each person shakes {n - 1} hands, giving {n} times {n - 1} = {n * (n - 1)}.",
                     f"Each handshake is counted twice, so {n * (n - 1)} / 2 = {n * (n - 1) // 2}.")
            value = n * (n - 1) // 2
        elif form == 2:
            k = rng.randint(3, 9)
            problem = (
                f"How many two-digit codes can be made from the digits 1 to {k} if no digit is "
                f"used twice?"
            )
            steps = (f"There are {k} choices for the first digit and {k - 1} for the second.",
                     f"So {k} times {k - 1} = {k * (k - 1)}.")
            value = k * (k - 1)
        else:
            a, b, c = rng.randint(2, 4), rng.randint(2, 5), rng.randint(2, 4)
            problem = (
                f"A dinner menu has {a} starters, {b} main dishes and {c} desserts. How many "
                f"different meals of one starter, one main dish and one dessert are possible?"
            )
            steps = (f"First, {a} times {b} = {a * b}.", f"Then {a * b} times {c} = {a * b * c}.")
            value = a * b * c
        return Draft(problem, steps, Fraction(value))

    form = rng.randrange(3)
    if form == 0:
        a, b = rng.choice(((2, 3), (2, 5), (3, 4), (3, 5), (2, 7), (4, 5), (3, 7)))
        limit = rng.randint(20, 60)
        na, nb, nab = limit // a, limit // b, limit // (a * b)
        value = na + nb - nab
        problem = f"How many whole numbers from 1 to {limit} are multiples of {a} or {b}?"
        steps = (
            f"From 1 to {limit} there are {na} multiples of {a} and {nb} multiples of {b}.",
            f"Multiples of both are multiples of {a * b}, and there "
            f"{'is' if nab == 1 else 'are'} {nab} of those.",
            f"So {na} + {nb} - {nab} = {value}.",
        )
        return Draft(problem, steps, Fraction(value))
    if form == 1:
        n = rng.randint(5, 9)
        ordered = n * (n - 1) * (n - 2)
        value = ordered // 6
        problem = (
            f"A club has {n} members. In how many ways can a group of 3 members be chosen to "
            f"plan a party?"
        )
        steps = (
            f"Picking in order gives {n} times {n - 1} times {n - 2} = {ordered}.",
            "Each group of 3 is counted 3 times 2 times 1 = 6 times.",
            f"So {ordered} / 6 = {value}.",
        )
        return Draft(problem, steps, Fraction(value))
    letters, digits = rng.randint(2, 5), rng.randint(2, 5)
    last_letter = "ABCDE"[letters - 1]
    value = letters * letters * digits * digits
    problem = (
        f"A locker code is 2 letters followed by 2 digits. Each letter is one of A to "
        f"{last_letter}, each digit is one of 1 to {digits}, and repeats are allowed. "
        f"How many codes are possible?"
    )
    steps = (
        f"The letters give {letters} times {letters} = {letters * letters} choices.",
        f"The digits give {digits} times {digits} = {digits * digits} choices.",
        f"In all, {letters * letters} times {digits * digits} = {value} codes.",
    )
    return Draft(problem, steps, Fraction(value))


# -------------------------------------------------------------------- skill: divisibility


def multiples_until(n: int, stop: int) -> str:
    return ", ".join(str(k) for k in range(n, stop + 1, n))


def lcm_steps(a: int, b: int) -> tuple[str, ...]:
    common = math.lcm(a, b)
    return (
        f"Multiples of {a}: {multiples_until(a, common)}.",
        f"Multiples of {b}: {multiples_until(b, common)}.",
        f"The first number in both lists is {common}.",
    )


def gcd_steps(a: int, b: int) -> tuple[str, ...]:
    shared = [d for d in divisors(a) if b % d == 0]
    return (
        f"Factors of {a}: {', '.join(map(str, divisors(a)))}.",
        f"Factors of {b}: {', '.join(map(str, divisors(b)))}.",
        f"The common factors are {', '.join(map(str, shared))}, and the greatest is {shared[-1]}.",
    )


def gcd_pair(rng: random.Random) -> tuple[int, int]:
    """Two numbers <= 48 with a common factor > 1 (so the gcd is not a trivial 1)."""
    g = rng.randint(2, 8)
    p, q = coprime_pair(rng, 48 // g)
    return g * p, g * q


def gen_divisibility(rng: random.Random, difficulty: int) -> Draft:
    if difficulty == 1:
        form = rng.randrange(3)
        if form in (0, 1):
            b = rng.randint(3, 9)
            a = b * rng.randint(2, 9) + rng.randint(1, b - 1)
            q, r = divmod(a, b)
            if form == 0:
                problem = f"What is the remainder when {a} is divided by {b}?"
            else:
                item = rng.choice(ITEMS)
                problem = (
                    f"{a} {item} are shared equally among {b} friends. Each friend gets as many "
                    f"as possible. How many {item} are left over?"
                )
            steps = (f"{b} times {q} = {b * q}, and {a} - {b * q} = {r}.",)
            return Draft(problem, steps, Fraction(r))
        n, k = rng.randint(3, 12), rng.randint(2, 10)
        problem = f"What is the {ordinal(k)} multiple of {n}?"
        steps = (f"The {ordinal(k)} multiple of {n} is {k} times {n} = {k * n}.",)
        return Draft(problem, steps, Fraction(k * n))

    if difficulty == 2:
        form = rng.randrange(4)
        if form == 0:
            a, b = gcd_pair(rng)
            problem = f"What is the greatest common factor of {a} and {b}?"
            return Draft(problem, gcd_steps(a, b), Fraction(math.gcd(a, b)))
        if form == 1:
            a, b = rng.sample(range(2, 13), 2)
            if math.lcm(a, b) > 60:
                return gen_divisibility(rng, difficulty)
            problem = f"What is the least common multiple of {a} and {b}?"
            return Draft(problem, lcm_steps(a, b), Fraction(math.lcm(a, b)))
        if form == 2:
            k, limit = rng.randint(3, 9), rng.randint(20, 99)
            q, r = divmod(limit, k)
            problem = f"How many multiples of {k} are there from 1 to {limit}?"
            steps = (f"{limit} / {k} is {q} with remainder {r}.",
                     f"So the multiples are {k} times 1 up to {k} times {q}, which is {q} numbers.")
            return Draft(problem, steps, Fraction(q))
        n, x = rng.randint(3, 12), rng.randint(20, 90)
        value = (x // n + 1) * n
        problem = f"What is the smallest multiple of {n} that is greater than {x}?"
        steps = (f"{x} / {n} is {x // n} with remainder {x % n}.",
                 f"The next multiple is {x // n + 1} times {n} = {value}.")
        return Draft(problem, steps, Fraction(value))

    form = rng.randrange(3)
    if form == 0:
        a, b = rng.sample((4, 5, 6, 8, 9, 10, 12, 15), 2)
        if math.lcm(a, b) > 60:
            return gen_divisibility(rng, difficulty)
        problem = (
            f"One bus leaves the station every {a} minutes and another every {b} minutes. Both "
            f"leave together right now. In how many minutes will they next leave together?"
        )
        steps = (*lcm_steps(a, b), f"They leave together again in {math.lcm(a, b)} minutes.")
        return Draft(problem, steps, Fraction(math.lcm(a, b)))
    if form == 1:
        a, b = gcd_pair(rng)
        name = rng.choice(NAMES)
        problem = (
            f"{name} has {a} red beads and {b} blue beads. {name} wants to fill identical bags "
            f"using all the beads, with none left over. What is the greatest number of bags "
            f"{name} can fill?"
        )
        steps = (*gcd_steps(a, b), f"So {name} can fill {math.gcd(a, b)} bags.")
        return Draft(problem, steps, Fraction(math.gcd(a, b)))
    a, b, c = rng.choice(((2, 3, 4), (2, 3, 5), (3, 4, 6), (2, 4, 5), (3, 4, 5), (2, 3, 7),
                          (4, 6, 8), (2, 5, 6), (3, 5, 6), (2, 4, 7)))
    common = math.lcm(a, b, c)
    problem = (
        f"What is the smallest whole number greater than 1 that leaves a remainder of 1 when "
        f"divided by {a}, by {b}, and by {c}?"
    )
    steps = (
        f"The number minus 1 must be a multiple of {a}, {b} and {c}.",
        f"The least common multiple of {a}, {b} and {c} is {common}.",
        f"So the number is {common} + 1 = {common + 1}.",
    )
    return Draft(problem, steps, Fraction(common + 1))


# --------------------------------------------------------------------------- skill: money


def gen_money(rng: random.Random, difficulty: int) -> Draft:
    name = rng.choice(NAMES)
    (one, many), (one2, many2) = rng.sample(GOODS, 2)
    if difficulty == 1:
        form = rng.randrange(4)
        if form == 0:
            price, k = rng.randint(2, 9), rng.randint(2, 9)
            problem = f"A {one} costs ${price}. How much do {k} {many} cost, in dollars?"
            steps = (f"{k} times {price} = {k * price}.",)
            value = k * price
        elif form == 1:
            bill = rng.choice((10, 20, 50))
            price = rng.randint(2, min(bill - 1, 30))
            problem = (
                f"{name} buys a {one} for ${price} and pays with a ${bill} bill. "
                f"How much change does {name} get, in dollars?"
            )
            steps = (f"The change is {bill} - {price} = {bill - price}.",)
            value = bill - price
        elif form == 2:
            p1, p2 = rng.randint(2, 20), rng.randint(2, 20)
            problem = (
                f"{name} buys a {one} for ${p1} and a {one2} for ${p2}. "
                f"How many dollars does {name} spend?"
            )
            steps = (f"{name} spends {p1} + {p2} = {p1 + p2} dollars.",)
            value = p1 + p2
        else:
            have, earn = rng.randint(5, 40), rng.randint(2, 20)
            problem = (
                f"{name} has ${have} and earns ${earn} more for doing chores. "
                f"How many dollars does {name} have now?"
            )
            steps = (f"{name} has {have} + {earn} = {have + earn} dollars.",)
            value = have + earn
        return Draft(problem, steps, Fraction(value))

    if difficulty == 2:
        form = rng.randrange(3)
        if form == 0:
            price, k = rng.randint(2, 9), rng.randint(2, 5)
            bill = rng.choice([b for b in (20, 50, 100) if b > price * k])
            cost = price * k
            problem = (
                f"{name} buys {k} {many} at ${price} each and pays with a ${bill} bill. "
                f"How much change does {name} get, in dollars?"
            )
            steps = (f"The {many} cost {k} times {price} = {cost} dollars.",
                     f"The change is {bill} - {cost} = {bill - cost} dollars.")
            value = Fraction(bill - cost)
        elif form == 1:
            price = Fraction(rng.randint(1, 6)) + Fraction(1, 2)
            k = rng.randint(2, 6)
            value = price * k
            problem = f"A {one} costs {usd(price)}. How many dollars do {k} {many} cost?"
            steps = (f"Each {one} costs {num(price)} dollars.",
                     f"{k} times {num(price)} = {num(value)} dollars.")
        else:
            a, b = rng.randint(2, 5), rng.randint(2, 5)
            p1, p2 = rng.randint(2, 9), rng.randint(2, 9)
            value = Fraction(a * p1 + b * p2)
            problem = (
                f"{name} buys {a} {many} at ${p1} each and {b} {many2} at ${p2} each. "
                f"How many dollars does {name} spend in all?"
            )
            steps = (f"The {many} cost {a} times {p1} = {a * p1} dollars.",
                     f"The {many2} cost {b} times {p2} = {b * p2} dollars.",
                     f"In all, {a * p1} + {b * p2} = {num(value)} dollars.")
        return Draft(problem, steps, value)

    form = rng.randrange(3)
    if form == 0:
        a, b = rng.randint(2, 4), rng.randint(2, 5)
        p1, p2 = rng.randint(3, 15), rng.randint(1, 6)
        cost = a * p1 + b * p2
        bill = rng.choice([x for x in (20, 50, 100) if x > cost])
        problem = (
            f"{name} buys {a} {many} at ${p1} each and {b} {many2} at ${p2} each, and pays "
            f"with a ${bill} bill. How much change does {name} get, in dollars?"
        )
        steps = (
            f"The {many} cost {a} times {p1} = {a * p1} dollars.",
            f"The {many2} cost {b} times {p2} = {b * p2} dollars, so the total is "
            f"{a * p1} + {b * p2} = {cost}.",
            f"The change is {bill} - {cost} = {bill - cost} dollars.",
        )
        return Draft(problem, steps, Fraction(bill - cost))
    if form == 1:
        rate, h1, h2 = rng.randint(6, 15), rng.randint(2, 6), rng.randint(2, 6)
        earned = rate * (h1 + h2)
        spent = rng.randint(5, earned - 1)
        problem = (
            f"{name} earns ${rate} per hour. {name} works {h1} hours on Saturday and {h2} hours "
            f"on Sunday, then spends ${spent}. How many dollars does {name} have left?"
        )
        steps = (
            f"{name} works {h1} + {h2} = {h1 + h2} hours.",
            f"{name} earns {h1 + h2} times {rate} = {earned} dollars.",
            f"After spending {spent}, {name} has {earned} - {spent} = {earned - spent} dollars.",
        )
        return Draft(problem, steps, Fraction(earned - spent))
    friends = rng.randint(2, 5)
    share = rng.randint(6, 20)
    total = friends * share
    pizza = rng.randint(total // 3, total - 4)
    drinks = rng.randint(1, total - pizza - 1)
    dessert = total - pizza - drinks
    problem = (
        f"{friends} friends share a bill equally. The pizza costs ${pizza}, the drinks cost "
        f"${drinks} and the dessert costs ${dessert}. How many dollars does each friend pay?"
    )
    steps = (
        f"The pizza and drinks cost {pizza} + {drinks} = {pizza + drinks} dollars.",
        f"With dessert the bill is {pizza + drinks} + {dessert} = {total} dollars.",
        f"Each friend pays {total} / {friends} = {share} dollars.",
    )
    return Draft(problem, steps, Fraction(share))


# ---------------------------------------------------------------------- skill: time_rates


def together_hours() -> list[tuple[int, int]]:
    """Pairs of solo times whose combined time ab/(a+b) is a whole or half hour."""
    pairs = []
    for a in range(2, 21):
        for b in range(a + 1, 31):
            t = Fraction(a * b, a + b)
            if (2 * t).denominator == 1:
                pairs.append((a, b))
    return pairs


TOGETHER_PAIRS = together_hours()


def gen_time_rates(rng: random.Random, difficulty: int) -> Draft:
    name = rng.choice(NAMES)
    if difficulty == 1:
        form = rng.randrange(4)
        speed, hours = rng.randrange(20, 91, 5), rng.randint(2, 5)
        if form == 0:
            problem = (
                f"A car travels at {speed} kilometers per hour for {hours} hours. "
                f"How many kilometers does it travel?"
            )
            steps = (f"Distance = speed times time = {speed} times {hours} = {speed * hours}.",)
            value = speed * hours
        elif form == 1:
            problem = (
                f"A train travels {speed * hours} kilometers at {speed} kilometers per hour. "
                f"How many hours does the trip take?"
            )
            steps = (f"Time = distance / speed = {speed * hours} / {speed} = {hours}.",)
            value = hours
        elif form == 2:
            rate, t = rng.randint(3, 12), rng.randint(2, 9)
            problem = (
                f"A machine makes {rate} toys per minute. How many toys does it make in "
                f"{t} minutes?"
            )
            steps = (f"{rate} times {t} = {rate * t}.",)
            value = rate * t
        else:
            verb = "cycles" if speed <= 30 else "drives"
            problem = (
                f"{name} {verb} {speed * hours} kilometers in {hours} hours. "
                f"What is {name}'s speed in kilometers per hour?"
            )
            steps = (f"Speed = distance / time = {speed * hours} / {hours} = {speed}.",)
            value = speed
        return Draft(problem, steps, Fraction(value))

    if difficulty == 2:
        form = rng.randrange(3)
        if form == 0:
            s1, h1 = rng.randrange(30, 81, 10), rng.randint(1, 3)
            s2, h2 = rng.randrange(30, 81, 10), rng.randint(1, 3)
            d1, d2 = s1 * h1, s2 * h2
            problem = (
                f"{name} drives for {count_of(h1, 'hour')} at {s1} kilometers per hour and then "
                f"for {count_of(h2, 'hour')} at {s2} kilometers per hour. How many kilometers "
                f"does {name} drive?"
            )
            steps = (f"The first part is {s1} times {h1} = {d1} km.",
                     f"The second part is {s2} times {h2} = {d2} km, so {d1} + {d2} = {d1 + d2}.")
            return Draft(problem, steps, Fraction(d1 + d2))
        if form == 1:
            minutes = rng.choice((5, 6, 10, 12, 15, 20, 24, 30, 36, 40, 45, 48, 50))
            speed = rng.choice([s for s in (3, 4, 5, 6, 8, 10, 12, 15, 18, 20, 24, 30, 40, 45,
                                            48, 50, 60, 72, 90) if s * minutes % 60 == 0])
            distance = speed * minutes // 60
            part = Fraction(distance, speed)  # always under an hour: minutes <= 45
            verb = "walk" if speed <= 6 else "cycle" if speed <= 20 else "drive"
            problem = (
                f"{name} {verb}s at {speed} kilometers per hour. How many minutes does it take "
                f"{name} to {verb} {distance} kilometers?"
            )
            steps = (f"The time is {distance} / {speed} = {frac(part)} of an hour.",
                     f"{frac(part)} of 60 minutes is {minutes} minutes.")
            return Draft(problem, steps, Fraction(minutes))
        rate = rng.randint(2, 12)
        start, t = rng.randint(5, 40), rng.randint(3, 12)
        capacity = start + rate * t
        problem = (
            f"A tank holds {capacity} liters and already has {start} liters in it. A pump adds "
            f"{rate} liters per minute. How many minutes until the tank is full?"
        )
        steps = (f"The tank needs {capacity} - {start} = {capacity - start} more liters.",
                 f"At {rate} liters per minute, that takes {capacity - start} / {rate} = "
                 f"{t} minutes.")
        return Draft(problem, steps, Fraction(t))

    form = rng.randrange(3)
    if form == 0:
        a, b = rng.choice(TOGETHER_PAIRS)
        name2 = rng.choice([n for n in NAMES if n != name])
        rate = Fraction(1, a) + Fraction(1, b)
        value = 1 / rate
        problem = (
            f"{name} can paint a fence in {a} hours and {name2} can paint it in {b} hours. "
            f"Working together, how many hours do they take to paint the fence?"
        )
        steps = (
            f"{name} paints 1/{a} of the fence per hour and {name2} paints 1/{b}.",
            f"Together they paint 1/{a} + 1/{b} = {frac(rate)} of the fence per hour.",
            f"So the job takes 1 / ({frac(rate)}) = {num(value)} hours.",
        )
        return Draft(problem, steps, value)
    if form == 1:
        s1, s2, t = rng.randrange(40, 91, 10), rng.randrange(40, 91, 10), rng.randint(2, 4)
        distance = (s1 + s2) * t
        problem = (
            f"Two towns are {distance} kilometers apart. A train leaves the first town at {s1} "
            f"kilometers per hour, and at the same time a train leaves the second town toward it "
            f"at {s2} kilometers per hour. How many kilometers from the first town do they meet?"
        )
        steps = (
            f"Together they close {s1} + {s2} = {s1 + s2} kilometers each hour.",
            f"They meet after {distance} / {s1 + s2} = {t} hours.",
            f"The first train has gone {s1} times {t} = {s1 * t} kilometers.",
        )
        return Draft(problem, steps, Fraction(s1 * t))
    while True:
        t1, t2 = rng.randint(1, 4), rng.randint(1, 4)
        distance = rng.choice([d for d in range(30, 241, 30) if d % t1 == 0 and d % t2 == 0])
        s1, s2 = distance // t1, distance // t2
        average = Fraction(2 * distance, t1 + t2)
        if t1 != t2 and average.denominator == 1 and max(s1, s2) <= 120:
            break
    problem = (
        f"{name} drives {distance} kilometers to a lake at {s1} kilometers per hour and drives "
        f"back the same way at {s2} kilometers per hour. What is {name}'s average speed for the "
        f"whole trip, in kilometers per hour?"
    )
    steps = (
        f"Going takes {distance} / {s1} = {count_of(t1, 'hour')} and coming back takes "
        f"{distance} / {s2} = {count_of(t2, 'hour')}.",
        f"The whole trip is {2 * distance} kilometers in {t1 + t2} hours.",
        f"Average speed = {2 * distance} / {t1 + t2} = {num(average)}.",
    )
    return Draft(problem, steps, average)


# ------------------------------------------------------------------------ skill: averages


def numbers_with_mean(rng: random.Random, count: int, mean: int, spread: int) -> list[int]:
    """count positive whole numbers around mean whose average is exactly mean."""
    while True:
        values = [mean + rng.randint(-spread, spread) for _ in range(count - 1)]
        last = count * mean - sum(values)
        if all(v > 0 for v in values) and last > 0 and abs(last - mean) <= 2 * spread:
            return [*values, last]


def mean_steps(values: list[int]) -> tuple[str, ...]:
    total = sum(values)
    return (
        f"The sum is {' + '.join(map(str, values))} = {total}.",
        f"There are {len(values)} numbers, so the average is {total} / {len(values)} = "
        f"{num(Fraction(total, len(values)))}.",
    )


def gen_averages(rng: random.Random, difficulty: int) -> Draft:
    name = rng.choice(NAMES)
    if difficulty == 1:
        count, mean = rng.choice((2, 2, 3)), rng.randint(3, 20)
        values = numbers_with_mean(rng, count, mean, 6)
        form = rng.randrange(3)
        if form == 0:
            problem = f"What is the average of {listing(values)}?"
        elif form == 1:
            problem = f"Find the mean of {listing(values)}."
        else:
            problem = (
                f"{name} scored {listing(values)} points in {count} games. "
                f"What is {name}'s average score per game?"
            )
        return Draft(problem, mean_steps(values), Fraction(mean))

    if difficulty == 2:
        form = rng.randrange(3)
        if form == 0:
            count, mean = rng.randint(4, 5), rng.randint(5, 30)
            values = numbers_with_mean(rng, count, mean, 8)
            problem = rng.choice([
                f"What is the average of {listing(values)}?",
                f"{name} read {listing(values)} pages on {count} days. What is the average "
                f"number of pages per day?",
            ])
            return Draft(problem, mean_steps(values), Fraction(mean))
        if form == 1:
            mean = rng.randint(5, 30)
            known = rng.randint(1, 2 * mean - 1)
            other = 2 * mean - known
            problem = (
                f"The average of two numbers is {mean}. One of the numbers is {known}. "
                f"What is the other number?"
            )
            steps = (f"The two numbers add up to 2 times {mean} = {2 * mean}.",
                     f"The other number is {2 * mean} - {known} = {other}.")
            return Draft(problem, steps, Fraction(other))
        mean = rng.randint(5, 30)
        a, b, c = numbers_with_mean(rng, 3, mean, 8)
        problem = (
            f"The average of three numbers is {mean}. Two of them are {a} and {b}. "
            f"What is the third number?"
        )
        steps = (f"The three numbers add up to 3 times {mean} = {3 * mean}.",
                 f"The third number is {3 * mean} - {a} - {b} = {c}.")
        return Draft(problem, steps, Fraction(c))

    form = rng.randrange(3)
    if form == 0:
        tests, target = rng.randint(3, 4), rng.randrange(70, 91, 2)
        scores = numbers_with_mean(rng, tests + 1, target, 8)
        needed, scores = scores[-1], scores[:-1]
        if needed > 100:
            return gen_averages(rng, difficulty)
        problem = (
            f"{name}'s scores on {tests} tests are {listing(scores)}. What score does {name} "
            f"need on the next test to have an average of {target} on all {tests + 1} tests?"
        )
        steps = (
            f"An average of {target} on {tests + 1} tests needs a total of {tests + 1} times "
            f"{target} = {(tests + 1) * target}.",
            f"The scores so far add up to {' + '.join(map(str, scores))} = {sum(scores)}.",
            f"So {name} needs {(tests + 1) * target} - {sum(scores)} = {needed}.",
        )
        return Draft(problem, steps, Fraction(needed))
    if form == 1:
        group, old = rng.randint(3, 6), rng.randrange(60, 81, 2)
        new = old + rng.randint(1, 4)
        newcomer = (group + 1) * new - group * old
        if newcomer > 100:
            return gen_averages(rng, difficulty)
        problem = (
            f"{group} students have an average score of {old}. A new student joins and the "
            f"average of all {group + 1} students becomes {new}. What is the new student's score?"
        )
        steps = (
            f"The {group} students score {group} times {old} = {group * old} in total.",
            f"The {group + 1} students score {group + 1} times {new} = {(group + 1) * new}.",
            f"The new student scored {(group + 1) * new} - {group * old} = {newcomer}.",
        )
        return Draft(problem, steps, Fraction(newcomer))
    count, mean = rng.randint(4, 6), rng.randint(6, 20)
    values = numbers_with_mean(rng, count, mean, 5)
    removed = values[-1]
    rest = Fraction(count * mean - removed, count - 1)
    if rest.denominator != 1:
        return gen_averages(rng, difficulty)
    problem = (
        f"The average of {count} numbers is {mean}. When one number is removed, the average of "
        f"the other {count - 1} numbers is {num(rest)}. What number was removed?"
    )
    steps = (
        f"The {count} numbers add up to {count} times {mean} = {count * mean}.",
        f"The other {count - 1} add up to {count - 1} times {num(rest)} = "
        f"{(count - 1) * int(rest)}.",
        f"The removed number is {count * mean} - {(count - 1) * int(rest)} = {removed}.",
    )
    return Draft(problem, steps, Fraction(removed))


# ---------------------------------------------------------------- skill: unit_conversion


def gen_unit_conversion(rng: random.Random, difficulty: int) -> Draft:
    big, big_one, small, factor = rng.choice(CONVERSIONS)
    if difficulty == 1:
        n = rng.randint(2, 9)
        if rng.random() < 0.6:
            problem = rng.choice([f"How many {small} are in {n} {big}?",
                                  f"Convert {n} {big} to {small}."])
            steps = (f"1 {big_one} is {factor} {small}, so {n} times {factor} = {n * factor}.",)
            return Draft(problem, steps, Fraction(n * factor))
        problem = f"How many {big} are in {n * factor} {small}?"
        steps = (f"1 {big_one} is {factor} {small}, so {n * factor} / {factor} = {n}.",)
        return Draft(problem, steps, Fraction(n))

    if difficulty == 2:
        form = rng.randrange(3)
        if form == 0:
            n, extra = rng.randint(1, 4), rng.randint(2, factor - 1)  # extra >= 2: plural unit
            unit = big_one if n == 1 else big
            problem = f"How many {small} are in {n} {unit} and {extra} {small}?"
            steps = (f"{n} {unit} is {n} times {factor} = {n * factor} {small}.",
                     f"Adding {extra} gives {n * factor} + {extra} = {n * factor + extra}.")
            return Draft(problem, steps, Fraction(n * factor + extra))
        if form == 1:
            big, big_one, small, factor = rng.choice([c for c in CONVERSIONS if c[3] % 2 == 0])
            amount = Fraction(rng.randint(1, 8)) + Fraction(1, 2)
            value = amount * factor
            problem = f"How many {small} are in {num(amount)} {big}?"
            steps = (f"1 {big_one} is {factor} {small}.",
                     f"So {num(amount)} times {factor} = {num(value)}.")
            return Draft(problem, steps, value)
        first, second, f1, f2, n = rng.choice((
            ("hours", "minutes", 60, 60, rng.randint(2, 3)),
            ("days", "hours", 24, 60, rng.randint(2, 3)),
            ("weeks", "days", 7, 24, rng.randint(2, 4)),
        ))
        last = {"hours": "seconds", "days": "minutes", "weeks": "hours"}[first]
        problem = f"How many {last} are in {n} {first}?"
        steps = (f"{n} {first} is {n} times {f1} = {n * f1} {second}.",
                 f"{n * f1} {second} is {n * f1} times {f2} = {n * f1 * f2} {last}.")
        return Draft(problem, steps, Fraction(n * f1 * f2))

    form = rng.randrange(3)
    name = rng.choice(NAMES)
    if form == 0:
        piece = rng.choice((10, 20, 25, 50))
        meters = rng.randint(2, 6)
        pieces = meters * 100 // piece
        problem = (
            f"{name} has a rope {meters} meters long and cuts it into pieces that are {piece} "
            f"centimeters long. How many pieces does {name} get?"
        )
        steps = (
            "1 meter is 100 centimeters.",
            f"So the rope is {meters} times 100 = {meters * 100} centimeters.",
            f"The number of pieces is {meters * 100} / {piece} = {pieces}.",
        )
        return Draft(problem, steps, Fraction(pieces))
    if form == 1:
        lap = rng.choice((200, 250, 400, 500))
        km = rng.randint(1, 5)
        laps = km * 1000 // lap
        unit = "kilometer" if km == 1 else "kilometers"
        problem = (
            f"A running track is {lap} meters around. How many laps does {name} run to cover "
            f"{km} {unit}?"
        )
        steps = (
            "1 kilometer is 1000 meters.",
            f"So {km} {unit} is {km} times 1000 = {km * 1000} meters.",
            f"The number of laps is {km * 1000} / {lap} = {laps}.",
        )
        return Draft(problem, steps, Fraction(laps))
    jugs, liters, cup = rng.randint(2, 4), rng.randint(1, 3), rng.choice((200, 250, 500))
    total = jugs * liters * 1000
    problem = (
        f"{name} has {jugs} jugs, and each holds {liters} "
        f"{'liter' if liters == 1 else 'liters'} of juice. How many {cup}-milliliter cups can "
        f"{name} fill with all the juice?"
    )
    steps = (
        f"The jugs hold {jugs} times {liters} = {jugs * liters} liters.",
        f"That is {jugs * liters} times 1000 = {total} milliliters.",
        f"The number of cups is {total} / {cup} = {total // cup}.",
    )
    return Draft(problem, steps, Fraction(total // cup))


# ------------------------------------------------------------------------------- assembly

GENERATORS: dict[str, Callable[[random.Random, int], Draft]] = {
    "arithmetic": gen_arithmetic,
    "percentages": gen_percentages,
    "fractions": gen_fractions,
    "ratios": gen_ratios,
    "linear_equations": gen_linear_equations,
    "area_perimeter": gen_area_perimeter,
    "counting": gen_counting,
    "divisibility": gen_divisibility,
    "money": gen_money,
    "time_rates": gen_time_rates,
    "averages": gen_averages,
    "unit_conversion": gen_unit_conversion,
}
SKILLS = tuple(GENERATORS)


def split_evenly(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (i < extra) for i in range(parts)]


def difficulty_plans(sizes: list[int]) -> list[list[int]]:
    """For each skill (of sizes[i] problems), the difficulties of its problems, in order.

    Each skill gets its DIFFICULTY_PERCENT quotas rounded by largest remainder, and the
    rounding error is carried on to the next skill (exact fractions, no float ties), so the
    overall mix lands on the target even when a single skill's quotas are not whole.
    """
    owed = [Fraction(0)] * 3
    plans = []
    for n in sizes:
        want = [owed[d] + Fraction(DIFFICULTY_PERCENT[d] * n, 100) for d in range(3)]
        counts = [max(0, math.floor(w)) for w in want]
        ranked = sorted(range(3), key=lambda d: (counts[d] - want[d], d))
        for d in ranked[: n - sum(counts)]:
            counts[d] += 1
        owed = [want[d] - counts[d] for d in range(3)]
        plans.append([d + 1 for d in range(3) for _ in range(counts[d])])
    return plans


def make_row(skill: str, index: int, difficulty: int, draft: Draft) -> dict:
    """Turn a draft into a JSONL row, checking the answer is exact and matches the solution."""
    answer = answer_text(draft)
    if Fraction(answer) != draft.value:
        raise AssertionError(f"{skill}: answer {answer!r} != computed {draft.value}")
    solution = " ".join((*draft.steps, f"The answer is {answer}."))
    return {
        "id": f"{skill}-{index:04d}",
        "skill": skill,
        "difficulty": difficulty,
        "problem": draft.problem,
        "solution": solution,
        "answer": answer,
    }


def fresh_draft(rng: random.Random, skill: str, difficulty: int, taken: set[str]) -> Draft:
    """Draw until the problem is new (not in this split, nor in any split before it)."""
    for _ in range(MAX_TRIES):
        draft = GENERATORS[skill](rng, difficulty)
        key = template_key(draft.problem)
        if key not in taken:
            taken.add(key)
            return draft
    raise RuntimeError(f"no unseen {skill} problem of difficulty {difficulty} in {MAX_TRIES} draws")


def build_split(rng: random.Random, total: int, taken: set[str]) -> list[dict]:
    """total problems, split evenly over skills, grouped by skill then difficulty."""
    rows = []
    plans = difficulty_plans(split_evenly(total, len(SKILLS)))
    for skill, plan in zip(SKILLS, plans, strict=True):
        for index, difficulty in enumerate(plan, start=1):
            draft = fresh_draft(rng, skill, difficulty, taken)
            rows.append(make_row(skill, index, difficulty, draft))
    return rows


def check_rows(rows: list[dict], name: str) -> None:
    """Schema, answer format and final-sentence checks, plus no duplicate texts."""
    for row in rows:
        assert tuple(sorted(row)) == tuple(sorted(ROW_FIELDS)), f"{name}: fields of {row['id']}"
        assert row["skill"] in SKILLS and row["difficulty"] in (1, 2, 3), row["id"]
        assert all(isinstance(row[k], str) and row[k] for k in ROW_FIELDS if k != "difficulty")
        assert ANSWER_RE.match(row["answer"]), f"{row['id']}: bad answer {row['answer']!r}"
        assert row["solution"].endswith(f"The answer is {row['answer']}."), row["id"]
        assert row["problem"].isascii() and row["solution"].isascii(), row["id"]
    keys = [normalise(row["problem"]) for row in rows]
    assert len(set(keys)) == len(keys), f"{name}: duplicate problem texts"
    assert len({row["id"] for row in rows}) == len(rows), f"{name}: duplicate ids"


def check_splits(seeds: list[dict], heldout: list[dict]) -> None:
    check_rows(seeds, "seeds")
    check_rows(heldout, "heldout")
    per_skill = Counter(row["skill"] for row in seeds)
    short = {s: per_skill[s] for s in SKILLS if per_skill[s] < MIN_SEEDS_PER_SKILL}
    assert not short, f"skills with fewer than {MIN_SEEDS_PER_SKILL} seeds: {short}"
    overlap = {normalise(r["problem"]) for r in seeds} & {normalise(r["problem"]) for r in heldout}
    assert not overlap, f"held-out split overlaps the seeds: {sorted(overlap)[:3]}"


def generate(seed: int, n_seeds: int, n_eval: int) -> tuple[list[dict], list[dict]]:
    # Separate, named RNG streams: the held-out split never shares draws with the seeds.
    # String seeds hash with SHA-512 inside random, so they are stable across runs.
    taken: set[str] = set()
    seeds = build_split(random.Random(f"{seed}:seeds"), n_seeds, taken)
    heldout = build_split(random.Random(f"{seed}:heldout"), n_eval, taken)
    check_splits(seeds, heldout)
    return seeds, heldout


# --------------------------------------------------------------------------------- output


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)
    path.write_text(text, encoding="utf-8", newline="\n")


def count_table(seeds: list[dict], heldout: list[dict]) -> list[str]:
    """Markdown table of counts per skill and difficulty (seeds), plus held-out totals."""
    seed_counts = Counter((r["skill"], r["difficulty"]) for r in seeds)
    eval_counts = Counter(r["skill"] for r in heldout)
    lines = ["| skill | d1 | d2 | d3 | seeds | held-out |", "|---|---|---|---|---|---|"]
    for skill in SKILLS:
        per = [seed_counts[(skill, d)] for d in (1, 2, 3)]
        lines.append(f"| {skill} | {per[0]} | {per[1]} | {per[2]} | {sum(per)} "
                     f"| {eval_counts[skill]} |")
    totals = [sum(seed_counts[(s, d)] for s in SKILLS) for d in (1, 2, 3)]
    lines.append(f"| **total** | {totals[0]} | {totals[1]} | {totals[2]} | {len(seeds)} "
                 f"| {len(heldout)} |")
    return lines


# The code seeds are written by hand, not generated here; the README describes them too, so that
# this script still reproduces the README byte for byte. Keep the counts in step with
# `python data/make_code_seeds.py`, which validates those files.
CODE_SEEDS_SECTION = [
    "## Code seeds (Python functions with unit tests)",
    "",
    "A second domain: `seeds/code.jsonl` holds 110 seed problems and `eval/code_heldout.jsonl` "
    "30 held-out ones, 22 and 6 per skill (`strings`, `lists`, `arithmetic`, `parsing`, `dicts`). "
    "They are not generated: every problem, reference solution and test was written by hand for "
    "this project (nothing copied from a dataset or the web), and `make_seeds.py` leaves them alone. "
    "The held-out functions are different functions from the seeds, not renamings; function names "
    "are unique across both files.",
    "",
    "One JSON object per line, keys sorted, exactly these four:",
    "",
    "- `problem`: the specification, naming the function and its signature in backticks "
    "(under 400 characters).",
    "- `solution`: a reference implementation, standard library only, no I/O, no randomness "
    "(under 600 characters).",
    "- `answer`: the unit tests, 4-8 lines of `assert name(...) == ...` on literal arguments, "
    "edge cases included (empty input, zero, negatives, one element).",
    "- `skill`: one of the five skills.",
    "",
    "Most bodies are one to six lines; some need a loop with a condition, string parsing or a little "
    "number theory, so the 270M student's solve rates spread out.",
    "",
    "Validate them (nothing is rewritten; exit status 1 on any problem):",
    "",
    "```",
    ".venv/bin/python data/make_code_seeds.py",
    "```",
    "",
    "It checks the keys, skills and limits, that the problem names the function the solution "
    "defines and every test calls, and then, in a fresh `python -I` subprocess per row (5 s limit), "
    "that the reference passes its tests, that the function with its body replaced by "
    "`return None` fails every assert, and that one returning its first argument fails at least one.",
    "",
]


def render_readme(seeds: list[dict], heldout: list[dict], seed: int) -> str:
    example = json.dumps(seeds[0], sort_keys=True)
    lines = [
        "# Bundled data",
        "",
        "This folder is written by `data/make_seeds.py`; edit the script, not these files "
        "(all but the hand-written code seeds, see the last section).",
        "Regenerate everything (byte-identical output) with:",
        "",
        "```",
        "python data/make_seeds.py",
        "```",
        "",
        "The problems are generated by the project's own templates in `make_seeds.py` "
        "(random numbers, names and objects filled into a few sentence templates per skill); "
        "nothing is copied from any dataset.",
        "",
        "## Files",
        "",
        f"- `seeds/seeds.jsonl`: {len(seeds)} seed problems, the default `bundled` seed set "
        "that starts a search run.",
        f"- `eval/heldout.jsonl`: {len(heldout)} held-out problems for evaluation, drawn from a "
        "different RNG stream and disjoint from the seeds by normalised problem text "
        "(lowercase, collapsed whitespace); no held-out problem even differs from a seed only "
        "by a person's name.",
        "- `README.md`: this file.",
        "",
        "Why they look like this: the student model is a 270M base model, so most problems are "
        "easy (about 45% one-step, 35% two-step, 20% short multi-step word problems) and every "
        "answer is exact, so its solve rates spread over (0, 1).",
        "",
        "## Fields",
        "",
        "One JSON object per line, keys sorted, rows grouped by skill and then difficulty "
        "(sample at random rather than taking a prefix):",
        "",
        "- `id`: `<skill>-<nnnn>`, unique within a file (numbered per skill).",
        "- `skill`: one of the skills below.",
        "- `difficulty`: 1 (one operation, small numbers), 2 (two steps) or "
        "3 (three or more steps, a short word problem).",
        "- `problem`: the problem text.",
        "- `solution`: a short worked solution that ends with `The answer is X.`",
        "- `answer`: the exact answer X as a string: an integer (`27`), a reduced fraction "
        "(`3/4`) or a terminating decimal without trailing zeros (`2.5`); no units.",
        "",
        "Example:",
        "",
        "```json",
        example,
        "```",
        "",
        f"## Skills (seed {seed})",
        "",
        *count_table(seeds, heldout),
        "",
        *CODE_SEEDS_SECTION,
    ]
    return "\n".join(lines)


def print_summary(seeds: list[dict], heldout: list[dict], out_dir: Path) -> None:
    for name, rows in (("seeds", seeds), ("heldout", heldout)):
        counts = Counter((r["skill"], r["difficulty"]) for r in rows)
        print(f"{name}: {len(rows)} problems")
        print(f"  {'skill':<18}{'d1':>4}{'d2':>4}{'d3':>4}{'all':>5}")
        for skill in SKILLS:
            per = [counts[(skill, d)] for d in (1, 2, 3)]
            print(f"  {skill:<18}{per[0]:>4}{per[1]:>4}{per[2]:>4}{sum(per):>5}")
        per = [sum(counts[(s, d)] for s in SKILLS) for d in (1, 2, 3)]
        print(f"  {'total':<18}{per[0]:>4}{per[1]:>4}{per[2]:>4}{len(rows):>5}")
    print(f"wrote {out_dir / SEEDS_PATH}, {out_dir / EVAL_PATH}, {out_dir / README_PATH}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="base RNG seed")
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent.parent / "pipeline" / "data",
                        help="folder that receives seeds/, eval/ and README.md")
    parser.add_argument("--n-seeds", type=int, default=DEFAULT_N_SEEDS,
                        help="number of seed problems (spread evenly over the skills)")
    parser.add_argument("--n-eval", type=int, default=DEFAULT_N_EVAL,
                        help="number of held-out problems")
    args = parser.parse_args(argv)
    if args.n_seeds < MIN_SEEDS_PER_SKILL * len(SKILLS):
        parser.error(f"--n-seeds must be at least {MIN_SEEDS_PER_SKILL * len(SKILLS)} "
                     f"({MIN_SEEDS_PER_SKILL} per skill)")
    if args.n_eval < 1:
        parser.error("--n-eval must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    seeds, heldout = generate(args.seed, args.n_seeds, args.n_eval)
    out_dir: Path = args.out_dir
    write_jsonl(out_dir / SEEDS_PATH, seeds)
    write_jsonl(out_dir / EVAL_PATH, heldout)
    (out_dir / README_PATH).write_text(render_readme(seeds, heldout, args.seed),
                                       encoding="utf-8", newline="\n")
    print_summary(seeds, heldout, out_dir)


if __name__ == "__main__":
    main()
