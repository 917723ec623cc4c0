"""Seed sources: the bundled set, local JSONL/Parquet files, or `datasets` datasets.

A column mapping (problem, solution, answer, optional skill) turns any source into
`Seed` records. Every check runs before any model work: a missing mapped column fails
with a message naming the column and the source; a bad row names where it is in the
source, by the source's own numbering counted from 1 (`line N` of a JSONL file, `row N`
of a Parquet file or dataset split). A problem, solution or answer longer than
`seeds.max_chars` characters is refused: one such row would fill every prompt it is put in.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import SeedsConfig
from pipeline.store.records import normalize_text

# Package data (written by data/make_seeds.py), so an installed package finds them.
BUNDLED_DATA = Path(__file__).resolve().parents[1] / "data"
BUNDLED_SEEDS = BUNDLED_DATA / "seeds" / "seeds.jsonl"
BUNDLED_EVAL = BUNDLED_DATA / "eval" / "heldout.jsonl"
# The code domain's (pipeline/domains/code/__init__.py): function specifications with reference
# implementations and assert-line tests, written for this project (data/make_code_seeds.py).
BUNDLED_CODE_SEEDS = BUNDLED_DATA / "seeds" / "code.jsonl"
BUNDLED_CODE_EVAL = BUNDLED_DATA / "eval" / "code_heldout.jsonl"
BUNDLED_SOURCES = {"bundled": BUNDLED_SEEDS, "bundled-eval": BUNDLED_EVAL, "bundled-code": BUNDLED_CODE_SEEDS,
                   "bundled-code-eval": BUNDLED_CODE_EVAL}


class SeedError(ValueError):
    """Seeds that cannot be used; the message names the source and what is wrong.

    `source` and `detail` are the two halves of the message, for callers that read other
    sources (eval sets, benchmarks) through this module and name them their own way.
    """

    def __init__(self, source: str, detail: str) -> None:
        super().__init__(f"seed source {source}: {detail}")
        self.source, self.detail = source, detail

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # picklable across processes (Dask, Prefect)
        return type(self), (self.source, self.detail)


@dataclass(frozen=True)
class Seed:
    problem: str
    solution: str
    answer: str
    skill: str | None
    index: int  # position among the source's rows, from 0


def resolve_source(source: str) -> str:
    return str(BUNDLED_SOURCES[source]) if source in BUNDLED_SOURCES else source


def _read_jsonl(path: Path) -> list[tuple[str, dict[str, Any]]]:
    rows = []
    try:
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise SeedError(str(path), f"line {lineno} is not valid JSON ({exc.msg})") from None
                except ValueError as exc:  # e.g. an integer past Python's 4300-digit limit
                    raise SeedError(str(path), f"line {lineno} cannot be read ({exc})") from None
                if not isinstance(row, dict):
                    raise SeedError(str(path), f"line {lineno} is not a JSON object")
                rows.append((f"line {lineno}", row))
    except UnicodeDecodeError as exc:
        raise SeedError(str(path), f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return rows


def _numbered(rows: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(f"row {n}", row) for n, row in enumerate(rows, 1)]


def _with_optional(available: list[str], columns: list[str], optional: Sequence[str]) -> list[str]:
    return [*columns, *(c for c in optional if c and c in available and c not in columns)]


def _read_parquet(path: Path, columns: list[str], optional: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
        _require_columns(schema.names, columns, str(path))
        table = pq.read_table(path, columns=_with_optional(schema.names, columns, optional))
        return _numbered(table.to_pylist())
    except (pa.ArrowException, OSError) as exc:
        raise SeedError(str(path), f"cannot read Parquet ({exc})") from None


def _read_hf(name: str, split: str, subset: str, columns: list[str],
             optional: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
    import datasets

    try:
        ds = datasets.load_dataset(name, subset or None, split=split)
    except Exception as exc:  # datasets raises many types (network, missing config, ...)
        raise SeedError(f"hf:{name} (split {split!r})", f"cannot load ({exc})") from None
    _require_columns(ds.column_names, columns, f"hf:{name}")
    return _numbered(ds.select_columns(_with_optional(ds.column_names, columns, optional)).to_list())


def _require_columns(available: list[str], needed: list[str], source: str) -> None:
    for col in needed:
        if col not in available:
            raise SeedError(str(source), f"no column {col!r} "
                            f"(available: {', '.join(map(repr, available)) or 'none'})")  # repr: one line


def read_rows(source: str, columns: list[str], *, split: str = "train", subset: str = "",
              optional: Sequence[str] = ()) -> list[tuple[str, dict[str, Any]]]:
    """The rows of a seed-style source, each with where it sits in the source.

    `source` is one of BUNDLED_SOURCES ("bundled", "bundled-eval", "bundled-code", ...), a
    .jsonl or .parquet path, or hf:NAME (loaded with `split` and `subset`). `columns` must
    exist (checked on the first JSONL row, on the schema of the others); the `optional`
    columns are read where present (a JSONL row keeps all its keys; later rows are not
    checked: the caller does). Returns (where, row) pairs in source order: where is the
    source's own numbering, "line N" of a JSONL file
    (blank lines count, as in an editor) or "row N" of a Parquet file or dataset split,
    both counted from 1. Raises SeedError naming the source. An empty JSONL file gives [].
    """
    resolved = resolve_source(source)
    if resolved.startswith("hf:"):
        return _read_hf(resolved[3:], split, subset, columns, optional)
    path = Path(resolved)
    if not path.is_file():
        raise SeedError(str(resolved), "file not found")
    if path.suffix == ".jsonl":
        rows = _read_jsonl(path)
        if rows:
            _require_columns(list(rows[0][1].keys()), columns, resolved)
        return rows
    if path.suffix == ".parquet":
        return _read_parquet(path, columns, optional)
    raise SeedError(str(resolved), "expected a .jsonl or .parquet file or hf:NAME")


def load_seeds(cfg: SeedsConfig) -> list[Seed]:
    """Load and validate seeds; raise SeedError naming the source (and the row: see read_rows)."""
    source = resolve_source(cfg.source)
    columns = [cfg.problem, cfg.solution, cfg.answer]  # the skill column is optional
    rows = read_rows(cfg.source, columns, split=cfg.split, optional=[cfg.skill])
    seeds = []
    for i, (where, row) in enumerate(rows):
        for col in columns:
            if col not in row:
                raise SeedError(str(source), f"{where} has no column {col!r}")
        problem, solution, answer = row[cfg.problem], row[cfg.solution], row[cfg.answer]
        if isinstance(answer, int | float) and not isinstance(answer, bool):
            answer = str(answer)
        for col, value in ((cfg.problem, problem), (cfg.answer, answer)):
            if not isinstance(value, str) or not value.strip():
                raise SeedError(str(source), f"{where} column {col!r} must be a "
                                f"non-empty string, got {value!r}")
        if solution is None:
            solution = ""
        if not isinstance(solution, str):
            raise SeedError(str(source), f"{where} column {cfg.solution!r} must be a "
                            f"string, got {type(solution).__name__}")
        for col, value in ((cfg.problem, problem), (cfg.solution, solution), (cfg.answer, answer)):
            if len(value) > cfg.max_chars:
                raise SeedError(str(source), f"{where} column {col!r} is {len(value):,} characters long, over the "
                                             f"limit of {cfg.max_chars:,} (seeds.max_chars)")
            try:  # JSON's \ud800 escapes decode to lone surrogates, which Parquet cannot store
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise SeedError(str(source), f"{where} column {col!r} is not valid Unicode "
                                f"text ({exc.reason} at character {exc.start})") from None
        skill = row.get(cfg.skill) if cfg.skill else None  # optional: absent -> None
        seeds.append(Seed(problem.strip(), solution.strip(), answer.strip(),
                          str(skill) if skill is not None else None, i))
        if cfg.limit and len(seeds) >= cfg.limit:
            break
    if not seeds:
        raise SeedError(str(source), "no rows")
    return seeds


def summarize(seeds: list[Seed]) -> dict[str, Any]:
    """Counts a user wants before a campaign: size, duplicates, skills, lengths."""
    norm = Counter(normalize_text(s.problem) for s in seeds)
    lengths = sorted(len(s.problem) for s in seeds)
    return {
        "rows": len(seeds),
        "duplicate_problems": sum(c - 1 for c in norm.values() if c > 1),
        "empty_solutions": sum(1 for s in seeds if not s.solution),
        "skills": dict(Counter(s.skill or "(none)" for s in seeds).most_common()),
        "problem_chars_median": lengths[len(lengths) // 2],
        "problem_chars_max": lengths[-1],
    }
