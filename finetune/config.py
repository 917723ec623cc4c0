"""The fine-tuning / evaluation configuration: frozen dataclasses loaded from TOML.

`finetune/finetune.toml` holds the defaults; a user file overrides any subset of its keys.
Unknown keys, wrong types, non-finite numbers and out-of-range values fail at load time
with a one-line `FinetuneConfigError` (a ConfigError) naming the key. It is read by
pipeline/config.py's loader, so the rules and messages are the generation config's.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from finetune.errors import FinetuneConfigError
from pipeline.config import EngineConfig, check, load_layered, replace_section, to_dict

DEFAULT_FINETUNE_CONFIG = Path(__file__).parent / "finetune.toml"
METHODS = ("lora", "full")
TEMPLATES = ("problem-solution", "model")
DTYPES = ("float32", "bfloat16", "float16")
PROMPT_MODES = ("auto", "fewshot", "chat")


_check = functools.partial(check, error=FinetuneConfigError)


@dataclass(frozen=True)
class ModelSection:
    base: str = "embedded"
    chat_template: str = "problem-solution"
    save_dtype: str = "bfloat16"

    def validate(self, p: str) -> None:
        _check(bool(self.base), f"{p}.base", "a model directory or 'embedded'", self.base)
        _check(self.chat_template in TEMPLATES, f"{p}.chat_template", f"one of {TEMPLATES}", self.chat_template)
        _check(self.save_dtype in DTYPES, f"{p}.save_dtype", f"one of {DTYPES}", self.save_dtype)


@dataclass(frozen=True)
class TrainSection:
    method: str = "lora"
    epochs: float = 1.0
    max_steps: int = 0
    learning_rate: float = 2e-4
    batch_size: int = 8
    grad_accum: int = 1
    max_length: int = 512
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    logging_steps: int = 1
    assistant_only_loss: bool = True
    seed: int = 0
    device: str = "cpu"
    bf16: bool = False
    gradient_checkpointing: bool = False

    def validate(self, p: str) -> None:
        _check(self.method in METHODS, f"{p}.method", f"one of {METHODS}", self.method)
        _check(self.epochs > 0, f"{p}.epochs", "a number > 0", self.epochs)
        _check(self.max_steps >= 0, f"{p}.max_steps", "an integer >= 0", self.max_steps)
        _check(0 < self.learning_rate < 1, f"{p}.learning_rate", "a number in (0, 1)", self.learning_rate)
        _check(self.batch_size >= 1, f"{p}.batch_size", "an integer >= 1", self.batch_size)
        _check(self.grad_accum >= 1, f"{p}.grad_accum", "an integer >= 1", self.grad_accum)
        _check(self.max_length >= 16, f"{p}.max_length", "an integer >= 16", self.max_length)
        _check(0 <= self.warmup_ratio < 1, f"{p}.warmup_ratio", "a number in [0, 1)", self.warmup_ratio)
        _check(self.weight_decay >= 0, f"{p}.weight_decay", "a number >= 0", self.weight_decay)
        _check(self.logging_steps >= 1, f"{p}.logging_steps", "an integer >= 1", self.logging_steps)
        _check(self.seed >= 0, f"{p}.seed", "an integer >= 0", self.seed)
        _check(self.device in ("cpu", "cuda"), f"{p}.device", "'cpu' or 'cuda'", self.device)


@dataclass(frozen=True)
class LoraSection:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

    def validate(self, p: str) -> None:
        _check(self.r >= 1, f"{p}.r", "an integer >= 1", self.r)
        _check(self.alpha >= 1, f"{p}.alpha", "an integer >= 1", self.alpha)
        _check(0 <= self.dropout < 1, f"{p}.dropout", "a number in [0, 1)", self.dropout)
        _check(len(self.target_modules) >= 1, f"{p}.target_modules", "at least one module name",
               list(self.target_modules))


@dataclass(frozen=True)
class EvalSection:
    source: str = "bundled-eval"
    split: str = "test"
    problem: str = "problem"
    answer: str = "answer"
    limit: int = 0
    n: int = 4
    k: int = 4
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 96
    seed: int = 0
    prompt: str = "auto"
    fewshot_prompt: str = "solve_fewshot"
    bootstrap: int = 2000
    verify_timeout_s: float = 10.0
    engine: EngineConfig = field(default_factory=EngineConfig)

    def validate(self, p: str) -> None:
        _check(bool(self.source), f"{p}.source", "a non-empty source", self.source)
        _check(self.limit >= 0, f"{p}.limit", "an integer >= 0", self.limit)
        _check(self.n >= 1, f"{p}.n", "an integer >= 1", self.n)
        _check(1 <= self.k <= self.n, f"{p}.k", f"an integer in [1, n={self.n}]", self.k)
        _check(self.temperature >= 0, f"{p}.temperature", "a number >= 0", self.temperature)
        _check(0 < self.top_p <= 1, f"{p}.top_p", "a number in (0, 1]", self.top_p)
        _check(self.max_tokens >= 1, f"{p}.max_tokens", "an integer >= 1", self.max_tokens)
        _check(self.seed >= 0, f"{p}.seed", "an integer >= 0", self.seed)
        _check(self.prompt in PROMPT_MODES, f"{p}.prompt", f"one of {PROMPT_MODES}", self.prompt)
        _check(self.bootstrap >= 100, f"{p}.bootstrap", "an integer >= 100", self.bootstrap)
        _check(self.verify_timeout_s > 0, f"{p}.verify_timeout_s", "a number > 0", self.verify_timeout_s)
        # n samples at temperature 0 would be n copies of one greedy answer.
        _check(self.n == 1 or self.temperature > 0, f"{p}.temperature", "a number > 0 when n > 1",
               self.temperature)


@dataclass(frozen=True)
class FinetuneConfig:
    model: ModelSection = field(default_factory=ModelSection)
    train: TrainSection = field(default_factory=TrainSection)
    lora: LoraSection = field(default_factory=LoraSection)
    evaluate: EvalSection = field(default_factory=EvalSection)

    def replace(self, section: str, **changes: Any) -> FinetuneConfig:
        """A copy with some keys of one section changed, validated like a loaded file."""
        return replace_section(self, section, changes, FinetuneConfigError)


def load_finetune_config(path: str | Path | None = None) -> FinetuneConfig:
    """The packaged defaults, overridden by the keys of `path` (if given)."""
    return load_layered(FinetuneConfig, DEFAULT_FINETUNE_CONFIG, path, FinetuneConfigError)


def dump_finetune_config(config: FinetuneConfig) -> str:
    return tomli_w.dumps(to_dict(config))
