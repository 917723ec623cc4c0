"""All pairs of rows whose cosine is at or above a threshold, with faiss.

Up to `exact_below` rows: brute force (IndexFlatIP), exact. Above: an IVF index with
fp16 scalar-quantised vectors, searched `nprobe` lists per query. Brute force over a
million 384-d rows is ~4e14 flops (hours on two cores); IVF scans about nprobe/nlist of
the rows per query, and near-duplicates sit so close together that they share a list
or a neighbouring one, so the recall loss is small (and measured in tests/test_filters.py).
fp16 storage halves the index (768 MB at 1M x 384) and moves cosines by ~1e-3.
"""

from __future__ import annotations

import math

import faiss
import numpy as np

_QUERY_CHUNK = 16_384
_ADD_CHUNK = 65_536


def _f32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


def _ivf_index(emb: np.ndarray, nlist: int, nprobe: int, seed: int) -> faiss.Index:
    n, dim = emb.shape
    nlist = nlist or max(1, int(math.sqrt(n)))
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_fp16,
                                          faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.cp.niter = 10  # list balance matters little for a threshold search; time does
    # k-means on a sample: 64 points per list is plenty to place the lists.
    sample = np.random.default_rng(seed).choice(n, size=min(n, 64 * nlist), replace=False)
    index.train(_f32(emb[np.sort(sample)]))
    index.nprobe = min(nprobe, nlist)
    return index


def similar_pairs(emb: np.ndarray, threshold: float, *, exact_below: int, nlist: int = 0, nprobe: int = 8,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, cosine) arrays of row pairs a != b with cosine >= threshold (each pair may appear twice)."""
    n = len(emb)
    if n < 2:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float32)
    dim = emb.shape[1]
    index = faiss.IndexFlatIP(dim) if n <= exact_below else _ivf_index(emb, nlist, nprobe, seed)
    for s in range(0, n, _ADD_CHUNK):
        index.add(_f32(emb[s:s + _ADD_CHUNK]))
    # faiss keeps inner products strictly above the radius; the epsilon makes the threshold inclusive.
    radius = threshold - 1e-6
    srcs, dsts, sims = [], [], []
    for s in range(0, n, _QUERY_CHUNK):
        lims, dist, idx = index.range_search(_f32(emb[s:s + _QUERY_CHUNK]), radius)
        src = s + np.repeat(np.arange(len(lims) - 1), np.diff(lims.astype(np.int64)))
        keep = idx != src
        srcs.append(src[keep])
        dsts.append(idx[keep].astype(np.int64))
        sims.append(dist[keep].astype(np.float32))
    return np.concatenate(srcs), np.concatenate(dsts), np.concatenate(sims)
