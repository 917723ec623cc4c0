"""The streaming campaign (pipeline/loop/stream.py): control flow and the commit guarantees.

An engine whose requests finish out of order (each after a delay drawn from its prompt)
drives the stream; the real vLLM engine runs it in tests/real/test_vllm_cpu.py.
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import Future
from pathlib import Path

import pyarrow.compute as pc
import pytest

from pipeline.config import ConfigError, load_config
from pipeline.engines import Sampling
from pipeline.engines import streams as engine_streams
from pipeline.engines.scripted import ScriptedEngine
from pipeline.loop.campaign import Campaign, rederive_archive
from pipeline.loop.generate import run_generation
from pipeline.store.storage import RunDir
from tests.conftest import scripted_config, write_script
from tests.helpers.run_fixtures import MUTATIONS, SOLVES


class OutOfOrderEngine:
    """The scripted answers, each request finishing after its own delay (0-40 ms, from a
    hash of the prompt and a counter), so completion order differs from submission order."""

    name = "out-of-order"

    def __init__(self, max_seqs: int = 16) -> None:
        self.inner = ScriptedEngine(MUTATIONS, SOLVES)
        self.max_seqs = max_seqs
        self.submitted = 0
        self.in_flight_seqs = 0
        self.peak_seqs = 0
        self._lock = threading.Lock()

    def complete(self, prompts, sampling):
        return [self.submit(p, sampling).result() for p in prompts]

    def capacity(self, n: int = 1) -> int:
        return max(1, self.max_seqs // n)

    def submit(self, prompt, sampling: Sampling) -> Future:
        fut: Future = Future()
        with self._lock:
            self.submitted += 1
            try:
                out, error = self.inner.complete([prompt], sampling)[0], None
            except Exception as exc:  # a refused prompt: its future fails, as an async engine's does
                out, error = None, exc
            digest = hashlib.sha256(f"{prompt}{self.submitted}".encode()).digest()
            self.in_flight_seqs += sampling.n
            self.peak_seqs = max(self.peak_seqs, self.in_flight_seqs)

        def finish() -> None:
            with self._lock:
                self.in_flight_seqs -= sampling.n
            if fut.set_running_or_notify_cancel():  # not cancelled by the stream's stop
                if error is not None:
                    fut.set_exception(error)
                else:
                    fut.set_result(out)

        threading.Timer(digest[0] / 255 * 0.04, finish).start()
        return fut

    def close(self) -> None:
        pass


def _stream_config(tmp_path: Path, *, steps=4, batch=5, extra="") -> Path:
    return _write(tmp_path, write_script(tmp_path / "script.json", mutate=MUTATIONS, solve=SOLVES), steps, batch,
                  extra)


def _write(tmp_path: Path, script: Path, steps: int, batch: int, extra: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f"""
[run]
steps = {steps}
batch_size = {batch}
mode = "stream"
{extra}
[engine]
kind = "scripted"
[engine.scripted]
script = "{script}"
[solver]
k = 4
[archive]
cells = 16
[seeds]
limit = 10
""")
    return path


def check_committed(run_dir: Path, steps: int) -> dict:
    """The guarantees of a committed run, whatever mode made it; returns counts."""
    run = RunDir(run_dir)
    assert run.read_checkpoint().step == steps
    cands = run.read_candidates()
    ids = cands["id"].to_pylist()
    assert len(ids) == len(set(ids)), "a committed row is duplicated"
    by_step: dict[int, list[int]] = {}
    for r in cands.select(["step", "slot"]).to_pylist():
        by_step.setdefault(r["step"], []).append(r["slot"])
    assert sorted(by_step) == list(range(steps + 1))
    for slots in by_step.values():  # every commit's slots are 0..n-1
        assert sorted(slots) == list(range(len(slots)))
    step_of = dict(zip(ids, cands["step"].to_pylist(), strict=True))
    for r in cands.filter(pc.greater(cands["step"], 0)).to_pylist():  # lineage is closed
        for parent in (r["parent_id"], r["second_parent_id"]):
            if parent is not None:
                assert parent in step_of and step_of[parent] < r["step"], (r["id"], parent)
    owned = [r["problem_id"] for r in cands.to_pylist() if r["status"] in ("ok", "seed")]
    assert len(owned) == len(set(owned)), "a problem is in the run twice"
    from archives import load_archive

    archive, state = load_archive(run.archive_dir)
    assert state["step"] == steps
    assert archive == rederive_archive(archive, cands)
    assert run.read_metrics()["step"].to_pylist() == list(range(steps + 1))
    return {"rows": cands.num_rows, "generated": int(pc.sum(pc.greater(cands["step"], 0)).as_py())}


def test_stream_commits_out_of_order_completions(tmp_path: Path):
    cfg = load_config(_stream_config(tmp_path, steps=4, batch=5, extra="in_flight = 9"))
    engine = OutOfOrderEngine()
    summary = run_generation(cfg, tmp_path / "run", engine=engine, show_bar=False, progress=lambda m: None)
    assert summary["mode"] == "stream" and summary["steps"] == 4
    counts = check_committed(tmp_path / "run", 4)
    # steps x commit_every candidates, none lost: as many as steps mode makes
    assert counts["generated"] == 20 == summary["candidates"]
    sizes = [m for m in RunDir(tmp_path / "run").read_metrics()["candidates"].to_pylist()[1:]]
    assert sizes == [5, 5, 5, 5]
    assert engine.peak_seqs > 4  # several candidates were in flight at once


def test_stream_resume_extends_and_keeps_guarantees(tmp_path: Path):
    cfg = load_config(_stream_config(tmp_path, steps=2, batch=4))
    run_generation(cfg, tmp_path / "run", engine=OutOfOrderEngine(), show_bar=False, progress=lambda m: None)
    summary = run_generation(cfg, tmp_path / "run", resume=True, steps=5, engine=OutOfOrderEngine(),
                             show_bar=False, progress=lambda m: None)
    assert summary["steps"] == 5
    assert check_committed(tmp_path / "run", 5)["generated"] == 20


def test_stream_over_a_batch_wise_engine(tmp_path: Path):
    """mode = "stream" on an engine without submit() (scripted): batches of what queued."""
    cfg = load_config(_stream_config(tmp_path, steps=3, batch=4, extra="in_flight = 6"))
    summary = run_generation(cfg, tmp_path / "run", show_bar=False, progress=lambda m: None)
    assert summary["mode"] == "stream"
    assert check_committed(tmp_path / "run", 3)["generated"] == 12


def test_stream_adaptive_rounds(tmp_path: Path):
    cfg = load_config(_stream_config(tmp_path, steps=2, batch=4)).replace("solver", adaptive=True, round_size=2,
                                                                           k=8)
    run_generation(cfg, tmp_path / "run", engine=OutOfOrderEngine(), show_bar=False, progress=lambda m: None)
    check_committed(tmp_path / "run", 2)
    cands = RunDir(tmp_path / "run").read_candidates()
    ks = [r["k"] for r in cands.to_pylist() if r["status"] == "ok"]
    assert ks and all(2 <= k <= 8 and k % 2 == 0 for k in ks)


def test_time_based_commit(tmp_path: Path):
    """commit_seconds commits what has finished even when fewer than commit_every did."""
    cfg = load_config(_stream_config(tmp_path, steps=2, batch=4,
                                     extra="commit_every = 50\ncommit_seconds = 0.05\nin_flight = 2"))
    run_generation(cfg, tmp_path / "run", engine=OutOfOrderEngine(), show_bar=False, progress=lambda m: None)
    counts = check_committed(tmp_path / "run", 2)
    sizes = RunDir(tmp_path / "run").read_metrics()["candidates"].to_pylist()[1:]
    assert sizes[0] < 50 and counts["generated"] == 100  # the last commit takes the rest


def test_auto_mode_picks_by_engine(tmp_path: Path):
    base = load_config(scripted_config(tmp_path))
    assert not base.run.streams(engine_streams("scripted")) and not base.run.streams(engine_streams("transformers"))
    assert base.run.streams(engine_streams("vllm")) and base.run.streams(engine_streams("openai"))  # CPU vLLM too
    assert base.replace("run", mode="stream").run.streams(engine_streams("transformers"))
    steps = base.replace("run", mode="steps")
    assert not steps.run.streams(engine_streams("vllm"))

    summary = run_generation(base, tmp_path / "run", show_bar=False, progress=lambda m: None)
    assert summary["mode"] == "steps"


def test_an_engine_streams_exactly_when_it_has_its_own_submit_path():
    # The one declaration (BACKENDS) agrees with what the stream's submitter looks for.
    from pipeline.config import ENGINE_KINDS
    from pipeline.engines import BACKENDS, engine_class

    assert tuple(BACKENDS) == ENGINE_KINDS  # the config's list of kinds is the registry's
    for kind, backend in BACKENDS.items():
        cls = engine_class(kind)
        has_submit = callable(getattr(cls, "submit", None)) and callable(getattr(cls, "capacity", None))
        assert backend.streams == has_submit, kind


@pytest.mark.parametrize("text", ['mode = "barrier"', "in_flight = -1", "commit_seconds = 0"])
def test_bad_stream_settings(tmp_path: Path, text: str):
    path = tmp_path / "bad.toml"
    path.write_text(f"[run]\n{text}\n")
    with pytest.raises(ConfigError, match="run\\."):
        load_config(path)


def test_engine_failure_stops_the_stream_with_nothing_half_written(tmp_path: Path):
    class Failing(OutOfOrderEngine):
        def submit(self, prompt, sampling):
            if self.submitted >= 12:
                from pipeline.engines import EngineError

                fut: Future = Future()
                fut.set_exception(EngineError("fake: endpoint gone"))
                return fut
            return super().submit(prompt, sampling)

    cfg = load_config(_stream_config(tmp_path, steps=4, batch=3, extra="in_flight = 3"))
    from pipeline.engines import EngineError

    with pytest.raises(EngineError, match="endpoint gone"):
        run_generation(cfg, tmp_path / "run", engine=Failing(), show_bar=False, progress=lambda m: None)
    step = RunDir(tmp_path / "run").read_checkpoint().step
    check_committed(tmp_path / "run", step)
    camp = Campaign.open(tmp_path / "run", resume=True, progress=lambda m: None)
    assert camp.step == step
    camp.close()


def test_stream_resumes_a_steps_run_with_smaller_settings(tmp_path: Path):
    """A run made in steps mode (24 candidates) resumed as a stream with commits of 5 and a
    window of 2: its candidates already exceed steps x commit_every, yet each missing commit
    is filled, never stalled."""
    cfg = load_config(_stream_config(tmp_path, steps=2, batch=12)).replace("run", mode="steps")
    run_generation(cfg, tmp_path / "run", show_bar=False, progress=lambda m: None)
    (tmp_path / "run" / "config.toml").write_text((tmp_path / "run" / "config.toml").read_text().replace(
        'mode = "steps"', 'mode = "stream"').replace("in_flight = 0", "in_flight = 2").replace(
        "commit_every = 0", "commit_every = 5"))
    summary = run_generation(cfg, tmp_path / "run", resume=True, steps=4, engine=OutOfOrderEngine(),
                             show_bar=False, progress=lambda m: None)
    assert summary["mode"] == "stream" and summary["steps"] == 4
    check_committed(tmp_path / "run", 4)
