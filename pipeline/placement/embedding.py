"""Problem-text embeddings with sentence-transformers (L2-normalised float32 rows).

Seed sets are embedded again by every campaign that starts from them (360 bundled
seeds: about 8 s on 2 CPU cores). `encode_cached` keeps such embeddings in
$SPARQ_CACHE/embeddings, keyed by the embedder and the exact texts, so a campaign on
seeds seen before starts at once; SPARQ_EMBED_CACHE=0 turns the cache off.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.models import EMBEDDED, cache_dir, embedded_embedder_path


class Embedder:
    def __init__(self, model: str = EMBEDDED, *, device: str = "cpu", batch_size: int = 64) -> None:
        from sentence_transformers import SentenceTransformer

        self.name = "all-MiniLM-L6-v2 (bundled)" if model == EMBEDDED else model
        path = embedded_embedder_path() if model == EMBEDDED else model
        kwargs = {"local_files_only": True} if Path(path).exists() else {}
        try:
            self._model = SentenceTransformer(path, device=device, **kwargs)
        except OSError as exc:
            raise ValueError(f"embedder {model!r}: cannot load ({exc})") from exc
        self._batch = batch_size
        self._identity = f"{self.name}|{Path(path).resolve() if Path(path).exists() else path}"
        dim_of = getattr(self._model, "get_embedding_dimension", None) or \
            self._model.get_sentence_embedding_dimension
        self.dim = int(dim_of())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, unit-norm rows; an empty input gives (0, dim)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self._model.encode(list(texts), batch_size=self._batch, normalize_embeddings=True,
                                  convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def encode_cached(self, texts: Sequence[str]) -> np.ndarray:
        """`encode`, through the on-disk cache (a hit returns the rows first computed)."""
        if os.environ.get("SPARQ_EMBED_CACHE", "1") == "0" or not texts:
            return self.encode(texts)
        digest = hashlib.sha256(self._identity.encode())
        for text in texts:
            digest.update(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest())
        path = cache_dir() / "embeddings" / f"{digest.hexdigest()}.npy"
        try:
            vecs = np.load(path)
            if vecs.shape == (len(texts), self.dim) and vecs.dtype == np.float32:
                return vecs
        except (OSError, ValueError):
            pass  # missing or unreadable: compute and (re)write below
        vecs = self.encode(texts)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp-{os.getpid()}.npy")
            np.save(tmp, vecs)
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only cache only costs time
        return vecs
