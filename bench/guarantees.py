"""Run the guarantee tests and rewrite the Guarantees page (docs/guarantees.md) from their figures.

    .venv/bin/python bench/guarantees.py            # short variants (what `pytest -m "not slow"` runs)
    .venv/bin/python bench/guarantees.py --full     # also the @pytest.mark.ci variants (20 random kills, ...)
    .venv/bin/python bench/guarantees.py --render   # only re-render docs/guarantees.md from bench/guarantees.json
    .venv/bin/python bench/guarantees.py --junit X  # merge pass/fail from a pytest --junitxml file X (a rerun
                                                    # made with SPARQ_GUARANTEES_JSON=bench/guarantees.json)

The tests write their figures (trials run, faults injected, inputs tried, rows found,
expected and lost: counts of what each test observed, tests/helpers/figures.py) to
bench/guarantees.json (SPARQ_GUARANTEES_JSON); pass/fail and seconds per test come from
pytest's JUnit XML. Only figures recorded since the last regeneration started are shown; a
row whose tests did not run then says "not run in the last regeneration" (with the date of
the figure it last had), never an old number as if it were new.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIGURES = REPO / "bench" / "guarantees.json"
RESULTS = REPO / "bench" / "guarantees-results.json"
DOC = REPO / "docs" / "guarantees.md"
# The part of docs/guarantees.md between these markers is generated; the rest is left alone.
START, END = "<!-- guarantees:start -->", "<!-- guarantees:end -->"
TESTS = ["tests/guarantees/test_crash.py", "tests/guarantees/test_faults.py", "tests/guarantees/test_failures.py",
         "tests/guarantees/test_lifeline.py", "tests/guarantees/test_fuzz.py", "tests/guarantees/test_security.py",
         "tests/guarantees/test_sandbox.py",
         "tests/unit/pipeline/store/test_storage.py::test_second_writer_is_refused_with_pid",
         "tests/unit/pipeline/domains/test_answers.py::test_adversarial_input_times_out_and_pool_recovers"]

ENGINE_MODES = ["http500", "malformed", "empty", "slow", "hang", "trickle", "close", "refused"]


def parse_junit(xml: Path) -> dict[str, dict]:
    results = {}
    for case in ET.parse(xml).iter("testcase"):
        name = f"{case.get('classname', '').split('.')[-1]}::{case.get('name')}"
        status = "passed"
        for tag in ("failure", "error", "skipped"):
            if case.find(tag) is not None:
                status = {"failure": "FAILED", "error": "ERROR", "skipped": "skipped"}[tag]
        results[name] = {"status": status, "seconds": round(float(case.get("time", 0)), 1)}
    return results


STAMP = "%Y-%m-%dT%H:%M:%SZ"  # as tests/helpers/figures.py writes recorded_at
NOT_RUN = "not run in the last regeneration"


def save_results(results: dict[str, dict], full: bool, wall: float, exit_code: int, started_at: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    RESULTS.write_text(json.dumps({"run_at": stamp, "started_at": started_at, "full": full,
                                   "wall_seconds": round(wall, 1), "exit_code": exit_code, "tests": results},
                                  indent=2) + "\n")


def run_tests(full: bool) -> None:
    env = dict(os.environ, SPARQ_GUARANTEES_JSON=str(FIGURES))
    if full:
        env["CI"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        started_at = time.strftime(STAMP, time.gmtime())
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow",
                               f"--junitxml={xml}", *TESTS], cwd=REPO, env=env)
        save_results(parse_junit(xml), full, time.perf_counter() - started, proc.returncode, started_at)


def regeneration_start(meta: dict) -> str:
    """When the last regeneration started (STAMP format); "" for results written before
    started_at was kept (then only the test results below tell what ran)."""
    return meta.get("started_at", "")


def split_fresh(figures: dict, since: str) -> tuple[dict, dict]:
    """(figures recorded since `since`, the older ones): only the first are this run's counts."""
    fresh = {k: v for k, v in figures.items() if v.get("recorded_at", "") >= since}
    return fresh, {k: v for k, v in figures.items() if k not in fresh}


def _result(results: dict, *names: str) -> str:
    """passed/FAILED and seconds over tests whose name starts with one of `names`."""
    hits = [r for n, r in results.items() if n.startswith(names)]
    if not hits:
        return "not run"
    ran = [h for h in hits if h["status"] != "skipped"]
    if not ran:
        return "skipped (long variant)"
    bad = [h for h in ran if h["status"] != "passed"]
    secs = sum(h["seconds"] for h in ran)
    return f"{'FAILED' if bad else 'passed'} ({len(ran)} case{'s' * (len(ran) > 1)}, {secs:.0f} s)"


def _lost(ds: list[dict]) -> str:
    """Rows lost of rows expected, summed over figures, as counted by the tests."""
    counted = [d for d in ds if "rows_expected" in d]
    if not counted:
        return "rows lost: not counted"
    return (f"rows lost {sum(d['rows_lost'] for d in counted)} of {sum(d['rows_expected'] for d in counted)} "
            "expected")


def _not_run(figures: dict, keys: list[str]) -> str:
    dates = sorted(d["recorded_at"][:10] for k, d in figures.items()
                   if k.startswith(tuple(keys)) and "recorded_at" in d)
    return NOT_RUN + (f" (last figure {dates[-1]})" if dates else "")


def _ran_result(result: str) -> bool:
    """Whether a `_result` text says the tests ran (passed or failed), not skipped or absent."""
    return result.startswith(("passed", "FAILED"))


def _ran(results: dict, *names: str) -> bool:
    return _ran_result(_result(results, *names))


SUITE_RUNS = REPO / "bench" / "suite-runs.json"


def suite_runs() -> dict[str, str]:
    """The row of bench/suite_runs.py's record: runs, failures and why, per commit."""
    if not SUITE_RUNS.exists():
        return {"result": "not run", "figure": "no fresh-clone runs recorded (bench/suite_runs.py)"}
    runs = json.loads(SUITE_RUNS.read_text())["runs"]
    failed = [r for r in runs if r["exit_code"] != 0]
    commits = sorted({r["commit"][:7] for r in runs})
    why = "; ".join(f"run {r['index']} ({r['commit'][:7]}): "
                    f"{', '.join(r['failed_tests']) or 'exit ' + str(r['exit_code'])}"
                    + (f" ({r['cause']})" if r.get("cause") else "") for r in failed)
    mins = [r["seconds"] / 60 for r in runs]
    figure = (f"{len(runs)} runs on {', '.join(commits)} ({min(mins):.0f}-{max(mins):.0f} min each), "
              f"{len(failed)} failed" + (f": {why}" if why else ""))
    # A failure whose cause outside the suite was found and recorded (the OOM killer under
    # other work on the machine) is shown with its cause; any other failure fails the row.
    unexplained = [r for r in failed if not r.get("cause")]
    passed = len(runs) - len(failed)
    result = "FAILED" if unexplained else (
        f"passed ({passed} of {len(runs)} runs" + (f"; {len(failed)} failed from a recorded outside cause)"
                                                   if failed else ")"))
    return {"result": result, "figure": figure}


def render(figures: dict, results: dict, meta: dict) -> str:
    fresh, _ = split_fresh(figures, regeneration_start(meta))

    def f(key: str) -> dict:
        return fresh.get(key, {})

    def crash(key: str, test: str) -> str:
        d = f(key)
        if not d or not _ran(results, test):
            return _not_run(figures, [key])
        return (f"{d['trials']} trials, {d['faults_injected']} SIGKILLs, {d['candidate_rows']} rows checked, "
                f"{d['temp_files_seen_after_kills']} temp files and {d['uncommitted_shards_seen_after_kills']} "
                f"uncommitted shards found after kills (all ignored, none left), {_lost([d])}, "
                f"duplicated {d.get('rows_duplicated', '?')}")

    eng = [f(f"engine.{m}") for m in ENGINE_MODES]
    eng_faults = sum(d.get("faults_injected", 0) for d in eng)
    step = [f(f"engine_step.{m}") for m in ENGINE_MODES]
    timeouts = {m: f(f"engine.{m}").get("seconds") for m in ("slow", "hang", "trickle")}
    fuzz = f("fuzz").get("inputs_tried", {})
    fz = lambda *ks: sum(fuzz.get(k, 0) for k in ks)  # noqa: E731
    ro, full0, full48, second = f("storage.read_only"), f("storage.disk_full_0"), f("storage.disk_full_49152"), \
        f("storage.second_writer")
    scan, pay, fmt, key = (f("security.static_scan"), f("security.payloads"), f("security.storage_formats"),
                           f("security.api_key"))
    box = f("sandbox.escapes")

    def failures(mode: str) -> str:
        d = f(f"failures.{mode}")
        if not d:
            return f"{mode}: " + _not_run(figures, [f"failures.{mode}"])
        return (f"{mode}: {d['runs']} run{'s' * (d['runs'] > 1)} ({d.get('resumed', 0)} resumed), "
                f"{d['runs_stopped']} stopped, {d['candidates']} candidates, "
                f"{d['failed']} failed ({d['failed'] / max(1, d['candidates']):.0%}), {d['failed_with_reason']} "
                f"with the reason, {d['archived_failed']} archived, {_lost([d])}, duplicated {d['rows_duplicated']}")

    suite = suite_runs()

    rows = [
        ("Committed data survives a SIGKILL at any moment: every committed candidate present exactly once, "
         "archive = its re-derivation from the shards, metrics steps 0..N once, counters = shard totals, lineage "
         "closed (steps mode; the stream is the third row)",
         "test_crash.py::test_random_kills_short (5 trials), ::test_random_kills_full (20, `ci`)",
         _result(results, "test_crash::test_random_kills_short[steps]", "test_crash::test_random_kills_full[steps]"),
         f"short: {crash('crash.random_short', 'test_crash::test_random_kills_short[steps]')}; "
         f"full: {crash('crash.random_full', 'test_crash::test_random_kills_full[steps]')}"),
        ("... and at each named point of a step (mutate, solve, embed, shard temp/renamed, metrics, between the "
         "archive renames, checkpoint temp, after commit, mid-recovery)",
         "test_crash.py::test_targeted_kills_short, ::test_targeted_kills_full (`ci`), hook SPARQ_CRASH_AT",
         _result(results, "test_crash::test_targeted_kills_short[steps]",
                 "test_crash::test_targeted_kills_full[steps]"),
         f"short: {crash('crash.targeted_short', 'test_crash::test_targeted_kills_short[steps]')}; "
         f"full: {crash('crash.targeted_full', 'test_crash::test_targeted_kills_full[steps]')}"),
        ("The same in streaming mode (run.mode = \"stream\"): killed with candidates in flight at every stage "
         "and mid-commit, 0 committed rows lost or duplicated, archive = re-derivation, lineage closed (every "
         "parent a committed row of an earlier step)",
         "test_crash.py::test_random_kills_*[stream], ::test_targeted_kills_*[stream] (full variants `ci`)",
         _result(results, *(f"test_crash::test_{k}_kills_{v}[stream]" for k in ("random", "targeted")
                            for v in ("short", "full"))),
         f"random short: {crash('crash.random_short_stream', 'test_crash::test_random_kills_short[stream]')}; "
         f"targeted short: {crash('crash.targeted_short_stream', 'test_crash::test_targeted_kills_short[stream]')}; "
         f"random full: {crash('crash.random_full_stream', 'test_crash::test_random_kills_full[stream]')}; "
         f"targeted full: {crash('crash.targeted_full_stream', 'test_crash::test_targeted_kills_full[stream]')}"),
        ("No temporary file is mistaken for data: readers never list `.tmp-` names; a resume removes temporary "
         "files and uncommitted shards, a dead writer's temp file never outlives the next resume",
         "test_crash.py (Ledger.after_kill, check_run), test_storage.py::test_recover_*",
         _result(results, "test_crash::test_random_kills", "test_crash::test_targeted_kills"),
         "see the two rows above: temp files seen after kills, 0 listed by a reader, 0 left after resume"),
        ("An engine fault (HTTP 500, malformed JSON, empty choices, slow answer, hang, byte trickle, dropped "
         "connection, connection refused) is retried with exponential backoff, then fails with one line naming "
         "the endpoint; a hang or trickle is cut at timeout_s",
         "test_faults.py::test_engine_fault_retries_with_backoff_then_names_the_endpoint, ::test_engine_recovers_*, "
         "::test_engine_fails_over_from_a_hanging_endpoint",
         _result(results, "test_faults::test_engine_"),
         f"{len([d for d in eng if d])} fault modes, {eng_faults} faulty answers; timeout modes gave up after "
         f"{', '.join(f'{m} {s} s' for m, s in timeouts.items() if s is not None)} (3 tries x 0.5 s + backoff)"),
        ("A request refused for a reason of its own (prompt over the context, HTTP 400/413/422) fails its "
         "candidate, not the run: committed with status `failed` and the reason, never archived or a parent, in "
         "steps and stream mode; archive = re-derivation; the run resumes. Refusals in a row with none answered "
         "(`run.max_failed_in_a_row`, 32) stop it with one line",
         "test_failures.py::test_refused_requests_fail_their_candidates_and_the_run_goes_on[steps], [stream], "
         "::test_every_request_refused_stops_the_run_with_one_line (scripted engine refusing marked prompts); "
         "test_vllm_cpu.py::test_streamed_campaign_with_refused_requests_on_vllm (real vLLM, seeds over its "
         "context, `ci`)",
         _result(results, "test_failures::", "test_vllm_cpu::test_streamed_campaign_with_refused"),
         f"{failures('steps')}; {failures('stream')}; {failures('vllm_stream')}"),
        ("Every process a campaign starts (vLLM's engine core, Prefect's temporary server, the judge's forkserver "
         "and workers, multiprocessing's resource tracker) dies with it when it is killed alone with SIGKILL, and "
         "`--resume` then starts (a watchdog per process, pipeline/runtime/lifeline.py)",
         "test_lifeline.py (scripted campaign with and without Prefect, a process tree); "
         "test_vllm_cpu.py::test_killed_generate_leaves_no_engine_core_and_resumes (`ci`)",
         _result(results, "test_lifeline::", "test_vllm_cpu::test_killed_generate"),
         "; ".join(f"{name}: " + (f"{d['children']} processes started, {d['survivors']} survived, resumed"
                                  if (d := f(f"lifeline.{key}")) else _not_run(figures, [f"lifeline.{key}"]))
                   for key, name in (("no_prefect", "--no-prefect"), ("prefect", "Prefect flow"),
                                     ("vllm", "vLLM")))),
        ("A failed step leaves the run as it was (same files, same bytes, checkpoint unchanged, lock released) "
         "and the run continues once the fault passes; `sparq generate` exits 3 with one line",
         "test_faults.py::test_engine_fault_fails_the_step_cleanly, "
         "::test_generate_cli_exits_with_one_line_on_engine_fault",
         _result(results, "test_faults::test_engine_fault_fails", "test_faults::test_generate_cli"),
         f"{sum(d.get('faults_injected', 0) for d in step)} failed steps, files changed "
         f"{sum(d.get('files_changed', 0) for d in step)}, {_lost(step)}"),
        ("Run directory read-only: one line naming the file, last committed step intact, resumes when writable",
         "test_faults.py::test_read_only_run_directory", _result(results, "test_faults::test_read_only"),
         f"{ro.get('mode')}; faults {ro.get('faults_injected', 0)}, {_lost([ro])}"),
        ("Disk full: one line naming the file, temp file removed, last committed step intact, resumes after space "
         "is freed (failing at the first shard, and after the shards at the archive snapshot)",
         "test_faults.py::test_disk_full[0], [49152]", _result(results, "test_faults::test_disk_full"),
         f"{full0.get('mode') or full48.get('mode')}; faults "
         f"{full0.get('faults_injected', 0) + full48.get('faults_injected', 0)}, {_lost([full0, full48])}"),
        ("A second `sparq generate` on a run directory in use is refused by the lock, naming the holder's pid",
         "test_faults.py::test_second_writer_is_refused_with_the_holders_pid, "
         "test_storage.py::test_second_writer_is_refused_with_pid",
         _result(results, "test_faults::test_second_writer", "test_storage::test_second_writer"),
         f"{second.get('refused', 0)} second writers refused (CLI and in-process)"),
        ("Bad seeds (random JSONL bytes and rows, random/corrupt Parquet) load or fail with one line naming the source",
         "test_fuzz.py::test_seed_*", _result(results, "test_fuzz::test_seed_"),
         f"{fz('seeds.jsonl_bytes', 'seeds.jsonl_rows', 'seeds.parquet')} inputs tried"),
        ("Model output parsing and answer extraction are total and linear (no exception, no quadratic blow-up)",
         "test_fuzz.py::test_parse_mutation_*, ::test_tag_search_matches_the_lazy_regex, "
         "::test_extract_and_normalize_are_total",
         _result(results, "test_fuzz::test_parse_mutation", "test_fuzz::test_tag_search", "test_fuzz::test_extract"),
         f"{fz('parse_mutation', 'parse_mutation.tags', 'parse_mutation.adversarial', 'answers.extract_normalize')} "
         "inputs tried"),
        ("Adversarial LaTeX that makes sympy run for minutes is cut off by the judge's timeout",
         "test_fuzz.py::test_adversarial_latex_is_cut_off_by_the_timeout, "
         "test_answers.py::test_adversarial_input_times_out_and_pool_recovers",
         _result(results, "test_fuzz::test_adversarial_latex", "test_answers::test_adversarial_input"),
         f"{fz('answers.adversarial_latex')} inputs, each stopped at timeout_s"),
        ("Configs with unknown keys, wrong types, out-of-range or non-finite values fail with one line naming the key; "
         "an accepted config is usable",
         "test_fuzz.py::test_config_errors_name_the_key", _result(results, "test_fuzz::test_config"),
         f"{fz('config')} config dicts tried"),
        ("Generated text is never executed outside the sandbox: no eval/exec/pickle/shell in the library (the "
         "sandbox's launcher is the one exec); Python, shell and template payloads in math problems, answers and "
         "solver outputs run nothing",
         "test_security.py::test_library_never_executes_or_unpickles, ::test_generated_payloads_are_stored_never_run",
         _result(results, "test_security::test_library", "test_security::test_generated",
                 "test_security::test_scanner"),
         f"{scan.get('files_scanned', 0)} files scanned, {scan.get('findings', 0)} findings; "
         f"{pay.get('payloads', 0)} payloads through {pay.get('attempts_judged', 0)} judged attempts, "
         f"{pay.get('executed', 0)} executed"),
        ("Generated code (the code domain's references and attempts) runs only in the sandbox: a process per run "
         "under CPU, memory, file-size and process limits, no network, no file outside its throwaway directory, "
         "killed with everything it started at the timeout",
         "test_sandbox.py (escapes: sockets, files, environment, /proc, fork bomb, loops, memory, output, orphans)",
         _result(results, "test_sandbox::"),
         f"{box.get('escape_tests', 0)} escape tests; layers: "
         f"{', '.join(box.get('layers', [])) or 'none recorded'}"),
        ("Run storage holds no pickle: Parquet, JSON, TOML, .npy (allow_pickle=False) only",
         "test_security.py::test_run_storage_has_no_pickle", _result(results, "test_security::test_run_storage"),
         f"{fmt.get('files_checked', 0)} files checked, {fmt.get('pickles', 0)} pickles"),
        ("The API key comes only from the environment and reaches no file of the run, stdout or stderr",
         "test_security.py::test_api_key_never_leaves_the_environment, ::test_config_has_no_key_field",
         _result(results, "test_security::test_api_key", "test_security::test_config_has_no_key"),
         f"{key.get('files_checked', 0)} files and {key.get('outputs_checked', 0)} outputs checked, "
         f"{key.get('leaks', 0)} leaks"),
        ("Servers the project starts bind 127.0.0.1", "test_security.py::test_servers_bind_localhost",
         _result(results, "test_security::test_servers"), "Prefect's temporary server and the test fakes"),
        ("The whole suite passes from a fresh clone, run after run (property tests draw fixed examples; no "
         "test depends on timing or order)",
         "`bench/suite_runs.py`: fresh clones running the README's test command in turn",
         suite["result"], suite["figure"]),
    ]
    lines = [
        "# Guarantees",
        "",
        "What a campaign on preemptible machines can rely on, the test that checks each promise and the figure "
        f"from the last run ({meta.get('run_at', 'never')}, {'full' if meta.get('full') else 'short'} variants, "
        f"{meta.get('wall_seconds', '?')} s, regenerated by `bench/guarantees.py`). Kills are real SIGKILLs of "
        "`sparq generate --no-prefect` process groups on the scripted engine; storage faults use a real tmpfs "
        "(read-only remount, full disk) when the tests run as root, else a simulated errno at the write call.",
        "",
        "| promise | checked by | result | figure (last run) |",
        "|---|---|---|---|",
    ]
    # The figures each row is made of (None: the row's text carries no count, or marks its own).
    keys = [None, None, None, None, ["engine."], ["failures."], ["lifeline."], ["engine_step."], ["storage.read_only"],
            ["storage.disk_full_"], ["storage.second_writer"], ["fuzz"], ["fuzz"], ["fuzz"], ["fuzz"],
            ["security.static_scan", "security.payloads"], ["sandbox."], ["security.storage_formats"],
            ["security.api_key"],
            None, None]
    rows = [(p, t, r, fig if k is None or (_ran_result(r) and any(n.startswith(tuple(k)) for n in fresh))
             else _not_run(figures, k)) for (p, t, r, fig), k in zip(rows, keys, strict=True)]
    lines += [f"| {p} | {t} | {r} | {fig} |" for p, t, r, fig in rows]
    lines += [
        "",
        "Notes:",
        "",
        "- Targeted kills use a test-only hook: `SPARQ_CRASH_AT=<phase>:<step>` makes the process SIGKILL itself "
        "at that point (`pipeline.store.storage.crash_point`; phases `mutate`, `solve`, `embed`, `shard-tmp`, `shard`, "
        "`metrics`, `archive`, `checkpoint-tmp`, `committed`, `recover`). Unset, it is one dictionary lookup.",
        "- Between a kill and the next resume, `metrics.parquet` and the shard folders may hold rows of the step "
        "in flight; every reader that must see committed data only passes `upto=<checkpoint step>` "
        "(`sparq inspect`/`report` do). Resume removes them.",
        "- With the Prefect flow (the default `sparq generate`), an engine failure still ends in exit code 3 and "
        "one `sparq: error:` line, but Prefect logs its own task tracebacks before it; `--no-prefect` prints "
        "only the line.",
        "- `bench/guarantees.py --full` (or `CI=1 pytest -m \"not slow\"`) also runs the long variants: 20 random "
        "kills and every hook point.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="also the long @pytest.mark.ci variants")
    ap.add_argument("--render", action="store_true", help="only rewrite the Guarantees page (docs/guarantees.md)")
    ap.add_argument("--junit", type=Path, metavar="XML", help="results of a pytest run made elsewhere")
    args = ap.parse_args()
    if args.junit:  # tests rerun elsewhere replace their earlier results
        old = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        new = parse_junit(args.junit)
        results = {**old.get("tests", {}), **new}
        failed = any(r["status"] in ("FAILED", "ERROR") for r in results.values())
        wall = old.get("wall_seconds", 0) + sum(r["seconds"] for r in new.values())
        save_results(results, old.get("full", False), wall, int(failed), regeneration_start(old))
    elif not args.render:
        run_tests(args.full)
    figures = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    meta = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    text = DOC.read_text(encoding="utf-8")
    if START not in text or END not in text:
        print(f"{DOC} has no {START} ... {END} markers; nothing written", file=sys.stderr)
        return 2
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    DOC.write_text(f"{head}{START}\n{render(figures, meta.get('tests', {}), meta)}{END}{tail}", encoding="utf-8")
    print(f"wrote the Guarantees section of {DOC}")
    return int(meta.get("exit_code", 0) != 0)


if __name__ == "__main__":
    sys.exit(main())
