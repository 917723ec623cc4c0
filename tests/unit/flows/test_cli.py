"""Bad input on the command line: non-zero exit and one line naming the cause."""

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, scripted_config, sparq_cmd
from tests.unit.pipeline.engines.test_engines import _closed_port

ENV = dict(os.environ, PYTHONPATH=str(REPO))


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(sparq_cmd(*args), cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)


def one_line_error(proc: subprocess.CompletedProcess, needle: str, code: int = 2) -> None:
    assert proc.returncode == code, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("sparq: error:")]
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_help():
    for args in (["--help"], ["generate", "--help"], ["seeds", "--help"]):
        proc = run(*args)
        assert proc.returncode == 0 and "usage: sparq" in proc.stdout
    assert "--resume" in run("generate", "--help").stdout


@pytest.mark.parametrize(
    ("text", "needle"),
    [("[solver]\nkk = 1\n", "solver.kk"), ("[solver]\nk = 'x'\n", "solver.k"),
     ("[run]\nsteps = -2\n", "run.steps")],
)
def test_bad_config(tmp_path: Path, text: str, needle: str):
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    one_line_error(run("generate", "--config", str(cfg), "--run-dir", str(tmp_path / "r"), "--no-prefect"), needle)


def test_missing_config_file(tmp_path: Path):
    one_line_error(run("generate", "--config", str(tmp_path / "nope.toml"), "--run-dir", str(tmp_path / "r")),
                   "not found")


def test_unreadable_seeds_fail_before_model_work(tmp_path: Path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[seeds]\nsource = "{tmp_path / "missing.jsonl"}"\n')
    proc = run("generate", "--config", str(cfg), "--run-dir", str(tmp_path / "r"), "--no-prefect")
    one_line_error(proc, "missing.jsonl")
    assert "loading engine" not in proc.stderr


def test_engine_unreachable(tmp_path: Path):
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[engine]\nkind = "openai"\nmodel = "m"\n[engine.openai]\nbase_urls = ["{url}"]\nretries = 0\n'
                   "[archive]\ncells = 32\n")
    one_line_error(run("generate", "--config", str(cfg), "--run-dir", str(tmp_path / "r"), "--no-prefect"),
                   url, code=3)


def test_existing_run_needs_resume(tmp_path: Path):
    cfg = scripted_config(tmp_path, steps=1)
    assert run("generate", "--config", str(cfg), "--run-dir", str(tmp_path / "r"), "--no-prefect").returncode == 0
    one_line_error(run("generate", "--config", str(cfg), "--run-dir", str(tmp_path / "r"), "--no-prefect"),
                   "--resume")
