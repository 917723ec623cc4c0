"""A scripted campaign's committed rows as a digest: the same config must give the same rows
(tests/unit/pipeline/domains/test_domains.py compares it with tests/data/math_domain_golden.json, written by the
code before the loop reached math through the domain interface)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pipeline.config import load_config
from pipeline.loop.generate import run_generation
from pipeline.store.storage import RunDir
from tests.conftest import write_config, write_script
from tests.helpers.run_fixtures import MUTATIONS, SOLVES

# Ignored: when a row was written, and the embedding's floats (their last bits may differ
# with the thread count; the cells they give are compared). Everything else must match.
VOLATILE = {"created_at", "embedding"}
# Columns added after the digest was written: left out while null or 0 (nothing repaired).
NEWER = {"repair", "repaired"}
# Prompt versions bumped after the digest was written, for changes the scripted runs do not
# meet (v3 added the stop string "\nNew problem:", which none of their outputs contains).
RENAMED = {"mutate-fewshot-v3": "mutate-fewshot-v2"}


def golden_run(base: Path) -> Path:
    script = write_script(base / "script.json", mutate=MUTATIONS + [
        " What is 5 times 8?\nNew solution: 5 times 8 is 25. The answer is 25.",
        " How many pages does the chapter have?\nNew solution: It has 49 - 30 = 20. The answer is 20."],
        solve=SOLVES + [" 5 times 8 is 40. The answer is 40.", " The answer is \\frac{3}{4}."])
    cfg = write_config(base / "config.toml", f"""
[run]
steps = 4
batch_size = 6
mode = "steps"
[seeds]
limit = 12
[engine]
kind = "scripted"
[engine.scripted]
script = "{script}"
[solver]
k = 4
prompt = "solve_fewshot"  # the solver prompt the digest was written with (its attempts' prompt_version)
[archive]
cells = 16
[operators]
mutate = 1.0
crossover = 0.5
harder = 0.5
[validity]
# The checks the digest was written with; later checks change which rows are valid.
checks = ["arithmetic", "final_answer", "problem_expression", "equation", "grounding"]
repair = false  # "5 times 8 is 25" would go on as 40
""")
    run_dir = base / "run"
    run_generation(load_config(cfg), run_dir, show_bar=False, progress=lambda m: None)
    return run_dir


def digest(run_dir: Path) -> dict[str, str | int]:
    run = RunDir(run_dir)
    out: dict[str, str | int] = {}
    for name, table in (("candidates", run.read_candidates()), ("attempts", run.read_attempts())):
        rows = []
        for r in table.to_pylist():
            rows.append({k: RENAMED.get(v, v) if k == "prompt_version" else v for k, v in r.items()
                         if k not in VOLATILE and not (k in NEWER and not v)})
        out[name] = hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()
        out[f"{name}_rows"] = len(rows)
    metrics = [{k: v for k, v in r.items() if k not in VOLATILE and "seconds" not in k and not (k in NEWER and not v)}
               for r in run.read_metrics().to_pylist()]
    out["metrics"] = hashlib.sha256(json.dumps(metrics, sort_keys=True, default=str).encode()).hexdigest()
    return out
