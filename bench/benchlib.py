"""Shared helpers of the bench scripts: machine description, results file, configs.

Every bench script prints its figures and appends them to bench/results.md with the
command that produced them, the date and the machine, so a figure can always be traced
back to how and where it was measured.
"""

from __future__ import annotations

import os
import platform
import shlex
import statistics
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results.md"

# No bench ever reaches a model hub; set before transformers / sentence-transformers load.
for _key, _value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("HF_DATASETS_OFFLINE", "1"),
                     ("DO_NOT_TRACK", "1"), ("PREFECT_SERVER_ANALYTICS_ENABLED", "false"),
                     ("TOKENIZERS_PARALLELISM", "false")):
    os.environ.setdefault(_key, _value)


def machine() -> str:
    """nproc, RAM, CPU model and torch version: what the figures depend on."""
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        ram_s = f"{ram:.0f} GiB RAM"
    except (ValueError, OSError):
        ram_s = "RAM unknown"
    try:
        import torch

        torch_s = f"torch {torch.__version__}"
    except ImportError:
        torch_s = "no torch"
    # nproc honours the affinity mask (what this process may use), unlike cpu_count.
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"nproc {nproc}, {ram_s}, CPU {cpu}, {torch_s}, Python {platform.python_version()}"


def command() -> str:
    """The command line that ran this script, as it can be typed again from the repo root."""
    script = Path(sys.argv[0]).resolve()
    try:
        script_s = str(script.relative_to(REPO))
    except ValueError:
        script_s = str(script)
    return shlex.join([".venv/bin/python", script_s, *sys.argv[1:]])


def append_results(title: str, lines: Sequence[str], results: Path = RESULTS) -> None:
    """Append one entry (date, machine, command, figure lines) to bench/results.md."""
    new = not results.exists()
    with results.open("a", encoding="utf-8") as fh:
        if new:
            fh.write("# Benchmark results\n\nOne entry per run, appended by the bench scripts.\n\n")
        # The machine is shared: the load average says how much of it the figures had.
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        fh.write(f"- {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {title}, {machine()}, load average {load} at the end: "
                 f"`{command()}`\n")
        for line in lines:
            fh.write(f"  - {line}\n")
    print(f"appended to {results}")


def set_threads(n: int) -> str:
    """Intra-op threads of torch and faiss (0: leave their defaults); returns a label.

    On a shared 2-core machine, two intra-op threads wait for each other at every
    parallel region while the other core runs someone else's work: measured here,
    sampling 496 tokens took 1.3-2.6x longer with 2 threads than with 1, and a
    campaign step's mutate call took 13 minutes instead of about one. Figures record
    the setting.
    """
    if n > 0:
        import faiss
        import torch

        torch.set_num_threads(n)
        faiss.omp_set_num_threads(n)
    import torch

    return f"torch threads {torch.get_num_threads()}"


def add_threads_arg(ap) -> None:
    ap.add_argument("--threads", type=int, default=0,
                    help="torch/faiss intra-op threads (0: their defaults; `make bench` passes BENCH_THREADS)")


def add_campaign_args(ap) -> None:
    """The options of the scripts that run a real campaign (overhead.py, utilisation.py)."""
    ap.add_argument("--no-flow", action="store_true")
    ap.add_argument("--seeds", type=int, default=64, help="bundled seeds loaded (and archive cells)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-results", action="store_true", help="do not append to bench/results.md")
    add_threads_arg(ap)


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def write_config(path: Path, overrides: dict[str, dict[str, Any]]) -> Path:
    """A config TOML with `overrides` over the packaged default (what the flow reads)."""
    import tomli_w

    path.write_text(tomli_w.dumps(overrides), encoding="utf-8")
    return path


def fmt_list(xs: Sequence[float], digits: int = 3) -> str:
    return "[" + ", ".join(f"{x:.{digits}f}" for x in xs) + "]"
