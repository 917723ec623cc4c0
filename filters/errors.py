"""Errors of the export: each message is one line that names the file or key at fault."""

from __future__ import annotations

from pipeline.config import ConfigError


class ExportInputError(ValueError):
    """Unusable export input: a run directory, a shard, a benchmark file or the output directory."""


class ExportConfigError(ConfigError):
    """A bad `[export]` key; a ConfigError, so the CLI reports it like any config error."""
