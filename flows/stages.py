"""`sparq pipeline`: generate -> export -> finetune -> evaluate base and fine-tuned -> comparison.

A thin sequence of the library calls (no Prefect here; flows/tuning.py is the Prefect flow
of the export -> compare part). One TOML file names the directories and the per-stage configs:

    [pipeline]
    run_dir = "runs/p1"              # generation run (resumed if it has steps)
    dataset_dir = "runs/p1-data"     # export output (must not exist or be empty)
    model_dir = "runs/p1-model"      # fine-tuned model (must not exist or be empty)
    compare_dir = "runs/p1-compare"  # comparison.json / .png / .md
    generate_config = ""             # pipeline config file for `generate` ("" = packaged default)
    export_config = ""               # [export] overrides ("" = defaults)
    finetune_config = ""             # finetune.toml overrides ("" = defaults)
    steps = 0                        # generation steps; 0 = the generate config's run.steps
    evaluate_base = true

(Named `stages`, not `pipeline`: Prefect loads a deployment's flow file as a script with
flows/ on sys.path, where a flows/pipeline.py would shadow the `pipeline` package.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune.config import FinetuneConfig, load_finetune_config
from finetune.errors import FinetuneConfigError, FinetuneInputError
from pipeline.config import build, read_toml

Log = Callable[[str], None]


@dataclass(frozen=True)
class PipelineSection:
    run_dir: str = ""
    dataset_dir: str = ""
    model_dir: str = ""
    compare_dir: str = ""
    generate_config: str = ""
    export_config: str = ""
    finetune_config: str = ""
    steps: int = 0
    evaluate_base: bool = True

    def validate(self, p: str) -> None:
        for name in ("run_dir", "dataset_dir", "model_dir", "compare_dir"):
            if not getattr(self, name):
                raise FinetuneConfigError(f"config key '{p}.{name}': expected a directory, got ''")
        if self.steps < 0:
            raise FinetuneConfigError(f"config key '{p}.steps': expected an integer >= 0, got {self.steps}")


@dataclass(frozen=True)
class PipelineFile:
    pipeline: PipelineSection = PipelineSection(run_dir="-", dataset_dir="-", model_dir="-", compare_dir="-")


def load_pipeline_config(path: str | Path) -> PipelineSection:
    data = read_toml(path, FinetuneConfigError)
    if "pipeline" not in data:
        raise FinetuneConfigError(f"config file {path}: no [pipeline] table")
    return build(PipelineFile, data, "", str(path), FinetuneConfigError).pipeline


def evaluate_pair(base: str, model_dir: str, cfg: FinetuneConfig, *, evaluate_base: bool = True,
                  log: Log = lambda m: None) -> dict[str, dict[str, Any]]:
    """Evaluate the base (if asked) and the fine-tuned model on the same problems and samples."""
    from finetune.evaluate import evaluate

    results = {}
    if evaluate_base:
        results["base"] = evaluate(base, config=cfg.evaluate, log=log)
    results["finetuned"] = evaluate(model_dir, config=cfg.evaluate, log=log)
    return results


def run_pipeline(p: PipelineSection, *, log: Log = lambda m: None) -> dict[str, Any]:
    from filters.config import load_export_config
    from filters.export import export_runs
    from finetune.compare import write_comparison
    from finetune.train import check_out_dir, finetune
    from pipeline.config import load_config
    from pipeline.loop.generate import run_generation

    # Load every config and check the outputs first: a typo fails before hours of generation.
    gen_cfg = load_config(p.generate_config or None)
    exp_cfg = load_export_config(p.export_config or None)
    ft_cfg = load_finetune_config(p.finetune_config or None)
    check_out_dir(Path(p.model_dir))
    resume = (Path(p.run_dir) / "checkpoint.json").is_file()
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = round(now - clock, 1)
        clock = now
        log(f"{stage}: {seconds[stage]:.0f} s")

    log(f"generate -> {p.run_dir}" + (" (resuming)" if resume else ""))
    run_generation(gen_cfg, p.run_dir, resume=resume, steps=p.steps or None, progress=log, show_bar=False)
    lap("generate")
    log(f"export -> {p.dataset_dir}")
    exported = export_runs([p.run_dir], p.dataset_dir, config=exp_cfg, log=log)
    lap("export")
    if exported.data_rows == 0:
        raise FinetuneInputError(f"export {p.dataset_dir}: no rows passed the filters (funnel in its README.md); "
                                 "generate more steps (pipeline.steps) or relax the export config")
    log(f"finetune -> {p.model_dir} ({exported.data_rows} rows)")
    trained = finetune(p.dataset_dir, p.model_dir, config=ft_cfg, log=log)
    lap("finetune")
    results = evaluate_pair(ft_cfg.model.base, p.model_dir, ft_cfg, evaluate_base=p.evaluate_base, log=log)
    lap("evaluate")
    paths = write_comparison(results, p.compare_dir)
    seconds["total"] = round(sum(seconds.values()), 1)
    return {"run_dir": p.run_dir, "dataset_rows": exported.data_rows, "model_dir": trained.model_dir,
            "train_steps": trained.steps, "train_seconds": trained.seconds, "results": results, "files": paths,
            "seconds": seconds}
