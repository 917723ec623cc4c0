"""A process pool that runs a function on items, each within a time limit.

Work that can run for minutes on a bad input (sympy on adversarial LaTeX; later, generated
code) runs in worker processes, where it can be stopped: a thread cannot be. `run_many`
submits at most `max_workers` items at a time, so an item's deadline measures its own run,
not its wait in a queue.

- An item past `timeout_s` gets `on_timeout(item)`; the pool is restarted (its workers are
  killed: `shutdown` cannot stop a busy one), and the items in flight beside it run again,
  but for those within NEAR_DEADLINE of their own limit, which are charged a timeout too.
- A worker crash (`BrokenProcessPool`) names no culprit: every item in flight at the crash
  becomes a suspect and runs again alone, and an item is charged (`on_timeout`) only for a
  crash while it ran alone, after an earlier crash too. An item merely beside the culprit
  keeps its real result.
- Workers start from a forkserver with `preload` imported (a restart costs milliseconds,
  not the imports), or by spawn where there is no forkserver; the pool probes every worker
  before it takes work, so start-up is never charged to an item. The forkserver and the
  workers die with this process, however it dies (pipeline/runtime/lifeline.py).

`fn`, `initializer` and the items must be picklable by reference: module-level functions
and plain data. Calls from several threads are serialised (a restart kills every worker).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Generic, TypeVar

from pipeline.runtime.lifeline import watch

R = TypeVar("R")
# At a timeout's restart, an item beside the culprit with at most this share of its time left
# is charged a timeout too rather than run again (see run_many).
NEAR_DEADLINE = 0.1


class TimedPool(Generic[R]):
    def __init__(self, fn: Callable[..., R], *, max_workers: int = 2, timeout_s: float = 10.0,
                 startup_timeout_s: float = 120.0, initializer: Callable[[], None] | None = None,
                 preload: Sequence[str] = (), name: str = "pool") -> None:
        if not isinstance(max_workers, int) or isinstance(max_workers, bool) or max_workers < 1:
            raise ValueError(f"max_workers must be an int >= 1, got {max_workers!r}")
        if not isinstance(timeout_s, int | float) or not timeout_s > 0:
            raise ValueError(f"timeout_s must be a number > 0 (seconds per item), got {timeout_s!r}")
        if not isinstance(startup_timeout_s, int | float) or not startup_timeout_s > 0:
            raise ValueError(f"startup_timeout_s must be a number > 0, got {startup_timeout_s!r}")
        self.fn = fn
        self.max_workers = max_workers
        self.timeout_s = float(timeout_s)
        self.startup_timeout_s = float(startup_timeout_s)
        self.initializer = initializer
        self.preload = tuple(preload)
        self.name = name
        self.executor: ProcessPoolExecutor | None = None
        self.restarts = 0  # restarts after timeouts or crashes, for monitoring
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start and warm the workers if they are not running."""
        with self._lock:
            if self.executor is None:
                self.executor = self._new_pool()

    def close(self) -> None:
        """Stop the workers (killing any still busy)."""
        with self._lock:
            if self.executor is not None:
                kill_pool(self.executor)
                self.executor = None

    def run_many(self, items: Sequence[tuple[Any, ...]], on_timeout: Callable[..., R]) -> list[R]:
        """`fn(*item)` for every item, in order, each within `timeout_s` (see the module doc)."""
        results: list[R | None] = [None] * len(items)
        done_flags = [False] * len(items)
        crashes = [0] * len(items)
        suspects: set[int] = set()
        with self._lock:
            if self.executor is None:
                self.executor = self._new_pool()
            elif getattr(self.executor, "_broken", False):
                # Workers died while idle; restart now, as a submit would.
                self._restart()
            pending = deque(range(len(items)))
            in_flight: dict[Future, tuple[int, float]] = {}

            def settle(i: int, value: R) -> None:
                results[i], done_flags[i] = value, True

            while pending or in_flight:
                while pending and len(in_flight) < self.max_workers:
                    i = pending[0]
                    # A suspect runs alone, so a crash while it runs is its own.
                    if in_flight and (i in suspects or any(j in suspects for j, _ in in_flight.values())):
                        break
                    pending.popleft()
                    in_flight[self._submit(items[i])] = (i, time.monotonic() + self.timeout_s)
                nearest = min(deadline for _, deadline in in_flight.values())
                alone = len(in_flight) == 1
                done, _ = wait(in_flight, timeout=max(0.0, nearest - time.monotonic()), return_when=FIRST_COMPLETED)
                broken = False
                for future in done:
                    i, _ = in_flight.pop(future)
                    try:
                        settle(i, future.result())
                    except BrokenProcessPool:
                        # A worker died (its item crashed it, or the OOM killer chose it).
                        broken = True
                        crashes[i] += 1
                        if alone and crashes[i] >= 2:
                            settle(i, on_timeout(*items[i]))
                        else:
                            suspects.add(i)
                            pending.appendleft(i)
                now = time.monotonic()
                expired = [f for f, (_, d) in in_flight.items() if d <= now and not f.done()]
                if expired:
                    # The restart kills the workers beside the culprit too, and their items
                    # run again from scratch. One that has used nearly all of its time (it
                    # was submitted a moment later: on a loaded machine the second of two
                    # timed-out items missed the first's deadline by a few ms and ran a whole
                    # second time) is charged now instead of costing another full limit.
                    grace = NEAR_DEADLINE * self.timeout_s
                    expired += [f for f, (_, d) in in_flight.items()
                                if f not in expired and not f.done() and d - now <= grace]
                for future in expired:
                    i, _ = in_flight.pop(future)
                    settle(i, on_timeout(*items[i]))
                if expired or broken:
                    for i, _ in in_flight.values():
                        if broken:  # in flight at the crash: as suspect as the rest
                            suspects.add(i)
                        pending.appendleft(i)
                    in_flight.clear()
                    self._restart()
        if not all(done_flags):
            raise RuntimeError(f"{self.name}: lost items: {sum(done_flags)} results for {len(items)} items")
        return results  # type: ignore[return-value]  # every slot was settled

    def _submit(self, item: tuple[Any, ...]) -> Future:
        assert self.executor is not None
        try:
            return self.executor.submit(self.fn, *item)
        except BrokenProcessPool:
            # A worker died while idle (e.g. the OOM killer chose it for another process's
            # memory); nothing of ours was running.
            self._restart()
            return self.executor.submit(self.fn, *item)

    def _restart(self) -> None:
        if self.executor is not None:
            kill_pool(self.executor)
            self.executor = None
        self.restarts += 1
        self.executor = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        watch()  # the forkserver and its workers die with this process, however it dies
        executor = ProcessPoolExecutor(max_workers=self.max_workers, mp_context=mp_context(self.preload),
                                       initializer=self.initializer)
        # Workers are created lazily and initialised on their own schedule; probe until
        # every one has answered, so no item's time limit is spent on a worker's start-up.
        deadline = time.monotonic() + self.startup_timeout_s
        seen: set[int] = set()
        try:
            while len(seen) < self.max_workers:
                probes = [executor.submit(worker_pid) for _ in range(self.max_workers)]
                try:
                    for probe in probes:
                        remaining = deadline - time.monotonic()
                        seen.add(probe.result(timeout=max(remaining, 0.001)))
                    if time.monotonic() > deadline and len(seen) < self.max_workers:
                        raise TimeoutError
                except TimeoutError:
                    raise TimeoutError(
                        f"{self.name} workers did not start within {self.startup_timeout_s} s "
                        f"({len(seen)} of {self.max_workers} answered); expected about a second") from None
        except BaseException:
            kill_pool(executor)
            raise
        return executor


def worker_pid() -> int:
    time.sleep(0.01)  # long enough that one idle worker cannot take every probe
    return os.getpid()


def mp_context(preload: Sequence[str]) -> multiprocessing.context.BaseContext:
    # forkserver: workers fork from a clean single-threaded server process, never from the
    # orchestrator (fork would copy its threads' held locks and any CUDA state:
    # deadlock-prone), and with the heavy modules preloaded into the server a worker
    # (re)start costs milliseconds instead of the imports that spawn pays on every restart
    # after a timeout. The preload list is process-global and only applies if the server
    # is not running yet; if it is, workers still work, just start slower.
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([m for m in preload if m != "__main__"])
    return ctx


def kill_pool(executor: ProcessPoolExecutor) -> None:
    # shutdown() does not stop a worker that is busy, so kill the processes themselves.
    # _processes is private, but it is the only handle on them; it is None after
    # shutdown, so read it first.
    processes = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.kill()
    for process in processes:
        process.join(timeout=5)
