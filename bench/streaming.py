"""Steps mode against streaming mode: how busy a campaign keeps its engine, in one run.

    .venv/bin/python bench/streaming.py                    # every scenario below
    .venv/bin/python bench/streaming.py --only batching    # one: uniform | unequal | batching | vllm

Every scenario runs the same campaign twice, `run.mode = "steps"` then `"stream"` (each in
a fresh run directory, through `pipeline.loop.generate.drive`, the loop the CLI and the flow
use), and times `--commits` commits after `--warmup` untimed ones, with `--tail` untimed
commits after them: the stream's start (filling the window) and its end (it stops
launching when the candidates in flight fill the remaining commits, then drains) are
one-offs of a campaign, like loading a model, and are not timed.

Scenarios (fake servers: tests/helpers/fake_openai_proc.py, one process, driven by the `openai`
engine with `engine.openai.base_urls` = all its listeners):

- uniform: 64 endpoints x 1 slot, every request 2 s. Busy share = request-busy time /
  (slots x wall).
- unequal: 64 endpoints x 1 slot, 200 ms + 7 ms per pretend token, lengths spread evenly
  from max_tokens / 8 to max_tokens. Same busy share.
- batching: 8 endpoints, each a model of a continuously batching server (vLLM-like): a
  decode tick serves every running sequence up to `--max-seqs`, takes `--tick-ms` +
  `--tick-ms-per-seq` x running (+ prefill per admitted prompt token); output lengths
  lognormal (median 16 tokens, sigma 1.0: p99/p50 = 10.2, capped at max_tokens), k = 16.
  Share of token capacity = decode tokens produced / (endpoints x peak tokens/s x wall),
  peak = max_seqs / tick time at max_seqs. `--max-seqs` defaults to 64, not vLLM's 256:
  this machine's 2 cores also run the campaign (parse, verify 16 attempts, embed,
  commit), which could not keep up with 8 x 256 sequences of short fake outputs.
- vllm: the embedded model on in-process vLLM (the CPU build), the default config. The
  campaign's output tokens/s (completed requests' tokens over the timed commits) against
  vLLM's own throughput on the same requests (recorded prompts and sampling) submitted all
  at once to the same engine. `--vllm-plain-sampler` runs it without the project's CPU
  top-p (pipeline/engines/vllm_sampling.py), as vLLM ships.
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
import threading
import time
from pathlib import Path

from benchlib import REPO, add_threads_arg, append_results, set_threads, write_config

from pipeline.config import load_config


class FakeServers:
    """tests/helpers/fake_openai_proc.py with `listeners` endpoints; busy and tick logs."""

    def __init__(self, workdir: Path, listeners: int, extra: list[str]) -> None:
        self.log, self.ticks = workdir / "busy.jsonl", workdir / "ticks.jsonl"
        cmd = [sys.executable, "-m", "tests.helpers.fake_openai_proc", "--listeners", str(listeners),
               "--log", str(self.log), "--ticks", str(self.ticks), *extra]
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True, start_new_session=True)
        self.urls = []
        for line in self.proc.stdout:
            if line.startswith("URL "):
                self.urls.append(line.split()[1])
            if line.startswith("READY"):
                break
        if len(self.urls) != listeners:
            raise RuntimeError(f"fake server started {len(self.urls)} of {listeners} listeners")

    def _rows(self, path: Path) -> list[dict]:
        if not path.exists():
            return []
        return [json.loads(ln) for ln in path.read_text().splitlines() if ln.endswith("}")]

    def busy(self, a: float, b: float) -> float:
        """Request-busy seconds within [a, b]."""
        return sum(max(0.0, min(r["t1"], b) - max(r["t0"], a)) for r in self._rows(self.log))

    def tokens(self, a: float, b: float) -> tuple[float, float]:
        """(decode tokens produced within [a, b], pro rata per logged second; peak tokens/s of one listener)."""
        rows, tokens, peak = self._rows(self.ticks), 0.0, 0.0
        for r in rows:
            span = max(1e-9, r["t1"] - r["t0"])
            tokens += r["tokens"] * max(0.0, min(r["t1"], b) - max(r["t0"], a)) / span
            peak = r["peak_rate"]
        return tokens, peak

    def occupancy(self, a: float, b: float) -> tuple[float, float]:
        """Mean running and waiting sequences per listener, over the logged seconds within [a, b]."""
        rows = [r for r in self._rows(self.ticks) if a <= r["t0"] and r["t1"] <= b]
        n = max(1, len(rows))
        return sum(r["running"] for r in rows) / n, sum(r["waiting"] for r in rows) / n

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(10)


def run_campaign(config_path: Path, run_dir: Path, mode: str, commits: int, engine=None) -> list[float]:
    """The campaign in `mode` to `commits` commits; the wall-clock time of each commit
    (step 0, the seeds, first)."""
    from pipeline.loop.campaign import Campaign
    from pipeline.loop.generate import drive

    cfg = load_config(config_path)
    cfg = cfg.replace("run", mode=mode, steps=commits)
    camp = Campaign.open(run_dir, config=cfg, engine=engine, progress=lambda _m: None)
    times: list[float] = []
    try:
        camp.initialize()
        camp.judge.start()  # once per campaign, like the engine: not a commit's work
        camp.engine  # noqa: B018 - built before the timed commits
        times.append(time.time())

        def on_commit(m) -> None:
            times.append(time.time())
            print(f"  {mode} commit {m.step}: {m.candidates} candidates, {m.accepted} archived, load "
                  f"{os.getloadavg()[0]:.1f}", flush=True)

        ran = drive(camp, on_commit)
        assert ran == mode, f"asked for {mode}, ran {ran}"
    finally:
        camp.close()
    return times


def window(times: list[float], warmup: int, commits: int) -> tuple[float, float]:
    """From the end of commit `warmup` to the end of commit `warmup + commits`."""
    return times[warmup], times[warmup + commits]


def tail(args, mode: str, config_path: Path, engine=None) -> int:
    """Untimed commits at the end: in steps mode one; streaming, the commits that the last
    window fills while the stream drains (window / commit size, plus one)."""
    if mode == "steps":
        return 1
    from pipeline.engines.base import submitter
    from pipeline.loop.stream import commit_size, stream_window

    cfg = load_config(config_path)

    class Probe:  # what stream_window reads of a campaign
        config = cfg

    if engine is None:
        from pipeline.engines import make_engine

        engine = make_engine(cfg.engine, seed=0)  # the openai engine: no connection until a call
    window = stream_window(Probe, submitter(engine, fallback_capacity=cfg.run.batch_size))
    return max(args.tail, -(-window // commit_size(Probe)) + 1)


def fake_scenario(name: str, args, server_args: list[str], listeners: int, slots: int, overrides: dict,
                  wide: int = 0) -> list[str]:
    """Each mode in turn on fresh fake servers; `wide` > 0 adds steps mode with that batch size."""
    lines = []
    figures = {}
    runs = [(m, m, overrides) for m in args.modes]
    if wide and "steps" in args.modes:
        wider = {**overrides, "run": {**overrides["run"], "batch_size": wide}}
        runs.insert(1, (f"steps at batch {wide}", "steps", wider))
    for label, mode, overrides in runs:
        workdir = Path(tempfile.mkdtemp(prefix=f"sparq-streaming-{name}-"))
        servers = FakeServers(workdir, listeners, server_args)
        try:
            config = write_config(workdir / "config.toml", {
                **overrides,
                "run": {"seed": 0, **overrides.get("run", {})},
                "seeds": {"limit": args.seeds}, "archive": {"cells": args.seeds},
                "engine": {"kind": "openai", "model": "fake",
                           "openai": {"base_urls": servers.urls, "timeout_s": 900.0,
                                      **overrides.get("engine", {}).get("openai", {})}}})
            times = run_campaign(config, workdir / "run", mode, args.warmup + args.commits + tail(args, mode, config))
            a, b = window(times, args.warmup, args.commits)
            if name == "batching":
                tokens, peak = servers.tokens(a, b)
                share = tokens / (listeners * peak * (b - a))
                running, waiting = servers.occupancy(a, b)
                print(f"  {label}: per server, {running:.1f} sequences running and {waiting:.1f} waiting on "
                      "average (sampled once a second)", flush=True)
            else:
                share = servers.busy(a, b) / (slots * (b - a))
            figures[label] = share
            print(f"{name} {label}: {share:.3f} over {b - a:.1f} s ({args.commits} commits)", flush=True)
        finally:
            servers.stop()
            shutil.rmtree(workdir, ignore_errors=True)
    lines.append(f"{name}: " + ", ".join(f"{m} {f:.3f}" for m, f in figures.items()))
    return lines


def uniform(args) -> list[str]:
    head = fake_scenario("uniform", args, ["--capacity", "1", "--latency-ms", "2000"], 64, 64, {
        "run": {"batch_size": 128}, "engine": {"openai": {"concurrency": 1}},
        "solver": {"k": 4, "adaptive": False, "max_tokens": 512}, "generator": {"max_tokens": 512}})
    return [f"uniform (64 endpoints x 1 slot, 2 s per request, 128 candidates per commit, k = 4): busy share of "
            f"the slots, {head[0].split(': ', 1)[1]}"]


def unequal(args) -> list[str]:
    head = fake_scenario("unequal", args, ["--capacity", "1", "--latency-ms", "200", "--ms-per-token", "7"], 64, 64, {
        "run": {"batch_size": 128}, "engine": {"openai": {"concurrency": 1}},
        "solver": {"k": 4, "adaptive": False, "max_tokens": 512}, "generator": {"max_tokens": 512}})
    return [f"unequal (64 endpoints x 1 slot, 200 ms + 7 ms per pretend token, lengths max_tokens/8..max_tokens, "
            f"128 candidates per commit, k = 4): busy share of the slots, {head[0].split(': ', 1)[1]}"]


def batching(args) -> list[str]:
    s = args.max_seqs
    server = ["--max-seqs", str(s), "--tick-ms", str(args.tick_ms), "--tick-ms-per-seq", str(args.tick_ms_per_seq),
              "--median-tokens", "16", "--sigma", "1.0"]
    # Steps mode's best case: a step's solves (k = 16 each) exactly fill the 8 servers' batches.
    batch = 8 * s // 16
    head = fake_scenario("batching", args, server, 8, 8 * s, {
        # The client never holds a request back (a mutation, n = 1, must not take the slot
        # of a solve): each server queues what it cannot run yet, as vLLM does. In flight
        # while streaming: 8 x the solve requests that would fill the servers' batches,
        # since a solve request spends most of its time waiting for its longest samples,
        # with few of its 16 sequences still running (measured: ~3.5 on average).
        "run": {"batch_size": batch, "in_flight": 8 * batch}, "engine": {"openai": {"concurrency": 4 * s}},
        "solver": {"k": 16, "adaptive": False, "max_tokens": 256}, "generator": {"max_tokens": 256}},
        wide=8 * batch)  # steps mode given as many candidates per step as the stream keeps in flight
    return [f"continuous batching (8 endpoints, {s} sequences per decode tick, tick {args.tick_ms:g} ms + "
            f"{args.tick_ms_per_seq:g} ms per sequence, lognormal lengths median 16 sigma 1.0 (p99/p50 10.2) "
            f"capped at 256, k = 16, {batch} candidates per commit): share of token capacity, "
            f"{head[0].split(': ', 1)[1]} (target >= 0.95 stream)"]


class Recorder:
    """The engine, with every request it was given recorded (prompt, sampling)."""

    def __init__(self, engine) -> None:
        self.engine, self.name, self.requests = engine, engine.name, []
        self._lock = threading.Lock()
        self.tokens: list[tuple[float, int]] = []  # (time completed, tokens)

    def _note(self, prompt, sampling, fut) -> None:
        with self._lock:
            self.requests.append((prompt, sampling))

        def done(f) -> None:
            if not f.cancelled() and f.exception() is None:
                with self._lock:
                    self.tokens.append((time.time(), sum(c.tokens for c in f.result())))

        fut.add_done_callback(done)

    def submit(self, prompt, sampling):
        fut = self.engine.submit(prompt, sampling)
        self._note(prompt, sampling, fut)
        return fut

    def capacity(self, n: int = 1) -> int:
        return self.engine.capacity(n)

    def complete(self, prompts, sampling):
        futs = [self.submit(p, sampling) for p in prompts]
        return [f.result() for f in futs]

    def close(self) -> None:
        pass


def vllm(args) -> list[str]:
    from pipeline.engines import make_engine

    sampler = "the project's CPU top-p (pipeline/engines/vllm_sampling.py)"
    if args.vllm_plain_sampler:
        # vLLM loads only the general plugins named here: all but the project's sampler.
        from pipeline.engines.vllm_sampling import plugins_without_cpu_top_p

        os.environ["VLLM_PLUGINS"] = plugins_without_cpu_top_p()
        sampler = "vLLM's own CPU top-p (a full sort of every row)"
    cfg = load_config(None)
    workdir = Path(tempfile.mkdtemp(prefix="sparq-streaming-vllm-"))
    engine = make_engine(cfg.engine, seed=0)
    out = {}
    try:
        overrides: dict = {"run": {"seed": 0}}
        if args.vllm_verifier:
            # The verifier re-solves each candidate that could enter the archive, on the
            # campaign's engine: its requests join the same stream.
            overrides["verifier"] = {"m": args.vllm_verifier}
        config = write_config(workdir / "config.toml", overrides)
        modes = [m for m in ("steps", "stream") if m in args.modes or m == "stream"]
        for mode in modes:
            rec = Recorder(engine)
            commits = args.warmup + args.vllm_commits + tail(args, mode, config, engine=rec)
            times = run_campaign(config, workdir / f"run-{mode}", mode, commits, engine=rec)
            a, b = window(times, args.warmup, args.vllm_commits)
            tokens = sum(t for at, t in rec.tokens if a < at <= b)
            out[mode] = (tokens / (b - a), rec.requests)
            print(f"vllm {mode}: {tokens} tokens in {b - a:.1f} s = {tokens / (b - a):.1f} tokens/s", flush=True)
        # vLLM's own throughput on the stream's requests, all submitted at once.
        requests = out["stream"][1]
        t0 = time.perf_counter()
        futs = [engine.submit(p, s) for p, s in requests]
        total = sum(c.tokens for f in futs for c in f.result())
        ceiling = total / (time.perf_counter() - t0)
        print(f"vllm all at once: {len(requests)} requests, {total} tokens, {ceiling:.1f} tokens/s", flush=True)
    finally:
        engine.close()
        shutil.rmtree(workdir, ignore_errors=True)
    stream_tps = out["stream"][0]
    verifier = f", verifier m = {args.vllm_verifier}" if args.vllm_verifier else ""
    steps = (f", steps / all-at-once = {out['steps'][0] / ceiling:.3f}" if "steps" in out else "")
    return [f"in-process vLLM (CPU build, embedded model, default config: 24 candidates per commit, k = 8{verifier}; "
            f"sampler: {sampler}): "
            f"output tokens/s of the campaign over {args.vllm_commits} timed commits, "
            + (f"steps {out['steps'][0]:.1f}, " if "steps" in out else "")
            + f"stream {stream_tps:.1f}; vLLM on the stream's {len(requests)} requests submitted at once "
            f"{ceiling:.1f}; stream / all-at-once = {stream_tps / ceiling:.3f} (target >= 0.90){steps}"]


SCENARIOS = {"uniform": uniform, "unequal": unequal, "batching": batching, "vllm": vllm}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=sorted(SCENARIOS), action="append",
                    help="run only this scenario (repeatable; default: all)")
    ap.add_argument("--commits", type=int, default=4, help="timed commits per mode (fake servers)")
    ap.add_argument("--vllm-commits", type=int, default=3, help="timed commits per mode (vllm)")
    ap.add_argument("--vllm-verifier", type=int, default=0, metavar="M",
                    help="vllm: turn the verifier on with M attempts per eligible candidate (default off)")
    ap.add_argument("--vllm-plain-sampler", action="store_true",
                    help="vllm: without the project's CPU top-p plugin (vLLM sorts every row's vocabulary)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed commits first")
    ap.add_argument("--tail", type=int, default=1,
                    help="untimed commits last, at least (streaming: window / commit size + 1, since the stream "
                         "stops launching that many commits before its end and drains)")
    ap.add_argument("--seeds", type=int, default=64, help="bundled seeds loaded (and archive cells)")
    ap.add_argument("--max-seqs", type=int, default=64, help="batching: sequences per decode tick")
    ap.add_argument("--tick-ms", type=float, default=30.0, help="batching: decode tick time")
    ap.add_argument("--tick-ms-per-seq", type=float, default=0.3, help="batching: ... plus per running sequence")
    ap.add_argument("--modes", nargs="+", default=["steps", "stream"], choices=["steps", "stream"],
                    help="fake-server scenarios: the modes to run (a figure needs both)")
    ap.add_argument("--no-results", action="store_true", help="do not append to bench/results.md")
    add_threads_arg(ap)
    args = ap.parse_args()
    threads = set_threads(args.threads)
    lines = []
    for name in args.only or list(SCENARIOS):
        lines += SCENARIOS[name](args)
        print(lines[-1], flush=True)
    lines = [f"{line} ({threads})" for line in lines]
    if not args.no_results:
        append_results("bench/streaming.py", lines)


if __name__ == "__main__":
    main()
