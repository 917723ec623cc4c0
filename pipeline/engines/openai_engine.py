"""Any OpenAI-compatible server (`vllm serve`, others): async, bounded, retried.

One request per prompt (with `n` samples), spread over the configured base URLs.
Each endpoint has its own concurrency limit; a request that fails with a retryable
error (timeout, connection refused, HTTP 5xx/429, malformed body) is retried with
exponential backoff, moving to the next endpoint each time, so a dead endpoint is
skipped. `timeout_s` bounds each request as a whole (connect, send, the full answer), so
a server that hangs or trickles bytes cannot stall a step. When every try fails the call
raises `EngineError` naming the endpoints.

The API key is read from the environment variable named in the config, never stored.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Sequence
from typing import Any

import httpx

from pipeline.config import EngineConfig
from pipeline.engines.base import Completion, EngineError, EngineStats, Sampling, truncate_at_stop
from pipeline.prompts import Prompt


class _Retryable(Exception):
    pass


class OpenAIEngine:
    def __init__(self, cfg: EngineConfig, *, seed: int = 0) -> None:
        if not cfg.base_urls:
            raise EngineError("openai engine: engine.base_urls is empty; give at least one URL")
        self._cfg = cfg
        self._seed = seed
        self._urls = [u.rstrip("/") for u in cfg.base_urls]
        self.name = f"openai:{cfg.model}"
        self.stats = EngineStats()
        self._key = os.environ.get(cfg.api_key_env, "")
        self._rr = itertools.count()

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}"} if self._key else {}

    def complete(self, prompts: Sequence[Prompt], sampling: Sampling) -> list[list[Completion]]:
        t0 = time.perf_counter()
        out = asyncio.run(self._complete_all(list(prompts), sampling))
        self.stats.calls += 1
        self.stats.prompts += len(prompts)
        self.stats.completions += sum(len(c) for c in out)
        self.stats.tokens += sum(c.tokens for cs in out for c in cs)
        self.stats.seconds += time.perf_counter() - t0
        return out

    async def _complete_all(self, prompts: list[Prompt], sampling: Sampling) -> list[list[Completion]]:
        limits = {u: asyncio.Semaphore(self._cfg.concurrency) for u in self._urls}
        timeout = httpx.Timeout(self._cfg.timeout_s)
        async with httpx.AsyncClient(timeout=timeout, headers=self._headers()) as client:
            tasks = [self._one(client, limits, p, sampling, i) for i, p in enumerate(prompts)]
            return list(await asyncio.gather(*tasks))

    async def _one(self, client: httpx.AsyncClient, limits: dict[str, asyncio.Semaphore],
                   prompt: Prompt, sampling: Sampling, index: int) -> list[Completion]:
        start = next(self._rr)
        errors: list[str] = []
        tried: list[str] = []
        for attempt in range(self._cfg.retries + 1):
            url = self._urls[(start + attempt) % len(self._urls)]
            tried += [url] if url not in tried else []
            try:
                async with limits[url]:
                    return await self._request(client, url, prompt, sampling, index)
            except _Retryable as exc:
                errors.append(f"{url}: {exc}")
                if attempt < self._cfg.retries:
                    await asyncio.sleep(self._cfg.backoff_s * (2**attempt))
        raise EngineError(f"openai engine: request failed after {self._cfg.retries + 1} tries "
                          f"on {', '.join(tried)}; last error {errors[-1]}")

    async def _request(self, client: httpx.AsyncClient, url: str, prompt: Prompt,
                       sampling: Sampling, index: int) -> list[Completion]:
        body: dict[str, Any] = {
            "model": self._cfg.model,
            "n": sampling.n,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
        }
        if sampling.stop:
            body["stop"] = list(sampling.stop)[:4]  # the API accepts at most 4
        if sampling.seed is not None:
            body["seed"] = sampling.seed + index
        chat = not isinstance(prompt, str)
        if chat:
            body["messages"] = prompt
            endpoint = f"{url}/chat/completions"
        else:
            body["prompt"] = prompt
            endpoint = f"{url}/completions"
        try:
            # httpx's timeout is per read: a server that trickles bytes never trips it.
            async with asyncio.timeout(self._cfg.timeout_s):
                resp = await client.post(endpoint, json=body)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise _Retryable(f"no complete answer within timeout_s={self._cfg.timeout_s:g} s") from exc
        except httpx.TransportError as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
        if resp.status_code == 429 or resp.status_code >= 500:
            raise _Retryable(f"HTTP {resp.status_code}")
        if resp.status_code >= 400:
            raise EngineError(f"openai engine: {endpoint} answered HTTP {resp.status_code}: "
                              f"{' '.join(resp.text[:200].split())}")
        try:
            data = resp.json()
            choices = data["choices"]
            if not choices:
                raise _Retryable("empty choices")
            texts = [(c["message"]["content"] if chat else c["text"]) or "" for c in choices]
            usage = (data.get("usage") or {}).get("completion_tokens")
        except (ValueError, KeyError, TypeError) as exc:
            raise _Retryable(f"malformed response ({type(exc).__name__})") from exc
        per = int(usage) // len(texts) if usage else None
        out = []
        for text, choice in zip(texts, choices, strict=True):
            text, _ = truncate_at_stop(text, sampling.stop)
            tokens = per if per is not None else max(1, len(text) // 4)
            out.append(Completion(text=text, tokens=tokens, finish_reason=choice.get("finish_reason")))
        return out

    def close(self) -> None:
        pass
