"""In-process Hugging Face transformers engine: the embedded CPU default.

Also the engine that loads a freshly fine-tuned model directory for evaluation.
Prompts are batched so that prompts x n sequences stay within `batch_size` per forward
pass; `num_return_sequences=n` shares the prompt across its samples.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from pipeline.config import EngineConfig
from pipeline.engines.base import Completion, EngineError, EngineStats, RequestError, Sampling, truncate_at_stop
from pipeline.models import EMBEDDED, EMBEDDED_NAME, resolve_model_path
from pipeline.prompts import Prompt, load_chat_template


def _stop_criteria_class():
    from transformers import StoppingCriteria

    class StopOnStrings(StoppingCriteria):
        """Per-sequence stop on strings, by decoding a short tail of new tokens.

        transformers' own `stop_strings` precomputes a table over the whole vocabulary
        (262K tokens for Gemma 3), which cost minutes per distinct stop list on CPU.
        """

        def __init__(self, tok, stops, prompt_len: int, window: int = 16) -> None:
            self.tok, self.stops, self.prompt_len, self.window = tok, tuple(stops), prompt_len, window

        def __call__(self, input_ids, scores, **kwargs):
            import torch

            tails = input_ids[:, self.prompt_len :][:, -self.window :]
            texts = self.tok.batch_decode(tails, skip_special_tokens=True)
            done = [any(s in t for s in self.stops) for t in texts]
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return StopOnStrings


def _StopOnStrings(tok, stops, prompt_len):  # noqa: N802 - a factory that reads as a class
    return _stop_criteria_class()(tok, stops, prompt_len)


class TransformersEngine:
    def __init__(self, cfg: EngineConfig, *, seed: int = 0) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = f"transformers:{EMBEDDED_NAME if cfg.model == EMBEDDED else cfg.model}"
        self._cfg = cfg
        self._seed = seed
        self.stats = EngineStats()
        self._lock = threading.Lock()  # generate() is not safe to call from two threads
        path = resolve_model_path(cfg.model)
        try:
            # "auto": float32 on CPU (bf16 matmuls are slow on most CPUs), the model's own on GPU.
            auto = torch.float32 if cfg.device == "cpu" else "auto"
            dtype = auto if cfg.dtype == "auto" else getattr(torch, cfg.dtype)
            self._tok = AutoTokenizer.from_pretrained(path)
            self._model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        except (OSError, ValueError, AttributeError) as exc:
            raise EngineError(f"transformers engine: cannot load model {cfg.model!r} ({path}): "
                              f"{exc}") from exc
        self._model.to(cfg.device)
        self._model.eval()
        self._tok.padding_side = "left"  # decoder-only batching pads on the left
        if self._tok.pad_token is None:
            self._tok.pad_token = self._tok.eos_token
        torch.set_num_threads(max(1, torch.get_num_threads()))
        # Whether tokenizing adds <bos> itself (checked once, not per chat prompt).
        self._adds_bos = self._tok("x").input_ids[:1] == [self._tok.bos_token_id]

    def _render(self, prompt: Prompt) -> str:
        if isinstance(prompt, str):
            return prompt
        template = load_chat_template(self._cfg.chat_template) or self._tok.chat_template
        if not template:
            raise EngineError(f"{self.name}: the model has no chat template, so chat prompts "
                              "cannot be used; choose a completion prompt (e.g. *_fewshot) "
                              "or set engine.chat_template (e.g. \"plain\")")
        text = self._tok.apply_chat_template(prompt, chat_template=template, tokenize=False,
                                             add_generation_prompt=True)
        # Templates write <bos> themselves, and tokenizing the text adds another: keep one.
        bos = self._tok.bos_token
        if bos and text.startswith(bos) and self._adds_bos:
            text = text[len(bos):]
        return text

    def complete(self, prompts: Sequence[Prompt], sampling: Sampling) -> list[list[Completion]]:
        import torch

        texts = [self._render(p) for p in prompts]
        self._check_lengths(texts)
        per_batch = max(1, self._cfg.batch_size // sampling.n)
        out: list[list[Completion]] = []
        t0 = time.perf_counter()
        with self._lock:
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)
            for i in range(0, len(texts), per_batch):
                out.extend(self._generate(texts[i : i + per_batch], sampling))
        self.stats.record(len(texts), out, time.perf_counter() - t0)
        return out

    def _check_lengths(self, texts: list[str]) -> None:
        """Refuse a prompt that does not fit `engine.max_model_len` in tokens (as vLLM does)."""
        limit = self._cfg.max_model_len
        for i, text in enumerate(texts):
            n = len(self._tok(text).input_ids)
            if n >= limit:
                raise RequestError(f"{self.name}: prompt {i} is {n} tokens; engine.max_model_len is {limit}")

    def _generate(self, texts: list[str], sampling: Sampling) -> list[list[Completion]]:
        import torch

        enc = self._tok(texts, return_tensors="pt", padding=True).to(self._cfg.device)
        kwargs = dict(
            max_new_tokens=sampling.max_tokens,
            num_return_sequences=sampling.n,
            pad_token_id=self._tok.pad_token_id,
        )
        if sampling.temperature > 0:
            kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
        else:
            kwargs.update(do_sample=False)
        if sampling.stop:
            prompt_len = enc["input_ids"].shape[1]
            kwargs["stopping_criteria"] = [_StopOnStrings(self._tok, sampling.stop, prompt_len)]
        with torch.inference_mode():
            ids = self._model.generate(**enc, **kwargs)
        gen = ids[:, enc["input_ids"].shape[1] :]
        special = {self._tok.pad_token_id, self._tok.eos_token_id}
        results: list[list[Completion]] = []
        for p in range(len(texts)):
            row: list[Completion] = []
            for j in range(sampling.n):
                seq = gen[p * sampling.n + j].tolist()
                n_tokens = sum(1 for t in seq if t not in special)
                text = self._tok.decode(seq, skip_special_tokens=True)
                text, stopped = truncate_at_stop(text, sampling.stop)
                finish = "stop" if stopped or n_tokens < sampling.max_tokens else "length"
                row.append(Completion(text=text, tokens=n_tokens, finish_reason=finish))
            results.append(row)
        return results

    def close(self) -> None:
        self._model = None
