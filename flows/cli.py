"""The `sparq` command line.

Every command validates its input at the boundary and, on bad input, exits non-zero
with one line that names the cause (no traceback). Long work shows progress on stderr
and ends with a summary on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_BAD_INPUT = 2
EXIT_ENGINE = 3


def _fail(msg: str, code: int = EXIT_BAD_INPUT) -> int:
    msg = " ".join(str(msg).split())  # one line, whatever the message quoted (server bodies, paths)
    print(f"sparq: error: {msg}", file=sys.stderr)
    return code


def cmd_generate(args: argparse.Namespace) -> int:
    from pipeline.config import load_config
    from pipeline.loop.generate import format_summary, run_generation

    if args.steps is not None and args.steps < 0:
        return _fail(f"--steps: expected an integer >= 0, got {args.steps}")
    config = load_config(args.config)
    if args.dask_address and (args.no_prefect or "://" not in args.dask_address):
        return _fail("--dask-address: expected a scheduler address such as tcp://host:8786 "
                     f"(and no --no-prefect: Dask runs through the flow), got {args.dask_address!r}")
    from flows.quiet import LOG, library_output_to

    log = None if args.verbose or not _loads_a_model(config, args) else Path(args.run_dir) / LOG
    with library_output_to(log):
        if args.no_prefect:
            summary = run_generation(config, args.run_dir, resume=args.resume, steps=args.steps,
                                     show_bar=not args.quiet)
        else:
            os.environ.setdefault("DO_NOT_TRACK", "1")
            os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
            from flows.generate import run_generate

            summary = run_generate(run_dir=args.run_dir, config_path=args.config, steps=args.steps,
                                   resume=args.resume, dask_address=args.dask_address)
    print(format_summary(summary))
    print(f"\nrun directory: {summary['run_dir']}")
    if log is not None:
        print(f"engine and library messages: {log} (--verbose shows them here)")
    return 0


def _loads_a_model(config, args: argparse.Namespace) -> bool:
    """Whether this run starts a local model (vLLM or transformers), whose libraries talk:
    the config's engine, or on --resume the run's own saved one."""
    from pipeline.config import load_config

    saved = Path(args.run_dir) / "config.toml"
    if args.resume and saved.is_file():
        try:
            config = load_config(saved)
        except Exception:  # noqa: BLE001 (the run itself reports a broken config)
            pass
    return config.engine.kind in ("vllm", "transformers")


def cmd_seeds(args: argparse.Namespace) -> int:
    from pipeline.config import SeedsConfig
    from pipeline.store.seeds import load_seeds, summarize

    limits = {} if args.max_chars is None else {"max_chars": args.max_chars}
    cfg = SeedsConfig(source=args.source, split=args.split, problem=args.problem,
                      solution=args.solution, answer=args.answer, skill=args.skill, **limits)
    seeds = load_seeds(cfg)
    info = summarize(seeds)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"seed source {args.source}: {info['rows']} rows, ok")
    for key in ("duplicate_problems", "empty_solutions", "problem_chars_median", "problem_chars_max"):
        print(f"  {key}: {info[key]}")
    print("  skills:")
    for skill, count in info["skills"].items():
        print(f"    {skill}: {count}")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from pipeline.models import embedded_embedder_path, prepare_embedded_model

    path = prepare_embedded_model()
    print(f"generator/solver model: {path}")
    print(f"embedder model: {embedded_embedder_path()}")
    return 0


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value!r}")
    return n


def cmd_inspect(args: argparse.Namespace) -> int:
    from pipeline.read.inspection import lineage, load_run, summarize
    from pipeline.read.inspection_text import format_lineage, format_summary

    if args.rounds:
        from flows.rounds_report import load_rows, report_markdown
        from pipeline.store.storage import RunError

        rows = load_rows(args.run_dir)
        if not rows:
            raise RunError(f"{args.run_dir}: no round evaluated yet (expected a `sparq rounds` directory with "
                           "base/eval.json or round-RR/round.json)")
        print(json.dumps(rows, indent=2) if args.json else report_markdown(rows))
        return 0
    run = load_run(args.run_dir)  # InspectError is a RunError: main() prints it as one line
    if args.elite is not None:
        chain = lineage(run, args.elite)
        print(json.dumps({"id": chain[0]["id"], "lineage": chain}, indent=2) if args.json
              else format_lineage(chain))
        return 0
    summary = summarize(run, top=args.top)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from pipeline.read.report import build_report

    report = build_report(args.run_dir, top=args.top)
    print(f"report: {report.html_path}")
    return 0


def cmd_explore(args: argparse.Namespace) -> int:
    from pipeline.read.explore import write_explorer

    res = write_explorer(args.run_dirs, args.out, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(f"explorer: {res.path} ({res.bytes / 1e6:.1f} MB; {res.candidates} candidates, seeds included, "
          f"from {res.runs} run(s))")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from filters.config import load_export_config
    from filters.errors import ExportInputError
    from filters.export import export_runs

    if args.budget is not None and args.budget < 0:
        return _fail(f"--budget: expected an integer >= 0, got {args.budget}")
    try:
        result = export_runs(args.run_dirs, args.out, config=load_export_config(args.config), budget=args.budget,
                             dask_address=args.dask_address, skip_corrupt=args.skip_corrupt,
                             log=lambda msg: print(msg, file=sys.stderr, flush=True))
    except ExportInputError as exc:
        return _fail(str(exc))
    print(f"exported {result.data_rows} rows from {result.candidates} candidates "
          f"({result.rejected_rows} rejected rows kept, {len(result.skipped)} files skipped)")
    print(f"dataset: {result.out_dir} (card: {result.out_dir}/README.md)")
    return 0


def cmd_schedule(args: argparse.Namespace) -> int:
    from pipeline.config import load_config

    if (args.cron is None) == (args.interval is None):
        return _fail("give exactly one of --cron EXPR or --interval SECONDS")
    if args.interval is not None and not args.interval > 0:
        return _fail(f"--interval: expected a number of seconds > 0, got {args.interval:g}")
    if not os.environ.get("PREFECT_API_URL"):
        return _fail("sparq schedule needs a running Prefect server: start one with "
                     "`prefect server start --host 127.0.0.1` and set "
                     "PREFECT_API_URL=http://127.0.0.1:4200/api")
    if args.rounds_per_run:
        if args.fresh:
            return _fail("--fresh starts a new generation campaign per run; a rounds campaign (--rounds-per-run) "
                         "grows one directory")
        from flows.rounds import load_rounds_config

        load_rounds_config(args.config)  # a bad config fails here, not at the first scheduled run
    else:
        load_config(args.config)
    from flows.schedule import ScheduleSpec, check_cron, deploy_schedule, serve_schedule

    if args.cron is not None and (why := check_cron(args.cron)) is not None:
        return _fail(f"--cron: expected a cron expression such as '0 3 * * *', got {args.cron!r} ({why})")
    spec = ScheduleSpec(run_dir=os.path.abspath(args.run_dir),
                        config_path=os.path.abspath(args.config) if args.config else None,
                        cron=args.cron, interval_s=args.interval, steps_per_run=args.steps_per_run,
                        fresh=args.fresh, name=args.name, timezone=args.timezone,
                        rounds_per_run=args.rounds_per_run or 0)
    when = f"cron '{args.cron}'" if args.cron else f"every {args.interval:g} s"
    what = "a new campaign in a new subdirectory" if args.fresh else f"+{args.steps_per_run} step(s)"
    if args.rounds_per_run:
        what = f"+{args.rounds_per_run} round(s)"
    if args.work_pool:
        dep_id = deploy_schedule(spec, args.work_pool)
        print(f"deployment {spec.deployment} ({dep_id}): {when}, {what} per run, run directory {spec.run_dir}")
        print(f"start a worker to run it: prefect worker start --pool {args.work_pool}")
        return 0
    print(f"serving deployment {spec.deployment}: {when}, {what} per run, run directory "
          f"{spec.run_dir}; Ctrl-C stops serving (committed steps are kept)", file=sys.stderr)
    serve_schedule(spec)
    return 0


def _stderr_log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cmd_finetune(args: argparse.Namespace) -> int:
    from finetune.config import load_finetune_config
    from finetune.train import finetune

    cfg = load_finetune_config(args.config)
    if args.max_steps is not None:
        cfg = cfg.replace("train", max_steps=args.max_steps)
    res = finetune(args.dataset_dir, args.out, config=cfg, log=_stderr_log)
    print(f"fine-tuned {res.rows} rows, {res.steps} steps in {res.seconds:.0f} s "
          f"({res.step_seconds:.2f} s/step, final loss {res.final_loss})")
    print(f"model: {res.model_dir} (train_log.jsonl, finetune_config.toml inside)")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from finetune.config import load_finetune_config
    from finetune.evaluate import evaluate, format_table

    cfg = load_finetune_config(args.config)
    over = {name: getattr(args, name) for name in ("n", "k", "limit", "split", "problem", "answer")
            if getattr(args, name) is not None}
    if args.eval is not None:
        over["source"] = args.eval
    if "n" in over and "k" not in over:
        over["k"] = min(cfg.evaluate.k, over["n"])  # --n 1 alone should not fail on the default k
    result = evaluate(args.model, config=cfg.replace("evaluate", **over).evaluate, log=_stderr_log)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
    print(json.dumps(result, indent=2) if args.json else format_table([result]))
    if args.out and not args.json:
        print(f"\n{result['ci_method']}; JSON: {args.out}")
    return 0


def cmd_pipeline(args: argparse.Namespace) -> int:
    from finetune.evaluate import format_table
    from flows.stages import load_pipeline_config, run_pipeline

    out = run_pipeline(load_pipeline_config(args.config), log=_stderr_log)
    print(format_table([{**r, "model": label} for label, r in out["results"].items()]))
    print(f"\ncomparison: {out['files']['md']}")
    print(f"{out['dataset_rows']} training rows, {out['train_steps']} steps; seconds: "
          + ", ".join(f"{k} {v:.0f}" for k, v in out["seconds"].items()))
    return 0


def cmd_rounds(args: argparse.Namespace) -> int:
    from flows.quiet import LOG, library_output_to
    from flows.rounds import load_rounds_config
    from flows.rounds_report import report_markdown

    section = load_rounds_config(args.config, rounds=args.rounds)  # a bad config fails here, at once
    directory = Path(args.dir)
    with library_output_to(None if args.verbose else directory / LOG):
        if args.no_prefect:
            from flows.rounds import run_rounds

            rows = run_rounds(directory, section, log=_stderr_log)
        else:
            from flows.rounds_flow import rounds_flow

            rows = rounds_flow(directory=str(directory), config_path=args.config, rounds=args.rounds)
    print(report_markdown(rows))
    print(f"report: {directory / 'report.html'} and {directory / 'report.md'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sparq",
        description="Grow diverse, hard-but-solvable math problems from seeds with a "
                    "quality-diversity loop (SPARQ), and turn them into fine-tuning data.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    g = sub.add_parser(
        "generate", help="run or resume a generation campaign",
        description="Run a generation campaign into RUN_DIR: select parents from the archive, "
                    "mutate, solve k times, score, archive, commit each step atomically.")
    g.add_argument("--config", metavar="PATH",
                   help="TOML file overriding any subset of the packaged CPU default config")
    g.add_argument("--run-dir", required=True, metavar="DIR", help="the run directory")
    g.add_argument("--steps", type=int, metavar="N",
                   help="total number of steps the run should have (default: run.steps)")
    g.add_argument("--resume", action="store_true",
                   help="continue RUN_DIR from its last committed step, with its saved config")
    g.add_argument("--no-prefect", action="store_true",
                   help="run the loop in-process instead of as a Prefect flow")
    g.add_argument("--dask-address", metavar="ADDR",
                   help="fan engine calls and verification out to this Dask scheduler (tcp://host:8786) "
                        "through prefect-dask; [dask] enabled = true in the config does the same on a LocalCluster")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.add_argument("--verbose", action="store_true",
                   help="show the engine's and libraries' own messages (vLLM, torch warnings) here instead of "
                        "keeping them in RUN_DIR/logs/engine.log")
    g.set_defaults(func=cmd_generate)

    sc = sub.add_parser(
        "schedule", help="schedule a campaign on a Prefect server (cron or interval)",
        description="Create a Prefect deployment that extends the campaign in RUN_DIR on a schedule: "
                    "each run resumes RUN_DIR and adds --steps-per-run steps (or, with --fresh, starts a "
                    "new campaign in RUN_DIR/run-<time>). Needs PREFECT_API_URL pointing at a running "
                    "`prefect server start`. By default this process serves the deployment (runs "
                    "execute here until Ctrl-C); with --work-pool it registers the deployment for a "
                    "`prefect worker start --pool POOL` and returns.")
    sc.add_argument("--config", metavar="PATH",
                    help="TOML file overriding any subset of the packaged CPU default config")
    sc.add_argument("--run-dir", required=True, metavar="DIR", help="the campaign's run directory")
    when = sc.add_mutually_exclusive_group()
    when.add_argument("--cron", metavar="EXPR", help="cron schedule, e.g. '0 3 * * *' (03:00 every day)")
    when.add_argument("--interval", type=float, metavar="SECONDS", help="run every SECONDS instead of a cron")
    sc.add_argument("--timezone", metavar="TZ", help="time zone of --cron (default UTC), e.g. Europe/Paris")
    sc.add_argument("--steps-per-run", type=_positive, default=1, metavar="N",
                    help="steps each scheduled run adds (default 1)")
    sc.add_argument("--fresh", action="store_true",
                    help="start a new campaign in RUN_DIR/run-<time> on every run instead of extending one")
    sc.add_argument("--rounds-per-run", type=_positive, metavar="N",
                    help="schedule a rounds campaign instead (`sparq rounds`): RUN_DIR is its directory, --config "
                         "a [rounds] file (default: the packaged one), and each run adds N rounds")
    sc.add_argument("--name", default="default", help="deployment name (default 'default')")
    sc.add_argument("--work-pool", metavar="POOL",
                    help="register with this process work pool (created if missing) instead of serving")
    sc.set_defaults(func=cmd_schedule)

    ro = sub.add_parser(
        "rounds", help="open-ended rounds: generate, export, fine-tune, evaluate; the tuned model solves next",
        description="Run or resume a rounds campaign in DIR (docs/rounds.md). Each round re-scores the "
                    "archive with the current solver (from round 2), grows the carried-over run, exports every "
                    "row so far, fine-tunes the base model on it, evaluates the result on the held-out split "
                    "and writes the per-round report (DIR/report.html, report.md, rounds.json). A killed "
                    "campaign resumes in the stage it was in; run the same command again.")
    ro.add_argument("dir", metavar="DIR", help="the campaign directory (created, or resumed)")
    ro.add_argument("--config", metavar="PATH",
                    help="TOML file with a [rounds] table (default: the packaged flows/rounds.toml, "
                         "3 rounds of 15 steps on the embedded model)")
    ro.add_argument("--rounds", type=_positive, metavar="N",
                    help="number of rounds (overrides the config; raise it to extend a finished campaign)")
    ro.add_argument("--no-prefect", action="store_true", help="run in-process instead of as a Prefect flow")
    ro.add_argument("--verbose", action="store_true",
                    help="show vLLM's and the libraries' own messages here instead of DIR/logs/engine.log")
    ro.set_defaults(func=cmd_rounds)

    s = sub.add_parser("seeds", help="validate and summarise a seed source",
                       description="Load a seed source with a column mapping, check every row, "
                                   "and print a summary.")
    s.add_argument("source", metavar="SOURCE",
                   help="'bundled', a .jsonl or .parquet file, or hf:NAME (a datasets dataset)")
    s.add_argument("--split", default="train", help="dataset split for hf: sources")
    s.add_argument("--problem", default="problem", help="column holding the problem")
    s.add_argument("--solution", default="solution", help="column holding the solution")
    s.add_argument("--answer", default="answer", help="column holding the final answer")
    s.add_argument("--skill", default="", help="optional column holding a skill label")
    s.add_argument("--max-chars", type=_positive, metavar="N",
                   help="longest problem, solution or answer accepted, in characters (default: seeds.max_chars's)")
    s.add_argument("--json", action="store_true", help="print the summary as JSON")
    s.set_defaults(func=cmd_seeds)

    p = sub.add_parser("prepare", help="convert and cache the embedded model (one time)",
                       description="Convert the bundled Gemma 3 270M GGUF file to a cached "
                                   "safetensors model and check the bundled embedder.")
    p.set_defaults(func=cmd_prepare)

    i = sub.add_parser("inspect", help="summarise a run directory, or trace one elite's lineage",
                       description="Print what RUN_DIR holds: candidates by status, archive coverage "
                                   "and QD score, solve-rate histogram, top elites, lineage depths, "
                                   "operator yield. With --elite, one problem and its ancestors.")
    i.add_argument("run_dir", metavar="RUN_DIR", help="the run directory")
    i.add_argument("--elite", metavar="ID",
                   help="print this candidate (id or unique prefix) and its lineage back to its seed")
    i.add_argument("--top", type=_positive, default=10, metavar="N", help="how many top elites (default 10)")
    i.add_argument("--json", action="store_true", help="print JSON instead of text")
    i.add_argument("--rounds", action="store_true",
                   help="RUN_DIR is a `sparq rounds` directory: print its per-round table (pass@1/pass@k with "
                        "95%% intervals, paired differences, archive, valid share, diversity, warnings)")
    i.set_defaults(func=cmd_inspect)

    r = sub.add_parser("report", help="write an HTML report with figures into RUN_DIR/report/",
                       description="Write RUN_DIR/report/index.html (one self-contained page: "
                                   "figures inline, no external resources) and the figures as PNG files.")
    r.add_argument("run_dir", metavar="RUN_DIR", help="the run directory")
    r.add_argument("--top", type=_positive, default=10, metavar="N", help="how many top elites (default 10)")
    r.set_defaults(func=cmd_report)

    xp = sub.add_parser("explore", help="write one interactive HTML page to explore runs",
                        description="Write one self-contained HTML page (no network, works from file://) with "
                                    "the archive map and its timeline, every elite with its attempts and lineage, "
                                    "a searchable table of all candidates and, for several runs, their comparison.")
    xp.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories")
    xp.add_argument("--out", metavar="FILE",
                    help="the page (default: RUN_DIR/report/explore.html for one run, ./explore.html for several)")
    xp.set_defaults(func=cmd_explore)

    x = sub.add_parser("export", help="turn run directories into a fine-tuning dataset",
                       description="Filter (status, difficulty band, validity, dedup, near-duplicates, "
                                   "decontamination) and select the committed candidates of RUN_DIRs into "
                                   "Parquet SFT rows in OUT/data/, every rejected row with its reason in "
                                   "OUT/rejected/, and a dataset card OUT/README.md.")
    x.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories to export")
    x.add_argument("--out", required=True, metavar="DIR", help="output directory (must not exist or be empty)")
    x.add_argument("--budget", type=int, metavar="N", help="output rows (default: export.budget; 0 = all)")
    x.add_argument("--config", metavar="PATH", help="TOML file with an [export] table overriding the defaults")
    x.add_argument("--dask-address", metavar="ADDR",
                   help="run on this dask.distributed scheduler (e.g. tcp://host:8786) instead of locally")
    x.add_argument("--skip-corrupt", action="store_true",
                   help="skip missing or unreadable shards with a warning (counted in the card) instead of failing")
    x.set_defaults(func=cmd_export)
    ft = sub.add_parser("finetune", help="fine-tune a model on an exported dataset (TRL SFT, LoRA by default)",
                        description="SFT of the base model (default: the embedded Gemma 3 270M) on the messages of "
                                    "DATASET_DIR (a sparq export); writes a merged, directly loadable model, "
                                    "train_log.jsonl and the resolved config to MODEL_DIR.")
    ft.add_argument("dataset_dir", metavar="DATASET_DIR", help="export directory (DATASET_DIR/data/*.parquet)")
    ft.add_argument("--out", required=True, metavar="MODEL_DIR", help="output directory (must not exist or be empty)")
    ft.add_argument("--config", metavar="PATH", help="TOML file overriding finetune/finetune.toml")
    ft.add_argument("--max-steps", type=_positive, metavar="N", help="override train.max_steps")
    ft.set_defaults(func=cmd_finetune)

    ev = sub.add_parser("evaluate", help="pass@1 / pass@k of a model with 95%% confidence intervals",
                        description="Sample n answers per problem of the eval source, judge them with "
                                    "math-verify, print pass@1 and pass@k with 95%% bootstrap intervals.")
    ev.add_argument("model", metavar="MODEL", help="'embedded' or a model directory (e.g. a sparq finetune output)")
    ev.add_argument("--eval", metavar="SOURCE",
                    help="'bundled-eval' (default), a .jsonl/.parquet file or hf:NAME with answers")
    ev.add_argument("--n", type=_positive, metavar="N", help="samples per problem (default: evaluate.n)")
    ev.add_argument("--k", type=_positive, metavar="K", help="pass@k, k <= n (default: evaluate.k)")
    ev.add_argument("--limit", type=_positive, metavar="N", help="first N problems only")
    ev.add_argument("--split", help="dataset split for hf: sources")
    ev.add_argument("--problem", help="column holding the problem")
    ev.add_argument("--answer", help="column holding the reference answer")
    ev.add_argument("--config", metavar="PATH", help="TOML file overriding finetune/finetune.toml ([evaluate])")
    ev.add_argument("--out", metavar="FILE", help="write the JSON result to FILE")
    ev.add_argument("--json", action="store_true", help="print JSON instead of the table")
    ev.set_defaults(func=cmd_evaluate)

    pl = sub.add_parser("pipeline", help="generate -> export -> finetune -> evaluate, end to end",
                        description="Run the stages named by a [pipeline] TOML file (see docs/finetune.md).")
    pl.add_argument("--config", required=True, metavar="PATH", help="TOML file with a [pipeline] table")
    pl.set_defaults(func=cmd_pipeline)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from finetune.errors import FinetuneInputError
    from pipeline.config import ConfigError
    from pipeline.engines.base import EngineError
    from pipeline.prompts import PromptError
    from pipeline.store.seeds import SeedError
    from pipeline.store.storage import RunError

    args = build_parser().parse_args(argv)
    if args.func in (cmd_generate, cmd_export, cmd_schedule, cmd_finetune, cmd_evaluate, cmd_pipeline, cmd_rounds):
        # The engine core, Prefect's server, the judge's and Dask's workers die with this
        # process, even when it is killed with SIGKILL (pipeline/runtime/lifeline.py).
        from pipeline.runtime.lifeline import watch

        watch()
    try:
        return args.func(args)
    except (ConfigError, SeedError, RunError, PromptError, FinetuneInputError) as exc:
        return _fail(str(exc))
    except EngineError as exc:
        return _fail(str(exc), EXIT_ENGINE)
    except OSError as exc:  # a file the command could not read or write, named
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(f"{where}{exc.strerror or exc}")
    except KeyboardInterrupt:
        return _fail("interrupted; committed steps are kept, continue with --resume", 130)


if __name__ == "__main__":
    sys.exit(main())
