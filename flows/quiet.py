"""Keep the engine's and the libraries' own output of a CLI run in the run's log file.

On a CPU box a default `make run` printed 17 lines of vLLM's and torch's own warnings
(Triton missing, NUMA binding, FutureWarning, weight-loading bars) among its 60. They
matter when something goes wrong, not on every run, so `sparq generate` writes them to
RUN/logs/engine.log and keeps the terminal for the campaign's own progress, summary and
one-line errors (`--verbose` shows them as before).

How: vLLM's loggers get a file handler through VLLM_LOGGING_CONFIG_PATH (its engine-core
process inherits the variable); file descriptor 2, which child processes and C libraries
write to, points at the log file, while Python's `sys.stderr` keeps the terminal; Python
warnings are written to the log, and so is the "vllm" logger of this process (some vLLM
modules log before vLLM reads its config); Hugging Face progress bars are off.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOG = Path("logs") / "engine.log"
_ENV = ("VLLM_LOGGING_CONFIG_PATH", "HF_HUB_DISABLE_PROGRESS_BARS")


def _vllm_logging_config(log: Path) -> dict:
    level = os.environ.get("VLLM_LOGGING_LEVEL", "WARNING")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(levelname)s %(asctime)s %(process)d %(filename)s:%(lineno)d] %(message)s",
                                 "datefmt": "%m-%d %H:%M:%S"}},
        "handlers": {"file": {"class": "logging.FileHandler", "filename": str(log), "mode": "a",
                              "formatter": "plain", "level": level}},
        "loggers": {"vllm": {"handlers": ["file"], "level": level, "propagate": False}},
    }


@contextmanager
def library_output_to(log: Path | None) -> Iterator[None]:
    """Within the block, engine and library output goes to `log` (None: nowhere else; the
    terminal as usual)."""
    if log is None:
        yield
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    config = log.parent / "vllm-logging.json"
    config.write_text(json.dumps(_vllm_logging_config(log)), encoding="utf-8")
    env_before = {k: os.environ.get(k) for k in _ENV}
    os.environ["VLLM_LOGGING_CONFIG_PATH"] = str(config)
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    fh = open(log, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 (held for the block)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(2)
    # The terminal stays Python's stderr: progress bars, Prefect's log lines and errors.
    # Not closed afterwards: handlers made during the block may still hold it.
    terminal = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace")
    old_stderr, old_showwarning = sys.stderr, warnings.showwarning
    os.dup2(fh.fileno(), 2)
    sys.stderr = terminal

    def to_log(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        fh.write(warnings.formatwarning(message, category, filename, lineno, line))

    warnings.showwarning = to_log
    # vLLM modules that log before vLLM applies its config (its Triton probe at import)
    # would reach the root logger, which Prefect prints: they go to the file too.
    vllm_logger = logging.getLogger("vllm")
    handler = logging.FileHandler(log, encoding="utf-8")
    handler.setFormatter(logging.Formatter(_vllm_logging_config(log)["formatters"]["plain"]["format"]))
    propagate_before = vllm_logger.propagate
    vllm_logger.addHandler(handler)
    vllm_logger.propagate = False
    try:
        yield
    finally:
        vllm_logger.removeHandler(handler)
        handler.close()
        vllm_logger.propagate = propagate_before
        terminal.flush()
        os.dup2(saved, 2)
        os.close(saved)
        sys.stderr, warnings.showwarning = old_stderr, old_showwarning
        fh.close()
        for key, value in env_before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
