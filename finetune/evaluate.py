"""`evaluate`: pass@1 and pass@k of a model on problems with reference answers.

Problems come from the held-out split (`bundled-eval`) or any seed-style source with a
column mapping (.jsonl/.parquet/hf:NAME; only the problem and answer columns are needed).
Samples go through the project's engines (transformers on CPU, vLLM/OpenAI-compatible via
`[evaluate.engine]`) and answers are judged with math-verify (`pipeline.domains.math.answers.AnswerJudge`).

Prompt: a model without a chat template (the embedded base model) gets the `solve_fewshot`
completion prompt; a model with one (a `sparq finetune` output) gets its chat template,
i.e. exactly the format it was trained on, zero-shot. Intervals: see finetune/metrics.py.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune.config import EvalSection, load_finetune_config
from finetune.errors import FinetuneInputError
from finetune.metrics import pass_at_k_estimate
from finetune.template import CHAT_STOP, chat_prompt_text
from pipeline.prompts import Prompt

Log = Callable[[str], None]
CI_METHOD = "95% percentile bootstrap over problems"


@dataclass(frozen=True)
class EvalProblem:
    problem: str
    answer: str
    index: int  # position among the source's rows, from 0


def load_eval_problems(cfg: EvalSection) -> list[EvalProblem]:
    """Problems and reference answers of `cfg.source`; one-line FinetuneInputError on bad input."""
    from pipeline.store.seeds import SeedError, read_rows

    try:  # the seed reader gives the same column-mapping errors as `sparq seeds`
        rows = read_rows(cfg.source, [cfg.problem, cfg.answer], split=cfg.split)
    except SeedError as exc:
        raise FinetuneInputError(f"eval source {exc.source}: {exc.detail}") from None
    problems = []
    for i, (where, row) in enumerate(rows):
        problem, answer = row.get(cfg.problem), row.get(cfg.answer)
        if isinstance(answer, int | float) and not isinstance(answer, bool):
            answer = str(answer)
        if not isinstance(problem, str) or not problem.strip():
            raise FinetuneInputError(f"eval source {cfg.source}: {where} has no problem in column {cfg.problem!r}")
        if not isinstance(answer, str) or not answer.strip():
            raise FinetuneInputError(f"eval source {cfg.source}: {where} has no answer in column {cfg.answer!r} "
                                     "(evaluation needs reference answers)")
        problems.append(EvalProblem(problem.strip(), answer.strip(), i))
        if cfg.limit and len(problems) >= cfg.limit:
            break
    if not problems:
        raise FinetuneInputError(f"eval source {cfg.source}: no rows")
    return problems


def check_model(model: str, engine_kind: str) -> str | None:
    """The local model directory (None for 'embedded' or a served model); raise if a path is missing."""
    from pipeline.models import EMBEDDED

    if model == EMBEDDED:
        return None
    path = Path(model).expanduser()
    local_looking = model.startswith(("/", ".", "~")) or engine_kind == "transformers"
    if local_looking and not path.is_dir():
        raise FinetuneInputError(f"model {model}: no such directory")
    if path.is_dir() and not (path / "config.json").is_file():
        raise FinetuneInputError(f"model {model}: not a Hugging Face model directory (no config.json)")
    return str(path) if path.is_dir() else None


@dataclass(frozen=True)
class PromptPlan:
    kind: str  # "fewshot" or "chat"
    version: str
    stop: tuple[str, ...]
    render: Callable[[str], Prompt]


def plan_prompts(model: str, model_dir: str | None, cfg: EvalSection) -> PromptPlan:
    """Few-shot for base models, the model's chat template (its training format) otherwise."""
    from pipeline.prompts import load_prompt

    tok = None
    if model_dir is not None:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(model_dir)
    has_template = bool(tok is not None and tok.chat_template) or (tok is None and cfg.engine.kind == "openai"
                                                                   and model != "embedded")
    mode = cfg.prompt if cfg.prompt != "auto" else ("chat" if has_template else "fewshot")
    if mode == "fewshot":
        tpl = load_prompt(cfg.fewshot_prompt)
        if tpl.kind != "completion":
            raise FinetuneInputError(f"evaluate.fewshot_prompt {cfg.fewshot_prompt!r}: expected a completion prompt")
        return PromptPlan("fewshot", tpl.version, tpl.stop, lambda p: tpl.render(problem=p))
    if tok is not None:
        if not tok.chat_template:
            raise FinetuneInputError(f"model {model}: evaluate.prompt = 'chat' but the tokenizer has no chat template")
        return PromptPlan("chat", "chat-template", CHAT_STOP, lambda p: chat_prompt_text(tok, p))
    # A served model: the server applies its own chat template to a message list.
    return PromptPlan("chat", "chat-template", (), lambda p: [{"role": "user", "content": p}])


def evaluate(model: str, *, config: EvalSection | None = None, log: Log = lambda msg: None,
             engine=None) -> dict[str, Any]:
    """Sample `n` answers per problem, judge them, return pass@1/pass@k with 95% intervals (a JSON-able dict).

    `engine`: an engine already serving `model` (rounds share one per model: the solver
    they evaluate is the one that re-scores and solves next); it stays the caller's."""
    from pipeline.domains.math.answers import AnswerJudge
    from pipeline.engines import Sampling, make_engine
    from pipeline.loop.remote import chunk_sampling

    cfg = config or load_finetune_config().evaluate
    model_dir = check_model(model, cfg.engine.kind)
    problems = load_eval_problems(cfg)  # cheap checks before the model loads
    plan = plan_prompts(model, model_dir, cfg)
    t0 = time.perf_counter()
    log(f"evaluating {model} on {len(problems)} problems of {cfg.source} (n={cfg.n}, k={cfg.k}, {plan.kind} prompt)")
    owned = engine is None
    if owned:
        engine = make_engine(dataclasses.replace(cfg.engine, model=model_dir or model), seed=cfg.seed)
    sampling = Sampling(n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens,
                        stop=plan.stop, seed=cfg.seed)
    texts: list[list[str]] = []
    tokens = 0
    chunk = max(1, cfg.engine.batch_size // cfg.n)
    try:
        for i in range(0, len(problems), chunk):
            batch = problems[i : i + chunk]
            # Problem i of the whole set gets seed + i x n (engines.prompt_seed), whatever its
            # chunk: one seed for every chunk gave problem i of chunk c chunk 0's samples.
            outs = engine.complete([plan.render(p.problem) for p in batch], chunk_sampling(sampling, i))
            texts.extend([c.text for c in cs] for cs in outs)
            tokens += sum(c.tokens for cs in outs for c in cs)
            log(f"sampled {len(texts)}/{len(problems)} problems")
    finally:
        if owned:
            engine.close()
    with AnswerJudge(max_workers=2, timeout_s=cfg.verify_timeout_s) as judge:
        verdicts = judge.judge_many([(p.answer, t) for p, t in zip(problems, texts, strict=True)])
    correct = [sum(v.correct) for v in verdicts]
    p1 = pass_at_k_estimate(cfg.n, correct, 1, resamples=cfg.bootstrap, seed=cfg.seed)
    pk = pass_at_k_estimate(cfg.n, correct, cfg.k, resamples=cfg.bootstrap, seed=cfg.seed)
    return {
        "model": model,
        "source": cfg.source,
        "problems": len(problems),
        "n": cfg.n,
        "k": cfg.k,
        "prompt": plan.kind,
        "prompt_version": plan.version,
        "temperature": cfg.temperature,
        "max_tokens": cfg.max_tokens,
        "engine": engine.name,
        "ci_method": f"{CI_METHOD} ({cfg.bootstrap} resamples)",
        "pass@1": p1.as_dict(),
        f"pass@{cfg.k}": pk.as_dict(),
        "tokens": tokens,
        "seconds": round(time.perf_counter() - t0, 2),
        "per_problem": [{"index": p.index, "answer": p.answer, "correct": c, "extracted": list(v.extracted)}
                        for p, c, v in zip(problems, correct, verdicts, strict=True)],
    }


def _cell(est: dict[str, float]) -> str:
    return f"{est['estimate']:.3f} [{est['ci_lo']:.3f}, {est['ci_hi']:.3f}]"


def format_table(results: list[dict[str, Any]]) -> str:
    """A plain-text table, one row per evaluated model (estimates with 95% intervals)."""
    header = ["model", "prompt", "problems", "n", "pass@1 [95% CI]", "pass@k [95% CI]"]
    rows = [[r["model"], r["prompt"], str(r["problems"]), str(r["n"]), _cell(r["pass@1"]),
             f"k={r['k']}: " + _cell(r["pass@" + str(r["k"])])] for r in results]
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=True)]
    lines = ["  ".join(x.ljust(w) for x, w in zip(line, widths, strict=True)).rstrip() for line in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
