"""Model engines behind one Protocol: transformers (embedded CPU default), vllm, openai."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from pipeline.config import EngineConfig
from pipeline.engines.base import Completion, Engine, EngineError, EngineStats, RequestError, Sampling


@dataclass(frozen=True)
class Backend:
    """One engine kind: where its class lives (imported only when chosen) and whether it
    streams: answers through `submit` with a continuous batch to keep full, so
    `run.mode = "auto"` runs a stream on it (openai endpoints, in-process vLLM on GPU and
    CPU: bench/streaming.py) rather than steps (transformers, scripted: batch by batch)."""

    module: str
    cls: str
    streams: bool


# Adding an engine: its module, and one line here.
BACKENDS: dict[str, Backend] = {
    "transformers": Backend("pipeline.engines.hf", "TransformersEngine", streams=False),
    "vllm": Backend("pipeline.engines.vllm_engine", "VLLMEngine", streams=True),
    "openai": Backend("pipeline.engines.openai_engine", "OpenAIEngine", streams=True),
    "scripted": Backend("pipeline.engines.scripted", "ScriptedEngine", streams=False),
}


def engine_class(kind: str) -> type:
    if kind not in BACKENDS:
        raise ValueError(f"engine kind: expected one of {tuple(BACKENDS)}, got {kind!r}")
    backend = BACKENDS[kind]
    return getattr(importlib.import_module(backend.module), backend.cls)


def streams(kind: str) -> bool:
    """Whether engines of `kind` stream (BACKENDS); unknown kinds do not."""
    return kind in BACKENDS and BACKENDS[kind].streams


def make_engine(cfg: EngineConfig, *, seed: int = 0) -> Engine:
    """Build the engine named by `cfg.kind` (imports heavy backends only when chosen)."""
    cls = engine_class(cfg.kind)
    if cfg.kind == "scripted":
        return cls.from_file(cfg.scripted.script)
    return cls(cfg, seed=seed)


__all__ = ["BACKENDS", "Backend", "Completion", "Engine", "EngineError", "EngineStats", "RequestError", "Sampling",
           "engine_class", "make_engine", "streams"]
