"""Benchmark sets for decontamination: local .jsonl/.parquet files or `datasets` names.

The project's held-out eval split is always one of them. A missing file, an unreadable
file or a missing column raises `ExportInputError` naming the file and the column.
"""

from __future__ import annotations

from dataclasses import dataclass

from filters.config import HELDOUT_NAME, BenchmarkSpec
from filters.errors import ExportInputError
from pipeline.store.seeds import BUNDLED_CODE_EVAL, BUNDLED_EVAL, SeedError, read_rows


@dataclass(frozen=True)
class BenchItem:
    benchmark: str
    item_id: str
    text: str


@dataclass(frozen=True)
class BenchmarkSet:
    name: str
    source: str
    items: tuple[BenchItem, ...]
    empty_rows: int  # rows whose problem was null or blank (counted in the card, not matched)


def heldout_spec(domain: str = "math") -> BenchmarkSpec:
    """The bundled held-out split of a domain's problems (math: pipeline/data/eval/heldout.jsonl;
    code: code_heldout.jsonl, named "code-heldout")."""
    if domain == "code":
        return BenchmarkSpec(name=f"code-{HELDOUT_NAME}", source=str(BUNDLED_CODE_EVAL), column="problem")
    return BenchmarkSpec(name=HELDOUT_NAME, source=str(BUNDLED_EVAL), column="problem")


def _where(spec: BenchmarkSpec) -> str:
    return f"benchmark {spec.name!r} ({spec.source})"


def load_benchmark(spec: BenchmarkSpec) -> BenchmarkSet:
    try:  # the seed reader: the same formats, numbering and column checks as `sparq seeds`
        rows = read_rows(spec.source, [spec.column], split=spec.split, subset=spec.subset, optional=["id"])
    except SeedError as exc:
        raise ExportInputError(f"{_where(spec)}: {exc.detail}") from None
    items, empty = [], 0
    for i, (where, row) in enumerate(rows):
        if spec.column not in row:
            raise ExportInputError(f"{_where(spec)}: {where} has no column {spec.column!r}")
        value = row[spec.column]
        text = value if isinstance(value, str) else (None if value is None else str(value))
        if not text or not text.strip():
            empty += 1
            continue
        item_id = str(row["id"]) if row.get("id") is not None else str(i)
        items.append(BenchItem(spec.name, item_id, text.strip()))
    if not items:
        raise ExportInputError(f"{_where(spec)}: no non-empty {spec.column!r} values")
    return BenchmarkSet(spec.name, spec.source, tuple(items), empty)


def load_benchmarks(specs: tuple[BenchmarkSpec, ...], domains: tuple[str, ...] = ("math",)) -> list[BenchmarkSet]:
    """The held-out split of each domain exported first, then the configured sets."""
    return [load_benchmark(s) for s in (*(heldout_spec(d) for d in domains), *specs)]
