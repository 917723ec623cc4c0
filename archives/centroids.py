"""Centroids for a CVT archive, fitted to where mutated problems will land.

A CVT archive divides the embedding sphere into Voronoi cells around fixed centroids.
Which centroids matters: a cell that no generated problem ever reaches is dead weight in
coverage, and a region that every problem falls into is one cell however varied the
problems in it are. This module fits the centroids with spherical k-means on the seed
embeddings plus points placed where the seeds' descendants are expected to go.
"""

from __future__ import annotations

import math

import faiss
import numpy as np

__all__ = ["build_centroids", "normalize_rows"]

# faiss keeps the k-means seed in a C int.
_MAX_FAISS_SEED = 2**31 - 1


def normalize_rows(x: np.ndarray, *, name: str = "embeddings") -> np.ndarray:
    """Return the rows of a 2-D array scaled to unit L2 norm, as C-contiguous float32.

    The norm is taken in float64 one row at a time, so a row's result never depends on
    which other rows share the array (batch and single inserts must agree bit for bit).

    Raises:
        ValueError: ``x`` is not 2-D, has no columns, or has a non-finite or all-zero row.
    """
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, dim); got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one column; got shape {arr.shape}")
    arr64 = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr64).all():
        bad = int(np.flatnonzero(~np.isfinite(arr64).all(axis=1))[0])
        raise ValueError(f"{name} must be finite; row {bad} is not")
    norms = np.sqrt(np.sum(arr64 * arr64, axis=1))
    if (norms == 0).any():
        bad = int(np.flatnonzero(norms == 0)[0])
        raise ValueError(f"{name} rows must be non-zero to normalise; row {bad} is all zeros")
    return np.ascontiguousarray(arr64 / norms[:, None], dtype=np.float32)


def _median_nn_distance(points: np.ndarray) -> float:
    """Median Euclidean distance from each (unit) point to its nearest other point."""
    index = faiss.IndexFlatL2(points.shape[1])
    index.add(points)
    # k=2: the first hit is the point itself (or an exact duplicate, at the same
    # distance 0), so the second hit is the nearest other point.
    sq_dist, _ = index.search(points, 2)
    return float(np.median(np.sqrt(np.maximum(sq_dist[:, 1], 0.0))))


def _training_points(
    seeds: np.ndarray,
    rng: np.random.Generator,
    n_interpolations: int,
    jitter: float,
) -> np.ndarray:
    n, dim = seeds.shape
    parts = [seeds]
    if n_interpolations > 0:
        first = rng.integers(0, n, size=n_interpolations)
        # An offset in [1, n) guarantees the partner differs from ``first``; a pair of a
        # seed with itself would just duplicate the seed.
        second = (first + rng.integers(1, n, size=n_interpolations)) % n
        sums = seeds[first].astype(np.float64) + seeds[second]
        norms = np.sqrt(np.sum(sums * sums, axis=1))
        # Antipodal pairs have no midpoint on the sphere; drop them rather than invent one.
        keep = norms > 1e-6
        parts.append((sums[keep] / norms[keep, None]).astype(np.float32))
    # Each seed jittered once, in a random order so that the result does not depend on
    # which seeds happen to come first. sd = jitter / sqrt(dim) makes the noise vector's
    # norm about ``jitter``: a copy lands about one typical neighbour distance away.
    noise = rng.standard_normal((n, dim)) * (jitter / math.sqrt(dim))
    jittered = seeds[rng.permutation(n)].astype(np.float64) + noise
    parts.append(normalize_rows(jittered, name="jittered seeds"))
    return np.ascontiguousarray(np.concatenate(parts, axis=0), dtype=np.float32)


def build_centroids(
    embeddings: np.ndarray,
    *,
    n_cells: int,
    seed: int,
    n_interpolations: int | None = None,
    jitter: float | None = None,
    kmeans_iters: int = 25,
) -> np.ndarray:
    """Fit ``n_cells`` unit-norm centroids to seed embeddings and their likely descendants.

    The k-means training set is

    * the seed embeddings, L2-normalised;
    * ``n_interpolations`` spherical midpoints ``normalise(a + b)`` of random pairs of
      distinct seeds (default ``2 * len(seeds)``);
    * one jittered copy of each seed: the seed plus Gaussian noise with standard deviation
      ``jitter / sqrt(dim)``, renormalised (default ``jitter`` is the median
      nearest-neighbour distance among the seeds).

    Why not cluster the seeds alone, or add uniform random points? The cells must exist
    beyond the seeds' own clusters, or every new problem falls into a seed's cell and the
    archive cannot reward novelty. A mutation of a seed lands near it, and a crossover or
    a drift between topics lands between two seeds, so that is where extra cells are
    useful. Uniform random points on a 384-d sphere are nearly orthogonal to every real
    problem; cells fitted to them would stay empty forever.

    Spherical k-means (``faiss.Kmeans(..., spherical=True)``) matches the cosine lookup
    the archive uses. Training runs single-threaded so that the result depends only on
    the inputs and ``seed``, not on the machine's thread count.

    Args:
        embeddings: seed embeddings, shape (n_seeds, dim); any scale, rows non-zero.
        n_cells: number of centroids to fit.
        seed: seeds both the choice of pairs and noise and faiss's k-means initialisation;
            in [0, 2**31 - 1].
        n_interpolations: number of midpoints; default ``2 * n_seeds``.
        jitter: Euclidean size of the jitter on the unit sphere; default the median
            nearest-neighbour distance among the seeds (needs at least two seeds).
        kmeans_iters: k-means iterations.

    Returns:
        float32 array (n_cells, dim) with L2-normalised rows.

    Raises:
        ValueError: bad shapes or arguments, or fewer training points than ``n_cells``.
    """
    seeds = normalize_rows(embeddings, name="embeddings")
    n_seeds, dim = seeds.shape
    if n_cells < 1:
        raise ValueError(f"n_cells must be >= 1; got {n_cells}")
    if kmeans_iters < 1:
        raise ValueError(f"kmeans_iters must be >= 1; got {kmeans_iters}")
    if not 0 <= seed <= _MAX_FAISS_SEED:
        raise ValueError(f"seed must be in [0, {_MAX_FAISS_SEED}]; got {seed}")
    if n_interpolations is None:
        n_interpolations = 2 * n_seeds if n_seeds >= 2 else 0
    if n_interpolations < 0:
        raise ValueError(f"n_interpolations must be >= 0; got {n_interpolations}")
    if n_interpolations > 0 and n_seeds < 2:
        raise ValueError(
            f"n_interpolations={n_interpolations} needs at least 2 seed embeddings; got {n_seeds}"
        )
    if jitter is None:
        if n_seeds < 2:
            raise ValueError(
                "jitter must be given when there is only one seed embedding "
                "(the default is the median nearest-neighbour distance among seeds)"
            )
        jitter = _median_nn_distance(seeds)
    if not (math.isfinite(jitter) and jitter >= 0):
        raise ValueError(f"jitter must be finite and >= 0; got {jitter}")

    rng = np.random.default_rng(seed)
    train = _training_points(seeds, rng, n_interpolations, jitter)
    if train.shape[0] < n_cells:
        raise ValueError(
            f"n_cells={n_cells} exceeds the {train.shape[0]} k-means training points "
            f"({n_seeds} seeds plus midpoints and jittered copies); lower n_cells or "
            "raise n_interpolations"
        )

    kmeans = faiss.Kmeans(
        dim,
        n_cells,
        niter=kmeans_iters,
        seed=seed,
        spherical=True,
        # Few points per cell is the point of this training set; without this faiss
        # prints a warning whenever there are fewer than 39 points per centroid.
        min_points_per_centroid=1,
        verbose=False,
    )
    # faiss's OpenMP reductions can split work by thread count; one thread makes the
    # centroids a function of the inputs alone. Restore the caller's setting after.
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        kmeans.train(train)
    finally:
        faiss.omp_set_num_threads(threads)
    return normalize_rows(kmeans.centroids, name="k-means centroids")
