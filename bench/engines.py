"""Engines on the same campaign: the default in-process vLLM (CPU build) against transformers.

    .venv/bin/python bench/engines.py                   # the packaged default config, 3 steps each
    .venv/bin/python bench/engines.py --steps 2 --config my.toml
    .venv/bin/python bench/engines.py --engines vllm    # one engine only

Each engine runs the same campaign (the same config, seed and seeds, a fresh run
directory) in this process, one engine after the other: the engine is built first (its
start is timed apart: vLLM's includes its compile and warm-up), then `--steps` steps run
through `run_generation` on it, each in its default mode (`run.mode = "auto"`: vLLM
streams, transformers runs steps). The figure is scored candidates per minute once the
engine is up: candidates that were parsed and attempted k times, so got a solve rate
(status ok), over the campaign's wall time. Generated tokens per second and every
candidate per minute are printed beside it. Both engines load the same converted weights
(`sparq prepare`); vLLM computes in bfloat16 (its CPU kernels' type), transformers in
float32 (`engine.dtype = "auto"`).

With `--threads N` > 0 both get N cores: torch's intra-op threads for transformers,
`VLLM_CPU_OMP_THREADS_BIND` for vLLM (set before its start).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from benchlib import add_threads_arg, append_results, set_threads

from pipeline.config import load_config
from pipeline.engines import make_engine
from pipeline.loop.generate import run_generation
from pipeline.store.storage import RunDir


def run_engine(kind: str, config_path: str | None, steps: int, workdir: Path) -> dict:
    config = load_config(config_path)
    config = config.replace("engine", kind=kind).replace("run", steps=steps)
    t0 = time.perf_counter()
    engine = make_engine(config.engine, seed=config.run.seed)
    start_s = time.perf_counter() - t0
    try:
        run_dir = workdir / kind
        t1 = time.perf_counter()
        summary = run_generation(config, run_dir, engine=engine, show_bar=False,
                                 progress=lambda m: print(f"  {kind}: {m}", flush=True))
        wall_s = time.perf_counter() - t1
    finally:
        engine.close()
    cands = RunDir(run_dir).read_candidates().to_pylist()
    generated = [c for c in cands if c["step"] > 0]
    scored = [c for c in generated if c["status"] == "ok" and c["solve_rate"] is not None]
    tokens = sum((c["gen_tokens"] or 0) + (c["solve_tokens"] or 0) for c in generated)
    res = {"kind": kind, "engine": summary["engine"], "start_s": start_s, "wall_s": wall_s,
           "candidates": len(generated), "scored": len(scored), "tokens": tokens,
           "in_band": sum(1 for c in scored if (c["quality"] or 0) > 0),
           "scored_per_min": 60 * len(scored) / wall_s, "candidates_per_min": 60 * len(generated) / wall_s,
           "tokens_per_s": tokens / wall_s}
    print(f"{kind}: start {start_s:.0f} s; {steps} steps in {wall_s:.0f} s: {len(generated)} candidates, "
          f"{len(scored)} scored ({res['scored_per_min']:.1f}/min), {res['in_band']} in band, "
          f"{res['tokens_per_s']:.0f} tokens/s", flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=None, help="campaign config (default: the packaged default)")
    ap.add_argument("--steps", type=int, default=3, help="steps per engine (default 3, as `make run`)")
    ap.add_argument("--engines", default="vllm,transformers", help="comma-separated engine kinds, in run order")
    ap.add_argument("--no-results", action="store_true", help="do not append to bench/results.md")
    add_threads_arg(ap)
    args = ap.parse_args()
    threads = set_threads(args.threads)
    if args.threads > 0:  # vLLM binds its OpenMP threads to these cores at start
        os.environ["VLLM_CPU_OMP_THREADS_BIND"] = f"0-{args.threads - 1}" if args.threads > 1 else "0"
    cfg = load_config(args.config)
    desc = (f"{args.steps} steps x {cfg.run.batch_size} mutations, k={cfg.solver.k}, max_tokens "
            f"{cfg.generator.max_tokens}/{cfg.solver.max_tokens}, {threads}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="sparq-engines-") as tmp:
        for kind in [k.strip() for k in args.engines.split(",") if k.strip()]:
            results[kind] = run_engine(kind, args.config, args.steps, Path(tmp))
    lines = []
    for r in results.values():
        lines.append(f"engines, same campaign ({desc}): {r['engine']}: start {r['start_s']:.0f} s, then "
                     f"{r['scored']} scored of {r['candidates']} candidates in {r['wall_s']:.0f} s = "
                     f"{r['scored_per_min']:.1f} scored candidates/min ({r['candidates_per_min']:.1f} candidates/min, "
                     f"{r['tokens_per_s']:.0f} tokens/s, {r['in_band']} in band)")
    if "vllm" in results and "transformers" in results:
        v, h = results["vllm"], results["transformers"]
        ratio = v["scored_per_min"] / h["scored_per_min"] if h["scored_per_min"] else float("inf")
        lines.append(f"engines, vLLM / transformers: scored candidates/min {ratio:.2f}x (target >= 3), "
                     f"candidates/min {v['candidates_per_min'] / h['candidates_per_min']:.2f}x, "
                     f"tokens/s {v['tokens_per_s'] / h['tokens_per_s']:.2f}x")
    for line in lines:
        print(line)
    if not args.no_results:
        append_results("bench/engines.py", lines)


if __name__ == "__main__":
    main()
