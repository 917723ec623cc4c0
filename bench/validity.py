"""Validity: the checks and the gate against the labelled set, and the same campaign with
the gate off and on.

    .venv/bin/python bench/validity.py                       # labels + campaigns (about 15 minutes)
    .venv/bin/python bench/validity.py --parts labels        # the labelled set only
    .venv/bin/python bench/validity.py --parts solvers       # solver prompts on labelled campaigns (~20 min)
    .venv/bin/python bench/validity.py --score LABELS.jsonl  # add hand labels of the accepted problems

Part `labels` (data/validity/labels.jsonl, its `test` part unless --split): precision and
recall of each deterministic check and of the gate, where "positive" means "invalid" (a
check's recall = the share of invalid rows it rejects; the gate keeps a valid row when no
check and not the verifier rejects it). The verifier runs as the campaign runs it (the
campaign's engine, the [verifier] prompt, sampling and share, answers judged by the
project's judge) on every labelled row the checks pass, with --verifier-m attempts even
where the config turns it off (m = 0, the default), at the config's share and at 1.0. In a campaign it re-solves only
rows that could enter the archive (quality > 0), so on the labelled set it sees more rows
than it would: its valid-kept figure here is a lower bound.

Part `solvers`: every blind-labelled problem of the campaigns (bench/validity-labels/), each
solved k = 8 times (the config's solver sampling) with each prompt of --solver-prompts; for
valid and invalid problems, how many are solved by none, by all, or by some (in SPARQ's band:
what the archive can take), and the tokens. A better solver puts more valid problems in the
band and keeps wrong references out of it.

Part `campaigns`: the packaged default config (or --config) run twice in this process on
one engine, with `[validity] gate = "none"` (SPARQ exactly) and `"archive"` (the default),
the same seed and seeds. It prints coverage, QD score, tokens (generator + solver +
verifier) and two counts of accepted problems: archived (generated candidates that entered
the archive, the elites whose valid share is the target) and solved (status ok and
quality > 0: what SPARQ's quality filter accepts, the count of the validity baseline, 7
valid of 29 in the default run). It writes every problem of either kind of both runs,
shuffled and without its run, to `--out/to-label.jsonl` for labelling by hand
(data/validity/raw/GUIDE.md). Rerun with `--score FILE` (the labels, one {"item", "label"}
per line) to print, for each run and each count, the valid share and the valid problems
per million tokens.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

from benchlib import add_threads_arg, append_results, set_threads

from pipeline.config import load_config
from pipeline.domains.math.answers import AnswerJudge
from pipeline.domains.math.repair import repair_reference
from pipeline.domains.math.validity import check_reference
from pipeline.engines import Sampling, make_engine
from pipeline.loop.generate import run_generation
from pipeline.prompts import load_prompt
from pipeline.read.inspection import ARCHIVED
from pipeline.store.seeds import load_seeds
from pipeline.store.storage import RunDir

REPO = Path(__file__).resolve().parents[1]
LABELS = REPO / "data" / "validity" / "labels.jsonl"
REPAIRED = REPO / "data" / "validity" / "repaired.jsonl"  # hand labels of corrected references
GATES = ("none", "archive")


def _pr(flags: list[tuple[bool, bool]]) -> tuple[int, int, int, int]:
    """(true positives, rejected, invalid, valid kept) of (is_invalid, rejected) pairs."""
    tp = sum(inv and rej for inv, rej in flags)
    rejected = sum(rej for _, rej in flags)
    invalid = sum(inv for inv, _ in flags)
    kept = sum(not inv and not rej for inv, rej in flags)
    return tp, rejected, invalid, kept


def _line(name: str, flags: list[tuple[bool, bool]]) -> str:
    tp, rejected, invalid, kept = _pr(flags)
    valid = len(flags) - invalid
    precision = f"{tp / rejected:.3f}" if rejected else "n/a"
    return (f"| {name} | {rejected} | {precision} ({tp}/{rejected}) | {tp / invalid:.3f} ({tp}/{invalid}) | "
            f"{kept / valid:.3f} ({kept}/{valid}) |")


def verify_rows(engine, config, rows: list[dict], m: int) -> list[dict]:
    """The verifier's majority on each row (m attempts), as Campaign.verify asks for it."""
    v = config.verifier
    prompt = load_prompt(v.prompt)
    sampling = Sampling(n=m, temperature=v.temperature, top_p=v.top_p, max_tokens=v.max_tokens,
                        stop=prompt.stop, seed=config.run.seed + 300)
    outs = engine.complete([prompt.render(problem=r["problem"]) for r in rows], sampling)
    with AnswerJudge() as judge:
        verdicts = judge.judge_many([(r["answer"], [o.text for o in o_s]) for r, o_s in zip(rows, outs, strict=True)])
    return [{"contradicts": vd.reference_agrees is False, "share": vd.majority_share,
             "tokens": sum(o.tokens for o in o_s)} for vd, o_s in zip(verdicts, outs, strict=True)]


LABELLED_CAMPAIGNS = REPO / "bench" / "validity-labels"


def labelled_campaign_rows() -> list[dict]:
    """Every blind-labelled problem of the campaigns, once (the first label of a problem)."""
    rows, seen = [], set()
    for items in sorted(LABELLED_CAMPAIGNS.glob("*-items.jsonl")):
        labels_path = items.with_name(items.name.replace("-items", "-labels"))
        labels = {r["item"]: r["label"] for r in map(json.loads, labels_path.read_text().splitlines()) if r}
        for it in map(json.loads, items.read_text().splitlines()):
            if it["problem"] not in seen and it["item"] in labels:
                seen.add(it["problem"])
                rows.append({**it, "label": labels[it["item"]]})
    return rows


def part_solvers(engine, config, prompts: list[str]) -> list[str]:
    rows = labelled_campaign_rows()
    s = config.solver
    n_valid = sum(r["label"] == "valid" for r in rows)
    lines = [f"Solver prompts on the {len(rows)} blind-labelled campaign problems ({n_valid} valid), k = {s.k}, "
             f"temperature {s.temperature}, max_tokens {s.max_tokens}:", "",
             "| prompt | valid: none solved | valid: in band | valid: all solved | invalid: none | invalid: in band "
             "| invalid: all | valid share in band | tokens |", "|---|---|---|---|---|---|---|---|---|"]
    for name in prompts:
        prompt = load_prompt(name)
        sampling = Sampling(n=s.k, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens,
                            stop=prompt.stop, seed=config.run.seed + 11)
        outs = engine.complete([prompt.render(problem=r["problem"]) for r in rows], sampling)
        with AnswerJudge() as judge:
            verdicts = judge.judge_many([(r["answer"], [o.text for o in o_s])
                                         for r, o_s in zip(rows, outs, strict=True)])
        c: Counter = Counter()
        for r, vd in zip(rows, verdicts, strict=True):
            right = sum(vd.correct)
            c[(r["label"], "none" if right == 0 else "all" if right == len(vd.correct) else "band")] += 1
        band = c[("valid", "band")] + c[("invalid", "band")]
        tokens = sum(o.tokens for o_s in outs for o in o_s)
        lines.append(f"| `{name}` | {c[('valid', 'none')]} | {c[('valid', 'band')]} | {c[('valid', 'all')]} | "
                     f"{c[('invalid', 'none')]} | {c[('invalid', 'band')]} | {c[('invalid', 'all')]} | "
                     f"{c[('valid', 'band')] / max(1, band):.3f} | {tokens} |")
        print(lines[-1], flush=True)
    return lines


def part_labels(engine, config, split: str, verifier_m: int) -> list[str]:
    rows = [json.loads(line) for line in LABELS.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if split == "all" or r["split"] == split]
    results = [check_reference(r["problem"], r["solution"], r["answer"], config.validity.checks) for r in rows]
    inv = [r["label"] == "invalid" for r in rows]
    lines = [f"Labelled set: {LABELS.relative_to(REPO)}, split {split}: {len(rows)} rows, "
             f"{sum(inv)} invalid, {len(rows) - sum(inv)} valid. Positive = invalid.", "",
             "| check | rejects | precision | recall (invalid rejected) | valid kept |", "|---|---|---|---|---|"]
    for name in config.validity.checks:
        lines.append(_line(f"`{name}`", [(i, name in res.failed) for i, res in zip(inv, results, strict=True)]))
    checks = [(i, not res.valid) for i, res in zip(inv, results, strict=True)]
    lines.append(_line("all deterministic checks", checks))
    passed = [r for r, res in zip(rows, results, strict=True) if res.valid]
    t0 = time.perf_counter()
    verdicts = verify_rows(engine, config, passed, verifier_m) if passed and verifier_m > 0 else []
    by_id = {r["id"]: vd for r, vd in zip(passed, verdicts, strict=True)} if verdicts else {}
    gates = {config.verifier.share: checks}
    for share in sorted({config.verifier.share, 1.0}) if verdicts else []:  # --verifier-m 0: no verifier rows
        rejects = [(i, r["id"] in by_id and by_id[r["id"]]["contradicts"] and by_id[r["id"]]["share"] >= share)
                   for i, r in zip(inv, rows, strict=True)]
        lines.append(_line(f"verifier (the campaign's engine, m = {verifier_m}, share >= {share}; on the "
                           f"{len(passed)} rows the checks pass)", [f for f, r in zip(rejects, rows, strict=True)
                                                                    if r["id"] in by_id]))
        gates[share] = [(i, c or v) for (i, c), (_, v) in zip(checks, rejects, strict=True)]
        lines.append(_line(f"checks, then the verifier at share >= {share}", gates[share]))
    on = config.verifier.m > 0 and config.validity.gate != "none"
    gate = gates[config.verifier.share] if on else checks
    lines.append(_line(f"**the gate as configured** ({'checks + verifier' if on else 'checks; verifier m = 0'})",
                       gate))
    # The bundled seeds: valid problems written for this project, harder than the embedded
    # model's, so a check tuned on its output that rejects them would reject a stronger
    # generator's valid problems too.
    seeds = load_seeds(config.seeds)
    kept = sum(check_reference(s.problem, s.solution, s.answer, config.validity.checks).valid for s in seeds)
    lines.append(f"| the deterministic checks on the {len(seeds)} bundled seeds (all valid but one: "
                 f"1000 / 400 = 2 laps) | {len(seeds) - kept} | | | {kept / len(seeds):.3f} ({kept}/{len(seeds)}) |")
    cats = Counter(r["category"] for r, (_, rej) in zip(rows, gate, strict=True) if r["label"] == "invalid" and not rej)
    lines += ["", f"Invalid rows the configured gate lets through, by category: {dict(cats.most_common())}; "
              f"verifier time {time.perf_counter() - t0:.0f} s, {sum(vd['tokens'] for vd in verdicts)} tokens."]
    return lines + [""] + repair_lines(config, rows, results)


def repair_lines(config, rows: list[dict], results: list) -> list[str]:
    """[validity] repair (on or off in the config) on the rows the checks reject: how many it corrects so that every
    check passes, and how many of those the hand labels of the corrected text
    (data/validity/repaired.jsonl) call valid, with those labels' other source, the
    rejected candidates of the labelled campaigns (bench/validity-labels/)."""
    labels = {(r["problem"], r["solution"], r["answer"]): r for r in
              (json.loads(line) for line in REPAIRED.read_text().splitlines() if line.strip())}
    fixed = []
    for r, res in zip(rows, results, strict=True):
        if res.valid:
            continue
        rep = repair_reference(r["problem"], r["solution"], r["answer"])
        if rep and check_reference(r["problem"], rep.solution, rep.answer, config.validity.checks).valid:
            fixed.append(labels.get((r["problem"], rep.solution, rep.answer)))
    known = [f for f in fixed if f is not None]
    here = sum(f["label"] == "valid" for f in known)
    every = list(labels.values())
    runs = [r for r in every if not r["source"].startswith("labels:")]
    line = (f"Repair ([validity] repair): of the {sum(not res.valid for res in results)} rows the checks reject here, "
            f"{len(fixed)} are corrected and then pass every check; {here} of the {len(known)} with hand labels of "
            f"the corrected text are valid ({here / max(1, len(known)):.3f})")
    if len(known) < len(fixed):
        line += f"; {len(fixed) - len(known)} corrected texts have no label yet ({REPAIRED.relative_to(REPO)})"
    ok_runs = sum(r["label"] == "valid" for r in runs)
    return [line + ".", f"Corrected candidates of the labelled campaigns' rejected rows: {ok_runs} of {len(runs)} "
            f"valid ({ok_runs / max(1, len(runs)):.3f}); all labelled corrections: "
            f"{sum(r['label'] == 'valid' for r in every)} of {len(every)}."]


def _accepted(run_dir: Path) -> tuple[list[dict], list[dict], dict]:
    """(archived, solved, tokens) of a run's generated candidates. Archived: status ok and
    entered the archive (new or improved a cell). Solved: status ok and quality > 0, the
    problems SPARQ's quality filter accepts and the count the validity baseline used
    (7 valid of 29 such problems in the default run). With the gate on, an invalid candidate
    has status `invalid`, so it is in neither."""
    cands = RunDir(run_dir).read_candidates().to_pylist()
    gen = [c for c in cands if c["step"] > 0]
    acc = [c for c in gen if c["status"] == "ok" and c["archive_outcome"] in ARCHIVED]
    solved = [c for c in gen if c["status"] == "ok" and (c["quality"] or 0) > 0]
    tokens = {k: sum(c[k] or 0 for c in gen) for k in ("gen_tokens", "solve_tokens", "verify_tokens")}
    return acc, solved, tokens


def part_campaigns(engine, config, out: Path, steps: int | None, gates: tuple[str, ...] = GATES) -> list[str]:
    runs = {}
    for gate in gates:
        cfg = config.replace("validity", gate=gate)
        if steps:
            cfg = cfg.replace("run", steps=steps)
        run_dir = out / f"gate-{gate}"
        t0 = time.perf_counter()
        summary = run_generation(cfg, run_dir, engine=engine, show_bar=False,
                                 progress=lambda m, g=gate: print(f"  gate={g}: {m}", flush=True))
        runs[gate] = (summary, time.perf_counter() - t0, run_dir)
    items = []
    for gate, (_, _, run_dir) in runs.items():
        acc, solved, _ = _accepted(run_dir)
        archived, ok = {c["id"] for c in acc}, {c["id"] for c in solved}
        union = {c["id"]: c for c in solved + acc}
        items += [{"gate": gate, "id": c["id"], "archived": c["id"] in archived, "solved": c["id"] in ok,
                   "problem": c["problem"], "solution": c["solution"], "answer": c["answer"]} for c in union.values()]
    # One file for the reader: shuffled, the run left out; the key maps items back.
    random.Random(0).shuffle(items)
    seen: dict[str, int] = {}
    key, blind = [], []
    for it in items:  # a problem accepted by both runs is labelled once
        pid = it["problem"]
        if pid not in seen:
            seen[pid] = len(blind)
            blind.append({"item": len(blind), "problem": it["problem"], "solution": it["solution"],
                          "answer": it["answer"]})
        key.append({"item": seen[pid], "gate": it["gate"], "id": it["id"], "archived": it["archived"],
                    "solved": it["solved"]})
    (out / "to-label.jsonl").write_text("".join(json.dumps(b) + "\n" for b in blind))
    (out / "key.jsonl").write_text("".join(json.dumps(k) + "\n" for k in key))
    lines = ["| gate | steps | candidates | archived | archived, passing the checks | solved (ok, quality > 0) "
             "| coverage | QD score | tokens (gen + solve + verify) | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for gate, (s, wall, run_dir) in runs.items():
        acc, solved, tok = _accepted(run_dir)
        passing = sum(c["valid"] is not False for c in acc)
        lines.append(f"| {gate} | {s['steps']} | {s['candidates']} | {len(acc)} | {passing} | {len(solved)} | "
                     f"{s['coverage']:.4f} | {s['qd_score']:.3f} | {sum(tok.values())} ({tok['gen_tokens']} + "
                     f"{tok['solve_tokens']} + {tok['verify_tokens']}) | {wall:.0f} |")
    lines += ["", f"Problems to label by hand (archived and solved, both runs): {len(blind)} in "
              f"{out / 'to-label.jsonl'} (score them with --score)."]
    return lines


def score(out: Path, labels_path: Path) -> list[str]:
    labels = {r["item"]: r["label"] for r in map(json.loads, labels_path.read_text().splitlines()) if r}
    key = [json.loads(line) for line in (out / "key.jsonl").read_text().splitlines()]
    missing = sorted({k["item"] for k in key} - set(labels))
    if missing:
        sys.exit(f"error: {labels_path} has no label for items {missing[:10]}{' ...' if len(missing) > 10 else ''} "
                 f"of {out / 'key.jsonl'}")
    lines = ["| gate | problems | counted | labelled valid | valid share | tokens | valid per million tokens |",
             "|---|---|---|---|---|---|---|"]
    for gate in GATES:
        if not (out / f"gate-{gate}").is_dir():
            continue  # a --gates run of the other gate only
        acc, solved, tok = _accepted(out / f"gate-{gate}")
        total = sum(tok.values())
        ks = [k for k in key if k["gate"] == gate]
        # Key files written before `archived` and `solved` were recorded list archived problems only.
        for name, rows, keep in (("archived", acc, lambda k: k.get("archived", True)),
                                 ("solved (ok, quality > 0)", solved, lambda k: k.get("solved", False))):
            counted = [k for k in ks if keep(k)]
            if not counted:
                continue
            valid = sum(labels[k["item"]] == "valid" for k in counted)
            lines.append(f"| {gate} | {name} | {len(rows)} | {valid} | {valid / len(counted):.3f} | {total} | "
                         f"{1e6 * valid / total:.0f} |")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", nargs="+", default=["labels", "campaigns"], choices=["labels", "solvers", "campaigns"])
    ap.add_argument("--solver-prompts", nargs="+", default=["solve_fewshot", "solve_worked"],
                    help="part solvers: the prompts compared (names or .toml paths)")
    ap.add_argument("--split", default="test", choices=["dev", "test", "all"], help="labelled rows reported")
    ap.add_argument("--verifier-m", type=int, default=4,
                    help="verifier attempts on the labelled rows (whatever the config's m)")
    ap.add_argument("--config", default=None, help="campaign config (default: the packaged default)")
    ap.add_argument("--steps", type=int, default=None, help="campaign commits (default: the config's)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "validity-runs", help="run directories")
    ap.add_argument("--gates", nargs="+", default=list(GATES), choices=list(GATES),
                    help="campaigns: the gates run (default both)")
    ap.add_argument("--score", type=Path, default=None, help="hand labels of --out/to-label.jsonl")
    ap.add_argument("--no-results", action="store_true", help="do not append to bench/results.md")
    add_threads_arg(ap)
    args = ap.parse_args()
    if args.score is not None:
        lines = score(args.out, args.score)
        print("\n".join(lines))
        if not args.no_results:
            append_results("Validity: hand-labelled accepted problems, gate none against archive", lines)
        return 0
    threads = set_threads(args.threads)
    config = load_config(args.config)
    if "campaigns" in args.parts and args.out.exists() and any(args.out.iterdir()):
        sys.exit(f"error: {args.out} is not empty; pass another --out or remove it")
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    engine = make_engine(config.engine, seed=config.run.seed)
    print(f"engine {engine.name} up in {time.perf_counter() - t0:.0f} s ({threads})", flush=True)
    lines: list[str] = []
    try:
        if "labels" in args.parts:
            lines += part_labels(engine, config, args.split, args.verifier_m) + [""]
            print("\n".join(lines), flush=True)
        if "solvers" in args.parts:
            lines += part_solvers(engine, config, args.solver_prompts) + [""]
        if "campaigns" in args.parts:
            camp = part_campaigns(engine, config, args.out, args.steps, tuple(args.gates))
            print("\n".join(camp), flush=True)
            lines += camp
    finally:
        engine.close()
    if not args.no_results:
        append_results("Validity: the checks and the gate on the labelled set; gate none against archive", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
