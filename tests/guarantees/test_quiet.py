"""flows/quiet.py: a CLI run's engine and library output goes to RUN/logs/engine.log."""

from __future__ import annotations

import logging
import logging.config
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from flows.quiet import library_output_to


@pytest.fixture(autouse=True)
def _logging_on():
    """Earlier tests in the same worker may have turned logging off globally (logging.disable)
    or disabled existing loggers (a dictConfig with disable_existing_loggers); these tests
    check this module's wiring, so they run with logging on and put the state back."""
    manager = logging.root.manager
    names = ("vllm", "vllm.test_quiet", "vllm.triton_utils.importing")
    saved = manager.disable, {n: logging.getLogger(n).disabled for n in names}
    logging.disable(logging.NOTSET)
    for n in names:
        logging.getLogger(n).disabled = False
    yield
    logging.disable(saved[0])
    for n, disabled in saved[1].items():
        logging.getLogger(n).disabled = disabled


def test_child_processes_c_level_writes_and_warnings_go_to_the_log(tmp_path: Path, capfd):
    log = tmp_path / "run" / "logs" / "engine.log"
    before = os.environ.get("VLLM_LOGGING_CONFIG_PATH")
    with library_output_to(log):
        print("campaign progress", file=sys.stderr)
        subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('engine core says hi\\n')"], check=True)
        os.write(2, b"a C library line\n")
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("torch.something is deprecated", FutureWarning, stacklevel=1)
        assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    err = capfd.readouterr().err
    text = log.read_text()
    assert "campaign progress" in err
    for line in ("engine core says hi", "a C library line"):
        assert line not in err and line in text
    assert os.environ.get("VLLM_LOGGING_CONFIG_PATH") == before  # the environment is put back
    print("after", file=sys.stderr)
    assert "after" in capfd.readouterr().err  # and so is the terminal


def test_python_warnings_inside_the_block_are_logged(tmp_path: Path, capfd):
    log = tmp_path / "logs" / "engine.log"
    with library_output_to(log):
        warnings.warn_explicit("weights are tied", FutureWarning, "x.py", 1)
    assert "weights are tied" in log.read_text()
    assert "weights are tied" not in capfd.readouterr().err


def _in_a_fresh_interpreter(code: str) -> str:
    # Logging is process-wide state that other tests of the same worker change (levels,
    # handlers, disabled loggers); these two run where nothing has touched it, as a CLI does.
    # Importing TRL (the fine-tuning tests) sets VLLM_LOGGING_LEVEL=ERROR in the process
    # environment, which vLLM's config, and so the log file, then honours: run at the default.
    env = {k: v for k, v in os.environ.items() if k != "VLLM_LOGGING_LEVEL"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2], env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def test_the_vllm_logging_config_writes_vllms_loggers_to_the_log(tmp_path: Path):
    log = tmp_path / "logs" / "engine.log"
    _in_a_fresh_interpreter(f"""
import json, logging.config, os
from pathlib import Path
from flows.quiet import library_output_to
with library_output_to(Path({str(log)!r})):
    config = json.loads(Path(os.environ["VLLM_LOGGING_CONFIG_PATH"]).read_text())
logging.config.dictConfig(config)  # what vLLM does with the file at import
logging.getLogger("vllm.platforms.cpu").warning("Triton is not installed")
logging.shutdown()
""")
    assert "Triton is not installed" in log.read_text()


def test_vllm_messages_logged_before_vllms_own_config_go_to_the_log(tmp_path: Path):
    log = tmp_path / "logs" / "engine.log"
    shown = _in_a_fresh_interpreter(f"""
import logging, sys
from pathlib import Path
from flows.quiet import library_output_to
logging.basicConfig(stream=sys.stdout)  # a console handler on the root, as Prefect's
with library_output_to(Path({str(log)!r})):
    logging.getLogger("vllm.triton_utils.importing").warning("Triton is installed, but no CPU backend")
assert logging.getLogger("vllm").propagate  # put back
""")
    assert "no CPU backend" in log.read_text() and "no CPU backend" not in shown


def test_off_when_no_log_is_given(capfd):
    with library_output_to(None):
        os.write(2, b"shown\n")
    assert "shown" in capfd.readouterr().err
