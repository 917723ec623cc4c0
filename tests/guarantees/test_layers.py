"""The package layers: archives < pipeline < filters, finetune < flows.

Every module's imports are read with `ast` (nothing is imported), including imports inside
functions, so a lazy import that reaches up fails as surely as a top-level one. Three rules:

1. a package imports only packages of a lower layer (filters and finetune are siblings: they
   do not import each other); inside pipeline/ the same rule holds between its parts
   (PIPELINE_PARTS: the loop sits on storage, engines, domains and placement, which sit on
   config, prompts, models and runtime; the read side sits on top and writes nothing);
2. only flows/ imports Prefect (or prefect-dask): the library can be used and tested without it;
3. no module imports another package's private (underscore) name, so a package's public
   surface is what it exports (tests/ and bench/ included).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

LAYERS = {"archives": 0, "pipeline": 1, "filters": 2, "finetune": 2, "flows": 3}
# pipeline/'s parts (its sub-packages and top-level modules) and their layers.
PIPELINE_PARTS = {"config": 0, "models": 0, "prompts": 0, "runtime": 0,
                  "store": 1, "engines": 1, "domains": 1, "placement": 1,
                  "loop": 2, "read": 3}
PREFECT = ("prefect", "prefect_dask")
PREFECT_ALLOWED = ("flows",)


def _resolve(module: str | None, level: int, importer: str) -> str:
    """Absolute dotted name of an import made in module `importer` (relative imports resolved)."""
    if level == 0:
        return module or ""
    base = importer.split(".")[: -level]
    return ".".join([*base, module] if module else base)


def _imports(tree: ast.AST, importer: str) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, imported names) for every import statement and
    importlib.import_module("...") call with a literal name."""
    out: list[tuple[int, str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            out.append((node.lineno, _resolve(node.module, node.level, importer), [a.name for a in node.names]))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name)
              and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            out.append((node.lineno, node.args[0].value, []))
    return out


def _module_aliases(tree: ast.AST) -> dict[str, str]:
    """Local names bound to a module by `import a.b as x` (x -> a.b) or `import a` (a -> a)."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                aliases[alias.asname or top] = alias.name if alias.asname else top
    return aliases


def violations(root: Path, layers: dict[str, int] = LAYERS) -> list[str]:
    """Every upward or sibling import, Prefect import outside flows/, and cross-package import
    of a private name in the packages under `root`, one line each (file:line: what)."""
    found: list[str] = []
    for package, rank in layers.items():
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root)
            importer = ".".join(rel.with_suffix("").parts)
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(rel))
            for line, module, names in _imports(tree, importer):
                top = module.split(".")[0]
                where = f"{rel}:{line}"
                if top in layers and top != package and layers[top] >= rank:
                    kind = "sibling" if layers[top] == rank else "upward"
                    found.append(f"{where}: {kind} import of {module} from {package}")
                if top in PREFECT and package not in PREFECT_ALLOWED:
                    found.append(f"{where}: Prefect import ({module}) outside flows/")
                if top in layers and top != package:
                    for name in names:
                        if name.startswith("_") and not name.startswith("__"):
                            found.append(f"{where}: private name {module}.{name} imported from {package}")
            aliases = _module_aliases(tree)
            for node in ast.walk(tree):
                if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                        and node.value.id in aliases and node.attr.startswith("_")
                        and not node.attr.startswith("__")):
                    target = aliases[node.value.id]
                    if target.split(".")[0] in layers and target.split(".")[0] != package:
                        found.append(f"{rel}:{node.lineno}: private name {target}.{node.attr} used from {package}")
    return found


def test_the_packages_import_only_downward_and_only_flows_imports_prefect():
    assert violations(REPO) == []


def part_violations(root: Path, parts: dict[str, int] = PIPELINE_PARTS) -> list[str]:
    """Every import between pipeline/'s parts that goes up or sideways, one line each."""
    found = []
    for path in sorted((root / "pipeline").rglob("*.py")):
        rel = path.relative_to(root)
        names = rel.with_suffix("").parts
        if len(names) < 3 and names[-1] == "__init__":
            continue  # pipeline/__init__.py: the version only
        mine = names[1]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(rel))
        for line, module, _names in _imports(tree, ".".join(names)):
            target = module.split(".")
            if target[0] != "pipeline" or len(target) < 2 or target[1] == mine:
                continue
            if target[1] not in parts:
                found.append(f"{rel}:{line}: {module} is in no part of pipeline/ (PIPELINE_PARTS)")
            elif parts[target[1]] >= parts[mine]:
                kind = "sibling" if parts[target[1]] == parts[mine] else "upward"
                found.append(f"{rel}:{line}: {kind} import of {module} from pipeline/{mine}")
    return found


def test_pipelines_parts_import_only_downward():
    assert part_violations(REPO) == []


def test_every_part_of_pipeline_has_a_layer():
    parts = {p.parent.name for p in (REPO / "pipeline").glob("*/__init__.py")}
    parts |= {p.stem for p in (REPO / "pipeline").glob("*.py")} - {"__init__"}
    assert parts == set(PIPELINE_PARTS)


def test_the_part_checker_catches_an_upward_import(tmp_path: Path):
    for rel, text in {"pipeline/__init__.py": "", "pipeline/store/__init__.py": "",
                      "pipeline/store/a.py": "from pipeline.loop.campaign import Campaign\n",
                      "pipeline/engines/__init__.py": "", "pipeline/engines/b.py": "import pipeline.domains.base\n",
                      "pipeline/loop/__init__.py": "", "pipeline/loop/c.py": "from pipeline.store import a\n"}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert part_violations(tmp_path) == [
        "pipeline/engines/b.py:1: sibling import of pipeline.domains.base from pipeline/engines",
        "pipeline/store/a.py:1: upward import of pipeline.loop.campaign from pipeline/store"]


def test_tests_and_bench_import_no_private_name_of_a_package():
    # They sit outside the layers but use the packages as a user would: through public names.
    found = []
    for folder in ("tests", "bench"):
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO)
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(rel))
            for line, module, names in _imports(tree, ".".join(rel.with_suffix("").parts)):
                if module.split(".")[0] in LAYERS:
                    found += [f"{rel}:{line}: {module}.{n}" for n in names if n.startswith("_") and
                              not n.startswith("__")]
    assert found == []


def test_every_package_is_checked():
    # A new top-level package must be given a layer, or the rules above would skip it.
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests"}
    assert packages == set(LAYERS)


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name in LAYERS:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    for rel, text in files.items():
        (tmp_path / rel).write_text(text)
    return tmp_path


@pytest.mark.parametrize(("files", "needle"), [
    ({"pipeline/cli.py": "from flows.generate import run_generate\n"},
     "pipeline/cli.py:1: upward import of flows.generate from pipeline"),
    ({"archives/base.py": "def f():\n    import pipeline.config\n"},
     "archives/base.py:2: upward import of pipeline.config from archives"),
    ({"finetune/pipeline.py": "from filters.export import export_runs\n"},
     "finetune/pipeline.py:1: sibling import of filters.export from finetune"),
    ({"pipeline/x.py": "import importlib\nimportlib.import_module('filters.config')\n"},
     "pipeline/x.py:2: upward import of filters.config from pipeline"),
    ({"pipeline/y.py": "from prefect import flow\n"}, "pipeline/y.py:1: Prefect import (prefect) outside flows/"),
    ({"filters/y.py": "def f():\n    from prefect_dask import DaskTaskRunner\n"},
     "filters/y.py:2: Prefect import (prefect_dask) outside flows/"),
    ({"finetune/c.py": "from pipeline.config import _build\n"},
     "finetune/c.py:1: private name pipeline.config._build imported from finetune"),
    ({"finetune/d.py": "import pipeline.store.seeds as seeds\nseeds._read_jsonl('x')\n"},
     "finetune/d.py:2: private name pipeline.store.seeds._read_jsonl used from finetune"),
])
def test_the_checker_catches_each_kind_of_bad_import(tmp_path: Path, files: dict[str, str], needle: str):
    assert violations(_tree(tmp_path, files)) == [needle]


def test_the_checker_accepts_downward_relative_and_own_private_imports(tmp_path: Path):
    root = _tree(tmp_path, {
        "flows/cli.py": "from prefect import flow\nfrom filters.export import export_runs\nfrom finetune import x\n",
        "filters/a.py": "from pipeline.store.records import Status\nfrom archives.base import Archive\n",
        "pipeline/b.py": "from . import config\nfrom .config import _private\nfrom pipeline.config import _own\n",
    })
    assert violations(root) == []


def test_no_flow_file_shadows_a_package():
    """Prefect loads a deployment's flow file as a script with flows/ first on sys.path, so a
    flows/<package>.py would be imported in place of that package (flows/pipeline.py did
    that to `pipeline`, and every scheduled run crashed)."""
    packages = {p.name for p in REPO.iterdir() if (p / "__init__.py").is_file()}
    shadows = sorted(f.stem for f in (REPO / "flows").glob("*.py") if f.stem in packages)
    assert shadows == []
