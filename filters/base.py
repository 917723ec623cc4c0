"""Filters and the runner that applies them: mark first, drop later.

A filter sees a `Batch` (a pandas frame of candidate rows, plus their embeddings when a
filter needs them) and returns one verdict per row: kept, or rejected with a reason and
optionally a detail and what the row matched (the copy it duplicates, the benchmark item
it leaks). The reason is a short code from `REASONS` (countable: the dataset card counts
rejections per reason); the detail is the human text with the values ("solve rate 0.950
> 0.9"). Two ways to write a filter, in the style of datatrove:

- `predicate_filter(name, columns, fn)`: `fn(row) -> True | (False, reason[, detail])` per row;
- a `Filter` whose `fn(batch) -> Verdicts` is vectorised over the whole batch.

`run_filters` applies a list in order; each filter sees only the rows every earlier filter
kept, and every row keeps the name and reason of the filter that rejected it (nothing is
dropped before its reason is recorded). The same runner serves the per-shard filters on
the workers and the global ones (dedup, near-duplicates) on the reduced columns.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

# Every reason a row can be rejected for, and what it means (docs/export.md lists them).
REASONS: dict[str, str] = {
    "status_excluded": "candidate status not in export.statuses",
    "no_solve_rate": "never attempted: no solve rate",
    "solve_rate_below_band": "solve rate below difficulty.lo (too hard)",
    "solve_rate_above_band": "solve rate above difficulty.hi (too easy)",
    "invalid_arithmetic": "a false arithmetic claim in the reference solution",
    "invalid_final_answer": "the reference answer is not the solution's last result",
    "invalid_problem_expression": "the reference answer is not the value of the problem's expression",
    "invalid_equation": "the reference answer does not solve the problem's equation",
    "invalid_grounding": "the solution computes from numbers the problem never gave (ill-posed)",
    "invalid_unused_data": "the solution leaves out a number the problem gives",
    "invalid_dimensions": "the answer's dimension is not the one the question asks for",
    "invalid_shape": "a square given two different side lengths (ill-posed)",
    "invalid_closed_form": "the question's form gives another answer than the reference",
    "invalid_asks": "the problem asks nothing (ill-posed)",
    "invalid_syntax": "code domain: the reference or its tests are not valid Python",
    "invalid_names_function": "code domain: the reference does not define the function the problem names",
    "invalid_tests_call": "code domain: fewer than 2 tests, or a test that does not call the function",
    "invalid_reference_passes": "code domain: the reference fails its own tests in the sandbox",
    "invalid_tests_discriminate": "code domain: the tests pass a function that returns None",
    "invalid_verifier": "the verifier's majority answer contradicts the reference",
    "invalid_other": "marked invalid by a validity check of another name",
    "reference_disputed": "the reference answer disagrees with the solver majority",
    "no_solver_majority": "no solver majority to check the reference answer against",
    "no_sft_pair": "no SFT pair from the configured sources",
    "no_embedding": "no stored embedding",
    "benchmark_leak": "n-gram overlap or embedding cosine with a benchmark item",
    "exact_duplicate": "same normalised problem as a better row",
    "near_duplicate": "embedding cosine with a better kept row at or above near_dup.threshold",
    "per_problem_cap": "pair past max_per_problem",
    "per_cell_cap": "pair past max_per_cell",
    "over_budget": "pair past the budget",
}


_CODE = re.compile(r"[a-z][a-z0-9_]*")


def check_reasons(name: str, reasons: np.ndarray) -> None:
    """A reason is a code (snake_case, like those of REASONS), never text with values in it:
    values belong in the detail, or every row would count as a reason of its own."""
    bad = sorted({r for r in reasons.tolist() if r is not None and not _CODE.fullmatch(str(r))})
    if bad:
        raise RuntimeError(f"filter {name}: a reason must be a snake_case code such as 'no_solve_rate' (the "
                           f"values go in the detail); got {bad[0]!r}")


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
    """Per row: None where kept, else the reason (a REASONS code); `matched` says what a
    rejected row matched, `details` the human text."""

    reasons: np.ndarray  # object array of str | None
    matched: np.ndarray | None = None  # object array of str | None
    details: np.ndarray | None = None  # object array of str | None

    @classmethod
    def keep_all(cls, n: int) -> Verdicts:
        return cls(np.full(n, None, dtype=object))

    @classmethod
    def of(cls, n: int) -> Verdicts:
        """All kept, with room for reasons, matches and details (filled in by the filter)."""
        return cls(np.full(n, None, dtype=object), np.full(n, None, dtype=object), np.full(n, None, dtype=object))

    def reject(self, i: int, reason: str, detail: str | None = None, matched: str | None = None) -> None:
        self.reasons[i] = reason
        if detail is not None:
            self.details[i] = detail  # type: ignore[index]
        if matched is not None:
            self.matched[i] = matched  # type: ignore[index]

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
        check_reasons(self.name, verdicts.reasons)
        return verdicts


PredicateResult = bool | tuple[bool, str] | tuple[bool, str, str]


def predicate_filter(name: str, columns: Sequence[str],
                     fn: Callable[[Mapping[str, object]], PredicateResult]) -> Filter:
    """A filter from a row predicate over `columns` (True, or (False, reason[, detail]))."""

    def run(batch: Batch) -> Verdicts:
        out = Verdicts.of(len(batch))
        # Missing values reach the predicate as None whatever the column's dtype (NaN, pd.NA).
        cols = [batch.frame[c].astype(object).where(batch.frame[c].notna(), None).tolist() for c in columns]
        for i, values in enumerate(zip(*cols, strict=True)):
            result = fn(dict(zip(columns, values, strict=True)))
            if result is True:
                continue
            if isinstance(result, tuple) and len(result) in (2, 3) and result[0] is False:
                out.reject(i, str(result[1]), str(result[2]) if len(result) == 3 else None)
                continue
            raise TypeError(f"filter {name}: predicate must return True or (False, reason[, detail]), got {result!r}")
        return out

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
    reason: np.ndarray  # object: a REASONS code | None
    detail: np.ndarray  # object: str | None
    matched: np.ndarray  # object: str | None
    counts: tuple[FilterCount, ...]

    def reason_counts(self) -> dict[tuple[str, str], int]:
        """Rejected rows per (filter, reason)."""
        return reason_counts(self.filter, self.reason)

    @property
    def kept(self) -> np.ndarray:
        return np.array([f is None for f in self.filter], dtype=bool)


def run_filters(batch: Batch, filters: Sequence[Filter]) -> Marks:
    n = len(batch)
    name = np.full(n, None, dtype=object)
    reason = np.full(n, None, dtype=object)
    detail = np.full(n, None, dtype=object)
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
        if verdicts.details is not None:
            detail[rows] = verdicts.details[hit]
        if verdicts.matched is not None:
            matched[rows] = verdicts.matched[hit]
        counts.append(FilterCount(f.name, len(alive), int(hit.sum())))
        alive = alive[~hit]
    return Marks(name, reason, detail, matched, tuple(counts))


def reason_counts(filters: np.ndarray, reasons: np.ndarray) -> dict[tuple[str, str], int]:
    """Rows per (filter, reason) over the rejected rows (filter not None)."""
    out: dict[tuple[str, str], int] = {}
    for f, r in zip(filters.tolist(), reasons.tolist(), strict=True):
        if f is not None:
            out[(f, r)] = out.get((f, r), 0) + 1
    return out


def funnel(order: Sequence[str], rejected: Mapping[str, int], total: int) -> list[FilterCount]:
    """Per-filter counts for sequentially applied filters, from the rejections per filter."""
    out = []
    seen = total
    for f in order:
        r = int(rejected.get(f, 0))
        out.append(FilterCount(f, seen, r))
        seen -= r
    return out
