"""Tests for the CVT archive and its centroid builder, on small hand-checkable cases."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pyarrow as pa
import pytest

from archives import AddStatus, ArchiveStats, CVTArchive, Elite, build_centroids

NEW = AddStatus.NEW
IMPROVE = AddStatus.IMPROVE_EXISTING
NOT_ADDED = AddStatus.NOT_ADDED


def axes_archive() -> CVTArchive:
    """Six cells on the signed axes of R^3: cell i is +e_i, cell 3 + i is -e_i."""
    eye = np.eye(3, dtype=np.float32)
    return CVTArchive(centroids=np.concatenate([eye, -eye]))


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


E0 = [1.0, 0.0, 0.0]
E1 = [0.0, 1.0, 0.0]


# ---------------------------------------------------------------- lookup


def test_index_of_picks_nearest_axis_at_any_scale():
    archive = axes_archive()
    emb = np.array(
        [
            [5.0, 0.2, -0.1],  # +x
            [0.1, -3.0, 0.2],  # -y
            [0.0, 0.3, 0.9],  # +z
            [-0.2, 0.1, -0.01],  # -x
        ]
    )
    cells = archive.index_of(emb)
    assert cells.dtype == np.int64
    assert cells.tolist() == [0, 4, 2, 3]


def test_index_of_exact_tie_goes_to_lowest_cell():
    archive = axes_archive()
    # Equidistant from +x (cell 0) and +y (cell 1).
    assert archive.index_of(np.array([[1.0, 1.0, 0.0]])).tolist() == [0]
    assert archive.index_of(np.array([[1.0, 1.0, 0.0]] * 30)).tolist() == [0] * 30


def test_index_of_near_ties_do_not_depend_on_batching():
    # Midpoints of two centroids are (near-)ties. faiss scores big batches with BLAS and
    # single rows with SIMD loops, which round differently; the archive must still give
    # a row the same cell in a batch as alone.
    rng = np.random.default_rng(0)
    centroids = unit_rows(rng, 300, 384)
    first = rng.integers(0, 300, size=500)
    second = (first + rng.integers(1, 300, size=500)) % 300
    mid = centroids[first] + centroids[second]
    archive = CVTArchive(centroids=centroids)
    batch = archive.index_of(mid)
    alone = [int(archive.index_of(row[None, :])[0]) for row in mid]
    assert batch.tolist() == alone
    assert np.isin(batch, np.stack([first, second])).all()


def test_index_of_empty_batch():
    assert axes_archive().index_of(np.zeros((0, 3))).shape == (0,)


def test_constructor_attributes_and_centroids_copy():
    archive = axes_archive()
    assert (archive.cells, archive.dim) == (6, 3)
    cents = archive.centroids
    assert cents.dtype == np.float32 and cents.shape == (6, 3)
    cents[0, 0] = 42.0
    assert archive.centroids[0, 0] == 1.0


# ---------------------------------------------------------------- statuses


def test_new_improve_not_added_and_tie_keeps_incumbent():
    archive = axes_archive()
    assert archive.add_single("a", np.array([2.0, 0.1, 0.0]), 1.0, step=0) == (NEW, 0)
    assert archive.add_single("b", np.array([1.0, 0.0, 0.2]), 0.5, step=1) == (NOT_ADDED, 0)
    assert archive.elite(0).id == "a"
    assert archive.add_single("c", np.array([1.0, -0.1, 0.0]), 1.0, step=2) == (NOT_ADDED, 0)
    assert archive.elite(0).id == "a"  # tie keeps the incumbent
    assert archive.add_single("d", np.array([1.0, 0.0, 0.0]), 1.5, step=3) == (IMPROVE, 0)
    assert archive.add_single("e", np.array([0.0, 1.0, 0.0]), -7.0, step=4) == (NEW, 1)

    elite = archive.elite(0)
    assert elite == Elite(
        id="d", cell=0, quality=1.5, step=3, embedding=np.array(E0, dtype=np.float32)
    )
    assert archive.elite(1).quality == -7.0
    assert archive.elite(2) is None


def test_batch_statuses_follow_sequential_order_within_a_cell():
    archive = axes_archive()
    archive.add(["inc"], np.array([E1]), [3.0], steps=[0])
    ids = ["r0", "r1", "r2", "r3", "r4", "r5", "r6"]
    emb = np.array([E0, E0, E1, E0, E0, E1, E0])
    qual = [1.0, 0.5, 3.0, 2.0, 2.0, 3.5, 1.0]
    status, cells = archive.add(ids, emb, qual, steps=list(range(1, 8)))
    assert status.dtype == np.int8
    assert cells.tolist() == [0, 0, 1, 0, 0, 1, 0]
    assert status.tolist() == [NEW, NOT_ADDED, NOT_ADDED, IMPROVE, NOT_ADDED, IMPROVE, NOT_ADDED]
    assert archive.elite(0).id == "r3"  # first row reaching the cell's maximum
    assert archive.elite(0).step == 4
    assert archive.elite(1).id == "r5"


def test_embeddings_are_stored_normalised_float32():
    archive = axes_archive()
    archive.add(["a"], np.array([[4.0, 3.0, 0.0]]), [1.0])
    emb = archive.elite(0).embedding
    assert emb.dtype == np.float32
    np.testing.assert_allclose(emb, [0.8, 0.6, 0.0], rtol=1e-6)
    assert archive.elite(0).step == -1  # no steps given
    with pytest.raises(ValueError):
        emb[0] = 0.0  # read-only view of archive state


def test_empty_add_is_a_no_op():
    archive = axes_archive()
    status, cells = archive.add([], np.zeros((0, 3)), [])
    assert status.shape == (0,) and cells.shape == (0,)
    assert len(archive) == 0


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_batch_add_equals_sequential_single_adds(seed):
    rng = np.random.default_rng(seed)
    dim, n_cells, n_rows = 8, 20, 400
    centroids = unit_rows(rng, n_cells, dim)
    emb = rng.standard_normal((n_rows, dim)) * rng.uniform(0.1, 10.0, size=(n_rows, 1))
    # Qualities from a small set, so ties and several rows per cell are common.
    qual = rng.integers(0, 6, size=n_rows).astype(float) / 2
    steps = rng.integers(0, 100, size=n_rows)
    ids = [f"p{i}" for i in range(n_rows)]

    warmup = 50  # start from a non-empty archive so incumbents take part
    batched = CVTArchive(centroids=centroids)
    batched.add(ids[:warmup], emb[:warmup], qual[:warmup], steps=steps[:warmup])
    # Split the rest into uneven batches.
    cuts = np.sort(rng.choice(np.arange(warmup + 1, n_rows), size=5, replace=False))
    bounds = [warmup, *cuts.tolist(), n_rows]
    b_status, b_cells = [], []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        s, c = batched.add(ids[lo:hi], emb[lo:hi], qual[lo:hi], steps=steps[lo:hi])
        b_status.append(s)
        b_cells.append(c)

    single = CVTArchive(centroids=centroids)
    s_status, s_cells = [], []
    for i in range(n_rows):
        s, c = single.add_single(ids[i], emb[i], qual[i], step=int(steps[i]))
        s_status.append(s)
        s_cells.append(c)

    assert np.concatenate(b_status).tolist() == s_status[warmup:]
    assert np.concatenate(b_cells).tolist() == s_cells[warmup:]
    assert batched == single
    assert batched.stats == single.stats
    assert batched.data().equals(single.data())


def test_batch_add_matches_a_plain_reference_loop():
    """The vectorised resolution against the rule written out one row at a time."""
    rng = np.random.default_rng(7)
    centroids = unit_rows(rng, 5, 4)
    archive = CVTArchive(centroids=centroids)
    best: dict[int, tuple[float, str]] = {}
    for batch in range(6):
        emb = rng.standard_normal((60, 4))
        qual = rng.integers(-2, 3, size=60).astype(float)
        ids = [f"b{batch}r{i}" for i in range(60)]
        status, cells = archive.add(ids, emb, qual)
        expected = []
        for cell, q, ident in zip(cells.tolist(), qual.tolist(), ids, strict=True):
            if cell not in best:
                best[cell] = (q, ident)
                expected.append(NEW)
            elif q > best[cell][0]:
                best[cell] = (q, ident)
                expected.append(IMPROVE)
            else:
                expected.append(NOT_ADDED)
        assert status.tolist() == expected
    for cell, (q, ident) in best.items():
        assert archive.elite(cell).id == ident and archive.elite(cell).quality == q


# ---------------------------------------------------------------- queries


def test_retrieve_reports_occupancy_and_ids():
    archive = axes_archive()
    archive.add(["a", "b"], np.array([E0, [0.0, 0.0, -1.0]]), [1.0, 2.0])
    occupied, ids = archive.retrieve(np.array([[2.0, 0.1, 0.0], E1, [0.1, 0.0, -0.5]]))
    assert occupied.dtype == bool
    assert occupied.tolist() == [True, False, True]
    assert ids == ["a", None, "b"]


def test_elite_rejects_out_of_range_cell():
    with pytest.raises(ValueError, match=r"cell must be in \[0, 6\); got 6"):
        axes_archive().elite(6)


def test_data_table_schema_and_order():
    archive = axes_archive()
    archive.add(["z", "x"], np.array([[0.0, 0.0, -1.0], E1]), [0.25, 0.5], steps=[9, 8])
    table = archive.data()
    assert table.schema == pa.schema(
        [
            ("cell", pa.int64()),
            ("id", pa.string()),
            ("quality", pa.float64()),
            ("step", pa.int64()),
            ("embedding", pa.list_(pa.float32(), 3)),
        ]
    )
    assert table.column("cell").to_pylist() == [1, 5]
    assert table.column("id").to_pylist() == ["x", "z"]
    assert table.column("step").to_pylist() == [8, 9]
    assert table.column("embedding").to_pylist() == [[0.0, 1.0, 0.0], [0.0, 0.0, -1.0]]
    assert axes_archive().data().num_rows == 0


# ---------------------------------------------------------------- stats


def test_stats_empty_archive():
    archive = axes_archive()
    assert archive.stats == ArchiveStats(
        num_cells=6, num_elites=0, coverage=0.0, qd_score=0.0, best=None, mean=None
    )
    assert len(archive) == 0


def test_stats_after_adds_and_replacement():
    archive = axes_archive()
    archive.add(["a", "b", "c"], np.array([E0, E1, [0.0, 0.0, -1.0]]), [1.0, 2.0, -0.5])
    assert archive.stats == ArchiveStats(
        num_cells=6, num_elites=3, coverage=0.5, qd_score=2.5, best=2.0, mean=2.5 / 3
    )
    archive.add(["d"], np.array([E0]), [4.0])  # replaces "a"
    assert archive.stats == ArchiveStats(
        num_cells=6, num_elites=3, coverage=0.5, qd_score=5.5, best=4.0, mean=5.5 / 3
    )
    archive.add(["e"], np.array([E0]), [0.0])  # rejected: no change
    assert archive.stats.qd_score == 5.5
    assert len(archive) == 3


# ---------------------------------------------------------------- sampling


def test_sample_elites_empty_archive_raises():
    with pytest.raises(ValueError, match="empty archive"):
        axes_archive().sample_elites(3, np.random.default_rng(0))


def test_sample_elites_is_uniform_over_occupied_cells_not_rows():
    archive = axes_archive()
    # 200 insertions land in cell 0 (one elite survives), a single one in cell 4.
    emb0 = np.tile(np.array([E0]), (200, 1))
    archive.add([f"x{i}" for i in range(200)], emb0, np.arange(200.0))
    archive.add(["lonely"], np.array([[0.0, -1.0, 0.0]]), [0.0])

    samples = archive.sample_elites(4000, np.random.default_rng(0))
    assert len(samples) == 4000
    cells = np.array([e.cell for e in samples])
    assert set(cells.tolist()) == {0, 4}
    assert abs(np.mean(cells == 0) - 0.5) < 0.05
    assert {e.id for e in samples} == {"x199", "lonely"}
    assert archive.sample_elites(0, np.random.default_rng(0)) == []


def test_sample_elites_is_reproducible_for_a_seeded_rng():
    rng = np.random.default_rng(3)
    archive = CVTArchive(centroids=unit_rows(rng, 30, 5))
    archive.add([f"p{i}" for i in range(100)], rng.standard_normal((100, 5)), rng.random(100))
    first = archive.sample_elites(20, np.random.default_rng(11))
    second = archive.sample_elites(20, np.random.default_rng(11))
    assert first == second


# ---------------------------------------------------------------- persistence


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    archive = CVTArchive(centroids=unit_rows(rng, 40, 16))
    n = 300
    archive.add(
        [f"id-{i}" for i in range(n)],
        rng.standard_normal((n, 16)),
        rng.normal(size=n),
        steps=rng.integers(0, 50, size=n),
    )
    extra = {"step": 12, "config": {"name": "t", "alpha": 0.1}}
    archive.save(tmp_path / "ckpt", extra=extra)

    names = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert names == ["centroids.npy", "elites.parquet", "state.json"]
    state = json.loads((tmp_path / "ckpt" / "state.json").read_text())
    assert state["format_version"] == 1
    assert (state["cells"], state["dim"], state["num_elites"]) == (40, 16, len(archive))

    loaded, loaded_extra = CVTArchive.load(tmp_path / "ckpt")
    assert loaded == archive
    assert loaded.stats == archive.stats
    assert loaded_extra == extra
    assert loaded.data().equals(archive.data())

    # The loaded archive carries on exactly like the original.
    more = rng.standard_normal((100, 16))
    q = rng.normal(size=100)
    ids = [f"more-{i}" for i in range(100)]
    s1, c1 = archive.add(ids, more, q)
    s2, c2 = loaded.add(ids, more, q)
    assert s1.tolist() == s2.tolist() and c1.tolist() == c2.tolist()
    assert loaded == archive


def test_save_load_empty_archive_without_extra(tmp_path):
    archive = axes_archive()
    archive.save(tmp_path)
    loaded, extra = CVTArchive.load(tmp_path)
    assert loaded == archive
    assert extra == {}
    assert loaded.stats == archive.stats


def test_load_rejects_unknown_format_version(tmp_path):
    axes_archive().save(tmp_path)
    state = json.loads((tmp_path / "state.json").read_text())
    state["format_version"] = 99
    (tmp_path / "state.json").write_text(json.dumps(state))
    with pytest.raises(ValueError, match="format_version must be 1; got 99"):
        CVTArchive.load(tmp_path)


def test_equality_sees_every_field():
    def filled(step: int, quality: float = 1.0, ident: str = "a") -> CVTArchive:
        archive = axes_archive()
        archive.add([ident], np.array([E0]), [quality], steps=[step])
        return archive

    assert filled(1) == filled(1)
    assert filled(1) != filled(2)
    assert filled(1) != filled(1, quality=2.0)
    assert filled(1) != filled(1, ident="b")
    assert filled(1) != axes_archive()
    other_centroids = CVTArchive(centroids=np.eye(3, dtype=np.float32))
    assert axes_archive() != other_centroids


# ---------------------------------------------------------------- validation


def test_add_shape_errors_name_argument_and_shapes():
    archive = axes_archive()
    with pytest.raises(
        ValueError, match=r"embeddings must have shape \(n, 3\); got shape \(2, 4\)"
    ):
        archive.add(["a", "b"], np.ones((2, 4)), [1.0, 2.0])
    with pytest.raises(ValueError, match=r"embeddings must have shape \(n, 3\); got shape \(3,\)"):
        archive.index_of(np.ones(3))
    with pytest.raises(ValueError, match=r"expected shape \(2, 3\); got shape \(3, 3\)"):
        archive.add(["a", "b"], np.ones((3, 3)), [1.0, 2.0])
    with pytest.raises(ValueError, match=r"qualities must have shape \(2,\); got shape \(3,\)"):
        archive.add(["a", "b"], np.ones((2, 3)), [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"steps must have shape \(2,\); got shape \(1,\)"):
        archive.add(["a", "b"], np.ones((2, 3)), [1.0, 2.0], steps=[1])
    with pytest.raises(ValueError, match=r"ids must be str; ids\[1\] is int"):
        archive.add(["a", 7], np.ones((2, 3)), [1.0, 2.0])
    with pytest.raises(ValueError, match=r"embedding must have shape \(3,\)"):
        archive.add_single("a", np.ones((1, 3)), 1.0)
    assert len(archive) == 0


def test_add_rejects_nan_quality_and_zero_embedding_without_inserting():
    archive = axes_archive()
    with pytest.raises(ValueError, match=r"qualities must be finite; qualities\[1\] is nan"):
        archive.add(["a", "b"], np.ones((2, 3)), [1.0, float("nan")])
    with pytest.raises(ValueError, match="row 0 is all zeros"):
        archive.add(["a"], np.zeros((1, 3)), [1.0])
    assert len(archive) == 0


def test_constructor_validates_centroids():
    with pytest.raises(ValueError, match=r"centroids must be a non-empty 2-D array"):
        CVTArchive(centroids=np.ones(3, dtype=np.float32))
    with pytest.raises(ValueError, match="unit-norm rows; row 1 has norm 2"):
        CVTArchive(centroids=np.array([[1.0, 0.0], [0.0, 2.0]]))


# ---------------------------------------------------------------- centroids


def clustered_seeds(seed: int = 0, n_topics: int = 6, per_topic: int = 10, dim: int = 32):
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((n_topics, dim))
    x = np.repeat(topics, per_topic, axis=0) + 0.3 * rng.standard_normal(
        (n_topics * per_topic, dim)
    )
    return x * 5.0  # any scale: the builder normalises


def test_build_centroids_shape_dtype_and_unit_rows():
    cents = build_centroids(clustered_seeds(), n_cells=40, seed=0)
    assert cents.shape == (40, 32)
    assert cents.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(cents, axis=1), 1.0, atol=1e-6)
    assert np.unique(cents, axis=0).shape[0] == 40
    CVTArchive(centroids=cents)  # accepted as is


def test_build_centroids_is_deterministic_and_restores_threads():
    threads = faiss.omp_get_max_threads()
    seeds = clustered_seeds()
    a = build_centroids(seeds, n_cells=50, seed=3)
    b = build_centroids(seeds, n_cells=50, seed=3)
    c = build_centroids(seeds, n_cells=50, seed=4)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert faiss.omp_get_max_threads() == threads


def test_build_centroids_places_cells_beyond_the_seed_clusters():
    # 6 tight topics but 60 cells: the extra cells must sit between topics or around
    # them, not pile onto the 6 topic centres.
    seeds = clustered_seeds()
    cents = build_centroids(seeds, n_cells=60, seed=0)
    archive = CVTArchive(centroids=cents)
    seed_cells = np.unique(archive.index_of(seeds))
    assert seed_cells.size > 6
    assert seed_cells.size < 60  # some cells exist only for midpoints and jitter


def test_build_centroids_too_few_points_names_both_numbers():
    seeds = clustered_seeds(n_topics=2, per_topic=5)  # 10 seeds -> 10 + 20 + 10 = 40
    with pytest.raises(ValueError, match=r"n_cells=41 exceeds the 40 k-means training points"):
        build_centroids(seeds, n_cells=41, seed=0)
    cents = build_centroids(seeds, n_cells=40, seed=0)
    assert cents.shape == (40, 32)
    with pytest.raises(ValueError, match=r"n_cells=21 exceeds the 20 k-means"):
        build_centroids(seeds, n_cells=21, seed=0, n_interpolations=0)


def test_build_centroids_argument_errors():
    seeds = clustered_seeds()
    with pytest.raises(
        ValueError, match=r"embeddings must be 2-D \(rows, dim\); got shape \(32,\)"
    ):
        build_centroids(seeds[0], n_cells=1, seed=0)
    with pytest.raises(ValueError, match="jitter must be given"):
        build_centroids(seeds[:1], n_cells=1, seed=0)
    with pytest.raises(ValueError, match="n_interpolations=3 needs at least 2"):
        build_centroids(seeds[:1], n_cells=1, seed=0, jitter=0.1, n_interpolations=3)
    with pytest.raises(ValueError, match="jitter must be finite and >= 0; got -1"):
        build_centroids(seeds, n_cells=4, seed=0, jitter=-1.0)
    with pytest.raises(ValueError, match="n_cells must be >= 1; got 0"):
        build_centroids(seeds, n_cells=0, seed=0)
    with pytest.raises(ValueError, match="seed must be in"):
        build_centroids(seeds, n_cells=4, seed=-1)
    one = build_centroids(seeds[:1], n_cells=2, seed=0, jitter=0.1)
    assert one.shape == (2, 32)
