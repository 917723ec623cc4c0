"""Which config a campaign runs with: a new run's, the run's own saved one on resume, or a
new one that keeps what the committed rows depend on (rounds change the solver)."""

from __future__ import annotations

from dataclasses import replace

from pipeline.config import Config, dump_config, load_config
from pipeline.store.storage import Checkpoint, RunDir, RunError, atomic_write_bytes

# What the committed rows and the archive depend on: a resumed campaign keeps these.
FIXED_SECTIONS = ("domain", "seeds", "archive", "quality")


def effective_config(run: RunDir, config: Config | None, resume: bool) -> Config | None:
    """The config a campaign in `run` runs with: the saved one once it has committed steps
    (or when resuming a directory that has one), else `config`."""
    if run.read_checkpoint() is not None or (resume and run.config_path.is_file()):
        return load_config(run.config_path)
    return config


def resolve_config(run: RunDir, ckpt: Checkpoint | None, config: Config | None, *, resume: bool,
                   steps: int | None, config_override: bool) -> Config:
    """The config `Campaign.open` runs with (see there); RunError names what is wrong."""
    if ckpt is not None and not resume:
        raise RunError(f"run directory {run.path} already has {ckpt.step} committed step(s); "
                       "pass --resume to continue it or choose another directory")
    if config_override and config is not None and ckpt is not None:
        saved = load_config(run.config_path)
        for key in FIXED_SECTIONS:
            if getattr(saved, key) != getattr(config, key):
                raise RunError(f"run directory {run.path}: config section [{key}] differs from the "
                               "run's own; a campaign keeps it for its whole life")
        atomic_write_bytes(run.config_path, dump_config(config).encode("utf-8"))
    else:
        config = effective_config(run, config, resume)
    if config is None:
        raise RunError(f"run directory {run.path} has no config.toml; give a config")
    if steps is not None:
        config = replace(config, run=replace(config.run, steps=steps))
    return config
