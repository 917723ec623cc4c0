"""A refused request fails its candidate, never the run (pipeline/loop/failures.py).

The scripted engine refuses every prompt that holds a marker, as a real engine refuses a
prompt over its context: seeds with the marker make refused mutation requests, and one
scripted mutation in ten puts it into its problem, so that problem's solve request is
refused. Both modes must commit every such candidate as `failed` with its reason, lose and
duplicate nothing, keep archive = re-derivation, and resume; refusals with no answer in
between stop the run with one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.compute as pc
import pytest

from flows.cli import main
from pipeline.config import load_config
from pipeline.engines import RequestError, Sampling
from pipeline.engines.base import complete_each
from pipeline.engines.scripted import ScriptedEngine
from pipeline.loop.generate import run_generation
from pipeline.store.storage import RunDir
from tests.conftest import write_script
from tests.helpers.figures import row_figures
from tests.helpers.run_fixtures import MUTATIONS, SOLVES
from tests.unit.pipeline.loop.test_stream import OutOfOrderEngine, check_committed

MARK = "OVERSIZED"
# One mutation in ten carries the marker: its problem's solve prompt is refused.
FAILING = [m for m in MUTATIONS if "New solution" in m][:9]
FAILING.append(f" A {MARK} crate holds 3 boxes of 4 pens. How many pens?\nNew solution: 3 * 4 = 12. The answer is 12.")


def _seeds(path: Path, n: int = 20, marked: int = 2) -> Path:
    rows = [{"problem": f"What is {i} + {i + 1}?", "solution": f"{i} + {i + 1} = {2 * i + 1}.",
             "answer": str(2 * i + 1)} for i in range(n - marked)]
    rows += [{"problem": f"A {MARK} tank holds {i} litres; what is twice that?", "solution": f"2 * {i} = {2 * i}.",
              "answer": str(2 * i)} for i in range(2, 2 + marked)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _config(tmp_path: Path, *, mode: str, steps: int = 4, batch: int = 10, refuse: str = MARK,
            extra: str = "") -> Path:
    script = tmp_path / "script.json"
    write_script(script, mutate=FAILING, solve=SOLVES)
    data = json.loads(script.read_text())
    script.write_text(json.dumps(data | {"refuse": refuse}))
    seeds = _seeds(tmp_path / "seeds.jsonl")
    path = tmp_path / "config.toml"
    path.write_text(f"""
[run]
steps = {steps}
batch_size = {batch}
mode = "{mode}"
{extra}
[seeds]
source = "{seeds}"
[engine]
kind = "scripted"
[engine.scripted]
script = "{script}"
[solver]
k = 4
[archive]
cells = 16
""")
    return path


def _failed(run_dir: Path) -> list[dict]:
    cands = RunDir(run_dir).read_candidates().to_pylist()
    return [r for r in cands if r["status"] == "failed"]


def test_complete_each_puts_each_refusal_in_its_place():
    engine = ScriptedEngine([" p\nNew solution: 1. The answer is 1."], [" The answer is 1."], refuse=MARK)
    prompts = ["first", f"second {MARK}", "third"]
    with pytest.raises(RequestError):  # the whole call fails, as a real engine's would
        engine.complete(prompts, Sampling())
    outs = complete_each(engine, prompts, Sampling(seed=7))
    assert isinstance(outs[1], RequestError) and MARK in str(outs[1])
    assert [len(o) for o in (outs[0], outs[2])] == [1, 1]


@pytest.mark.parametrize("mode", ["steps", "stream"])
def test_refused_requests_fail_their_candidates_and_the_run_goes_on(tmp_path: Path, mode: str, figures):
    cfg = load_config(_config(tmp_path, mode=mode))
    engine = OutOfOrderEngine() if mode == "stream" else None
    if engine is not None:  # the out-of-order engine over a refusing script
        engine.inner = ScriptedEngine(FAILING, SOLVES, refuse=MARK)
    summary = run_generation(cfg, tmp_path / "run", engine=engine, show_bar=False, progress=lambda m: None)
    assert summary["steps"] == 4 and summary["mode"] == mode
    counts = check_committed(tmp_path / "run", 4)  # none lost or duplicated, archive = re-derivation
    assert counts["generated"] == 40 == summary["candidates"]
    failed = _failed(tmp_path / "run")
    solve_refused = [r for r in failed if r["reason"].startswith("solve request refused")]
    assert solve_refused and all(MARK in r["problem"] for r in solve_refused)
    assert all(r["archive_outcome"] == "ineligible" and r["quality"] == 0 for r in failed)
    assert all("refused" in r["reason"] and MARK in r["reason"] for r in failed)
    # A refused mutation request leaves no problem; its parent is a marked seed.
    cands = RunDir(tmp_path / "run").read_candidates().to_pylist()
    seed_text = {r["id"]: r["problem"] for r in cands if r["status"] == "seed"}
    for r in failed:
        if r["reason"].startswith("mutation request refused"):
            assert r["problem"] is None and MARK in seed_text[r["parent_id"]]
    # Counted in the metrics and the summary; never a parent.
    metrics = RunDir(tmp_path / "run").read_metrics()
    assert int(pc.sum(metrics["failed"]).as_py()) == len(failed) == summary["failed"]
    failed_ids = {r["id"] for r in failed}
    assert not any(r["parent_id"] in failed_ids or r["second_parent_id"] in failed_ids for r in cands)
    # The run resumes past its failed candidates.
    more = run_generation(cfg, tmp_path / "run", resume=True, steps=6, engine=engine, show_bar=False,
                          progress=lambda m: None)
    assert more["steps"] == 6
    check_committed(tmp_path / "run", 6)
    rows = row_figures(tmp_path / "run", seeds=20, batch=10)
    assert rows["rows_lost"] == 0 and rows["rows_duplicated"] == 0
    after = _failed(tmp_path / "run")
    generated = [r for r in RunDir(tmp_path / "run").read_candidates().to_pylist() if r["step"] > 0]
    figures.record(f"failures.{mode}", runs=2, resumed=1, runs_stopped=0, candidates=len(generated), failed=len(after),
                   failed_with_reason=sum("refused" in (r["reason"] or "") for r in after),
                   archived_failed=sum(r["archive_outcome"] != "ineligible" for r in after), **rows)


def test_every_request_refused_stops_the_run_with_one_line(tmp_path: Path, capsys):
    # Every prompt holds "Problem" (mutation and solve prompts alike): the engine can answer nothing.
    cfg = _config(tmp_path, mode="steps", refuse="Problem", extra="max_failed_in_a_row = 5")
    code = main(["generate", "--config", str(cfg), "--run-dir", str(tmp_path / "run"), "--no-prefect"])
    err = capsys.readouterr().err
    assert code == 3, err
    # Progress lines come first (stderr); the error is one line, with no traceback.
    last = err.strip().splitlines()[-1]
    assert last.startswith("sparq: error: ") and "Traceback" not in err and err.count("sparq: error") == 1, err
    assert "requests in a row were refused" in last and "max_failed_in_a_row = 5" in last
    # Nothing past the seeds was committed: the failing step was never half-written.
    assert RunDir(tmp_path / "run").read_checkpoint().step == 0


def test_openai_engine_refused_request_is_its_own(tmp_path: Path):
    """HTTP 400 (a prompt over the context on `vllm serve`) is the request's RequestError,
    not retried; the other prompts of the call are answered."""
    from pipeline.config import EngineConfig, OpenAISettings
    from pipeline.engines.openai_engine import OpenAIEngine
    from tests.helpers.fake_openai import FakeOpenAI

    with FakeOpenAI(max_prompt_chars=40) as server:
        engine = OpenAIEngine(EngineConfig(kind="openai", model="m",
                                           openai=OpenAISettings(base_urls=(server.url,), retries=3, backoff_s=0.01)))
        try:
            outs = complete_each(engine, ["short prompt", "x" * 41, "another short one"], Sampling(seed=3))
        finally:
            engine.close()
        assert isinstance(outs[1], RequestError) and "HTTP 400" in str(outs[1]) and "context length" in str(outs[1])
        assert outs[0][0].text and outs[2][0].text
        # Refused once, not retried on the server's other tries.
        assert sum(len(r["body"]["prompt"]) > 40 for r in server.requests) == 2  # the call, then alone


def test_seeds_max_chars_fits_the_default_context():
    """seeds.max_chars agrees with the default context: a crossover prompt (two parents, the
    longest packaged prompt shape) whose problems and solutions are all max_chars of math
    text like the bundled seeds' fits engine.max_model_len with the generator's tokens, in
    the bundled model's own tokens. (Before: 20,000 characters, about 7,500 tokens a field.)"""
    from transformers import AutoTokenizer

    from pipeline.models import embedded_vllm_model_dir
    from pipeline.prompts import load_prompt
    from pipeline.store.seeds import load_seeds

    cfg = load_config()
    tok = AutoTokenizer.from_pretrained(str(embedded_vllm_model_dir()))
    text = " ".join(f"{s.problem} {s.solution}" for s in load_seeds(cfg.seeds))
    field = text[: cfg.seeds.max_chars]
    prompt = load_prompt(cfg.operators.crossover_prompt).render(problem=field, solution=field, problem2=field,
                                                                solution2=field)
    need = len(tok(prompt).input_ids) + cfg.generator.max_tokens
    assert need <= cfg.engine.max_model_len, f"{need} tokens for a {cfg.engine.max_model_len}-token context"


def test_transformers_engine_refuses_a_prompt_over_its_context_in_tokens():
    from pipeline.config import EngineConfig
    from pipeline.engines.hf import TransformersEngine

    engine = TransformersEngine(EngineConfig(kind="transformers", max_model_len=64))
    try:
        # 40 characters of digits are more tokens than 40 characters of words: counted in tokens.
        outs = complete_each(engine, ["What is 2 + 2?", "7 " * 40], Sampling(max_tokens=4, temperature=0.0))
    finally:
        engine.close()
    assert len(outs[0]) == 1
    assert isinstance(outs[1], RequestError) and "max_model_len is 64" in str(outs[1])
