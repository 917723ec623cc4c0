"""A plain (non-editable) install works: the wheel carries everything the code opens.

`make test` installs the project editable, where a file outside every package (the seeds
were once found through the checkout's data/ folder) still resolves. Here the project is
installed with `pip install --no-deps .` into a fresh venv and run from a temporary
directory, with the source copy deleted first, so nothing can resolve through a checkout:
`sparq seeds bundled`, a one-step scripted-engine `sparq generate --no-prefect`, `sparq
export` of that run and `sparq finetune --help`.

Why the fresh venv borrows the project venv's dependencies (a .pth file naming its
site-packages) instead of installing them: a full install of torch, vLLM, Prefect and the
rest into a new venv takes many minutes and needs the package index, and it tests pip's
resolver rather than our packaging. What this test is about, the project's own files,
comes only from the wheel: the .pth line adds the dependencies' directory without
processing the .pth files in it, so the editable install of the project that lives there
(an import hook started by its own .pth) stays inactive, and the test checks that
`pipeline` is imported from the new venv. The project's dependencies are declared in
pyproject.toml and resolved by `make install`; `--no-build-isolation` builds with the
setuptools that venv already has instead of fetching one.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, write_script

pytestmark = pytest.mark.ci

# What a source tree holds that is not the project (and may be large or machine-specific).
NOT_SOURCE = (".git", ".venv", "runs", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
              ".hypothesis", ".ruff_cache")


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(cmd)} exited {out.returncode}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """(the fresh venv's bin/, an environment without PYTHONPATH) after a non-editable install."""
    root = tmp_path_factory.mktemp("install")
    src = root / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    target = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                            capture_output=True, text=True, check=True).stdout.strip()
    (Path(target) / "project_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env |= {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DO_NOT_TRACK": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    work = root / "work"
    work.mkdir()
    _run([str(py), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", str(src)], work, env)
    shutil.rmtree(src)  # from here on only the installed files exist
    return venv / "bin", env


def test_the_installed_package_is_the_wheel_not_a_checkout(installed):
    bin_dir, env = installed
    out = _run([str(bin_dir / "python"), "-c", "import pipeline, flows, finetune, filters, archives; "
                "print('\\n'.join(m.__file__ for m in (pipeline, flows, finetune, filters, archives)))"],
               bin_dir.parent.parent / "work", env)
    for path in out.stdout.split():
        assert Path(path).is_relative_to(bin_dir.parent), path
    files = _run([str(bin_dir / "python"), "-c", "from pipeline.store.seeds import BUNDLED_SEEDS, BUNDLED_EVAL; "
                  "from finetune.config import DEFAULT_FINETUNE_CONFIG as f; from filters.config import "
                  "DEFAULT_EXPORT_CONFIG as e; from pipeline.config import DEFAULT_CONFIG as c; "
                  "print(BUNDLED_SEEDS, BUNDLED_EVAL, f, e, c)"], bin_dir.parent.parent / "work", env)
    for path in files.stdout.split():
        assert Path(path).is_file() and Path(path).is_relative_to(bin_dir.parent), path


def test_seeds_generate_export_finetune_help_from_the_wheel(installed):
    bin_dir, env = installed
    work = bin_dir.parent.parent / "work"
    sparq = str(bin_dir / "sparq")
    seeds = _run([sparq, "seeds", "bundled", "--json"], work, env)
    assert json.loads(seeds.stdout)["rows"] >= 300
    script = write_script(work / "script.json")
    (work / "config.toml").write_text(f'[run]\nsteps = 1\nbatch_size = 4\n[engine]\nkind = "scripted"\n'
                                      '[engine.scripted]\n'
                                      f'script = "{script}"\n[solver]\nk = 4\n[archive]\ncells = 64\n')
    _run([sparq, "generate", "--no-prefect", "--quiet", "--config", "config.toml", "--run-dir", "run"], work, env)
    assert sorted(p.name for p in (work / "run" / "candidates").glob("step-*.parquet"))
    export = _run([sparq, "export", "run", "--out", "dataset"], work, env)
    assert "exported" in export.stdout and (work / "dataset" / "README.md").is_file()
    assert "sparq finetune" in _run([sparq, "finetune", "--help"], work, env).stdout
