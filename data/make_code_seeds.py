"""Validate the hand-written code seeds: small Python function problems with unit tests.

The seeds (pipeline/data/seeds/code.jsonl) and the held-out split
(pipeline/data/eval/code_heldout.jsonl) were written by hand for this project; this script
does not generate them, it checks them. One JSON object per line, keys exactly:

- `problem`: the specification, naming the function in backticks (`name(args) -> type`).
- `solution`: a reference implementation (standard library only, no I/O, no randomness).
- `answer`: 4-8 lines of `assert name(...) == ...`, the unit tests.
- `skill`: strings, lists, arithmetic, parsing or dicts.

Checks, each failure reported and counted (exit status 1 if any):

- the keys, the skill, the length limits, and at least --min-per-skill seeds per skill;
- function names unique across both files, and the name in the problem is the function
  the solution defines and every test line calls;
- the solution imports only a few harmless standard modules and calls no I/O builtins;
- the reference passes its own tests: `solution + answer` run as a program in a fresh
  `python -I` subprocess per row with a --timeout second limit, exit status 0;
- the tests test something: with the function body replaced by `return None`, every single
  assert line fails (so no test is satisfied by a stub), and with the body replaced by
  `return <first argument>`, at least one fails;
- the tests are fast: best of three runs of all of a row's asserts under --max-test-ms.

Usage: python data/make_code_seeds.py [--seeds PATH] [--heldout PATH] [--timeout 5]
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SEEDS = ROOT / "pipeline" / "data" / "seeds" / "code.jsonl"
DEFAULT_HELDOUT = ROOT / "pipeline" / "data" / "eval" / "code_heldout.jsonl"

KEYS = {"problem", "solution", "answer", "skill"}
SKILLS = ("strings", "lists", "arithmetic", "parsing", "dicts")
MAX_PROBLEM_CHARS = 400
MAX_SOLUTION_CHARS = 600
MIN_TESTS, MAX_TESTS = 4, 8
ALLOWED_MODULES = {"math", "re", "string", "collections", "itertools", "functools", "fractions"}
FORBIDDEN_CALLS = {"print", "open", "input", "eval", "exec", "compile", "__import__", "exit", "quit",
                   "breakpoint", "globals", "locals", "vars", "getattr", "setattr", "delattr"}
NAME_RE = re.compile(r"`([A-Za-z_]\w*)\(")

# Runs in the child for the mutant and timing checks. Reads {"reference", "mutants", "tests"}
# as JSON on stdin, runs every assert line on its own, and prints a JSON report.
HARNESS = r"""
import json, sys, time
job = json.loads(sys.stdin.read())

def run(src, tests):
    ns = {"__name__": "__seed__"}
    exec(src, ns)
    results = []
    for line in tests:
        try:
            exec(line, ns)
            results.append(True)
        except Exception:
            results.append(False)
    return results

report = {"reference": run(job["reference"], job["tests"]), "best_ms": None, "mutants": {}}
for _ in range(3):
    start = time.perf_counter()
    run(job["reference"], job["tests"])
    ms = (time.perf_counter() - start) * 1000
    report["best_ms"] = ms if report["best_ms"] is None else min(report["best_ms"], ms)
for name, src in job["mutants"].items():
    report["mutants"][name] = run(src, job["tests"])
print(json.dumps(report))
"""


def load(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            rows.append({"_error": f"line {n}: not JSON ({err})"})
    return rows


def function_def(tree: ast.Module, name: str) -> ast.FunctionDef | None:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    return None


def static_problems(row: dict) -> tuple[str, list[str]]:
    """Check one row without running it; return (function name or "", problems)."""
    if "_error" in row:
        return "", [row["_error"]]
    problems = []
    if set(row) != KEYS:
        problems.append(f"keys {sorted(row)} != {sorted(KEYS)}")
        return "", problems
    if not all(isinstance(row[k], str) and row[k].strip() for k in KEYS):
        return "", ["every field must be a non-empty string"]
    if row["skill"] not in SKILLS:
        problems.append(f"skill {row['skill']!r} not in {SKILLS}")
    if len(row["problem"]) > MAX_PROBLEM_CHARS:
        problems.append(f"problem has {len(row['problem'])} chars (max {MAX_PROBLEM_CHARS})")
    if len(row["solution"]) > MAX_SOLUTION_CHARS:
        problems.append(f"solution has {len(row['solution'])} chars (max {MAX_SOLUTION_CHARS})")
    match = NAME_RE.search(row["problem"])
    if not match:
        return "", [*problems, "problem names no function as `name(...)`"]
    name = match.group(1)
    try:
        tree = ast.parse(row["solution"])
    except SyntaxError as err:
        return name, [*problems, f"solution does not parse: {err}"]
    if function_def(tree, name) is None:
        problems.append(f"solution does not define {name}() at top level")
    for node in tree.body:
        if not isinstance(node, ast.Import | ast.ImportFrom | ast.FunctionDef):
            problems.append(f"solution has top-level code other than imports and defs (line {node.lineno})")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [(node.module or "").split(".")[0]]
        else:
            modules = []
        problems += [f"solution imports {m!r}" for m in modules if m not in ALLOWED_MODULES]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
            problems.append(f"solution calls {node.func.id}()")
    tests = row["answer"].split("\n")
    if not MIN_TESTS <= len(tests) <= MAX_TESTS:
        problems.append(f"{len(tests)} test lines (want {MIN_TESTS}-{MAX_TESTS})")
    for line in tests:
        try:
            stmts = ast.parse(line).body
        except SyntaxError:
            problems.append(f"test line does not parse: {line!r}")
            continue
        if len(stmts) != 1 or not isinstance(stmts[0], ast.Assert):
            problems.append(f"test line is not a single assert: {line!r}")
            continue
        calls = [n for n in ast.walk(stmts[0]) if isinstance(n, ast.Call)
                 and isinstance(n.func, ast.Name) and n.func.id == name]
        if not calls:
            problems.append(f"test line does not call {name}(): {line!r}")
    return name, problems


def stub(solution: str, name: str, body: str) -> str | None:
    """The solution with `name`'s body replaced by `return <body>`; None when `body` is the
    first argument and the function takes none."""
    tree = ast.parse(solution)
    node = function_def(tree, name)
    args = node.args.posonlyargs + node.args.args
    if body == "first-arg":
        if not args:
            return None
        value: ast.expr = ast.Name(id=args[0].arg, ctx=ast.Load())
    else:
        value = ast.Constant(value=None)
    node.body = [ast.Return(value=value)]
    return ast.unparse(ast.fix_missing_locations(tree))


def run_child(args: list[str], stdin: str, timeout: float) -> tuple[int | None, str, str]:
    try:
        proc = subprocess.run([sys.executable, "-I", *args], input=stdin, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "", f"timed out after {timeout} s"
    return proc.returncode, proc.stdout, proc.stderr


def dynamic_problems(row: dict, name: str, timeout: float, max_ms: float) -> tuple[list[str], float]:
    """Run the reference and the two stubs; return (problems, best test time in ms)."""
    problems = []
    program = row["solution"] + "\n\n\n" + row["answer"] + "\n"
    rc, _, err = run_child(["-"], program, timeout)
    if rc != 0:
        last = err.strip().splitlines()[-1:] or ["no output"]
        problems.append(f"reference fails its tests (rc {rc}): {last[0]}")
    tests = row["answer"].split("\n")
    mutants = {kind: src for kind in ("none", "first-arg") if (src := stub(row["solution"], name, kind))}
    job = json.dumps({"reference": row["solution"], "mutants": mutants, "tests": tests})
    rc, out, err = run_child(["-c", HARNESS], job, timeout)
    if rc != 0:
        last = err.strip().splitlines()[-1:] or ["no output"]
        return [*problems, f"harness failed (rc {rc}): {last[0]}"], float("nan")
    report = json.loads(out)
    if not all(report["reference"]):
        problems.append("reference fails a test line when run line by line")
    passed_by_none = [t for t, ok in zip(tests, report["mutants"]["none"], strict=True) if ok]
    problems += [f"`return None` stub passes: {t}" for t in passed_by_none]
    if "first-arg" in report["mutants"] and all(report["mutants"]["first-arg"]):
        problems.append("`return <first argument>` stub passes every test")
    if report["best_ms"] > max_ms:
        problems.append(f"tests take {report['best_ms']:.2f} ms (max {max_ms} ms)")
    return problems, report["best_ms"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=Path, default=DEFAULT_SEEDS, help="seed split (.jsonl)")
    parser.add_argument("--heldout", type=Path, default=DEFAULT_HELDOUT, help="held-out split (.jsonl)")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="seconds allowed for each row's subprocess (default 5)")
    parser.add_argument("--max-test-ms", type=float, default=10.0,
                        help="most milliseconds a row's asserts may take, best of three (default 10)")
    parser.add_argument("--min-per-skill", type=int, default=20,
                        help="fewest seeds each skill must have (default 20)")
    parser.add_argument("--static-only", action="store_true",
                        help="skip the subprocess checks (reference, stubs, timing)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    failures: list[str] = []
    names: dict[str, str] = {}
    slowest = (0.0, "")
    for split, path in (("seeds", args.seeds), ("heldout", args.heldout)):
        rows = load(path)
        counts: Counter[str] = Counter()
        failed: Counter[str] = Counter()
        for n, row in enumerate(rows, 1):
            where = f"{path.name}:{n}"
            name, problems = static_problems(row)
            if name:
                where += f" {name}"
                if name in names:
                    problems.append(f"function name also used at {names[name]}")
                names.setdefault(name, where)
            if not problems and not args.static_only:
                problems, ms = dynamic_problems(row, name, args.timeout, args.max_test_ms)
                slowest = max(slowest, (ms, where))
            skill = row.get("skill", "?")
            counts[skill] += 1
            if problems:
                failed[skill] += 1
                failures += [f"{where}: {p}" for p in problems]
        print(f"{split} ({path}): {len(rows)} rows")
        print(f"  {'skill':<12}{'rows':>6}{'pass':>6}{'fail':>6}")
        for skill in sorted(counts, key=lambda s: (SKILLS.index(s) if s in SKILLS else len(SKILLS), s)):
            print(f"  {skill:<12}{counts[skill]:>6}{counts[skill] - failed[skill]:>6}{failed[skill]:>6}")
        print(f"  {'total':<12}{len(rows):>6}{len(rows) - sum(failed.values()):>6}{sum(failed.values()):>6}")
        if split == "seeds":
            failures += [f"seeds: skill {s!r} has {counts[s]} rows (want at least {args.min_per_skill})"
                         for s in SKILLS if counts[s] < args.min_per_skill]
    print(f"function names: {len(names)} distinct")
    if not args.static_only:
        print(f"checks: reference passes in `python -I` ({args.timeout:g} s limit); `return None` stub "
              "fails every assert; `return <first arg>` stub fails at least one")
        print(f"slowest tests: {slowest[0]:.3f} ms ({slowest[1]}), limit {args.max_test_ms:g} ms")
    for line in failures:
        print(f"FAIL {line}")
    print(f"{'OK' if not failures else f'{len(failures)} problem(s)'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
