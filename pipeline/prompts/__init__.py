"""Prompt templates: TOML files with a version that is recorded on every row they produce.

A template file holds `version`, `kind` ("completion" for base models, "chat" for
instruction-tuned models, whose engine applies the model's chat template), `template`
with `{{name}}` placeholders, `stop` strings and an optional `response_prefix` (the text
the completion continues, re-attached before parsing). Placeholders use `{{...}}` rather
than `str.format` because problems contain LaTeX braces.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

PROMPT_DIR = Path(__file__).parent
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")

Prompt = str | list[dict[str, str]]


class PromptError(ValueError):
    """A prompt file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: str
    kind: str
    template: str
    stop: tuple[str, ...] = ()
    response_prefix: str = ""
    system: str = ""
    operator: str = ""

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(_PLACEHOLDER.findall(self.template)))

    def render(self, **values: str) -> Prompt:
        """Fill the placeholders; a chat template becomes a message list."""
        missing = [f for f in self.fields if f not in values]
        if missing:
            raise PromptError(f"prompt {self.name!r} needs values for {missing}")
        text = _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), self.template)
        if self.kind == "completion":
            return text
        messages = [{"role": "system", "content": self.system}] if self.system else []
        messages.append({"role": "user", "content": text})
        return messages


def load_prompt(name_or_path: str) -> PromptTemplate:
    """Load a packaged prompt by name (e.g. "solve_fewshot") or any .toml path."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = PROMPT_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in PROMPT_DIR.glob("*.toml"))
        raise PromptError(f"prompt {name_or_path!r} not found (looked for {path}); "
                          f"packaged prompts: {', '.join(known)}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PromptError(f"prompt file {path} is not valid TOML: {exc}") from None
    for key in ("version", "kind", "template"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise PromptError(f"prompt file {path}: key '{key}' must be a non-empty string")
    if data["kind"] not in ("completion", "chat"):
        raise PromptError(f"prompt file {path}: kind must be 'completion' or 'chat', "
                          f"got {data['kind']!r}")
    return PromptTemplate(
        name=path.stem,
        version=data["version"],
        kind=data["kind"],
        template=data["template"],
        stop=tuple(data.get("stop", ())),
        response_prefix=data.get("response_prefix", ""),
        system=data.get("system", ""),
        operator=data.get("operator", ""),
    )


__all__ = ["PROMPT_DIR", "Prompt", "PromptError", "PromptTemplate", "load_prompt"]


def load_chat_template(name_or_path: str) -> str | None:
    """A Jinja chat template: "" = none (the model's own), a packaged name ("plain": a
    "User: / Assistant:" layout for base models that ship none), or a file path."""
    if not name_or_path:
        return None
    path = Path(name_or_path)
    if path.suffix != ".jinja":
        path = PROMPT_DIR / f"{name_or_path}_chat.jinja"
    if not path.is_file():
        known = sorted(p.stem.removesuffix("_chat") for p in PROMPT_DIR.glob("*_chat.jinja"))
        raise PromptError(f"engine.chat_template {name_or_path!r}: no such file ({path}); "
                          f"packaged templates: {', '.join(known)}, or a path to a .jinja file")
    return path.read_text(encoding="utf-8")
