"""Engine and judge work for a remote worker process (a Dask worker, say).

A worker process receives only configs and prompts; it builds its engine and its judge
once and keeps them for later tasks (loading a model per task would cost more than the
task). `chunks` splits a call the same way on every side, and `chunk_sampling` gives
each chunk the seed offset it would have had in one call, so an engine that seeds by
prompt index (`prompt_seed`: seed + index * n) samples the same as without fan-out.
`complete_requests` runs a streamed burst instead: requests that each carry their own
sampling (and seed).
"""

from __future__ import annotations

import atexit
import dataclasses
import multiprocessing
import threading
from collections.abc import Sequence

from pipeline.config import DomainConfig, EngineConfig
from pipeline.domains import Judge, make_domain
from pipeline.domains.base import Verdict
from pipeline.engines import Completion, Engine, RequestError, Sampling, make_engine
from pipeline.engines.base import complete_each, outcome, prompt_seed
from pipeline.prompts import Prompt

_lock = threading.Lock()
_engines: dict[tuple[EngineConfig, int], Engine] = {}
_judges: dict[tuple[str, float], Judge] = {}


def worker_engine(cfg: EngineConfig, seed: int) -> Engine:
    """This process's engine for (cfg, seed), built on first use."""
    with _lock:
        key = (cfg, seed)
        if key not in _engines:
            if cfg.kind == "vllm":
                _allow_children()  # vLLM runs its engine core in a child process
            _engines[key] = make_engine(cfg, seed=seed)
        return _engines[key]


def worker_judge(timeout_s: float, domain: str = "math") -> Judge:
    """This process's judge of `domain` problems, built on first use."""
    with _lock:
        key = (domain, timeout_s)
        if key not in _judges:
            _allow_children()  # the judge's pool: a worker that hangs in math-verify must be killable
            judge = make_domain(DomainConfig(kind=domain)).new_judge(timeout_s)
            start = getattr(judge, "start", None)
            if callable(start):
                start()
            _judges[key] = judge
        return _judges[key]


def _allow_children() -> None:
    """Dask worker processes are daemonic by default, and a daemonic process may not start
    children. Both the judge's pool and vLLM's engine core are closed at exit, and their
    children exit with their parent, so lifting the flag leaves nothing behind."""
    me = multiprocessing.current_process()
    if me.daemon:
        me._config["daemon"] = False  # type: ignore[attr-defined]


@atexit.register
def close_all() -> int:
    """Close this process's judges and engines (a worker that is killed instead of exiting
    would leave its judge's forkserver behind). Returns how many were closed."""
    with _lock:
        n = len(_judges) + len(_engines)
        for judge in _judges.values():
            judge.close()
        for engine in _engines.values():
            engine.close()
        _judges.clear()
        _engines.clear()
    return n


def chunks(n: int, size: int) -> list[tuple[int, int]]:
    """(start, stop) of consecutive chunks of at most `size` over range(n)."""
    return [(i, min(n, i + size)) for i in range(0, n, size)]


def chunk_sampling(sampling: Sampling, start: int) -> Sampling:
    if sampling.seed is None or start == 0:
        return sampling
    return dataclasses.replace(sampling, seed=prompt_seed(sampling, start))


def complete_chunk(cfg: EngineConfig, seed: int, prompts: Sequence[Prompt],
                   sampling: Sampling) -> list[list[Completion]]:
    return worker_engine(cfg, seed).complete(list(prompts), sampling)


def complete_requests(cfg: EngineConfig, seed: int,
                      requests: Sequence[tuple[Prompt, Sampling]]) -> list[list[Completion] | RequestError]:
    """Each (prompt, sampling) request's completions, in order: one streamed burst. A request
    refused for its own reason has its `RequestError` in its place (the burst's others are
    answered; the caller fails that request's future with it).

    The requests of a burst carry their own seeds, so they are not one `complete` call.
    They run as the stream would run them in-process (pipeline/engines/base.py
    `submitter`): an engine with its own asynchronous path takes them all at once (vLLM's
    batch, the openai client's slots), each with its own seed; a batch-wise engine gets
    one `complete` call per distinct sampling, as BatchSubmitter does.
    """
    engine = worker_engine(cfg, seed)
    if callable(getattr(engine, "submit", None)):
        futures = [engine.submit(prompt, sampling) for prompt, sampling in requests]
        try:
            return [outcome(f) for f in futures]
        except BaseException:
            for f in futures:  # one request failed: the task fails (and retries), stop the rest
                f.cancel()
            raise
    out: list[list[Completion] | RequestError | None] = [None] * len(requests)
    groups: dict[Sampling, list[int]] = {}
    for i, (_, sampling) in enumerate(requests):
        groups.setdefault(sampling, []).append(i)
    for sampling, idx in groups.items():
        rows = complete_each(engine, [requests[i][0] for i in idx], sampling)
        for i, row in zip(idx, rows, strict=True):
            out[i] = row
    return out  # type: ignore[return-value]  # every index is in exactly one group


def judge_chunk(timeout_s: float, items: Sequence[tuple[str, Sequence[str]]], domain: str = "math") -> list[Verdict]:
    return worker_judge(timeout_s, domain).judge_many(list(items))
