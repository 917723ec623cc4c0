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

EXIT_BAD_INPUT = 2
EXIT_ENGINE = 3


def _fail(msg: str, code: int = EXIT_BAD_INPUT) -> int:
    print(f"sparq: error: {msg}", file=sys.stderr)
    return code


def cmd_generate(args: argparse.Namespace) -> int:
    from pipeline.config import load_config
    from pipeline.generate import format_summary, run_generation

    if args.steps is not None and args.steps < 0:
        return _fail(f"--steps: expected an integer >= 0, got {args.steps}")
    config = load_config(args.config)
    if args.no_prefect:
        summary = run_generation(config, args.run_dir, resume=args.resume, steps=args.steps,
                                 show_bar=not args.quiet)
    else:
        os.environ.setdefault("DO_NOT_TRACK", "1")
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        from flows.generate import generate

        summary = generate(run_dir=args.run_dir, config_path=args.config, steps=args.steps,
                           resume=args.resume)
    print(format_summary(summary))
    print(f"\nrun directory: {summary['run_dir']}")
    return 0


def cmd_seeds(args: argparse.Namespace) -> int:
    from pipeline.config import SeedsConfig
    from pipeline.seeds import load_seeds, summarize

    cfg = SeedsConfig(source=args.source, split=args.split, problem=args.problem,
                      solution=args.solution, answer=args.answer, skill=args.skill)
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
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=cmd_generate)

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
    s.add_argument("--json", action="store_true", help="print the summary as JSON")
    s.set_defaults(func=cmd_seeds)

    p = sub.add_parser("prepare", help="convert and cache the embedded model (one time)",
                       description="Convert the bundled Gemma 3 270M GGUF file to a cached "
                                   "safetensors model and check the bundled embedder.")
    p.set_defaults(func=cmd_prepare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from pipeline.config import ConfigError
    from pipeline.engines.base import EngineError
    from pipeline.prompts import PromptError
    from pipeline.seeds import SeedError
    from pipeline.storage import RunError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, SeedError, RunError, PromptError) as exc:
        return _fail(str(exc))
    except EngineError as exc:
        return _fail(str(exc), EXIT_ENGINE)
    except KeyboardInterrupt:
        return _fail("interrupted; committed steps are kept, continue with --resume", 130)


if __name__ == "__main__":
    sys.exit(main())
