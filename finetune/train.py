"""`finetune`: SFT of a base model on an exported dataset with TRL's SFTTrainer.

LoRA through PEFT by default (merged into the base on save), full fine-tuning as an option.
MODEL_DIR gets a plain transformers model (safetensors + tokenizer with the chat template),
so `EngineConfig(kind="transformers", model=MODEL_DIR)` and vLLM load it directly, plus:

    MODEL_DIR/train_log.jsonl        the trainer's log_history, one JSON object per line
    MODEL_DIR/finetune_config.toml   the resolved config (with the dataset and base model)
    MODEL_DIR/finetune_summary.json  rows, steps, seconds, mean step time, final loss

All input checks (dataset, base model, output directory, config) run before the model loads.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetune.config import FinetuneConfig, dump_finetune_config, load_finetune_config
from finetune.data import load_sft_dataset
from finetune.errors import FinetuneInputError
from finetune.template import PROBLEM_SOLUTION_TEMPLATE

Log = Callable[[str], None]


@dataclass
class FinetuneResult:
    model_dir: str
    rows: int
    steps: int
    seconds: float
    step_seconds: float  # mean wall time of an optimizer step (first step excluded when there are more)
    final_loss: float | None
    log_history: list[dict[str, Any]] = field(default_factory=list)


def resolve_base_model(base: str) -> str:
    """'embedded' -> the prepared cache dir; otherwise a local HF model directory, checked."""
    from pipeline.models import EMBEDDED, prepare_embedded_model

    if base == EMBEDDED:
        return str(prepare_embedded_model())
    path = Path(base).expanduser()
    if not path.is_dir():
        raise FinetuneInputError(f"base model {base}: no such directory")
    if not (path / "config.json").is_file():
        raise FinetuneInputError(f"base model {base}: not a Hugging Face model directory (no config.json)")
    return str(path)


def check_out_dir(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FinetuneInputError(f"output directory {out}: exists and is not empty")


def load_model_and_tokenizer(path: str, cfg: FinetuneConfig) -> tuple[Any, Any]:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    if cfg.model.chat_template == "problem-solution":
        tok.chat_template = PROBLEM_SOLUTION_TEMPLATE
    elif not tok.chat_template:
        raise FinetuneInputError(f"base model {cfg.model.base}: model.chat_template = 'model' but the tokenizer "
                                 "has no chat template; use 'problem-solution'")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    config = AutoConfig.from_pretrained(path)
    # The converted embedded model keeps the GGUF quantization_config in config.json; with it
    # transformers loads packed GGUF weights, which cannot be trained or saved. The safetensors
    # hold plain bf16 weights, so dropping it loads ordinary Linear layers.
    if getattr(config, "quantization_config", None) is not None and \
            _quant_method(config.quantization_config) == "gguf":
        del config.quantization_config
    # Train in float32 on CPU (bf16 matmuls are slow there and LoRA updates are small).
    dtype = torch.bfloat16 if cfg.train.bf16 else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, config=config, dtype=dtype)
    return model, tok


def _quant_method(qc: Any) -> str:
    method = qc.get("quant_method") if isinstance(qc, dict) else getattr(qc, "quant_method", "")
    return str(getattr(method, "value", method))


def _progress_callback(log: Log, step_times: list[float]) -> Any:
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        """One line per logged step (the tqdm bar is hard to read in captured logs) and step timings."""

        def on_step_begin(self, args, state, control, **kwargs):
            self._t = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            step_times.append(time.perf_counter() - self._t)

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in logs.items())
            log(f"step {state.global_step}/{state.max_steps}: {shown}")

    return Progress()


def _sft_config(cfg: FinetuneConfig, output_dir: Path) -> Any:
    from trl import SFTConfig

    t = cfg.train
    return SFTConfig(
        output_dir=str(output_dir),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps if t.max_steps > 0 else -1,
        learning_rate=t.learning_rate,
        per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        max_length=t.max_length,
        # transformers 5 folded warmup_ratio into warmup_steps: a float < 1 is a fraction of the steps.
        warmup_steps=t.warmup_ratio,
        weight_decay=t.weight_decay,
        logging_steps=t.logging_steps,
        assistant_only_loss=t.assistant_only_loss,
        seed=t.seed,
        data_seed=t.seed,
        use_cpu=t.device == "cpu",
        bf16=t.bf16,
        gradient_checkpointing=t.gradient_checkpointing,
        save_strategy="no",  # the merged model is saved once at the end
        report_to=[],
        disable_tqdm=False,
    )


def _peft_config(cfg: FinetuneConfig) -> Any:
    if cfg.train.method != "lora":
        return None
    from peft import LoraConfig

    lc = cfg.lora
    return LoraConfig(r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout, target_modules=list(lc.target_modules),
                      task_type="CAUSAL_LM")


def finetune(dataset_dir: str | Path, out: str | Path, *, config: FinetuneConfig | None = None,
             log: Log = lambda msg: None) -> FinetuneResult:
    """Fine-tune `config.model.base` on the `messages` of `dataset_dir`; write MODEL_DIR `out`."""
    cfg = config or load_finetune_config()
    out = Path(out)
    check_out_dir(out)
    dataset = load_sft_dataset(dataset_dir)
    base_path = resolve_base_model(cfg.model.base)
    import torch
    from trl import SFTTrainer

    if cfg.train.device == "cuda" and not torch.cuda.is_available():
        raise FinetuneInputError("train.device = 'cuda' but no CUDA device is available")

    t0 = time.perf_counter()
    log(f"loading base model {cfg.model.base} ({base_path})")
    model, tok = load_model_and_tokenizer(base_path, cfg)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    step_times: list[float] = []
    trainer = SFTTrainer(model=model, args=_sft_config(cfg, tmp / "trainer"), train_dataset=dataset,
                         processing_class=tok, peft_config=_peft_config(cfg),
                         callbacks=[_progress_callback(log, step_times)])
    length = f"max_steps {cfg.train.max_steps}" if cfg.train.max_steps else f"{cfg.train.epochs:g} epochs"
    log(f"training on {len(dataset)} rows ({cfg.train.method}, {length})")
    result = trainer.train()
    history = list(trainer.state.log_history)

    merged = trainer.model
    if cfg.train.method == "lora":
        merged = merged.merge_and_unload()  # a plain model: engines load MODEL_DIR without PEFT
    merged = merged.to(getattr(torch, cfg.model.save_dtype))
    merged.config.use_cache = True
    shutil.rmtree(tmp / "trainer", ignore_errors=True)
    merged.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    with (tmp / "train_log.jsonl").open("w", encoding="utf-8") as fh:
        for entry in history:
            fh.write(json.dumps(entry) + "\n")
    (tmp / "finetune_config.toml").write_text(
        f"# dataset = {str(Path(dataset_dir).resolve())!r}\n# base model path = {base_path!r}\n"
        + dump_finetune_config(cfg), encoding="utf-8")
    losses = [e["loss"] for e in history if "loss" in e]
    timed = step_times[1:] if len(step_times) > 1 else step_times  # the first step pays warm-up
    res = FinetuneResult(model_dir=str(out), rows=len(dataset), steps=trainer.state.global_step,
                         seconds=time.perf_counter() - t0,
                         step_seconds=statistics.mean(timed) if timed else 0.0,
                         final_loss=losses[-1] if losses else getattr(result, "training_loss", None),
                         log_history=history)
    summary = {k: v for k, v in res.__dict__.items() if k != "log_history"}
    (tmp / "finetune_summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        out.rmdir()  # empty (checked above); os.replace needs it gone or empty
    os.replace(tmp, out)
    log(f"model written to {out} ({res.steps} steps, {res.seconds:.0f} s, {res.step_seconds:.2f} s/step)")
    return res
