"""Fan-out of engine calls and verification as Prefect tasks (for a DaskTaskRunner).

`FanoutEngine` and `FanoutJudge` stand in for the campaign's engine and judge: each
call is cut into chunks of `chunk_size` prompts (or problems), every chunk is a task
submitted to the flow's task runner, and the results come back in order. With
prefect-dask's DaskTaskRunner the chunks run on the cluster's workers, each of which
builds its own engine and judge once (pipeline/loop/remote.py). Parent selection, parsing,
embedding, the archive and the commit stay in the flow: one writer per run directory.

Steps mode calls `complete` (one chunk task per `chunk_size` prompts of one phase). The
stream (pipeline/loop/stream.py) uses the asynchronous path instead, `submit` / `flush` /
`capacity`: each request gets a concurrent.futures.Future at once and waits in a buffer;
a full buffer (`chunk_size` requests) goes out as one chunk task right away, and the
stream's `flush()`, called once per turn of its loop after it has sent what it can (before
it commits or blocks), sends the rest. So a burst of requests becomes few tasks (a task
costs milliseconds of Prefect and Dask overhead, a request is cheap to hold), and a new
chunk starts as soon as candidates free up, without a phase barrier. Why buffering in
the flow's thread rather than a worker thread of our own (as BatchSubmitter does):
`task.submit` needs the flow run's context, which lives in the flow's thread, where the
stream's loop runs. A request's future is completed from Dask's callback thread when its
chunk task finishes; the stream only ever waits on those futures.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from pipeline.config import DaskConfig, EngineConfig
from pipeline.domains.base import Verdict
from pipeline.engines import Completion, EngineError, EngineStats, RequestError, Sampling
from pipeline.loop import remote
from pipeline.models import EMBEDDED, EMBEDDED_NAME
from pipeline.prompts import Prompt


@task(name="complete-chunk", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def complete_chunk_task(cfg: EngineConfig, seed: int, prompts: list[Prompt],
                        sampling: Sampling) -> list[list[Completion]]:
    return remote.complete_chunk(cfg, seed, prompts, sampling)


@task(name="complete-requests", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def complete_requests_task(cfg: EngineConfig, seed: int,
                           requests: list[tuple[Prompt, Sampling]]) -> list[list[Completion]]:
    return remote.complete_requests(cfg, seed, requests)


@task(name="verify-chunk", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE)
def judge_chunk_task(timeout_s: float, items: list[tuple[str, tuple[str, ...]]],
                     domain: str = "math") -> list[Verdict]:
    return remote.judge_chunk(timeout_s, items, domain)


# What sends one chunk of (prompt, sampling) requests and returns its future: a Prefect
# future in the flow (anything with add_done_callback(fn(future)) and result()).
ChunkSender = Callable[[list[tuple[Prompt, Sampling]]], Any]
_Request = tuple[Prompt, Sampling, Future]


class FanoutEngine:
    def __init__(self, cfg: EngineConfig, *, seed: int, chunk_size: int,
                 send_chunk: ChunkSender | None = None) -> None:
        self._cfg, self._seed, self._chunk = cfg, seed, chunk_size
        # The name the workers' engines give their rows, so fanned-out rows read the same.
        model = EMBEDDED_NAME if cfg.model == EMBEDDED and cfg.kind in ("vllm", "transformers") else cfg.model
        self.name = f"{cfg.kind}:{model}" if cfg.kind != "scripted" else "scripted"
        self.stats = EngineStats()
        self.tasks = 0
        self._send_chunk = send_chunk or self._submit_task
        self._buffer: list[_Request] = []  # submitted, not yet sent (flow thread only)
        self._running: dict[int, Any] = {}  # chunk tasks sent and not finished, by id
        self._lock = threading.Lock()  # stats and _running: chunk results arrive on Dask's thread

    def complete(self, prompts: Sequence[Prompt], sampling: Sampling) -> list[list[Completion]]:
        t0 = time.perf_counter()
        prompts = list(prompts)
        futures = [complete_chunk_task.submit(self._cfg, self._seed, prompts[a:b],
                                              remote.chunk_sampling(sampling, a))
                   for a, b in remote.chunks(len(prompts), self._chunk)]
        out = [row for f in futures for row in f.result()]
        self.tasks += len(futures)
        with self._lock:
            self.stats.record(len(prompts), out, time.perf_counter() - t0)
        return out

    # -- the stream's asynchronous path ---------------------------------------------------
    def submit(self, prompt: Prompt, sampling: Sampling) -> Future[list[Completion]]:
        """One request's completions as a future. It waits in the buffer until `chunk_size`
        requests have queued or `flush()` is called: call both from the flow's thread."""
        fut: Future[list[Completion]] = Future()
        self._buffer.append((prompt, sampling, fut))
        if len(self._buffer) >= self._chunk:  # a full chunk need not wait for the flush
            self.flush()
        return fut

    def flush(self) -> None:
        """Send the buffered requests (those not cancelled) as chunk tasks of at most
        `chunk_size` requests each."""
        live = [r for r in self._buffer if not r[2].cancelled()]
        self._buffer = []
        for a, b in remote.chunks(len(live), self._chunk):
            self._send(live[a:b])

    def capacity(self, n: int = 1) -> int:
        """Requests the cluster runs at once: each worker thread runs one chunk task at a
        time, of `chunk_size` requests, whatever their `n` samples (the stream's window is a
        multiple of this). Counted once, when the stream starts; workers that join later
        take queued chunks but do not widen the window (set `run.in_flight` for a cluster
        that grows). A worker's own engine may take more at once (vLLM's batch): raise
        `[dask] chunk_size` or the threads per worker to give it more."""
        return self._cluster_threads() * self._chunk

    def _submit_task(self, requests: list[tuple[Prompt, Sampling]]):
        return complete_requests_task.submit(self._cfg, self._seed, requests)

    def _send(self, batch: list[_Request]) -> None:
        t0 = time.perf_counter()
        chunk = self._send_chunk([(prompt, sampling) for prompt, sampling, _ in batch])
        self.tasks += 1
        with self._lock:
            self._running[id(chunk)] = chunk
        chunk.add_done_callback(lambda done: self._deliver(done, batch, t0))

    def _deliver(self, done, batch: list[_Request], t0: float) -> None:
        """A chunk task ended (on Dask's callback thread): hand each request its rows, or
        the task's error (after the task's own retries) to every request of the chunk."""
        with self._lock:
            self._running.pop(id(done), None)
        try:
            rows = done.result()
            if len(rows) != len(batch):
                raise EngineError(f"{self.name}: a chunk task returned {len(rows)} rows for "
                                  f"{len(batch)} requests")
        except BaseException as exc:  # every waiter learns why
            for _, _, fut in batch:
                if fut.set_running_or_notify_cancel():
                    fut.set_exception(exc)
            return
        with self._lock:
            self.stats.record(len(batch), [r for r in rows if not isinstance(r, RequestError)],
                              time.perf_counter() - t0)
        for (_, _, fut), row in zip(batch, rows, strict=True):
            if fut.set_running_or_notify_cancel():  # not cancelled by the stream's stop
                if isinstance(row, RequestError):  # this request refused, the chunk's others answered
                    fut.set_exception(row)
                else:
                    fut.set_result(row)

    @staticmethod
    def _cluster_threads() -> int:
        """Worker threads of the flow's Dask cluster (1 without one, or before any worker joined)."""
        from prefect.context import FlowRunContext

        ctx = FlowRunContext.get()
        client = getattr(ctx.task_runner, "client", None) if ctx is not None else None
        if client is None:
            return 1
        return max(1, sum(client.nthreads().values()))

    def close(self) -> None:
        """Cancel what was never sent and the chunk tasks still out, so that none starts on a
        worker after the flow has closed the workers' engines (flows/generate.py)."""
        for _, _, fut in self._buffer:
            fut.cancel()
        self._buffer = []
        with self._lock:
            running, self._running = list(self._running.values()), {}
        for chunk in running:
            getattr(chunk, "wrapped_future", chunk).cancel()  # the Dask future under Prefect's


class FanoutJudge:
    def __init__(self, *, timeout_s: float, chunk_size: int, domain: str = "math") -> None:
        self._timeout, self._chunk, self._domain = timeout_s, chunk_size, domain
        self.tasks = 0

    def judge_many(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[Verdict]:
        work = [(ref, tuple(attempts)) for ref, attempts in items]
        futures = [judge_chunk_task.submit(self._timeout, work[a:b], self._domain)
                   for a, b in remote.chunks(len(work), self._chunk)]
        self.tasks += len(futures)
        return [v for f in futures for v in f.result()]

    def close(self) -> None:
        pass


def dask_task_runner(cfg: DaskConfig):
    """prefect-dask's DaskTaskRunner on `cfg.address`, or on a LocalCluster of cfg.n_workers."""
    from prefect_dask import DaskTaskRunner

    if cfg.address:
        return DaskTaskRunner(address=cfg.address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": cfg.n_workers, "threads_per_worker": cfg.threads_per_worker,
                                          "processes": True, "dashboard_address": None})


def close_workers(logger) -> None:
    """Close the engines and judges the flow's chunk tasks built on the Dask workers.

    Dask kills a worker that does not stop within seconds, and a killed worker would
    leave its judge's forkserver running; an engine also holds a model's memory.
    """
    try:
        from prefect_dask import get_dask_client

        with get_dask_client() as client:
            closed = client.run(remote.close_all)
        logger.info(f"closed {sum(closed.values())} engine(s)/judge(s) on {len(closed)} Dask worker(s)")
    except Exception as exc:  # noqa: BLE001 - cleanup must not mask the run's own outcome
        logger.warning(f"could not close the Dask workers' engines and judges: {exc}")
