"""Throughput figures of a finished run directory (used for the measurements in docs/measured.md).

    python bench/run_figures.py RUN_DIR

Prints generation and solving tokens/s (engine time only, from metrics.parquet) and
candidates per minute over the whole step time (engine, parsing, verification,
embedding, archive, commit).
"""

from __future__ import annotations

import argparse
import json

import pyarrow.compute as pc

from pipeline.store.storage import RunDir


def figures(run_dir: str) -> dict[str, float]:
    m = RunDir(run_dir).read_metrics()
    m = m.filter(pc.greater(m["step"], 0))
    total = lambda col: float(pc.sum(m[col]).as_py() or 0)  # noqa: E731
    return {
        "steps": m.num_rows,
        "candidates": total("candidates"),
        "gen_tokens_per_s": round(total("gen_tokens") / max(total("mutate_seconds"), 1e-9), 1),
        "solve_tokens_per_s": round(total("solve_tokens") / max(total("solve_seconds"), 1e-9), 1),
        "candidates_per_min": round(60 * total("candidates") / max(total("seconds"), 1e-9), 2),
        "in_band": total("in_band"),
        "accepted": total("accepted"),
        "step_seconds_mean": round(total("seconds") / max(m.num_rows, 1), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    print(json.dumps(figures(parser.parse_args().run_dir), indent=2))


if __name__ == "__main__":
    main()
