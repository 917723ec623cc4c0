"""The pipeline's own ceiling: candidates/s of everything but the model.

    .venv/bin/python bench/ceiling.py                      # 64 mutations/step, k = 16, 6 timed steps, 3 repeats
    .venv/bin/python bench/ceiling.py --profile            # cProfile of one repeat, top functions by own time

A zero-latency engine replays realistic model outputs, so the time measured is the
non-engine work of a step: select -> parse -> verify (math-verify pool) -> embed
(bundled MiniLM) -> archive -> commit (Parquet shards, archive snapshot, checkpoint).
On a GPU box the engine is fast, so this is the rate the rest of the pipeline must keep
up with for the GPU to stay busy.

The outputs are written here rather than recorded: the 270M model's mutations are
close variations of their parents (new numbers or story, same kind of question), and its
solves end in "The answer is X." with a few distinct answers per problem. Each generated
problem gets a true solve rate from SPARQ's mix (45% never solved, 20% always, 35%
spread), one to three distinct wrong answers (one dominant), and 5% of attempts without
a final answer; 10% of correct attempts are written in another form ("$17$", "17.0",
"\\boxed{17}") and 5% as an equivalent value that only math-verify can match ("1/2" for
"0.5"); 5% of mutations are unparseable.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import psutil
from benchlib import add_threads_arg, append_results, fmt_list, median, set_threads, write_config

from pipeline.config import load_config
from pipeline.engines.base import Completion, EngineStats, Sampling
from pipeline.prompts import Prompt

NAMES = ("Ava", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "June", "Kai", "Lena", "Milo", "Nia",
         "Omar", "Pia", "Quin", "Rosa", "Sam", "Tara", "Uma", "Vic", "Wes", "Xia", "Yara", "Zed")
THINGS = ("apples", "books", "marbles", "stickers", "pencils", "cookies", "stamps", "shells", "coins", "cards")


def _problem(rng: np.random.Generator) -> tuple[str, str, str]:
    """(problem, solution, answer) of one of a few seed-like kinds, with fresh numbers."""
    name, thing = rng.choice(NAMES), rng.choice(THINGS)
    a, b, c = (int(x) for x in rng.integers(2, 400, size=3))
    kind = int(rng.integers(0, 6))
    if kind == 0:
        return (f"{name} has {a} {thing} and gets {b} more. How many {thing} does {name} have now?",
                f"{name} has {a} + {b} = {a + b} {thing}.", str(a + b))
    if kind == 1:
        a, b = max(a, b) + c, min(a, b)
        return (f"{name} had {a} {thing} and gave away {b}. How many {thing} are left?",
                f"{name} has {a} - {b} = {a - b} {thing} left.", str(a - b))
    if kind == 2:
        a, b = a % 30 + 2, b % 20 + 2
        return (f"A shop packs {thing} in {a} boxes of {b}. How many {thing} is that in total?",
                f"There are {a} times {b} = {a * b} {thing}.", str(a * b))
    if kind == 3:
        p = int(rng.choice([10, 20, 25, 50]))
        a = a * 4
        return (f"What is {p}% of {a}?", f"{p}% of {a} is {p / 100} times {a}, which is {p * a / 100:g}.",
                f"{p * a / 100:g}")
    if kind == 4:
        d = int(rng.choice([2, 4, 5, 8]))
        return (f"{name} eats {a % d + 1} of {d} equal slices of a pie with {b} raisins in it. What fraction "
                f"of the pie is eaten?", f"{a % d + 1} of {d} slices is {(a % d + 1) / d:g} of the pie.",
                f"{(a % d + 1) / d:g}")
    a, b = a % 50 + 2, b % 9 + 2
    return (f"{name} reads {a} pages a day for {b} days and then {c} more pages. How many pages is that?",
            f"{a} times {b} is {a * b}, plus {c} is {a * b + c}.", str(a * b + c))


def _equivalent(answer: str) -> str:
    """The same value in a form only math-verify matches (e.g. 0.5 -> 1/2)."""
    value = float(answer)
    if value != int(value):
        for den in (2, 4, 5, 8, 10, 20, 100):
            if abs(value * den - round(value * den)) < 1e-9:
                return f"\\frac{{{round(value * den)}}}{{{den}}}"
    return f"{int(value) * 2}/2"


def _restyle(answer: str, rng: np.random.Generator) -> str:
    return [f"${answer}$", f"{answer}.0" if "." not in answer else f"{answer}0", f"\\boxed{{{answer}}}"][
        int(rng.integers(0, 3))]


class ReplayEngine:
    """Answers instantly with outputs shaped like the embedded model's (see module doc)."""

    def __init__(self, seed: int = 0) -> None:
        self.name = "replay"
        self.stats = EngineStats()
        self._rng = np.random.default_rng(seed)
        # Per generated problem: (reference answer, true solve rate, wrong answers, weights).
        self._profiles: dict[str, tuple[str, float, list[str], np.ndarray]] = {}

    def complete(self, prompts: Sequence[Prompt], sampling: Sampling) -> list[list[Completion]]:
        out = []
        for p in prompts:
            text = p if isinstance(p, str) else p[-1]["content"]
            if text.rstrip().endswith("Solution:"):
                problem = text[text.rindex("Problem: ") + len("Problem: "): text.rindex("\nSolution:")]
                out.append([self._solve(problem) for _ in range(sampling.n)])
            else:
                out.append([self._mutate() for _ in range(sampling.n)])
        self.stats.calls += 1
        return out

    def _mutate(self) -> Completion:
        rng = self._rng
        problem, solution, answer = _problem(rng)
        if rng.random() < 0.05:  # cut off before the answer: unparseable
            return Completion(f" {problem}\nNew solution: {solution[:20]}", 40, "length")
        kind = rng.random()
        sr = 0.0 if kind < 0.45 else 1.0 if kind < 0.65 else float(rng.uniform(0.05, 0.95))
        wrong = sorted({str(int(float(answer)) + int(d)) for d in rng.integers(-12, 12, size=3) if d})[:3]
        wrong = wrong or [str(int(float(answer)) + 1)]
        weights = rng.dirichlet(np.ones(len(wrong)) * 0.5)
        self._profiles[problem] = (answer, sr, wrong, weights)
        text = f" {problem}\nNew solution: {solution} The answer is {answer}.\n"
        return Completion(text, len(text.split()) * 2, "stop")

    def _solve(self, problem: str) -> Completion:
        rng = self._rng
        answer, sr, wrong, weights = self._profiles[problem]
        if rng.random() < 0.05:
            text = " Let me think about the numbers in the problem step by step first"
            return Completion(text, 48, "length")
        if rng.random() < sr:
            u = rng.random()
            shown = answer if u < 0.85 else _restyle(answer, rng) if u < 0.95 else _equivalent(answer)
            text = f" We work it out from the numbers given. The answer is {shown}."
        else:
            text = f" We work it out from the numbers given. The answer is {wrong[rng.choice(len(wrong), p=weights)]}."
        return Completion(text, len(text.split()) * 2, "stop")

    def close(self) -> None:
        pass


class PhaseTimer:
    """Wall time per phase, by wrapping the campaign's and its helpers' methods."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, obj: object, attr: str, phase: str) -> None:
        inner = getattr(obj, attr)

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - t0

        setattr(obj, attr, timed)


def cpu_seconds() -> float:
    """CPU time of this process and its live children (the judge workers).

    The machine is shared, so wall time depends on others' load; CPU time per candidate
    does much less, and with nproc cores bounds what an idle machine would reach.
    """
    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            pass
    return total


def run_once(args: argparse.Namespace, workdir: Path, profile: cProfile.Profile | None = None) -> dict:
    from pipeline.loop.campaign import Campaign

    cfg_path = write_config(workdir / "config.toml", {
        "run": {"seed": args.seed, "batch_size": args.batch, "steps": args.steps},
        "solver": {"k": args.k, "adaptive": args.adaptive},
    })
    config = load_config(cfg_path)
    engine = ReplayEngine(seed=args.seed)
    camp = Campaign.open(workdir / "run", config=config, engine=engine, progress=lambda _msg: None)
    try:
        camp.initialize()  # seeds, cells, embedder load: start-up, not per-step work
        camp.judge.start()  # the worker pool starts once per campaign
        timer = PhaseTimer()
        timer.wrap(camp, "select_parents", "select")
        timer.wrap(camp, "mutate", "mutate+parse")
        timer.wrap(camp, "solve", "solve+verify")
        timer.wrap(camp.embedder, "encode", "embed")
        timer.wrap(camp, "_commit", "commit")
        timer.wrap(camp, "finish_step", "finish (embed+archive+commit)")
        candidates = attempts = 0
        if profile is not None:
            profile.enable()
        cpu0, load0 = cpu_seconds(), os.getloadavg()[0]
        t0 = time.perf_counter()
        for _ in range(args.steps):
            m = camp.run_step()
            candidates += m.candidates
            attempts += m.attempts
        wall = time.perf_counter() - t0
        cpu = cpu_seconds() - cpu0
        if profile is not None:
            profile.disable()
        return {"wall": wall, "cpu": cpu, "load": (load0 + os.getloadavg()[0]) / 2, "candidates": candidates,
                "attempts": attempts, "phases": timer.seconds, "elites": camp.archive.stats.num_elites}
    finally:
        camp.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64, help="mutations per step")
    ap.add_argument("--k", type=int, default=16, help="solver attempts per problem")
    ap.add_argument("--adaptive", action="store_true", help="adaptive solving (rounds up to k)")
    ap.add_argument("--steps", type=int, default=6, help="timed steps per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile", action="store_true", help="cProfile one repeat and print the top functions")
    ap.add_argument("--no-results", action="store_true", help="do not append to bench/results.md")
    ap.add_argument("--no-fast-judge", action="store_true",
                    help="send every problem to the judge pool, as before judge_fast (for an A/B)")
    add_threads_arg(ap)
    args = ap.parse_args()
    threads = set_threads(args.threads)
    if args.no_fast_judge:
        import pipeline.domains.math.answers

        pipeline.domains.math.answers.judge_fast = lambda reference, attempts: None

    runs = []
    for r in range(args.repeats if not args.profile else 1):
        workdir = Path(tempfile.mkdtemp(prefix="sparq-ceiling-"))
        prof = cProfile.Profile() if args.profile else None
        try:
            res = run_once(args, workdir, prof)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        rate = res["candidates"] / res["wall"]
        runs.append((rate, res))
        phases = ", ".join(f"{k} {v / args.steps:.3f}" for k, v in res["phases"].items())
        print(f"repeat {r + 1}: {res['candidates']} candidates, {res['attempts']} attempts in {res['wall']:.2f} s "
              f"= {rate:.1f} candidates/s ({res['attempts'] / res['wall']:.0f} attempts/s), "
              f"{1000 * res['cpu'] / res['candidates']:.1f} CPU ms/candidate, load {res['load']:.1f}; "
              f"s/step: {phases}", flush=True)
        if prof is not None:
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(30)
            print(out.getvalue())
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(40)
            print(out.getvalue())

    rates = [r for r, _ in runs]
    best = sorted(runs, key=lambda x: x[0])[len(runs) // 2][1]
    phases = ", ".join(f"{k} {v / args.steps:.3f}" for k, v in best["phases"].items())
    mode = f"adaptive up to k={args.k}" if args.adaptive else f"fixed k={args.k}"
    if args.no_fast_judge:
        mode += ", every problem through the judge pool (--no-fast-judge)"
    cpu_ms = median([1000 * x["cpu"] / x["candidates"] for _, x in runs])
    nproc = len(os.sched_getaffinity(0))
    line = (f"ceiling (zero-latency replay engine, {args.batch} mutations/step, {mode}, {threads}, "
            f"{args.steps} steps x {len(runs)} repeats): median {median(rates):.1f} candidates/s wall "
            f"{fmt_list(rates, 1)}, "
            f"{median([x['attempts'] / x['wall'] for _, x in runs]):.0f} attempts/s, at load average "
            f"{median([x['load'] for _, x in runs]):.1f} on {nproc} cores; {cpu_ms:.1f} CPU ms per candidate "
            f"(process + judge workers), i.e. at most {nproc * 1000 / cpu_ms:.0f} candidates/s on {nproc} idle "
            f"cores; target >= 100 candidates/s; median repeat s/step: {phases}")
    print(line)
    if not args.no_results and not args.profile:
        append_results("bench/ceiling.py", [line])


if __name__ == "__main__":
    main()
