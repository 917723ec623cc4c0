"""Mutation operators: which ones a campaign uses, how each slot picks one, their yield.

Operators (roles in `[operators]`, each a prompt file whose `operator` is written on the
rows it produces): `mutate` (SPARQ's, generator.prompt), `harder` / `easier`
(Evol-Instruct rewrites), `niche` (ACES-style, toward an empty neighbouring niche;
pipeline/placement/niche.py) and `crossover` (two parents).

Choice per slot: by weight (`bandit = "none"`), or a bandit over the operators with
weight > 0 rewarded by archived-per-attempt (a candidate is "archived" when it founded or
improved an elite): `thompson` samples Beta(1 + archived, 1 + attempts - archived) per
slot; `ucb1` takes the best mean + c * sqrt(2 ln N / n) per slot, counting the slots
already given to an operator in this batch as pulls (so one batch is not all one arm).
Counts are a pure function of the committed candidates (`operator_counts`), so resume
recomputes them from the shards; draws use the campaign's checkpointed RNG. With a single
operator nothing is drawn, so the default run consumes the RNG exactly as before operators.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.config import OPERATOR_ROLES, Config, ConfigError
from pipeline.prompts import PromptTemplate, load_prompt
from pipeline.store.records import ArchiveOutcome, Candidate, OperatorMetrics, Status, now

DEFAULT_NAMES = {"mutate": "sparq_mutate", "harder": "harder", "easier": "easier", "niche": "niche",
                 "crossover": "crossover"}
ARCHIVED = (ArchiveOutcome.NEW, ArchiveOutcome.IMPROVE)


@dataclass(frozen=True)
class OperatorSpec:
    role: str  # a key of [operators]
    name: str  # written on rows (the prompt's `operator`, else the role's default)
    weight: float
    prompt: PromptTemplate


@dataclass
class Counts:
    attempts: int = 0
    archived: int = 0


def load_operators(config: Config) -> list[OperatorSpec]:
    """The operators with weight > 0, in role order; their prompts are loaded (and checked)."""
    ops = config.operators
    specs = []
    for role in OPERATOR_ROLES:
        weight = getattr(ops, role)
        if weight <= 0:
            continue
        prompt = load_prompt(config.generator.prompt if role == "mutate" else getattr(ops, f"{role}_prompt"))
        need = {"problem", "solution"} | ({"target"} if role == "niche" else set()) | \
            ({"problem2", "solution2"} if role == "crossover" else set())
        missing = sorted(need - set(prompt.fields))
        if missing:
            key = "generator.prompt" if role == "mutate" else f"operators.{role}_prompt"
            raise ConfigError(f"config key '{key}': prompt {prompt.name!r} lacks placeholders {missing}")
        specs.append(OperatorSpec(role, prompt.operator or DEFAULT_NAMES[role], weight, prompt))
    names = [s.name for s in specs]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise ConfigError(f"config key 'operators': two operators write the same operator name {dup!r}; "
                         "give their prompt files distinct `operator` values")
    return specs


def operator_counts(candidates: pa.Table) -> dict[str, Counts]:
    """Attempts and archived per operator over the generated (step > 0) candidates."""
    gen = candidates.filter(pc.greater(candidates["step"], 0)).select(["operator", "archive_outcome"])
    counts: dict[str, Counts] = {}
    for op, outcome in zip(gen["operator"].to_pylist(), gen["archive_outcome"].to_pylist(), strict=True):
        c = counts.setdefault(op, Counts())
        c.attempts += 1
        c.archived += outcome in ARCHIVED
    return counts


def update_counts(counts: dict[str, Counts], rows: Sequence[Candidate]) -> None:
    for r in rows:
        if r.step > 0:
            c = counts.setdefault(r.operator, Counts())
            c.attempts += 1
            c.archived += r.archive_outcome in ARCHIVED


def choose_operators(specs: Sequence[OperatorSpec], counts: Mapping[str, Counts], n: int,
                     rng: np.random.Generator, *, bandit: str, ucb_c: float = 1.0) -> list[OperatorSpec]:
    """One operator per slot."""
    if not specs:
        raise ValueError("specs: at least one operator is needed")
    if len(specs) == 1 or n == 0:
        return [specs[0]] * n
    if bandit == "none":
        w = np.array([s.weight for s in specs], dtype=np.float64)
        return [specs[i] for i in rng.choice(len(specs), size=n, p=w / w.sum()).tolist()]
    stats = [counts.get(s.name, Counts()) for s in specs]
    if bandit == "thompson":
        a = np.array([1.0 + c.archived for c in stats])
        b = np.array([1.0 + c.attempts - c.archived for c in stats])
        draws = rng.beta(a, b, size=(n, len(specs)))
        return [specs[i] for i in np.argmax(draws, axis=1).tolist()]
    if bandit == "ucb1":
        pulls = [c.attempts for c in stats]
        means = [c.archived / c.attempts if c.attempts else 0.0 for c in stats]
        out = []
        for _ in range(n):
            total = sum(pulls)
            scores = [math.inf if p == 0 else m + ucb_c * math.sqrt(2 * math.log(total) / p)
                      for m, p in zip(means, pulls, strict=True)]
            i = int(np.argmax(scores))  # first of ties: role order
            pulls[i] += 1
            out.append(specs[i])
        return out
    raise ValueError(f"bandit must be one of ('none', 'ucb1', 'thompson'); got {bandit!r}")


def operator_metrics(step: int, rows: Sequence[Candidate], lo: float, hi: float) -> list[OperatorMetrics]:
    """One operators-table row per operator used in the step (order of first use)."""
    created = now()
    out = []
    for name in dict.fromkeys(r.operator for r in rows):
        mine = [r for r in rows if r.operator == name]
        ok = [r for r in mine if r.status == Status.OK]
        archived = sum(r.archive_outcome in ARCHIVED for r in ok)
        out.append(OperatorMetrics(
            step=step, operator=name, attempts=len(mine), ok=len(ok),
            in_band=sum(r.solve_rate is not None and lo <= r.solve_rate <= hi for r in ok),
            archived=archived, disputed=sum(bool(r.disputed) for r in ok),
            archive_yield=archived / len(mine), gen_tokens=sum(r.gen_tokens for r in mine),
            solve_tokens=sum(r.solve_tokens for r in mine), created_at=created))
    return out
