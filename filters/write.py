"""Map step 2, one task per committed shard: write the decided rows.

Given the decisions of the reduce step for the rows of one shard that passed the row
filters (rejected as a duplicate, or a list of pairs each selected or cut by a cap or the
budget), re-reads the shard's text columns and correct attempts and writes
OUT/data/part-KEY.parquet (selected pairs, TRL conversational rows) and
OUT/rejected/global-KEY.parquet (everything else, with its reason). The wide text never
goes through the reduce step.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from filters.schema import CANDIDATE_COLUMNS, DATA_SCHEMA, REJECTED_SCHEMA
from filters.shards import ShardSpec, read_shard
from pipeline.config import DomainConfig
from pipeline.domains import Domain, make_domain
from pipeline.store.records import ATTEMPTS_SCHEMA, CANDIDATES_SCHEMA
from pipeline.store.storage import atomic_write_table

WRITE_META = pd.DataFrame({"key": pd.Series([], dtype=object), "data_rows": pd.Series([], dtype="int64"),
                           "rejected_rows": pd.Series([], dtype="int64")})

# Decisions for one shard: one row per rejected candidate (pair_no -1) or per pair.
DECISION_COLUMNS = ("id", "pair_no", "filter", "filter_reason", "filter_detail", "matched")


@dataclass(frozen=True)
class WritePlan:
    out_dir: str
    sources: tuple[str, ...]
    domains: tuple[str, ...] = ()  # [domain] kind of each run, by run index (absent: math)


@dataclass(frozen=True)
class Pair:
    source: str
    attempt: int | None
    content: str


def pairs_of(candidate: dict, attempts: list[tuple[int, str]], sources: tuple[str, ...]) -> list[Pair]:
    """A candidate's SFT pairs in the numbering the selection used (source order, then attempt order).

    The scan counted `correct` attempts and a non-blank solution; the same rule here keeps
    pair numbers aligned."""
    out: list[Pair] = []
    for source in sources:
        if source == "student":
            out += [Pair("student", a, text.strip()) for a, text in sorted(attempts)]
        elif source == "generator" and (candidate["solution"] or "").strip():
            out.append(Pair("generator", None, candidate["solution"].strip()))
    return out


def _data_row(c: dict, pair: Pair, domain: Domain) -> dict:
    return {
        "messages": domain.messages(c["problem"], pair.content),  # the domain's chat turns
        "problem_id": c["problem_id"], "cell": c["cell"], "solve_rate": c["solve_rate"], "quality": c["quality"],
        "run": c["run_id"], "step": c["step"], "source": pair.source, "id": c["id"], "attempt": pair.attempt,
        "answer": c["answer"],
    }


def _rejected_row(c: dict, d: dict, pair: Pair | None) -> dict:
    row = {k: c[k] for k in CANDIDATE_COLUMNS}
    row.update(filter=d["filter"], filter_reason=d["filter_reason"], filter_detail=d["filter_detail"],
               matched=d["matched"],
               source=pair.source if pair else None, attempt=pair.attempt if pair else None,
               content=pair.content if pair else None)
    return row


def write_shard(spec: ShardSpec, decisions: pd.DataFrame, plan: WritePlan) -> pd.DataFrame:
    data, rejected = [], []
    kind = plan.domains[spec.run_index] if spec.run_index < len(plan.domains) else "math"
    domain = make_domain(DomainConfig(kind=kind))
    if len(decisions):
        ids = pa.array(decisions["id"].unique().tolist(), pa.string())
        cands = read_shard(spec.candidates, CANDIDATES_SCHEMA, CANDIDATE_COLUMNS)
        cands = cands.filter(pc.is_in(cands["id"], value_set=ids))
        by_id = {r["id"]: r for r in cands.to_pylist()}
        att = read_shard(spec.attempts, ATTEMPTS_SCHEMA, ["candidate_id", "attempt", "text", "correct"])
        att = att.filter(pc.and_(pc.equal(att["correct"], True), pc.is_in(att["candidate_id"], value_set=ids)))
        attempts: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for cid, a, text in zip(*(att[c].to_pylist() for c in ("candidate_id", "attempt", "text")), strict=True):
            attempts[cid].append((a, text))
        pairs_cache: dict[str, list[Pair]] = {}
        for d in decisions.to_dict("records"):
            d = {k: None if v is None or v is pd.NA else v for k, v in d.items()}  # arrow strings: NA -> None
            c = by_id[d["id"]]
            if d["pair_no"] < 0:
                rejected.append(_rejected_row(c, d, None))
                continue
            pairs = pairs_cache.get(d["id"])
            if pairs is None:
                pairs = pairs_cache[d["id"]] = pairs_of(c, attempts[d["id"]], plan.sources)
            pair = pairs[d["pair_no"]]
            if d["filter"] is None:
                data.append(_data_row(c, pair, domain))
            else:
                rejected.append(_rejected_row(c, d, pair))
    out = Path(plan.out_dir)
    if data:
        atomic_write_table(out / "data" / f"part-{spec.key}.parquet", pa.Table.from_pylist(data, schema=DATA_SCHEMA))
    if rejected:
        atomic_write_table(out / "rejected" / f"global-{spec.key}.parquet",
                           pa.Table.from_pylist(rejected, schema=REJECTED_SCHEMA))
    return pd.DataFrame({"key": [spec.key], "data_rows": [len(data)],
                         "rejected_rows": [len(rejected)]}).astype(WRITE_META.dtypes.to_dict())
