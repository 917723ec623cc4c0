"""Pool several `bench/validity.py --parts campaigns` runs for one blind labelling, and score
the labels over the pool: the valid share of what the campaigns archived, with its Wilson
interval, and valid problems per million tokens (generator + solver + verifier).

    # eight campaigns, one per seed (bench/validity.py ... --config SEEDn.toml --out DIR_n)
    .venv/bin/python bench/validity_pool.py pool --out POOL DIR_16 DIR_17 ...
    # readers label POOL/chunk-*.jsonl blind (data/validity/raw/GUIDE.md), into one file
    .venv/bin/python bench/validity_pool.py score --pool POOL --labels LABELS DIR_16 DIR_17 ...

`pool` writes POOL/items.jsonl (every archived or solved problem of every run, once,
shuffled, without its run), POOL/key.jsonl (which run and candidate each item came from:
`run` is the position of its directory in the command, `seed` the run's `[run] seed`) and
POOL/chunk-{a,b,c}.jsonl (the items dealt to --readers readers). `score` reads the
directories in the same order. bench/validity-labels/run33-run35 were made this way.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path

from benchlib import append_results

from pipeline.config import load_config
from pipeline.read.inspection import ARCHIVED
from pipeline.store.storage import RunDir

GATE = "gate-archive"


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of k successes in n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def _run_dir(campaign: Path) -> Path:
    """The archive-gate run inside a campaign directory (or the run directory itself)."""
    return campaign / GATE if (campaign / GATE).is_dir() else campaign


def _candidates(campaign: Path) -> list[dict]:
    return [c for c in RunDir(_run_dir(campaign)).read_candidates().to_pylist() if c["step"] > 0]


def _seed(campaign: Path) -> int:
    """The run's `[run] seed`, from the config it recorded."""
    return load_config(_run_dir(campaign) / "config.toml").run.seed


def pool(out: Path, campaigns: list[Path], readers: int, shuffle_seed: int) -> list[str]:
    found: dict[tuple[str, str, str], dict] = {}
    for run, campaign in enumerate(campaigns):
        for c in _candidates(campaign):
            archived = c["status"] == "ok" and c["archive_outcome"] in ARCHIVED
            solved = c["status"] == "ok" and (c["quality"] or 0) > 0
            if not (archived or solved):
                continue
            item = found.setdefault((c["problem"], c["solution"], c["answer"]), {"rows": []})
            item["rows"].append({"run": run, "seed": _seed(campaign), "id": c["id"], "archived": archived,
                                 "solved": solved})
    texts = list(found)
    random.Random(shuffle_seed).shuffle(texts)
    out.mkdir(parents=True, exist_ok=True)
    items = [{"item": i, "problem": p, "solution": s, "answer": a} for i, (p, s, a) in enumerate(texts)]
    key = [{"item": i, **row} for i, text in enumerate(texts) for row in found[text]["rows"]]
    (out / "items.jsonl").write_text("".join(json.dumps(x) + "\n" for x in items))
    (out / "key.jsonl").write_text("".join(json.dumps(x) + "\n" for x in key))
    for r in range(readers):
        chunk = items[r::readers]
        (out / f"chunk-{chr(ord('a') + r)}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in chunk))
    return [f"{len(items)} problems to label ({sum(k['archived'] for k in key)} archived) from {len(campaigns)} "
            f"campaigns, in {readers} chunks under {out}"]


def score(pool_dir: Path, labels_path: Path, campaigns: list[Path]) -> list[str]:
    labels = {r["item"]: r["label"] for r in map(json.loads, labels_path.read_text().splitlines()) if r}
    key = [json.loads(line) for line in (pool_dir / "key.jsonl").read_text().splitlines() if line]
    missing = sorted({k["item"] for k in key} - set(labels))
    if missing:
        sys.exit(f"error: {labels_path} has no label for items {missing[:10]} of {pool_dir / 'key.jsonl'}")
    # Keys written before `run` was recorded name each campaign by its seed.
    seeds = [_seed(c) for c in campaigns]
    for k in key:
        if "run" not in k:
            k["run"] = seeds.index(k["seed"]) if k["seed"] in seeds else -1
    lines = ["| campaign | seed | archived | labelled valid | tokens (gen + solve + verify) "
             "| valid per million tokens |",
             "|---|---|---|---|---|---|"]
    totals = {"archived": 0, "valid": 0, "tokens": 0, "solved": 0, "solved_valid": 0}
    for run, campaign in enumerate(campaigns):
        gen = _candidates(campaign)
        tokens = sum((c["gen_tokens"] or 0) + (c["solve_tokens"] or 0) + (c["verify_tokens"] or 0) for c in gen)
        ks = [k for k in key if k["run"] == run]
        archived = [k for k in ks if k["archived"]]
        valid = sum(labels[k["item"]] == "valid" for k in archived)
        solved = [k for k in ks if k["solved"]]
        totals["archived"] += len(archived)
        totals["valid"] += valid
        totals["tokens"] += tokens
        totals["solved"] += len(solved)
        totals["solved_valid"] += sum(labels[k["item"]] == "valid" for k in solved)
        lines.append(f"| {campaign} | {ks[0]['seed'] if ks else ''} | {len(archived)} | {valid} | {tokens} | "
                     f"{1e6 * valid / max(1, tokens):.0f} |")
    n, k = totals["archived"], totals["valid"]
    lo, hi = wilson(k, n)
    per_m = 1e6 * k / max(1, totals["tokens"])
    lines += ["", f"Pooled: {k} of {n} archived problems valid, {k / max(1, n):.3f} (Wilson 95% [{lo:.2f}, {hi:.2f}]); "
              f"{totals['tokens']} tokens, {per_m:.0f} valid archived problems per million tokens. Solved (ok, "
              f"quality > 0): {totals['solved_valid']} of {totals['solved']} valid, "
              f"{1e6 * totals['solved_valid'] / max(1, totals['tokens']):.0f} per million tokens."]
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pool", help="pool campaigns' archived and solved problems for blind labelling")
    p.add_argument("--out", type=Path, required=True, help="where items, key and chunks go")
    p.add_argument("--readers", type=int, default=3, help="chunks, one per reader")
    p.add_argument("--shuffle-seed", type=int, default=0)
    p.add_argument("campaigns", type=Path, nargs="+", help="bench/validity.py --out directories")
    s = sub.add_parser("score", help="score the pool's labels")
    s.add_argument("--pool", type=Path, required=True, help="the `pool --out` directory")
    s.add_argument("--labels", type=Path, required=True, help='one {"item", "label"} per line')
    s.add_argument("--title", default="Validity: pooled campaigns, hand-labelled", help="bench/results.md heading")
    s.add_argument("--no-results", action="store_true", help="do not append to bench/results.md")
    s.add_argument("campaigns", type=Path, nargs="+", help="the campaigns, in the order given to `pool`")
    args = ap.parse_args()
    for campaign in args.campaigns:
        if not _run_dir(campaign).is_dir():
            sys.exit(f"error: {campaign} is not a campaign directory (expected {GATE}/ or a run directory)")
    if args.cmd == "pool":
        if args.readers < 1:
            sys.exit("error: --readers must be at least 1")
        print("\n".join(pool(args.out, args.campaigns, args.readers, args.shuffle_seed)))
        return 0
    lines = score(args.pool, args.labels, args.campaigns)
    print("\n".join(lines))
    if not args.no_results:
        append_results(args.title, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
