"""The engine contract: one small Protocol that every model backend implements.

`complete(prompts, sampling)` returns, for each prompt, `sampling.n` completions. A
prompt is a string (completion models) or a list of chat messages (the engine applies
the model's chat template). Engines are built once and reused across steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from pipeline.prompts import Prompt


class EngineError(RuntimeError):
    """An engine could not answer; the message names the endpoint or model."""


@dataclass(frozen=True)
class Sampling:
    n: int = 1
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 128
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"Sampling.n: expected >= 1, got {self.n}")
        if self.max_tokens < 1:
            raise ValueError(f"Sampling.max_tokens: expected >= 1, got {self.max_tokens}")


@dataclass(frozen=True)
class Completion:
    text: str
    tokens: int  # generated tokens (as counted by the engine)
    finish_reason: str | None = None


@dataclass
class EngineStats:
    calls: int = 0
    prompts: int = 0
    completions: int = 0
    tokens: int = 0
    seconds: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    def record(self, prompts: int, out: Sequence[Sequence[Completion]], seconds: float) -> None:
        """Count one engine call: its prompts, completions, generated tokens and seconds."""
        self.calls += 1
        self.prompts += prompts
        self.completions += sum(len(c) for c in out)
        self.tokens += sum(c.tokens for cs in out for c in cs)
        self.seconds += seconds


@runtime_checkable
class Engine(Protocol):
    name: str

    def complete(self, prompts: Sequence[Prompt], sampling: Sampling) -> list[list[Completion]]:
        ...

    def close(self) -> None:
        ...


def truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut `text` at the first stop string (engines that over-generate past it)."""
    cut = len(text)
    for s in stop:
        i = text.find(s)
        if 0 <= i < cut:
            cut = i
    return text[:cut], cut < len(text)
