"""`sparq export` at scale: 1M synthetic candidate rows in run-directory shards, exported.

    python bench/export_1m.py                       # make the runs (once) and export them
    python bench/export_1m.py --rows 200000         # smaller
    python bench/export_1m.py --survive 1.0         # stress: every ok row is in the band and valid

Makes two run directories under --workdir (reused if present with the same parameters):
step 0 holds the 360 bundled seeds, steps 1.. hold `--rows` generated candidates in shards
of `--shard-rows`, with attempts (k = 4) for every ok row. Problem texts come from a few
templates with random names, objects and numbers; embeddings are random unit 384-d float32
vectors (the real width: nothing is shrunk). Mixed in, so every filter has work: 5%
unparseable and 5% duplicate statuses, solve rates mostly 0 or 1 (SPARQ reports most
problems are solved always or never), 10% of references disagreeing with the majority, 2%
exact copies (case and spacing changed), 1% near-duplicate embeddings, 0.1% held-out
problems with their numbers changed.

The export then runs in a fresh child process (so the data generation does not count
towards its memory) with the default config, the given budget and scheduler. Its wall
time, per-phase times, and peak memory are printed and appended to bench/results.md:
peak memory is the largest sum of RSS over the export process and all its descendants
(psutil, sampled every 0.2 s; shared pages count once per process, so it is an upper
bound), next to ru_maxrss of the driver and the sampled peak of each process (not
RUSAGE_CHILDREN: a spawned worker is forked before it execs, so its ru_maxrss counts
the driver's pages).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DIM = 384
K = 4
NEAR_NOISE = 0.003
NAMES = ["Ann", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lea", "Milo", "Nia"]
OBJECTS = ["apple", "marble", "stamp", "coin", "book", "pencil", "card", "shell", "rock", "ticket"]
TEMPLATES = [
    "{n} has {a} {o}s and buys {b} more. How many {o}s does {n} have now?",
    "{n} shares {a} {o}s equally among {b} friends. How many {o}s does each friend get?",
    "A box holds {a} rows of {b} {o}s. How many {o}s are in {c} such boxes?",
    "{n} walks {a} km on Monday and {b} km on Tuesday. What is the total distance in km after {c} weeks?",
    "The price of a {o} is {a} dollars. {n} buys {b} of them with a {c} dollar note. What is the change?",
    "What is {a} percent of {b} {o}s, rounded to the nearest whole {o}?",
    "{n} is {a} years old and {n2} is {b} years older. How old will {n2} be in {c} years?",
    "A rectangle is {a} cm long and {b} cm wide. What is its area in square cm minus {c}?",
]


def _texts(rng: np.random.Generator, n: int) -> list[str]:
    t = rng.integers(0, len(TEMPLATES), n)
    nm = rng.integers(0, len(NAMES), (n, 2))
    ob = rng.integers(0, len(OBJECTS), n)
    num = rng.integers(2, 1000, (n, 3))
    return [TEMPLATES[t[i]].format(n=NAMES[nm[i, 0]], n2=NAMES[nm[i, 1]], o=OBJECTS[ob[i]], a=num[i, 0],
                                   b=num[i, 1], c=num[i, 2]) for i in range(n)]


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _list_column(emb: np.ndarray, valid: np.ndarray) -> pa.Array:
    n = len(emb)
    offsets = np.zeros(n + 1, dtype=np.int32)
    offsets[1:] = np.cumsum(np.where(valid, DIM, 0))
    values = pa.array(np.ascontiguousarray(emb[valid]).reshape(-1))
    mask = pa.array(~valid)
    return pa.ListArray.from_arrays(pa.array(offsets), values, type=pa.list_(pa.float32()), mask=mask)


def _shard(rng: np.random.Generator, run_id: str, step: int, n: int, heldout: list[str], survive: float,
           recent: list[str]) -> tuple[pa.Table, pa.Table]:
    from pipeline.store.records import ATTEMPTS_SCHEMA, CANDIDATES_SCHEMA, candidate_id, problem_id

    texts = _texts(rng, n)
    u = rng.random(n)
    status = np.where(u < 0.05, "unparseable", np.where(u < 0.10, "duplicate", "ok"))
    # Exact copies of earlier problems (other case and spacing), and held-out leaks with new numbers.
    copies = np.flatnonzero(rng.random(n) < 0.02)
    for i in copies:
        if recent:
            texts[i] = "  " + recent[int(rng.integers(len(recent)))].upper() + " "
    leaks = np.flatnonzero(rng.random(n) < 0.001)
    for i in leaks:
        texts[i] = re.sub(r"\d+", lambda m: str(int(m.group()) + int(rng.integers(1, 9))),
                          heldout[int(rng.integers(len(heldout)))])
    recent[:] = texts[: 2000]
    ok = status == "ok"
    # Solve rates: mostly never or always solved; `survive` of them in the band.
    band = rng.random(n) < survive
    n_correct = np.where(band, rng.integers(1, K, n), np.where(rng.random(n) < 0.5, 0, K))
    n_correct = np.where(ok, n_correct, 0)
    k = np.where(ok, K, 0)
    sr = np.where(ok, n_correct / K, np.nan)
    agrees = np.where(ok, rng.random(n) > (0.1 if survive < 1 else 0.0), False)
    quality = np.where(ok & (sr >= 0.1) & (sr <= 0.9), 1 - np.nan_to_num(sr), 0.0)
    emb = _unit(rng, n)
    near = np.flatnonzero(rng.random(n) < 0.01)
    src = rng.integers(0, n, len(near))
    # 0.003 per dimension: a near copy at cosine ~0.998 (above the 0.95 threshold)
    emb[near] = emb[src] + NEAR_NOISE * rng.standard_normal((len(near), DIM), dtype=np.float32)
    emb[near] /= np.linalg.norm(emb[near], axis=1, keepdims=True)
    valid_emb = ok
    problem = [None if s == "unparseable" else t for s, t in zip(status, texts, strict=True)]
    ids = [candidate_id(run_id, step, i) for i in range(n)]
    now = datetime(2026, 1, 1, tzinfo=UTC)
    cols = {
        "id": ids, "run_id": [run_id] * n, "step": np.full(n, step), "slot": np.arange(n),
        "parent_id": [None] * n, "depth": np.ones(n, dtype=np.int64), "operator": ["sparq_mutate"] * n,
        "problem_id": [problem_id(p) if p else None for p in problem], "problem": problem,
        "solution": [f"Work through it. The answer is {i % 97}." if p else None for i, p in enumerate(problem)],
        "answer": [str(i % 97) if p else None for i, p in enumerate(problem)],
        "raw_output": texts, "status": status.tolist(),
        "reason": [("no solution found" if s == "unparseable" else "problem text already in the run"
                    if s == "duplicate" else None) for s in status],
        "k": k, "n_correct": n_correct, "solve_rate": pa.array(sr, from_pandas=True),
        "majority_answer": [str(i % 97) if o else None for i, o in enumerate(ok)],
        "majority_share": pa.array(np.where(ok, 0.75, np.nan), from_pandas=True),
        "reference_agrees": pa.array(np.where(ok, agrees, None).tolist(), pa.bool_()),
        "quality": quality, "cell": pa.array(rng.integers(0, 256, n), pa.int64(), mask=~ok),
        "archive_outcome": ["not_added"] * n, "embedding": _list_column(emb, valid_emb),
        "skill": [None] * n, "prompt_version": ["v"] * n, "generator": ["g"] * n, "solver": ["s"] * n,
        "gen_tokens": np.full(n, 50), "solve_tokens": k * 30, "created_at": pa.array([now] * n,
                                                                                        pa.timestamp("us", "UTC")),
    }
    for name in CANDIDATES_SCHEMA.names:
        if name not in cols:  # columns newer than this script: null
            cols[name] = pa.nulls(n, CANDIDATES_SCHEMA.field(name).type)
    cands = pa.table({f.name: cols[f.name] for f in CANDIDATES_SCHEMA}).cast(CANDIDATES_SCHEMA)
    rows = np.flatnonzero(ok)
    a_cand = np.repeat(rows, K)
    a_no = np.tile(np.arange(K), len(rows))
    a_correct = a_no < n_correct[a_cand]
    m = len(a_cand)
    att = pa.table({
        "candidate_id": [ids[i] for i in a_cand], "run_id": [run_id] * m, "step": np.full(m, step),
        "attempt": a_no, "text": [f" Let me think. The answer is {i % 97 if c else 0}." for i, c in
                                  zip(a_cand.tolist(), a_correct.tolist(), strict=True)],
        "extracted": [str(i % 97) if c else "0" for i, c in zip(a_cand.tolist(), a_correct.tolist(), strict=True)],
        "correct": a_correct, "tokens": np.full(m, 30), "prompt_version": ["v"] * m, "solver": ["s"] * m,
        "created_at": pa.array([now] * m, pa.timestamp("us", "UTC")),
    }).cast(ATTEMPTS_SCHEMA)
    return cands, att


def make_runs(workdir: Path, rows: int, shard_rows: int, survive: float, seed: int) -> list[Path]:
    import json as _json

    from filters.benchmarks import load_benchmarks
    from pipeline.store.records import ATTEMPTS_SCHEMA, CANDIDATES_SCHEMA, Candidate, candidate_id, problem_id, to_table
    from pipeline.store.seeds import BUNDLED_SEEDS
    from pipeline.store.storage import Checkpoint, atomic_write_bytes, atomic_write_table, shard_name

    stamp = workdir / "params.json"
    params = {"rows": rows, "shard_rows": shard_rows, "survive": survive, "seed": seed, "dim": DIM,
              "near_noise": NEAR_NOISE}
    runs = [workdir / "run-a", workdir / "run-b"]
    if stamp.is_file() and _json.loads(stamp.read_text()) == params:
        return runs
    import shutil

    shutil.rmtree(workdir, ignore_errors=True)
    rng = np.random.default_rng(seed)
    heldout = [it.text for it in load_benchmarks(())[0].items]
    seeds = [_json.loads(line)["problem"] for line in BUNDLED_SEEDS.open()]
    centroids = _unit(rng, 256)
    per_run = rows // len(runs)
    for run in runs:
        for d in ("candidates", "attempts", "archive"):
            (run / d).mkdir(parents=True, exist_ok=True)
        run_id = run.name
        now = datetime(2026, 1, 1, tzinfo=UTC)
        seed_rows = [Candidate(
            id=candidate_id(run_id, 0, i), run_id=run_id, step=0, slot=i, parent_id=None, depth=0, operator="seed",
            problem_id=problem_id(p), problem=p, solution="", answer="1", raw_output=None, status="seed", reason=None,
            k=0, n_correct=0, solve_rate=None, majority_answer=None, majority_share=None, reference_agrees=None,
            quality=0.0, cell=i % 256, archive_outcome="new", embedding=_unit(rng, 1)[0].tolist(), skill=None,
            prompt_version=None, generator=None, solver=None, gen_tokens=0, solve_tokens=0, created_at=now)
            for i, p in enumerate(seeds)]
        atomic_write_table(run / "candidates" / shard_name(0), to_table(seed_rows, CANDIDATES_SCHEMA))
        atomic_write_table(run / "attempts" / shard_name(0), ATTEMPTS_SCHEMA.empty_table())
        step, done, recent = 0, 0, []
        while done < per_run:
            step += 1
            n = min(shard_rows, per_run - done)
            cands, att = _shard(rng, run_id, step, n, heldout, survive, recent)
            atomic_write_table(run / "candidates" / shard_name(step), cands)
            atomic_write_table(run / "attempts" / shard_name(step), att)
            done += n
            print(f"  {run.name} step {step}: {n} candidates, {att.num_rows} attempts", file=sys.stderr, flush=True)
        np.save(run / "archive" / "centroids.npy", centroids)
        (run / "config.toml").write_text('[archive]\nembedder = "embedded"\n')
        atomic_write_bytes(run / "checkpoint.json", Checkpoint(run_id, step, {}).to_json().encode())
    stamp.write_text(_json.dumps(params))
    return runs


class TreeMemory:
    """Peak of the summed RSS of this process and all its descendants, sampled in a thread."""

    def __init__(self, interval_s: float = 0.2) -> None:
        import psutil

        self._proc = psutil.Process()
        self._interval = interval_s
        self.peak = 0
        self.per_process: dict[int, int] = {}  # pid -> peak RSS
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        import psutil

        total = 0
        for p in [self._proc, *self._proc.children(recursive=True)]:
            try:
                rss = p.memory_info().rss
            except psutil.Error:
                continue
            total += rss
            self.per_process[p.pid] = max(self.per_process.get(p.pid, 0), rss)
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self._interval)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())


def run_export(args: argparse.Namespace) -> None:
    """Child process: export the runs, print one JSON line with the figures."""
    from filters.config import load_export_config
    from filters.export import export_runs

    runs = [Path(args.workdir) / "run-a", Path(args.workdir) / "run-b"]
    out = Path(args.workdir) / "out"
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    cfg = load_export_config(args.config).replace(scheduler=args.scheduler, workers=args.workers)
    t0 = time.perf_counter()
    with TreeMemory() as mem:
        res = export_runs(runs, out, config=cfg, budget=args.budget,
                          log=lambda m: print(f"  [{time.perf_counter() - t0:6.1f}s] {m}", file=sys.stderr,
                                              flush=True))
    wall = time.perf_counter() - t0
    kib = 1024
    print(json.dumps({
        "wall_s": round(wall, 1), "phases_s": {k: round(v, 1) for k, v in res.seconds.items()},
        "peak_tree_rss_mib": round(mem.peak / kib / kib), "driver_maxrss_mib": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kib),
        "peak_rss_by_process_mib": sorted((round(v / kib / kib) for v in mem.per_process.values()), reverse=True),
        "candidates": res.candidates, "data_rows": res.data_rows, "rejected_rows": res.rejected_rows,
        "funnel": [[f.name, f.seen, f.rejected] for f in res.funnel],
    }))


def _machine() -> str:
    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
        cpu = model
    except (OSError, StopIteration):
        pass
    return (f"{os.cpu_count()} cores ({cpu}), {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="generated candidate rows (both runs together)")
    ap.add_argument("--shard-rows", type=int, default=50_000, help="candidate rows per step shard")
    ap.add_argument("--survive", type=float, default=0.3, help="share of ok rows with a solve rate in the band")
    ap.add_argument("--budget", type=int, default=200_000, help="export budget (output rows)")
    ap.add_argument("--scheduler", default="processes", choices=("processes", "threads", "sync"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--config", default=None, help="export config TOML (default: the packaged defaults)")
    ap.add_argument("--workdir", default="/tmp/sparq-bench-export")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", default=str(REPO / "bench" / "results.md"))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        run_export(args)
        return
    t = time.perf_counter()
    make_runs(Path(args.workdir), args.rows, args.shard_rows, args.survive, args.seed)
    print(f"runs ready in {time.perf_counter() - t:.0f} s under {args.workdir}", file=sys.stderr)
    cmd = [sys.executable, __file__, "--child", *sys.argv[1:]]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    load_before = os.getloadavg()[0]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, env=env, text=True, check=True)
    load_after = os.getloadavg()[0]
    fig = json.loads(proc.stdout.strip().splitlines()[-1])
    rows_m = args.rows / 1e6
    line = (f"export {rows_m:g}M rows ({args.shard_rows} per shard, survive {args.survive}, budget {args.budget}, "
            f"{args.scheduler} x{args.workers}): {fig['wall_s']} s wall, peak tree RSS {fig['peak_tree_rss_mib']} MiB "
            f"(driver maxrss {fig['driver_maxrss_mib']} MiB; per-process peaks {fig['peak_rss_by_process_mib']} MiB); "
            f"{fig['data_rows']} rows out, {fig['rejected_rows']} rejected; phases {fig['phases_s']}; "
            f"1-min load average {load_before:.1f} before, {load_after:.1f} after (other processes share the cores)")
    print(line)
    print(json.dumps(fig["funnel"]))
    results = Path(args.results)
    new = not results.exists()
    with results.open("a", encoding="utf-8") as fh:
        if new:
            fh.write("# Benchmark results\n\nOne line per run, appended by the bench scripts.\n\n")
        fh.write(f"- {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {_machine()}: `python bench/export_1m.py "
                 f"{' '.join(sys.argv[1:])}`: {line}\n")


if __name__ == "__main__":
    main()
