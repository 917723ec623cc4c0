"""Domains: what the loop needs to know about the kind of problem it grows.

The loop (pipeline/loop/campaign.py, pipeline/loop/stream.py) draws parents, sends prompts, commits
rows and fills the archive without knowing what a problem is. A domain supplies the rest:

- `seed_columns`: the columns a seed row must have (problem, solution, answer for math);
- `default_prompts`: the packaged prompts it is run with (role -> prompt name);
- `parse(text, response_prefix)`: a generator output as a `Mutation` (problem, solution,
  answer) or a `ParseFailure` with its reason;
- `check(mutation, checks)`: its deterministic validity checks on one parsed candidate;
- `check_names`: the checks `[validity] checks` may name;
- `repair(mutation)`: a `Repair` of a reference whose fault the domain can correct with
  certainty (math: a wrong result in the last computation), or None; the loop checks the
  repaired mutation again (`[validity] repair`);
- `new_judge(timeout_s)`: an object whose `judge_many([(reference, attempts)])` gives a
  `Verdict` per problem (and `close()`): attempts judged against the reference;
- `read_judgements(replies)`: an LLM judge's replies as a Verdict (`[verifier] method = "judge"`);
- `messages(problem, content)`: an exported training row's chat messages.

`[domain] kind` picks one from `DOMAINS`; a new domain is a module here plus one line in
`[domain] kind` names a package here, registered by one entry in pipeline.config.CHECK_NAMES
(with the check names `[validity] checks` may give for it, which the config loader checks):
`DOMAINS` loads `pipeline.domains.<kind>` and builds its module-level `DOMAIN` class.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Protocol

from pipeline.config import DOMAIN_KINDS, DomainConfig
from pipeline.domains.base import Mutation, ParseFailure, Repair, Validity, Verdict


class Judge(Protocol):
    def judge_many(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[Verdict]:
        ...

    def close(self) -> None:
        ...


class Domain(Protocol):
    kind: str
    seed_columns: tuple[str, ...]
    default_prompts: dict[str, str]
    check_names: tuple[str, ...]

    def parse(self, text: str, response_prefix: str) -> Mutation | ParseFailure:
        ...

    def check(self, mutation: Mutation, checks: tuple[str, ...]) -> Validity:
        ...

    def repair(self, mutation: Mutation) -> Repair | None:
        ...

    def new_judge(self, timeout_s: float) -> Judge:
        ...

    def read_judgements(self, replies: list[str]) -> tuple[Verdict, str | None]:
        ...

    def messages(self, problem: str, content: str) -> list[dict[str, str]]:
        ...


def _loader(kind: str) -> Callable[[], Domain]:
    def load() -> Domain:
        # Imported on first use: the code domain's sandbox and math's math-verify stay
        # unloaded in a campaign of the other domain.
        return importlib.import_module(f"pipeline.domains.{kind}").DOMAIN()

    return load


DOMAINS: dict[str, Callable[[], Domain]] = {kind: _loader(kind) for kind in DOMAIN_KINDS}


def make_domain(cfg: DomainConfig) -> Domain:
    """The domain named by `[domain] kind`."""
    try:
        return DOMAINS[cfg.kind]()
    except KeyError:
        raise ValueError(f"domain.kind: expected one of {tuple(DOMAINS)}, got {cfg.kind!r}") from None
