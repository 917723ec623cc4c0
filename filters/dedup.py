"""Global duplicate filters over the reduced columns: exact (normalised text) and near (embeddings).

Both keep the copy with the best `priority` (0 = best: highest quality, then earliest
run/step/slot) and name that copy in `matched`, so a rejected duplicate can be traced.
"""

from __future__ import annotations

import numpy as np

from filters.base import Batch, Filter, Verdicts
from filters.neighbors import similar_pairs


def exact_dedup_filter() -> Filter:
    """Same `problem_id` (hash of pipeline.store.records.normalize_text of the problem) = same problem."""

    def run(batch: Batch) -> Verdicts:
        f = batch.frame
        order = np.argsort(f["priority"].to_numpy(), kind="stable")
        pid = f["problem_id"].to_numpy(dtype=object)[order]
        ids = f["id"].to_numpy(dtype=object)[order]
        first: dict[str, int] = {}
        out = Verdicts.of(len(f))
        for pos, (p, row) in enumerate(zip(pid, order, strict=True)):
            keeper = first.setdefault(p, pos)
            if keeper != pos:
                out.reject(row, "exact_duplicate", f"same normalised problem as {ids[keeper]} (problem_id {p})",
                           ids[keeper])
        return out

    return Filter("exact_dedup", run)


def near_dup_filter(threshold: float, *, exact_below: int, nlist: int, nprobe: int, seed: int) -> Filter:
    """Greedy in priority order: a row is kept unless a kept, better row is within `threshold`."""

    def run(batch: Batch) -> Verdicts:
        if batch.embeddings is None:
            raise RuntimeError("near-duplicate removal needs the stored embeddings")
        n = len(batch)
        rank = np.empty(n, dtype=np.int64)
        rank[np.argsort(batch.frame["priority"].to_numpy(), kind="stable")] = np.arange(n)
        a, b, sim = similar_pairs(batch.embeddings, threshold, exact_below=exact_below, nlist=nlist,
                                  nprobe=nprobe, seed=seed)
        # Orient every pair from the better row to the worse and process by the better row's rank:
        # a row's own fate is then settled before its pairs are looked at.
        swap = rank[a] > rank[b]
        better, worse = np.where(swap, b, a), np.where(swap, a, b)
        order = np.lexsort((rank[worse], rank[better]))
        removed_by = np.full(n, -1, dtype=np.int64)
        cos = np.zeros(n, dtype=np.float32)
        for k in order:
            i, j = better[k], worse[k]
            if removed_by[i] >= 0 or removed_by[j] >= 0:
                continue
            removed_by[j], cos[j] = i, sim[k]
        out = Verdicts.of(n)
        gone = np.flatnonzero(removed_by >= 0)
        keepers = batch.frame["id"].iloc[removed_by[gone]].tolist()  # only the ids named, not all
        for j, kept_id in zip(gone, keepers, strict=True):
            out.reject(j, "near_duplicate", f"near duplicate of {kept_id} (cosine {cos[j]:.3f} >= {threshold})",
                       kept_id)
        return out

    return Filter("near_dup", run)
