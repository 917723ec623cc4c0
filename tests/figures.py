"""Figures reported by the guarantee tests (trials run, faults injected, inputs tried, rows lost).

Each test calls `Figures.record(name, **values)`; the values are merged into one JSON file:
$SPARQ_GUARANTEES_JSON when set (bench/guarantees.py sets it and rebuilds the README's Guarantees section
from it), else guarantees.json in pytest's base temporary directory.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

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
