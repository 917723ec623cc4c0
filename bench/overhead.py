"""Pipeline overhead on the CPU default: engine-only time / full-step time, same workload.

    .venv/bin/python bench/overhead.py                     # N = 8 mutations, k = 4, 2 steps, then 1 through the flow
    .venv/bin/python bench/overhead.py --no-flow --steps 2

The real embedded model (engine kind transformers, model "embedded") runs the campaign
steps: select, mutate (engine), parse, solve (engine), verify, embed, archive, write and
commit. Every engine call of a step is replayed straight through `engine.complete` on the
same loaded model right after it runs: same prompts, same Sampling (whose seed the
campaign derives from the run seed and step), so the replay makes the same tokens
(checked: token counts are compared), and

    ratio = engine-only seconds (the replays) / full-step seconds (without the replays)

is the share of a step the engine gets; 1 - ratio is the pipeline's own overhead.
Replaying each call right after itself, rather than the whole step after the step, keeps
both under the same machine load (the machine is shared; a step's engine time moved by
2x between two runs minutes apart). The engine share measured inside the step (time in
`complete` / step time) is printed beside it: it needs no replay and is the steadier
figure. The judge pool is started before the first timed step (a one-off per campaign,
like loading the model). Medians over steps.

Then the same campaign runs through the Prefect flow (flows/generate.py, a local
temporary Prefect server, engine-bound phases as tasks); a flow step is timed from its
`select_parents` to the next step's (progress artifact and logging included), the last
one to its commit.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchlib import add_campaign_args, append_results, fmt_list, median, set_threads, write_config

from pipeline.config import load_config
from pipeline.engines import Completion, Engine, Sampling, make_engine
from pipeline.prompts import Prompt


class Recorder:
    """An engine wrapper that times each call, then replays it at once, engine only.

    The replay is the same call (prompts, and Sampling with the campaign's seed) straight
    through `engine.complete`, right after the real one, so both see the same machine
    load; its output is dropped (the engine reseeds at every call, so the campaign's next
    call is unaffected). Replays are excluded from the step's time by the caller.
    """

    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.name = inner.name
        self.reset()

    def reset(self) -> None:
        self.calls = 0
        self.engine_s = self.replay_s = 0.0
        self.tokens = self.replay_tokens = 0

    def complete(self, prompts: Sequence[Prompt], sampling: Sampling) -> list[list[Completion]]:
        t0 = time.perf_counter()
        out = self.inner.complete(prompts, sampling)
        t1 = time.perf_counter()
        again = self.inner.complete(prompts, sampling)
        t2 = time.perf_counter()
        self.calls += 1
        self.engine_s += t1 - t0
        self.replay_s += t2 - t1
        self.tokens += sum(c.tokens for cs in out for c in cs)
        self.replay_tokens += sum(c.tokens for cs in again for c in cs)
        return out

    def close(self) -> None:  # the model is shared by the whole bench; main() closes it
        pass


def _row(step: int, wall_s: float, rec: Recorder) -> dict:
    full_s = wall_s - rec.replay_s  # the step as it ran, without the replays
    return {"step": step, "full_s": full_s, "engine_only_s": rec.replay_s, "ratio": rec.replay_s / full_s,
            "in_step_engine_s": rec.engine_s, "in_step_ratio": rec.engine_s / full_s,
            "non_engine_s": full_s - rec.engine_s, "step_tokens": rec.tokens, "replay_tokens": rec.replay_tokens,
            "calls": rec.calls}


def _print(label: str, row: dict) -> None:
    print(f"{label} {row['step']}: full {row['full_s']:.2f} s (engine inside {row['in_step_engine_s']:.2f} s, "
          f"other {row['non_engine_s']:.2f} s), engine-only replay {row['engine_only_s']:.2f} s, ratio "
          f"{row['ratio']:.3f}, in-step ratio {row['in_step_ratio']:.3f}; tokens {row['step_tokens']} (replay "
          f"{row['replay_tokens']}), {row['calls']} engine calls, load {os.getloadavg()[0]:.1f}", flush=True)


def bench_campaign(engine: Engine, config_path: Path, workdir: Path, steps: int) -> list[dict]:
    from pipeline.loop.campaign import Campaign

    config = load_config(config_path)
    rec = Recorder(engine)
    camp = Campaign.open(workdir / "run", config=config, engine=rec, progress=lambda _msg: None)
    rows = []
    try:
        camp.initialize()
        camp.judge.start()
        for _ in range(steps):
            rec.reset()
            t0 = time.perf_counter()
            m = camp.run_step()
            rows.append(_row(m.step, time.perf_counter() - t0, rec))
            _print("step", rows[-1])
    finally:
        camp.close()
    return rows


def bench_flow(engine: Engine, config_path: Path, workdir: Path, steps: int) -> list[dict]:
    """The same campaign through the Prefect flow, with the shared model patched in."""
    import pipeline.loop.campaign as campaign_mod
    from flows.generate import generate

    rec = Recorder(engine)
    starts: list[float] = []
    ends: list[tuple[float, dict]] = []
    real_select, real_finish = campaign_mod.Campaign.select_parents, campaign_mod.Campaign.finish_step

    def select(self):
        if starts and len(ends) < len(starts):  # the previous step ends where this one starts
            ends.append((time.perf_counter(), dict(rec.__dict__)))
        starts.append(time.perf_counter())
        rec.reset()
        return real_select(self)

    last_commit: list[tuple[float, dict]] = []

    def finish(self, *args, **kwargs):
        m = real_finish(self, *args, **kwargs)
        last_commit[:] = [(time.perf_counter(), dict(rec.__dict__))]
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
    # The last step runs to its commit (the summary and the report after it are the flow's).
    ends.append(last_commit[0])
    rows = []
    for i, (start, (end, state)) in enumerate(zip(starts, ends, strict=True)):
        snap = Recorder(engine)
        snap.__dict__.update({k: v for k, v in state.items() if k not in ("inner", "name")})
        rows.append(_row(i + 1, end - start, snap))
        _print("flow step", rows[-1])
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
    ap.add_argument("--steps", type=int, default=2, help="timed in-process steps")
    ap.add_argument("--flow-steps", type=int, default=1, help="steps through the Prefect flow")
    add_campaign_args(ap)
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
    in_step = [r["in_step_ratio"] for r in rows]
    other = [r["non_engine_s"] for r in rows]
    same = all(r["step_tokens"] == r["replay_tokens"] for r in rows + flow_rows)
    tok_ratio = [(r["replay_tokens"] / r["engine_only_s"]) / (r["step_tokens"] / r["full_s"]) for r in rows]
    lines = [
        f"overhead (real embedded model, {args.mutations} mutations x k={args.k}, max_tokens "
        f"{args.gen_tokens}/{args.solve_tokens}, {threads}, {len(rows)} steps, in-process Campaign): throughput "
        f"ratio engine-only / full step median {median(ratios):.3f} {fmt_list(ratios)} (target >= 0.90; each engine "
        f"call replayed right after itself); engine share of the step (in-step engine time / step) median "
        f"{median(in_step):.3f} {fmt_list(in_step)}; per-token ratio {median(tok_ratio):.3f}; replay tokens identical "
        f"to the step's: {'yes' if same else 'NO'}; full step median {median([r['full_s'] for r in rows]):.1f} s, "
        f"non-engine time per step (parse, verify, embed, archive, commit) median {median(other):.2f} s "
        f"{fmt_list(other, 2)}"]
    if flow_rows:
        fr = [r["ratio"] for r in flow_rows]
        fi = [r["in_step_ratio"] for r in flow_rows]
        lines.append(f"overhead through the Prefect flow ({len(flow_rows)} steps, judge pool started in step 1): ratio "
                     f"median {median(fr):.3f} {fmt_list(fr)}, engine share {median(fi):.3f} {fmt_list(fi)}, "
                     f"non-engine time per step {fmt_list([r['non_engine_s'] for r in flow_rows], 2)} s; flow wall "
                     f"{flow_rows[0]['flow_wall_s']:.0f} s including the temporary Prefect server, step 0 and the "
                     f"report")
    for line in lines:
        print(line)
    if not args.no_results:
        append_results("bench/overhead.py", lines)


if __name__ == "__main__":
    main()
