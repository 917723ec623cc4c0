"""All pairs of rows whose cosine is at or above a threshold: blocked matrix products.

Up to `exact_below` rows: every pair, in blocks of dense products (exact). Above: rows are
bucketed by their nearest of `nlist` spherical k-means centroids (an IVF partition), and
each row is compared with the members of the buckets of its `nprobe` nearest centroids,
bucket by bucket, as one matrix product per bucket. Both rows of a pair search, so a pair
is found if either one probes the other's bucket; near-duplicates sit so close together
that they share a bucket or a neighbouring one (recall against brute force is measured in
tests/unit/filters/test_filters.py).

Why not faiss's own IVF range search: it scans list by list per query, without BLAS; on
243K x 384 rows it took ~110 s here, where the blocked products take seconds. faiss still
trains the centroids and assigns the buckets.
"""

from __future__ import annotations

import math

import faiss
import numpy as np

_BLOCK = 4096  # rows per side of one dense product (4096 x 4096 float32 = 64 MB)


def _f32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


def _pairs_between(emb: np.ndarray, rows: np.ndarray, cols: np.ndarray, threshold: float,
                   out: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
    """Append (row, col, cosine) for every rows x cols pair with cosine >= threshold, row != col."""
    for s in range(0, len(cols), _BLOCK):
        c = cols[s:s + _BLOCK]
        right = _f32(emb[c]).T
        for r0 in range(0, len(rows), _BLOCK):
            r = rows[r0:r0 + _BLOCK]
            sim = _f32(emb[r]) @ right
            i, j = np.nonzero(sim >= threshold)
            keep = r[i] != c[j]
            out.append((r[i][keep], c[j][keep], sim[i[keep], j[keep]]))


def _buckets(emb: np.ndarray, nlist: int, nprobe: int, seed: int) -> np.ndarray:
    """(rows, nprobe) nearest centroid ids per row; column 0 is the row's own bucket."""
    n, dim = emb.shape
    km = faiss.Kmeans(dim, nlist, niter=5, seed=seed, spherical=True, max_points_per_centroid=40, verbose=False)
    # 40 rows per centroid (faiss's minimum is 39) and a few iterations: the buckets only need
    # to keep near rows together, and training time grows with both.
    sample = np.random.default_rng(seed).choice(n, size=min(n, 40 * nlist), replace=False)
    km.train(_f32(emb[np.sort(sample)]))
    probes = np.empty((n, nprobe), dtype=np.int64)
    for s in range(0, n, 65_536):
        probes[s:s + 65_536] = km.index.search(_f32(emb[s:s + 65_536]), nprobe)[1]
    return probes


def similar_pairs(emb: np.ndarray, threshold: float, *, exact_below: int, nlist: int = 0, nprobe: int = 3,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, cosine) arrays of row pairs a != b with cosine >= threshold (a pair may appear twice)."""
    n = len(emb)
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    # Strict float32 comparisons on fp16-rounded vectors: a hair of slack keeps the threshold inclusive.
    thr = threshold - 1e-6
    if n <= exact_below or n < 2:
        rows = np.arange(n)
        _pairs_between(emb, rows, rows, thr, out)
    else:
        # nlist ~ sqrt(nprobe * n) balances assigning rows to centroids (n * nlist) against the
        # bucket products (n * nprobe * n / nlist).
        nlist = min(n, nlist or max(1, int(math.sqrt(nprobe * n))))
        nprobe = min(nprobe, nlist)
        probes = _buckets(emb, nlist, nprobe, seed)
        home = probes[:, 0]
        members = np.argsort(home, kind="stable")
        bounds = np.searchsorted(home[members], np.arange(nlist + 1))
        flat = probes.ravel()
        askers = np.argsort(flat, kind="stable")
        ask_bounds = np.searchsorted(flat[askers], np.arange(nlist + 1))
        for b in range(nlist):
            cols = members[bounds[b]:bounds[b + 1]]
            rows = askers[ask_bounds[b]:ask_bounds[b + 1]] // nprobe
            if len(cols) and len(rows):
                _pairs_between(emb, rows, cols, thr, out)
    if not out:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float32)
    a, b, s = (np.concatenate(x) for x in zip(*out, strict=True))
    return a.astype(np.int64), b.astype(np.int64), s.astype(np.float32)
