"""Errors of the fine-tuning stage: one-line messages that name the input at fault."""

from __future__ import annotations

from pipeline.config import ConfigError


class FinetuneInputError(ValueError):
    """Unusable input (dataset, model path, eval source, output directory), found before any training."""


class FinetuneConfigError(ConfigError):
    """A bad `finetune.toml` key; a ConfigError, so the CLI reports it like any config error."""
