"""Model engines behind one Protocol: transformers (embedded CPU default), vllm, openai."""

from __future__ import annotations

from pipeline.config import EngineConfig
from pipeline.engines.base import Completion, Engine, EngineError, EngineStats, RequestError, Sampling


def make_engine(cfg: EngineConfig, *, seed: int = 0) -> Engine:
    """Build the engine named by `cfg.kind` (imports heavy backends only when chosen)."""
    if cfg.kind == "transformers":
        from pipeline.engines.hf import TransformersEngine

        return TransformersEngine(cfg, seed=seed)
    if cfg.kind == "vllm":
        from pipeline.engines.vllm_engine import VLLMEngine

        return VLLMEngine(cfg, seed=seed)
    if cfg.kind == "openai":
        from pipeline.engines.openai_engine import OpenAIEngine

        return OpenAIEngine(cfg, seed=seed)
    if cfg.kind == "scripted":
        from pipeline.engines.scripted import ScriptedEngine

        return ScriptedEngine.from_file(cfg.script)
    raise ValueError(f"engine kind: expected transformers, vllm, openai or scripted, got {cfg.kind!r}")


__all__ = ["Completion", "Engine", "EngineError", "EngineStats", "RequestError", "Sampling", "make_engine"]
