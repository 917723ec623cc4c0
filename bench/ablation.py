"""Data ablation: does generated, filtered data train the embedded model better than the seeds?

    .venv/bin/python bench/ablation.py --pool RUN_DIR --work DIR [--rows R] [--epochs E]

RUN_DIR is a generation run on the bundled seeds (bench/ablation/generate.toml is the one
recorded in bench/results.md). Four training sets with the same number of rows R, each a
problem with one solution (messages user/assistant, as `sparq export` writes them):

  seeds      the bundled seeds (their own solutions), a seeded random R of them;
  random     generated problems with the generator's own solution, no filter but the
             parse status, dedup and decontamination; a seeded random R (`selection = random`);
  quality    the export's filters (difficulty band 0.1..0.9, validity) and correct student
             solutions (up to --max-per-problem per problem), best quality first
             (`selection = quality`);
  diversity  the same filters, round-robin over archive cells, best first in each cell
             (`selection = diversity`, the export default).

Every set is decontaminated against the held-out split the same way (word n-grams with
numbers masked, or embedding cosine; the export's filter, applied to the seeds here), so no
condition trains on held-out problems with other numbers. R = --rows, or (0) the most rows
every condition can fill. Each set fine-tunes the base model with the default finetune.toml
(LoRA r 16) for --epochs, same seed; then the base and the four models are evaluated on the
held-out split (120 problems, n samples each). Results: pass@1 and pass@k with 95% bootstrap
intervals, and each pair of conditions compared on the same problems (paired bootstrap
interval of the difference and a sign-flip permutation p-value, finetune.metrics).

Every stage writes into WORK and is skipped when its output exists, so an interrupted run
resumes. The summary goes to WORK/ablation.json, stdout and bench/results.md.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import random
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from benchlib import add_threads_arg, append_results, set_threads

CONDITIONS = ("seeds", "random", "quality", "diversity")

# [export] overrides per generated condition; everything else is filters/export.toml.
EXPORTS: dict[str, dict[str, Any]] = {
    "random": {"selection": "random", "sources": ["generator"], "difficulty": {"enabled": False},
               "validity": {"enabled": False}},
    "quality": {"selection": "quality"},
    "diversity": {"selection": "diversity"},
}


def export_condition(name: str, pool: str, out: Path, budget: int, per_problem: int) -> int:
    from filters.config import export_config_from_dict
    from filters.export import export_runs

    over = dict(EXPORTS[name])
    if "student" in over.get("sources", ["student"]):
        over["max_per_problem"] = per_problem
    cfg = export_config_from_dict(over, f"ablation:{name}")
    return export_runs([pool], out, config=cfg, budget=budget, log=lambda m: None).data_rows


@functools.cache
def clean_seeds() -> list[dict[str, str]]:
    """The bundled seeds that the export's decontamination filter would keep (embedded once)."""
    from filters.benchmarks import load_benchmarks
    from filters.config import load_export_config
    from filters.decontam import DecontamIndex
    from pipeline.placement.embedding import Embedder
    from pipeline.store.seeds import BUNDLED_SEEDS

    seeds = [json.loads(line) for line in BUNDLED_SEEDS.read_text().splitlines()
             if line.strip()]
    d = load_export_config().decontam
    items = [it for s in load_benchmarks(d.benchmarks) for it in s.items]
    embedder = Embedder(d.embedder)
    index = DecontamIndex.build(items, embedder.encode([it.text for it in items]), n=d.ngram,
                                ngram_threshold=d.ngram_threshold, cosine_threshold=d.cosine_threshold)
    cos = index.cosines(embedder.encode([s["problem"] for s in seeds])).max(axis=1)
    kept = [s for s, c in zip(seeds, cos, strict=True)
            if c < d.cosine_threshold and index.best_ngram(s["problem"])[1] < d.ngram_threshold]
    return kept


def write_seed_set(seeds: list[dict[str, str]], out: Path, rows: int, seed: int) -> None:
    pick = random.Random(seed).sample(seeds, rows)
    (out / "data").mkdir(parents=True, exist_ok=True)
    table = pa.table({
        "messages": [[{"role": "user", "content": s["problem"]}, {"role": "assistant", "content": s["solution"]}]
                     for s in pick],
        "id": [s["id"] for s in pick], "answer": [s["answer"] for s in pick]})
    pq.write_table(table, out / "data" / "part-seeds.parquet")
    (out / "README.md").write_text(f"{rows} bundled seeds (random, seed {seed}), decontaminated\n")


def available(work: Path, pool: str, per_problem: int, log) -> dict[str, int]:
    """Rows each condition can offer at most (exports with no budget, kept for the record)."""
    counts_file = work / "available.json"
    if counts_file.is_file():
        return json.loads(counts_file.read_text())
    counts = {"seeds": len(clean_seeds())}
    log(f"seeds: {counts['seeds']} of the bundled seeds pass decontamination against the held-out split")
    for name in EXPORTS:
        out = work / f"full-{name}"
        counts[name] = export_condition(name, pool, out, 0, per_problem)
        log(f"{name}: {counts[name]} rows available")
    counts_file.write_text(json.dumps(counts, indent=1))
    return counts


def build_sets(work: Path, pool: str, rows: int, seed: int, per_problem: int, log) -> None:
    for name in CONDITIONS:
        out = work / f"data-{name}"
        if (out / "README.md").is_file():
            continue
        if name == "seeds":
            write_seed_set(clean_seeds(), out, rows, seed)
        else:
            got = export_condition(name, pool, out, rows, per_problem)
            if got != rows:
                raise SystemExit(f"ablation: {name} exported {got} rows, expected {rows}")
        log(f"{name}: {rows} rows -> {out}")


def train(work: Path, name: str, epochs: float, seed: int, ft_config: str | None, log) -> dict[str, Any]:
    from finetune.config import load_finetune_config
    from finetune.train import finetune

    out = work / f"model-{name}"
    summary = out / "finetune_summary.json"
    if not summary.is_file():
        cfg = load_finetune_config(ft_config).replace("train", epochs=epochs, seed=seed)
        log(f"fine-tuning on {name} ...")
        finetune(work / f"data-{name}", out, config=cfg, log=log)
    return json.loads(summary.read_text())


def evaluate_model(work: Path, label: str, model: str, n: int, limit: int, ft_config: str | None,
                   log) -> dict[str, Any]:
    from finetune.config import load_finetune_config
    from finetune.evaluate import evaluate

    out = work / f"eval-{label}.json"
    if not out.is_file():
        base = load_finetune_config(ft_config)
        cfg = base.replace("evaluate", n=n, k=min(base.evaluate.k, n), limit=limit).evaluate
        out.write_text(json.dumps(evaluate(model, config=cfg, log=log), indent=1))
    return json.loads(out.read_text())


def summarize(results: dict[str, dict[str, Any]], trained: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from finetune.compare import per_problem_pass1
    from finetune.metrics import paired_difference

    pairs = {}
    for a, b in itertools.combinations(results, 2):
        # Order each pair so the difference reads "later condition minus earlier".
        diff = paired_difference(per_problem_pass1(results[b]), per_problem_pass1(results[a]))
        pairs[f"{b} - {a}"] = diff.as_dict()
    return {"results": {k: {key: v[key] for key in v if key != "per_problem"} for k, v in results.items()},
            "training": trained, "pass@1 differences": pairs}


def lines_of(summary: dict[str, Any], rows: int, epochs: float) -> list[str]:
    res = summary["results"]
    first = next(iter(res.values()))
    k = first["k"]
    out = [f"{rows} training rows per condition, LoRA r 16, {epochs:g} epochs, training seed 0; "
           f"{first['problems']} held-out problems, n = {first['n']}, temperature {first['temperature']}; "
           f"{first['ci_method']}", "",
           f"| model | train steps | final loss | pass@1 [95% CI] | pass@{k} [95% CI] |", "|---|---|---|---|---|"]
    for label, r in res.items():
        t = summary["training"].get(label, {})
        p1, pk = r["pass@1"], r[f"pass@{k}"]
        out.append(f"| {label} | {t.get('steps', '-')} | {_num(t.get('final_loss'))} | "
                   f"{p1['estimate']:.3f} [{p1['ci_lo']:.3f}, {p1['ci_hi']:.3f}] | "
                   f"{pk['estimate']:.3f} [{pk['ci_lo']:.3f}, {pk['ci_hi']:.3f}] |")
    out += ["", "| pass@1 difference | estimate [95% CI] | p (sign-flip) | significant at 0.05 |", "|---|---|---|---|"]
    for name, d in summary["pass@1 differences"].items():
        out.append(f"| {name} | {d['difference']:+.3f} [{d['ci_lo']:+.3f}, {d['ci_hi']:+.3f}] | "
                   f"{d['p_value']:.4f} | {'yes' if d['significant_at_0.05'] else 'no'} |")
    return out


def _num(x: Any) -> str:
    return "-" if x is None else f"{x:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pool", required=True, help="generation run directory on the bundled seeds")
    ap.add_argument("--work", required=True, help="directory for the data sets, models and evaluations")
    ap.add_argument("--rows", type=int, default=0, help="rows per condition (0: the most every condition can fill)")
    ap.add_argument("--epochs", type=float, default=2.0, help="training epochs (same for every condition)")
    ap.add_argument("--max-per-problem", type=int, default=4,
                    help="quality/diversity: correct student solutions per problem (export.max_per_problem)")
    ap.add_argument("--n", type=int, default=4, help="samples per held-out problem")
    ap.add_argument("--limit", type=int, default=0, help="held-out problems (0: all 120)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the seeds' random pick and of training")
    ap.add_argument("--finetune-config", metavar="PATH",
                    help="finetune.toml overrides for training and evaluation (a GPU: [train] device = 'cuda', "
                         "[evaluate.engine] kind = 'vllm'); epochs, seed, n and limit come from the options")
    ap.add_argument("--no-base", action="store_true", help="skip evaluating the base model")
    ap.add_argument("--no-record", action="store_true", help="do not append to bench/results.md")
    add_threads_arg(ap)
    args = ap.parse_args()
    threads = set_threads(args.threads)
    if not (Path(args.pool) / "checkpoint.json").is_file():
        raise SystemExit(f"ablation: --pool {args.pool}: not a run directory (no checkpoint.json)")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:7.1f}s] {msg}", flush=True)

    counts = available(work, args.pool, args.max_per_problem, log)
    rows = min(counts.values()) if args.rows == 0 else args.rows
    if rows < 1 or rows > min(counts.values()):
        raise SystemExit(f"ablation: --rows {rows}: every condition must fill it; available {counts}")
    log(f"available rows {counts}; training on {rows} each")
    build_sets(work, args.pool, rows, args.seed, args.max_per_problem, log)
    trained = {name: train(work, name, args.epochs, args.seed, args.finetune_config, log) for name in CONDITIONS}
    results: dict[str, dict[str, Any]] = {}
    if not args.no_base:
        results["base"] = evaluate_model(work, "base", "embedded", args.n, args.limit, args.finetune_config, log)
    for name in CONDITIONS:
        results[name] = evaluate_model(work, name, str(work / f"model-{name}"), args.n, args.limit,
                                       args.finetune_config, log)
    summary = summarize(results, trained)
    summary.update({"pool": args.pool, "rows": rows, "max_per_problem": args.max_per_problem,
                    "available": counts, "epochs": args.epochs,
                    "seconds": round(time.perf_counter() - t0, 1), "threads": threads})
    (work / "ablation.json").write_text(json.dumps(summary, indent=1))
    lines = lines_of(summary, rows, args.epochs)
    print("\n".join(lines))
    if not args.no_record:
        append_results("Data ablation (bench/ablation.py)", lines)


if __name__ == "__main__":
    main()
