"""Security: generated text is data, never code; run storage has no pickle; keys stay secret.

- The library (every package that handles generated text) has no eval/exec/compile,
  no pickle-family module, no shell, no numpy/torch load that may unpickle; a static scan
  (AST, so `model.eval()` is not a false alarm) checks it, and checks itself on a planted case.
  Generated code runs only in the sandbox: pipeline/domains/code/sandbox.py is the one module allowed to
  exec a program (its launcher execs the interpreter inside the sandbox's namespaces and
  limits; tests/guarantees/test_sandbox.py tries the escapes), and only for that.
- A scripted run whose problems, solutions and solver answers carry Python, shell and
  template payloads stores them verbatim and runs none of them (each would create a file).
- Every file a run writes is Parquet, JSON, TOML or .npy read with allow_pickle=False.
- The openai engine's key comes from the environment only: after a run against the fake
  server, the key is in no file of the run directory, not in stdout or stderr.
- Servers the project starts (Prefect's temporary API server, the test fakes) bind 127.0.0.1.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
import subprocess
import tomllib
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.config import load_config
from pipeline.loop.generate import run_generation
from pipeline.store.storage import RunDir
from tests.conftest import REPO, scripted_config, sparq_cmd, write_script
from tests.helpers.fake_openai import FakeOpenAI

LIBRARY = ["pipeline", "archives", "flows", "filters", "finetune"]
BANNED_CALLS = {"eval", "exec", "compile", "__import__", "execfile"}
BANNED_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve", "joblib"}
BANNED_ATTRS = {("os", "system"), ("os", "popen"), ("os", "execv"), ("os", "execve"), ("os", "execvp"),
                ("os", "spawnl"), ("os", "spawnv"), ("pd", "read_pickle"), ("pandas", "read_pickle"),
                ("yaml", "load"), ("yaml", "unsafe_load")}


def scan_source(source: str, name: str) -> list[str]:
    """Findings: constructs that could execute or unpickle data."""
    found = []
    for node in ast.walk(ast.parse(source, name)):
        where = f"{name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for m in mods:
                if m.split(".")[0] in BANNED_MODULES:
                    found.append(f"{where}: imports {m}")
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Name) and f.id in BANNED_CALLS:
            found.append(f"{where}: calls {f.id}()")
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and (f.value.id, f.attr) in BANNED_ATTRS:
            found.append(f"{where}: calls {f.value.id}.{f.attr}()")
        kw = {k.arg: k.value for k in node.keywords}
        shell = kw.get("shell")
        if shell is not None and not (isinstance(shell, ast.Constant) and shell.value is False):
            found.append(f"{where}: shell=")
        pickle = kw.get("allow_pickle")
        if pickle is not None and not (isinstance(pickle, ast.Constant) and pickle.value is False):
            found.append(f"{where}: allow_pickle not False")
        # np.load's allow_pickle defaults to False (numpy >= 1.16.3), so only an explicit
        # value is a finding (above); torch.load unpickles unless told weights_only=True.
        if isinstance(f, ast.Attribute) and f.attr == "load" and isinstance(f.value, ast.Name):
            if f.value.id == "torch":
                wo = kw.get("weights_only")
                if not (isinstance(wo, ast.Constant) and wo.value is True):
                    found.append(f"{where}: torch.load without weights_only=True")
    return found


def test_scanner_finds_planted_cases():
    planted = ("import pickle\nfrom dill import loads\neval(x)\nexec(y)\nsubprocess.run(c, shell=True)\n"
               "os.system(c)\nnp.load(p)\nnp.load(p, allow_pickle=True)\ntorch.load(p)\nmodel.eval()\n")
    found = scan_source(planted, "planted.py")
    assert len(found) == 8, found  # everything but model.eval() and np.load(p) (safe default)


# The sandbox's launcher execs the interpreter that runs generated code (in its namespaces,
# under its limits): the one exec the library has. Anything else there is still a finding.
SANDBOX = "pipeline/domains/code/sandbox.py"
SANDBOX_ALLOWED = re.compile(r": calls os\.execve?\(\)$")


def test_library_never_executes_or_unpickles(figures):
    files = [p for pkg in LIBRARY for p in sorted((REPO / pkg).rglob("*.py"))]
    assert len(files) > 20
    findings = [f for p in files for f in scan_source(p.read_text(encoding="utf-8"), str(p.relative_to(REPO)))]
    sandboxed = [f for f in findings if f.startswith(SANDBOX + ":") and SANDBOX_ALLOWED.search(f)]
    assert 1 <= len(sandboxed) <= 2, findings  # the launcher's exec is there (so the scan sees it)
    findings = [f for f in findings if f not in sandboxed]
    assert findings == []
    figures.record("security.static_scan", files_scanned=len(files), findings=len(findings))


PAYLOADS = [
    "__import__('os').system('touch {m}')",
    "$(touch {m})",
    "`touch {m}`",
    "; touch {m} #",
    "exec(\"open('{m}', 'w')\")",
    "{{{{ cycler.__init__.__globals__.os.popen('touch {m}') }}}}",
    "\\immediate\\write18{{touch {m}}}",
]


def _payload_script(tmp_path: Path) -> tuple[list[Path], list[str], list[str]]:
    markers, mutate, solve = [], [], []
    for i, p in enumerate(PAYLOADS):
        m_problem, m_answer = tmp_path / f"marker-problem-{i}", tmp_path / f"marker-answer-{i}"
        markers += [m_problem, m_answer]
        payload, answer_payload = p.format(m=m_problem), p.format(m=m_answer)
        mutate.append(f" Compute 2 + {i} and then {payload} please?\n"
                      f"New solution: 2 + {i} = {2 + i}. The answer is {answer_payload}.")
        solve.append(f" The answer is {answer_payload}.")
    solve.append(" The answer is 5.")
    return markers, mutate, solve


def test_generated_payloads_are_stored_never_run(tmp_path: Path, figures):
    markers, mutate, solve = _payload_script(tmp_path)
    cfg_path = scripted_config(tmp_path, steps=2, batch=len(PAYLOADS), k=3, extra="[seeds]\nlimit = 40\n")
    write_script(tmp_path / "script.json", mutate=mutate, solve=solve)
    run_generation(load_config(cfg_path), tmp_path / "run", show_bar=False, progress=lambda m: None)
    cands = RunDir(tmp_path / "run").read_candidates()
    gen = [r for r in cands.to_pylist() if r["step"] > 0]
    stored = "\n".join((r["problem"] or "") + (r["raw_output"] or "") for r in gen)
    for i, p in enumerate(PAYLOADS):  # kept verbatim, as data
        assert p.format(m=markers[2 * i]) in stored
    assert any(r["status"] == "ok" and r["k"] == 3 for r in gen), "payload problems were never solved/judged"
    attempts = RunDir(tmp_path / "run").read_attempts()
    assert attempts.num_rows > 0
    executed = [m for m in markers if m.exists()]  # a payload that ran would have written its marker
    assert executed == []
    figures.record("security.payloads", payloads=len(PAYLOADS), candidates=len(gen),
                   attempts_judged=attempts.num_rows, executed=len(executed))


def _check_file(path: Path) -> str:
    data = path.read_bytes()
    assert not data.startswith(b"\x80"), f"{path} looks like a pickle"
    if path.suffix == ".parquet":
        assert data[:4] == b"PAR1" and data[-4:] == b"PAR1", path
        pq.read_table(path)
        return "parquet"
    if path.suffix == ".npy":
        arr = np.load(path, allow_pickle=False)
        assert arr.dtype != object
        return "npy"
    if path.suffix == ".json":
        json.loads(data)
        return "json"
    if path.suffix == ".toml":
        tomllib.loads(data.decode("utf-8"))
        return "toml"
    if path.name == ".lock":
        assert data.decode().strip().isdigit() or not data
        return "lock"
    raise AssertionError(f"{path}: a file of unknown format in the run directory")


def test_run_storage_has_no_pickle(tmp_path: Path, figures):
    cfg = load_config(scripted_config(tmp_path, steps=2, extra="[seeds]\nlimit = 40\n"))
    run_generation(cfg, tmp_path / "run", show_bar=False, progress=lambda m: None)
    kinds = [_check_file(p) for p in sorted((tmp_path / "run").rglob("*")) if p.is_file()]
    assert {"parquet", "npy", "json", "toml"} <= set(kinds)
    figures.record("security.storage_formats", files_checked=len(kinds), pickles=kinds.count("pickle"))


MUTATION = (" A farmer has 12 cows and buys 5 more. How many cows does he have?\n"
            "New solution: 12 + 5 = 17. The answer is 17.")


def test_api_key_never_leaves_the_environment(tmp_path: Path, figures):
    secret = "sk-sparq-" + os.urandom(12).hex()
    with FakeOpenAI(text=MUTATION) as server:
        cfg = tmp_path / "c.toml"
        cfg.write_text(f'[run]\nsteps = 2\nbatch_size = 4\n[engine]\nkind = "openai"\nmodel = "m"\n'
                       f'[engine.openai]\nbase_urls = ["{server.url}"]\n'
                       'api_key_env = "SPARQ_TEST_SECRET"\nretries = 0\n'
                       '[solver]\nk = 2\n[seeds]\nlimit = 40\n[archive]\ncells = 64\n')
        env = dict(os.environ, PYTHONPATH=str(REPO), SPARQ_TEST_SECRET=secret)
        ok = subprocess.run(sparq_cmd("generate", "--config", str(cfg), "--run-dir", str(tmp_path / "run"),
                                      "--no-prefect"), cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300)
        assert ok.returncode == 0, ok.stderr
        assert server.requests and all(r["auth"] == f"Bearer {secret}" for r in server.requests)
        # A failing engine prints its error: still no key.
        server.fault = "http500"
        bad = subprocess.run(sparq_cmd("generate", "--run-dir", str(tmp_path / "run"), "--resume", "--steps", "3",
                                       "--no-prefect"), cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=300)
        assert bad.returncode == 3, bad.stderr
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    leaks = [str(p) for p in files if secret.encode() in p.read_bytes()]
    for proc in (ok, bad):
        assert secret not in proc.stdout and secret not in proc.stderr
    assert leaks == []
    assert "SPARQ_TEST_SECRET" in (tmp_path / "run" / "config.toml").read_text()  # the name, not the value
    outputs = [out for proc in (ok, bad) for out in (proc.stdout, proc.stderr)]
    figures.record("security.api_key", files_checked=len(files), outputs_checked=len(outputs), leaks=len(leaks))


def test_servers_bind_localhost():
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_SERVER_API_HOST

    # Prefect's temporary server (what `sparq generate` starts without PREFECT_API_URL).
    source = inspect.getsource(SubprocessASGIServer)
    assert re.search(r"""["']--host["'],\s*["']127\.0\.0\.1["']""", source), \
        "Prefect's temporary server no longer pins --host 127.0.0.1"
    assert "0.0.0.0" not in source
    assert PREFECT_SERVER_API_HOST.value() in ("127.0.0.1", "localhost")
    # The project's own code never binds all interfaces.
    for pkg in LIBRARY + ["tests", "bench"]:
        for p in (REPO / pkg).rglob("*.py"):
            text = p.read_text(encoding="utf-8")
            if p.name != "test_security.py":
                assert "0.0.0.0" not in text and '"::"' not in text, p
    with FakeOpenAI() as server:
        assert server.server.server_address[0] == "127.0.0.1"


def test_config_has_no_key_field():
    # The only way to give a key is the name of an environment variable.
    from pipeline.config import ConfigError, from_dict

    with pytest.raises(ConfigError, match="engine.api_key"):
        from_dict({"engine": {"api_key": "sk-x"}})
    assert load_config().engine.openai.api_key_env == "OPENAI_API_KEY"


@pytest.mark.slow  # a throwaway Prefect server: 30-90 s on 2 cores
def test_api_key_not_in_prefect_logs_artifacts_or_parameters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from prefect.client.orchestration import get_client
    from prefect.testing.utilities import prefect_test_harness

    from flows.generate import generate

    secret = "sk-sparq-" + os.urandom(12).hex()
    monkeypatch.setenv("SPARQ_TEST_SECRET", secret)
    with FakeOpenAI(text=MUTATION) as server, prefect_test_harness(server_startup_timeout=120):
        cfg = tmp_path / "c.toml"
        cfg.write_text(f'[run]\nsteps = 1\nbatch_size = 4\n[engine]\nkind = "openai"\nmodel = "m"\n'
                       f'[engine.openai]\nbase_urls = ["{server.url}"]\n'
                       'api_key_env = "SPARQ_TEST_SECRET"\nretries = 0\n'
                       '[solver]\nk = 2\n[seeds]\nlimit = 40\n[archive]\ncells = 64\n')
        generate(run_dir=str(tmp_path / "run"), config_path=str(cfg))
        assert server.requests and server.requests[0]["auth"] == f"Bearer {secret}"
        with get_client(sync_client=True) as client:
            records = [a.model_dump_json() for a in client.read_artifacts()]
            records += [entry.model_dump_json() for entry in client.read_logs()]
            records += [r.model_dump_json() for r in client.read_flow_runs()]
            records += [r.model_dump_json() for r in client.read_task_runs()]
    assert len(records) > 5
    assert [r[:200] for r in records if secret in r] == []
    assert [str(p) for p in (tmp_path / "run").rglob("*") if p.is_file() and secret.encode() in p.read_bytes()] == []
