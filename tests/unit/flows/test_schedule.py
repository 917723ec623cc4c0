"""`sparq schedule` against a real Prefect server on 127.0.0.1.

A `prefect server start` on a free port (its own PREFECT_HOME and SQLite database),
`sparq schedule` serving the deployment in a child process, and flow runs that must
complete and grow the run directory: two manual runs of a cron deployment (the cron
fires at most once a minute, too slow to wait for), then an interval deployment whose
runs the server's scheduler creates on its own. The engine is the scripted one: what
is under test is scheduling, not generation.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from pipeline.store.storage import RunDir
from tests.conftest import scripted_config, sparq_cmd

BIN = Path(sys.executable).parent
START_TIMEOUT_S = 180


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait(what: str, check, timeout_s: float, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log else ""
            pytest.fail(f"{what}: process exited with {proc.returncode}\n{tail}")
        time.sleep(1)
    tail = log.read_text()[-3000:] if log else ""
    pytest.fail(f"{what}: not within {timeout_s} s\n{tail}")


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": api,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
           # Let the scheduler service look for due runs every few seconds, not every minute.
           "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "3",
           "PREFECT_SERVER_SERVICES_SCHEDULER_MIN_SCHEDULED_TIME": "0:00:05",
           "PREFECT_RUNNER_POLL_FREQUENCY": "2"}
    log = home / "server.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1",
                                 "--port", str(port)], env=env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        def healthy() -> bool:
            try:
                return httpx.get(f"{api}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        _wait("prefect server start", healthy, START_TIMEOUT_S, proc, log)
        yield env
    finally:
        _stop(proc)


def _post(url: str, body: dict, timeout_s: float = 90) -> httpx.Response:
    """POST, retrying while the server answers 5xx: a busy SQLite-backed server says 503
    now and then, and Prefect's own client retries those too."""
    deadline = time.monotonic() + timeout_s
    while True:
        r = httpx.post(url, json=body, timeout=30)
        if r.status_code < 500 or time.monotonic() > deadline:
            return r
        time.sleep(2)


def _deployment(api: str, name: str) -> dict | None:
    try:
        r = httpx.get(f"{api}/deployments/name/sparq-campaign/{name}", timeout=30)
    except httpx.HTTPError:
        return None
    return r.json() if r.status_code == 200 else None


def _flow_run_state(api: str, run_id: str) -> str | None:
    try:
        r = httpx.get(f"{api}/flow_runs/{run_id}", timeout=30)
    except httpx.HTTPError:
        return None
    return r.json()["state"]["type"] if r.status_code == 200 else None  # 503: ask again


def _committed(run_dir: Path) -> int:
    ckpt = RunDir(run_dir).read_checkpoint()
    return ckpt.step if ckpt else 0


def _serve(env: dict[str, str], tmp_path: Path, *args: str) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / "serve.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(sparq_cmd("schedule", *args), env=env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    return proc, log


def _run_deployment(api: str, dep_id: str, what: str, proc: subprocess.Popen, log: Path) -> str:
    """Create a flow run of the deployment and wait for its final state."""
    r = _post(f"{api}/deployments/{dep_id}/create_flow_run", {})
    assert r.status_code == 201, r.text
    run_id = r.json()["id"]

    def finished() -> str | None:
        state = _flow_run_state(api, run_id)
        return state if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None

    return _wait(what, finished, 300, proc, log)


def test_cron_deployment_runs_extend_the_campaign(prefect_server: dict[str, str], tmp_path: Path):
    env, api = prefect_server, prefect_server["PREFECT_API_URL"]
    config = scripted_config(tmp_path, steps=5, batch=4, k=2)
    run_dir = tmp_path / "campaign"
    proc, log = _serve(env, tmp_path, "--config", str(config), "--run-dir", str(run_dir),
                       "--cron", "0 3 * * *", "--steps-per-run", "1", "--name", "nightly")
    try:
        dep = _wait("deployment sparq-campaign/nightly", lambda: _deployment(api, "nightly"), 120, proc, log)
        crons = [s["schedule"].get("cron") for s in dep["schedules"]]
        assert crons == ["0 3 * * *"], dep["schedules"]
        assert dep["parameters"]["run_dir"] == str(run_dir)
        for expected in (1, 2):  # each run resumes the directory and adds one step
            state = _run_deployment(api, dep["id"], f"flow run {expected}", proc, log)
            assert state == "COMPLETED", log.read_text()[-3000:]
            assert _committed(run_dir) == expected
        cand = RunDir(run_dir).read_candidates()
        assert sorted(set(cand.column("step").to_pylist()) - {0}) == [1, 2]
        assert len(set(cand.column("id").to_pylist())) == cand.num_rows
    finally:
        _stop(proc)


# Long (about 50 s: it waits for the schedule to fire twice): a CI variant, for make test's
# 15-minute budget on 2 cores. make test still serves a deployment and runs it twice
# through the server (test_cron_deployment_runs_extend_the_campaign); this one checks
# that Prefect's scheduler starts the runs by itself.
@pytest.mark.ci
def test_interval_schedule_fires_on_its_own(prefect_server: dict[str, str], tmp_path: Path):
    env, api = prefect_server, prefect_server["PREFECT_API_URL"]
    config = scripted_config(tmp_path, steps=5, batch=2, k=2)
    run_dir = tmp_path / "campaign"
    proc, log = _serve(env, tmp_path, "--config", str(config), "--run-dir", str(run_dir),
                       "--interval", "10", "--steps-per-run", "1", "--name", "every-10s")
    try:
        _wait("deployment sparq-campaign/every-10s", lambda: _deployment(api, "every-10s"), 120, proc, log)
        # Nobody triggers anything: the server's scheduler creates the runs, the serve
        # process picks them up, and each adds one step to the same campaign.
        def completed() -> list[dict]:
            r = _post(f"{api}/flow_runs/filter",
                      {"deployments": {"name": {"any_": ["every-10s"]}},
                       "flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}})
            return r.json() if r.status_code == 200 and len(r.json()) >= 2 else []

        done = _wait("two scheduled runs completed", completed, 300, proc, log)
        assert _committed(run_dir) >= 2
        assert all(run["auto_scheduled"] for run in done)
    finally:
        _stop(proc)


def test_schedule_without_server_or_with_bad_cron_fails_in_one_line(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    res = subprocess.run(sparq_cmd("schedule", "--run-dir", str(tmp_path / "r"), "--cron", "0 3 * * *"),
                         env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "prefect server start" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    env["PREFECT_API_URL"] = "http://127.0.0.1:9/api"
    res = subprocess.run(sparq_cmd("schedule", "--run-dir", str(tmp_path / "r"), "--cron", "every night"),
                         env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "--cron" in res.stderr and "every night" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    res = subprocess.run(sparq_cmd("schedule", "--run-dir", str(tmp_path / "r")),
                         env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "--cron" in res.stderr


class _Clock(datetime):
    """A clock one second further at each reading: fresh run directories are named by the
    second, so two runs need two seconds, not a second of real waiting."""

    reading = datetime(2026, 1, 1, 3, 0, 0, tzinfo=UTC)

    @classmethod
    def now(cls, tz=None):
        cls.reading += timedelta(seconds=1)
        return cls.reading


def test_extend_and_fresh_runs_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """What each scheduled run does, without a server: extend one campaign, or start anew."""
    from flows.schedule import campaign_target, extend_campaign

    monkeypatch.setattr("flows.schedule.datetime", _Clock)

    config = str(scripted_config(tmp_path, steps=5, batch=2, k=2))
    run_dir = tmp_path / "campaign"
    assert campaign_target(run_dir, 3) == (False, 3)
    extend_campaign(run_dir=str(run_dir), config_path=config, steps_per_run=1)
    extend_campaign(run_dir=str(run_dir), config_path=config, steps_per_run=2)
    assert _committed(run_dir) == 3 and campaign_target(run_dir, 2) == (True, 5)

    fresh = tmp_path / "fresh"
    extend_campaign(run_dir=str(fresh), config_path=config, steps_per_run=1, fresh=True)
    extend_campaign(run_dir=str(fresh), config_path=config, steps_per_run=1, fresh=True)
    subdirs = sorted(p for p in fresh.iterdir() if p.is_dir())
    assert len(subdirs) == 2 and all(p.name.startswith("run-") for p in subdirs)
    assert [_committed(p) for p in subdirs] == [1, 1]


@pytest.mark.ci
# Long (about 60 s): a CI variant, for make test's 15-minute budget on 2 cores; the served deployments above fire in
# every make test.
def test_work_pool_deployment_runs_on_a_worker(prefect_server: dict[str, str], tmp_path: Path):
    env, api = prefect_server, prefect_server["PREFECT_API_URL"]
    config = scripted_config(tmp_path, steps=5, batch=2, k=2)
    run_dir = tmp_path / "campaign"
    res = subprocess.run(sparq_cmd("schedule", "--config", str(config), "--run-dir", str(run_dir), "--cron",
                                   "30 2 * * 1", "--name", "weekly", "--work-pool", "sparq-test-pool"),
                         env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "prefect worker start --pool sparq-test-pool" in res.stdout
    dep = _deployment(api, "weekly")
    assert dep["work_pool_name"] == "sparq-test-pool"
    assert [s["schedule"]["cron"] for s in dep["schedules"]] == ["30 2 * * 1"]
    log = tmp_path / "worker.log"
    with open(log, "w") as fh:
        worker = subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", "sparq-test-pool"], env=env,
                                  stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        state = _run_deployment(api, dep["id"], "flow run on the worker", worker, log)
        assert state == "COMPLETED", log.read_text()[-3000:]
        assert _committed(run_dir) == 1
    finally:
        _stop(worker)


def test_rounds_target_counts_finished_rounds(tmp_path: Path):
    import json

    from flows.schedule import rounds_target

    assert rounds_target(tmp_path, 2) == 2  # nothing yet
    (tmp_path / "state.json").write_text(json.dumps({"round": 2, "stage": "export", "rounds": {}}))
    assert rounds_target(tmp_path, 1) == 2  # round 2 was cut short: the next run finishes it
    (tmp_path / "state.json").write_text(json.dumps({"round": 2, "stage": "done", "rounds": {}}))
    assert rounds_target(tmp_path, 1) == 3


@pytest.mark.ci
def test_rounds_deployment_adds_a_round_per_run(prefect_server: dict[str, str], tmp_path: Path):
    """`sparq schedule --rounds-per-run 1` serves a rounds campaign: each flow run adds one
    round with the real stages (export, LoRA fine-tuning of the embedded model, evaluation)
    on the scripted engine (what is under test is scheduling)."""
    import json

    env, api = prefect_server, prefect_server["PREFECT_API_URL"]
    gen = scripted_config(tmp_path, steps=2, batch=4, k=2)
    ft = tmp_path / "ft.toml"
    ft.write_text("[train]\nmax_steps = 1\n[evaluate]\nlimit = 4\nn = 2\nk = 2\n")
    cfg = tmp_path / "rounds.toml"
    cfg.write_text(f'[rounds]\nsteps_per_round = 2\ngenerate_config = "{gen}"\nfinetune_config = "{ft}"\n')
    directory = tmp_path / "rounds"
    proc, log = _serve(env, tmp_path, "--config", str(cfg), "--run-dir", str(directory), "--cron", "0 3 * * *",
                       "--rounds-per-run", "1", "--name", "weekly")

    def deployment():
        try:
            r = httpx.get(f"{api}/deployments/name/sparq-rounds-campaign/weekly", timeout=30)
        except httpx.HTTPError:
            return None
        return r.json() if r.status_code == 200 else None

    try:
        dep = _wait("deployment sparq-rounds-campaign/weekly", deployment, 120, proc, log)
        assert dep["parameters"]["directory"] == str(directory)
        for expected in (1, 2):
            state = _run_deployment(api, dep["id"], f"rounds flow run {expected}", proc, log)
            assert state == "COMPLETED", log.read_text()[-3000:]
            st = json.loads((directory / "state.json").read_text())
            assert (st["round"], st["stage"]) == (expected, "done")
        rows = json.loads((directory / "rounds.json").read_text())
        assert [x["round"] for x in rows] == [0, 1, 2]
    finally:
        _stop(proc)
