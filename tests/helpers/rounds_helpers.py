"""Stand-ins for the slow stages of a rounds campaign (fine-tuning, evaluation), for the
control-flow tests of flows/rounds.py; `python -m tests.helpers.rounds_helpers DIR CONFIG` runs a
campaign with them (the crash tests kill it). The real stages run in docs/rounds.md's
measured campaign and in tests/unit/flows/test_rounds.py's vLLM test."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROBLEMS = 6


@dataclass
class Trained:
    steps: int
    final_loss: float | None


def fake_finetune(dataset_dir: str, out: str, *, config=None, log=None) -> Trained:
    """Writes a 'model' that records which rows it was trained on."""
    import pyarrow.parquet as pq

    rows = sum(pq.read_table(f).num_rows for f in sorted(Path(dataset_dir, "data").glob("*.parquet")))
    Path(out).mkdir(parents=True)
    (Path(out) / "trained.json").write_text(json.dumps({"rows": rows}))
    return Trained(steps=max(1, rows // 8), final_loss=1.0)


def fake_evaluate(model: str, *, config=None, log=None, engine=None) -> dict[str, Any]:
    """A deterministic evaluation: a tuned model answers one more problem than the base."""
    tuned = Path(model, "trained.json").is_file()
    correct = [2 if i < 2 + tuned else 0 for i in range(PROBLEMS)]
    est = {"estimate": sum(correct) / (4 * PROBLEMS), "ci_lo": 0.0, "ci_hi": 1.0}
    return {"model": model, "problems": PROBLEMS, "n": 4, "k": 4, "pass@1": est, "pass@4": est,
            "engine": getattr(engine, "name", None),
            "per_problem": [{"index": i, "answer": "1", "correct": c, "extracted": []} for i, c in enumerate(correct)]}


def stages():
    from filters.export import export_runs
    from flows.rounds import Stages

    return Stages(export=export_runs, finetune=fake_finetune, evaluate=fake_evaluate)


def main(argv: list[str]) -> int:
    from flows.rounds import load_rounds_config, run_rounds

    directory, config = argv[0], argv[1]
    rows = run_rounds(directory, load_rounds_config(config), stages=stages(), log=lambda m: print(m, flush=True))
    print(json.dumps({"rounds": [r["round"] for r in rows]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
