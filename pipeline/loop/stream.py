"""The streaming campaign: no phase or step barrier, so the engine's batch stays full.

In steps mode (`Campaign.run_step`) every phase waits for its slowest request: all of a
step's mutations, then all of its solves, then verify, embed, archive, commit. With
unequal output lengths the engine drains at the end of every phase. Here each candidate
moves on its own instead:

    draw a parent -> mutation request -> parse + validity checks -> (skill-set: label
    request) -> solve request (k samples, or the adaptive rounds) -> judge -> (could enter
    the archive: verifier request -> judge) -> embed -> finished

A request refused for its own reason (`RequestError`) finishes its candidate as failed;
one that fails in transport is sent again (RETRIES times, then the run stops).

Up to `window` candidates are in flight at once (`run.in_flight`, or enough to fill the
engine's continuous batch: `engine.capacity(k)` requests, with a margin); a new mutation
starts whenever one finishes. Parents are drawn from the committed archive only.

Commits keep every guarantee of steps mode. A commit is one step of the run directory:
written atomically when `commit_every` candidates have finished (default: batch_size)
or `commit_seconds` have passed, with the finished candidates as its slots in the order
they finished. The archive inserts happen at the commit, in (step, slot) order, so the
archive after step N is still `rederive_archive` of the committed rows. A kill loses only
the work in flight; every committed row's parents are committed rows or seeds.

What counts: `--steps N` asks for N commits; the progress bar counts commits. The stream
stops launching once the run's candidates (committed, finished and in flight) reach
steps x commit_every, and the last commit waits for every candidate in flight, so a run
makes steps x commit_every candidates, as many as steps mode, and none is thrown away
(a commit made early by `commit_seconds` is smaller, and the last one then larger). Which candidate lands in which
commit depends on completion order, so a streaming run is reproducible only up to that
order (steps mode replays exactly).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field, replace

from pipeline.engines import EngineError, RequestError
from pipeline.engines.base import BatchSubmitter, Completion, Submitter, submitter
from pipeline.loop.campaign import Campaign
from pipeline.loop.candidate import Draft
from pipeline.loop.lifecycle import JUDGE, LABEL, MUTATE, VERIFY, VERIFY_JUDGE, Lifecycle, Request, judge_all
from pipeline.store.records import Status, StepMetrics
from pipeline.store.storage import crash_point

# Candidates in flight per request of k samples that would fill the engine's batch. More
# than 1: a request's samples end at different times, so for most of its life a solve
# request holds fewer running sequences than its k (with heavy-tailed lengths, a few);
# and queued work covers the gap between a request finishing and its follow-up (verify,
# the next round) arriving. bench/streaming.py measures what a window keeps busy.
WINDOW_MARGIN = 3
RETRIES = 2  # a failed request is sent again this many times before the run stops

OnCommit = Callable[[StepMetrics], None]


@dataclass
class _Work:
    """One candidate in flight: its lifecycle (pipeline/loop/lifecycle.py), the request it
    waits for, and the time it spent waiting on the engine."""

    seq: int
    life: Lifecycle
    tries: int = 0
    sent: float = 0.0
    request: Request | None = None
    seconds: dict[str, float] = field(default_factory=lambda: {"mutate": 0.0, "solve": 0.0})

    @property
    def draft(self) -> Draft | None:
        return self.life.draft


def stream_window(camp: Campaign, sub: Submitter) -> int:
    """Candidates in flight at most: `run.in_flight`, else enough solve requests to fill
    the engine's batch (with a margin), never fewer than one commit's worth."""
    run = camp.config.run
    if run.in_flight:
        return run.in_flight
    k = camp.config.solver.round_size if camp.config.solver.adaptive else camp.config.solver.k
    return max(commit_size(camp), math.ceil(WINDOW_MARGIN * sub.capacity(max(1, k))))


def commit_size(camp: Campaign) -> int:
    return camp.config.run.commit_every or camp.config.run.batch_size


class Stream:
    """Runs a campaign as a stream until it has `target` committed steps."""

    def __init__(self, camp: Campaign, *, on_commit: OnCommit | None = None) -> None:
        self.camp = camp
        self.on_commit = on_commit or (lambda m: None)
        self.sub = submitter(camp.engine, fallback_capacity=camp.config.run.batch_size)
        # The solver's and the verifier's requests go to their own engines when they have them.
        self.ssub = self.sub if camp.config.solver.engine == "campaign" else submitter(
            camp.solver_engine, fallback_capacity=camp.config.run.batch_size)
        self.vsub = self.sub if not camp.verifies or camp.config.verifier.engine == "campaign" else submitter(
            camp.verifier_engine, fallback_capacity=camp.config.run.batch_size)
        self.window = stream_window(camp, self.sub)
        self.every = commit_size(camp)
        self.inflight: dict[Future, _Work] = {}
        self.finished: list[tuple[Draft, _Work]] = []
        self.pending: set[str] = set()  # problem ids in flight or finished, not committed
        # Finished ok drafts' embeddings, computed in the background: id -> (future, row).
        self._embeddings: dict[int, tuple[Future, int]] = {}
        self._seq = int(camp.counters.get("launched", 0))
        self._target = camp.step
        self._last_commit = time.perf_counter()

    # -- the loop ----------------------------------------------------------------------
    def run(self, target: int) -> None:
        camp = self.camp
        self._target = target
        camp.log(f"streaming: up to {self.window} candidates in flight, a commit every {self.every} "
                 f"finished or {camp.config.run.commit_seconds:g} s")
        try:
            while camp.step < target:
                last = camp.step + 1 == target
                self._launch(target)
                self._flush()
                if self._should_commit(last):
                    self._commit()
                    continue
                if not self.inflight:  # nothing running and nothing to commit: cannot happen
                    raise RuntimeError("stream: no candidate in flight and none finished")
                # Wake for the time-based commit only when there is something to commit.
                ready = bool(self.finished) and not last and bool(self._ready(self.every)[0])
                timeout = self._deadline() - time.perf_counter() if ready else None
                done, _ = wait(list(self.inflight), timeout=timeout, return_when=FIRST_COMPLETED)
                self._advance(done)
        finally:
            self._abandon()

    def _launch(self, target: int) -> None:
        """Draw parents for the free places of the window, within what the remaining
        commits can hold, and send their mutation requests."""
        camp = self.camp
        # The run's candidates so far (committed, finished, in flight) against what
        # `target` commits of `every` hold; a run resumed with other settings (more
        # candidates already than that) still fills each missing commit.
        made = int(camp.counters.get("candidates", 0)) + len(self.finished) + len(self.inflight)
        # (re-scoring steps, pipeline/loop/rescore.py, hold no new candidates)
        budget = (target - int(camp.counters.get("rescored_steps", 0))) * self.every - made
        if not self.inflight:  # never stall short of the next commit
            budget = max(budget, self.every - len(self.finished))
        count = min(self.window - len(self.inflight), budget)
        if count <= 0:
            return
        for parent in camp.select_parents(count):
            self._seq += 1
            self._next(_Work(seq=self._seq, life=Lifecycle(camp.rules, parent, pending=self.pending)))

    def _send(self, work: _Work, request: Request) -> None:
        """Send `request` with the seed of its phase and the candidate's sequence number."""
        work.request, work.sent = request, time.perf_counter()
        sub = {"verifier": self.vsub, "solver": self.ssub}.get(request.role, self.sub)
        sampling = replace(request.sampling, seed=self.camp.request_seed(work.seq, request.phase))
        self.inflight[sub.submit(request.prompt, sampling)] = work

    def _flush(self) -> None:
        """Send what a buffering submitter holds (Dask fan-out: a burst as few chunk tasks).
        Called once the loop has sent what it can, before it commits or waits."""
        for sub in {id(s): s for s in (self.sub, self.ssub, self.vsub)}.values():
            flush = getattr(sub, "flush", None)
            if flush is not None:
                flush()

    def _deadline(self) -> float:
        return self._last_commit + self.camp.config.run.commit_seconds

    def _should_commit(self, last: bool) -> bool:
        if not self.finished:
            return False
        if last:  # the last commit takes everything launched
            return not self.inflight
        ready = len(self._ready(self.every)[0])  # duplicates wait for their originals
        return ready >= self.every or (ready > 0 and time.perf_counter() >= self._deadline())

    # -- one candidate's next move -------------------------------------------------------
    def _advance(self, done: set[Future]) -> None:
        answered: list[_Work] = []
        for fut in done:
            work = self.inflight.pop(fut)
            stage, elapsed = work.life.stage, time.perf_counter() - work.sent
            try:
                outs: list[Completion] = fut.result()
            except RequestError as exc:  # refused for its own reason: the candidate fails, the run goes on
                self.camp.count_outcome(exc)
                work.life.accept(exc)
                self._next(work)
                continue
            except EngineError as exc:
                if work.tries >= RETRIES:
                    raise
                work.tries += 1
                self.camp.log(f"stream: request failed ({exc}); sending it again ({work.tries}/{RETRIES})")
                self._send(work, work.request)
                continue
            work.tries = 0
            self.camp.count_outcome(outs)
            work.seconds["mutate" if stage in (MUTATE, LABEL) else "solve"] += elapsed
            # test-only fault injection (pipeline/store/storage.py)
            if stage == MUTATE:
                crash_point("mutate", self.camp.step + 1)
            elif stage != LABEL and stage != VERIFY:
                crash_point("solve", self.camp.step + 1)
            work.life.accept(outs)
            answered.append(work)
        # The attempts (and verifier answers) that came back, judged together: one call to
        # the judge's workers.
        judge_all(self.camp.rules, self.camp.judge, [w.life for w in answered if w.life.stage in (JUDGE, VERIFY_JUDGE)])
        for work in answered:
            self._next(work)
        # The newly finished ok problems, embedded together in the background.
        todo = [d for d, _ in self.finished if d.status == Status.OK and id(d) not in self._embeddings]
        if todo:
            fut = self.camp.embed_async([d.mutation.problem for d in todo])
            self._embeddings.update({id(d): (fut, i) for i, d in enumerate(todo)})

    def _next(self, work: _Work) -> None:
        """Send the candidate's next request, or mark it finished."""
        request = work.life.next_request()
        if request is not None:
            self._send(work, request)
        elif work.life.done:
            self.finished.append((work.draft, work))
        else:
            raise RuntimeError(f"stream: candidate {work.seq} waits in stage {work.life.stage!r} with nothing sent")

    # -- commits ---------------------------------------------------------------------------
    def _commit(self) -> None:
        """Commit the first `every` finished candidates (all of them at the last commit),
        as slots in the order they finished."""
        camp = self.camp
        step = camp.step + 1
        take = len(self.finished) if step == self._target else self.every
        batch, self.finished = self._ready(take)
        drafts = []
        for slot, (d, _) in enumerate(batch):
            d.slot = slot
            drafts.append(d)
        embeddings = {}
        for d in drafts:
            if d.status == Status.OK:
                fut, row = self._embeddings.pop(id(d))
                embeddings[d.slot] = fut.result()[row]
        mutate_s = sum(w.seconds["mutate"] for _, w in batch)
        solve_s = sum(w.seconds["solve"] for _, w in batch)
        camp.record_launched(self._seq)
        metrics = camp.finish_step(step, drafts, mutate_s, solve_s, self._last_commit, embeddings=embeddings)
        for d in drafts:
            if d.status in Status.OWNERS:  # the owner of its problem id (a duplicate is not)
                self.pending.discard(d.problem_id)
        self._last_commit = time.perf_counter()
        self.on_commit(metrics)

    def _ready(self, take: int) -> tuple[list[tuple[Draft, _Work]], list[tuple[Draft, _Work]]]:
        """The first `take` finished candidates that may be committed now, and the rest. A
        duplicate waits while the owner of its problem id (the original) is uncommitted and
        not in this batch: committed first, a kill in between would leave a duplicate row
        whose original was never written, and the problem would be lost on resume."""
        owns = Status.OWNERS
        live = {w.draft.problem_id for w in self.inflight.values() if w.draft is not None and w.draft.status in owns}
        batch = [item for item in self.finished if item[0].status != Status.DUPLICATE][:take]
        left = {item[0].problem_id for item in self.finished
                if item[0].status in owns and not any(item is b for b in batch)}
        for item in self.finished:
            d = item[0]
            if d.status == Status.DUPLICATE and len(batch) < take and d.problem_id not in live | left:
                batch.append(item)
        rest = [item for item in self.finished if not any(item is b for b in batch)]
        return batch, rest

    def _abandon(self) -> None:
        """Stop: cancel what is in flight (its work is lost, nothing committed changes)."""
        for fut in self.inflight:
            fut.cancel()
        if self.inflight or self.finished:
            self.camp.log(f"stream: stopped with {len(self.inflight)} candidate(s) in flight and "
                          f"{len(self.finished)} finished but not committed (not written)")
        self.inflight.clear()
        for sub in {id(s): s for s in (self.sub, self.ssub, self.vsub)}.values():
            if isinstance(sub, BatchSubmitter):
                sub.close()


def run_stream(camp: Campaign, target: int, on_commit: OnCommit | None = None) -> None:
    """Run `camp` as a stream until `target` steps are committed (see the module doc)."""
    Stream(camp, on_commit=on_commit).run(target)
