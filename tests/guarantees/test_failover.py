"""Several endpoints: least-loaded dispatch, dead endpoints skipped, a server killed mid-run.

The unit tests run the `openai` engine against in-process fakes (tests/helpers/fake_openai.py).
The campaign test runs `sparq generate --no-prefect` against two OpenAI-compatible fake
servers, each in its own process (tests/helpers/fake_openai_proc.py, answers a pure function of
the request), and SIGKILLs one of them with a request in flight during step 2.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipeline.config import EngineConfig, OpenAISettings
from pipeline.engines import EngineError, Sampling, make_engine
from pipeline.store.storage import RunDir
from tests.conftest import REPO, sparq_cmd
from tests.guarantees.test_crash import check_run
from tests.helpers.fake_openai import FakeOpenAI
from tests.unit.pipeline.engines.test_engines import _closed_port

PROMPT = "Problem: 1 + 1?\nSolution:"


def _engine(urls, **kw):
    settings = dict(base_urls=tuple(urls), retries=2, backoff_s=1.0, timeout_s=5.0) | kw
    return make_engine(EngineConfig(kind="openai", model="m", openai=OpenAISettings(**settings)))


def _complete(engine, n: int) -> None:
    out = engine.complete([PROMPT] * n, Sampling())
    assert len(out) == n and all(len(r) == 1 for r in out)


# -- the engine -------------------------------------------------------------------------


def _backoffs(monkeypatch: pytest.MonkeyPatch, backoff_s: float) -> list[float]:
    """The backoff waits the engine makes from now on (its asyncio.sleep calls of backoff_s or more)."""
    waits: list[float] = []
    sleep = asyncio.sleep

    async def recorded(delay, *args, **kw):
        if delay >= backoff_s:
            waits.append(delay)
        return await sleep(delay, *args, **kw)

    monkeypatch.setattr(asyncio, "sleep", recorded)
    return waits


def test_dead_endpoint_is_marked_down_and_skipped(monkeypatch: pytest.MonkeyPatch):
    dead = f"http://127.0.0.1:{_closed_port()}/v1"
    with FakeOpenAI() as good:
        engine = _engine([dead, good.url], backoff_s=5.0)
        waits = _backoffs(monkeypatch, 5.0)
        try:
            # Refused: the request moves to the live endpoint at once (no backoff_s = 5 s wait).
            _complete(engine, 4)
            down = engine.endpoints[0]
            assert down.marked_down == 1 and down.down_until > time.monotonic()
            tried = down.requests
            for _ in range(3):  # within the cooldown: no request goes to the dead endpoint
                _complete(engine, 6)
            assert down.requests == tried
            assert len(good.requests) == 4 + 18
            assert waits == []
        finally:
            engine.close()


def test_requests_go_to_the_least_loaded_endpoint():
    # One slot each: round robin would give the slow endpoint half the requests (4 x 1 s);
    # least-loaded gives it the first one while the fast endpoint takes the rest.
    with FakeOpenAI(fault="slow", delay_s=1.0) as slow, FakeOpenAI() as fast:
        engine = _engine([slow.url, fast.url], concurrency=1)
        try:
            _complete(engine, 8)
            assert len(slow.requests) <= 2 and len(fast.requests) >= 6
        finally:
            engine.close()


def test_endpoint_returns_after_cooldown_through_one_probe():
    # The first request to `flaky` has its connection closed (a transport error), then it is well.
    with FakeOpenAI(fault="close", faults=1) as flaky, FakeOpenAI() as good:
        engine = _engine([flaky.url, good.url], concurrency=4, cooldown_s=1.0)
        try:
            engine.complete([PROMPT], Sampling())
            ep = engine.endpoints[0]
            assert len(flaky.requests) == 1 and ep.marked_down == 1 and len(good.requests) == 1
            engine.complete([PROMPT] * 4, Sampling())
            assert len(flaky.requests) == 1  # cooling down
            ep.down_until = time.monotonic()  # the cooldown is over (instead of waiting it out)
            engine.complete([PROMPT] * 4, Sampling())
            assert len(flaky.requests) == 2  # one probe at a time
            assert ep.failures == 0 and ep.down_until == 0.0
            engine.complete([PROMPT] * 8, Sampling())
            assert len(flaky.requests) == 2 + 4  # back to its share
        finally:
            engine.close()


def test_all_endpoints_down_are_still_tried():
    urls = [f"http://127.0.0.1:{_closed_port()}/v1" for _ in range(2)]
    engine = _engine(urls, backoff_s=0.05)
    try:
        with pytest.raises(EngineError) as info:
            engine.complete([PROMPT], Sampling())
        assert all(u in str(info.value) for u in urls)
        assert sum(e.requests for e in engine.endpoints) == 3  # retries + 1, both marked down
        assert all(e.marked_down >= 1 for e in engine.endpoints)
    finally:
        engine.close()


def test_engine_pickles_with_its_endpoint_state():
    with FakeOpenAI() as server:
        engine = _engine([server.url])
        try:
            _complete(engine, 2)
            copy = pickle.loads(pickle.dumps(engine))
            try:
                _complete(copy, 2)
                assert copy.endpoints[0].ok == 4 and engine.endpoints[0].ok == 2
            finally:
                copy.close()
        finally:
            engine.close()


def test_calls_from_several_threads_share_the_slots():
    for concurrency in (2, 1):
        # The server holds every request 0.6 s, so two calls sent together overlap there
        # unless the engine's slots keep one waiting; the server counts the overlap.
        with FakeOpenAI(fault="slow", delay_s=0.6) as server:
            engine = _engine([server.url], concurrency=concurrency)
            try:
                threads = [threading.Thread(target=engine.complete, args=([PROMPT], Sampling())) for _ in range(2)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                # Two slots: the calls run side by side; one slot: one waits for the other.
                assert server.max_in_flight == concurrency
                assert engine.endpoints[0].ok == 2
            finally:
                engine.close()


def test_an_engine_dropped_without_close_stops_its_loop():
    with FakeOpenAI() as server:
        engine = _engine([server.url])
        _complete(engine, 1)
        thread = engine._thread
        del engine
        gc.collect()
        thread.join(5)
        assert not thread.is_alive()


# -- a campaign across a server kill ----------------------------------------------------

STEPS, BATCH, K, SEEDS = 4, 8, 4, 40


class ServerProc:
    """tests/helpers/fake_openai_proc.py in its own process: one endpoint, a request log."""

    def __init__(self, tmp: Path, name: str, *args: str) -> None:
        self.log = tmp / f"{name}.jsonl"
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.helpers.fake_openai_proc", "--log", str(self.log),
                                      *args], cwd=REPO, stdout=subprocess.PIPE, text=True,
                                     start_new_session=True)
        self.url = ""
        for line in self.proc.stdout:
            if line.startswith("URL "):
                self.url = line.split()[1]
            if line.startswith("READY"):
                break
        assert self.url, f"server {name} did not start"

    def served(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(ln) for ln in self.log.read_text().splitlines() if ln.endswith("}")]

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


def _wait(cond, timeout: float, what: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        assert proc.poll() is None, f"sparq generate ended (rc {proc.returncode}) before {what}"
        time.sleep(0.005)


def test_campaign_survives_a_server_killed_mid_run(tmp_path: Path):
    arm, hung = tmp_path / "arm", tmp_path / "hung"
    a = ServerProc(tmp_path, "a", "--latency-ms", "20")
    # b answers like a, but once armed its 3rd request is never answered: it is killed with it in flight.
    b = ServerProc(tmp_path, "b", "--latency-ms", "20", "--arm", str(arm), "--hang-after", "3",
                   "--hung", str(hung))
    run_dir = tmp_path / "run"
    config = tmp_path / "config.toml"
    config.write_text(f'[run]\nsteps = {STEPS}\nbatch_size = {BATCH}\n[seeds]\nlimit = {SEEDS}\n'
                      f'[archive]\ncells = 64\n[solver]\nk = {K}\n'
                      f'[engine]\nkind = "openai"\nmodel = "fake"\n'
                      f'[engine.openai]\nbase_urls = ["{a.url}", "{b.url}"]\n'
                      'concurrency = 2\ntimeout_s = 20.0\nretries = 3\nbackoff_s = 0.05\n')
    gen = subprocess.Popen(sparq_cmd("generate", "--config", str(config), "--run-dir", str(run_dir),
                                     "--no-prefect", "--quiet"),
                           cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        run = RunDir(run_dir)

        def committed() -> int:
            try:
                ckpt = run.read_checkpoint()
            except Exception:  # being replaced: look again
                return -1
            return -1 if ckpt is None else ckpt.step

        _wait(lambda: committed() >= 1, 120, "step 1", gen)
        armed_at = time.time()
        arm.touch()
        _wait(hung.exists, 60, "b's hung request", gen)
        # b has answered requests since it was armed (the hung one is its third).
        _wait(lambda: any(r["t0"] >= armed_at for r in b.served()), 5, "b's answers after arming", gen)
        at_kill = committed()
        b_served = b.served()
        b.kill()
        killed_at = time.time()
        out, err = gen.communicate(timeout=120)
    finally:
        if gen.poll() is None:
            os.killpg(gen.pid, signal.SIGKILL)
            gen.wait(10)
        a.kill()
        b.kill()
    assert gen.returncode == 0, err
    assert 1 <= at_kill < STEPS, f"the kill landed after step {at_kill}: not mid-run"

    # Every step committed exactly once, steps x batch candidates, ids unique, none lost.
    rows = check_run(run_dir, STEPS, seeds=SEEDS, batch=BATCH)
    assert rows == SEEDS + STEPS * BATCH
    cands = RunDir(run_dir).read_candidates().to_pylist()
    generated = [c for c in cands if c["step"] > 0]
    assert len(generated) == STEPS * BATCH
    assert {c["status"] for c in generated} == {"ok"}  # every answer arrived and parsed
    assert all(c["k"] == K for c in generated)
    assert len({c["problem_id"] for c in generated}) == STEPS * BATCH

    # One mutation and one solve request per candidate, and one verifier request per
    # candidate that could enter the archive, each answered (once or, for a request cut by
    # the kill, again by a): the union of what the two servers answered.
    a_served = a.served()
    assert b.served() == b_served  # nothing after the kill
    keys = {r["key"] for r in a_served} | {r["key"] for r in b_served}
    verified = sum(c["verifier_share"] is not None for c in generated)
    requests = 2 * STEPS * BATCH + verified
    assert len(keys) == requests
    assert sum(r["kind"] == "mutate" for r in a_served + b_served) == STEPS * BATCH
    # b served its part until the kill (step 1 and some of step 2); a served the remainder.
    assert any(r["t0"] < armed_at for r in b_served) and any(r["t0"] >= armed_at for r in b_served)
    after = [r for r in a_served if r["t1"] > killed_at]
    assert len(after) == requests - len(b_served) - sum(r["t1"] <= killed_at for r in a_served)
    assert after, "a answered nothing after the kill"
    # The dead endpoint was marked down once and skipped for the rest of the run (cooldown 30 s).
    assert err.count("marked down") == 1, err
