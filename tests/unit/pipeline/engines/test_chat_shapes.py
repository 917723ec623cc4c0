"""The chat prompts (mutate_chat, solve_chat) end to end through the openai engine, against a
fake OpenAI-compatible server that answers in the shapes instruction-tuned and reasoning
models produce. Each shape is one real campaign step; the rows show how it was parsed.

The same text answers the mutation and the solve requests: its tagged problem/solution
parses as a mutation, and as a solve attempt its final answer is extracted like any other.
(The chat path through vLLM itself runs in tests/real/test_vllm_cpu.py.)
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pytest

from pipeline.config import load_config
from pipeline.loop.generate import run_generation
from pipeline.store.storage import RunDir
from tests.helpers.fake_openai import FakeOpenAI

MARKDOWN = """<problem>
A shop sells **6 boxes** of pencils, each holding **7 pencils**. How many pencils are there in all?
</problem>

<solution>
### Step 1
Each box holds 7 pencils, and there are 6 boxes.

### Step 2
$$6 \\times 7 = 42$$

**Final answer:** $\\boxed{42}$
</solution>"""

BOXED = """<problem>What is 6 times 7?</problem>
<solution>Multiplying, 6 times 7 is 42, so the answer is \\boxed{42}.</solution>"""

# Reasoning first: drafts with tags and a wrong boxed answer inside <think>, then the answer.
THINK = """<think>
The parent is about multiplication. Draft: <problem>What is 6 times 6?</problem> No, too close.
Its answer would be \\boxed{36}. Let me use 6 and 7 instead.
</think>
<problem>A garden has 6 rows of 7 tulips. How many tulips are there?</problem>
<solution>6 rows of 7 is 6 x 7 = 42 tulips. \\boxed{42}</solution>"""

# Cut off at max_tokens in the middle of the reasoning: no answer part at all.
TRUNCATED = """<think>
Let me think about what makes a good variation. The parent asks for a product, so maybe \\boxed{42}"""

SHAPES = {
    "markdown": (MARKDOWN, "stop"),
    "boxed": (BOXED, "stop"),
    "think": (THINK, "stop"),
    "truncated": (TRUNCATED, "length"),
}
BATCH, K = 2, 4


def _run(tmp_path: Path, url: str) -> RunDir:
    cfg = load_config().replace("run", steps=1, batch_size=BATCH)
    cfg = cfg.replace("seeds", limit=20)
    cfg = cfg.replace("engine", kind="openai", model="fake-instruct", openai={"base_urls": (url,), "retries": 0})
    cfg = cfg.replace("generator", prompt="mutate_chat", max_tokens=512)
    cfg = cfg.replace("solver", prompt="solve_chat", k=K, max_tokens=512)
    cfg = cfg.replace("archive", cells=16)
    run_dir = tmp_path / "run"
    run_generation(cfg, run_dir, show_bar=False, progress=lambda m: None)
    return RunDir(run_dir)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_chat_prompts_parse_each_answer_shape(shape: str, tmp_path: Path) -> None:
    text, finish = SHAPES[shape]
    with FakeOpenAI(text=text, finish_reason=finish) as server:
        run = _run(tmp_path, server.url)
        bodies = [r["body"] for r in server.requests]
    # Every request went out as chat messages rendered from the chat prompts.
    assert bodies and all("messages" in b for b in bodies)
    assert any("<problem>...</problem>" in b["messages"][-1]["content"] for b in bodies)  # mutate_chat
    solves = [b for b in bodies if b["messages"][-1]["content"].startswith("Solve the following math problem")]
    rows = run.read_candidates().filter(pc.equal(pc.field("step"), 1)).to_pylist()
    assert len(rows) == BATCH
    if shape == "truncated":
        assert {r["status"] for r in rows} == {"unparseable"}
        assert all("reasoning never finished" in r["reason"] for r in rows)
        assert not solves  # nothing parsed, so nothing to solve
        return
    assert solves and all(b["n"] == K for b in solves)  # solve_chat, k samples per request
    ok = [r for r in rows if r["status"] == "ok"]
    assert ok, [(r["status"], r["reason"]) for r in rows]
    for r in ok:
        assert r["answer"] == "42"
        assert "<think>" not in r["problem"] and "6 times 6" not in r["problem"]  # not the draft
        assert "</solution>" not in r["solution"]
        assert r["solve_rate"] == 1.0  # all k attempts extracted 42 (not the draft's 36)
    attempts = run.read_attempts().filter(pc.equal(pc.field("step"), 1)).to_pylist()
    assert attempts and {a["extracted"] for a in attempts} == {"42"}


@pytest.mark.parametrize("verdict", ["INVALID", "VALID"])
def test_llm_judge_verifier_through_an_openai_server(verdict: str, tmp_path: Path) -> None:
    # [verifier] method = "judge": an instruction-tuned model reads problem, solution and
    # answer and ends with VERDICT: ...; its majority decides. The solver gets 1 of 4 right
    # (solve rate 0.25), so every parsed problem could enter the archive and is judged.
    judged = []

    def reply(body: dict, i: int) -> str:
        content = body["messages"][-1]["content"]
        if "Work the problem out yourself" in content:
            judged.append(content)
            return f"6 x 7 is 42.\nREASON: checked by the judge (reply {i})\nVERDICT: {verdict}"
        if content.startswith("Solve the following math problem"):
            return "\\boxed{42}" if i == 0 else "\\boxed{41}"
        return BOXED

    with FakeOpenAI(text=reply) as server:
        cfg = load_config().replace("run", steps=1, batch_size=BATCH).replace("seeds", limit=20)
        cfg = cfg.replace("engine", kind="openai", model="fake-instruct",
                          openai={"base_urls": (server.url,), "retries": 0})
        cfg = cfg.replace("generator", prompt="mutate_chat", max_tokens=512)
        cfg = cfg.replace("solver", prompt="solve_chat", k=K, max_tokens=512).replace("archive", cells=16)
        cfg = cfg.replace("verifier", m=3, method="judge", share=0.6)
        run_generation(cfg, tmp_path / "run", show_bar=False, progress=lambda m: None)
    rows = RunDir(tmp_path / "run").read_candidates().filter(pc.equal(pc.field("step"), 1)).to_pylist()
    solved = [r for r in rows if r["solve_rate"] == 0.25]
    assert solved and judged
    assert all("What is 6 times 7?" in c and "Final answer: 42" in c for c in judged)
    for r in solved:
        assert r["verify_tokens"] == 3 * 7  # the fake server counts 7 tokens an answer
        if verdict == "INVALID":
            assert r["status"] == "invalid" and r["invalid_checks"] == "verifier" and r["verifier_agrees"] is False
            assert "100% of 3 judgements say invalid (checked by the judge" in r["validity_reason"]
        else:
            assert r["status"] == "ok" and r["valid"] is True and r["verifier_agrees"] is True
