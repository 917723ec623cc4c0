import warnings
from pathlib import Path

import pytest
import tomli_w

from pipeline.config import ConfigError, ConfigMovedWarning, dump_config, from_dict, load_config, to_dict


def test_default_loads_and_round_trips(tmp_path: Path):
    cfg = load_config()
    assert cfg.engine.kind == "vllm" and cfg.engine.model == "embedded"
    assert cfg.quality.lo == 0.1 and cfg.quality.hi == 0.9
    p = tmp_path / "resolved.toml"
    p.write_text(dump_config(cfg))
    assert load_config(p) == cfg


def test_user_file_overrides_a_subset(tmp_path: Path):
    p = tmp_path / "c.toml"
    p.write_text("[solver]\nk = 16\n[quality]\nfunction = 'learnability'\n")
    cfg = load_config(p)
    assert cfg.solver.k == 16 and cfg.quality.function == "learnability"
    assert cfg.solver.temperature == load_config().solver.temperature


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[solver]\nkk = 3\n", "solver.kk"),
        ("[nonsense]\na = 1\n", "nonsense"),
        ("[solver]\nk = 'eight'\n", "solver.k"),
        ("[solver]\nk = 2.5\n", "solver.k"),
        ("[solver]\nadaptive = 1\n", "solver.adaptive"),
        ("[solver]\nk = 0\n", "solver.k"),
        ("[quality]\nlo = 0.9\nhi = 0.1\n", "quality.lo"),
        ("[quality]\nfunction = 'magic'\n", "quality.function"),
        ("[engine]\nkind = 'openai'\n", "engine.openai.base_urls"),
        ("[run]\nbatch_size = -1\n", "run.batch_size"),
        ("solver = 3\n", "solver"),
    ],
)
def test_bad_configs_name_the_key(tmp_path: Path, text: str, needle: str):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(p)
    msg = str(info.value)
    assert needle in msg and "\n" not in msg


def test_not_toml_and_missing_file(tmp_path: Path):
    p = tmp_path / "bad.toml"
    p.write_text("[solver\nk=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(p)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")


def test_secrets_never_in_dump():
    data = to_dict(load_config())
    data["engine"]["kind"] = "openai"
    data["engine"]["openai"]["base_urls"] = ["http://127.0.0.1:1/v1"]
    cfg = from_dict(data)
    text = dump_config(cfg)
    assert "api_key_env" in text and "sk-" not in text


def test_packaged_default_matches_dataclass_defaults():
    from pipeline.config import Config

    assert load_config() == Config()


def test_backend_keys_live_in_their_own_tables(tmp_path: Path):
    p = tmp_path / "c.toml"
    p.write_text('[engine]\nkind = "openai"\nmodel = "m"\n[engine.openai]\nbase_urls = ["http://h:1/v1"]\n'
                 'concurrency = 3\n[solver.own.vllm]\nenforce_eager = false\n')
    cfg = load_config(p)
    assert cfg.engine.openai.base_urls == ("http://h:1/v1",) and cfg.engine.openai.concurrency == 3
    assert cfg.engine.vllm.enforce_eager is True  # the packaged default, untouched
    assert cfg.solver.own.vllm.enforce_eager is False
    # A backend's key outside its table is an unknown key of that table, named with its place.
    p.write_text("[engine.vllm]\nbase_urls = []\n")
    with pytest.raises(ConfigError, match=r"engine\.vllm\.base_urls.*expected one of: gpu_memory_utilization"):
        load_config(p)


@pytest.mark.parametrize(("section", "key", "value", "table"), [
    ("engine", "base_urls", '["http://h:1/v1"]', "openai"),
    ("engine", "enforce_eager", "false", "vllm"),
    ("engine", "script", '"s.json"', "scripted"),
    ("verifier.own", "retries", "0", "openai"),
])
def test_old_flat_engine_keys_load_with_one_line_saying_where_they_moved(tmp_path: Path, section, key, value, table):
    p = tmp_path / "old.toml"
    p.write_text(f"[{section}]\n{key} = {value}\n")
    with pytest.warns(ConfigMovedWarning) as caught:
        cfg = load_config(p)
    messages = [str(w.message) for w in caught]
    assert messages == [f"config key '{section}.{key}' in {p} has moved to '{section}.{table}.{key}' "
                        f"(the [{section}.{table}] table); loaded from its old place"]
    assert (caught[0].filename, caught[0].lineno) == (str(p), 2)  # shown at the key's own line
    engine = cfg.engine if section == "engine" else cfg.verifier.own
    loaded = getattr(getattr(engine, table), key)
    assert loaded == {"base_urls": ("http://h:1/v1",), "enforce_eager": False, "script": "s.json", "retries": 0}[key]
    # Written back in the new form: the resolved config loads without a warning.
    again = tmp_path / "again.toml"
    again.write_text(dump_config(cfg))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_config(again) == cfg


def test_old_run_config_resumes(tmp_path: Path):
    """A run directory written before the backend tables (its config.toml with flat engine
    keys, as every earlier version dumped it) still opens."""
    data = to_dict(load_config())
    for table in ("vllm", "openai", "scripted"):
        data["engine"].update(data["engine"].pop(table))
    old = tmp_path / "config.toml"
    old.write_text(tomli_w.dumps(data))
    with pytest.warns(ConfigMovedWarning):
        assert load_config(old) == load_config()
