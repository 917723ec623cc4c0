"""Fine-tuning and evaluation: bad input fails early with one line; CI math; a tiny real fine-tune (slow)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from finetune.compare import comparison_markdown, comparison_plot, comparison_rows
from finetune.config import load_finetune_config
from finetune.data import load_sft_dataset
from finetune.errors import FinetuneInputError
from finetune.metrics import bootstrap_mean, pass_at_k, pass_at_k_estimate
from flows.cli import main
from pipeline.config import ConfigError
from pipeline.store.seeds import BUNDLED_SEEDS

ROWS = [json.loads(line) for line in BUNDLED_SEEDS.read_text().splitlines()[:8]]


def write_dataset(root: Path, rows: list[dict] | None = None, *, messages: bool = True) -> Path:
    rows = ROWS if rows is None else rows
    (root / "data").mkdir(parents=True)
    cols: dict = {"answer": pa.array([r["answer"] for r in rows], pa.string())}
    if messages:
        msgs = [[{"role": "user", "content": r["problem"]}, {"role": "assistant", "content": r["solution"]}]
                for r in rows]
        cols["messages"] = pa.array(msgs, pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())])))
    pq.write_table(pa.table(cols), root / "data" / "part-000-000001.parquet")
    return root


def one_line_error(capsys, argv: list[str], needle: str) -> None:
    # Bad input fails before any model loads: every way of loading one raises here.
    loaded = AssertionError("a model was loaded before the input was checked")
    # The modules that bind make_engine by name are imported before anything is patched and
    # patched too: a module first imported inside the block would keep the mock after it.
    import pipeline.loop.remote  # noqa: F401
    import pipeline.loop.resources  # noqa: F401

    with (mock.patch("pipeline.engines.make_engine", side_effect=loaded),
          mock.patch("pipeline.loop.remote.make_engine", side_effect=loaded),
          mock.patch("pipeline.loop.resources.make_engine", side_effect=loaded),
          mock.patch("pipeline.models.prepare_embedded_model", side_effect=loaded),
          mock.patch("transformers.PreTrainedModel.from_pretrained", side_effect=loaded)):
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("sparq: error: ") and err.count("\n") == 1, err
    assert needle in err, err


# -- bad input ---------------------------------------------------------------------------------


def test_dataset_without_messages_column(tmp_path: Path, capsys):
    ds = write_dataset(tmp_path / "ds", messages=False)
    one_line_error(capsys, ["finetune", str(ds), "--out", str(tmp_path / "m")], "no 'messages' column")
    assert not (tmp_path / "m").exists()


def test_empty_dataset(tmp_path: Path, capsys):
    ds = write_dataset(tmp_path / "ds", rows=[])
    one_line_error(capsys, ["finetune", str(ds), "--out", str(tmp_path / "m")], "no rows")


def test_missing_dataset_and_dir_without_parquet(tmp_path: Path, capsys):
    one_line_error(capsys, ["finetune", str(tmp_path / "nope"), "--out", str(tmp_path / "m")], "not found")
    (tmp_path / "empty").mkdir()
    one_line_error(capsys, ["finetune", str(tmp_path / "empty"), "--out", str(tmp_path / "m")], "no Parquet files")


def test_bad_messages_rows(tmp_path: Path):
    root = tmp_path / "ds"
    (root / "data").mkdir(parents=True)
    bad = [[{"role": "user", "content": "What is 1 + 1?"}]]  # no assistant turn
    pq.write_table(pa.table({"messages": bad}), root / "data" / "p.parquet")
    with pytest.raises(FinetuneInputError, match=r"p\.parquet: row 1: the last message must be the assistant's"):
        load_sft_dataset(root)


def test_base_model_that_does_not_exist(tmp_path: Path, capsys):
    ds = write_dataset(tmp_path / "ds")
    cfg = tmp_path / "ft.toml"
    cfg.write_text(f'[model]\nbase = "{tmp_path / "no-model"}"\n')
    one_line_error(capsys, ["finetune", str(ds), "--out", str(tmp_path / "m"), "--config", str(cfg)],
                   "no such directory")


def test_output_dir_not_empty(tmp_path: Path, capsys):
    ds = write_dataset(tmp_path / "ds")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "x").write_text("x")
    one_line_error(capsys, ["finetune", str(ds), "--out", str(tmp_path / "m")], "exists and is not empty")


def test_bad_config_key_and_value(tmp_path: Path, capsys):
    ds = write_dataset(tmp_path / "ds")
    cfg = tmp_path / "ft.toml"
    cfg.write_text("[train]\nlerning_rate = 1e-4\n")
    one_line_error(capsys, ["finetune", str(ds), "--out", str(tmp_path / "m"), "--config", str(cfg)],
                   "unknown config key 'train.lerning_rate'")
    cfg.write_text('[train]\nmethod = "qlora"\n')
    one_line_error(capsys, ["finetune", str(ds), "--out", str(tmp_path / "m"), "--config", str(cfg)],
                   "train.method")
    with pytest.raises(ConfigError, match="evaluate.k"):
        load_finetune_config().replace("evaluate", n=2, k=4)


def test_evaluate_model_that_does_not_exist(tmp_path: Path, capsys):
    one_line_error(capsys, ["evaluate", str(tmp_path / "no-model"), "--eval", "bundled-eval"], "no such directory")


def test_evaluate_source_without_answers(tmp_path: Path, capsys):
    src = tmp_path / "eval.jsonl"
    src.write_text('{"problem": "What is 1 + 1?"}\n{"problem": "What is 2 + 2?"}\n')
    one_line_error(capsys, ["evaluate", "embedded", "--eval", str(src)], "no column 'answer'")
    src.write_text('{"problem": "What is 1 + 1?", "answer": ""}\n')
    one_line_error(capsys, ["evaluate", "embedded", "--eval", str(src)], "line 1 has no answer")
    one_line_error(capsys, ["evaluate", "embedded", "--eval", str(tmp_path / "missing.jsonl")], "file not found")


def test_pipeline_config_errors(tmp_path: Path, capsys):
    cfg = tmp_path / "p.toml"
    cfg.write_text('[pipeline]\nrun_dir = "r"\n')
    one_line_error(capsys, ["pipeline", "--config", str(cfg)], "pipeline.dataset_dir")


def test_pipeline_stops_on_an_empty_export(tmp_path: Path, capsys, monkeypatch):
    """Generation that leaves no row after the filters ends in one line naming the export,
    before a model loads (the stages themselves are tested on their own)."""
    import filters.export
    import finetune.train
    import pipeline.loop.generate

    calls = []
    monkeypatch.setattr(pipeline.loop.generate, "run_generation", lambda *a, **k: calls.append("generate"))
    monkeypatch.setattr(filters.export, "export_runs",
                        lambda *a, **k: calls.append("export") or type("R", (), {"data_rows": 0})())
    monkeypatch.setattr(finetune.train, "finetune", lambda *a, **k: calls.append("finetune"))
    cfg = tmp_path / "p.toml"
    cfg.write_text("[pipeline]\n" + "".join(f'{k} = "{tmp_path / k}"\n'
                                            for k in ("run_dir", "dataset_dir", "model_dir", "compare_dir")))
    assert main(["pipeline", "--config", str(cfg)]) == 2
    last = capsys.readouterr().err.splitlines()[-1]  # after the stage progress lines
    assert last.startswith("sparq: error: export ") and "no rows passed the filters" in last
    assert calls == ["generate", "export"]


# -- metrics -----------------------------------------------------------------------------------


def test_pass_at_k_by_hand():
    assert pass_at_k(4, 2, 1) == 0.5
    assert pass_at_k(4, 2, 2) == pytest.approx(1 - 1 / 6)  # 1 - C(2,2)/C(4,2)
    assert pass_at_k(5, 1, 3) == pytest.approx(1 - 4 / 10)  # 1 - C(4,3)/C(5,3)
    assert pass_at_k(3, 0, 3) == 0.0 and pass_at_k(3, 3, 1) == 1.0 and pass_at_k(4, 3, 2) == 1.0
    with pytest.raises(ValueError):
        pass_at_k(2, 3, 1)


def test_bootstrap_interval_by_hand():
    # All problems solved: no spread, the interval collapses on the estimate.
    assert bootstrap_mean([1.0, 1.0, 1.0]).as_dict() == {"estimate": 1.0, "ci_lo": 1.0, "ci_hi": 1.0}
    # 60 of 200 binary problems: the normal-approximation interval is 0.3 +- 1.96 * sqrt(.3 * .7 / 200)
    # = [0.2365, 0.3635]; the percentile bootstrap of a mean agrees to about a percent.
    scores = [1.0] * 60 + [0.0] * 140
    e = bootstrap_mean(scores, resamples=4000, seed=1)
    half = 1.96 * np.sqrt(0.3 * 0.7 / 200)
    assert e.estimate == pytest.approx(0.3)
    assert e.lo == pytest.approx(0.3 - half, abs=0.012) and e.hi == pytest.approx(0.3 + half, abs=0.012)
    assert bootstrap_mean(scores, seed=5) == bootstrap_mean(scores, seed=5)  # seeded: reproducible
    # pass@k per problem, then the bootstrap over problems: (2/4, 0, 4/4) correct -> pass@1 = 0.5.
    p1 = pass_at_k_estimate(4, [2, 0, 4], 1)
    assert p1.estimate == pytest.approx(0.5) and 0 <= p1.lo <= p1.estimate <= p1.hi <= 1


def _fake_result(model: str, p1: float) -> dict:
    est = {"estimate": p1, "ci_lo": max(0.0, p1 - 0.1), "ci_hi": min(1.0, p1 + 0.1)}
    return {"model": model, "source": "bundled-eval", "problems": 4, "n": 2, "k": 2, "prompt": "fewshot",
            "ci_method": "95% percentile bootstrap over problems (2000 resamples)", "pass@1": est, "pass@2": est}


def test_comparison_artifact_content():
    results = {"base": _fake_result("embedded", 0.25), "finetuned": _fake_result("/m", 0.5)}
    rows = comparison_rows(results)
    assert [r["model"] for r in rows] == ["base", "finetuned"] and rows[1]["pass@1"] == 0.5
    md = comparison_markdown(results, "data:image/png;base64,xx")
    assert "pass@1" in md and "0.500 [0.400, 0.600]" in md and "data:image/png" in md
    assert comparison_plot(results)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "paired" not in md  # no per-problem scores: nothing to pair
    # With per-problem scores (4 problems, n = 2): the fine-tuned model gains 1/2 on each.
    results["base"]["per_problem"] = [{"index": i, "correct": c} for i, c in enumerate([0, 1, 0, 1])]
    results["finetuned"]["per_problem"] = [{"index": i, "correct": c} for i, c in enumerate([1, 2, 1, 2])]
    md = comparison_markdown(results)
    assert "pass@1 finetuned - base: +0.500 [+0.500, +0.500], paired over the same 4 problems" in md
    # 2 of the 16 sign patterns are as extreme: p = 1/8, not significant.
    assert "not significant at 0.05" in md


# -- real model (slow) -------------------------------------------------------------------------


@pytest.mark.slow
def test_tiny_lora_finetune_gives_a_loadable_model(tmp_path: Path, capsys):
    from finetune.evaluate import plan_prompts
    from pipeline.config import EngineConfig
    from pipeline.engines import Sampling, make_engine

    ds = write_dataset(tmp_path / "ds")
    cfg = tmp_path / "ft.toml"
    cfg.write_text("[train]\nmax_steps = 2\nbatch_size = 2\nmax_length = 64\n[lora]\nr = 4\nalpha = 8\n")
    out = tmp_path / "model"
    t0 = time.perf_counter()
    assert main(["finetune", str(ds), "--out", str(out), "--config", str(cfg)]) == 0
    captured = capsys.readouterr()
    print(f"finetune: {time.perf_counter() - t0:.1f} s; {captured.out.strip()}")
    assert "step 1/2: loss" in captured.err and "step 2/2" in captured.err  # progress lines
    for name in ("config.json", "model.safetensors", "tokenizer.json", "train_log.jsonl", "finetune_config.toml"):
        assert (out / name).is_file(), name
    assert not any(p.name.startswith("adapter") for p in out.iterdir())  # LoRA merged, no PEFT needed to load
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert sum("loss" in e for e in log) == 2 and all(np.isfinite(e["loss"]) for e in log if "loss" in e)
    resolved = load_finetune_config(out / "finetune_config.toml")  # the resolved config loads back
    assert resolved.train.max_steps == 2 and resolved.lora.r == 4
    summary = json.loads((out / "finetune_summary.json").read_text())
    print(f"mean step time: {summary['step_seconds']:.1f} s")

    # The engine loads MODEL_DIR directly, and evaluation prompts with the training template.
    plan = plan_prompts(str(out), str(out), load_finetune_config().evaluate)
    assert plan.kind == "chat" and plan.render("What is 2 + 3?") == "Problem: What is 2 + 3?\nSolution:"
    engine = make_engine(EngineConfig(kind="transformers", model=str(out)))
    try:
        outs = engine.complete([plan.render("What is 2 + 3?")], Sampling(n=1, temperature=0, max_tokens=4))
    finally:
        engine.close()
    assert outs[0][0].tokens >= 1


@pytest.mark.ci
# Long (about 53 s): a CI variant, for make test's 15-minute budget on 2 cores; evaluate() runs in every make test
# on a recording engine (test_evaluate_gives_every_sample_its_own_seed).
@pytest.mark.slow
@pytest.mark.vllm  # evaluate() on in-process vLLM
def test_evaluate_four_problems_n2(tmp_path: Path, capsys):
    cfg = tmp_path / "ev.toml"
    cfg.write_text("[evaluate]\nmax_tokens = 24\nbootstrap = 500\n")
    out = tmp_path / "eval.json"
    t0 = time.perf_counter()
    argv = ["evaluate", "embedded", "--eval", "bundled-eval", "--limit", "4", "--n", "2", "--k", "2",
            "--config", str(cfg), "--out", str(out)]
    assert main(argv) == 0
    table = capsys.readouterr().out
    print(f"evaluate: {time.perf_counter() - t0:.1f} s")
    assert "pass@1 [95% CI]" in table
    result = json.loads(out.read_text())
    assert result["problems"] == 4 and result["n"] == 2 and result["prompt"] == "fewshot"
    for key in ("pass@1", "pass@2"):
        e = result[key]
        assert 0 <= e["ci_lo"] <= e["estimate"] <= e["ci_hi"] <= 1
    assert len(result["per_problem"]) == 4 and all(0 <= p["correct"] <= 2 for p in result["per_problem"])


def test_flow_module_imports_and_keys():
    from flows.tuning import artifact_key, finetune_flow

    assert artifact_key("/tmp/My Model_1") == "sparq-finetune-my-model-1"
    assert finetune_flow.name == "sparq-finetune"


def test_paired_difference_detects_a_real_gap_and_not_noise():
    from finetune.metrics import paired_difference

    rng = np.random.default_rng(3)
    difficulty = rng.uniform(0, 1, size=120)
    # Same problems, model a better by 0.15 everywhere (clipped): a clear, significant gap.
    b = difficulty
    a = np.clip(difficulty + 0.15, 0, 1)
    res = paired_difference(a, b, resamples=4000)
    assert res.difference == pytest.approx(float(np.mean(a - b)))
    assert res.lo > 0 and res.significant and res.p_value < 0.001
    # Two equal models whose per-problem scores differ by symmetric noise: no significance.
    noise = rng.choice([-0.25, 0.0, 0.25], size=120)
    c = np.clip(difficulty + noise, 0, 1)
    res0 = paired_difference(difficulty, difficulty, resamples=2000)
    assert res0.difference == 0 and res0.p_value == 1.0 and not res0.significant
    res1 = paired_difference(c, difficulty, resamples=4000, seed=1)
    assert res1.lo < 0 < res1.hi or not res1.significant
    # By hand: differences (+1, +1, +1, +1, +1) on 5 problems; 2 of the 32 sign patterns are as
    # extreme (all + or all -), so the exact two-sided p-value is 1/16.
    res2 = paired_difference([1, 1, 1, 1, 1], [0, 0, 0, 0, 0], resamples=20000, seed=2)
    assert res2.p_value == pytest.approx(1 / 16, abs=0.01)
    with pytest.raises(ValueError, match="equal"):
        paired_difference([1, 0], [1])


def test_evaluate_gives_every_sample_its_own_seed(monkeypatch):
    # Chunks of problems used to share one seed: problem i of chunk c repeated problem i of
    # chunk 0's samples. Recorded here as the engines assign seeds (engines.prompt_seed).
    import dataclasses

    import pipeline.engines as engines
    from finetune.config import load_finetune_config
    from finetune.evaluate import PromptPlan, evaluate
    from pipeline.engines import Completion
    from pipeline.engines.base import prompt_seed

    seeds: list[int] = []

    class Recorder:
        name = "recorder"

        def complete(self, prompts, sampling):
            for i in range(len(prompts)):
                seeds.extend(prompt_seed(sampling, i) + j for j in range(sampling.n))
            return [[Completion(" The answer is 1.", 5)] * sampling.n for _ in prompts]

        def close(self):
            pass

    monkeypatch.setattr(engines, "make_engine", lambda cfg, seed=0: Recorder())
    monkeypatch.setattr("finetune.evaluate.check_model", lambda model, kind: None)
    monkeypatch.setattr("finetune.evaluate.plan_prompts",
                        lambda model, model_dir, cfg: PromptPlan("completion", "test", (), lambda p: p))
    base = load_finetune_config().evaluate
    cfg = dataclasses.replace(base, limit=12, n=4, k=2, bootstrap=50,
                              engine=dataclasses.replace(base.engine, batch_size=8))  # 2 problems a chunk
    evaluate("embedded", config=cfg)
    assert len(seeds) == 12 * 4 and len(set(seeds)) == len(seeds)
