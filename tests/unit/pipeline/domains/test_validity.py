"""The deterministic validity checks (pipeline/domains/math/validity.py) and their claim parser
(pipeline/domains/math/arith.py): hand-made examples for each check, hostile text, and the labelled
validity set (data/validity/labels.jsonl), whose rows are the ground truth."""

from __future__ import annotations

import json
import time
from fractions import Fraction
from pathlib import Path

import pytest

from pipeline.config import VALIDITY_CHECKS, load_config
from pipeline.domains.math.arith import MAX_CHARS, claims, evaluate, number_value
from pipeline.domains.math.validity import (
    CHECKS,
    check_arithmetic,
    check_asks,
    check_closed_form,
    check_dimensions,
    check_equation,
    check_final_answer,
    check_grounding,
    check_problem_expression,
    check_reference,
    check_shape,
    check_unused_data,
    check_well_posed,
    constants_for,
    word_claims,
)
from pipeline.store.seeds import load_seeds

LABELS = Path(__file__).resolve().parents[4] / "data" / "validity" / "labels.jsonl"


def _labelled() -> list[dict]:
    return [json.loads(line) for line in LABELS.read_text().splitlines() if line.strip()]


# -- the claim parser --------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "holds"),
    [
        ("5 times 8 is 40.", [True]),
        ("5 times 8 is 25.", [False]),
        ("4 + 5 = 9 apples", [True]),
        ("12 * 15 = 210", [False]),
        ("3 + 4 = 7 - 0 = 7", [True, True]),  # a chain: every adjacent pair is a claim
        ("3 + 4 = 7 + 1 = 8", [False, True]),
        ("20% of 50 is 0.2 times 50, which is 10", [True, True]),
        ("25% of 40 is 12", [False]),
        ("3/4 of 12 is 9", [True]),
        ("3/4 of 12 is 3", [False]),
        ("half of 10 is 5", [True]),
        ("2 hours = 120 minutes", [True]),  # units convert
        ("2 hours = 100 minutes", [False]),
        ("1.5 * 3 = 4.5", [True]),
        ("1,200 + 300 = 1,500", [True]),
        ("The 10th multiple of 6 is 10 times 6 = 60.", [True]),  # "of 6" names a part, not a value
        ("6 rows of 7 is 6 x 7 = 42 tulips", [True]),
        ("Tom is 5.", []),  # a bare "is" between quantities is no claim
        ("2x + 3 = 11", []),  # symbolic: not checked
        ("As a percent, 0.6 times 100 = 60%.", [True]),  # percent points, as written
        ("0.6 times 100 = 6%.", [False]),
        ("49 / 9 is 5 with remainder 4.", [True]),  # claims 49 = 9 * 5 + 4
        ("68 / 3 is 22 with remainder 3.", [False]),
        ("2 feet is 24 inches. Adding 9 gives 24 + 9 = 33.", [True, True]),  # "9 gives ..." is no claim
        ("4 days is 2 days, so 2 times 4 = 8.", [False, True]),  # one unit, two numbers: false
        ("The sum of 22 and 22 is 22 + 22 = 44.", [True]),  # "of 22 and 22" is the subject
        ("12 feet is 12 times 12 = 144.", [True, True]),  # a conversion stated, quantity first
        ("The laps are 10000 / 100 = 10000 meters.", [False]),  # a computation is no quantity's conversion
    ],
)
def test_claims_are_found_and_evaluated_exactly(text: str, holds: list[bool]):
    assert [c.holds() for c in claims(text)] == holds


def test_evaluate_is_exact_and_symbolic_where_it_must_be():
    assert evaluate("1/3 + 1/6") == Fraction(1, 2)
    assert evaluate("2x + 3", {"x": Fraction(4)}) == 11
    assert evaluate("2x + 3") is None
    assert evaluate("12 or 13") is None
    assert number_value("$4.50") == Fraction(9, 2)
    assert number_value("25%") == Fraction(1, 4)
    assert number_value("12 eggs") == 12
    assert number_value("twelve") is None  # an answer needs a digit


def test_hostile_text_is_parsed_in_bounded_time_and_runs_nothing():
    # Deep nesting, huge powers, giant numbers: evaluated or refused, never run, quickly.
    hostile = [
        "(" * 10_000 + "1" + ")" * 10_000 + " = 1",
        "9^9^9^9^9 = 1",
        "10^100000 = 1",
        "__import__('os').system('true') = 0",
        "1" * 50_000 + " + 1 = 2",
        "1 + " * 20_000 + "1 = 5",
        "1:" * 10_000 + "1 = 5 divided by 3 is 1 remainder 2",  # the ratio and remainder patterns
        "Adding " + "9" * 30_000 + " gives 1 = 1",
        " ".join(str(i) for i in range(3_000)) + " ways, divided",  # pairs of many numbers
        "A square " + "1 by " * 10_000 + "2. What is its area?",  # the closed forms' patterns
        "How many " + "x " * 10_000 + "are in 2 days?",
        "A rectangle is " + "1, " * 10_000 + "long and 2 wide. What is its perimeter?",
        "A shop has " + "3 tables and " * 5_000 + "2 chairs. How many tables does the shop have?",
    ]
    for text in hostile:
        t0 = time.perf_counter()
        for c in claims(text):
            c.holds()
        check_reference(text, text, text)
        assert time.perf_counter() - t0 < 5, text[:40]
    assert len(hostile[3]) < MAX_CHARS


# -- each check on hand-made examples ----------------------------------------------------

def test_arithmetic_names_the_false_claim():
    assert check_arithmetic("What is 5 times 8?", "5 times 8 is 40. The answer is 40.", "40") is None
    reason = check_arithmetic("What is 5 times 8?", "5 times 8 is 25. The answer is 25.", "25")
    assert reason is not None and "5 * 8" in reason and "40" in reason


def test_final_answer_is_the_solutions_last_result():
    p = "Tom has 3 bags of 4 apples. How many apples?"
    assert check_final_answer(p, "3 * 4 = 12. The answer is 12.", "12") is None
    assert "ends in 12" in check_final_answer(p, "3 * 4 = 12. The answer is 7.", "7")
    # a solution that goes on after its last computation is not held to it
    assert check_final_answer(p, "3 * 4 = 12, then he eats 5, leaving 7. The answer is 7.", "7") is None
    assert check_final_answer(p, "3 * 4 = 12. The answer is 25%.", "25%") is not None
    assert check_final_answer("What is 1/4 of 100?", "1/4 * 100 = 25. The answer is 25%.", "25%") is None


@pytest.mark.parametrize(
    ("problem", "answer", "ok"),
    [
        ("What is 5 times 8?", "40", True),
        ("What is 5 times 8?", "25", False),
        ("Compute 3 * 8.", "15", False),
        ("Evaluate 16 * 10 - 24.", "124", False),
        ("Evaluate 16 * 10 - 24.", "136", True),
        ("What is 3/4 of 12?", "3", False),
        ("What is 3/4 of 12?", "9", True),
        ("What is the capital of France?", "Paris", True),  # nothing to compute: no verdict
    ],
)
def test_problem_expression(problem: str, answer: str, ok: bool):
    assert (check_problem_expression(problem, "", answer) is None) is ok


@pytest.mark.parametrize(
    ("problem", "answer", "ok"),
    [
        ("Solve for x: x + 7 = 28.", "21", True),
        ("Solve for x: x + 7 = 28.", "15", False),
        ("Solve for x: x + 7 = 28.", "x = 21", True),
        ("If 2y - 3 = 9, what is y?", "6", True),
        ("If 2y - 3 = 9, what is y?", "5", False),
        # nothing to solve: the variable asked for is in no equation
        ("Solve for y: 12 = 9.", "12", False),
        ("Solve for x: 8/7 = 1.", "8", False),
        ("Find x if 2x = 40.", "20", True),
    ],
)
def test_equation(problem: str, answer: str, ok: bool):
    assert (check_equation(problem, "", answer) is None) is ok


@pytest.mark.parametrize(
    ("problem", "solution", "answer", "ok"),
    [
        # every operand from the problem or an earlier result
        ("Sam has 12 apples and eats 5. How many are left?", "12 - 5 = 7. The answer is 7.", "7", True),
        ("Sam has 12 apples and gives away half. How many are left?", "12 / 2 = 6. The answer is 6.", "6", True),
        ("A 3 kg bag: how many grams?", "3 * 1000 = 3000. The answer is 3000.", "3000", True),
        ("A film lasts 2 hours. How many minutes?", "2 * 60 = 120. The answer is 120.", "120", True),
        ("A rope is 4 meters long. How many centimeters?", "4 * 100 = 400. The answer is 400.", "400", True),
        # the problem gives no data
        ("How many pages does the chapter have?", "It has 49 - 30 = 20. The answer is 20.", "20", False),
        ("How many minutes will it take for the bus to leave?", "12 minutes. The answer is 12.", "12", False),
        # numbers from nowhere: 100 is no constant of a problem about tickets
        ("A restaurant has 1,000 tickets for its first 200 customers. How many are left?",
         "1,000 - 100 = 900. The answer is 900.", "900", False),
        # an answer that restates a given number, nothing computed
        ("There are 14 red beads and 14 blue beads. How many of each color are there?",
         "There are 14 red beads and 14 blue beads. The answer is 14.", "14", False),
        ("There is 1 teacher for every 6 students and 4 teachers. How many students?",
         "Each teacher has 6 students. The answer is 6.", "6", False),
        ("Tom has 3 apples and eats 1. How many are left?", "He has 2 left. The answer is 2.", "2", True),
        ("Find the value of 10 divided by 10.", "10 divided by 10 = 1. The answer is 1.", "1", True),
        # a number cancelling itself, with its unit or without
        ("A group of 30 people go to a party. How many are left over?", "30 - 30 = 0. The answer is 0.", "0",
         False),
        ("A tank is full at 15 minutes. How long will it be full?", "15 minutes - 15 = 0. The answer is 0.", "0",
         False),
        # the problem's one number combined with itself, nothing calling for it twice
        ("A bag contains 3 boxes of apples. How many boxes of apples does it contain?",
         "3 times 3 = 9. The answer is 9.", "9", False),
        ("A car has 10 seats. How many cars are there in total?", "10 + 10 = 20. The answer is 20.", "20", False),
        ("A square has a side of 5 meters. What is its area?", "5 times 5 = 25. The answer is 25.", "25", True),
        ("How many inches are in 12 feet?", "12 feet is 12 times 12 = 144. The answer is 144.", "144", True),
        ("Find 2/3 of 6.", "First, 6 / 3 = 2. Then 2 times 2 = 4. The answer is 4.", "4", True),
        # an answer the solution never reaches
        ("A ticket is $5. How much do 1 ticket and 2 tickets cost?",
         "1 ticket and 2 tickets cost $5. The answer is 15.", "15", False),
        ("Compute 2/3 - 1/5.", "2/3 = 10/15 and 1/5 = 3/15. So 10/15 - 3/15 = 7/15. The answer is 7/15.", "7/15",
         True),
        # a result reached from a foreign number is not saved by equalling a constant (2)
        ("What is the remainder when 12 is divided by 4?", "14 - 12 = 2. The answer is 2.", "2", False),
        ("What is the remainder when 34 is divided by 5?", "5 times 6 = 30, and 34 - 30 = 4. The answer is 4.", "4",
         True),
        ("Priya and Leo share 70 cookies in the ratio 2:5. How many more does Leo get?",
         "2 + 5 = 7 parts. Each part is 70 / 7 = 10. Leo gets 3 parts more: 3 times 10 = 30. The answer is 30.", "30",
         True),
    ],
)
def test_grounding(problem: str, solution: str, answer: str, ok: bool):
    reason = check_grounding(problem, solution, answer)
    assert (reason is None) is ok, reason
    if not ok:
        assert reason.startswith("ill-posed")


def test_constants_follow_the_problems_words():
    assert Fraction(60) in constants_for("How many minutes are in 3 hours?")
    assert Fraction(60) not in constants_for("Tom has 3 apples.")
    assert Fraction(100) in constants_for("What is 20% of 50?")
    assert constants_for("Tom has 3 apples.") == {0, 1, 2}


def test_check_reference_runs_the_named_checks_in_order():
    v = check_reference("What is 5 times 8?", "5 times 8 is 25. The answer is 25.", "25")
    assert not v.valid and v.failed[0] == "arithmetic" and "problem_expression" in v.failed
    assert v.reason.startswith("arithmetic: ")
    only = check_reference("What is 5 times 8?", "5 times 8 is 25. The answer is 25.", "25", ("grounding",))
    assert only.valid and only.reason is None
    assert check_reference("What is 5 times 8?", "5 times 8 is 40. The answer is 40.", "40").valid
    assert set(CHECKS) == {"arithmetic", "final_answer", "problem_expression", "equation", "grounding",
                           "unused_data", "dimensions", "shape", "closed_form", "asks", "well_posed"}
    assert tuple(CHECKS) == VALIDITY_CHECKS  # the config's names are the checks, in order
    # The packaged default (and so `make run`) runs every check: default.toml lists them, and
    # a check added to the code but not to that list would never run.
    assert load_config(None).validity.checks == VALIDITY_CHECKS


def test_problem_expression_reads_a_last_sentence_of_numbers_only():
    assert check_problem_expression("40/4 = 10. Find 3/4 of 40.", "", "40") is not None
    assert check_problem_expression("40/4 = 10. Find 3/4 of 40.", "", "30") is None
    # words in the expression refer to earlier text: nothing to evaluate
    assert check_problem_expression("Sam has 8 apples. What is 5 times that number?", "", "40") is None


@pytest.mark.parametrize(
    ("problem", "solution", "answer", "ok"),
    [
        ("Sam has 12 apples and eats 5. How many are left?", "12 - 5 = 7. The answer is 7.", "7", True),
        # "10 times 10" for a 10 cm by 8 cm rectangle leaves the 8 out
        ("A rectangle has a length of 10 centimeters and a width of 8 centimeters. What is its area?",
         "The area is 10 times 10 = 100. The answer is 100.", "100", False),
        ("A box is 6 feet long, 5 feet wide and 3 feet tall. What is the area of the top and bottom?",
         "The area is 6 times 5 = 30. The answer is 30.", "30", False),  # 3 ft is no 30 mm
        # converted units count as used; number words and 0/1 are phrasing
        ("Quinn cuts a rope 4 meters long into pieces 10 centimeters long. How many pieces?",
         "400 / 10 = 40. The answer is 40.", "40", True),
        ("How many two-digit codes can be made from the digits 1 to 8 if no digit is used twice?",
         "8 choices, then 7: 8 times 7 = 56. The answer is 56.", "56", True),
        ("What is 20% of 50?", "0.2 times 50 = 10. The answer is 10.", "10", True),
        ("Tom saves 20% of his 50 dollars. How much does he save?", "0.2 * 50 = 10. The answer is 10.", "10", True),
        # an equation's right side needs no restating
        ("Solve for x: 5x + 18 = 58.", "5x = 40, so x = 8. The answer is 8.", "8", True),
        # a number that names a thing is no datum; a solution that computes nothing says nothing
        ("Crate 3 holds 5 rows of 8 jars. How many jars?", "5 times 8 is 40. The answer is 40.", "40", True),
        ("Ann has 10 marbles and gives away 3. How many are left?", "Working it out gives 7. The answer is 7.",
         "7", True),
    ],
)
def test_unused_data(problem: str, solution: str, answer: str, ok: bool):
    reason = check_unused_data(problem, solution, answer)
    assert (reason is None) is ok, reason
    if not ok:
        assert "never uses" in reason


@pytest.mark.parametrize(
    ("problem", "solution", "answer", "ok"),
    [
        ("A box is 6 feet long and 4 feet wide. What is its volume in cubic feet?",
         "The volume is 6 times 4 = 24. The answer is 24.", "24", False),
        ("A rectangle has a length of 5 feet and a width of 4 feet. What is its perimeter in feet?",
         "The perimeter is 5 times 4 = 20. The answer is 20.", "20", False),
        ("A rectangle has an area of 36 square meters. What is the length of the rectangle?",
         "The length is 36 divided by 2 = 18. The answer is 18.", "18", False),
        ("A dog has a tail 15 inches long. What is its length in inches?",
         "15 inches times 15 inches = 225 inches. The answer is 225.", "225", False),
        # right dimensions
        ("A rectangular photo is 5 centimeters long and 2 centimeters wide. What is its perimeter in centimeters?",
         "5 + 2 = 7. The perimeter is 2 times 7 = 14. The answer is 14.", "14", True),  # 2: constant or side?
        ("A rectangle is 5 feet long and 4 feet wide. What is its perimeter in feet?",
         "2 * (5 + 4) = 18. The answer is 18.", "18", True),
        ("A box is 6 feet long, 4 feet wide and 2 feet tall. What is its volume in cubic feet?",
         "The base is 6 times 4 = 24. The volume is 24 times 2 = 48. The answer is 48.", "48", True),
        ("A triangle has a base of 6 meters and a height of 4 meters. What is its area?",
         "1/2 times 6 times 4 = 12. The answer is 12.", "12", True),
        ("A square has a side of 5 cm. What is its area in square cm?", "5^2 = 25. The answer is 25.", "25", True),
        # no length asked, or an operand of unknown unit: nothing to check
        ("A garden is 10 by 8 meters. What is its perimeter?", "10 times 8 = 80. The answer is 80.", "80", True),
        ("A car drives 120 kilometers in 2 hours. What is its speed in kilometers per hour?",
         "120 / 2 = 60. The answer is 60.", "60", True),
        ("On a map 1 cm = 5 km. Two towns are 3 cm apart on the map. How far apart are they, in km?",
         "3 times 5 = 15. The answer is 15.", "15", True),
    ],
)
def test_dimensions(problem: str, solution: str, answer: str, ok: bool):
    reason = check_dimensions(problem, solution, answer)
    assert (reason is None) is ok, reason


@pytest.mark.parametrize(
    ("problem", "ok"),
    [
        ("A square is 20 meters long and 10 meters wide. What is its area in square meters?", False),
        ("A square table top is 11 centimeters long and 6 centimeters wide. What is its area?", False),
        ("A square is 10 meters long and 10 meters wide. What is its area in square meters?", True),
        ("A rectangle is 20 meters long and 10 meters wide. What is its area in square meters?", True),
        ("A floor of 20 square meters is 5 meters long and 4 meters wide. How wide is it?", True),
        ("A square garden is 10 meters by 2 meters. What is its area in square meters?", False),
        ("A square garden is 10 meters by 10 meters. What is its area in square meters?", True),
    ],
)
def test_shape(problem: str, ok: bool):
    assert (check_shape(problem, "", "") is None) is ok


@pytest.mark.parametrize(
    ("problem", "answer", "ok"),
    [
        ("What is the remainder when 12 is divided by 4?", "2", False),
        ("What is the remainder when 14 is divided by 4?", "2", True),
        ("What is the smallest common multiple of 22 and 20?", "22", False),
        ("What is the least common multiple of 4 and 6?", "12", True),
        ("What is the greatest common factor of 12 and 18?", "6", True),
        ("How many more than 10 is 20?", "30", False),
        ("How many more than 10 is 20?", "10", True),
        ("Multiply 1/2 by 3/4.", "1/4", False),
        ("Multiply 1/2 by 3/4.", "3/8", True),
        ("How many hours are in 2 days?", "8", False),
        ("How many hours are in 2 days?", "48", True),
        ("How many yards are in 10 feet?", "10", False),
        ("How many yards are in 10 feet?", "3.33", True),  # rounded to its own decimals
        ("How many inches are in 2 feet and 9 inches?", "33", True),  # a sum, not the form
        ("Convert 12 minutes to seconds.", "60", False),
        ("How many centimeters are in 3 inches?", "7.6", True),  # metric-imperial: within 1%
        ("What is the area of a triangle with a base of 20 inches and a height of 10 inches?", "200", False),
        ("What is the area of a triangle with a base of 20 inches and a height of 10 inches?", "100", True),
        ("A rectangle is 2 meters long and 4 meters wide. What is its area in square meters?", "4", False),
        ("A rectangle is 2 meters long and 4 meters wide. What is its area in square meters?", "8", True),
        ("A rectangular garden is 150 meters long and 100 meters wide. How many meters of fencing does the "
         "gardener need?", "15000", False),
        ("A rectangular garden is 150 meters long and 100 meters wide. How many meters of fencing does the "
         "gardener need?", "500", True),
        # a third number or a second unit changes the plain form: nothing to check
        ("A rectangle is 2 meters long and 4 meters wide, with a 1 meter path around it. What is its area?", "99",
         True),
        ("A rectangle is 2 meters long and 40 centimeters wide. What is its area in square meters?", "0.8", True),
        ("A square has 2 sides that are 5 centimeters long. What is its perimeter in centimeters?", "10", False),
        ("A square has a perimeter of 10 meters long. What is its area in square meters?", "100", False),
        ("A square has a perimeter of 10 meters long. What is its area in square meters?", "6.25", True),
        ("In how many different orders can 4 friends stand in a line?", "12", False),
        ("In how many different orders can 4 friends stand in a line?", "24", True),
        ("In how many ways can 4 friends sit at a round table?", "6", True),  # not a line
        ("A book costs $4. How much do 2 books cost, in cents?", "8", False),
        ("A book costs $4. How much do 2 books cost, in cents?", "800", True),
        ("A book costs $2. How much does it cost, in dollars?", "4", False),
        ("A club has 10 members. The number of members grew by 20%. How many members does the club have now?",
         "30", False),
        ("A club has 10 members. The number of members grew by 20%. How many members does the club have now?",
         "12", True),
        ("A restaurant has 3 tables and 2 chairs. How many tables does the restaurant have?", "5", False),
        ("A box has 3 rows of 4 eggs. How many eggs does the box have?", "12", True),  # no restatement
        ("A man has 22 apples and 18 oranges. How many more apples does he have now than oranges?", "40", False),
        ("A man has 22 apples and 18 oranges. How many more apples does he have now than oranges?", "4", True),
        ("Ann has 5 pens. Bob has 3 more pens than Ann. How many more pens does Bob have than Ann?", "3", True),
        ("A recipe uses 2 cups of flour for every 1 cup of sugar. How many cups of sugar are needed to make 2 cups "
         "of flour?", "4", False),
        ("A recipe uses 2 cups of flour for every 1 cup of sugar. How many cups of sugar are needed to make 2 cups "
         "of flour?", "1", True),
        ("A recipe uses 2 cups of flour for every 1 cup of sugar. How many cups of flour are needed for 3 cups of "
         "sugar?", "6", True),
        ("4 centimeters stand for 10 kilometers. How many kilometers do 10 centimeters stand for?", "40", False),
        ("4 centimeters stand for 10 kilometers. How many kilometers do 10 centimeters stand for?", "25", True),
        ("On a map, 1 inch represents 50 miles. How many miles do 3 inches represent?", "150", True),
        ("A machine makes 2 toys per hour. How many toys does it make in 6 minutes?", "12", False),
        ("A machine makes 30 toys per hour. How many toys does it make in 10 minutes?", "5", True),
        ("A car goes 60 miles per hour. How many miles does it go in 3 hours?", "180", True),  # no conversion
        # a fourth number is no plain ratio: nothing to check
        ("A recipe uses 2 cups of flour for every 1 cup of sugar and 3 eggs. How many cups of sugar for 4 cups of "
         "flour?", "99", True),
        # averages: the mean, not the sum; a missing number of a stated average
        ("What is the average of 50 and 100?", "150", False),
        ("What is the average of 50 and 100?", "75", True),
        ("Find the mean of 3 and 6.", "4.5", True),
        ("Find the mean of 3 and 6.", "9", False),
        ("What is the average of 12, 16, and 18?", "15.33", True),
        ("The average of two numbers is 2. One of the numbers is 10. What is the other number?", "-6", True),
        ("The average of two numbers is 2. One of the numbers is 10. What is the other number?", "8", False),
        ("The average of three numbers is 3. Two of them are 6 and 9. What is the third number?", "-6", True),
        # consecutive numbers from their sum; none exist: any answer is wrong
        ("The sum of three consecutive odd numbers is 15. What is the smallest of the three numbers?", "3", True),
        ("The sum of three consecutive odd numbers is 15. What is the smallest of the three numbers?", "2", False),
        ("The sum of three consecutive whole numbers is 81. What is the middle number?", "27", True),
        ("The sum of two consecutive even numbers is 36. What is the smallest of the two numbers?", "17", False),
        ("The sum of two consecutive even numbers is 34. What is the largest?", "18", True),
        # multiples in a range, counting both ends
        ("How many whole numbers from 1 to 22 are multiples of 7?", "8", False),
        ("How many whole numbers from 1 to 22 are multiples of 7?", "3", True),
        ("How many whole numbers from 1 to 22 are multiples of 5 or 7?", "7", True),
        ("How many whole numbers from 10 to 40, counting both, are multiples of 4?", "8", True),
        ("What is the 4th multiple of 7?", "14", False),
        ("What is the 4th multiple of 7?", "28", True),
        ("What is 2nd multiple of 9?", "18", True),
        # a count the problem states, asked back with "are there"
        ("A box contains 4 red balls and 3 blue balls. How many red balls are there?", "12", False),
        ("A box contains 4 red balls and 3 blue balls. How many red balls are there?", "4", True),
        ("A box contains 4 red balls and 3 blue balls. How many balls are there?", "7", True),
        # a number beside the average's: not the plain form, nothing to check
        ("Sam scored 80 and 70 points. What is the average of 80 and 90?", "1", True),
        # a fourth of three numbers, or a missing number with too few given: ill-posed
        ("The average of three numbers is 14. What is the fourth number?", "4", False),
        ("The average of three numbers is 15. One of the numbers is 13. What is the other number?", "17", False),
        ("The average of four numbers is 2. Three of them are 2. What is the fourth number?", "2", True),
        ("The average of four numbers is 2. Three of them are 2. What is the fourth number?", "3", False),
        # the median: the middle number, or the mean of the two middle ones
        ("What is the median of 4 and 6?", "5", True),
        ("What is the median of 4 and 6?", "10", False),
        ("Find the median of 3, 9, and 4.", "4", True),
        ("A team scored 3, 9 and 4 goals. What is the median of 3, 9, and 4?", "4", True),
        # a rectangle named by its sides ("6 feet long and 4 feet wide"), in the asked unit
        ("A garden is 6 feet long and 4 feet wide. What is its area in square feet?", "24", True),
        ("A garden is 6 feet long and 4 feet wide. What is its area in square feet?", "12", False),
        ("A poster is 6 inches long and 2 inches wide. What is its perimeter in inches?", "16", True),
        ("A poster is 6 inches long and 2 inches wide. What is its perimeter in inches?", "12", False),
        ("A rectangle is 3 cm wide and 5 cm long. What is its area in square meters?", "0.0015", True),
        ("A rectangle is 3 cm wide and 5 cm long. What is its area in square meters?", "15", False),
        # outfits of one shirt and one pair of pants
        ("How many different outfits can Nina make with 1 shirt and 2 pairs of pants?", "2", True),
        ("How many different outfits can Nina make with 1 shirt and 2 pairs of pants?", "12", False),
        ("Uma has 2 shirts and 3 pairs of pants. What is the least number of outfits she can make?", "1", True),
        # a box's "area" is a surface or a base: no plain form
        ("A box is 6 feet long and 4 feet wide. What is its area in square feet?", "48", True),
    ],
)
def test_closed_form(problem: str, answer: str, ok: bool):
    reason = check_closed_form(problem, "", answer)
    assert (reason is None) is ok, reason


@pytest.mark.parametrize(
    ("problem", "ok"),
    [("2 * 8 is 16.", False), ("Tom has 3 apples.", False), ("12 * 10.", True), ("What is 12 * 10?", True),
     ("Find 3/4 of 40.", True), ("Tom has 3 apples and eats 1. How many are left?", True)],
)
def test_asks(problem: str, ok: bool):
    assert (check_asks(problem, "", "1") is None) is ok


@pytest.mark.parametrize(
    ("solution", "false"),
    [
        ("Multiples of 15: 15, 30. Multiples of 10: 10, 20, 30. The first number in both lists is 30.", None),
        ("Multiples of 30: 30, 60. Multiples of 10: 10, 15, 20. The first number in both lists is 10.", "15, which"),
        ("Multiples of 4: 4, 8, 12. Multiples of 6: 6, 12. The first number in both lists is 8.", "not in both"),
        ("Factors of 12: 1, 2, 3, 4, 6, 12.", None),
        ("Factors of 15: 1, 3, 5, 7, 15.", "7, which is not a factor of 15"),
    ],
)
def test_arithmetic_reads_lists_of_multiples_and_factors(solution: str, false: str | None):
    reason = check_arithmetic("What is the least common multiple of 15 and 10?", solution + " The answer is 30.", "30")
    assert (reason is None) if false is None else (false in reason), reason


@pytest.mark.parametrize(
    ("problem", "solution", "false"),
    [
        ("", "The least common multiple of 3, 5, and 7 is 12.", "is 105, not 12"),
        ("", "The least common multiple of 3, 5, and 7 is 105.", None),
        ("", "The greatest common factor of 12 and 18 is 3.", "is 6, not 3"),
        ("", "12 less than 10 is 6.", "is -2, not 6"),
        ("", "3 more than 10 is 13.", None),
        ("How many centimeters do 20 meters stand for?", "Each meter is 20 centimeters, so 20 meters is 40.",
         "1 meter is 100 centimeters, not 20"),
        ("", "1 foot is 12 inches, so 3 times 12 = 36.", None),
        # the problem's own scale makes it true there
        ("1 centimeter stands for 3 kilometers. How many kilometers do 6 centimeters stand for?",
         "Each centimeter is 3 kilometers, so 6 times 3 = 18.", None),
    ],
)
def test_arithmetic_reads_claims_in_words(problem: str, solution: str, false: str | None):
    reason = check_arithmetic(problem, solution, "1")
    assert (reason is None) if false is None else (false in reason), reason
    assert word_claims("", "1 mile is 1.6 kilometers.") == []  # a factor rounded to the decimals written
    assert word_claims("", "Each foot is 0.3 meters.") == []
    assert word_claims("", "Each foot is 0.4 meters.") != []


@pytest.mark.parametrize(
    ("claim", "holds"),
    [("1 mile is 1.6 kilometers.", True), ("1 mile is 1.609 kilometers.", True), ("1 mile is 2 kilometers.", False),
     ("2 hours = 120 minutes.", True), ("2 hours = 100 minutes.", False), ("500 meters is 0.5 kilometers.", True),
     ("500 meters is 5 kilometers.", False)],
)
def test_a_conversion_rounds_in_the_unit_it_is_written_in(claim: str, holds: bool):
    assert (check_arithmetic("", claim, "1") is None) is holds


def test_arithmetic_reads_the_denominators_the_solution_claims():
    solution = ("The denominators are both {d}, so subtract the numerators: 3 - 1 = 2. That gives 2/5. "
                "The answer is 2/5.")
    assert check_arithmetic("What is 3/5 - 1/5?", solution.format(d=5), "2/5") is None
    assert "not both 2" in check_arithmetic("What is 3/4 - 1/2?", solution.format(d=2), "1/4")


@pytest.mark.parametrize(
    ("problem", "ill_posed"),
    [
        # the problem states a computation and its result, or a false one
        ("A book has 20 pages. What is the value of 10 + 20 = 30?", "states the computation"),
        ("The sum of 2, 3, 4, 5, 6, 7 is 14. What is the smallest of these numbers?", "(it is 27)"),
        ("The sum of 2, 3 and 4 is 9. What is the largest of these numbers?", None),
        ("Is 3 + 4 = 8 true or false?", None),
        ("If 3x + 4 = 10, what is x?", None),
        # money asked, none given
        ("A bag has 12 pencils and 10 pens. What is the total cost?", "amount of money"),
        ("A book is on sale for 20% off. What is the sale price in dollars?", "amount of money"),
        ("A book costs $12 and is on sale for 25% off. What is the sale price in dollars?", None),
        ("Zoe pays with a $50 bill. How much change does she get, in dollars?", "no price"),
        ("Zoe buys 3 pens at $4 each and pays with a $20 bill. How much change does she get?", None),
        # a ratio with no amount
        ("The ratio of pens to pencils is 2 to 1. How many pens are there?", "only a ratio"),
        ("There are 2 teachers for every 5 students. How many students are on the trip?", "only a ratio"),
        ("There are 2 teachers for every 5 students. There are 4 teachers. How many students are there?", None),
        ("How many whole numbers are there from 40 to 53, counting both?", None),
        # a volume from two lengths
        ("A box is 4 centimeters long and 2 centimeters wide. What is its volume in cubic centimeters?", "volume"),
        ("A box is 4 cm long, 2 cm wide and 3 cm tall. What is its volume in cubic centimeters?", None),
        ("A cube has edges 4 cm long. What is its volume in cubic centimeters?", None),
        # a unit converted to itself
        ("Convert 10 liters to liters.", "conversion of liters to liters"),
        ("How many meters are there in 4 meters?", "conversion"),
        ("Convert 10 liters to milliliters.", None),
        # a rectangle from one number
        ("A rectangle has a perimeter of 40 centimeters. What is its area in square centimeters?", "one number"),
        ("A rectangle has an area of 10 square feet. Its length is 5 feet. What is its perimeter in feet?", None),
        ("What is the area, in square meters, of a rectangle with sides 2 meters long?", None),
    ],
)
def test_well_posed(problem: str, ill_posed: str | None):
    reason = check_well_posed(problem, "", "1")
    assert (reason is None) if ill_posed is None else (ill_posed in reason), reason


def test_no_check_rejects_a_valid_row_of_the_labelled_campaigns():
    # Every problem of the blind-labelled campaigns (bench/validity-labels) that readers
    # found valid passes every check: the rules drawn from their invalid rows cost none.
    folder = Path(__file__).resolve().parents[4] / "bench" / "validity-labels"
    rejected, counted = [], 0
    for items in sorted(folder.glob("*-items.jsonl")):
        labels = {r["item"]: r["label"] for r in map(json.loads, items.with_name(
            items.name.replace("-items", "-labels")).read_text().splitlines())}
        for row in map(json.loads, items.read_text().splitlines()):
            if labels.get(row["item"]) == "valid":
                counted += 1
                result = check_reference(row["problem"], row["solution"], row["answer"])
                if not result.valid:
                    rejected.append((items.name, row["problem"], result.reason))
    assert counted >= 300
    assert rejected == []


def test_an_answers_own_unit_must_have_the_asked_dimension():
    problem = "A rectangle is 20 feet wide and 20 feet long. What is its area in square feet?"
    assert "is a length" in check_dimensions(problem, "20 times 20 = 400. The answer is 400.", "400 feet")
    assert check_dimensions(problem, "20 times 20 = 400. The answer is 400.", "400 square feet") is None
    assert check_dimensions(problem, "20 times 20 = 400. The answer is 400.", "400") is None


def test_a_restated_quantity_computes_nothing():
    problem = "A car costs $10,000. How many cars does it take to drive 110 miles?"
    reason = check_grounding(problem, "Each car costs $10,000. 110 miles = 110 miles to drive. The answer is 110.",
                             "110")
    assert reason is not None and "restates" in reason
    # a possessive "s" is no unknown that the answer might solve for
    reason = check_grounding("A school bus is 25 feet long. What is the bus's total length in feet?",
                             "The bus's total length is 25 feet. The answer is 25.", "25")
    assert reason is not None and "restates" in reason
    assert check_grounding("If 3s = 12, what is s?", "s = 12 / 3 = 4. The answer is 4.", "4") is None


def test_the_bundled_seeds_pass_the_checks():
    # The seeds are valid problems written for this project, harder than the embedded
    # model's: checks tuned on its output must not reject them. The 5 left: 1000 / 400 = 2
    # laps (the seed itself rounds 2.5 down unasked), "multiples of 2 or 3" (43 / 6, an lcm
    # the problem never states) and "9 times 1 up to 9 times 5, which is 5 numbers".
    seeds = load_seeds(load_config(None).seeds)
    rejected = [s.problem for s in seeds if not check_reference(s.problem, s.solution, s.answer).valid]
    assert len(rejected) <= 5, rejected


# -- the labelled set: the ground truth -----------------------------------------------

def test_labelled_set_is_well_formed():
    rows = _labelled()
    assert len(rows) >= 300
    assert {r["split"] for r in rows} == {"dev", "test"}
    cats = {None, "ill_posed", "not_answering", "wrong_arithmetic", "wrong_reasoning", "other"}
    for r in rows:
        assert r["label"] in ("valid", "invalid")
        assert r["category"] in cats and (r["category"] is None) == (r["label"] == "valid")
        assert r["problem"] and r["answer"] is not None
    assert len({r["id"] for r in rows}) == len(rows)


@pytest.mark.parametrize("split", ["dev", "test"])
def test_checks_on_the_labelled_rows(split: str):
    # The deterministic checks alone, on each part of the labelled set: they must keep
    # (almost) every valid row and reject most invalid ones. The bench script
    # (bench/validity.py) reports the exact figures with the verifier on top.
    rows = [r for r in _labelled() if r["split"] == split]
    verdicts = [(r["label"], check_reference(r["problem"], r["solution"], r["answer"]).valid) for r in rows]
    valid = [ok for label, ok in verdicts if label == "valid"]
    invalid = [ok for label, ok in verdicts if label == "invalid"]
    assert sum(valid) / len(valid) >= 0.9
    assert sum(not ok for ok in invalid) / len(invalid) >= 0.75


def test_the_issues_examples_are_rejected_by_the_checks():
    # The invalid accepted problems of a default run before the checks existed.
    examples = [
        ("What is 5 times 8?", "5 times 8 is 25. The answer is 25.", "25"),
        ("Compute 3 * 8.", "3 * 8 = 15. The answer is 15.", "15"),
        ("Solve for x: x + 7 = 28.", "x = 28 - 7 = 15. The answer is 15.", "15"),
        ("What is 3/4 of 12?", "3/4 of 12 is 3. The answer is 3.", "3"),
        ("Evaluate 16 * 10 - 24.", "16 * 10 - 24 = 124. The answer is 124.", "124"),
        ("How many pages does the chapter have?", "It has 49 - 30 = 20.", "20"),
    ]
    for problem, solution, answer in examples:
        assert not check_reference(problem, solution, answer).valid, problem


# -- an LLM judge's replies ----------------------------------------------------------------

def test_read_judgement_takes_the_last_verdict():
    from pipeline.domains.math.validity import read_judgement

    assert read_judgement("REASON: 5 x 8 is 40\nVERDICT: INVALID") == ("invalid", "5 x 8 is 40")
    assert read_judgement("First VERDICT: VALID... on reflection, verdict - invalid") == ("invalid", None)
    assert read_judgement("**Verdict:** Valid") == ("valid", None)
    assert read_judgement("I am not sure.") == (None, None)


def test_judge_verdict_majority():
    from pipeline.domains.math.validity import judge_verdict

    v, why = judge_verdict(["REASON: no data\nVERDICT: INVALID", "VERDICT: INVALID", "VERDICT: VALID", "hm"])
    assert v.majority_answer == "invalid" and v.majority_share == 0.5 and v.reference_agrees is False
    assert why == "no data" and v.correct == (False, False, True, False)
    tie, _ = judge_verdict(["VERDICT: VALID", "VERDICT: INVALID"])
    assert tie.reference_agrees is None and tie.majority_answer is None
    none, _ = judge_verdict(["nothing", "at all"])
    assert none.reference_agrees is None and none.majority_share == 0.0
