"""Runs in vLLM's own venv (started by bench/engines.py): generate, write the figures.

    /tmp/vllm-venv/bin/python bench/vllm_worker.py JOB.json OUT.json

vLLM CPU pins its own torch build, so it cannot share the project's venv; this file
imports nothing of the project. JOB.json: {"model", "dtype", "seed", "batches":
[{"prompts", "n", "temperature", "top_p", "max_tokens", "stop", "seed"}, ...],
"warmup": {...same...}}. OUT.json: per batch, generated tokens and seconds, plus the
load time (a file, because vLLM logs to stdout).
"""

from __future__ import annotations

import json
import sys
import time


def main() -> None:
    job = json.loads(open(sys.argv[1], encoding="utf-8").read())
    from vllm import LLM, SamplingParams

    t0 = time.perf_counter()
    llm = LLM(model=job["model"], dtype=job["dtype"], seed=job["seed"], max_model_len=job.get("max_model_len", 2048),
              enforce_eager=job.get("enforce_eager", False))
    load_s = time.perf_counter() - t0

    def run(batch: dict) -> tuple[int, float]:
        params = SamplingParams(n=batch["n"], temperature=batch["temperature"], top_p=batch["top_p"],
                                max_tokens=batch["max_tokens"], stop=batch["stop"], seed=batch["seed"])
        t = time.perf_counter()
        outs = llm.generate(batch["prompts"], params, use_tqdm=False)
        return sum(len(c.token_ids) for o in outs for c in o.outputs), time.perf_counter() - t

    run(job["warmup"])
    results = [dict(zip(("tokens", "seconds"), run(b), strict=True)) for b in job["batches"]]
    with open(sys.argv[2], "w", encoding="utf-8") as fh:
        json.dump({"load_s": load_s, "batches": results}, fh)


if __name__ == "__main__":
    main()
