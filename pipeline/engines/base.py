"""The engine contract: one small Protocol that every model backend implements.

`complete(prompts, sampling)` returns, for each prompt, `sampling.n` completions. A
prompt is a string (completion models) or a list of chat messages (the engine applies
the model's chat template). Engines are built once and reused across steps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

from pipeline.prompts import Prompt


class EngineError(RuntimeError):
    """An engine could not answer; the message names the endpoint or model."""


class RequestError(EngineError):
    """One request cannot be answered for a reason of its own: its prompt is longer than the
    model's context, or the server rejected it as malformed (HTTP 400, 413, 422). Sending it
    again gives the same answer, so its candidate fails (status `failed`) and the run goes
    on; transport faults stay plain `EngineError`s, which are retried."""


@dataclass(frozen=True)
class Sampling:
    n: int = 1
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 128
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"Sampling.n: expected >= 1, got {self.n}")
        if self.max_tokens < 1:
            raise ValueError(f"Sampling.max_tokens: expected >= 1, got {self.max_tokens}")


def prompt_seed(sampling: Sampling, index: int) -> int | None:
    """The seed of prompt `index` of one call: seed + index * n. A server seeds a request's
    n samples from its one seed (s, s+1, ..., s+n-1 where it advances per sample), so
    prompts `n` apart never share a sample's seed. None when the call has no seed."""
    return None if sampling.seed is None else sampling.seed + index * sampling.n


@dataclass(frozen=True)
class Completion:
    text: str
    tokens: int  # generated tokens (as counted by the engine)
    finish_reason: str | None = None


@dataclass
class EngineStats:
    calls: int = 0
    prompts: int = 0
    completions: int = 0
    tokens: int = 0
    seconds: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    def record(self, prompts: int, out: Sequence[Sequence[Completion]], seconds: float) -> None:
        """Count one engine call: its prompts, completions, generated tokens and seconds."""
        self.calls += 1
        self.prompts += prompts
        self.completions += sum(len(c) for c in out)
        self.tokens += sum(c.tokens for cs in out for c in cs)
        self.seconds += seconds


@runtime_checkable
class Engine(Protocol):
    name: str

    def complete(self, prompts: Sequence[Prompt], sampling: Sampling) -> list[list[Completion]]:
        ...

    def close(self) -> None:
        ...


def complete_each(engine: Engine, prompts: Sequence[Prompt],
                  sampling: Sampling) -> list[list[Completion] | RequestError]:
    """`engine.complete`, with each prompt's own refusal (`RequestError`) in its place instead
    of failing the call. One call for the batch; only when some prompt was refused, the batch
    again prompt by prompt, each with the seed it had in the batch (`prompt_seed`), so where
    the engine seeds per request the answered ones come out as the batch would have given
    them. Engines with `submit` take the prompts at once (their batch stays full); the others
    one at a time. Other errors (transport, a dead engine) propagate."""
    try:
        return list(engine.complete(prompts, sampling))
    except RequestError as exc:
        if len(prompts) == 1:
            return [exc]
    own = [replace(sampling, seed=prompt_seed(sampling, i)) for i in range(len(prompts))]
    submit = getattr(engine, "submit", None)
    if callable(submit):
        futures = [submit(p, s) for p, s in zip(prompts, own, strict=True)]
        flush = getattr(engine, "flush", None)
        if callable(flush):
            flush()
        try:
            return [outcome(f) for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    out: list[list[Completion] | RequestError] = []
    for p, s in zip(prompts, own, strict=True):
        try:
            out.append(engine.complete([p], s)[0])
        except RequestError as exc:
            out.append(exc)
    return out


def outcome(fut: Future) -> list[Completion] | RequestError:
    """A request's completions, or its refusal (other errors raise)."""
    try:
        return fut.result()
    except RequestError as exc:
        return exc


def truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut `text` at the first stop string (engines that over-generate past it)."""
    cut = len(text)
    for s in stop:
        i = text.find(s)
        if 0 <= i < cut:
            cut = i
    return text[:cut], cut < len(text)


def record_on_completion(fut: Future, stats: EngineStats, lock: threading.Lock) -> Future:
    """Count a submitted request in `stats` when it completes (not when cancelled or failed)."""
    t0 = time.perf_counter()

    def record(done: Future) -> None:
        if not done.cancelled() and done.exception() is None:
            with lock:
                stats.record(1, [done.result()], time.perf_counter() - t0)

    fut.add_done_callback(record)
    return fut


class Submitter(Protocol):
    """Asynchronous submission: one prompt's completions as a future, so a caller can keep
    an engine's batch full while earlier requests are still running.

    A submitter may also have `flush()`: it then may hold submitted requests back (to send
    several as one unit of work, as Dask fan-out does) until `flush()` is called, and its
    caller calls it before it waits on the futures (pipeline/loop/stream.py does).
    """

    def submit(self, prompt: Prompt, sampling: Sampling) -> Future[list[Completion]]:
        ...

    def capacity(self, n: int = 1) -> int:
        """Requests of `n` samples each that keep the engine saturated when in flight at once."""
        ...


class BatchSubmitter:
    """`submit` over a batch-wise engine (transformers, scripted): requests queue up and one
    worker thread sends whatever has queued as one `complete` call per sampling setting.

    While a batch runs, new requests wait for the next one: the engine is never idle while
    work is queued, but a batch still waits for its slowest sequence (these engines have no
    continuous batch to add to).
    """

    def __init__(self, engine: Engine, capacity: int) -> None:
        self.engine = engine
        self._capacity = max(1, capacity)
        self._queue: list[tuple[Prompt, Sampling, Future]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._work, daemon=True, name="sparq-batch-submit")
        self._thread.start()

    def capacity(self, n: int = 1) -> int:
        return self._capacity

    def submit(self, prompt: Prompt, sampling: Sampling) -> Future[list[Completion]]:
        fut: Future[list[Completion]] = Future()
        with self._cond:
            if self._closed:
                raise EngineError(f"{self.engine.name}: submit after close")
            self._queue.append((prompt, sampling, fut))
            self._cond.notify()
        return fut

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed and not self._queue:
                    return
                batch, self._queue = self._queue, []
            groups: dict[Sampling, list[tuple[Prompt, Future]]] = {}
            for prompt, sampling, fut in batch:
                if fut.set_running_or_notify_cancel():
                    groups.setdefault(sampling, []).append((prompt, fut))
            for sampling, items in groups.items():
                try:
                    outs = self.engine.complete([p for p, _ in items], sampling)
                except BaseException as exc:  # every waiter learns why; the worker lives on
                    for _, fut in items:
                        fut.set_exception(exc)
                    continue
                for (_, fut), out in zip(items, outs, strict=True):
                    fut.set_result(out)

    def close(self) -> None:
        """Stop taking requests and cancel the queued ones (the engine stays open)."""
        with self._cond:
            self._closed = True
            for _, _, fut in self._queue:
                fut.cancel()
            self._queue = []
            self._cond.notify_all()
        self._thread.join(timeout=60)


def submitter(engine: Engine, *, fallback_capacity: int) -> Submitter:
    """The engine's own asynchronous path when it has one, else a BatchSubmitter over it."""
    if callable(getattr(engine, "submit", None)) and callable(getattr(engine, "capacity", None)):
        return engine  # type: ignore[return-value]
    return BatchSubmitter(engine, fallback_capacity)
