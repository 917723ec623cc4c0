"""`sparq inspect`: summary numbers against the raw tables, lineage, bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from flows.cli import main
from pipeline.read.inspection import (
    InspectError,
    derive_elites,
    lineage,
    load_run,
    solve_rate_bin,
    solve_rate_histogram,
    summarize,
)
from pipeline.read.inspection_text import format_histogram, format_lineage, format_summary
from pipeline.store.records import CANDIDATES_SCHEMA
from pipeline.store.storage import RunDir
from tests.conftest import REPO, sparq_cmd
from tests.helpers.run_fixtures import HTML_PROBLEM, make_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("inspect"))


@pytest.fixture
def run_copy(run_dir: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(run_dir, dst)
    return dst


def _deep_elite(run_dir: Path) -> dict:
    deep = [e for e in load_run(run_dir).elites if e["depth"] >= 2]
    assert deep, "the fixture run must have an elite of depth >= 2"
    return deep[0]


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sparq: error: "), err
    return err[0]


# -- the numbers ---------------------------------------------------------------------
def test_summary_agrees_with_the_raw_tables(run_dir: Path):
    run = load_run(run_dir)
    s = summarize(run, top=5)
    raw = RunDir(run_dir)
    cands = raw.read_candidates().to_pylist()
    gen = [r for r in cands if r["step"] > 0]
    metrics = raw.read_metrics().to_pylist()
    assert s["steps"] == 5 and s["seeds"] == 10 and s["candidates"] == len(gen) == 30
    statuses = ("ok", "invalid", "unparseable", "duplicate", "failed")
    assert s["status"] == {k: sum(r["status"] == k for r in gen) for k in statuses}
    assert s["status"]["unparseable"] >= 1 and s["status"]["duplicate"] >= 1
    assert s["accepted"] == sum(m["accepted"] for m in metrics) > 0
    assert s["elites"] == metrics[-1]["num_elites"]
    assert s["coverage"] == pytest.approx(metrics[-1]["coverage"])
    assert s["qd_score"] == pytest.approx(metrics[-1]["qd_score"])
    assert s["cells"] == 32 and s["archive_kind"] == "cvt" and s["elites_source"] == "snapshot"
    assert s["seed_elites"] + s["generated_elites"] == s["elites"]
    rates = [r["solve_rate"] for r in gen if r["status"] == "ok"]
    assert sum(s["solve_rate_histogram"]["counts"]) == len(rates)
    assert s["solve_rate_histogram"]["counts"][2] == rates.count(0.25)
    assert s["solve_rate_histogram"]["counts"][5] == rates.count(0.5)
    top = s["top_elites"]
    assert len(top) == 5 and all(e["quality"] > 0 for e in top)
    assert [e["quality"] for e in top] == sorted((e["quality"] for e in top), reverse=True)
    assert top[0]["quality"] == max(r["quality"] for r in gen)
    assert sum(d["count"] for d in s["elite_depth"]) == s["elites"]
    assert max(d["depth"] for d in s["elite_depth"]) >= 2
    (op,) = s["operators"]
    assert op["operator"] == "sparq_mutate" and op["candidates"] == 30 and op["archived"] == s["accepted"]
    assert op["yield"] == pytest.approx(s["accepted"] / 30, abs=1e-4)
    assert [m["step"] for m in s["per_step"]] == list(range(6))
    json.dumps(s)  # --json needs it serialisable


def test_derived_elites_equal_the_snapshot(run_dir: Path):
    run = load_run(run_dir)
    derived = derive_elites(run.candidates)
    assert [(e["cell"], e["id"], e["quality"]) for e in derived] == \
        [(e["cell"], e["id"], e["quality"]) for e in run.elites]


def test_stale_snapshot_is_replaced_by_derivation(run_dir: Path, run_copy: Path):
    state_path = run_copy / "archive" / "state.json"
    state = json.loads(state_path.read_text())
    state["extra"]["step"] = 6  # as if the crash came after the snapshot of an uncommitted step 6
    state_path.write_text(json.dumps(state))
    run = load_run(run_copy)
    assert "derived from the shards" in run.elites_source and "step 6" in run.elites_source
    assert [(e["cell"], e["id"]) for e in run.elites] == [(e["cell"], e["id"]) for e in load_run(run_dir).elites]
    assert "derived from the shards" in format_summary(summarize(run))


def test_histogram_bins_and_text():
    assert [solve_rate_bin(x) for x in (0.0, 0.09, 0.1, 0.3, 0.7, 0.99, 1.0)] == [0, 0, 1, 3, 7, 9, 9]
    hist = solve_rate_histogram([0.0, 0.25, 0.25, 1.0])
    assert hist["counts"] == [1, 0, 2, 0, 0, 0, 0, 0, 0, 1]
    lines = format_histogram(hist)
    assert lines[2].split()[2] == "2" and lines[2].endswith("#" * 40)
    assert lines[-1].startswith("  [0.9, 1.0]") and lines[1].split()[-1] == "0"


def test_text_summary(run_dir: Path, capsys):
    s = summarize(load_run(run_dir))
    assert main(["inspect", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert out.strip() == format_summary(s)
    assert f"{s['elites']} of 32 cells occupied (coverage {s['coverage']:.3f}" in out
    assert f"QD score    {s['qd_score']:.3f}" in out
    assert s["top_elites"][0]["id"] in out
    assert f"{s['accepted']:>5} / 30" in out


def test_json_summary(run_dir: Path, capsys):
    assert main(["inspect", str(run_dir), "--json", "--top", "3"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data == json.loads(json.dumps(summarize(load_run(run_dir), top=3)))
    assert len(data["top_elites"]) == 3


# -- lineage -----------------------------------------------------------------------------
def test_lineage_of_a_deep_elite_reaches_its_seed(run_dir: Path):
    elite = _deep_elite(run_dir)
    run = load_run(run_dir)
    chain = lineage(run, elite["id"])
    assert len(chain) == elite["depth"] + 1
    by_id = {r["id"]: r for r in run.candidates.to_pylist()}
    for child, parent in zip(chain, chain[1:], strict=False):
        assert by_id[child["id"]]["parent_id"] == parent["id"]
        assert child["depth"] == parent["depth"] + 1 and child["step"] > parent["step"]
    assert chain[0]["elite_now"] and chain[0]["cell"] == elite["cell"]
    assert chain[-1]["status"] == "seed" and chain[-1]["step"] == 0 and chain[-1]["depth"] == 0
    assert all(node["problem"] == by_id[node["id"]]["problem"] for node in chain)


def test_cli_elite_prints_the_whole_chain(run_dir: Path, capsys):
    elite = _deep_elite(run_dir)
    chain = lineage(load_run(run_dir), elite["id"])
    assert main(["inspect", str(run_dir), "--elite", elite["id"][:8]]) == 0  # a unique prefix works
    out = capsys.readouterr().out
    assert out.strip() == format_lineage(chain)
    assert f"the elite of cell {elite['cell']}" in out
    for node in chain:
        assert node["id"] in out and " ".join(node["problem"].split())[:60] in " ".join(out.split())
    assert out.count("[depth ") == len(chain) and "operator seed" in out and "operator sparq_mutate" in out
    assert out.index(chain[0]["id"]) < out.index(chain[-1]["id"])  # newest first

    assert main(["inspect", str(run_dir), "--elite", elite["id"], "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [n["id"] for n in data["lineage"]] == [n["id"] for n in chain]


def test_lineage_of_a_candidate_that_is_not_an_elite(run_dir: Path):
    run = load_run(run_dir)
    elite_ids = {e["id"] for e in run.elites}
    beaten = [r for r in run.candidates.to_pylist() if r["status"] == "ok" and r["id"] not in elite_ids]
    chain = lineage(run, beaten[0]["id"])
    assert not chain[0]["elite_now"] and "not an elite now" in format_lineage(chain)


def test_html_problem_is_kept_verbatim_in_text(run_dir: Path):
    run = load_run(run_dir)
    row = run.candidates.filter(pc.equal(run.candidates["problem"], HTML_PROBLEM)).to_pylist()[0]
    assert HTML_PROBLEM in format_lineage(lineage(run, row["id"]))


# -- bad input -------------------------------------------------------------------------------
def test_unknown_and_ambiguous_elite_ids(run_dir: Path, capsys):
    assert main(["inspect", str(run_dir), "--elite", "zzzzzzzz"]) == 2
    assert "unknown elite id 'zzzzzzzz'" in _error_line(capsys)
    ids = load_run(run_dir).candidates["id"].to_pylist()
    first = Counter(i[:4] for i in ids).most_common(1)[0]
    if first[1] > 1:
        with pytest.raises(InspectError, match="ambiguous"):
            lineage(load_run(run_dir), first[0])


def test_not_a_run_directory(tmp_path: Path, capsys):
    assert main(["inspect", str(tmp_path / "nope")]) == 2
    assert f"{tmp_path / 'nope'} is not a directory" in _error_line(capsys)
    assert main(["inspect", str(tmp_path)]) == 2
    assert f"{tmp_path} is not a run directory (no checkpoint.json" in _error_line(capsys)


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (lambda r: (r / "candidates" / "step-000002.parquet").unlink(),
         "candidates shard {run}/candidates/step-000002.parquet is missing"),
        (lambda r: (r / "candidates" / "step-000003.parquet").write_bytes(b"PAR1 not really parquet"),
         "candidates shard {run}/candidates/step-000003.parquet is unreadable"),
        (lambda r: (r / "metrics.parquet").write_bytes(b"\x00" * 64),
         "metrics table {run}/metrics.parquet is unreadable"),
        (lambda r: (r / "archive" / "centroids.npy").unlink(),
         "archive centroids {run}/archive/centroids.npy are missing"),
        (lambda r: (r / "archive" / "elites.parquet").write_text("garbage"),
         "archive elites {run}/archive/elites.parquet is unreadable"),
        (lambda r: (r / "archive" / "state.json").write_text("{"),
         "archive state {run}/archive/state.json is unreadable"),
        (lambda r: (r / "checkpoint.json").write_text("{}"), "checkpoint {run}/checkpoint.json is unreadable"),
    ],
    ids=["missing-shard", "corrupt-shard", "corrupt-metrics", "missing-centroids", "corrupt-elites",
         "corrupt-state", "corrupt-checkpoint"],
)
def test_damaged_run_names_the_file(run_copy: Path, capsys, damage, needle: str):
    damage(run_copy)
    for argv in (["inspect", str(run_copy)], ["report", str(run_copy)]):
        assert main(argv) == 2
        assert needle.format(run=run_copy) in _error_line(capsys)


def test_older_shards_without_newer_nullable_columns(run_copy: Path, capsys):
    # The schema gains nullable columns at its end over time; shards written before read as nulls.
    path = run_copy / "candidates" / "step-000001.parquet"
    table = pq.read_table(path)
    dropped = [f.name for f in CANDIDATES_SCHEMA if f.nullable and f.name not in ("parent_id", "problem",
                                                                                      "solve_rate", "cell")][-2:]
    pq.write_table(table.drop_columns(dropped), path)
    run = load_run(run_copy)
    step1 = run.candidates.filter(pc.equal(run.candidates["step"], 1))
    assert step1.num_rows == 6 and all(step1[c].null_count == 6 for c in dropped)
    pq.write_table(table.drop_columns(["operator"]), path)
    assert main(["inspect", str(run_copy)]) == 2
    assert f"candidates shard {path} has no column 'operator'" in _error_line(capsys)


def test_cli_subprocess_bad_input_is_one_line(tmp_path: Path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(sparq_cmd("inspect", str(tmp_path)), cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"sparq: error: {tmp_path} is not a run directory "
                                                "(no checkpoint.json: no step was ever committed there)"]
    proc = subprocess.run(sparq_cmd("inspect", str(tmp_path), "--top", "0"), cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "--top: expected an integer >= 1" in proc.stderr
