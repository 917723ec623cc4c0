"""The generator's yield, open loop: what one mutation of each bundled seed gives, per token.

    .venv/bin/python bench/generator_yield.py                                  # the config's generator
    .venv/bin/python bench/generator_yield.py --variants mutate_fewshot@0.6 mutate_fewshot@0.3

A 5-commit default campaign spends about two thirds of its tokens on the generator, and
most of its outputs never reach the solver (run35: of 960, 559 rejected by the checks,
154 unparseable, 116 duplicates, 131 solved). This script measures that funnel without the
archive: every bundled seed is a parent once (a campaign's first commits draw seeds), each
variant (a generator prompt at a temperature) writes one mutation per parent, and each is
parsed, deduplicated against the seeds and the other outputs, checked with the config's
checks, and the ones that pass are solved k times as a campaign solves them (the config's
solver prompt and sampling). A problem solved by some but not all attempts is in SPARQ's
band: in a default campaign nearly every such problem enters the archive (run35: 72 of 74).

One treatment of each variant's outputs is counted beside it, on the same outputs:
`repair` ([validity] repair: a rejected reference whose last computation is corrected and
then passes every check). (An output that labels its solution "Original solution:" after
its new problem is read as that problem's solution by the parser itself, so it is counted
in the plain row.) The figure compared is problems in the band per million tokens
(generator + solver); whether they are valid needs labels (--dump writes them, blind, for
bench/validity_pool.py-style labelling).

Each variant is one engine call with one sampling, so `[generator] stop_at_parent` (a stop
string per parent, which the stream sends) is not applied here: an output that copies its
parent counts as a duplicate at its full length, as it did before that setting.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchlib import add_threads_arg, append_results, set_threads

from pipeline.config import load_config
from pipeline.domains.math.answers import AnswerJudge
from pipeline.domains.math.mutation import parse_mutation
from pipeline.domains.math.repair import repair_reference
from pipeline.domains.math.validity import check_reference
from pipeline.engines import Sampling, make_engine
from pipeline.prompts import load_prompt
from pipeline.store.records import problem_id
from pipeline.store.seeds import load_seeds


@dataclass
class Out:
    """One generator output and what became of it."""

    raw: str
    tokens: int
    fate: str = ""  # unparseable | duplicate | invalid | pass
    problem: str = ""
    solution: str = ""
    answer: str = ""
    via: str = "plain"  # plain | repair
    right: int = -1  # solver attempts right (-1: not solved)
    solve_tokens: int = 0


def judge_output(raw: str, prefix: str, checks: tuple[str, ...], taken: set[str]) -> Out:
    """The output as a campaign reads it: parsed, deduplicated against `taken`, checked."""
    o = Out(raw=raw, tokens=0)
    m = parse_mutation(raw, prefix)
    if not hasattr(m, "problem"):
        o.fate = "unparseable"
        return o
    o.problem, o.solution, o.answer = m.problem, m.solution, m.answer
    pid = problem_id(m.problem)
    if pid in taken:
        o.fate = "duplicate"
        return o
    taken.add(pid)
    o.fate = "pass" if check_reference(m.problem, m.solution, m.answer, checks).valid else "invalid"
    return o


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=None, help="campaign config (default: the packaged default)")
    ap.add_argument("--variants", nargs="+", default=None,
                    help="generator PROMPT@TEMPERATURE (default: the config's generator)")
    ap.add_argument("--parents", type=int, default=0, help="seeds used as parents (default: all)")
    ap.add_argument("--seed", type=int, default=7, help="sampling seed")
    ap.add_argument("--dump", type=Path, default=None, help="write every in-band problem here (JSON lines)")
    ap.add_argument("--no-results", action="store_true", help="do not append to bench/results.md")
    add_threads_arg(ap)
    args = ap.parse_args()
    threads = set_threads(args.threads)
    config = load_config(args.config)
    g, s, checks = config.generator, config.solver, config.validity.checks
    variants = args.variants or [f"{g.prompt}@{g.temperature}"]
    seeds = load_seeds(config.seeds)
    if args.parents:
        seeds = random.Random(args.seed).sample(seeds, args.parents)
    seed_ids = {problem_id(x.problem) for x in seeds}
    solve_prompt = load_prompt(s.prompt)
    t0 = time.perf_counter()
    engine = make_engine(config.engine, seed=config.run.seed)
    print(f"engine {engine.name} up in {time.perf_counter() - t0:.0f} s ({threads}); {len(seeds)} parents",
          flush=True)
    lines = [f"Generator yield, open loop: one mutation of each of {len(seeds)} bundled seeds per variant, "
             f"checked ({len(checks)} checks), the passing ones solved k = {s.k} with `{s.prompt}` "
             f"(temperature {s.temperature}); band = solved by some but not all.", "",
             "| variant | outputs | unparseable | duplicate | rejected | pass | in band | gen tokens | solve tokens "
             "| in band per M tokens |", "|---|---|---|---|---|---|---|---|---|---|"]
    dump = []
    try:
        for spec in variants:
            name, _, temp = spec.partition("@")
            prompt = load_prompt(name)
            temperature = float(temp) if temp else g.temperature
            sampling = Sampling(n=1, temperature=temperature, top_p=g.top_p, max_tokens=g.max_tokens,
                                stop=prompt.stop, seed=args.seed)
            t1 = time.perf_counter()
            outs = engine.complete([prompt.render(problem=x.problem, solution=x.solution) for x in seeds], sampling)
            taken = set(seed_ids)
            plain = []
            for o_s in outs:
                o = judge_output(o_s[0].text, prompt.response_prefix, checks, taken)
                o.tokens = o_s[0].tokens
                plain.append(o)
            extra = []  # the repaired candidates, each solved once
            for o in plain:
                if o.fate == "invalid":
                    fixed = repair_reference(o.problem, o.solution, o.answer)
                    if fixed and check_reference(o.problem, fixed.solution, fixed.answer, checks).valid:
                        extra.append(Out(raw=o.raw, tokens=0, fate="pass", problem=o.problem,
                                         solution=fixed.solution, answer=fixed.answer, via="repair"))
            to_solve = [o for o in plain if o.fate == "pass"] + extra
            ssamp = Sampling(n=s.k, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens,
                             stop=solve_prompt.stop, seed=args.seed + 1000)
            souts = engine.complete([solve_prompt.render(problem=o.problem) for o in to_solve], ssamp)
            with AnswerJudge() as judge:
                verdicts = judge.judge_many([(o.answer, [c.text for c in cs]) for o, cs in zip(to_solve, souts,
                                                                                              strict=True)])
            for o, cs, vd in zip(to_solve, souts, verdicts, strict=True):
                o.right, o.solve_tokens = sum(vd.correct), sum(c.tokens for c in cs)
            gen_tokens = sum(o.tokens for o in plain)
            fate = {f: sum(o.fate == f for o in plain) for f in ("unparseable", "duplicate", "invalid", "pass")}
            for label, vias in ((f"`{name}` @ {temperature}", {"plain"}), ("  + repair", {"plain", "repair"})):
                got = [o for o in to_solve if o.via in vias]
                band = [o for o in got if 0 < o.right < s.k]
                solve_tokens = sum(o.solve_tokens for o in got)
                lines.append(f"| {label} | {len(plain)} | {fate['unparseable']} | {fate['duplicate']} | "
                             f"{fate['invalid']} | {len(got)} | {len(band)} | {gen_tokens} | {solve_tokens} | "
                             f"{1e6 * len(band) / (gen_tokens + solve_tokens):.0f} |")
                print(lines[-1], flush=True)
            dump += [{"variant": spec, "via": o.via, "right": o.right, "problem": o.problem, "solution": o.solution,
                      "answer": o.answer} for o in to_solve if 0 < o.right < s.k]
            print(f"  ({time.perf_counter() - t1:.0f} s)", flush=True)
    finally:
        engine.close()
    if args.dump:
        args.dump.write_text("".join(json.dumps(d) + "\n" for d in dump))
        print(f"{len(dump)} in-band problems in {args.dump}")
    if not args.no_results:
        append_results("Generator yield, open loop", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
