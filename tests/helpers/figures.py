"""Figures reported by the guarantee tests (trials run, faults injected, inputs tried, rows lost).

Each test calls `Figures.record(name, **values)`; the values are merged into one JSON file:
$SPARQ_GUARANTEES_JSON when set (bench/guarantees.py sets it and rebuilds the Guarantees page, docs/guarantees.md
from it), else guarantees.json in pytest's base temporary directory.

A figure is a count of what the test observed, never a literal written after an assertion
passed: `row_figures` counts a run directory's committed rows against the rows its steps
should hold, so "rows lost 0" in the README is a number that was counted.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pipeline.store.storage import RunDir

ENV = "SPARQ_GUARANTEES_JSON"


class Figures:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, dict[str, Any]]:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def record(self, name: str, **values: Any) -> None:
        data = self.read()
        data[name] = {**values, "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)


def row_figures(run_dir: Path, *, seeds: int, batch: int) -> dict[str, int]:
    """Committed candidate rows of `run_dir` against what its committed steps should hold.

    Step 0 holds `seeds` rows (slots 0..seeds-1), every later step `batch` rows. Returns
    rows_expected, rows_found (distinct expected (step, slot) rows present), rows_lost
    (expected, absent) and rows_duplicated (rows beyond the first of a (step, slot), plus
    rows in no expected slot).
    """
    run = RunDir(run_dir)
    ckpt = run.read_checkpoint()
    committed = -1 if ckpt is None else ckpt.step
    expected = {(0, slot) for slot in range(seeds)} if committed >= 0 else set()
    expected |= {(step, slot) for step in range(1, committed + 1) for slot in range(batch)}
    found: Counter[tuple[int, int]] = Counter()
    if committed >= 0:
        table = run.read_candidates(upto=committed, columns=["step", "slot"])
        found.update(zip(table["step"].to_pylist(), table["slot"].to_pylist(), strict=True))
    present = expected & set(found)
    extra = sum(n for key, n in found.items() if key not in expected)
    return {"rows_expected": len(expected), "rows_found": len(present), "rows_lost": len(expected - present),
            "rows_duplicated": sum(n - 1 for key, n in found.items() if key in expected) + extra}


def files_changed(before: dict[str, str], after: dict[str, str]) -> int:
    """Files added, removed or rewritten between two {path: digest} snapshots of a directory."""
    return sum(before.get(name) != after.get(name) for name in before.keys() | after.keys())
