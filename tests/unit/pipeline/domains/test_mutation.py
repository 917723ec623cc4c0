from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.domains.base import Mutation, ParseFailure
from pipeline.domains.math.mutation import parse_mutation

PREFIX = "New problem:"


def test_fewshot_output():
    raw = " Sam has 3 bags of 4 apples. How many apples?\nNew solution: 3 times 4 = 12. The answer is 12."
    m = parse_mutation(raw, PREFIX)
    assert m == Mutation("Sam has 3 bags of 4 apples. How many apples?",
                         "3 times 4 = 12. The answer is 12.", "12")


def test_fewshot_keeps_first_example_only():
    raw = (" What is 2 + 2?\nNew solution: 2 + 2 = 4. The answer is 4.\n"
           "Original problem: What is 1 + 1?\nOriginal solution: 2. The answer is 2.")
    m = parse_mutation(raw, PREFIX)
    assert isinstance(m, Mutation) and m.answer == "4" and "Original" not in m.solution


def test_mislabelled_solution_after_the_new_problem_is_its_solution():
    # the embedded model copies the examples' "Original solution:" label for its own
    raw = " Solve for n: n + 15 = 24.\nOriginal solution: n = 24 - 15 = 9. The answer is 9."
    assert parse_mutation(raw, PREFIX) == Mutation("Solve for n: n + 15 = 24.", "n = 24 - 15 = 9. The answer is 9.",
                                                   "9")
    # a "New solution:" still wins, and the echoed label ends the problem
    raw = " What is 2 + 3?\nOriginal solution: 4. The answer is 4.\nNew solution: 2 + 3 = 5. The answer is 5."
    m = parse_mutation(raw, PREFIX)
    assert isinstance(m, Mutation) and (m.problem, m.answer) == ("What is 2 + 3?", "5")


def test_mislabelled_solution_of_another_problem_is_not_taken():
    raw = " What is 2 + 3?\nOriginal problem: What is 1 + 1?\nOriginal solution: 2. The answer is 2."
    m = parse_mutation(raw, PREFIX)
    assert isinstance(m, ParseFailure) and "no solution found" in m.reason


def test_tagged_output_with_boxed_answer():
    raw = ("<problem>Find x if 2x + 3 = 11.</problem>\n<solution>2x = 8 so x = 4. "
           "Final: \\boxed{4}</solution>")
    m = parse_mutation(raw)
    assert isinstance(m, Mutation) and m.answer == "4" and m.problem == "Find x if 2x + 3 = 11."


def test_no_answer_is_a_failure_with_reason():
    m = parse_mutation(" What is 5 + 5?\nNew solution: add them.", PREFIX)
    assert isinstance(m, ParseFailure) and "final answer" in m.reason


def test_empty_and_missing_sections():
    assert isinstance(parse_mutation("", ""), ParseFailure)
    assert "solution" in parse_mutation(" What is 5 + 5?", PREFIX).reason
    assert "problem" in parse_mutation("just words", "").reason


def test_ten_times_too_long():
    raw = " " + "word " * 5000 + "\nNew solution: The answer is 3."
    m = parse_mutation(raw, PREFIX)
    assert isinstance(m, ParseFailure) and "too long" in m.reason


def test_invalid_utf8_bytes_decoded_with_replacement():
    raw = b" What is \xff\xfe 3 + 4?\nNew solution: 7. The answer is 7.".decode("utf-8", "replace")
    m = parse_mutation(raw, PREFIX)
    assert isinstance(m, Mutation) and m.answer == "7"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=3000), st.sampled_from(["", PREFIX]))
def test_parser_is_total(raw: str, prefix: str):
    out = parse_mutation(raw, prefix)
    assert isinstance(out, Mutation | ParseFailure)
