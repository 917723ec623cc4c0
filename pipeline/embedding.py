"""Problem-text embeddings with sentence-transformers (L2-normalised float32 rows)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.models import EMBEDDED, embedded_embedder_path


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
