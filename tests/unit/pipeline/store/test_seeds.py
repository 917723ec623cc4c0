import json
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.config import SeedsConfig
from pipeline.store.seeds import SeedError, load_seeds, summarize
from tests.conftest import REPO, sparq_cmd


def test_bundled_seeds_load():
    seeds = load_seeds(SeedsConfig(skill="skill"))
    info = summarize(seeds)
    assert info["rows"] >= 300 and len(info["skills"]) >= 8 and info["duplicate_problems"] == 0


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_column_mapping(tmp_path: Path):
    p = _jsonl(tmp_path / "s.jsonl", [{"q": "What is 1 + 1?", "sol": "2", "ans": 2}])
    seeds = load_seeds(SeedsConfig(source=str(p), problem="q", solution="sol", answer="ans"))
    assert seeds[0].problem == "What is 1 + 1?" and seeds[0].answer == "2"


def test_missing_column_names_column_and_source(tmp_path: Path):
    p = _jsonl(tmp_path / "s.jsonl", [{"problem": "x?", "solution": "y"}])
    with pytest.raises(SeedError) as info:
        load_seeds(SeedsConfig(source=str(p)))
    assert "'answer'" in str(info.value) and str(p) in str(info.value)


def test_parquet_missing_column(tmp_path: Path):
    p = tmp_path / "s.parquet"
    pq.write_table(pa.table({"problem": ["a"], "solution": ["b"]}), p)
    with pytest.raises(SeedError, match="'answer'"):
        load_seeds(SeedsConfig(source=str(p)))


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b'{"problem": "a", "solution": "b", "answer": "1"}\n{broken\n', "line 2"),
        (b'{"problem": "a\xff", "solution": "b", "answer": "1"}\n', "UTF-8"),
        (b'[1, 2]\n', "not a JSON object"),
        (b'\n{"problem": "", "solution": "b", "answer": "1"}\n', "line 2 column"),
        (b"", "no rows"),
    ],
)
def test_malformed_seed_files(tmp_path: Path, content: bytes, needle: str):
    p = tmp_path / "s.jsonl"
    p.write_bytes(content)
    with pytest.raises(SeedError, match=needle):
        load_seeds(SeedsConfig(source=str(p)))


def test_unknown_extension_and_missing_file(tmp_path: Path):
    with pytest.raises(SeedError, match="not found"):
        load_seeds(SeedsConfig(source=str(tmp_path / "none.jsonl")))
    p = tmp_path / "s.csv"
    p.write_text("a,b")
    with pytest.raises(SeedError, match="expected a .jsonl"):
        load_seeds(SeedsConfig(source=str(p)))


def test_cli_seeds_summary_and_error(tmp_path: Path):
    ok = subprocess.run(sparq_cmd("seeds", "bundled", "--skill", "skill", "--json"), cwd=REPO,
                        capture_output=True, text=True, check=True)
    assert json.loads(ok.stdout)["rows"] >= 300
    p = _jsonl(tmp_path / "s.jsonl", [{"problem": "x?", "solution": "y"}])
    bad = subprocess.run(sparq_cmd("seeds", str(p)), cwd=REPO, capture_output=True, text=True)
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "'answer'" in lines[0]


def test_overlong_field_is_refused_with_the_row_and_the_limit(tmp_path: Path):
    ok = {"problem": "What is 1 + 1?", "solution": "2", "answer": "2"}
    p = _jsonl(tmp_path / "s.jsonl", [ok, ok | {"problem": "x" * 2_600_000}])
    with pytest.raises(SeedError) as info:
        load_seeds(SeedsConfig(source=str(p)))
    msg = str(info.value)
    assert "line 2 column 'problem'" in msg and "2,600,000 characters" in msg and "1,800" in msg
    assert "\n" not in msg
    # The limit is a config key; a row at the limit passes.
    assert len(load_seeds(SeedsConfig(source=str(p), max_chars=2_600_000))) == 2
    q = tmp_path / "s.parquet"
    pq.write_table(pa.table({"problem": ["a?", "b?"], "solution": ["s", "s"], "answer": ["1", "1" * 30]}), q)
    with pytest.raises(SeedError, match=r"row 2 column 'answer' is 30 characters long, over the limit of 10 "):
        load_seeds(SeedsConfig(source=str(q), max_chars=10))


def test_cli_seeds_names_the_overlong_row(tmp_path: Path):
    p = _jsonl(tmp_path / "s.jsonl", [{"problem": "What is 1 + 1?", "solution": "x" * 50, "answer": "2"}])
    bad = subprocess.run(sparq_cmd("seeds", str(p), "--max-chars", "40"), cwd=REPO, capture_output=True, text=True)
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "line 1 column 'solution' is 50 characters long" in lines[0] and "40" in lines[0]
