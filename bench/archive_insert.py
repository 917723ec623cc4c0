"""Insert throughput of CVTArchive: 100K random unit 384-d vectors, batches of 1000.

Run ``python bench/archive_insert.py`` with the project installed (``pip install -e .``).
It prints inserts/s for archives of 10K and 100K cells and the process's peak RSS after
each. Centroids are random unit vectors rather than ``build_centroids`` output: k-means
at 100K cells would dominate the run, and the lookup cost depends only on the number of
cells and the dimension.
"""

from __future__ import annotations

import resource
import time

import numpy as np

from archives import CVTArchive

DIM = 384
N_INSERTS = 100_000
BATCH = 1_000
CELL_COUNTS = (10_000, 100_000)


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux (bytes on macOS; this bench targets Linux).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench(cells: int) -> None:
    rng = np.random.default_rng(cells)
    archive = CVTArchive(centroids=_unit(rng, cells))
    data_rng = np.random.default_rng(0)
    insert_s = 0.0
    for start in range(0, N_INSERTS, BATCH):
        emb = _unit(data_rng, BATCH)
        qual = data_rng.random(BATCH)
        ids = [f"p{i}" for i in range(start, start + BATCH)]
        t0 = time.perf_counter()
        archive.add(ids, emb, qual, steps=np.full(BATCH, start // BATCH))
        insert_s += time.perf_counter() - t0

    # The cell lookup alone on one batch, repeated, to show where the time goes.
    emb = _unit(data_rng, BATCH)
    t0 = time.perf_counter()
    for _ in range(10):
        archive.index_of(emb)
    lookup_rate = 10 * BATCH / (time.perf_counter() - t0)

    stats = archive.stats
    print(
        f"cells={cells:>7,}  inserts/s={N_INSERTS / insert_s:>10,.0f}  "
        f"lookup-only/s={lookup_rate:>10,.0f}  elites={stats.num_elites:,} "
        f"(coverage {stats.coverage:.3f})  peak RSS={_peak_rss_mib():,.0f} MiB"
    )


def main() -> None:
    print(f"{N_INSERTS:,} inserts of random unit {DIM}-d vectors in batches of {BATCH:,}")
    for cells in CELL_COUNTS:
        bench(cells)


if __name__ == "__main__":
    main()
