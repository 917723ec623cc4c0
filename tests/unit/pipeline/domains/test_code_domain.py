"""The code domain (pipeline/domains/code/__init__.py): parsing the generator's output, the validity
checks, judging attempts in the sandbox, the packaged config and the bundled seeds."""

from __future__ import annotations

import pytest

from pipeline.config import CODE_CHECKS, ConfigError, load_config
from pipeline.domains import make_domain
from pipeline.domains.base import Mutation, ParseFailure
from pipeline.domains.code import (
    CodeJudge,
    assert_lines,
    check_code,
    clean_code,
    named_function,
    parse_code_mutation,
    stubbed,
)
from pipeline.store.seeds import load_seeds

PROBLEM = "Write a function `triple(n: int) -> int` that returns three times `n`."
SOLUTION = "def triple(n):\n    return 3 * n"
TESTS = "assert triple(2) == 6\nassert triple(0) == 0\nassert triple(-1) == -3"

OUTPUT = f""" {PROBLEM}
New solution:
```python
{SOLUTION}
```
New tests:
{TESTS}
This line ends the tests.
###
Original problem: something else"""


def test_parse_reads_problem_solution_and_tests():
    m = parse_code_mutation(OUTPUT, "New problem:")
    assert m == Mutation(problem=PROBLEM, solution=SOLUTION, answer=TESTS)


def test_parse_takes_mislabelled_sections_after_the_new_problem():
    # the embedded model copies the parent's labels for its own sections
    text = f" {PROBLEM}\nOriginal solution:\n{SOLUTION}\nNew test:\n{TESTS}\n"
    assert parse_code_mutation(text, "New problem:") == Mutation(problem=PROBLEM, solution=SOLUTION, answer=TESTS)
    # ... but a new example ends the candidate
    text = f" {PROBLEM}\nOriginal problem: Write `g(x)`.\nNew solution:\n{SOLUTION}\nNew tests:\n{TESTS}\n"
    assert isinstance(parse_code_mutation(text, "New problem:"), ParseFailure)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (" Write a function `f(x)`.", "no solution found"),
        (" Write a function `f(x)`.\nNew solution:\ndef f(x):\n    return x", "no tests found"),
        (" Write a function `f(x)`.\nNew solution:\ndef f(x):\n    return x\nNew tests:\nprint(1)", "no assert lines"),
        (" f\nNew solution:\ndef f(x):\n    return x\nNew tests:\nassert f(1) == 1", "problem too short"),
    ],
)
def test_parse_failures_name_what_is_missing(text: str, reason: str):
    out = parse_code_mutation(text, "New problem:")
    assert isinstance(out, ParseFailure) and reason in out.reason, out


def test_helpers():
    assert named_function(PROBLEM) == "triple"
    assert named_function("Write a function named count_words that ...") == "count_words"
    assert named_function("Write a function count_words(s) that ...") == "count_words"
    assert named_function("Write a function that counts words.") is None
    assert clean_code("Here is my code:\n```python\ndef f():\n    return 1\n```") == "def f():\n    return 1"
    assert assert_lines("assert f(1) == 1\n\nassert f(2) == 2\nnot a test\nassert f(3) == 3") == [
        "assert f(1) == 1", "assert f(2) == 2"]
    assert "return None" in stubbed(SOLUTION, "triple")
    assert stubbed(SOLUTION, "other") is None


@pytest.mark.parametrize(
    ("problem", "solution", "tests", "failed"),
    [
        (PROBLEM, SOLUTION, TESTS, ()),
        (PROBLEM, "def triple(n):\n    return 3 * n +", TESTS, ("syntax",)),
        (PROBLEM, "def thrice(n):\n    return 3 * n", TESTS, ("names_function",)),
        ("Write a function that triples.", SOLUTION, TESTS, ("names_function",)),
        (PROBLEM, SOLUTION, "assert triple(2) == 6", ("tests_call",)),
        (PROBLEM, SOLUTION, "assert triple(2) == 6\nassert 1 == 1", ("tests_call",)),
        # the generator's own wrong reference: "3 * 2 is 5"
        (PROBLEM, "def triple(n):\n    return 3 * n - 1", TESTS, ("reference_passes",)),
        # tests that test nothing: a function returning None passes them
        (PROBLEM, SOLUTION, "assert triple(2) or True\nassert triple(0) is None or triple(0) == 0",
         ("tests_discriminate",)),
    ],
)
def test_checks(problem: str, solution: str, tests: str, failed: tuple[str, ...]):
    v = check_code(problem, solution, tests)
    assert v.failed == failed, v.reason
    if failed:
        assert v.reason.startswith(failed[0] + ": ")


def test_a_reference_that_hangs_or_escapes_fails_its_check_in_the_sandbox(tmp_path):
    marker = tmp_path / "escaped"
    hang = "def triple(n):\n    while True:\n        pass"
    v = check_code(PROBLEM, hang, TESTS)
    assert v.failed == ("reference_passes",) and ("timeout" in v.reason or "cpu time" in v.reason), v.reason
    escape = f"def triple(n):\n    open({str(marker)!r}, 'w').write('x')\n    return 3 * n"
    v = check_code(PROBLEM, escape, TESTS)
    assert not marker.exists()
    assert v.failed == ("reference_passes",), v.reason


def test_judge_runs_each_attempt_against_the_tests():
    judge = CodeJudge(timeout_s=5)
    try:
        [v] = judge.judge_many([(TESTS, [SOLUTION, "def triple(n):\n    return n + n", "I cannot do that.",
                                         "```python\ndef triple(n):\n    return n * 3\n```"])])
    finally:
        judge.close()
    assert v.correct == (True, False, False, True)
    assert v.extracted[0] == "passed" and "no function" in v.extracted[2] and "assert" in v.extracted[1].lower()
    assert v.majority_answer is None and v.reference_agrees is True and v.majority_share == 0.5


def test_the_packaged_config_and_the_domain_checks():
    cfg = load_config("code")
    assert cfg.domain.kind == "code" and cfg.validity.checks == CODE_CHECKS
    assert make_domain(cfg.domain).check_names == CODE_CHECKS
    with pytest.raises(ConfigError, match="checks of domain 'code'"):
        cfg.replace("domain", kind="code").replace("validity", checks=["arithmetic"])
    with pytest.raises(ConfigError, match="checks of domain 'math'"):
        load_config().replace("validity", checks=["syntax"])


@pytest.mark.parametrize("source", ["bundled-code", "bundled-code-eval"])
def test_bundled_code_seeds_pass_every_check(source: str):
    cfg = load_config("code")
    seeds = load_seeds(cfg.seeds if source == "bundled-code" else cfg.replace("seeds", source=source).seeds)
    assert len(seeds) >= (100 if source == "bundled-code" else 30)
    failures = [(s.problem[:60], v.reason) for s in seeds
                if not (v := check_code(s.problem, s.solution, s.answer)).valid]
    assert failures == []


# -- a scripted code campaign, end to end: generate, judge in the sandbox, export ----------

WORDINGS = ["returns `n` plus 1", "returns one more than `n`", "returns the integer after `n`",
            "returns `n` increased by one"]
GOOD = [f" Write a function `succ(n: int) -> int` that {w}.\nNew solution:\ndef succ(n):\n    return n + 1\n"
        f"New tests:\nassert succ(1) == 2\nassert succ(-1) == 0\nassert succ(41) == 42\n" for w in WORDINGS]
# the generator's wrong reference ("succ(1) is 3"): rejected by reference_passes, never solved
BAD = (" Write a function `succ(n: int) -> int` that returns the next integer.\nNew solution:\ndef succ(n):\n"
       "    return n + 2\nNew tests:\nassert succ(1) == 2\nassert succ(5) == 6\n")


def test_scripted_code_campaign_exports_trl_rows(tmp_path):
    from filters.config import export_config_from_dict
    from filters.export import export_runs
    from pipeline.loop.generate import run_generation
    from pipeline.store.records import Status
    from pipeline.store.storage import RunDir
    from tests.conftest import write_script

    # Half the attempts are right: solve rate 0.5, in band.
    script = write_script(tmp_path / "script.json", mutate=[*GOOD, BAD],
                          solve=["def succ(n):\n    return n + 1", "def succ(n):\n    return n - 1"])
    checks = ", ".join(f'"{c}"' for c in CODE_CHECKS)
    cfg = tmp_path / "config.toml"
    cfg.write_text(f"""
[domain]
kind = "code"
[run]
steps = 2
batch_size = 5
mode = "steps"
[engine]
kind = "scripted"
[engine.scripted]
script = "{script}"
[seeds]
source = "bundled-code"
limit = 20
[generator]
prompt = "code_mutate_fewshot"
[solver]
prompt = "code_solve_fewshot"
k = 4
[archive]
cells = 8
[validity]
checks = [{checks}]
""")
    run_dir = tmp_path / "run"
    summary = run_generation(load_config(cfg), run_dir, show_bar=False, progress=lambda m: None)
    assert summary["invalid"] >= 1 and summary["valid"] >= 4
    import pyarrow.parquet as pq

    def table(kind: str) -> list[dict]:
        return [r for p in RunDir(run_dir).shard_paths(kind) for r in pq.read_table(p).to_pylist()]

    cands = table("candidates")
    invalid = [c for c in cands if c["status"] == Status.INVALID]
    assert invalid and all("reference_passes" in c["invalid_checks"] and c["k"] == 0 for c in invalid)
    ok = [c for c in cands if c["status"] == Status.OK]
    assert ok and all(c["solve_rate"] == 0.5 and c["reference_agrees"] is True for c in ok)
    attempts = table("attempts")
    assert {a["extracted"] for a in attempts if a["correct"]} == {"passed"}
    assert all("AssertionError" in a["extracted"] for a in attempts if not a["correct"])

    out = tmp_path / "out"
    res = export_runs([run_dir], out, config=export_config_from_dict({"scheduler": "sync"}))
    assert res.data_rows >= 1
    rows = [r for f in sorted((out / "data").glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    for row in rows:
        user, assistant = row["messages"]
        assert user["role"] == "user" and "`succ(n: int) -> int`" in user["content"]
        assert assistant["role"] == "assistant" and assistant["content"].startswith("def succ(n):")
