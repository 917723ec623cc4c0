"""Run the whole test suite from fresh clones, one run after another, and record what failed.

    .venv/bin/python bench/suite_runs.py --runs 5            # .ci/run (CI=1: the long variants too)
    .venv/bin/python bench/suite_runs.py --runs 5 --make     # `make test`, the README's command

Each run clones the committed HEAD (of when it starts) into a new directory and runs the command there, so an
uncommitted file or a build output of this checkout cannot make it pass. The first run
installs the venv as a new user's would; later runs reuse that venv (moved into the next
clone at the same path, so its absolute paths stay valid) and pip only checks it. Every
run appends {index, commit, command, exit_code, seconds, passed, failed_tests} to
bench/suite-runs.json, as soon as it ends, and keeps its log under the work directory;
bench/guarantees.py shows the record in the Guarantees table (docs/guarantees.md). A failed run's cause,
once found (e.g. the kernel log's OOM kill), goes into its entry as "cause" by hand.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RECORD = REPO / "bench" / "suite-runs.json"
FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.M)
PASSED = re.compile(r"(\d+) passed")


def head(repo: Path) -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                          check=True).stdout.strip()


def record(entry: dict) -> None:
    data = json.loads(RECORD.read_text()) if RECORD.exists() else {"runs": []}
    data["runs"].append(entry)
    tmp = RECORD.with_name(RECORD.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(RECORD)


def one_run(index: int, work: Path, command: list[str], venv_store: Path) -> dict:
    clone = work / "clone"
    if clone.exists():
        if (clone / ".venv").exists():
            shutil.rmtree(venv_store, ignore_errors=True)
            (clone / ".venv").rename(venv_store)
        shutil.rmtree(clone)
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    if venv_store.exists():
        venv_store.rename(clone / ".venv")
    log = work / f"run-{index}.log"
    started = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.run(command, cwd=clone, stdout=fh, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    text = log.read_text(errors="replace")
    passed = PASSED.findall(text)
    return {"index": index, "commit": head(clone), "command": " ".join(command), "exit_code": proc.returncode,
            "seconds": round(seconds, 1), "passed": int(passed[-1]) if passed else 0,
            "failed_tests": sorted(set(FAILED.findall(text))), "log": str(log),
            "finished_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="how many runs, one after another (default 5)")
    ap.add_argument("--make", action="store_true", help="run `make test` instead of .ci/run")
    ap.add_argument("--work", type=Path, default=Path("/tmp/sparq-suite-runs"),
                    help="where the clones and logs go (default /tmp/sparq-suite-runs)")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error(f"--runs: expected at least 1, got {args.runs}")
    args.work.mkdir(parents=True, exist_ok=True)
    command = ["make", "test"] if args.make else [".ci/run"]
    failures = 0
    done = len(json.loads(RECORD.read_text())["runs"]) if RECORD.exists() else 0
    for i in range(1, args.runs + 1):
        entry = one_run(done + i, args.work, command, args.work / "venv")
        record(entry)
        failures += entry["exit_code"] != 0
        print(f"run {i}/{args.runs}: exit {entry['exit_code']}, {entry['passed']} passed, "
              f"{entry['seconds'] / 60:.1f} min" + (f", failed: {', '.join(entry['failed_tests'])}"
                                                     if entry["failed_tests"] else ""), flush=True)
    print(f"{args.runs} runs, {failures} failed; recorded in {RECORD}")
    return int(failures > 0)


if __name__ == "__main__":
    sys.exit(main())
