"""Adaptive solving vs fixed k = 16: attempts saved and agreement of accept/reject decisions.

    .venv/bin/python bench/adaptive.py                 # simulation, then 12 seed problems on the real model
    .venv/bin/python bench/adaptive.py --no-real       # simulation only

1. Simulation. True solve rates follow SPARQ's observation that most generated problems
   are solved always or never: 45% sr = 0, 20% sr = 1, 35% spread uniformly over
   (0.05, 0.95). Each problem's 16 outcomes are drawn once; the fixed rule uses all 16,
   the adaptive rule (pipeline.loop.solverate.next_round, the campaign's defaults: rounds of
   4, delta 0.05, Beta(0.1, 0.1) prior, at least 4 attempts) consumes them in order
   until settled, so both decide on the same coins. Two adaptive decisions are scored:
   the campaign's (quality > 0 iff c/n is in the band, pipeline/loop/campaign.py) and
   `decide_in_band` (the predictive decision the stopping rule settled on).
2. Real model. 12 bundled seed problems (every 30th of pipeline/data/seeds/seeds.jsonl), solved
   with the solve_fewshot prompt by the embedded model at the default solver settings:
   16 attempts each (fixed), judged by the AnswerJudge; the adaptive rule replayed on
   those outcomes gives the paired agreement. Then a live adaptive run (its own rounds
   of 4 through the engine, as the campaign does) gives the attempts it really spends.
"""

from __future__ import annotations

import argparse
import functools
import json
import time

import numpy as np
from benchlib import add_threads_arg, append_results, fmt_list, median, set_threads

from pipeline.loop.solverate import AdaptiveConfig, decide_in_band, in_band, next_round

LO, HI = 0.1, 0.9


@functools.cache
def _next_round(c: int, n: int, cfg: AdaptiveConfig) -> int:
    # A pure function of (c, n): caching it makes 100K simulated problems take seconds.
    return next_round(c, n, cfg, LO, HI)


@functools.cache
def _decide(c: int, n: int, cfg: AdaptiveConfig) -> bool:
    return decide_in_band(c, n, cfg.k_max, LO, HI, cfg.prior_a, cfg.prior_b)


def run_adaptive(outcomes: np.ndarray, cfg: AdaptiveConfig) -> tuple[int, int]:
    """Consume pre-drawn outcomes in order until settled: (correct, attempts)."""
    c = n = 0
    while (step := _next_round(c, n, cfg)) > 0:
        c += int(outcomes[n : n + step].sum())
        n += step
    return c, n


def decisions(outcomes: np.ndarray, cfg: AdaptiveConfig) -> dict[str, float]:
    """Fixed-k vs adaptive on the same outcome rows (problems x k_max)."""
    fixed = np.array([in_band(row.sum() / cfg.k_max, LO, HI) for row in outcomes])
    used = agree_campaign = agree_predictive = 0
    for row, f in zip(outcomes, fixed, strict=True):
        c, n = run_adaptive(row, cfg)
        used += n
        agree_campaign += in_band(c / n, LO, HI) == f
        agree_predictive += _decide(c, n, cfg) == f
    m = len(outcomes)
    return {"saved": 1 - used / (m * cfg.k_max), "agree_campaign": agree_campaign / m,
            "agree_predictive": agree_predictive / m, "in_band_fixed": float(fixed.mean())}


def simulate(n_problems: int, seeds: list[int], cfg: AdaptiveConfig) -> list[str]:
    runs = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        kind = rng.random(n_problems)
        sr = np.where(kind < 0.45, 0.0, np.where(kind < 0.65, 1.0, rng.uniform(0.05, 0.95, n_problems)))
        outcomes = rng.random((n_problems, cfg.k_max)) < sr[:, None]
        runs.append(decisions(outcomes, cfg))
        r = runs[-1]
        print(f"seed {seed}: saved {r['saved']:.3f}, agreement campaign rule {r['agree_campaign']:.4f}, "
              f"predictive rule {r['agree_predictive']:.4f}, in band (fixed) {r['in_band_fixed']:.3f}", flush=True)
    saved = [r["saved"] for r in runs]
    camp = [r["agree_campaign"] for r in runs]
    pred = [r["agree_predictive"] for r in runs]
    return [f"adaptive vs fixed k={cfg.k_max}, simulated ({n_problems} problems x {len(seeds)} seeds; sr: 45% 0, "
            f"20% 1, 35% U(0.05, 0.95); rounds of {cfg.round_size}, delta {cfg.delta}, Beta({cfg.prior_a}, "
            f"{cfg.prior_b})): attempts saved median {median(saved):.3f} {fmt_list(saved)} (target >= 0.40); "
            f"decision agreement, campaign rule (c/n in band) median {median(camp):.4f} {fmt_list(camp, 4)}, "
            f"predictive rule (decide_in_band) median {median(pred):.4f} {fmt_list(pred, 4)} (target >= 0.95)"]


def real_model(n_seeds: int, cfg: AdaptiveConfig, threads: str) -> list[str]:
    from pipeline.config import load_config
    from pipeline.domains.math.answers import AnswerJudge
    from pipeline.engines import Sampling, make_engine
    from pipeline.prompts import load_prompt
    from pipeline.store.seeds import BUNDLED_SEEDS

    rows = [json.loads(line) for line in BUNDLED_SEEDS.read_text().splitlines()]
    step = max(1, len(rows) // n_seeds)
    seeds = rows[::step][:n_seeds]
    config = load_config()
    s = config.solver
    prompt = load_prompt(s.prompt)
    engine = make_engine(config.engine, seed=config.run.seed)
    judge = AnswerJudge(timeout_s=s.verify_timeout_s)
    prompts = [prompt.render(problem=r["problem"]) for r in seeds]

    def sampling(n: int, seed: int) -> Sampling:
        return Sampling(n=n, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens, stop=prompt.stop,
                        seed=seed)

    try:
        judge.start()
        t0 = time.perf_counter()
        outs = engine.complete(prompts, sampling(cfg.k_max, 1000))
        fixed_s = time.perf_counter() - t0
        verdicts = judge.judge_many([(r["answer"], [o.text for o in os_]) for r, os_ in zip(seeds, outs, strict=True)])
        outcomes = np.array([v.correct for v in verdicts], dtype=bool)
        paired = decisions(outcomes, cfg)
        print(f"real fixed k={cfg.k_max}: solve rates {[round(float(x), 2) for x in outcomes.mean(axis=1)]} "
              f"in {fixed_s:.1f} s; paired: {paired}", flush=True)

        # Live adaptive run: rounds through the engine, as Campaign.solve does.
        texts: list[list[str]] = [[] for _ in seeds]
        correct = [0] * len(seeds)
        round_no = 0
        t0 = time.perf_counter()
        while True:
            wants = [next_round(correct[i], len(texts[i]), cfg, LO, HI) for i in range(len(seeds))]
            todo = [i for i, w in enumerate(wants) if w > 0]
            if not todo:
                break
            for n in sorted({wants[i] for i in todo}):
                group = [i for i in todo if wants[i] == n]
                got = engine.complete([prompts[i] for i in group], sampling(n, 2000 + round_no))
                for i, os_ in zip(group, got, strict=True):
                    texts[i].extend(o.text for o in os_)
            for i, v in zip(todo, judge.judge_many([(seeds[i]["answer"], texts[i]) for i in todo]), strict=True):
                correct[i] = sum(v.correct)
            round_no += 1
        live_s = time.perf_counter() - t0
    finally:
        judge.close()
        engine.close()
    fixed_dec = [in_band(row.sum() / cfg.k_max, LO, HI) for row in outcomes]
    live_used = sum(len(t) for t in texts)
    live_agree = np.mean([in_band(c / len(t), LO, HI) == f for c, t, f in zip(correct, texts, fixed_dec, strict=True)])
    return [f"adaptive vs fixed k={cfg.k_max} on the real embedded model ({len(seeds)} bundled seed problems, "
            f"solver temperature {s.temperature}, max_tokens {s.max_tokens}, {threads}): fixed solve rates "
            f"{fmt_list(outcomes.mean(axis=1).tolist(), 2)}, {int(sum(fixed_dec))} in band; adaptive replayed on "
            f"the same outcomes: attempts saved {paired['saved']:.3f}, agreement campaign rule "
            f"{paired['agree_campaign']:.3f}, predictive rule {paired['agree_predictive']:.3f}; live adaptive run "
            f"(own samples): {live_used} attempts vs {cfg.k_max * len(seeds)} (saved "
            f"{1 - live_used / (cfg.k_max * len(seeds)):.3f}) in {live_s:.1f} s vs {fixed_s:.1f} s, decision "
            f"agreement with the fixed run {live_agree:.3f} (independent samples, so mid-rate problems can differ)"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=20_000, help="simulated problems per seed")
    ap.add_argument("--seeds", type=int, default=5, help="simulation repeats")
    ap.add_argument("--real-seeds", type=int, default=12, help="bundled seed problems solved by the real model")
    ap.add_argument("--no-real", action="store_true")
    ap.add_argument("--no-results", action="store_true", help="do not append to bench/results.md")
    add_threads_arg(ap)
    args = ap.parse_args()
    threads = set_threads(args.threads)
    cfg = AdaptiveConfig()  # the campaign's defaults (pipeline/configs/default.toml), k_max 16
    lines = simulate(args.problems, list(range(args.seeds)), cfg)
    if not args.no_real:
        lines += real_model(args.real_seeds, cfg, threads)
    for line in lines:
        print(line)
    if not args.no_results:
        append_results("bench/adaptive.py", lines)


if __name__ == "__main__":
    main()
