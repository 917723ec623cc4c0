"""`export_runs`: run directories -> a fine-tuning dataset, every decision counted and kept.

Map-reduce over the committed shards with dask.dataframe (one partition per shard):

0. check: footers and columns of every shard (cheap); a bad one is an error naming it, or
   with skip_corrupt a skipped step counted in the card;
1. scan (per shard): row filters; rejected rows are written with their reasons at once;
   the small columns (ids, cell, quality, counts, float16 embedding) come back;
2. reduce (driver, small columns only): exact dedup, near-duplicates, pair selection;
3. write (per shard): the selected pairs to OUT/data/, the rest to OUT/rejected/;
4. the dataset card OUT/README.md, written last: a directory without it is unfinished.

The library never imports prefect (flows/export.py wraps this function).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import resource
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from filters.base import Batch, Filter, FilterCount, Marks, funnel, reason_counts, run_filters
from filters.benchmarks import BenchmarkSet, load_benchmarks
from filters.card import CardData, DecontamHit, render_card
from filters.compute import compute_context, map_partitions_list, map_shards
from filters.config import ExportConfig, export_config_toml, load_export_config
from filters.decontam import DecontamIndex
from filters.dedup import exact_dedup_filter, near_dup_filter
from filters.errors import ExportConfigError, ExportInputError
from filters.scan import KEYS_META, ScanPlan, scan_shard
from filters.select import Selection, select_pairs
from filters.shards import CHECK_META, Discovery, RunInfo, ShardSpec, Skipped, check_shard, discover
from filters.write import DECISION_COLUMNS, WRITE_META, WritePlan, write_shard

Embed = Callable[[list[str]], np.ndarray]
Log = Callable[[str], None]
_CELL_STRIDE = 1 << 32  # cell key = centroid set * stride + cell


@dataclass(frozen=True)
class ExportResult:
    out_dir: str
    data_rows: int
    rejected_rows: int
    candidates: int
    funnel: tuple[FilterCount, ...]
    pair_funnel: tuple[FilterCount, ...]
    skipped: tuple[Skipped, ...]
    card: str
    seconds: dict[str, float]


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportInputError(f"output directory {out}: exists and is not empty; choose a new one")


def _prepare_out(out: Path) -> None:
    _check_out(out)  # again: time passed since the first check (benchmarks, embedder)
    (out / "data").mkdir(parents=True, exist_ok=True)
    (out / "rejected").mkdir(exist_ok=True)


def _embed_texts(name: str, texts: list[str]) -> np.ndarray:
    from pipeline.placement.embedding import Embedder

    return Embedder(name).encode(texts)


def _default_embed(name: str) -> Embed:
    """The configured embedder, run in a short-lived child process: torch and the model
    (~700 MB) never stay in the driver, which holds the reduce step's columns."""

    def embed(texts: list[str]) -> np.ndarray:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            try:
                return pool.submit(_embed_texts, name, texts).result()
            except ValueError as exc:
                raise ExportConfigError(f"config key 'export.decontam.embedder': {exc}") from None

    return embed


def _decontam_index(cfg: ExportConfig, runs: Sequence[RunInfo], embed: Embed | None,
                    log: Log) -> tuple[DecontamIndex | None, list[BenchmarkSet]]:
    d = cfg.decontam
    if not d.enabled:
        return None, []
    for run in runs:
        # Cosines between two embedders' spaces mean nothing; refuse rather than pass leaks.
        if run.embedder is not None and run.embedder != d.embedder:
            raise ExportConfigError(f"config key 'export.decontam.embedder': {d.embedder!r} differs from "
                                    f"archive.embedder {run.embedder!r} of run {run.path}")
    sets = load_benchmarks(d.benchmarks, tuple(sorted({r.domain for r in runs})))
    items = [it for s in sets for it in s.items]
    log(f"decontamination: embedding {len(items)} benchmark items ({', '.join(s.name for s in sets)})")
    emb = (embed or _default_embed(d.embedder))([it.text for it in items])
    return DecontamIndex.build(items, emb, n=d.ngram, ngram_threshold=d.ngram_threshold,
                               cosine_threshold=d.cosine_threshold), sets


def _check(disc: Discovery, ctx: dict, skip_corrupt: bool, log: Log) -> tuple[list[ShardSpec], list[Skipped],
                                                                              dict[str, int]]:
    skipped = list(disc.missing)
    if skipped and not skip_corrupt:
        s = skipped[0]
        raise ExportInputError(f"{s.path}: shard of a committed step is missing (use --skip-corrupt to export "
                               "the other steps)")
    checks = map_shards(check_shard, list(disc.shards), CHECK_META, ctx)
    by_key = {r["key"]: r for r in checks.to_dict("records")}
    good, rows = [], {}
    for spec in disc.shards:
        r = by_key[spec.key]
        bad = [(p, e) for p, e in ((spec.candidates, r["candidates_error"]), (spec.attempts, r["attempts_error"]))
               if e is not None]
        if not bad:
            good.append(spec)
            rows[spec.key] = int(r["rows"])
            continue
        if not skip_corrupt:
            raise ExportInputError(f"{bad[0][0]}: {bad[0][1]} (use --skip-corrupt to export the other shards)")
        for p, e in bad:
            log(f"warning: skipping {p}: {e}")
            # The step's candidate rows are lost with either file; their count is known only
            # when the candidates footer is readable (and then reported once, on the attempts file).
            lost = int(r["rows"]) if p == spec.attempts and r["rows"] >= 0 else None
            skipped.append(Skipped(p, e, lost))
    return good, skipped, rows


def _fp16_rows(parts: list[pd.DataFrame]) -> np.ndarray:
    """The float16 embeddings of the kept rows (non-null `emb`), in partition and row order."""
    chunks = [c for p in parts for c in pa.chunked_array(p["emb"].array.__arrow_array__()).chunks
              if len(c) > c.null_count]
    lengths = [pc.min_max(pc.binary_length(c.drop_null())) for c in chunks]
    widths = {w for mm in lengths for w in (mm["min"].as_py(), mm["max"].as_py())}
    if len(widths) > 1:
        raise ExportInputError(f"the runs' embeddings differ in size ({', '.join(str(w // 2) for w in sorted(widths))}"
                               " dimensions); export runs of one embedder together")
    dim = widths.pop() // 2 if widths else 0
    n = sum(len(c) - c.null_count for c in chunks)
    out = np.empty((n, dim), dtype=np.float16)
    at = 0
    for c in chunks:
        _, offsets_buf, data_buf = c.buffers()
        offsets = np.frombuffer(offsets_buf, dtype=np.int32)[c.offset:c.offset + len(c) + 1]
        part = np.frombuffer(data_buf, dtype=np.uint8)[offsets[0]:offsets[-1]].view(np.float16).reshape(-1, dim)
        out[at:at + len(part)] = part
        at += len(part)
    return out


def _cell_keys(keys: pd.DataFrame, runs: Sequence[RunInfo]) -> tuple[np.ndarray, int]:
    """Cells are shared only between runs with the same centroids; a run without them is its own set."""
    groups: dict[str, int] = {}
    set_of_run = {}
    for run in runs:
        digest = (hashlib.sha256(np.load(run.centroids).tobytes()).hexdigest() if run.centroids
                  else f"run-{run.index}")
        set_of_run[run.index] = groups.setdefault(digest, len(groups))
    sets = keys["run"].map(set_of_run).to_numpy(dtype=np.int64)
    return sets * _CELL_STRIDE + keys["cell"].to_numpy(dtype=np.int64), len(groups)


def _cell_label(key: int, many: bool) -> str:
    s, c = divmod(int(key), _CELL_STRIDE)
    c = c if c < _CELL_STRIDE // 2 else c - _CELL_STRIDE  # cell -1 (none) round-trips
    return f"{s}:{c}" if many else str(c)


def _decisions(red: _Reduced) -> pd.DataFrame:
    """One row per candidate the global filters rejected (pair_no -1) and per pair of the rest.

    Strings stay arrow-backed (no Python object per row): at a million rows the pairs
    table is the largest thing the driver builds after the embeddings."""
    surv, gmarks, remaining, sel = red.surv, red.gmarks, red.remaining, red.sel
    rej = np.flatnonzero(~gmarks.kept)
    text = "string[pyarrow]"
    cand = pd.DataFrame({"run": surv["run"].to_numpy()[rej], "step": surv["step"].to_numpy()[rej],
                         "id": surv["id"].iloc[rej].astype(text).array, "pair_no": -1,
                         "filter": pd.array(gmarks.filter[rej], dtype=text),
                         "filter_reason": pd.array(gmarks.reason[rej], dtype=text),
                         "filter_detail": pd.array(gmarks.detail[rej], dtype=text),
                         "matched": pd.array(gmarks.matched[rej], dtype=text)})
    p = sel.problem
    pairs = pd.DataFrame({"run": remaining["run"].to_numpy()[p], "step": remaining["step"].to_numpy()[p],
                          "id": remaining["id"].iloc[p].astype(text).array, "pair_no": sel.pair_no,
                          "filter": pd.array(np.where(sel.selected, None, "selection"), dtype=text),
                          "filter_reason": pd.array(sel.reason, dtype=text),
                          "filter_detail": pd.array(sel.detail, dtype=text),
                          "matched": pd.array([None] * len(p), dtype=text)})
    return pd.concat([cand, pairs], ignore_index=True)


# The selection funnel's steps in the card, by the reason that cuts a pair there.
_PAIR_STEPS = {"per_problem_cap": "per-problem cap", "per_cell_cap": "per-cell cap", "over_budget": "budget"}


def _pair_funnel(sel: Selection) -> list[FilterCount]:
    reasons = pd.Series(sel.reason, dtype=object).dropna().value_counts()
    by = {step: int(reasons.get(code, 0)) for code, step in _PAIR_STEPS.items()}
    return funnel(list(by), by, len(sel.problem))


def _reason_counts(red: _Reduced) -> list[tuple[str, str, int]]:
    """(filter, reason, rows) of every rejection: row filters, global filters, selection."""
    counts = dict(red.row_reasons)
    counts.update(red.gmarks.reason_counts())
    counts.update(reason_counts(np.where(red.sel.selected, None, "selection").astype(object), red.sel.reason))
    return [(f, r, n) for (f, r), n in counts.items()]


def _hits(out: Path) -> tuple[dict[str, int], list[DecontamHit]]:
    files = sorted((out / "rejected").glob("rows-*.parquet"))
    if not files:
        return {}, []
    ds = pads.dataset([str(f) for f in files], format="parquet")
    t = ds.to_table(columns=["problem", "matched", "filter_detail"],
                    filter=pc.field("filter") == "decontamination")
    by: dict[str, int] = {}
    hits = []
    for problem, matched, detail in zip(*(t[c].to_pylist() for c in ("problem", "matched", "filter_detail")),
                                        strict=True):
        name = matched.split(":", 1)[0]
        by[name] = by.get(name, 0) + 1
        if len(hits) < 50:
            hits.append(DecontamHit(problem or "", matched, detail))
    return by, hits


@dataclass(frozen=True)
class _Reduced:
    """What the reduce step decided, over the small columns only."""

    candidates: int  # rows scanned
    row_funnel: list[FilterCount]
    row_reasons: dict[tuple[str, str], int]  # rejections of the row filters per (filter, reason)
    surv: pd.DataFrame  # rows the row filters kept
    gmarks: Marks  # the global filters' marks over `surv`
    remaining: pd.DataFrame  # rows the global filters kept
    sel: Selection  # over the pairs of `remaining`
    centroid_sets: int


def _global_filters(cfg: ExportConfig) -> list[Filter]:
    out = []
    if cfg.dedup.enabled:
        out.append(exact_dedup_filter())
    if cfg.near_dup.enabled:
        nd = cfg.near_dup
        out.append(near_dup_filter(nd.threshold, exact_below=nd.exact_below, nlist=nd.nlist, nprobe=nd.nprobe,
                                   seed=cfg.seed))
    return out


@dataclass
class _Rows:
    """The scan's result in the driver. Mutable on purpose: the reduce step drops the
    embeddings as soon as the near-duplicate search is done."""

    candidates: int  # rows scanned
    row_funnel: list[FilterCount]
    row_reasons: dict[tuple[str, str], int]  # rejections per (filter, reason)
    surv: pd.DataFrame  # rows every row filter kept
    emb: np.ndarray | None  # their float16 embeddings, in order


def _scan(shards: list[ShardSpec], plan: ScanPlan, ctx: dict, expected: dict[str, int],
          skipped: list[Skipped]) -> tuple[list[ShardSpec], _Rows]:
    """Run the scan; return the shards read in full and the reduced rows (the full frame is
    freed on return, before the reduce step needs the memory)."""
    parts = map_partitions_list(scan_shard, shards, KEYS_META, ctx, plan=plan)
    # Take the embeddings out partition by partition, so they are never held twice.
    emb = _fp16_rows(parts) if plan.need_embeddings else None
    for i, part in enumerate(parts):
        parts[i] = part.drop(columns="emb")
    keys = pd.concat(parts, ignore_index=True) if parts else KEYS_META.drop(columns="emb")
    del parts
    got = keys.groupby(["run", "step"])["count"].sum().to_dict()
    read = []
    for spec in shards:
        if got.get((spec.run_index, spec.step), 0) == expected[spec.key]:
            read.append(spec)
        else:  # only with skip_corrupt: the scan returned nothing for a shard it could not decode
            skipped.append(Skipped(spec.candidates, "unreadable data", expected[spec.key]))
    alive = keys["filter"].isna().to_numpy()
    rejected = keys.loc[~alive].groupby("filter")["count"].sum().to_dict()
    row_funnel = funnel(plan.filter_names(), rejected, int(keys["count"].sum()))
    reasons = {k: int(v) for k, v in keys.loc[~alive].groupby(["filter", "reason"])["count"].sum().items()}
    surv = keys.loc[alive].drop(columns=["filter", "reason", "count"]).reset_index(drop=True)
    return read, _Rows(int(keys["count"].sum()), row_funnel, reasons, surv, emb)


def _reduce(rows: _Rows, cfg: ExportConfig, runs: Sequence[RunInfo], log: Log) -> _Reduced:
    surv = rows.surv
    surv["cell_key"], n_sets = _cell_keys(surv, runs)
    order = np.lexsort((surv["slot"], surv["step"], surv["run"], -surv["quality"].to_numpy()))
    priority = np.empty(len(surv), dtype=np.int64)
    priority[order] = np.arange(len(surv))
    surv["priority"] = priority
    filters = _global_filters(cfg)
    log(f"reduce: {len(surv)} rows after the row filters; {', '.join(f.name for f in filters)} ({_rss()})")
    gmarks = run_filters(Batch(surv[["id", "problem_id", "priority"]], rows.emb), filters)
    rows.emb = None
    remaining = surv.loc[gmarks.kept].reset_index(drop=True)
    n_pairs = np.zeros(len(remaining), dtype=np.int64)
    if "student" in cfg.sources:
        n_pairs += remaining["n_student"].to_numpy(dtype=np.int64)
    if "generator" in cfg.sources:
        n_pairs += remaining["has_generator"].to_numpy(dtype=np.int64)
    sel = select_pairs(remaining["cell_key"].to_numpy(), remaining["quality"].to_numpy(), n_pairs,
                       strategy=cfg.selection, budget=cfg.budget, max_per_cell=cfg.max_per_cell,
                       max_per_problem=cfg.max_per_problem, seed=cfg.seed)
    return _Reduced(rows.candidates, rows.row_funnel, rows.row_reasons, surv, gmarks, remaining, sel, n_sets)


def _card_data(red: _Reduced, cfg: ExportConfig, disc: Discovery, shards: list[ShardSpec], skipped: list[Skipped],
               bench_sets: list[BenchmarkSet], out: Path, data_rows: int, rejected_rows: int,
               seconds: dict[str, float]) -> CardData:
    sel, remaining = red.sel, red.remaining
    chosen = remaining.iloc[sel.problem[sel.selected]]
    sources = dict(zip(*np.unique(_pair_sources(remaining, sel, cfg.sources), return_counts=True), strict=True))
    many = red.centroid_sets > 1
    cells = {_cell_label(k, many): int(v) for k, v in chosen["cell_key"].value_counts().items()}
    hits_by, hits = _hits(out)
    return CardData(
        runs=[(r.path, r.committed_step, sum(s.run_index == r.index for s in shards)) for r in disc.runs],
        candidates=red.candidates, funnel=[*red.row_funnel, *red.gmarks.counts], pair_funnel=_pair_funnel(sel),
        reasons=_reason_counts(red),
        data_rows=data_rows, rejected_rows=rejected_rows, sources={str(k): int(v) for k, v in sources.items()},
        cells=cells, centroid_sets=red.centroid_sets, solve_rates=chosen["solve_rate"].to_numpy(dtype=float),
        benchmarks=[(s.name, s.source, len(s.items), s.empty_rows) for s in bench_sets],
        hits_by_benchmark=hits_by, hits=hits, skipped=skipped, ignored=list(disc.ignored),
        selection=cfg.selection, budget=cfg.budget, config_toml=export_config_toml(cfg),
        seconds={k: round(v, 1) for k, v in seconds.items()})


def _rss() -> str:
    # Peak so far (Linux: KiB); enough to see which phase holds the driver's memory.
    return f"driver peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB"


def export_runs(run_dirs: Sequence[str | Path], out: str | Path, *, config: ExportConfig | None = None,
                budget: int | None = None, dask_address: str | None = None, skip_corrupt: bool = False,
                embed: Embed | None = None, log: Log = lambda msg: None) -> ExportResult:
    """Export `run_dirs` into `out` (which must not exist or be empty); see the module docstring.

    `embed` (texts -> unit float32 rows) replaces the configured embedder for the benchmark
    items (tests); it must be the embedder that wrote the runs' `embedding` column."""
    cfg = config or load_export_config()
    if budget is not None:
        if budget < 0:
            raise ExportConfigError(f"--budget: expected an integer >= 0, got {budget}")
        cfg = cfg.replace(budget=budget)
    out = Path(out)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    _check_out(out)
    disc = discover([str(d) for d in run_dirs])
    index, bench_sets = _decontam_index(cfg, disc.runs, embed, log)
    _prepare_out(out)
    seconds["setup"] = time.perf_counter() - t0

    with compute_context(cfg.scheduler, cfg.workers, dask_address) as ctx:
        t = time.perf_counter()
        shards, skipped, expected = _check(disc, ctx, skip_corrupt, log)
        seconds["check"] = time.perf_counter() - t

        t = time.perf_counter()
        plan = ScanPlan.from_config(cfg, out, index, skip_corrupt)
        log(f"scan: {len(shards)} shards, filters {', '.join(plan.filter_names())} ({_rss()})")
        shards, rows = _scan(shards, plan, ctx, expected, skipped)
        seconds["scan"] = time.perf_counter() - t

        t = time.perf_counter()
        red = _reduce(rows, cfg, disc.runs, log)
        decisions = _decisions(red)
        seconds["reduce"] = time.perf_counter() - t

        t = time.perf_counter()
        groups = {k: g[list(DECISION_COLUMNS)].reset_index(drop=True)
                  for k, g in decisions.groupby(["run", "step"], sort=False)}
        todo = [s for s in shards if (s.run_index, s.step) in groups]
        log(f"write: {red.sel.count} selected pairs, {len(decisions) - red.sel.count} rejected rows from the "
            f"reduce step ({_rss()})")
        written = map_shards(write_shard, todo, WRITE_META, ctx, [groups[(s.run_index, s.step)] for s in todo],
                             plan=WritePlan(str(out), cfg.sources, tuple(r.domain for r in disc.runs)))
        seconds["write"] = time.perf_counter() - t

    data_rows = int(written["data_rows"].sum())
    if data_rows != red.sel.count:
        raise RuntimeError(f"wrote {data_rows} data rows for {red.sel.count} selected pairs")
    rejected_rows = int(sum(f.rejected for f in red.row_funnel)) + int(written["rejected_rows"].sum())
    seconds["total"] = time.perf_counter() - t0
    data = _card_data(red, cfg, disc, shards, skipped, bench_sets, out, data_rows, rejected_rows, seconds)
    card = render_card(data)
    (out / "README.md").write_text(card, encoding="utf-8")
    log(f"done: {data_rows} rows in {out / 'data'}, card {out / 'README.md'} ({_rss()})")
    return ExportResult(str(out), data_rows, rejected_rows, red.candidates, tuple(data.funnel),
                        tuple(data.pair_funnel), tuple(skipped), card, seconds)


def _pair_sources(remaining: pd.DataFrame, sel: Selection, sources: tuple[str, ...]) -> np.ndarray:
    """The source of each selected pair, from its number (the order pairs_of numbers them)."""
    p, k = sel.problem[sel.selected], sel.pair_no[sel.selected]
    if len(sources) == 1:
        return np.full(len(p), sources[0])
    if sources[0] == "student":
        return np.where(k < remaining["n_student"].to_numpy(dtype=np.int64)[p], "student", "generator")
    has_generator = remaining["has_generator"].to_numpy(dtype=bool)[p]
    return np.where(has_generator & (k == 0), "generator", "student")
