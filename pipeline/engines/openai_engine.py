"""Any OpenAI-compatible server (`vllm serve`, others): async, bounded, retried, failed over.

One request per prompt (with `n` samples), spread over the configured base URLs:

- Each endpoint takes at most `concurrency` requests at a time. A request goes to the
  least-loaded live endpoint with a free slot (ties rotate), when a slot frees: an
  endpoint that answers fast gets more of the work than a slow one, and no request
  waits behind a busy endpoint while another is idle.
- A request that fails with a retryable error (timeout, connection refused or reset,
  HTTP 5xx/429, malformed body) is retried with exponential backoff, on an endpoint it
  has not tried yet when there is one (then without waiting: the failover is the retry).
- An endpoint that fails at the transport level (connection refused or reset, no
  complete answer within `timeout_s`) is marked down for `cooldown_s` seconds (doubling
  with each failure in a row, at most 16x) and gets no requests while another endpoint
  is up. When its cooldown ends one probe request goes to it; a success brings it
  back. When every endpoint is down, requests still go to them (the backoff paces them).
- `timeout_s` bounds each request as a whole (connect, send, the full answer), so a
  server that hangs or trickles bytes cannot stall a step.

A request the server refuses as such (HTTP 400, 413, 422: too long for the context, a
malformed body) is not retried: it raises `RequestError`, and the campaign records its
candidate as failed. When every try fails the call raises `EngineError` naming the endpoints. The event loop
(on its own thread, shared by calls from any thread: concurrent calls share the slots)
and the HTTP clients (one per endpoint, its connection pool sized to the endpoint's
concurrency: one pool over many hosts costs time quadratic in the connections) live as
long as the engine, so connections and endpoint health carry over from call to call.

The API key is read from the environment variable named in the config, never stored.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import httpx

from pipeline.config import EngineConfig
from pipeline.engines.base import (
    Completion,
    EngineError,
    EngineStats,
    RequestError,
    Sampling,
    prompt_seed,
    record_on_completion,
    truncate_at_stop,
)
from pipeline.prompts import Prompt

log = logging.getLogger(__name__)

MAX_COOLDOWN_FACTOR = 16
# Shorter than the usual server keep-alive (uvicorn, hence `vllm serve`: 5 s), so the client
# drops an idle connection before the server closes it under a request.
KEEPALIVE_S = 2.0


# OpenAI's API accepts at most 4 stop strings (`vllm serve` takes more, other servers may
# not); later ones are applied by the client.
MAX_STOP = 4
# What a server answers to the request itself (vLLM: 400 for a prompt over max_model_len);
# other 4xx (401, 403, 404: key, model or URL wrong) fail every request and stop the run.
REFUSED = (400, 413, 422)


class _Retryable(Exception):
    def __init__(self, msg: str, *, transport: bool = False) -> None:
        super().__init__(msg)
        self.transport = transport  # the endpoint itself is unreachable or stalled


@dataclass(eq=False)
class Endpoint:
    """One base URL and what the engine knows about it."""

    url: str
    inflight: int = 0
    failures: int = 0  # transport failures in a row
    down_until: float = 0.0  # time.monotonic(); skipped until then while another endpoint is up
    requests: int = 0  # tries sent
    ok: int = 0  # tries answered
    errors: int = 0  # tries failed (any retryable error)
    marked_down: int = 0  # times marked down
    busy_s: float = 0.0  # summed request time (slot occupancy)

    def is_up(self, now: float) -> bool:
        return self.down_until <= now


class OpenAIEngine:
    def __init__(self, cfg: EngineConfig, *, seed: int = 0) -> None:
        if not cfg.openai.base_urls:
            raise EngineError("openai engine: engine.openai.base_urls is empty; give at least one URL")
        self._model = cfg.model
        self._cfg = cfg.openai
        self._seed = seed
        self.endpoints = [Endpoint(u.rstrip("/")) for u in cfg.openai.base_urls]
        self.name = f"openai:{cfg.model}"
        self.stats = EngineStats()
        self._key = os.environ.get(cfg.openai.api_key_env, "")
        self._cooldown = cfg.openai.cooldown_s
        self._turn = 0  # rotates the tie-break between equally loaded endpoints
        self._init_runtime()

    def _init_runtime(self) -> None:
        # Touched only on the loop's thread, except _lock and the loop/thread handles.
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._ssl: ssl.SSLContext | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._finalizer: weakref.finalize | None = None
        self._lock = threading.Lock()

    _RUNTIME = ("_waiters", "_clients", "_ssl", "_loop", "_thread", "_finalizer", "_lock")

    def __getstate__(self) -> dict[str, Any]:
        # Picklable (an orchestrator may ship the engine to another process): the loop, its
        # thread and the clients are rebuilt there on first use.
        return {k: v for k, v in self.__dict__.items() if k not in self._RUNTIME}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_runtime()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        """The engine's event loop, running on its own daemon thread: calls from any thread
        (several at once included) share its endpoints' slots and health."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=_run_loop, args=(loop, self._clients), daemon=True,
                                          name="openai-engine")
                thread.start()
                self._loop, self._thread = loop, thread
                # An engine dropped without close() stops its loop (the thread then exits).
                self._finalizer = weakref.finalize(self, _stop_loop, loop)
            return self._loop

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}"} if self._key else {}

    # -- calls ---------------------------------------------------------------------
    def complete(self, prompts: Sequence[Prompt], sampling: Sampling) -> list[list[Completion]]:
        t0 = time.perf_counter()
        fut = asyncio.run_coroutine_threadsafe(self._complete_all(list(prompts), sampling), self._ensure_loop())
        try:
            out = fut.result()
        except BaseException:
            fut.cancel()  # interrupted (e.g. KeyboardInterrupt): no request lingers holding a slot
            raise
        with self._lock:
            self.stats.record(len(prompts), out, time.perf_counter() - t0)
            self.stats.extra.update(
                requests=float(sum(e.requests for e in self.endpoints)),
                request_errors=float(sum(e.errors for e in self.endpoints)),
                endpoints_marked_down=float(sum(e.marked_down for e in self.endpoints)))
        return out

    def submit(self, prompt: Prompt, sampling: Sampling) -> Future[list[Completion]]:
        """One prompt's completions as a future, with the same endpoint slots, retries and
        failover as `complete` (the streaming campaign's path)."""
        fut = asyncio.run_coroutine_threadsafe(self._one(prompt, sampling, 0), self._ensure_loop())
        return record_on_completion(fut, self.stats, self._lock)

    def capacity(self, n: int = 1) -> int:
        """Requests served at once, whatever their `n`: every endpoint's `engine.openai.concurrency`
        slots (the servers batch their sequences)."""
        return self._cfg.concurrency * len(self.endpoints)

    def _client(self, url: str) -> httpx.AsyncClient:
        client = self._clients.get(url)
        if client is None:
            # One pool per endpoint: httpcore scans every connection of a pool for each
            # request, so one pool over 64 endpoints spent more CPU than the requests.
            slots = self._cfg.concurrency * sum(e.url == url for e in self.endpoints)
            limits = httpx.Limits(max_connections=slots, max_keepalive_connections=slots,
                                  keepalive_expiry=KEEPALIVE_S)
            if self._ssl is None:  # one TLS context for all (each costs ~20 ms to build)
                self._ssl = httpx.create_ssl_context()
            client = httpx.AsyncClient(timeout=httpx.Timeout(self._cfg.timeout_s), limits=limits,
                                       headers=self._headers(), verify=self._ssl)
            self._clients[url] = client
        return client

    async def _complete_all(self, prompts: list[Prompt], sampling: Sampling) -> list[list[Completion]]:
        tasks = [asyncio.ensure_future(self._one(p, sampling, i)) for i, p in enumerate(prompts)]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for t in tasks:  # one prompt failed for good: the call fails, stop the others
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _one(self, prompt: Prompt, sampling: Sampling, index: int) -> list[Completion]:
        errors: list[str] = []
        tried: list[Endpoint] = []
        for attempt in range(self._cfg.retries + 1):
            ep = await self._acquire(tried)
            if ep not in tried:
                tried.append(ep)
            started = time.monotonic()
            ep.requests += 1
            try:
                out = await self._request(ep.url, prompt, sampling, index)
            except _Retryable as exc:
                errors.append(f"{ep.url}: {exc}")
                self._failed(ep, exc)
            else:
                self._succeeded(ep)
                return out
            finally:
                ep.busy_s += time.monotonic() - started
                self._release(ep)
            # Moving to an endpoint this request has not tried yet is the retry; the
            # backoff paces retries on endpoints that already failed it.
            if attempt < self._cfg.retries and not self._untried_up(tried):
                await asyncio.sleep(self._cfg.backoff_s * (2**attempt))
        urls = ", ".join(e.url for e in tried)
        raise EngineError(f"openai engine: request failed after {self._cfg.retries + 1} tries "
                          f"on {urls}; last error {errors[-1]}")

    # -- endpoint choice -------------------------------------------------------------
    def _pool(self, now: float) -> tuple[list[Endpoint], bool]:
        up = [e for e in self.endpoints if e.is_up(now)]
        return (up, False) if up else (self.endpoints, True)

    def _capacity(self, ep: Endpoint, all_down: bool) -> int:
        # An endpoint back from a cooldown takes one probe at a time until it answers.
        return 1 if ep.failures and not all_down else self._cfg.concurrency

    def _pick(self, avoid: list[Endpoint]) -> Endpoint | None:
        """The least-loaded endpoint of the pool with a free slot (untried ones first)."""
        pool, all_down = self._pool(time.monotonic())
        n = len(pool)
        best, best_key = None, None
        start = self._turn % n
        for j in range(n):
            ep = pool[(start + j) % n]
            cap = self._capacity(ep, all_down)
            if ep.inflight >= cap:
                continue
            key = (ep in avoid, ep.inflight / cap)
            if best_key is None or key < best_key:
                best, best_key = ep, key
        if best is not None:
            self._turn += 1
        return best

    def _free_slots(self) -> int:
        pool, all_down = self._pool(time.monotonic())
        return sum(max(0, self._capacity(e, all_down) - e.inflight) for e in pool)

    def _next_wake(self) -> float | None:
        """Seconds until the next cooldown ends (a waiter must look again then)."""
        now = time.monotonic()
        ends = [e.down_until - now for e in self.endpoints if e.down_until > now]
        return max(0.01, min(ends)) if ends else None

    async def _acquire(self, avoid: list[Endpoint]) -> Endpoint:
        loop = asyncio.get_running_loop()
        while True:
            ep = self._pick(avoid)
            if ep is not None:
                ep.inflight += 1
                return ep
            fut: asyncio.Future[None] = loop.create_future()
            self._waiters.append(fut)
            try:
                await asyncio.wait([fut], timeout=self._next_wake())
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    self._wake()  # this waiter was woken for a slot it will not take
                raise
            finally:
                if not fut.done():
                    fut.cancel()
                    try:
                        self._waiters.remove(fut)
                    except ValueError:
                        pass

    def _release(self, ep: Endpoint) -> None:
        ep.inflight -= 1
        self._wake()

    def _wake(self) -> None:
        """Wake as many waiting requests as there are free slots (oldest first)."""
        free = self._free_slots() if self._waiters else 0
        while free > 0 and self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                free -= 1

    def _untried_up(self, tried: list[Endpoint]) -> bool:
        now = time.monotonic()
        return any(e.is_up(now) and e not in tried for e in self.endpoints)

    def _failed(self, ep: Endpoint, exc: _Retryable) -> None:
        ep.errors += 1
        now = time.monotonic()
        # A request sent before the endpoint was marked down adds nothing to the cooldown.
        if not exc.transport or ep.down_until > now:
            return
        ep.failures += 1
        cooldown = self._cooldown * min(MAX_COOLDOWN_FACTOR, 2 ** (ep.failures - 1))
        if cooldown > 0:
            ep.down_until = now + cooldown
            ep.marked_down += 1
            log.warning("openai engine: endpoint %s marked down for %.0f s (%s)", ep.url, cooldown, exc)

    def _succeeded(self, ep: Endpoint) -> None:
        ep.ok += 1
        if ep.failures:
            log.info("openai engine: endpoint %s is answering again", ep.url)
        ep.failures = 0
        ep.down_until = 0.0

    # -- one HTTP request ----------------------------------------------------------------
    async def _request(self, url: str, prompt: Prompt, sampling: Sampling, index: int) -> list[Completion]:
        body: dict[str, Any] = {
            "model": self._model,
            "n": sampling.n,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
        }
        if sampling.stop:
            body["stop"] = list(sampling.stop)[:MAX_STOP]  # the rest: cut here, counted (see _parse)
        if sampling.seed is not None:
            body["seed"] = prompt_seed(sampling, index)
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
                resp = await self._client(url).post(endpoint, json=body)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise _Retryable(f"no complete answer within timeout_s={self._cfg.timeout_s:g} s",
                             transport=True) from exc
        except httpx.TransportError as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}", transport=True) from exc
        if resp.status_code == 429 or resp.status_code >= 500:
            raise _Retryable(f"HTTP {resp.status_code}")
        if resp.status_code in REFUSED:  # the request itself: the same answer on any endpoint
            raise RequestError(f"openai engine: {endpoint} refused the request, HTTP {resp.status_code}: "
                               f"{' '.join(resp.text[:200].split())}")
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
        for raw, choice in zip(texts, choices, strict=True):
            text, cut = truncate_at_stop(raw, sampling.stop)
            tokens = per if per is not None else max(1, len(raw) // 4)
            finish = choice.get("finish_reason")
            if cut:
                # A stop string past the API's first MAX_STOP: the server generated past it
                # and the client cut the text. The completion is what a server that knew
                # every stop string would have sent: finish "stop", its tokens in proportion
                # to the kept text (an estimate, counted in stats.extra["client_stop_cuts"]).
                tokens = max(1, round(tokens * len(text) / max(1, len(raw))))
                finish = "stop"
                with self._lock:
                    self.stats.extra["client_stop_cuts"] = self.stats.extra.get("client_stop_cuts", 0) + 1
            out.append(Completion(text=text, tokens=tokens, finish_reason=finish))
        return out

    def close(self) -> None:
        with self._lock:
            loop, thread, finalizer = self._loop, self._thread, self._finalizer
            self._loop = self._thread = self._finalizer = None
        if loop is None:
            return
        finalizer.detach()
        _stop_loop(loop)
        thread.join(30)


def _stop_loop(loop: asyncio.AbstractEventLoop) -> None:
    try:
        loop.call_soon_threadsafe(loop.stop)
    except RuntimeError:  # already closed
        pass


def _run_loop(loop: asyncio.AbstractEventLoop, clients: dict[str, httpx.AsyncClient]) -> None:
    """The engine's loop thread: run until stopped, then close the clients and the loop."""
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        try:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in pending:
                t.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            for client in list(clients.values()):
                loop.run_until_complete(client.aclose())
            clients.clear()
        finally:
            loop.close()
