import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.domains.base import Verdict
from pipeline.domains.math.answers import (
    SCAN_CHARS,
    AnswerJudge,
    answers_equal,
    extract_final,
    fast_equal,
    judge,
    judge_fast,
    math_verify_equal,
    normalize_answer,
    timed_out_verdict,
)

# Measured slow with math-verify 0.9 / sympy 1.14: parsing is instant, but
# verify() against a small number evaluates the tower and runs for minutes.
ADVERSARIAL_REFERENCE = r"9^{9^{9^{9}}}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is 12.", "12"),
        ("The answer is 2.5.", "2.5"),
        ("so the final answer is $\\frac{3}{4}$. Done.", "\\frac{3}{4}"),
        ("the final answer is 7", "7"),
        ("**The answer is 12**", "12"),
        ("The answer is 3.14...", "3.14"),
        ("The answer is 12. Next we check it.", "12"),
        ("Answer: 5 cm", "5 cm"),
        ("The answer is \\(x^2\\).", "x^2"),
        (r"We get \boxed{\frac{3}{4}}.", r"\frac{3}{4}"),
        (r"\boxed{\dfrac{\sqrt{3}}{2}}", r"\dfrac{\sqrt{3}}{2}"),
        (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),
        (r"First \boxed{1}, then \boxed{2}.", "2"),
        (r"The answer is 9 but \boxed{10}", "10"),
        # A last \boxed cut off by the length limit does not hide an earlier one.
        (r"So \boxed{7}. Check: \boxed{7 +", "7"),
        ("The answer is 4.\nOn reflection the answer is 5.", "5"),
        ("no final answer here", None),
        ("The answer is", None),
        (r"\boxed{}", None),
        ("", None),
    ],
)
def test_extract_final(text, expected):
    assert extract_final(text) == expected


def test_extract_final_long_text_scans_only_the_tail():
    filler = "Let us think step by step about this problem. " * 2000  # ~90k chars
    text = filler + "The answer is 12."
    started = time.perf_counter()
    assert extract_final(text) == "12"
    assert time.perf_counter() - started < 0.5
    # An answer earlier than the scanned tail is deliberately not found.
    assert extract_final(r"\boxed{5}" + "x" * (SCAN_CHARS + 10)) is None
    assert extract_final(r"\boxed{5}" + filler[: SCAN_CHARS // 2]) == "5"


def test_extract_final_many_unclosed_boxes_is_fast():
    started = time.perf_counter()
    assert extract_final(r"\boxed{" * 2000) is None
    assert extract_final(r"\boxed{1}" + r"\boxed{" * 400) == "1"
    assert time.perf_counter() - started < 0.5


def test_extract_final_invalid_utf8():
    text = b"\xff\xfe The answer is 7. \xc3\x28 \xed\xa0\x80".decode("utf-8", errors="replace")
    assert extract_final(text) == "7"
    assert extract_final("\ud800 \\boxed{\ud800} \x00") == "\ud800"


@given(st.text(alphabet=st.sampled_from(list("\\{}$.,01239 boxedfracnswri:*\n")) | st.characters()))
@settings(max_examples=400, deadline=None)
def test_extract_and_normalize_never_raise(text):
    result = extract_final(text)
    assert result is None or (isinstance(result, str) and result)
    assert isinstance(normalize_answer(text), str)


# Lone surrogates (category Cs) are what a bad decode can leave in a str.
@given(st.text(st.characters(categories=["Cs", "Cc"]) | st.characters(), max_size=200))
@settings(max_examples=200, deadline=None)
def test_surrogates_and_controls_never_raise(text):
    extract_final(text)
    normalize_answer(text)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" 12 ", "12"),
        ("$12$", "12"),
        ("1,200", "1200"),
        ("-1,234,567.50", "-1234567.5"),
        ("1{,}000", "1000"),
        ("1, 200", "1,200"),  # a list, not a number
        ("(1,200)", "(1,200)"),
        ("12.50", "12.5"),
        ("12.0", "12"),
        ("0.000", "0"),
        ("100", "100"),
        (r"\frac{3}{4}", "3/4"),
        (r"\dfrac{3}{4}", "3/4"),
        (r"\tfrac12", "1/2"),
        (r"-\frac{3}{4}", "-3/4"),
        (r"\frac{x+1}{2}", "(x+1)/2"),
        (r"x+\frac{1}{2}", "x+1/2"),
        (r"\frac{\frac{1}{2}}{3}", "(1/2)/3"),
        (r"2\frac{1}{2}", "2(1/2)"),  # not "21/2", which is \frac{21}{2}
        (r"\frac{1}{2}3", "(1/2)3"),  # not "1/23"
        (r"\frac{1}{2}^2", "(1/2)^2"),
        (r"a*\frac{1}{2}+1", "a*1/2+1"),
        (r"3\,000", "3000"),
        ("x + y", "x+y"),
        ("", ""),
    ],
)
def test_normalize_answer(raw, expected):
    assert normalize_answer(raw) == expected


@pytest.mark.parametrize(
    ("reference", "predicted", "expected"),
    [
        ("3/4", "0.75", True),
        (r"\frac{3}{4}", "3/4", True),
        ("12", "12.0", True),
        ("1,200", "1200", True),
        (r"\frac{1}{\sqrt{2}}", r"\frac{\sqrt{2}}{2}", True),
        ("x^2-1", "(x-1)(x+1)", True),
        ("5", "6", False),
        ("3/4", "4/3", False),
        ("5", "", False),
        ("", "", False),
    ],
)
def test_answers_equal(reference, predicted, expected):
    assert answers_equal(reference, predicted) is expected


def test_judge_majority_share_and_agreement():
    attempts = ["The answer is 17.", r"\boxed{17.0}", "The answer is 18", "no idea", r"\boxed{18}"]
    v = judge("17", attempts)
    assert v == Verdict(
        correct=(True, True, False, False, False),
        extracted=("17", "17.0", "18", None, "18"),
        majority_answer="17",  # 2 vs 2: the class seen first wins
        majority_share=pytest.approx(2 / 5),
        reference_agrees=True,
        timed_out=False,
    )


def test_judge_merges_equivalent_wrong_answers():
    attempts = [r"\boxed{0.75}", "The answer is 2.", r"\boxed{\frac{3}{4}}", "The answer is 3/4"]
    v = judge("2", attempts)
    assert v.correct == (False, True, False, False)
    assert v.majority_answer == "0.75"
    assert v.majority_share == pytest.approx(3 / 4)
    assert v.reference_agrees is False


def test_judge_without_answers():
    v = judge("2", ["I give up", "hmm"])
    assert v.correct == (False, False)
    assert (v.majority_answer, v.majority_share, v.reference_agrees) == (None, 0.0, None)
    empty = judge("2", [])
    assert (empty.correct, empty.majority_share, empty.majority_answer) == ((), 0.0, None)


def test_timed_out_verdict_keeps_extractions():
    v = timed_out_verdict("2", ["The answer is 2.", r"\boxed{2.0}", "x"])
    assert v.timed_out and v.correct == (False, False, False)
    assert v.extracted == ("2", "2.0", None)
    assert (v.majority_answer, v.majority_share, v.reference_agrees) == ("2", 2 / 3, None)


@pytest.fixture(scope="module")
def answer_judge():
    with AnswerJudge(max_workers=2, timeout_s=2.0) as j:
        yield j


def test_judge_many_matches_judge_in_order(answer_judge):
    items = [("17", ["The answer is 17."]), ("3/4", [r"\boxed{0.75}", "The answer is 1/2"])]
    assert answer_judge.judge_many(items) == [judge(r, a) for r, a in items]
    assert answer_judge.judge_many([]) == []


def test_judge_many_from_a_thread(answer_judge):
    # math-verify's own signal-based timeout would raise here.
    results: list[list[Verdict]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(answer_judge.judge_many([("3/4", [r"\boxed{\frac{3}{4}}"])]))
        except BaseException as exc:  # re-raised in the test thread below
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=60)
    assert not errors, errors
    assert results and results[0][0].correct == (True,)


def test_fresh_judge_started_in_a_thread():
    results: list[list[Verdict]] = []

    def run() -> None:
        with AnswerJudge(max_workers=1, timeout_s=5.0) as j:
            results.append(j.judge_many([("12", ["The answer is 12.0"])]))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=120)
    assert results and results[0][0].correct == (True,)


def test_adversarial_input_times_out_and_pool_recovers(answer_judge):
    restarts = answer_judge.restarts
    items = [
        (ADVERSARIAL_REFERENCE, ["The answer is 5.", r"\boxed{5}"]),
        ("3/4", [r"\boxed{0.75}"]),
    ]
    started = time.perf_counter()
    slow, fine = answer_judge.judge_many(items)
    elapsed = time.perf_counter() - started
    assert slow.timed_out and slow.correct == (False, False)
    assert slow.extracted == ("5", "5")
    assert slow.reference_agrees is None
    assert not fine.timed_out and fine.correct == (True,)
    assert elapsed < answer_judge.timeout_s + 5
    assert answer_judge.restarts == restarts + 1
    # The restarted pool serves the next call.
    assert answer_judge.judge_many([("12", ["The answer is 12."])])[0].correct == (True,)


def test_parallel_timeouts_share_the_wait():
    items = [(ADVERSARIAL_REFERENCE, ["The answer is 5."]), (ADVERSARIAL_REFERENCE, [r"\boxed{6}"])]
    # A long limit so that start-up and restart costs on a busy machine (the suite may
    # run beside another) stay small against it: one at a time would take 2 x 5 s.
    with AnswerJudge(max_workers=2, timeout_s=5.0) as judge_pool:
        judge_pool.judge_many([("1", ["The answer is 1."])])  # workers up before timing
        started = time.perf_counter()
        verdicts = judge_pool.judge_many(items)
        elapsed = time.perf_counter() - started
    assert [v.timed_out for v in verdicts] == [True, True]
    # Both ran at once on two workers: one time limit, not two.
    assert elapsed < 1.6 * 5.0


def test_an_item_beside_a_timeout_near_its_own_limit_is_not_run_again(monkeypatch):
    # On a loaded machine the second of two items was submitted a moment after the first,
    # missed the first's deadline by a few ms, was killed by the restart and ran a whole
    # second time (2 x the limit). Submits 0.2 s apart reproduce it; 0.2 s is within
    # NEAR_DEADLINE of a 3 s limit, so both are charged at the first restart.
    items = [(ADVERSARIAL_REFERENCE, ["The answer is 5."]), (ADVERSARIAL_REFERENCE, [r"\boxed{6}"])]
    with AnswerJudge(max_workers=2, timeout_s=3.0) as judge_pool:
        judge_pool.judge_many([("1", ["The answer is 1."])])  # workers up before timing
        real_submit = judge_pool.pool._submit

        def late_submit(item):
            future = real_submit(item)
            time.sleep(0.2)
            return future

        monkeypatch.setattr(judge_pool.pool, "_submit", late_submit)
        started = time.perf_counter()
        verdicts = judge_pool.judge_many(items)
        elapsed = time.perf_counter() - started
        restarts = judge_pool.restarts
    assert [v.timed_out for v in verdicts] == [True, True]
    assert elapsed < 1.6 * 3.0, elapsed
    assert restarts == 1  # one restart for both, not one each


def _until(cond, what: str, timeout: float = 30.0) -> None:
    """Wait for an event (polling `cond`), not for a guessed time; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def test_worker_death_is_retried_then_given_up(answer_judge):
    restarts = answer_judge.restarts
    results: list[list[Verdict]] = []
    thread = threading.Thread(
        target=lambda: results.append(
            answer_judge.judge_many([(ADVERSARIAL_REFERENCE, ["The answer is 5."])])
        )
    )
    thread.start()
    # The item is in the pool (submitted, not finished: it runs for timeout_s) before the kill.
    _until(lambda: answer_judge._executor._pending_work_items, "the item to reach the pool")
    # Simulate the OOM killer: _processes is the executor's only handle on them.
    for process in list(answer_judge._executor._processes.values()):
        process.kill()
    thread.join(timeout=60)
    assert results and results[0][0].timed_out
    # One restart for the crash, one for the retried item's time limit.
    assert answer_judge.restarts == restarts + 2
    assert answer_judge.judge_many([("1", [r"\boxed{1}"])])[0].correct == (True,)


def test_idle_worker_death_is_recovered(answer_judge):
    restarts = answer_judge.restarts
    processes = list(answer_judge._executor._processes.values())
    for process in processes:
        process.kill()
    for process in processes:
        process.join(timeout=10)
    _until(lambda: answer_judge._executor._broken, "the executor to notice and mark itself broken")
    assert answer_judge.judge_many([("2", ["The answer is 2."])])[0].correct == (True,)
    assert answer_judge.restarts == restarts + 1


def test_startup_timeout_is_reported():
    j = AnswerJudge(max_workers=1, startup_timeout_s=0.001)
    with pytest.raises(TimeoutError, match="did not start within"):
        j.start()
    j.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_workers": 0}, "max_workers must be an int >= 1"),
        ({"timeout_s": 0}, "timeout_s must be a number > 0"),
        ({"startup_timeout_s": -1}, "startup_timeout_s must be a number > 0"),
    ],
)
def test_answer_judge_validates_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AnswerJudge(**kwargs)


# --- the fast path (no math-verify) must give math-verify's answer ---------------------

FAST_EDGE_PAIRS = [
    ("1,200", "1.2"), ("1,200", "1200"), ("12,000", "12"), ("-1,234", "-1234"), ("1,234", "1.234"),
    ("-0", "0"), ("007", "7"), ("1.5", "1.50"), ("3", "3.0"), ("2", "2.000001"), ("2", "2.0000001"),
    ("999999999999999", "999999999999998"), ("123456.123456", "123456.123457"), ("0.5", "1/2"),
    ("17", "$17$"), ("17", r"\boxed{17}"), ("5", "6"), ("-3", "3"), ("0", "0.000001"),
]


def _random_number(rnd) -> str:
    k = rnd.random()
    if k < 0.3:
        return str(rnd.randint(-50, 50))
    if k < 0.5:
        return str(rnd.randint(-10**15, 10**15))
    if k < 0.7:
        return f"{rnd.uniform(-1000, 1000):.{rnd.randint(1, 6)}f}"
    if k < 0.8:
        return f"{rnd.randint(1, 999)},{rnd.randint(0, 999):03d}"
    if k < 0.9:
        return f"{rnd.randint(0, 3)}.{rnd.randint(0, 10**6)}"
    return rnd.choice(["0", "-0", "0.0", "1", "1.0", "10", "1.000001", "0.999999", "100000.5", "99999.999999"])


def test_fast_equal_agrees_with_math_verify():
    import random

    rnd = random.Random(0)
    pairs = list(FAST_EDGE_PAIRS)
    for _ in range(400):
        a = _random_number(rnd)
        pairs.append((a, a if rnd.random() < 0.2 else _random_number(rnd)))
    decided = 0
    for a, b in pairs:
        fast = fast_equal(a, b)
        if fast is not None:
            decided += 1
            assert fast == math_verify_equal(a, b), (a, b)
        assert answers_equal(a, b) == (fast if fast is not None else math_verify_equal(a, b))
    assert decided > 350  # plain numbers are decided without sympy


@pytest.mark.parametrize(
    ("reference", "attempts"),
    [
        ("17", ["The answer is 17.", "The answer is 19.", "The answer is 19.", "no idea"]),
        ("2.5", ["The answer is 2.50", "The answer is 3", r"\boxed{2.5}", "The answer is -3"]),
        ("17", ["The answer is 17.", r"\boxed{\frac{34}{2}}"]),  # needs math-verify
        ("3/4", [r"\boxed{0.75}", "The answer is 1/2"]),
        ("5", []),
    ],
)
def test_judge_fast_is_judge_or_none(reference, attempts):
    fast = judge_fast(reference, attempts)
    assert fast is None or fast == judge(reference, attempts)


def test_judge_many_keeps_fast_problems_off_the_pool(answer_judge, monkeypatch):
    items = [("17", ["The answer is 17.", "The answer is 19."]), ("8", ["The answer is 8.0", "no"]),
             ("3/4", [r"\boxed{0.75}"])]
    submitted = []
    real_submit = answer_judge.pool._submit
    monkeypatch.setattr(answer_judge.pool, "_submit", lambda item: submitted.append(item) or real_submit(item))
    assert answer_judge.judge_many(items) == [judge(r, a) for r, a in items]
    assert [r for r, _ in submitted] == ["3/4"]


# -- judging fixes: the last "the answer is" of a line wins; units --------------------------

@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("First the answer is 7. Wait, recount: the answer is 12.", "12"),
        ("The answer is 3, no, the final answer is 4.", "4"),
        ("Answer: 5. The answer is 6 apples.", "6 apples"),
        # a phrase with nothing after it does not hide an earlier one
        ("The answer is 8. So the answer is", "8"),
    ],
)
def test_extract_final_last_phrase_of_a_line_wins(text, expected):
    assert extract_final(text) == expected


def test_generator_reference_takes_the_last_answer_phrase():
    from pipeline.domains.math.mutation import parse_mutation

    m = parse_mutation(" What is 3 + 9?\nNew solution: First the answer is 7. Wait, recount: the answer is 12.",
                       "New problem:")
    assert m.answer == "12"


@pytest.mark.parametrize(
    ("reference", "predicted", "expected"),
    [
        ("12", "12 eggs", True),  # a bare number matches the same number with a unit
        ("12 eggs", "12", True),
        ("12 eggs", "12 egg", True),  # singular and plural are one unit
        ("12 cm", "12 cm", True),
        ("12 cm", "12 m", False),  # two units must be the same unit
        ("12 cm", "12 meters", False),
        ("$12", "12 dollars", True),
        ("12", "13 eggs", False),
        ("12x", "12", False),  # a letter stuck to a number is algebra, not a unit
        ("5 square meters", "5", True),
    ],
)
def test_answers_equal_units(reference, predicted, expected):
    assert answers_equal(reference, predicted) is expected
    assert judge(reference, [f"The answer is {predicted}."]).correct == (expected,)


def test_crash_is_charged_only_to_the_problem_that_causes_it():
    """A worker crash names no culprit; the problems beside it run again alone and keep their
    real verdicts (before: every problem in flight at both crashes was timed out)."""
    from tests.helpers.judge_faults import CRASH_REFERENCE, crash_on_reference

    items = [(CRASH_REFERENCE, [r"\boxed{0.5}"]), ("3/4", [r"\boxed{0.75}"]), ("1/2", [r"\boxed{0.5}"]),
             ("2/3", [r"\boxed{0.5}"])]
    assert all(judge_fast(*item) is None for item in items)  # all of them go to the workers
    with AnswerJudge(max_workers=2, timeout_s=20.0) as pool:
        pool.judge_fn = crash_on_reference
        culprit, *others = pool.judge_many(items)
    assert culprit.timed_out and culprit.correct == (False,)
    assert [v.timed_out for v in others] == [False, False, False]
    assert [v.correct for v in others] == [(True,), (True,), (False,)]
