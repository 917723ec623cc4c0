import pytest

from pipeline.prompts import PROMPT_DIR, PromptError, load_prompt


@pytest.mark.parametrize("name", sorted(p.stem for p in PROMPT_DIR.glob("*.toml")))
def test_packaged_prompts_load_and_render(name: str):
    t = load_prompt(name)
    assert t.version and t.kind in ("completion", "chat")
    values = {f: "x{1}" for f in t.fields}  # LaTeX braces must survive
    out = t.render(**values)
    text = out if isinstance(out, str) else out[-1]["content"]
    assert "x{1}" in text and "{{" not in text


def test_unknown_prompt_lists_packaged_ones():
    with pytest.raises(PromptError, match="solve_fewshot"):
        load_prompt("nope")


def test_missing_placeholder_value():
    with pytest.raises(PromptError, match="problem"):
        load_prompt("solve_fewshot").render()
