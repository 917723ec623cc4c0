"""The engine contract, run against every engine that works on this machine."""

import socket

import pytest

from pipeline.config import EngineConfig
from pipeline.engines import EngineError, Sampling, make_engine
from pipeline.engines.base import truncate_at_stop
from pipeline.engines.scripted import ScriptedEngine
from tests.fake_openai import FakeOpenAI

PROMPTS = ["Problem: What is 2 + 2?\nSolution:", "Problem: What is 3 + 5?\nSolution:"]
SAMPLING = Sampling(n=3, temperature=0.7, max_tokens=24, stop=("\nProblem:",), seed=1)


def check_contract(engine) -> None:
    out = engine.complete(PROMPTS, SAMPLING)
    assert len(out) == len(PROMPTS)
    for row in out:
        assert len(row) == SAMPLING.n
        for c in row:
            assert isinstance(c.text, str) and isinstance(c.tokens, int) and c.tokens >= 0
            assert "\nProblem:" not in c.text


def test_scripted_engine_contract():
    check_contract(ScriptedEngine(["m"], [" 4. The answer is 4.\nProblem: x"]))


def test_openai_engine_contract_and_retry(monkeypatch):
    monkeypatch.setenv("SPARQ_TEST_KEY", "sk-test")
    with FakeOpenAI(fail_first=1) as server:
        cfg = EngineConfig(kind="openai", model="m", base_urls=(server.url,), retries=2, backoff_s=0.01,
                           api_key_env="SPARQ_TEST_KEY")
        engine = make_engine(cfg)
        check_contract(engine)
        assert len(server.requests) == len(PROMPTS) + 1  # one 500, retried
        assert server.requests[-1]["body"]["n"] == 3
        assert server.requests[-1]["auth"] == "Bearer sk-test"


def test_openai_engine_chat_prompt():
    with FakeOpenAI(text="x = 4 so \\boxed{4}") as server:
        engine = make_engine(EngineConfig(kind="openai", model="m", base_urls=(server.url,)))
        out = engine.complete([[{"role": "user", "content": "2+2?"}]], Sampling(n=2))
        assert [c.text for c in out[0]] == ["x = 4 so \\boxed{4}"] * 2
        assert server.requests[0]["path"].endswith("/chat/completions")


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_openai_engine_unreachable_names_endpoint():
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    engine = make_engine(EngineConfig(kind="openai", model="m", base_urls=(url,), retries=1, backoff_s=0.01))
    with pytest.raises(EngineError, match=url.replace(".", r"\.")):
        engine.complete(["x"], Sampling())


def test_openai_engine_fails_over_to_live_endpoint():
    dead = f"http://127.0.0.1:{_closed_port()}/v1"
    with FakeOpenAI() as server:
        cfg = EngineConfig(kind="openai", model="m", base_urls=(dead, server.url), retries=2, backoff_s=0.01)
        out = make_engine(cfg).complete(PROMPTS * 3, Sampling(n=1))
        assert len(out) == 6 and all(len(r) == 1 for r in out)


def test_truncate_at_stop():
    assert truncate_at_stop("a\nProblem: b", ["\nProblem:"]) == ("a", True)
    assert truncate_at_stop("abc", ["x"]) == ("abc", False)


@pytest.mark.slow
def test_transformers_engine_contract_real_model():
    engine = make_engine(EngineConfig())
    check_contract(engine)
    assert engine.stats.tokens > 0
