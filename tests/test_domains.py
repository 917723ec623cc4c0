"""The domain interface (pipeline/domains/): math behind it gives the rows it gave before."""

from __future__ import annotations

import json
from pathlib import Path

from tests.domain_golden import digest, golden_run

GOLDEN = Path(__file__).parent / "data" / "math_domain_golden.json"


def test_math_behind_the_domain_interface_gives_the_same_rows(tmp_path: Path):
    """A scripted steps-mode campaign (mutate, crossover and harder operators, validity gate,
    unparseable outputs, wrong references) commits the same candidates, attempts and metrics
    as the code before the domain interface (digest written by it: tests/data/)."""
    assert digest(golden_run(tmp_path)) == json.loads(GOLDEN.read_text())
