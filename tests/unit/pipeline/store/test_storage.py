import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.store.records import METRICS_SCHEMA
from pipeline.store.storage import Checkpoint, RunDir, RunLockedError, atomic_write_table, shard_name


def _table(n: int) -> pa.Table:
    return pa.table({"x": list(range(n))})


def test_atomic_write_leaves_no_temp(tmp_path: Path):
    p = tmp_path / "a.parquet"
    atomic_write_table(p, _table(3))
    assert pq.read_table(p).num_rows == 3
    assert [f.name for f in tmp_path.iterdir()] == ["a.parquet"]


def test_recover_drops_later_shards_and_temp_files(tmp_path: Path):
    run = RunDir(tmp_path / "run")
    run.create("x = 1\n")
    for step in range(4):
        atomic_write_table(run.candidates_dir / shard_name(step), _table(1))
        atomic_write_table(run.attempts_dir / shard_name(step), _table(1))
    (run.candidates_dir / ".step-000004.parquet.tmp-123").write_bytes(b"partial")
    (run.path / ".checkpoint.json.tmp-9").write_text("{")
    (run.path / ".archive.tmp-9").mkdir()
    removed = run.recover(committed_step=2)
    assert [p.name for p in run.shard_paths("candidates")] == [shard_name(0), shard_name(1),
                                                                shard_name(2)]
    assert [p.name for p in run.shard_paths("attempts")] == [shard_name(0), shard_name(1),
                                                              shard_name(2)]
    assert any("step-000003" in r for r in removed)
    leftovers = [p.name for p in run.path.rglob("*") if ".tmp-" in p.name]
    assert leftovers == []


def test_recover_restores_archive_after_crash_between_renames(tmp_path: Path):
    run = RunDir(tmp_path / "run")
    run.create("x = 1\n")
    old = run.path / ".archive.old"
    old.mkdir()
    (old / "state.json").write_text("{}")
    run.recover(committed_step=0)
    assert (run.archive_dir / "state.json").is_file() and not old.exists()


def test_recover_truncates_metrics(tmp_path: Path):
    run = RunDir(tmp_path / "run")
    run.create("x = 1\n")
    rows = [{f.name: (0 if f.type != pa.timestamp("us", tz="UTC") else None) for f in METRICS_SCHEMA}
            for _ in range(3)]
    import datetime as dt

    for i, r in enumerate(rows):
        r["step"] = i
        r["created_at"] = dt.datetime.now(dt.UTC)
    atomic_write_table(run.metrics_path, pa.Table.from_pylist(rows, schema=METRICS_SCHEMA))
    run.recover(committed_step=1)
    assert run.read_metrics()["step"].to_pylist() == [0, 1]


def test_checkpoint_round_trip_and_corrupt(tmp_path: Path):
    run = RunDir(tmp_path)
    ck = Checkpoint(run_id="r", step=3, rng_state={"a": 1}, counters={"tokens": 5})
    run.checkpoint_path.write_text(ck.to_json())
    assert run.read_checkpoint() == ck
    run.checkpoint_path.write_text("{not json")
    with pytest.raises(Exception, match="unreadable"):
        run.read_checkpoint()


def test_second_writer_is_refused_with_pid(tmp_path: Path):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys,time; sys.path.insert(0, sys.argv[2]); from pipeline.store.storage import RunDir\n"
         "with RunDir(sys.argv[1]).locked():\n print('locked', flush=True); time.sleep(30)",
         str(tmp_path), str(Path(__file__).resolve().parents[4])],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=f"pid {holder.pid}"):
            with RunDir(tmp_path).locked():
                pass
    finally:
        holder.kill()
        holder.wait()
    with RunDir(tmp_path).locked():  # released when the holder died
        assert os.path.exists(tmp_path / ".lock")
