"""Checks on the bundled seed set and held-out split that data/make_seeds.py writes
(into pipeline/data/, package data of `pipeline`).

The committed files are what a run starts from by default, so they are tested as committed:
their shape, their answer format, the seed/held-out disjointness, and that the generator
still reproduces them byte for byte.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
DATA = ROOT / "pipeline" / "data"
SCRIPT = ROOT / "data" / "make_seeds.py"
SEEDS = Path("seeds") / "seeds.jsonl"
HELDOUT = Path("eval") / "heldout.jsonl"
README = Path("README.md")

STRING_FIELDS = ("id", "skill", "problem", "solution", "answer")
# Integer, reduced fraction, or terminating decimal without trailing zeros; no units.
ANSWER_RE = re.compile(r"^(0|[1-9]\d*)(/[1-9]\d*|\.\d*[1-9])?$")


def load(relative: Path) -> list[dict]:
    lines = (DATA / relative).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


@pytest.fixture(scope="module")
def seeds() -> list[dict]:
    return load(SEEDS)


@pytest.fixture(scope="module")
def heldout() -> list[dict]:
    return load(HELDOUT)


def test_seed_set_is_large_and_covers_many_skills(seeds: list[dict]) -> None:
    assert len(seeds) >= 300
    assert len({row["skill"] for row in seeds}) >= 8


@pytest.mark.parametrize("relative", [SEEDS, HELDOUT], ids=["seeds", "heldout"])
def test_rows_are_well_formed(relative: Path) -> None:
    rows = load(relative)
    assert rows
    for row in rows:
        assert set(row) == {*STRING_FIELDS, "difficulty"}, row
        for field in STRING_FIELDS:
            assert isinstance(row[field], str) and row[field].strip(), (row["id"], field)
        assert row["difficulty"] in (1, 2, 3), row["id"]
        assert ANSWER_RE.match(row["answer"]), (row["id"], row["answer"])
        assert row["solution"].endswith(f"The answer is {row['answer']}."), row["id"]
    assert len({row["id"] for row in rows}) == len(rows)
    assert len({normalise(row["problem"]) for row in rows}) == len(rows)


def test_mostly_easy(seeds: list[dict]) -> None:
    # The 270M student needs easy problems: difficulty 1 is the largest group.
    counts = {d: sum(row["difficulty"] == d for row in seeds) for d in (1, 2, 3)}
    assert counts[1] > counts[2] > counts[3] > 0


def test_heldout_is_disjoint_from_seeds(seeds: list[dict], heldout: list[dict]) -> None:
    seed_texts = {normalise(row["problem"]) for row in seeds}
    overlap = [row["id"] for row in heldout if normalise(row["problem"]) in seed_texts]
    assert not overlap


def test_generator_reproduces_committed_files(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(SCRIPT), "--out-dir", str(tmp_path)],
        check=True, capture_output=True, text=True,
    )
    for relative in (SEEDS, HELDOUT, README):
        assert (tmp_path / relative).read_bytes() == (DATA / relative).read_bytes(), relative
