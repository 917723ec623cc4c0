"""Crash safety: SIGKILL `sparq generate` at random and at chosen points, resume, check the run.

A campaign runs for days on preemptible machines, so a kill can land anywhere: in the
model calls, while embedding, between two renames of the commit. After every kill the
durable state must already be consistent (checkpoint readable, committed shards intact,
byte for byte), and after resuming the run must satisfy the run-directory invariants:

- lineage is closed: every parent of a committed row is a committed row of an earlier step;
- every committed candidate present exactly once (ids unique and equal to
  candidate_id(run, step, slot); each step's slots 0..batch-1 exactly once);
- every attempt belongs to a committed candidate, once, and each candidate's k matches;
- the archive snapshot equals its re-derivation from the shards (rederive_archive);
- metrics rows for steps 0..N once each, and the checkpoint counters equal the totals
  of the shards (a resumed step is not counted twice);
- no temporary file or `.archive.old` left, and none ever returned by the readers.

Kills are real SIGKILLs of a real `sparq generate --no-prefect` process group (the
answer-judge workers die with it, as on a preempted machine). Targeted kills use the
test-only hook SPARQ_CRASH_AT=<phase>:<step> (pipeline/store/storage.py, `crash_point`).
Each process is chained: the next one resumes from the previous kill. Every suite runs in
both modes: steps (phases as barriers) and stream (pipeline/loop/stream.py: candidates in flight
at every stage when the kill lands, commits of BATCH finished candidates).
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from archives import CVTArchive
from pipeline.loop.campaign import rederive_archive
from pipeline.store.records import candidate_id
from pipeline.store.storage import RunDir
from tests.conftest import REPO, scripted_config, sparq_cmd
from tests.helpers.figures import row_figures

BATCH = 4
K = 4
SEEDS = 40  # a small seed set keeps step 0 fast; the invariants do not depend on its size
DELAY_S = 0.25  # per scripted engine call: a step takes ~1 s, so random kills spread over phases
SEED = 20261121  # the random kill times are reproducible


# Streaming mode over the scripted engine: requests queue while a batch runs, so kills land
# with candidates in flight at every stage; commits of BATCH finished candidates.
STREAM = f'mode = "stream"\nin_flight = {BATCH + 2}\ncommit_every = {BATCH}\n'
MODES = {"steps": 'mode = "steps"\n', "stream": STREAM}


def _config(tmp_path: Path, mode: str = "steps") -> Path:
    return scripted_config(tmp_path, steps=1000, batch=BATCH, k=K, delay_s=DELAY_S, run_extra=MODES[mode],
                           extra=f"[seeds]\nlimit = {SEEDS}\n")


class Proc:
    """`sparq generate --resume` in its own process group, stderr collected with timestamps."""

    def __init__(self, config: Path, run_dir: Path, steps: int = 1000, crash_at: str | None = None):
        env = dict(os.environ, PYTHONPATH=str(REPO))
        env.pop("SPARQ_CRASH_AT", None)
        if crash_at:
            env["SPARQ_CRASH_AT"] = crash_at
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            sparq_cmd("generate", "--config", str(config), "--run-dir", str(run_dir), "--resume",
                      "--steps", str(steps), "--no-prefect", "--quiet"),
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            start_new_session=True)
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def wait_for(self, prefix: str, timeout: float = 120) -> bool:
        """Wait until a stderr line starts with `prefix`; False if the process ended first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(line.startswith(prefix) for _, line in self.lines):
                return True
            if self.proc.poll() is not None:
                self._reader.join(5)
                return any(line.startswith(prefix) for _, line in self.lines)
            time.sleep(0.02)
        raise AssertionError(f"no line starting {prefix!r} in {timeout} s:\n{self.stderr()}")

    def kill_group(self) -> None:
        """SIGKILL the process and everything it started (a preempted machine)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(30)
        self._reader.join(5)

    def finish(self, timeout: float = 300) -> int:
        rc = self.proc.wait(timeout)
        self._reader.join(5)
        try:  # a self-inflicted SIGKILL (SPARQ_CRASH_AT) leaves the judge workers behind
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return rc

    def stderr(self) -> str:
        return "\n".join(line for _, line in self.lines)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Ledger:
    """What each kill left on disk, checked against everything committed before it."""

    def __init__(self, run_dir: Path) -> None:
        self.run = RunDir(run_dir)
        self.committed = -1
        self.hashes: dict[str, str] = {}  # shard path -> sha256, for every committed step
        self.kills = 0
        self.temp_files_seen = 0  # temporary files present right after a kill
        self.uncommitted_seen = 0  # shards of a step past the checkpoint right after a kill
        self.rows = 0  # committed candidate rows, as of the last kill

    def after_kill(self, pid: int | None = None) -> int:
        """Check the durable state right after process `pid` died; return the committed step."""
        self.kills += 1
        ckpt = self.run.read_checkpoint()  # must parse: the checkpoint is only ever renamed into place
        step = -1 if ckpt is None else ckpt.step
        assert step >= self.committed, f"committed step went back from {self.committed} to {step}"
        for name, digest in self.hashes.items():  # committed shards are never rewritten
            assert _sha(self.run.path / name) == digest, f"committed shard {name} changed"
        temps = [p for p in self.run.path.rglob("*") if ".tmp-" in p.name]
        self.temp_files_seen += len(temps)
        if pid is not None:
            # Temporary names end in the writer's pid: one from an earlier process means a
            # resume left a dead writer's temp file behind.
            stale = [str(p.relative_to(self.run.path)) for p in temps if not p.name.endswith(f".tmp-{pid}")]
            assert stale == [], f"temp files of an earlier process survived a resume: {stale}"
        for kind in ("candidates", "attempts"):
            listed = self.run.shard_paths(kind)
            assert not [p for p in listed if ".tmp-" in p.name], "a reader listed a temporary file"
            self.uncommitted_seen += sum(int(p.name[5:11]) > step for p in listed)
        if step >= 0:
            cands = self.run.read_candidates(upto=step)
            assert sorted(set(cands["step"].to_pylist())) == list(range(step + 1))
            ids = cands["id"].to_pylist()
            assert len(ids) == len(set(ids)), "duplicate candidate ids among committed steps"
            self.rows = len(ids)
            for kind in ("candidates", "attempts"):
                for p in self.run.shard_paths(kind, upto=step):
                    self.hashes.setdefault(str(p.relative_to(self.run.path)), _sha(p))
        self.committed = step
        return step


def check_run(run_dir: Path, steps: int, ledger: Ledger | None = None, *, seeds: int = SEEDS,
              batch: int = BATCH) -> int:
    """The run-directory invariants after a completed (resumed) run; returns candidate rows."""
    run = RunDir(run_dir)
    ckpt = run.read_checkpoint()
    assert ckpt is not None and ckpt.step == steps
    names = [f"step-{s:06d}.parquet" for s in range(steps + 1)]
    assert [p.name for p in run.shard_paths("candidates")] == names
    assert [p.name for p in run.shard_paths("attempts")] == names
    cands = run.read_candidates()
    rows = cands.select(["id", "run_id", "step", "slot", "status", "k"]).to_pylist()
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate candidate ids"
    for r in rows:
        assert r["id"] == candidate_id(r["run_id"], r["step"], r["slot"])
    slots: dict[int, list[int]] = {}
    for r in rows:
        slots.setdefault(r["step"], []).append(r["slot"])
    assert sorted(slots) == list(range(steps + 1))
    assert sorted(slots[0]) == list(range(seeds))
    for s in range(1, steps + 1):
        assert sorted(slots[s]) == list(range(batch)), f"step {s} slots {sorted(slots[s])}"
    # Lineage is closed: every parent of a committed row is a committed row of an earlier step.
    step_of = {r["id"]: r["step"] for r in rows}
    for r in cands.select(["step", "parent_id", "second_parent_id"]).to_pylist():
        for parent in (r["parent_id"], r["second_parent_id"]):
            assert parent is None or step_of.get(parent, r["step"]) < r["step"], f"open lineage: {parent}"
    attempts = run.read_attempts().select(["candidate_id", "attempt"]).to_pylist()
    pairs = [(a["candidate_id"], a["attempt"]) for a in attempts]
    assert len(pairs) == len(set(pairs)), "duplicate attempts"
    per = Counter(a["candidate_id"] for a in attempts)
    assert set(per) <= set(ids), "attempts of a candidate that is not committed"
    assert all(per.get(r["id"], 0) == r["k"] for r in rows)
    metrics = run.read_metrics()
    assert metrics["step"].to_pylist() == list(range(steps + 1))
    # Counters travel in the checkpoint across resumes; they must match the shards exactly.
    generated = sum(1 for r in rows if r["step"] > 0)
    assert ckpt.counters["candidates"] == generated
    assert ckpt.counters["attempts"] == len(attempts)
    assert sum(metrics["candidates"].to_pylist()[1:]) == generated
    archive, state = CVTArchive.load(run.archive_dir)
    assert state["step"] == steps
    assert archive == rederive_archive(archive.centroids, cands)
    leftovers = [p.name for p in run.path.rglob("*") if ".tmp-" in p.name or p.name == ".archive.old"]
    assert leftovers == []
    if ledger is not None:
        for name, digest in ledger.hashes.items():
            assert _sha(run.path / name) == digest, f"committed shard {name} changed after resume"
        assert len(ids) >= ledger.rows
    return len(ids)


def _finish(config: Path, run_dir: Path, ledger: Ledger, extra_steps: int = 2) -> int:
    """Resume without faults for a few more steps and check everything."""
    target = max(ledger.committed, 0) + extra_steps
    proc = Proc(config, run_dir, steps=target)
    rc = proc.finish()
    assert rc == 0, proc.stderr()
    return check_run(run_dir, target, ledger)


def random_kills(tmp_path: Path, trials: int, figures, name: str, mode: str = "steps") -> None:
    """Chained trials: each process resumes the last one's run and is killed at a random time.

    A quarter of the kills land at a uniform time from process start (imports, recovery,
    step 0, the first step's model loading); the rest at a uniform time within ~1.5 steps
    after the process has finished its first step (mutate, solve, judge, embed, commit).
    """
    rng = random.Random(SEED + trials)
    config, run_dir = _config(tmp_path, mode), tmp_path / "run"
    ledger = Ledger(run_dir)
    early = 0
    started = time.perf_counter()
    for _ in range(trials):
        proc = Proc(config, run_dir)
        if rng.random() < 0.25:
            early += 1
            time.sleep(rng.uniform(0.0, 12.0))
        else:
            assert proc.wait_for("step "), proc.stderr()
            time.sleep(rng.uniform(0.0, 6 * DELAY_S))
        assert proc.proc.poll() is None, f"the run ended before the kill:\n{proc.stderr()}"
        proc.kill_group()
        ledger.after_kill(proc.proc.pid)
    rows = _finish(config, run_dir, ledger)
    figures.record(name, trials=trials, faults_injected=ledger.kills, early_kills=early,
                   committed_steps=ledger.committed, candidate_rows=rows,
                   temp_files_seen_after_kills=ledger.temp_files_seen,
                   uncommitted_shards_seen_after_kills=ledger.uncommitted_seen,
                   **row_figures(run_dir, seeds=SEEDS, batch=BATCH), seconds=round(time.perf_counter() - started, 1))


# Each point is a (phase, step) where the process kills itself; the chain resumes after each.
# Step 0 points exercise the first commit (no checkpoint yet); "recover" kills a resume
# half-way through removing the leftovers of the step before it.
STEP1_POINTS = ["mutate:1", "solve:1", "embed:1", "shard-tmp:1", "shard:1", "metrics:1", "archive:1",
                "checkpoint-tmp:1", "committed:1"]
ALL_POINTS = (["shard-tmp:0", "metrics:0", "archive:0", "checkpoint-tmp:0", "committed:0"]
              + STEP1_POINTS + ["metrics:2", "recover:1"])
# The short chain: a first commit that dies with its temp files, then each phase the
# brief names once (mutation, solving, embedding, shard write, checkpoint write).
SHORT_POINTS = ["shard-tmp:0", "mutate:1", "solve:1", "embed:1", "shard:1", "checkpoint-tmp:1"]


def targeted_kills(tmp_path: Path, points: list[str], figures, name: str, mode: str = "steps") -> None:
    config, run_dir = _config(tmp_path, mode), tmp_path / "run"
    ledger = Ledger(run_dir)
    started = time.perf_counter()
    for point in points:
        phase, step = point.split(":")
        proc = Proc(config, run_dir, crash_at=point)
        rc = proc.finish()
        # It must have died by SIGKILL at that point, not finished or failed.
        assert rc == -signal.SIGKILL, f"{point}: exit {rc}\n{proc.stderr()}"
        committed = ledger.after_kill(proc.proc.pid)
        # Only the checkpoint rename commits a step.
        # (a recover:<n> point is reached with step n committed).
        expected = int(step) if phase in ("committed", "recover") else int(step) - 1
        assert committed == expected, f"{point}: committed step {committed}, expected {expected}"
    rows = _finish(config, run_dir, ledger)
    figures.record(name, trials=len(points), faults_injected=ledger.kills, points=points,
                   candidate_rows=rows, temp_files_seen_after_kills=ledger.temp_files_seen,
                   uncommitted_shards_seen_after_kills=ledger.uncommitted_seen,
                   **row_figures(run_dir, seeds=SEEDS, batch=BATCH), seconds=round(time.perf_counter() - started, 1))


def _name(base: str, mode: str) -> str:
    return base if mode == "steps" else f"{base}_{mode}"


@pytest.mark.parametrize("mode", ["steps", "stream"])
def test_random_kills_short(tmp_path: Path, figures, mode: str):
    random_kills(tmp_path, 5, figures, _name("crash.random_short", mode), mode)


@pytest.mark.parametrize("mode", ["steps", "stream"])
def test_targeted_kills_short(tmp_path: Path, figures, mode: str):
    targeted_kills(tmp_path, SHORT_POINTS, figures, _name("crash.targeted_short", mode), mode)


@pytest.mark.ci
@pytest.mark.parametrize("mode", ["steps", "stream"])
def test_random_kills_full(tmp_path: Path, figures, mode: str):
    random_kills(tmp_path, 20, figures, _name("crash.random_full", mode), mode)


@pytest.mark.ci
@pytest.mark.parametrize("mode", ["steps", "stream"])
def test_targeted_kills_full(tmp_path: Path, figures, mode: str):
    targeted_kills(tmp_path, ALL_POINTS, figures, _name("crash.targeted_full", mode), mode)


def test_crash_hook_is_inert_when_unset(monkeypatch):
    # The hook must never fire in normal runs: unset, or naming another point.
    from pipeline.store.storage import crash_point

    monkeypatch.delenv("SPARQ_CRASH_AT", raising=False)
    crash_point("shard", 1)
    monkeypatch.setenv("SPARQ_CRASH_AT", "shard:2")
    crash_point("shard", 1)
    crash_point("metrics", 2)
