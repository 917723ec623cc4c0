"""Benchmark sets for decontamination: local .jsonl/.parquet files or `datasets` names.

The project's held-out eval split is always one of them. A missing file, an unreadable
file or a missing column raises `ExportInputError` naming the file and the column.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filters.config import HELDOUT_NAME, BenchmarkSpec
from filters.errors import ExportInputError
from pipeline.seeds import BUNDLED_EVAL


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


def heldout_spec() -> BenchmarkSpec:
    return BenchmarkSpec(name=HELDOUT_NAME, source=str(BUNDLED_EVAL), column="problem")


def _where(spec: BenchmarkSpec) -> str:
    return f"benchmark {spec.name!r} ({spec.source})"


def _missing_column(spec: BenchmarkSpec, available: list[str]) -> ExportInputError:
    return ExportInputError(f"{_where(spec)}: no column {spec.column!r} (available: {', '.join(available) or 'none'})")


def _read_jsonl(spec: BenchmarkSpec, path: Path) -> list[dict[str, Any]]:
    rows = []
    try:
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ExportInputError(f"{_where(spec)}: line {lineno} is not valid JSON ({exc.msg})") from None
                if not isinstance(row, dict):
                    raise ExportInputError(f"{_where(spec)}: line {lineno} is not a JSON object")
                if spec.column not in row:
                    raise _missing_column(spec, list(row)) if not rows else ExportInputError(
                        f"{_where(spec)}: line {lineno} has no column {spec.column!r}")
                rows.append(row)
    except UnicodeDecodeError as exc:
        raise ExportInputError(f"{_where(spec)}: not UTF-8 text ({exc.reason})") from None
    return rows


def _read_parquet(spec: BenchmarkSpec, path: Path) -> list[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
        if spec.column not in names:
            raise _missing_column(spec, names)
        columns = [spec.column] + (["id"] if "id" in names and spec.column != "id" else [])
        return pq.read_table(path, columns=columns).to_pylist()
    except (pa.ArrowException, OSError) as exc:
        raise ExportInputError(f"{_where(spec)}: cannot read Parquet ({exc})") from None


def _read_hf(spec: BenchmarkSpec) -> list[dict[str, Any]]:
    import datasets

    name = spec.source[3:]
    try:
        ds = datasets.load_dataset(name, spec.subset or None, split=spec.split)
    except Exception as exc:  # datasets raises many types (network, missing config, bad split, ...)
        raise ExportInputError(f"{_where(spec)} split {spec.split!r}: cannot load ({exc})") from None
    if spec.column not in ds.column_names:
        raise _missing_column(spec, ds.column_names)
    columns = [spec.column] + (["id"] if "id" in ds.column_names and spec.column != "id" else [])
    return ds.select_columns(columns).to_list()


def load_benchmark(spec: BenchmarkSpec) -> BenchmarkSet:
    if spec.source.startswith("hf:"):
        rows = _read_hf(spec)
    else:
        path = Path(spec.source)
        if not path.is_file():
            raise ExportInputError(f"{_where(spec)}: file not found")
        if path.suffix == ".jsonl":
            rows = _read_jsonl(spec, path)
        elif path.suffix == ".parquet":
            rows = _read_parquet(spec, path)
        else:
            raise ExportInputError(f"{_where(spec)}: expected a .jsonl or .parquet file or hf:NAME")
    items, empty = [], 0
    for i, row in enumerate(rows):
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


def load_benchmarks(specs: tuple[BenchmarkSpec, ...]) -> list[BenchmarkSet]:
    """The held-out split first, then the configured sets."""
    return [load_benchmark(s) for s in (heldout_spec(), *specs)]
