"""Decontamination: a problem that leaks a benchmark item is rejected, naming the item.

Two signals, either one rejects:
- word n-gram overlap on normalised text, where every number becomes '#', so a copy with
  the numbers changed overlaps fully; the score is the share of the benchmark item's
  n-grams found in the problem (items shorter than n use their own length, so a short
  item copied whole still matches);
- embedding cosine between the problem's stored embedding and the item's (same
  embedder), which catches reordered words and paraphrase that break n-grams.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from filters.base import Batch, Filter, Verdicts
from filters.benchmarks import BenchItem
from pipeline.store.records import normalize_text

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# Words, the number placeholder, and each other symbol on its own ('*' and '+' differ).
_TOKEN = re.compile(r"#|[^\W\d_]+|[^\w\s]")
_COSINE_CHUNK = 4096


def ngram_tokens(text: str) -> list[str]:
    """Normalised tokens: case-folded, whitespace collapsed, every number replaced by '#'."""
    return _TOKEN.findall(_NUMBER.sub("#", normalize_text(text)))


def _grams(tokens: list[str], n: int) -> set[str]:
    return {" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


@dataclass(frozen=True)
class DecontamIndex:
    """Benchmark items with their n-gram sets and unit embeddings; small, sent to every worker."""

    items: tuple[BenchItem, ...]
    grams: dict[int, dict[str, tuple[int, ...]]]  # n -> gram -> indices of the items that have it
    sizes: np.ndarray  # n-grams per item
    embeddings: np.ndarray  # (items, dim) float32, unit rows
    n: int
    ngram_threshold: float
    cosine_threshold: float

    @classmethod
    def build(cls, items: list[BenchItem], embeddings: np.ndarray, *, n: int, ngram_threshold: float,
              cosine_threshold: float) -> DecontamIndex:
        grams: dict[int, dict[str, list[int]]] = {}
        sizes = np.zeros(len(items), dtype=np.int64)
        for i, item in enumerate(items):
            tokens = ngram_tokens(item.text)
            k = min(n, len(tokens))
            if k == 0:
                continue
            item_grams = _grams(tokens, k)
            sizes[i] = len(item_grams)
            by_gram = grams.setdefault(k, {})
            for g in item_grams:
                by_gram.setdefault(g, []).append(i)
        emb = np.ascontiguousarray(embeddings, dtype=np.float32)
        if emb.shape[0] != len(items):
            raise ValueError(f"{emb.shape[0]} benchmark embeddings for {len(items)} items")
        return cls(tuple(items), {k: {g: tuple(v) for g, v in d.items()} for k, d in grams.items()}, sizes,
                   emb, n, ngram_threshold, cosine_threshold)

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def best_ngram(self, text: str) -> tuple[int, float]:
        """(item index, share of its n-grams in `text`) of the best-overlapping item, or (-1, 0)."""
        tokens = ngram_tokens(text)
        hits: Counter[int] = Counter()
        for k, by_gram in self.grams.items():
            for g in _grams(tokens, k):
                for i in by_gram.get(g, ()):
                    hits[i] += 1
        best, share = -1, 0.0
        for i, c in hits.items():
            s = c / self.sizes[i]
            if s > share or (s == share and i < best):
                best, share = i, s
        return best, share

    def cosines(self, embeddings: np.ndarray) -> np.ndarray:
        """(rows, items) cosine of unit rows against the items, in chunks to bound memory."""
        out = np.empty((len(embeddings), len(self.items)), dtype=np.float32)
        for s in range(0, len(embeddings), _COSINE_CHUNK):
            out[s:s + _COSINE_CHUNK] = np.asarray(embeddings[s:s + _COSINE_CHUNK], dtype=np.float32) @ self.embeddings.T
        return out


def decontam_filter(index: DecontamIndex) -> Filter:
    def run(batch: Batch) -> Verdicts:
        n = len(batch)
        out = Verdicts.of(n)
        if batch.embeddings is None:
            raise RuntimeError("decontamination needs the stored embeddings")
        texts = batch.frame["problem"].tolist()
        for s in range(0, n, _COSINE_CHUNK):
            cos = index.cosines(batch.embeddings[s:s + _COSINE_CHUNK])
            best_cos = cos.argmax(axis=1)
            for j, text in enumerate(texts[s:s + _COSINE_CHUNK]):
                item_ng, share = index.best_ngram(text or "")
                c = float(cos[j, best_cos[j]])
                if share >= index.ngram_threshold:
                    item, c = item_ng, float(cos[j, item_ng])
                elif c >= index.cosine_threshold:
                    item = int(best_cos[j])
                    share = _share_for(index, text or "", item)
                else:
                    continue
                it = index.items[item]
                out.reject(s + j, "benchmark_leak",
                           f"leaks {it.benchmark} item {it.item_id}: n-gram overlap {share:.2f}, cosine "
                           f"{c:.3f} (thresholds {index.ngram_threshold}, {index.cosine_threshold})",
                           f"{it.benchmark}:{it.item_id}: {it.text}")
        return out

    return Filter("decontamination", run)


def _share_for(index: DecontamIndex, text: str, item: int) -> float:
    tokens = ngram_tokens(text)
    item_tokens = ngram_tokens(index.items[item].text)
    k = min(index.n, len(item_tokens))
    if k == 0:
        return 0.0
    mine = _grams(item_tokens, k)
    return len(mine & _grams(tokens, k)) / len(mine)
