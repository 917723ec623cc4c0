"""Fan-out over Dask through prefect-dask's DaskTaskRunner, on real LocalClusters.

The engine is the scripted one (what is under test is where the work runs and that
nothing is lost): each worker process builds its own engine and judge, the flow keeps
the archive and the commits.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pyarrow.compute as pc
import pytest

from archives import CVTArchive
from pipeline.campaign import rederive_archive
from pipeline.storage import RunDir
from tests.conftest import scripted_config, sparq_cmd

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
