"""Insert throughput of CVTArchive: 100K random unit 384-d vectors, batches of 1000.

    .venv/bin/python bench/archive_insert.py                  # 10K and 100K cells
    .venv/bin/python bench/archive_insert.py --cells 10000 --inserts 20000

It prints inserts/s for archives of 10K and 100K cells, the cell lookup alone (faiss's
exact flat search plus the float64 re-rank, `CVTArchive.index_of`), and the process's
peak RSS after each; figures go to bench/results.md. Centroids are random unit vectors
rather than `build_centroids` output: k-means at 100K cells would dominate the run, and
the lookup cost depends only on the number of cells and the dimension.

It also tries a two-stage exact lookup (not used by the library): bfloat16 scores for
all cells (torch, fp32 accumulation), the top `--two-stage-k` kept, then the float64
re-rank. It is exact, not approximate: each bf16 score is within EPS of the exact one
(inputs rounded to 8 significant bits: |error| <= 2^-7 * sum|q_i c_i| <= 2^-7 for unit
rows, plus fp32 accumulation), so when the k-th score is more than 2 * EPS below the
best, no cell outside the top k can be the nearest; rows where that does not hold fall
back to the exact flat search. Its cells are checked against brute force (float64 scores
of every cell) on a sample of rows.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np
from benchlib import add_threads_arg, append_results, set_threads

from archives import CVTArchive

DIM = 384
N_INSERTS = 100_000
BATCH = 1_000
CELL_COUNTS = (10_000, 100_000)
# Bound on |bf16-input, fp32-accumulated score - exact score| for (near) unit rows:
# 2^-7 for the rounded inputs (with a margin for centroid norms up to 1 + 1e-4), plus
# the fp32 accumulation error bound DIM * 2^-24.
EPS = 2.0**-7 * (1 + 1e-3) + DIM * 2.0**-24


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux (bytes on macOS; this bench targets Linux).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class TwoStage:
    """bf16 candidate scores + exact float64 re-rank (see module doc); falls back to `exact`."""

    def __init__(self, centroids: np.ndarray, k: int, exact) -> None:
        import torch

        self.torch = torch
        self.cents = centroids
        self.cents_bf16 = torch.from_numpy(centroids).to(torch.bfloat16)
        self.k = min(k, centroids.shape[0])
        self.exact = exact
        self.fallbacks = 0

    def lookup(self, unit: np.ndarray, chunk: int = 256) -> np.ndarray:
        torch = self.torch
        out = np.empty(unit.shape[0], dtype=np.int64)
        for s in range(0, unit.shape[0], chunk):
            q = unit[s : s + chunk]
            scores = (torch.from_numpy(q).to(torch.bfloat16) @ self.cents_bf16.T).float()
            top, cand = torch.topk(scores, self.k, dim=1)
            top, cand = top.numpy(), cand.numpy()
            safe = top[:, -1] < top[:, 0] - 2 * EPS
            cand = np.sort(cand, axis=1)  # exact ties go to the lowest cell, as in CVTArchive
            exact = np.sum(self.cents[cand].astype(np.float64) * q[:, None, :].astype(np.float64), axis=2)
            res = cand[np.arange(len(q)), np.argmax(exact, axis=1)]
            if not safe.all():
                self.fallbacks += int((~safe).sum())
                res[~safe] = self.exact(q[~safe])
            out[s : s + chunk] = res
        return out


def bench(cells: int, n_inserts: int, two_stage_k: int, check_rows: int) -> dict:
    rng = np.random.default_rng(cells)
    archive = CVTArchive(centroids=_unit(rng, cells))
    data_rng = np.random.default_rng(0)
    insert_s = insert_cpu = 0.0
    for start in range(0, n_inserts, BATCH):
        emb = _unit(data_rng, BATCH)
        qual = data_rng.random(BATCH)
        ids = [f"p{i}" for i in range(start, start + BATCH)]
        t0, c0 = time.perf_counter(), time.process_time()
        archive.add(ids, emb, qual, steps=np.full(BATCH, start // BATCH))
        insert_s += time.perf_counter() - t0
        insert_cpu += time.process_time() - c0
    rss = _peak_rss_mib()

    # The cell lookup alone on the same batches, to show where the insert time goes.
    probe = [_unit(data_rng, BATCH) for _ in range(5)]
    t0, c0 = time.perf_counter(), time.process_time()
    for emb in probe:
        archive.index_of(emb)
    lookup_s, lookup_cpu = time.perf_counter() - t0, time.process_time() - c0
    # The faiss search alone (the part of the lookup that is not the re-rank).
    t0 = time.perf_counter()
    for emb in probe:
        archive._index.search(emb, 4)
    search_s = time.perf_counter() - t0

    res = {"cells": cells, "inserts_per_s": n_inserts / insert_s, "cpu_ms_per_1000": 1e6 * insert_cpu / n_inserts,
           "load": os.getloadavg()[0], "lookup_per_s": len(probe) * BATCH / lookup_s,
           "search_share": search_s / lookup_s, "elites": archive.stats.num_elites,
           "coverage": archive.stats.coverage, "rss_mib": rss}
    if two_stage_k:
        two = TwoStage(archive.centroids, two_stage_k, archive.index_of)
        two.lookup(probe[0][:64])  # warm torch
        two.fallbacks = 0
        t0, c0 = time.perf_counter(), time.process_time()
        cells_two = [two.lookup(emb) for emb in probe]
        two_s, two_cpu = time.perf_counter() - t0, time.process_time() - c0
        same = np.mean([np.array_equal(a, archive.index_of(emb)) for a, emb in zip(cells_two, probe, strict=True)])
        # Brute force: float64 scores against every centroid.
        sample = probe[0][:check_rows]
        brute = np.argmax(sample.astype(np.float64) @ archive.centroids.astype(np.float64).T, axis=1)
        res.update(two_lookup_per_s=len(probe) * BATCH / two_s, two_cpu_ratio=lookup_cpu / two_cpu,
                   two_same_as_library=float(same),
                   two_brute_agree=float(np.mean(two.lookup(sample) == brute)),
                   lib_brute_agree=float(np.mean(archive.index_of(sample) == brute)),
                   two_fallback_share=two.fallbacks / (len(probe) * BATCH))
    line = (f"cells={cells:,}: {res['inserts_per_s']:,.0f} inserts/s ({res['cpu_ms_per_1000']:.0f} CPU ms per 1,000 "
            f"inserts, load average {res['load']:.1f}), lookup alone {res['lookup_per_s']:,.0f}/s "
            f"(faiss flat search {100 * res['search_share']:.0f}% of it), {res['elites']:,} elites "
            f"(coverage {res['coverage']:.3f}), peak RSS {rss:,.0f} MiB")
    if two_stage_k:
        line += (f"; two-stage bf16 lookup (top {two_stage_k}) {res['two_lookup_per_s']:,.0f}/s = "
                 f"{res['two_lookup_per_s'] / res['lookup_per_s']:.2f}x the library's lookup in wall time, "
                 f"{res['two_cpu_ratio']:.2f}x in CPU time, same cells as the "
                 f"library on {100 * res['two_same_as_library']:.0f}% of batches, agrees with float64 brute force on "
                 f"{100 * res['two_brute_agree']:.2f}% of {check_rows} rows (library: "
                 f"{100 * res['lib_brute_agree']:.2f}%), exact fallback for {100 * res['two_fallback_share']:.2f}% "
                 f"of rows")
    print(line, flush=True)
    res["line"] = line
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, nargs="+", default=list(CELL_COUNTS))
    ap.add_argument("--inserts", type=int, default=N_INSERTS)
    ap.add_argument("--two-stage-k", type=int, default=32, help="0: skip the two-stage prototype")
    ap.add_argument("--check-rows", type=int, default=1000, help="rows checked against brute force")
    ap.add_argument("--no-results", action="store_true", help="do not append to bench/results.md")
    add_threads_arg(ap)
    args = ap.parse_args()
    threads = set_threads(args.threads)
    print(f"{args.inserts:,} inserts of random unit {DIM}-d vectors in batches of {BATCH:,}")
    lines = [f"archive insert ({args.inserts:,} random unit {DIM}-d rows, batches of {BATCH:,}, {threads}) " + bench(
        cells, args.inserts, args.two_stage_k, args.check_rows)["line"] for cells in args.cells]
    lines.append("target >= 50,000 inserts/s at 10K cells")
    if not args.no_results:
        append_results("bench/archive_insert.py", lines)


if __name__ == "__main__":
    main()
