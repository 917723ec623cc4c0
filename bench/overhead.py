"""Pipeline overhead on the CPU default: engine-only time / full-step time, same workload.

    .venv/bin/python bench/overhead.py                     # N = 8 mutations, k = 4, 3 steps, then the flow once
    .venv/bin/python bench/overhead.py --no-flow --steps 2

The real embedded model (engine kind transformers, model "embedded") runs the campaign
steps: select, mutate (engine), parse, solve (engine), verify, embed, archive, write and
commit. Every engine call of a step is recorded (prompts and Sampling, whose seed the
campaign derives from the run seed and step), then replayed straight through
`engine.complete` on the same loaded model. Same prompts, same seeds: the replay makes
the same tokens (checked: token counts are compared), so

    ratio = engine-only seconds / full-step seconds

is the share of a step the engine gets; 1 - ratio is the pipeline's own overhead. Each
step is followed at once by its replay, so both see the same machine load (the machine
is shared); the median over steps is reported. The step's own engine seconds (time
inside `complete` during the step) are printed too. The judge pool is started before
the first timed step (a one-off per campaign, like loading the model).

Then the same campaign runs once through the Prefect flow (flows/generate.py, a local
temporary Prefect server, engine-bound phases as tasks); a flow step is timed from its
`select_parents` to the next step's (progress artifact and logging included).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchlib import add_threads_arg, append_results, fmt_list, median, set_threads, write_config

from pipeline.config import load_config
from pipeline.engines import Completion, Engine, Sampling, make_engine
from pipeline.prompts import Prompt


class Recorder:
    """An engine wrapper that records each call (prompts, sampling) and its seconds."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls: list[tuple[list[Prompt], Sampling, float, int]] = []

    def complete(self, prompts: Sequence[Prompt], sampling: Sampling) -> list[list[Completion]]:
        t0 = time.perf_counter()
        out = self.inner.complete(prompts, sampling)
        tokens = sum(c.tokens for cs in out for c in cs)
        self.calls.append((list(prompts), sampling, time.perf_counter() - t0, tokens))
        return out

    def close(self) -> None:  # the model is shared by the whole bench; main() closes it
        pass


def replay(engine: Engine, calls: list[tuple[list[Prompt], Sampling, float, int]]) -> tuple[float, int]:
    """The recorded calls straight through the engine: (seconds, tokens)."""
    tokens = 0
    t0 = time.perf_counter()
    for prompts, sampling, _, _ in calls:
        out = engine.complete(prompts, sampling)
        tokens += sum(c.tokens for cs in out for c in cs)
    return time.perf_counter() - t0, tokens


def bench_campaign(engine: Engine, config_path: Path, workdir: Path, steps: int) -> list[dict]:
    from pipeline.campaign import Campaign

    config = load_config(config_path)
    rec = Recorder(engine)
    camp = Campaign.open(workdir / "run", config=config, engine=rec, progress=lambda _msg: None)
    rows = []
    try:
        camp.initialize()
        camp.judge.start()
        for _ in range(steps):
            rec.calls.clear()
            t0 = time.perf_counter()
            m = camp.run_step()
            full_s = time.perf_counter() - t0
            calls = list(rec.calls)
            engine_s, tokens = replay(engine, calls)
            row = {"step": m.step, "full_s": full_s, "engine_only_s": engine_s,
                   "in_step_engine_s": sum(c[2] for c in calls), "step_tokens": sum(c[3] for c in calls),
                   "replay_tokens": tokens, "ok": m.ok, "attempts": m.attempts, "calls": len(calls)}
            row["ratio"] = engine_s / full_s
            rows.append(row)
            print(f"step {m.step}: full {full_s:.2f} s (engine inside {row['in_step_engine_s']:.2f} s), "
                  f"engine-only replay {engine_s:.2f} s, ratio {row['ratio']:.3f}; tokens {row['step_tokens']} "
                  f"(replay {tokens}); {m.ok} ok, {m.attempts} attempts, load {os.getloadavg()[0]:.1f}",
                  flush=True)
    finally:
        camp.close()
    return rows


def bench_flow(engine: Engine, config_path: Path, workdir: Path, steps: int) -> list[dict]:
    """The same campaign through the Prefect flow, with the shared model patched in."""
    import pipeline.campaign as campaign_mod
    from flows.generate import generate

    rec = Recorder(engine)
    starts: list[float] = []
    ends: list[tuple[float, list]] = []
    real_select, real_finish = campaign_mod.Campaign.select_parents, campaign_mod.Campaign.finish_step

    def select(self):
        starts.append(time.perf_counter())
        rec.calls.clear()
        return real_select(self)

    def finish(self, *args, **kwargs):
        m = real_finish(self, *args, **kwargs)
        ends.append((time.perf_counter(), list(rec.calls)))
        return m

    saved = campaign_mod.make_engine
    campaign_mod.make_engine = lambda *a, **k: rec
    campaign_mod.Campaign.select_parents, campaign_mod.Campaign.finish_step = select, finish
    try:
        t0 = time.perf_counter()
        generate(str(workdir / "flow-run"), str(config_path), steps=steps)
        wall = time.perf_counter() - t0
    finally:
        campaign_mod.make_engine = saved
        campaign_mod.Campaign.select_parents, campaign_mod.Campaign.finish_step = real_select, real_finish
    rows = []
    for i, (start, (end, calls)) in enumerate(zip(starts, ends, strict=True)):
        # A step runs until the next one starts (progress artifact, logging); the last
        # one until its commit.
        full_s = (starts[i + 1] if i + 1 < len(starts) else end) - start
        engine_s, tokens = replay(engine, calls)
        rows.append({"step": i + 1, "full_s": full_s, "engine_only_s": engine_s, "ratio": engine_s / full_s,
                     "in_step_engine_s": sum(c[2] for c in calls), "step_tokens": sum(c[3] for c in calls),
                     "replay_tokens": tokens})
        print(f"flow step {i + 1}: full {full_s:.2f} s (engine inside {rows[-1]['in_step_engine_s']:.2f} s), "
              f"engine-only replay {engine_s:.2f} s, ratio {engine_s / full_s:.3f}; tokens "
              f"{rows[-1]['step_tokens']} (replay {tokens})", flush=True)
    print(f"flow wall {wall:.1f} s for {steps} steps (Prefect server start, seeds, report included)")
    for row in rows:
        row["flow_wall_s"] = wall
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mutations", type=int, default=8, help="mutations per step (N)")
    ap.add_argument("--k", type=int, default=4, help="solver attempts per problem")
    ap.add_argument("--gen-tokens", type=int, default=120, help="generator max_tokens")
    ap.add_argument("--solve-tokens", type=int, default=48, help="solver max_tokens")
    ap.add_argument("--steps", type=int, default=3, help="timed in-process steps")
    ap.add_argument("--flow-steps", type=int, default=2, help="steps through the Prefect flow")
    ap.add_argument("--no-flow", action="store_true")
    ap.add_argument("--seeds", type=int, default=64, help="bundled seeds loaded (and archive cells)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-results", action="store_true", help="do not append to bench/results.md")
    add_threads_arg(ap)
    args = ap.parse_args()
    threads = set_threads(args.threads)

    workdir = Path(tempfile.mkdtemp(prefix="sparq-overhead-"))
    config_path = write_config(workdir / "config.toml", {
        "run": {"seed": args.seed, "batch_size": args.mutations, "steps": args.flow_steps},
        # 64 seeds in 64 cells: step 0 (embedding the seeds, k-means) is set-up, not measured,
        # and this keeps it short; parents are drawn from the archive either way.
        "seeds": {"limit": args.seeds},
        "archive": {"cells": args.seeds},
        "engine": {"kind": "transformers", "model": "embedded"},
        "generator": {"max_tokens": args.gen_tokens},
        "solver": {"k": args.k, "max_tokens": args.solve_tokens, "adaptive": False},
    })
    config = load_config(config_path)
    t0 = time.perf_counter()
    engine = make_engine(config.engine, seed=config.run.seed)
    print(f"model loaded in {time.perf_counter() - t0:.1f} s", flush=True)
    # Warm the engine (first-call allocations) so neither side of the ratio pays for it.
    engine.complete(["Problem: What is 2 + 2?\nSolution:"], Sampling(n=2, max_tokens=8, seed=1))
    try:
        rows = bench_campaign(engine, config_path, workdir, args.steps)
        flow_rows = [] if args.no_flow else bench_flow(engine, config_path, workdir, args.flow_steps)
    finally:
        engine.close()
        shutil.rmtree(workdir, ignore_errors=True)

    ratios = [r["ratio"] for r in rows]
    overhead = [r["full_s"] - r["in_step_engine_s"] for r in rows]
    same = all(r["step_tokens"] == r["replay_tokens"] for r in rows + flow_rows)
    tok_ratio = [(r["replay_tokens"] / r["engine_only_s"]) / (r["step_tokens"] / r["full_s"]) for r in rows]
    lines = [
        f"overhead (real embedded model, {args.mutations} mutations x k={args.k}, max_tokens "
        f"{args.gen_tokens}/{args.solve_tokens}, {threads}, {len(rows)} steps, in-process Campaign): throughput ratio "
        f"engine-only / full step median {median(ratios):.3f} {fmt_list(ratios)} (target >= 0.90); "
        f"per-token ratio {median(tok_ratio):.3f}; replay tokens identical to the step's: {'yes' if same else 'NO'}; "
        f"full step median {median([r['full_s'] for r in rows]):.1f} s, non-engine time in a step median "
        f"{median(overhead):.2f} s {fmt_list(overhead, 2)}"]
    if flow_rows:
        fr = [r["ratio"] for r in flow_rows]
        lines.append(f"overhead through the Prefect flow ({len(flow_rows)} steps): ratio median {median(fr):.3f} "
                     f"{fmt_list(fr)}; flow wall {flow_rows[0]['flow_wall_s']:.0f} s including the temporary "
                     f"Prefect server, step 0 (seed embedding, cells) and the report")
    for line in lines:
        print(line)
    if not args.no_results:
        append_results("bench/overhead.py", lines)


if __name__ == "__main__":
    main()
