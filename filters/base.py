"""Filters and the runner that applies them: mark first, drop later.

A filter sees a `Batch` (a pandas frame of candidate rows, plus their embeddings when a
filter needs them) and returns one `Verdict` per row: kept, or rejected with a reason and
optionally what the row matched (the copy it duplicates, the benchmark item it leaks).
Two ways to write one, in the style of datatrove:

- `predicate_filter(name, columns, fn)`: `fn(row) -> True | (False, reason)` per row;
- a `Filter` whose `fn(batch) -> Verdicts` is vectorised over the whole batch.

`run_filters` applies a list in order; each filter sees only the rows every earlier filter
kept, and every row keeps the name and reason of the filter that rejected it (nothing is
dropped before its reason is recorded). The same runner serves the per-shard filters on
the workers and the global ones (dedup, near-duplicates) on the reduced columns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Batch:
    """Rows to filter; `embeddings` (float, one row per frame row) is None when not needed."""

    frame: pd.DataFrame
    embeddings: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.frame)

    def take(self, index: np.ndarray) -> Batch:
        emb = None if self.embeddings is None else self.embeddings[index]
        return Batch(self.frame.iloc[index].reset_index(drop=True), emb)


@dataclass(frozen=True)
class Verdicts:
    """Per row: None where kept, else the reason; `matched` says what a rejected row matched."""

    reasons: np.ndarray  # object array of str | None
    matched: np.ndarray | None = None  # object array of str | None

    @classmethod
    def keep_all(cls, n: int) -> Verdicts:
        return cls(np.full(n, None, dtype=object))

    @property
    def rejected(self) -> np.ndarray:
        return np.array([r is not None for r in self.reasons], dtype=bool)


@dataclass(frozen=True)
class Filter:
    name: str
    fn: Callable[[Batch], Verdicts]

    def __call__(self, batch: Batch) -> Verdicts:
        verdicts = self.fn(batch)
        if len(verdicts.reasons) != len(batch):
            raise RuntimeError(f"filter {self.name} returned {len(verdicts.reasons)} verdicts for {len(batch)} rows")
        return verdicts


PredicateResult = bool | tuple[bool, str]


def predicate_filter(name: str, columns: Sequence[str],
                     fn: Callable[[Mapping[str, object]], PredicateResult]) -> Filter:
    """A filter from a row predicate over `columns` (True, or (False, reason))."""

    def run(batch: Batch) -> Verdicts:
        out = np.full(len(batch), None, dtype=object)
        # Missing values reach the predicate as None whatever the column's dtype (NaN, pd.NA).
        cols = [batch.frame[c].astype(object).where(batch.frame[c].notna(), None).tolist() for c in columns]
        for i, values in enumerate(zip(*cols, strict=True)):
            result = fn(dict(zip(columns, values, strict=True)))
            if result is True:
                continue
            if isinstance(result, tuple) and len(result) == 2 and result[0] is False:
                out[i] = str(result[1])
                continue
            raise TypeError(f"filter {name}: predicate must return True or (False, reason), got {result!r}")
        return Verdicts(out)

    return Filter(name, run)


@dataclass(frozen=True)
class FilterCount:
    name: str
    seen: int
    rejected: int

    @property
    def kept(self) -> int:
        return self.seen - self.rejected


@dataclass(frozen=True)
class Marks:
    """The outcome of a filter list over a batch: per row, the rejecting filter (or None)."""

    filter: np.ndarray  # object: filter name | None
    reason: np.ndarray  # object: str | None
    matched: np.ndarray  # object: str | None
    counts: tuple[FilterCount, ...]

    @property
    def kept(self) -> np.ndarray:
        return np.array([f is None for f in self.filter], dtype=bool)


def run_filters(batch: Batch, filters: Sequence[Filter]) -> Marks:
    n = len(batch)
    name = np.full(n, None, dtype=object)
    reason = np.full(n, None, dtype=object)
    matched = np.full(n, None, dtype=object)
    alive = np.arange(n)
    counts = []
    for f in filters:
        if len(alive) == 0:
            counts.append(FilterCount(f.name, 0, 0))
            continue
        sub = batch if len(alive) == n else batch.take(alive)
        verdicts = f(sub)
        hit = verdicts.rejected
        rows = alive[hit]
        name[rows] = f.name
        reason[rows] = verdicts.reasons[hit]
        if verdicts.matched is not None:
            matched[rows] = verdicts.matched[hit]
        counts.append(FilterCount(f.name, len(alive), int(hit.sum())))
        alive = alive[~hit]
    return Marks(name, reason, matched, tuple(counts))


def funnel(order: Sequence[str], rejected: Mapping[str, int], total: int) -> list[FilterCount]:
    """Per-filter counts for sequentially applied filters, from the rejections per filter."""
    out = []
    seen = total
    for f in order:
        r = int(rejected.get(f, 0))
        out.append(FilterCount(f, seen, r))
        seen -= r
    return out
