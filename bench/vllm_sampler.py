"""vLLM's CPU sampler with and without the project's top-p (pipeline/engines/vllm_sampling.py).

    .venv/bin/python bench/vllm_sampler.py                 # both samplers, the mixed batch below
    .venv/bin/python bench/vllm_sampler.py --mutations 8 --solves 32

The batch a streaming campaign gives vLLM: a few mutation requests (the generator's
top_p 0.95) among many solve requests (k = 8 samples each, top_p 1), all submitted at
once to in-process vLLM (CPU build, embedded model, default engine config). The prompts
are the campaign's own: mutation prompts of parents drawn from the bundled seeds, solve
prompts of seed problems. The mutations' max_tokens is cut to `--mutation-tokens` so that
the run without the plugin, which sorts every row's 262,144 logits at every decode step
while a mutation is running, ends in minutes.

Each sampler gets a fresh engine (vLLM reads `VLLM_PLUGINS`, its list of general plugins
to load, when its processes start) and the same requests, in one run; the figure is
output tokens per second, and their ratio.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import tempfile
import time
from pathlib import Path

from benchlib import add_threads_arg, append_results, set_threads

from pipeline.config import load_config
from pipeline.engines import make_engine
from pipeline.engines.vllm_sampling import plugins_without_cpu_top_p
from pipeline.loop.campaign import Campaign


def requests(args) -> list:
    """(prompt, sampling) of `args.mutations` mutations and `args.solves` solve requests."""
    cfg = load_config(None)
    workdir = Path(tempfile.mkdtemp(prefix="sparq-sampler-"))
    try:
        camp = Campaign.open(workdir / "run", config=cfg, engine=None, progress=lambda _m: None)
        try:
            camp.initialize()
            parents = camp.select_parents(args.mutations + args.solves)
            out = []
            for i, parent in enumerate(parents[:args.mutations]):
                request = camp.rules.mutation_request(parent)
                out.append((request.prompt, dataclasses.replace(request.sampling, max_tokens=args.mutation_tokens,
                                                                seed=camp.request_seed(i, request.phase))))
            for i, parent in enumerate(parents[args.mutations:]):
                out.append((camp.rules.solve_prompt.render(problem=parent.problem),
                            camp.rules.solve_sampling(cfg.solver.k, camp.request_seed(i, 100))))
            return out
        finally:
            camp.close()  # the engine was never built: this closes the embedder's pool
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def throughput(reqs: list, plugin: bool) -> tuple[int, float]:
    """(output tokens, seconds) of `reqs` submitted at once to a fresh engine."""
    if not plugin:  # else every installed plugin loads, the project's among them
        os.environ["VLLM_PLUGINS"] = plugins_without_cpu_top_p()
    engine = make_engine(load_config(None).engine, seed=0)
    try:
        engine.complete([reqs[0][0]], dataclasses.replace(reqs[0][1], max_tokens=4))  # warm up
        t0 = time.perf_counter()
        futs = [engine.submit(p, s) for p, s in reqs]
        tokens = sum(c.tokens for f in futs for c in f.result())
        return tokens, time.perf_counter() - t0
    finally:
        engine.close()
        os.environ.pop("VLLM_PLUGINS", None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mutations", type=int, default=4, help="mutation requests (top_p 0.95)")
    ap.add_argument("--mutation-tokens", type=int, default=32, help="their max_tokens")
    ap.add_argument("--solves", type=int, default=16, help="solve requests (k samples, top_p 1)")
    ap.add_argument("--no-results", action="store_true", help="do not append to bench/results.md")
    add_threads_arg(ap)
    args = ap.parse_args()
    threads = set_threads(args.threads)
    reqs = requests(args)
    figures = {}
    for label, plugin in (("vLLM's own top-p", False), ("the project's top-p", True)):
        tokens, seconds = throughput(reqs, plugin)
        figures[label] = tokens / seconds
        print(f"{label}: {tokens} tokens in {seconds:.1f} s = {tokens / seconds:.1f} tokens/s", flush=True)
    plain, ours = figures.values()
    line = (f"in-process vLLM (CPU build, embedded model), {args.mutations} mutations (top_p 0.95, "
            f"max_tokens {args.mutation_tokens}) + {args.solves} solve requests (k = 8, top_p 1) at once: "
            f"vLLM's own CPU top-p {plain:.1f} tokens/s, the project's {ours:.1f} ({ours / plain:.2f}x) ({threads})")
    print(line)
    if not args.no_results:
        append_results("bench/vllm_sampler.py", [line])


if __name__ == "__main__":
    main()
