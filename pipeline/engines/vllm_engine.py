"""In-process vLLM engine: the production engine on a GPU, also run on CPU in the tests.

`SamplingParams(n=k)` lets vLLM share one prefill across the k samples of a prompt.
Install with the `gpu` extra on a GPU box; on CPU, vLLM's CPU build lives in its own
venv (`.ci/vllm-venv`, see the README). The embedded model is loaded from
`embedded_vllm_model_dir()` (the converted safetensors without the GGUF
quantization entry, which vLLM rejects).

On CPU (`engine.device = "cpu"`) vLLM reads `gpu_memory_utilization` as a fraction of the
machine's RAM that must be free at start, so the engine asks for an explicit KV cache
instead: `VLLM_CPU_KVCACHE_SPACE` GiB when set, else `CPU_KV_CACHE_GIB`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from pipeline.config import EngineConfig
from pipeline.engines.base import Completion, EngineError, EngineStats, Sampling
from pipeline.models import EMBEDDED, EMBEDDED_NAME, embedded_vllm_model_dir
from pipeline.prompts import Prompt

CPU_KV_CACHE_GIB = 2


class VLLMEngine:
    def __init__(self, cfg: EngineConfig, *, seed: int = 0) -> None:
        try:
            from vllm import LLM
        except ImportError as exc:
            raise EngineError("vllm engine: vllm is not installed (pip install '.[gpu]')") from exc
        self.name = f"vllm:{EMBEDDED_NAME if cfg.model == EMBEDDED else cfg.model}"
        self.stats = EngineStats()
        path = str(embedded_vllm_model_dir()) if cfg.model == EMBEDDED else cfg.model
        kwargs = dict(model=path, seed=seed, max_model_len=cfg.max_model_len, dtype=cfg.dtype or "auto")
        if cfg.device == "cpu":
            if not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
                kwargs["kv_cache_memory_bytes"] = CPU_KV_CACHE_GIB << 30
        else:
            kwargs["gpu_memory_utilization"] = cfg.gpu_memory_utilization
        try:
            self._llm = LLM(**kwargs)
        except Exception as exc:  # vLLM raises many types; the step must fail with one line
            raise EngineError(f"vllm engine: could not load {path}: {type(exc).__name__}: {exc}") from exc

    def complete(self, prompts: Sequence[Prompt], sampling: Sampling) -> list[list[Completion]]:
        from vllm import SamplingParams

        # One request per prompt, seeded like the openai engine's (seed + prompt index), so a
        # step's samples do not depend on what the engine sampled before.
        params = [SamplingParams(
            n=sampling.n,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_tokens,
            stop=list(sampling.stop) or None,
            seed=None if sampling.seed is None else sampling.seed + i,
        ) for i in range(len(prompts))]
        t0 = time.perf_counter()
        chat = [i for i, p in enumerate(prompts) if not isinstance(p, str)]
        plain = [i for i, p in enumerate(prompts) if isinstance(p, str)]
        results: dict[int, list[Completion]] = {}
        if plain:
            outs = self._llm.generate([prompts[i] for i in plain], [params[i] for i in plain], use_tqdm=False)
            results.update({i: self._convert(o) for i, o in zip(plain, outs, strict=True)})
        if chat:
            outs = self._llm.chat([prompts[i] for i in chat], [params[i] for i in chat], use_tqdm=False)
            results.update({i: self._convert(o) for i, o in zip(chat, outs, strict=True)})
        out = [results[i] for i in range(len(prompts))]
        self.stats.record(len(prompts), out, time.perf_counter() - t0)
        return out

    @staticmethod
    def _convert(request_output) -> list[Completion]:
        return [Completion(text=o.text, tokens=len(o.token_ids), finish_reason=o.finish_reason)
                for o in request_output.outputs]

    def close(self) -> None:
        self._llm = None
