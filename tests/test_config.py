from pathlib import Path

import pytest

from pipeline.config import ConfigError, dump_config, from_dict, load_config, to_dict


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
        ("[engine]\nkind = 'openai'\n", "engine.base_urls"),
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
    data["engine"]["base_urls"] = ["http://127.0.0.1:1/v1"]
    cfg = from_dict(data)
    text = dump_config(cfg)
    assert "api_key_env" in text and "sk-" not in text


def test_packaged_default_matches_dataclass_defaults():
    from pipeline.config import Config

    assert load_config() == Config()
