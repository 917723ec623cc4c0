"""Fan-out over Dask through prefect-dask's DaskTaskRunner, on real LocalClusters.

The engine is the scripted one (what is under test is where the work runs and that
nothing is lost): each worker process builds its own engine and judge, the flow keeps
the archive and the commits.
"""

from __future__ import annotations

import re
import subprocess
from concurrent.futures import Future
from pathlib import Path

import pyarrow.compute as pc
import pytest

from archives import CVTArchive
from pipeline.config import EngineConfig, ScriptedSettings
from pipeline.engines import Completion, Sampling
from pipeline.loop.campaign import rederive_archive
from pipeline.store.storage import RunDir
from tests.conftest import scripted_config, sparq_cmd, write_script
from tests.unit.pipeline.loop.test_stream import check_committed

distributed = pytest.importorskip("distributed")


def _check_run(run_dir: Path, steps: int, batch: int) -> None:
    run = RunDir(run_dir)
    assert run.read_checkpoint().step == steps
    cand = run.read_candidates()
    generated = cand.filter(pc.greater(cand.column("step"), 0))
    assert generated.num_rows == steps * batch
    assert len(set(cand.column("id").to_pylist())) == cand.num_rows
    ok = generated.filter(pc.equal(generated.column("status"), "ok"))
    assert ok.num_rows > 0 and all(k > 0 for k in ok.column("k").to_pylist())
    archive, state = CVTArchive.load(run.archive_dir)
    assert state["step"] == steps
    assert archive == rederive_archive(archive.centroids, cand)


@pytest.mark.ci
# Long (about 41 s): a CI variant, for make test's 15-minute budget on 2 cores; a LocalCluster runs the same path in
# every make test.
def test_generate_on_an_external_dask_cluster(tmp_path: Path):
    config = scripted_config(tmp_path, steps=2, batch=6, k=3, extra="[dask]\nchunk_size = 2\n")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        res = subprocess.run(sparq_cmd("generate", "--config", str(config), "--run-dir", str(tmp_path / "run"),
                                       "--dask-address", cluster.scheduler_address, "--quiet"),
                             capture_output=True, text=True, timeout=900)
        assert res.returncode == 0, res.stderr[-3000:]

        workers = len(client.scheduler_info()["workers"])
    _check_run(tmp_path / "run", steps=2, batch=6)
    # The engine calls and the verification ran on the cluster's workers, not in the flow:
    # at the end the flow closed the engines and judges the chunk tasks built there.
    found = re.search(r"closed (\d+) engine\(s\)/judge\(s\) on (\d+) Dask worker", res.stderr)
    assert found, res.stderr[-3000:]
    assert int(found.group(1)) >= 2 and int(found.group(2)) == workers == 2


def test_generate_on_a_local_cluster_from_the_config(tmp_path: Path):
    config = scripted_config(tmp_path, steps=1, batch=4, k=2,
                             extra="[dask]\nenabled = true\nn_workers = 2\nchunk_size = 2\n")
    res = subprocess.run(sparq_cmd("generate", "--config", str(config), "--run-dir", str(tmp_path / "run"), "--quiet"),
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "complete-chunk" in res.stderr  # Prefect logged the chunk task runs
    _check_run(tmp_path / "run", steps=1, batch=4)


def test_bad_dask_address_is_one_line(tmp_path: Path):
    config = scripted_config(tmp_path, steps=1)
    res = subprocess.run(sparq_cmd("generate", "--config", str(config), "--run-dir", str(tmp_path / "run"),
                                   "--dask-address", "localhost"), capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "--dask-address" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_streaming_campaign_drives_chunk_tasks_on_the_cluster(tmp_path: Path):
    """mode = "stream" fanned out: the stream's requests go out as chunk tasks while others
    run (18 candidates through a window of 12), and the commits keep every guarantee."""
    config = scripted_config(tmp_path, steps=3, batch=6, k=3, run_extra='mode = "stream"',
                             extra="[dask]\nchunk_size = 2\n")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client, \
            distributed.get_task_stream(client=client) as tasks:
        res = subprocess.run(sparq_cmd("generate", "--config", str(config), "--run-dir", str(tmp_path / "run"),
                                       "--dask-address", cluster.scheduler_address, "--quiet"),
                             capture_output=True, text=True, timeout=900)
        assert res.returncode == 0, res.stderr[-3000:]
        workers = set(client.scheduler_info()["workers"])
    assert re.search(r"^mode\s+stream$", res.stdout, re.M), res.stdout
    # The window from the cluster: 3 x (2 worker threads x chunks of 2 requests).
    assert "up to 12 candidates in flight" in res.stderr, res.stderr[-3000:]
    sent = re.search(r"fan-out: (\d+) engine chunk task\(s\), (\d+) verify chunk task", res.stderr)
    assert sent and int(sent.group(1)) > 0 and int(sent.group(2)) > 0, res.stderr[-3000:]
    # Worker-side: the scheduler saw the stream's chunk tasks run on the cluster's workers.
    ran = [t for t in tasks.data if t["key"].startswith("complete_requests_task")]
    assert len(ran) == int(sent.group(1)) and set() < {t["worker"] for t in ran} <= workers
    assert check_committed(tmp_path / "run", 3)["generated"] == 18  # lineage, slots, archive re-derived


class _ChunkLog:
    """Stands in for the chunk task's submission: records each chunk, answers on demand."""

    def __init__(self) -> None:
        self.chunks: list[tuple[list, Future]] = []

    def __call__(self, requests: list) -> Future:
        fut: Future = Future()
        self.chunks.append((requests, fut))
        return fut

    def answer(self, i: int) -> None:
        requests, fut = self.chunks[i]
        fut.set_result([[Completion(text=f"{prompt}/{s.seed}", tokens=1)] * s.n for prompt, s in requests])


def test_stream_requests_are_buffered_into_chunk_tasks():
    from flows.fanout import FanoutEngine

    log = _ChunkLog()
    engine = FanoutEngine(EngineConfig(kind="scripted"), seed=0, chunk_size=2, send_chunk=log)
    futures = [engine.submit(f"p{i}", Sampling(n=1 + i % 2, seed=i)) for i in range(5)]
    assert [len(r) for r, _ in log.chunks] == [2, 2]  # full chunks go out at once
    engine.flush()
    assert [len(r) for r, _ in log.chunks] == [2, 2, 1] and engine.tasks == 3
    engine.flush()  # nothing buffered: no empty chunk task
    assert len(log.chunks) == 3
    for i in (2, 0, 1):  # chunks finish in any order; each request gets its own rows
        log.answer(i)
    assert [[c.text for c in f.result(timeout=5)] for f in futures] == [
        ["p0/0"], ["p1/1", "p1/1"], ["p2/2"], ["p3/3", "p3/3"], ["p4/4"]]
    assert engine.stats.calls == 3 and engine.stats.prompts == 5 and engine.stats.completions == 7
    assert engine.capacity(4) == 2  # no Dask cluster in sight: one thread x chunk_size


def test_a_failed_chunk_fails_its_requests_and_a_cancelled_request_is_not_sent():
    from flows.fanout import FanoutEngine

    log = _ChunkLog()
    engine = FanoutEngine(EngineConfig(kind="scripted"), seed=0, chunk_size=4, send_chunk=log)
    dropped = engine.submit("gone", Sampling(seed=1))
    kept = [engine.submit(p, Sampling(seed=2)) for p in ("a", "b")]
    assert dropped.cancel()
    engine.flush()
    assert [[p for p, _ in r] for r, _ in log.chunks] == [["a", "b"]]
    log.chunks[0][1].set_exception(RuntimeError("worker lost"))
    for f in kept:
        with pytest.raises(RuntimeError, match="worker lost"):
            f.result(timeout=5)
    late = engine.submit("late", Sampling(seed=3))
    engine.close()  # the stream stopped: what was never sent is cancelled
    assert late.cancelled() and len(log.chunks) == 1


def test_worker_runs_a_burst_of_requests_in_order(tmp_path: Path):
    """pipeline/loop/remote.py on a batch-wise engine: one complete call per distinct sampling,
    rows back in the requests' order."""
    from pipeline.loop import remote

    script = write_script(tmp_path / "script.json", mutate=["m1", "m2", "m3"], solve=["s"])
    cfg = EngineConfig(kind="scripted", scripted=ScriptedSettings(script=str(script)))
    try:
        rows = remote.complete_requests(cfg, 0, [("x", Sampling(n=2, seed=5)), ("y", Sampling(seed=6)),
                                                 ("z", Sampling(n=2, seed=5))])
    finally:
        remote.close_all()
    # x and z share a sampling (one call, in order), y has its own
    assert [[c.text for c in r] for r in rows] == [["m1", "m2"], ["m2"], ["m3", "m1"]]
