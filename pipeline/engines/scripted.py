"""A scripted engine for unit tests of parsing and control flow (never for evidence).

It answers from a JSON file: {"mutate": [texts...], "solve": [texts...], "label": [texts...],
"delay_s": 0, "refuse": ""}. A prompt ending in "Solution:" is a solve prompt, one ending in "Skills:" a
skill-labelling prompt (answered from "label", default: no skills); others are mutations.
Outputs are handed out in order, cycling, so a test controls exactly what the pipeline
sees. `delay_s` makes each call slow (to kill a run mid-step). `refuse` (non-empty) marks
the prompts to refuse: a call with a prompt containing it raises `RequestError` before it
hands out anything, as a real engine refuses a prompt longer than its context.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Sequence
from pathlib import Path

from pipeline.engines.base import Completion, EngineStats, RequestError, Sampling, truncate_at_stop
from pipeline.prompts import Prompt


class ScriptedEngine:
    def __init__(self, mutate: Sequence[str], solve: Sequence[str], delay_s: float = 0.0,
                 label: Sequence[str] = ("",), refuse: str = "") -> None:
        if not mutate or not solve:
            raise ValueError("ScriptedEngine: expected non-empty 'mutate' and 'solve' lists")
        self.name = "scripted"
        self.stats = EngineStats()
        self._mutate = itertools.cycle(mutate)
        self._solve = itertools.cycle(solve)
        self._label = itertools.cycle(label or ("",))
        self._delay = delay_s
        self._refuse = refuse

    @classmethod
    def from_file(cls, path: str | Path) -> ScriptedEngine:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(data["mutate"], data["solve"], float(data.get("delay_s", 0.0)), data.get("label", ("",)),
                   str(data.get("refuse", "")))

    def complete(self, prompts: Sequence[Prompt], sampling: Sampling) -> list[list[Completion]]:
        if self._delay:
            time.sleep(self._delay)
        for i, p in enumerate(prompts):
            text = p if isinstance(p, str) else "".join(m["content"] for m in p)
            if self._refuse and self._refuse in text:
                raise RequestError(f"{self.name}: prompt {i} is refused (it contains {self._refuse!r}, "
                                   "as a prompt over the context would be)")
        out = []
        for p in prompts:
            text = p if isinstance(p, str) else p[-1]["content"]
            end = text.rstrip()
            source = self._solve if end.endswith("Solution:") else self._label if end.endswith("Skills:") \
                else self._mutate
            row = [truncate_at_stop(next(source), sampling.stop) for _ in range(sampling.n)]
            # As a real engine says: "stop" where a stop string ended the text.
            out.append([Completion(text=t, tokens=max(1, len(t.split())), finish_reason="stop" if cut else None)
                        for t, cut in row])
        self.stats.calls += 1
        self.stats.tokens += sum(c.tokens for cs in out for c in cs)
        return out

    def close(self) -> None:
        pass
