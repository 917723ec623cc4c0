"""The dataset card (OUT/README.md): what went in, what every filter did, what came out.

Pure formatting of a `CardData`; the YAML header lets `datasets.load_dataset(OUT)` find
the `default` (data/) and `rejected` (rejected/) configurations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from filters.base import REASONS, FilterCount
from filters.shards import Skipped

_BAR = 40
_HIT_ROWS = 50
_CELL_ROWS = 20


@dataclass(frozen=True)
class DecontamHit:
    problem: str
    matched: str
    detail: str  # the filter's detail: "leaks BENCH item ID: n-gram overlap ..., cosine ..."


@dataclass(frozen=True)
class CardData:
    runs: Sequence[tuple[str, int, int]]  # (path, committed step, shards exported)
    candidates: int  # candidate rows read
    funnel: Sequence[FilterCount]  # candidate-level filters, in order
    pair_funnel: Sequence[FilterCount]  # selection over pairs: caps, budget
    reasons: Sequence[tuple[str, str, int]]  # (filter, reason, rejected rows) of every rejection
    data_rows: int
    rejected_rows: int
    sources: dict[str, int]
    cells: dict[str, int]  # output rows per cell label
    centroid_sets: int
    solve_rates: np.ndarray  # of the output rows
    benchmarks: Sequence[tuple[str, str, int, int]]  # (name, source, items, empty rows)
    hits_by_benchmark: dict[str, int]
    hits: Sequence[DecontamHit]  # a sample, for the table
    skipped: Sequence[Skipped]
    ignored: Sequence[str]
    selection: str
    budget: int
    config_toml: str
    seconds: dict[str, float] = field(default_factory=dict)


def _md(text: str, limit: int = 120) -> str:
    text = " ".join(str(text).split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("|", "\\|")


def histogram(values: np.ndarray, bins: int = 10) -> str:
    """A text histogram of values in [0, 1], one line per bin."""
    counts, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
    top = max(1, int(counts.max()) if len(counts) else 1)
    lines = []
    for c, lo, hi in zip(counts, edges[:-1], edges[1:], strict=True):
        close = "]" if hi == 1.0 else ")"
        lines.append(f"[{lo:.1f}, {hi:.1f}{close} {int(c):>8} {'#' * round(_BAR * c / top)}")
    return "\n".join(lines)


def _cells(cells: dict[str, int], centroid_sets: int) -> list[str]:
    if not cells:
        return ["No output rows."]
    counts = np.array(sorted(cells.values()))
    out = [f"{len(cells)} cells hold output rows; rows per cell: min {counts.min()}, median "
           f"{int(np.median(counts))}, max {counts.max()}."]
    if centroid_sets > 1:
        out.append(f"The runs use {centroid_sets} different centroid sets, so a cell is labelled "
                   "`set:cell` (cells of different sets are different niches).")
    out += ["", "Rows per cell, as a histogram of cell sizes:", "", "```"]
    sizes, freq = np.unique(counts, return_counts=True)
    top = int(freq.max())
    out += [f"{int(s):>6} rows: {int(f):>6} cells {'#' * round(_BAR * f / top)}" for s, f in zip(sizes, freq,
                                                                                               strict=True)]
    out += ["```", "", f"Largest {min(_CELL_ROWS, len(cells))} cells:", "", "| cell | rows |", "|---|---|"]
    for label, c in sorted(cells.items(), key=lambda kv: (-kv[1], kv[0]))[:_CELL_ROWS]:
        out.append(f"| {label} | {c} |")
    return out


def _reasons(d: CardData) -> list[str]:
    """Rejected rows per reason, in funnel order (filters as applied, then the selection)."""
    if not d.reasons:
        return ["No rows were rejected."]
    order = {f.name: i for i, f in enumerate(d.funnel)} | {"selection": len(d.funnel)}
    codes = list(REASONS)
    rows = sorted(d.reasons, key=lambda t: (order.get(t[0], len(order)), codes.index(t[1]) if t[1] in codes
                                            else len(codes), t[1]))
    out = ["Every rejected row (and every pair the selection cut) has one reason, in the `filter_reason` "
           "column of `rejected/`; `filter_detail` holds the values.", "",
           "| filter | reason | rows | meaning |", "|---|---|---|---|"]
    return out + [f"| {f} | `{r}` | {n} | {_md(REASONS.get(r, ''))} |" for f, r, n in rows]


def render_card(d: CardData) -> str:
    lines = [
        "---",
        "configs:",
        "- config_name: default",
        "  data_files:",
        "  - split: train",
        "    path: data/*.parquet",
        "- config_name: rejected",
        "  data_files:",
        "  - split: train",
        "    path: rejected/*.parquet",
        "tags:",
        "- sparq-qd",
        "- synthetic",
        "- math",
        "---",
        "",
        "# sparq-qd export",
        "",
        f"{d.data_rows} SFT rows (TRL conversational `messages`, user = problem, assistant = solution) from "
        f"{d.candidates} candidate rows of {len(d.runs)} run(s); {d.rejected_rows} rejected rows are kept in "
        "`rejected/` with the filter and reason that removed them.",
        "",
        "```python",
        'load_dataset("parquet", data_files="data/*.parquet", split="train")      # or load_dataset(THIS_DIR)',
        'load_dataset("parquet", data_files="rejected/*.parquet", split="train")  # every rejected row',
        "```",
        "",
        "## Runs",
        "",
        "| run | committed step | shards exported |",
        "|---|---|---|",
    ]
    lines += [f"| {_md(p)} | {s} | {n} |" for p, s, n in d.runs]
    lines += ["", "## Filters", "",
              "Applied in this order; each sees only what the ones above kept (candidate rows).", "",
              "| filter | in | rejected | kept |", "|---|---|---|---|"]
    lines += [f"| {f.name} | {f.seen} | {f.rejected} | {f.kept} |" for f in d.funnel]
    lines += ["", f"Selection (`{d.selection}`, budget {d.budget or 'none'}) over SFT pairs "
              "(a problem offers one pair per correct student attempt and/or its generator solution):", "",
              "| step | in | rejected | kept |", "|---|---|---|---|"]
    lines += [f"| {f.name} | {f.seen} | {f.rejected} | {f.kept} |" for f in d.pair_funnel]
    lines += ["", "## Rejections by reason", ""] + _reasons(d)
    lines += ["", "Output rows by source: " + (", ".join(f"{k} {v}" for k, v in sorted(d.sources.items())) or
                                               "none") + "."]
    lines += ["", "## Skipped input", ""]
    if d.skipped:
        lost = sum(s.rows or 0 for s in d.skipped)
        unknown = sum(s.rows is None for s in d.skipped)
        lines += [f"{len(d.skipped)} file(s) skipped with --skip-corrupt; {lost} candidate rows lost"
                  + (f" (plus {unknown} file(s) whose row count is unknown)" if unknown else "") + ":", "",
                  "| file | why | candidate rows |", "|---|---|---|"]
        lines += [f"| {_md(s.path)} | {_md(s.why)} | {'?' if s.rows is None else s.rows} |" for s in d.skipped]
    else:
        lines.append("None: every committed shard was read.")
    if d.ignored:
        lines += ["", f"{len(d.ignored)} uncommitted file(s) (past the checkpoint, or temporary) were ignored:", ""]
        lines += [f"- {_md(p)}" for p in d.ignored[:20]] + ([f"- ... {len(d.ignored) - 20} more"]
                                                           if len(d.ignored) > 20 else [])
    lines += ["", "## Cells", ""] + _cells(d.cells, d.centroid_sets)
    lines += ["", "## Solve rate of the output rows", "", "```", histogram(d.solve_rates) if len(d.solve_rates)
              else "no rows", "```", "", "## Decontamination", "",
              "| benchmark | source | items | blank rows | hits |", "|---|---|---|---|---|"]
    lines += [f"| {n} | {_md(s)} | {i} | {e} | {d.hits_by_benchmark.get(n, 0)} |" for n, s, i, e in d.benchmarks]
    if d.hits:
        total = sum(d.hits_by_benchmark.values())
        lines += ["", f"Hits ({min(total, _HIT_ROWS)} of {total} shown; all are in `rejected/` with "
                  "filter `decontamination`):", "", "| problem | benchmark item | scores |", "|---|---|---|"]
        lines += [f"| {_md(h.problem)} | {_md(h.matched)} | {_md(h.detail.split(': ', 1)[-1])} |"
                  for h in d.hits[:_HIT_ROWS]]
    elif d.benchmarks:
        lines += ["", "No hits."]
    else:
        lines += ["", "Decontamination was disabled."]
    if d.seconds:
        lines += ["", "## Timing", "", "| phase | seconds |", "|---|---|"]
        lines += [f"| {k} | {v:.1f} |" for k, v in d.seconds.items()]
    lines += ["", "## Configuration", "", "```toml", d.config_toml.rstrip(), "```", ""]
    return "\n".join(lines)
