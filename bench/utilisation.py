"""Endpoint utilisation: the share of 64 endpoints' capacity a campaign keeps busy.

    .venv/bin/python bench/utilisation.py                        # 64 endpoints x 1 slot, 2 s/request
    .venv/bin/python bench/utilisation.py --latency-ms 200 --ms-per-token 7 --no-flow  # unequal requests
    .venv/bin/python bench/utilisation.py --no-flow --steps 2

A fake OpenAI-compatible server process (tests/helpers/fake_openai_proc.py) listens on
`--endpoints` ports of 127.0.0.1, each serving `--capacity` requests at a time and
answering after `--latency-ms` (plus `--ms-per-token` per pretend token; the pretend
length of an answer is then spread between max_tokens / 8 and max_tokens, so requests
take unequal times as on a real server). Its answers are parseable problems and solver
attempts, a pure function of the request. A campaign drives it through the `openai`
engine with `engine.openai.base_urls` = all endpoints and `engine.openai.concurrency` = the capacity:
`--batch` mutations per step (default: 2 per slot), then one solve request (n = k) per
problem; steps run as they do in a campaign (select, mutate, solve, verify, embed,
archive, commit).

The server logs every answered request's busy interval (from taking its slot to the
answer sent). Over the timed steps (from the first step's parent selection to the last
step's commit):

    utilisation = sum of request-busy time / (endpoints x capacity x wall time)

A first untimed step (`--warmup`) opens the connections and makes the embedder's and
the judge's first calls, one-offs of a campaign like loading a model. The figure is
printed per step and split into the engine phases (mutate, solve: what dispatch
and the client lose) and the rest of the step (parse, verify, embed, archive, commit:
time in which no request is out, since the next phase needs this one's results). Then
the same campaign runs through the Prefect flow (a temporary local Prefect server;
flows/generate.py), timed the same way (the server's start, step 0 and the warm-up step
are not timed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import REPO, add_campaign_args, append_results, fmt_list, set_threads, write_config

from pipeline.config import load_config


class FakeServers:
    """The fake server process: `endpoints` listeners, a busy-interval log."""

    def __init__(self, workdir: Path, args: argparse.Namespace) -> None:
        self.log = workdir / "busy.jsonl"
        cmd = [sys.executable, "-m", "tests.helpers.fake_openai_proc", "--listeners", str(args.endpoints),
               "--capacity", str(args.capacity), "--latency-ms", str(args.latency_ms),
               "--ms-per-token", str(args.ms_per_token), "--log", str(self.log)]
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True, start_new_session=True)
        self.urls: list[str] = []
        for line in self.proc.stdout:
            if line.startswith("URL "):
                self.urls.append(line.split()[1])
            if line.startswith("READY"):
                break
        if len(self.urls) != args.endpoints:
            raise RuntimeError(f"fake server started {len(self.urls)} of {args.endpoints} listeners")

    def intervals(self) -> list[tuple[float, float, str]]:
        rows = [json.loads(ln) for ln in self.log.read_text().splitlines() if ln.endswith("}")]
        return [(r["t0"], r["t1"], r["kind"]) for r in rows]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(10)


class Clock:
    """Wall-clock (time.time(), as the server logs) intervals of the campaign's phases."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, float, float]] = []

    def patch(self):
        from pipeline.loop.campaign import Campaign

        saved = {}
        for name, phase in (("select_parents", "select"), ("mutate", "mutate"), ("solve", "solve"),
                            ("finish_step", "finish")):
            inner = getattr(Campaign, name)
            saved[name] = inner

            def timed(self_, *a, _inner=inner, _phase=phase, **kw):
                t0 = time.time()
                try:
                    return _inner(self_, *a, **kw)
                finally:
                    clock.spans.append((_phase, t0, time.time()))

            setattr(Campaign, name, timed)
        clock = self

        def restore() -> None:
            for name, inner in saved.items():
                setattr(Campaign, name, inner)

        return restore

    def steps(self) -> list[dict[str, float]]:
        """Per step: start (select), end (commit), and the mutate / solve spans."""
        out, cur = [], None
        for phase, t0, t1 in self.spans:
            if phase == "select":
                cur = {"start": t0}
            elif cur is not None:
                cur[phase] = (t0, t1)
                if phase == "finish":
                    cur["end"] = t1
                    out.append(cur)
                    cur = None
        return out


def busy(intervals: list[tuple[float, float, str]], a: float, b: float) -> float:
    return sum(max(0.0, min(t1, b) - max(t0, a)) for t0, t1, _ in intervals)


def analyse(label: str, steps: list[dict], intervals, slots: int, warmup: int) -> dict:
    steps = steps[warmup:]
    rows = []
    for s in steps:
        wall = s["end"] - s["start"]
        engine_wall = sum(s[p][1] - s[p][0] for p in ("mutate", "solve"))
        engine_busy = sum(busy(intervals, *s[p]) for p in ("mutate", "solve"))
        rows.append({"wall": wall, "util": busy(intervals, s["start"], s["end"]) / (slots * wall),
                     "phase_util": engine_busy / (slots * engine_wall), "engine_share": engine_wall / wall,
                     "mutate_s": s["mutate"][1] - s["mutate"][0], "solve_s": s["solve"][1] - s["solve"][0],
                     "rest_s": wall - engine_wall})
    start, end = steps[0]["start"], steps[-1]["end"]
    total = busy(intervals, start, end) / (slots * (end - start))
    engine_wall = sum(s[p][1] - s[p][0] for s in steps for p in ("mutate", "solve"))
    phase = sum(busy(intervals, *s[p]) for s in steps for p in ("mutate", "solve")) / (slots * engine_wall)
    for i, r in enumerate(rows, 1):
        print(f"{label} step {warmup + i}: utilisation {r['util']:.3f} (in the mutate/solve phases "
              f"{r['phase_util']:.3f}); {r['wall']:.2f} s = mutate {r['mutate_s']:.2f} + solve "
              f"{r['solve_s']:.2f} + rest {r['rest_s']:.2f} s; load {os.getloadavg()[0]:.1f}", flush=True)
    return {"util": total, "phase_util": phase, "rows": rows, "wall": end - start,
            "rest": sum(r["rest_s"] for r in rows) / len(rows)}


def run_in_process(config_path: Path, workdir: Path, steps: int) -> None:
    from pipeline.loop.campaign import Campaign

    camp = Campaign.open(workdir / "run", config=load_config(config_path), progress=lambda _msg: None)
    try:
        camp.initialize()
        camp.judge.start()  # once per campaign, like the engine: not a step's work
        camp.engine  # noqa: B018 - build it before the timed steps
        for _ in range(steps):
            camp.run_step()
    finally:
        camp.close()


def run_flow(config_path: Path, workdir: Path, steps: int) -> float:
    from flows.generate import generate

    t0 = time.perf_counter()
    generate(str(workdir / "flow-run"), str(config_path), steps=steps)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoints", type=int, default=64)
    ap.add_argument("--capacity", type=int, default=1,
                    help="requests at a time per endpoint (= engine.openai.concurrency)")
    ap.add_argument("--latency-ms", type=float, default=2000.0, help="per request")
    ap.add_argument("--ms-per-token", type=float, default=0.0,
                    help="per pretend token (> 0: answer lengths spread from max_tokens / 8 to max_tokens)")
    ap.add_argument("--batch", type=int, default=0, help="mutations per step (0: 2 x endpoints x capacity)")
    ap.add_argument("--k", type=int, default=4, help="solver attempts per problem (n of a solve request)")
    ap.add_argument("--gen-tokens", type=int, default=512, help="generator max_tokens")
    ap.add_argument("--solve-tokens", type=int, default=512, help="solver max_tokens")
    ap.add_argument("--steps", type=int, default=3, help="timed in-process steps")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps before them (in-process and flow)")
    ap.add_argument("--flow-steps", type=int, default=2, help="timed steps through the Prefect flow")
    add_campaign_args(ap)
    args = ap.parse_args()
    threads = set_threads(args.threads)
    slots = args.endpoints * args.capacity
    batch = args.batch or 2 * slots

    workdir = Path(tempfile.mkdtemp(prefix="sparq-utilisation-"))
    servers = FakeServers(workdir, args)
    clock = Clock()
    restore = clock.patch()
    try:
        config_path = write_config(workdir / "config.toml", {
            # Steps mode: this script splits each step into its phases (bench/streaming.py
            # compares it with the streaming default).
            "run": {"seed": args.seed, "batch_size": batch, "steps": args.warmup + args.flow_steps,
                    "mode": "steps"},
            "seeds": {"limit": args.seeds},
            "archive": {"cells": args.seeds},
            "engine": {"kind": "openai", "model": "fake",
                       "openai": {"base_urls": servers.urls, "concurrency": args.capacity, "timeout_s": 600.0}},
            "generator": {"max_tokens": args.gen_tokens},
            "solver": {"k": args.k, "max_tokens": args.solve_tokens, "adaptive": False},
        })
        run_in_process(config_path, workdir, args.warmup + args.steps)
        inproc = analyse("in-process", clock.steps(), servers.intervals(), slots, args.warmup)
        flow = None
        if not args.no_flow:
            clock.spans.clear()
            flow_wall = run_flow(config_path, workdir, args.warmup + args.flow_steps)
            flow = analyse("flow", clock.steps(), servers.intervals(), slots, args.warmup)
            flow["flow_wall"] = flow_wall
    finally:
        restore()
        servers.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    latency = f"{args.latency_ms:g} ms/request" + (
        f" + {args.ms_per_token:g} ms/token (lengths spread max_tokens/8..max_tokens, max_tokens "
        f"{args.gen_tokens}/{args.solve_tokens})" if args.ms_per_token else "")
    head = (f"utilisation ({args.endpoints} endpoints x {args.capacity} slot(s), fake latency {latency}, "
            f"{batch} mutations/step = {batch / slots:g} per slot, k={args.k}, openai engine concurrency "
            f"{args.capacity}, {threads})")
    lines = [f"{head}, in-process Campaign, {len(inproc['rows'])} steps after {args.warmup} untimed: "
             f"{inproc['util']:.3f} of endpoint capacity busy (target >= 0.90), per step "
             f"{fmt_list([r['util'] for r in inproc['rows']])}; within the mutate/solve phases "
             f"{inproc['phase_util']:.3f}; rest of a step (parse, verify, embed, archive, commit) "
             f"{inproc['rest']:.2f} s of {inproc['wall'] / len(inproc['rows']):.2f} s"]
    if flow is not None:
        lines.append(f"same through the Prefect flow, {len(flow['rows'])} steps after {args.warmup} untimed: "
                     f"{flow['util']:.3f} busy, per step "
                     f"{fmt_list([r['util'] for r in flow['rows']])}; within the mutate/solve phases "
                     f"{flow['phase_util']:.3f}; rest of a step {flow['rest']:.2f} s; flow wall "
                     f"{flow['flow_wall']:.0f} s including the temporary Prefect server, step 0 and the report")
    for line in lines:
        print(line)
    if not args.no_results:
        append_results("bench/utilisation.py", lines)


if __name__ == "__main__":
    main()
