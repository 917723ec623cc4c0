"""Schemas of the export's output tables.

- data: one SFT pair per row in TRL's conversational format (`messages`) plus metadata;
- rejected: every rejected candidate (or pair) with every candidate column except the
  embedding, the filter that rejected it, why (a short code from filters.base.REASONS, and
  the detail with its values), and what it matched.

Format 2 added `filter_detail`; in format 1 `filter_reason` held the text that is now the
detail.
"""

from __future__ import annotations

import pyarrow as pa

from pipeline.store.records import CANDIDATES_SCHEMA

EXPORT_FORMAT_VERSION = "2"

MESSAGE = pa.struct([pa.field("role", pa.string()), pa.field("content", pa.string())])

DATA_SCHEMA = pa.schema(
    [
        pa.field("messages", pa.list_(MESSAGE)),
        pa.field("problem_id", pa.string()),
        pa.field("cell", pa.int64()),
        pa.field("solve_rate", pa.float64()),
        pa.field("quality", pa.float64()),
        pa.field("run", pa.string()),
        pa.field("step", pa.int64()),
        pa.field("source", pa.string()),  # "student" (a correct attempt) or "generator" (its solution)
        pa.field("id", pa.string()),  # the candidate's id
        pa.field("attempt", pa.int64()),  # the attempt number of a student pair, null for the generator
        pa.field("answer", pa.string()),  # the reference answer
    ],
    metadata={"sparq.table": "export.data", "sparq.format_version": EXPORT_FORMAT_VERSION},
)

_CANDIDATE_FIELDS = [f for f in CANDIDATES_SCHEMA if f.name != "embedding"]

REJECTED_SCHEMA = pa.schema(
    [pa.field(f.name, f.type) for f in _CANDIDATE_FIELDS]  # nullable: one schema for every filter's rows
    + [
        pa.field("filter", pa.string()),
        pa.field("filter_reason", pa.string()),  # a code of filters.base.REASONS, e.g. solve_rate_above_band
        pa.field("filter_detail", pa.string()),  # the human text, e.g. "solve rate 0.950 > 0.9"
        pa.field("matched", pa.string()),  # the kept copy's id, or the benchmark item leaked
        pa.field("source", pa.string()),  # for rejected pairs (selection): as in DATA_SCHEMA
        pa.field("attempt", pa.int64()),
        pa.field("content", pa.string()),  # the pair's assistant text
    ],
    metadata={"sparq.table": "export.rejected", "sparq.format_version": EXPORT_FORMAT_VERSION},
)

CANDIDATE_COLUMNS = [f.name for f in _CANDIDATE_FIELDS]
