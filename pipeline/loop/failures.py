"""Refused requests: a failed candidate, not a failed run, within a bound.

A request refused for a reason of its own (`RequestError`: a prompt longer than the
context, a body the server rejects) fails its candidate, which is committed with status
`failed` and the reason, and the run goes on. When every request is refused, the fault is
the campaign's (engine.max_model_len too small for its prompts, a server that rejects the
request format), so after `run.max_failed_in_a_row` refusals with no answered request in
between the run stops with one line (an `EngineError`); with 10% of requests refused at
random, 32 in a row happen with probability 1e-32 per request.
"""

from __future__ import annotations

import threading

from pipeline.engines.base import EngineError, RequestError


class TooManyRefusals(EngineError):
    """The run stops: `run.max_failed_in_a_row` requests in a row were refused. Retrying the
    phase would only be refused again (an orchestrator's retry condition skips it)."""


class Refusals:
    """Counts refusals in a row; `answered` resets, `refused` raises past the limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_a_row = 0
        self.total = 0
        self._lock = threading.Lock()

    def answered(self) -> None:
        with self._lock:
            self.in_a_row = 0

    def refused(self, exc: RequestError) -> None:
        with self._lock:
            self.in_a_row += 1
            self.total += 1
            if self.in_a_row >= self.limit:
                raise TooManyRefusals(
                    f"{self.in_a_row} requests in a row were refused, none answered in between "
                    f"(run.max_failed_in_a_row = {self.limit}); the last: {exc}. The engine cannot "
                    "answer this campaign's requests: check engine.max_model_len and the prompts")


def failed_reason(stage: str, exc: RequestError) -> str:
    """The committed reason of a candidate whose `stage` request was refused."""
    return f"{stage} request refused: {exc}"
