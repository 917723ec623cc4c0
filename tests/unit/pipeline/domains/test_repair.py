"""[validity] repair (pipeline/domains/math/repair.py): a reference whose one slip is its last
computation is corrected, and nothing else is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.domains.math.arith import claims
from pipeline.domains.math.repair import repair_reference
from pipeline.domains.math.validity import check_reference

LABELS = Path(__file__).resolve().parents[4] / "data" / "validity" / "labels.jsonl"
REPAIRED = Path(__file__).resolve().parents[4] / "data" / "validity" / "repaired.jsonl"


@pytest.mark.parametrize(
    ("solution", "answer", "fixed_solution", "fixed_answer"),
    [
        ("4 times 22 is 12. The answer is 12.", "12", "4 times 22 is 88. The answer is 88.", "88"),
        ("Area = length times width = 12 times 15 = 160. The answer is 160.", "160",
         "Area = length times width = 12 times 15 = 180. The answer is 180.", "180"),
        # the unit stays; only the number changes
        ("The weight is 14 + 2 = 20 kilograms. The answer is 20 kilograms.", "20 kilograms",
         "The weight is 14 + 2 = 16 kilograms. The answer is 16 kilograms.", "16 kilograms"),
        ("1.60 times 1.60 = 3.60. The answer is 3.60.", "$3.60", "1.60 times 1.60 = 2.56. The answer is 2.56.",
         "$2.56"),
        ("The total is 1,000 + 250 = 1,350. The answer is 1,350.", "1,350",
         "The total is 1,000 + 250 = 1250. The answer is 1250.", "1250"),
        ("30% of 22 is 0.3 times 22, which is 0.11. The answer is 0.11.", "0.11",
         "30% of 22 is 0.3 times 22, which is 6.6. The answer is 6.6.", "6.6"),
    ],
)
def test_a_slip_in_the_last_step_is_corrected(solution: str, answer: str, fixed_solution: str, fixed_answer: str):
    fixed = repair_reference("Q?", solution, answer)
    assert fixed is not None and (fixed.solution, fixed.answer) == (fixed_solution, fixed_answer)
    assert all(c.holds() for c in claims(fixed.solution))
    assert "was false" in fixed.note


@pytest.mark.parametrize(
    ("solution", "answer"),
    [
        ("12 + 5 = 17. The answer is 17.", "17"),  # nothing false
        ("4 times 22 is 12, so 12 + 1 = 13. The answer is 13.", "13"),  # a later step used the slip
        ("5 times 8 is 25, and 8 times 5 is 25. The answer is 25.", "25"),  # two false claims
        ("8 / 3 = 2. The answer is 2.", "2"),  # 8/3 has no short decimal
        ("23 - 50 = 10. The answer is 10.", "10"),  # a negative result: likely the wrong operation
        ("4 times 22 is 12. The answer is 13.", "13"),  # the answer is not the slip's result
        ("We have 12 boxes; 4 times 22 is 12. The answer is 12.", "12"),  # 12 written twice: which is the slip?
        ("The answer is \\boxed{12}, as 4 times 22 is 12.", "12"),
    ],
)
def test_nothing_else_is_repaired(solution: str, answer: str):
    assert repair_reference("Q?", solution, answer) is None


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_on_the_labelled_rows_a_repair_touches_only_rejected_rows_and_leaves_true_arithmetic():
    repaired = 0
    for r in _rows(LABELS):
        fixed = repair_reference(r["problem"], r["solution"], r["answer"])
        if fixed is None:
            continue
        repaired += 1
        # Only a false claim is repaired, so no row the checks pass (every valid row) is touched.
        assert not check_reference(r["problem"], r["solution"], r["answer"]).valid
        assert r["label"] == "invalid"
        assert all(c.holds() for c in claims(fixed.solution))
        assert fixed.solution != r["solution"] and fixed.answer != r["answer"]
    assert repaired > 0


def test_the_labelled_repairs_are_what_the_code_repairs_today():
    # data/validity/repaired.jsonl holds hand labels of repaired references (its README);
    # the labels are of these exact texts, so the repair must still produce them.
    sources = {r["id"]: r for r in _rows(LABELS)}
    rows = [r for r in _rows(REPAIRED) if r["source"].startswith("labels:")]
    assert rows
    for r in rows:
        src = sources[r["source"].removeprefix("labels:")]
        fixed = repair_reference(src["problem"], src["solution"], src["answer"])
        assert fixed is not None and (fixed.solution, fixed.answer) == (r["solution"], r["answer"])
    assert {r["label"] for r in _rows(REPAIRED)} <= {"valid", "invalid"}
