"""Fan-out of engine calls and verification as Prefect tasks (for a DaskTaskRunner).

`FanoutEngine` and `FanoutJudge` stand in for the campaign's engine and judge: each
call is cut into chunks of `chunk_size` prompts (or problems), every chunk is a task
submitted to the flow's task runner, and the results come back in order. With
prefect-dask's DaskTaskRunner the chunks run on the cluster's workers, each of which
builds its own engine and judge once (pipeline/remote.py). Parent selection, parsing,
embedding, the archive and the commit stay in the flow: one writer per run directory.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from prefect import task
from prefect.cache_policies import NO_CACHE

from pipeline import remote
from pipeline.answers import Verdict
from pipeline.config import DaskConfig, EngineConfig
from pipeline.engines import Completion, EngineStats, Sampling
from pipeline.models import EMBEDDED, EMBEDDED_NAME
from pipeline.prompts import Prompt


@task(name="complete-chunk", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def complete_chunk_task(cfg: EngineConfig, seed: int, prompts: list[Prompt],
                        sampling: Sampling) -> list[list[Completion]]:
    return remote.complete_chunk(cfg, seed, prompts, sampling)


@task(name="verify-chunk", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE)
def judge_chunk_task(timeout_s: float, items: list[tuple[str, tuple[str, ...]]]) -> list[Verdict]:
    return remote.judge_chunk(timeout_s, items)


class FanoutEngine:
    def __init__(self, cfg: EngineConfig, *, seed: int, chunk_size: int) -> None:
        self._cfg, self._seed, self._chunk = cfg, seed, chunk_size
        # The name the workers' engines give their rows, so fanned-out rows read the same.
        model = EMBEDDED_NAME if cfg.model == EMBEDDED and cfg.kind in ("vllm", "transformers") else cfg.model
        self.name = f"{cfg.kind}:{model}" if cfg.kind != "scripted" else "scripted"
        self.stats = EngineStats()
        self.tasks = 0

    def complete(self, prompts: Sequence[Prompt], sampling: Sampling) -> list[list[Completion]]:
        t0 = time.perf_counter()
        prompts = list(prompts)
        futures = [complete_chunk_task.submit(self._cfg, self._seed, prompts[a:b],
                                              remote.chunk_sampling(sampling, a))
                   for a, b in remote.chunks(len(prompts), self._chunk)]
        out = [row for f in futures for row in f.result()]
        self.tasks += len(futures)
        self.stats.record(len(prompts), out, time.perf_counter() - t0)
        return out

    def close(self) -> None:
        pass


class FanoutJudge:
    def __init__(self, *, timeout_s: float, chunk_size: int) -> None:
        self._timeout, self._chunk = timeout_s, chunk_size
        self.tasks = 0

    def judge_many(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[Verdict]:
        work = [(ref, tuple(attempts)) for ref, attempts in items]
        futures = [judge_chunk_task.submit(self._timeout, work[a:b])
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
