"""Where the dask graphs run: a distributed cluster, local processes, threads or in-process.

The export's result does not depend on the choice (tests/unit/filters/test_export.py compares a
LocalCluster run with an in-process one): every per-shard task is a pure function of its
shard and plan, and the reduce step runs in the driver on partitions collected in order.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any

import dask
import dask.dataframe as dd
import pandas as pd


@contextmanager
def compute_context(scheduler: str, workers: int, address: str | None) -> Iterator[dict[str, Any]]:
    """Keyword arguments for `.compute()`, valid for the duration of the context."""
    if address:
        from distributed import Client

        try:
            client = Client(address, set_as_default=False, timeout="20s")
        except OSError as exc:
            from filters.errors import ExportInputError

            raise ExportInputError(f"dask scheduler {address}: cannot connect ({exc})") from None
        with client:
            yield {"scheduler": client}
        return
    n = workers or os.cpu_count() or 1
    if scheduler == "sync":
        yield {"scheduler": "sync"}
    elif scheduler == "threads":
        yield {"scheduler": "threads", "num_workers": n}
    else:
        # One pool for all the export's graphs (dask would start one per compute); spawn, so
        # workers never inherit the driver's threads or its faiss/OpenMP state.
        with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn")) as pool:
            yield {"scheduler": "processes", "pool": pool, "num_workers": n}


def map_partitions_list(func: Any, items: list[Any], meta: pd.DataFrame, ctx: dict[str, Any], *extra: list[Any],
                        **kwargs: Any) -> list[pd.DataFrame]:
    """`func(item, *extra_items, **kwargs)` per shard as a dask dataframe; its partitions, in order.

    The partitions come back one by one: `.compute()` would concatenate them in a worker
    first and ship the whole frame over (twice the memory), and a caller may want to take
    a column out of each before concatenating (the scan's embeddings)."""
    if not items:
        return []
    frame = dd.from_map(func, items, *extra, meta=meta, enforce_metadata=False, **kwargs)
    return list(dask.compute(*frame.to_delayed(), **ctx))


def map_shards(func: Any, items: list[Any], meta: pd.DataFrame, ctx: dict[str, Any], *extra: list[Any],
               **kwargs: Any) -> pd.DataFrame:
    """`map_partitions_list`, concatenated."""
    parts = map_partitions_list(func, items, meta, ctx, *extra, **kwargs)
    return pd.concat(parts, ignore_index=True) if parts else meta.copy()
