"""Configuration: TOML files loaded into frozen, typed objects.

The packaged CPU default (pipeline/configs/default.toml) is always loaded first; a user
file overrides any subset of its keys. Unknown keys, wrong types and out-of-range values
fail at load time with a `ConfigError` whose one-line message names the key.

Secrets never live in a config: the `openai` engine names the environment variable that
holds its key (`api_key_env`), so the resolved config written to a run is safe to share.

The loader itself (`read_toml`, `check_keys`, `merge`, `build`, `load_layered`,
`replace_section`, `to_dict`) is public and the only one in the project: the export config
(filters/config.py) and the fine-tuning config (finetune/config.py) go through it with their
own ConfigError subclass, so every config follows the same rules and reads the same messages.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "default.toml"


class ConfigError(ValueError):
    """A config problem; the message names the key and what was expected."""


# Upper bounds of the config's numbers: every value that loads must be usable (a
# batch_size of 10**20 once loaded, started vLLM and then overflowed an index).
BIG = 10**9  # counts of steps and rows
MANY = 1_000_000  # sizes that become arrays or in-flight requests
WEEK = 7 * 24 * 3600  # seconds


def check(cond: bool, key: str, expected: str, value: object, error: type[ConfigError] = ConfigError) -> None:
    """Raise `error` naming `key` unless `cond` holds; for the `validate` methods of config classes."""
    if not cond:
        raise error(f"config key '{key}': expected {expected}, got {value!r}")


SELECTIONS = ("archive", "static_uniform", "static_diverse", "dynamic_uniform", "dynamic_diverse")
# How a campaign runs (pipeline/loop/stream.py): "stream" keeps the engine's batch full and
# commits every `commit_every` finished candidates; "steps" runs each step's phases as
# barriers (exact replays); "auto" streams on openai endpoints and vLLM on a GPU (see
# RunConfig.streams) and runs steps elsewhere.
RUN_MODES = ("auto", "stream", "steps")


@dataclass(frozen=True)
class RunConfig:
    seed: int = 0
    steps: int = 5
    batch_size: int = 24
    # Parent selection (pipeline/loop/selection.py): "archive" = uniform over occupied cells;
    # SPARQ's static_* draw seeds only, dynamic_* draw from the top rows by quality.
    selection: str = "archive"
    working_set: int = 64  # dynamic_uniform: T, the working set's size
    niche_size: int = 4  # dynamic_diverse: T per niche
    mode: str = "auto"
    in_flight: int = 0  # stream: candidates in flight at most; 0 = from the engine's capacity
    commit_every: int = 0  # stream: finished candidates per commit; 0 = batch_size
    commit_seconds: float = 120.0  # stream: commit what has finished after this long anyway
    # Refused requests (prompt over the context, rejected by the server) fail their candidate;
    # this many in a row, none answered in between, stop the run (pipeline/loop/failures.py).
    max_failed_in_a_row: int = 32

    def validate(self, p: str) -> None:
        check(0 <= self.seed < 2**32, f"{p}.seed", "an integer in [0, 2**32)", self.seed)
        check(0 <= self.steps <= BIG, f"{p}.steps", f"an integer in [0, {BIG}]", self.steps)
        check(1 <= self.batch_size <= MANY, f"{p}.batch_size", f"an integer in [1, {MANY}]", self.batch_size)
        check(self.selection in SELECTIONS, f"{p}.selection", f"one of {SELECTIONS}", self.selection)
        check(1 <= self.working_set <= MANY, f"{p}.working_set", f"an integer in [1, {MANY}]", self.working_set)
        check(1 <= self.niche_size <= MANY, f"{p}.niche_size", f"an integer in [1, {MANY}]", self.niche_size)
        check(self.mode in RUN_MODES, f"{p}.mode", f"one of {RUN_MODES}", self.mode)
        check(0 <= self.in_flight <= MANY, f"{p}.in_flight", f"an integer in [0, {MANY}] (0 = from the engine)",
              self.in_flight)
        check(0 <= self.commit_every <= MANY, f"{p}.commit_every", f"an integer in [0, {MANY}] (0 = batch_size)",
              self.commit_every)
        check(0 < self.commit_seconds <= WEEK, f"{p}.commit_seconds", f"seconds in (0, {WEEK}]", self.commit_seconds)
        check(1 <= self.max_failed_in_a_row <= MANY, f"{p}.max_failed_in_a_row", f"an integer in [1, {MANY}]",
              self.max_failed_in_a_row)

    def streams(self, engine_streams: bool) -> bool:
        """Whether this campaign runs as a stream on an engine that does (`engine_streams`,
        declared per backend in pipeline/engines BACKENDS) or does not.

        auto: as the engine declares (a continuous batch to keep full: openai endpoints and
        in-process vLLM; on 2 cores the stream decoded 178.5 tokens/s against 162.1 in steps
        mode, bench/streaming.py); "stream" or "steps" whatever the engine."""
        if self.mode != "auto":
            return self.mode == "stream"
        return engine_streams


@dataclass(frozen=True)
class SeedsConfig:
    # "bundled" = pipeline/data/seeds/seeds.jsonl (package data; "bundled-code": the code
    # domain's pipeline/data/seeds/code.jsonl); otherwise a local .jsonl or
    # .parquet path, or "hf:NAME" for a `datasets` dataset (loaded with `split`).
    source: str = "bundled"
    split: str = "train"
    problem: str = "problem"
    solution: str = "solution"
    answer: str = "answer"
    skill: str = "skill"  # optional column with a skill label, used when the source has it
    limit: int = 0  # 0 = all
    # The longest problem, solution or answer accepted, in characters: a seed is put into
    # few-shot and mutation prompts, and one of megabytes would fill every context it is in.
    # 1,800: a crossover prompt holding two parents whose problems and solutions are all this
    # long (math text like the bundled seeds': about 2 characters per token of the bundled
    # model) fits the default 4,096-token context with the generator's tokens
    # (tests/guarantees/test_failures.py counts it with the model's tokenizer).
    # A prompt that still does not fit fails its candidate (status failed), not the run.
    max_chars: int = 1_800

    def validate(self, p: str) -> None:
        check(bool(self.source), f"{p}.source", "a non-empty source", self.source)
        for name in ("problem", "solution", "answer"):
            check(bool(getattr(self, name)), f"{p}.{name}", "a column name", getattr(self, name))
        check(0 <= self.limit <= BIG, f"{p}.limit", f"an integer in [0, {BIG}]", self.limit)
        check(1 <= self.max_chars <= 10_000_000, f"{p}.max_chars", "an integer in [1, 10000000]", self.max_chars)


ENGINE_KINDS = ("transformers", "vllm", "openai", "scripted")
DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class VllmSettings:
    """[engine.vllm]: the keys only the in-process vLLM engine reads."""

    gpu_memory_utilization: float = 0.85  # on a GPU; on CPU the KV cache size is fixed
    # Skip torch.compile and CUDA graphs. Measured on CPU here (docs/engines.md): start
    # 34 s instead of 77 s, at 10% fewer tokens/s; on a GPU set it to false.
    enforce_eager: bool = True

    def validate(self, p: str) -> None:
        check(0 < self.gpu_memory_utilization <= 1, f"{p}.gpu_memory_utilization",
              "a number in (0, 1]", self.gpu_memory_utilization)


@dataclass(frozen=True)
class OpenAISettings:
    """[engine.openai]: the keys only the OpenAI-compatible HTTP engine reads."""

    # One or more OpenAI-compatible base URLs (e.g. http://127.0.0.1:8000/v1).
    base_urls: tuple[str, ...] = ()
    api_key_env: str = "OPENAI_API_KEY"  # the variable that holds the key, never the key
    concurrency: int = 8  # requests in flight per URL
    timeout_s: float = 120.0
    retries: int = 3
    backoff_s: float = 1.0
    cooldown_s: float = 30.0  # an endpoint failing at the transport level is skipped this long

    def validate(self, p: str) -> None:
        check(1 <= self.concurrency <= 10_000, f"{p}.concurrency", "an integer in [1, 10000]", self.concurrency)
        check(0 < self.timeout_s <= WEEK, f"{p}.timeout_s", f"seconds in (0, {WEEK}]", self.timeout_s)
        check(0 <= self.retries <= 1000, f"{p}.retries", "an integer in [0, 1000]", self.retries)
        check(0 <= self.backoff_s <= 3600, f"{p}.backoff_s", "seconds in [0, 3600]", self.backoff_s)
        check(0 <= self.cooldown_s <= WEEK, f"{p}.cooldown_s", f"seconds in [0, {WEEK}]", self.cooldown_s)


@dataclass(frozen=True)
class ScriptedSettings:
    """[engine.scripted] (tests only): a JSON file of canned outputs."""

    script: str = ""


# The backend keys that sat directly in [engine] before each backend had its own table,
# and the table they live in now; the loader moves them (with a one-line warning), so old
# configs and the config.toml of old run directories still load.
MOVED_ENGINE_KEYS = {
    **{k: "vllm" for k in ("gpu_memory_utilization", "enforce_eager")},
    **{k: "openai" for k in ("base_urls", "api_key_env", "concurrency", "timeout_s", "retries",
                             "backoff_s", "cooldown_s")},
    "script": "scripted",
}


def _key_line(source: str, table: str, key: str) -> int:
    """The line of `key` in the [table] of the TOML file `source` (0 if not found)."""
    try:
        lines = Path(source).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return 0
    inside = False
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if text.startswith("["):
            inside = text.split("#")[0].strip() == f"[{table}]"
        elif inside and re.match(rf"{re.escape(key)}\s*=", text):
            return number
    return 0


class ConfigMovedWarning(UserWarning):
    """A config key given at its old place, loaded from there; the message says where it lives now."""


@dataclass(frozen=True)
class EngineConfig:
    """[engine]: the keys every backend reads, and one table per backend for its own."""

    kind: str = "vllm"
    # "embedded" = the bundled Gemma 3 270M; otherwise a local path or a model name.
    model: str = "embedded"
    # "auto": vllm bfloat16 on CPU (its CPU kernels' type) and the model's own on GPU;
    # transformers float32 on CPU. Or a torch dtype name.
    dtype: str = "auto"
    # A Jinja chat template file for chat prompts, for models that ship none (the bundled
    # base model: "plain" is the packaged one); "" = the model's own.
    chat_template: str = ""
    device: str = "cpu"
    # Sequences per call: a transformers forward pass, an evaluation chunk (finetune).
    batch_size: int = 64
    max_model_len: int = 4096
    vllm: VllmSettings = field(default_factory=VllmSettings)
    openai: OpenAISettings = field(default_factory=OpenAISettings)
    scripted: ScriptedSettings = field(default_factory=ScriptedSettings)

    @staticmethod
    def moved(data: dict[str, Any], prefix: str, source: str) -> dict[str, Any]:
        """`data` (an [engine] table as read) with each old flat backend key moved into its
        backend's table; one warning per key says where it lives now."""
        old = [k for k in data if k in MOVED_ENGINE_KEYS]
        if not old:
            return data
        out = {k: v for k, v in data.items() if k not in MOVED_ENGINE_KEYS}
        for key in old:
            table = MOVED_ENGINE_KEYS[key]
            sub = out.get(table, {})
            if isinstance(sub, dict):  # not a table: build() names that error
                # The old place wins: a user file's flat key over the packaged default's table.
                out[table] = {**sub, key: data[key]}
            # Shown as "FILE:LINE: ConfigMovedWarning: ..." with the key's line of the user's
            # file under it, not a line of this module.
            warnings.warn_explicit(
                f"config key '{prefix}.{key}' in {source} has moved to '{prefix}.{table}.{key}' "
                f"(the [{prefix}.{table}] table); loaded from its old place", ConfigMovedWarning,
                filename=source, lineno=_key_line(source, prefix, key))
        return out

    def validate(self, p: str) -> None:
        check(self.kind in ENGINE_KINDS, f"{p}.kind", f"one of {ENGINE_KINDS}", self.kind)
        check(bool(self.model), f"{p}.model", "a model path or name", self.model)
        check(self.dtype == "auto" or self.dtype in DTYPES, f"{p}.dtype", f"'auto' or one of {DTYPES}", self.dtype)
        check(1 <= self.batch_size <= MANY, f"{p}.batch_size", f"an integer in [1, {MANY}]", self.batch_size)
        check(1 <= self.max_model_len <= 10_000_000, f"{p}.max_model_len", "an integer in [1, 10000000]",
              self.max_model_len)
        if self.kind == "openai":
            check(len(self.openai.base_urls) >= 1, f"{p}.openai.base_urls",
                  "at least one URL for the openai engine", list(self.openai.base_urls))
        if self.kind == "scripted":
            check(bool(self.scripted.script), f"{p}.scripted.script", "a script file for the scripted engine",
                  self.scripted.script)


@dataclass(frozen=True)
class GeneratorConfig:
    prompt: str = "mutate_fewshot"  # a prompt file name under pipeline/prompts, or a path
    temperature: float = 0.3  # default.toml says why
    top_p: float = 0.95
    max_tokens: int = 120
    # The parent's problem is a stop string: a copy of it stops there (a duplicate, its
    # solution never written). Off: every output runs to its own end (SPARQ's sampling).
    stop_at_parent: bool = True

    def validate(self, p: str) -> None:
        check(0 <= self.temperature <= 10, f"{p}.temperature", "a number in [0, 10]", self.temperature)
        check(0 < self.top_p <= 1, f"{p}.top_p", "a number in (0, 1]", self.top_p)
        check(1 <= self.max_tokens <= 1_000_000, f"{p}.max_tokens", "an integer in [1, 1000000]", self.max_tokens)


SOLVER_ENGINES = ("campaign", "own")


@dataclass(frozen=True)
class SolverConfig:
    prompt: str = "solve_worked"
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 48
    k: int = 8  # attempts per candidate (the maximum, in adaptive mode)
    adaptive: bool = False
    round_size: int = 4
    delta: float = 0.05
    prior_a: float = 0.1  # U-shaped: most generated problems are solved always or never
    prior_b: float = 0.1
    min_attempts: int = 4
    verify_timeout_s: float = 10.0
    # "campaign": the campaign's engine solves (SPARQ's single model); "own": the
    # [solver.own] table, e.g. a fine-tuned student (`sparq rounds`, docs/rounds.md).
    engine: str = "campaign"
    own: EngineConfig = field(default_factory=EngineConfig)

    def validate(self, p: str) -> None:
        check(self.engine in SOLVER_ENGINES, f"{p}.engine", f"one of {SOLVER_ENGINES}", self.engine)
        check(0 <= self.temperature <= 10, f"{p}.temperature", "a number in [0, 10]", self.temperature)
        check(0 < self.top_p <= 1, f"{p}.top_p", "a number in (0, 1]", self.top_p)
        check(1 <= self.max_tokens <= 1_000_000, f"{p}.max_tokens", "an integer in [1, 1000000]", self.max_tokens)
        check(1 <= self.k <= 1024, f"{p}.k", "an integer in [1, 1024]", self.k)
        check(1 <= self.round_size <= 1024, f"{p}.round_size", "an integer in [1, 1024]", self.round_size)
        check(0 < self.delta < 0.5, f"{p}.delta", "a number in (0, 0.5)", self.delta)
        check(0 < self.prior_a <= 1e6, f"{p}.prior_a", "a number in (0, 1e6]", self.prior_a)
        check(0 < self.prior_b <= 1e6, f"{p}.prior_b", "a number in (0, 1e6]", self.prior_b)
        check(1 <= self.min_attempts <= 1024, f"{p}.min_attempts", "an integer in [1, 1024]", self.min_attempts)
        check(0 < self.verify_timeout_s <= 3600, f"{p}.verify_timeout_s", "seconds in (0, 3600]",
              self.verify_timeout_s)


QUALITY_FUNCTIONS = ("band", "learnability")


@dataclass(frozen=True)
class QualityConfig:
    function: str = "band"
    lo: float = 0.1
    hi: float = 0.9

    def validate(self, p: str) -> None:
        check(self.function in QUALITY_FUNCTIONS, f"{p}.function", f"one of {QUALITY_FUNCTIONS}",
               self.function)
        check(0 <= self.lo <= 1, f"{p}.lo", "a number in [0, 1]", self.lo)
        check(0 <= self.hi <= 1, f"{p}.hi", "a number in [0, 1]", self.hi)
        if self.lo > self.hi:
            raise ConfigError(f"config keys '{p}.lo' and '{p}.hi': expected lo <= hi, got lo={self.lo!r}, "
                              f"hi={self.hi!r}")


# The names registered in archives/registry.py (`archives.ARCHIVE_KINDS`), kept here so this module
# does not import the archives (faiss); tests/unit/archives/test_archive_contract.py checks the two agree.
ARCHIVE_KINDS = ("cvt", "skillset", "novelty")


@dataclass(frozen=True)
class ArchiveConfig:
    kind: str = "cvt"
    cells: int = 256  # cvt: centroids; novelty: the most niches
    # "embedded" = the bundled all-MiniLM-L6-v2; otherwise any sentence-transformers name/path.
    embedder: str = "embedded"
    kmeans_iters: int = 25
    # novelty: cosine distance beyond which a problem founds a niche (the bundled seeds
    # found 171 niches at 0.3, about as many cells as they fill in a 256-cell CVT).
    radius: float = 0.3
    # skillset: vocabulary = the `skills` most common seed skills; keys of <= max_skills.
    skills: int = 100
    max_skills: int = 3
    label_prompt: str = "skills_fewshot"
    label_max_tokens: int = 16

    def validate(self, p: str) -> None:
        check(self.kind in ARCHIVE_KINDS, f"{p}.kind", f"one of {ARCHIVE_KINDS}", self.kind)
        check(1 <= self.cells <= MANY, f"{p}.cells", f"an integer in [1, {MANY}]", self.cells)
        check(bool(self.embedder), f"{p}.embedder", "a model name or path", self.embedder)
        check(1 <= self.kmeans_iters <= 10_000, f"{p}.kmeans_iters", "an integer in [1, 10000]", self.kmeans_iters)
        check(0 < self.radius <= 2, f"{p}.radius", "a number in (0, 2]", self.radius)
        check(1 <= self.skills <= 100_000, f"{p}.skills", "an integer in [1, 100000]", self.skills)
        check(1 <= self.max_skills <= 5, f"{p}.max_skills", "an integer in [1, 5]", self.max_skills)
        check(bool(self.label_prompt), f"{p}.label_prompt", "a prompt name or path", self.label_prompt)
        check(1 <= self.label_max_tokens <= 1_000_000, f"{p}.label_max_tokens", "an integer in [1, 1000000]",
              self.label_max_tokens)


OPERATOR_ROLES = ("mutate", "harder", "easier", "niche", "crossover")
BANDITS = ("none", "ucb1", "thompson")


@dataclass(frozen=True)
class OperatorsConfig:
    # Weights of the mutation operators (0 = off). `mutate` is SPARQ's, with generator.prompt.
    mutate: float = 1.0
    harder: float = 0.0
    easier: float = 0.0
    niche: float = 0.0
    crossover: float = 0.0
    harder_prompt: str = "harder_fewshot"
    easier_prompt: str = "easier_fewshot"
    niche_prompt: str = "niche_fewshot"
    crossover_prompt: str = "crossover_fewshot"
    # none: draw by weight; ucb1 / thompson: a bandit over the operators with weight > 0,
    # rewarded by archived-per-attempt.
    bandit: str = "none"
    ucb_c: float = 1.0

    def validate(self, p: str) -> None:
        for role in OPERATOR_ROLES:
            w = getattr(self, role)
            check(math.isfinite(w) and 0 <= w <= 1e6, f"{p}.{role}", "a weight in [0, 1e6]", w)
        check(sum(getattr(self, r) for r in OPERATOR_ROLES) > 0, f"{p}.mutate",
               "at least one operator weight > 0", self.mutate)
        for role in OPERATOR_ROLES[1:]:
            check(bool(getattr(self, f"{role}_prompt")), f"{p}.{role}_prompt", "a prompt name or path",
                   getattr(self, f"{role}_prompt"))
        check(self.bandit in BANDITS, f"{p}.bandit", f"one of {BANDITS}", self.bandit)
        check(0 <= self.ucb_c <= 1e6, f"{p}.ucb_c", "a number in [0, 1e6]", self.ucb_c)


# Where an invalid candidate stops (pipeline/domains/math/validity.py, docs/validity.md): "archive" =
# committed with its reasons, never archived, never a parent (no solve is sent when the
# deterministic checks reject it); "export" = archived as today, dropped at export; "none"
# = SPARQ exactly (checks recorded, nothing gated, no verifier).
GATES = ("archive", "export", "none")
VALIDITY_CHECKS = ("arithmetic", "final_answer", "problem_expression", "equation", "grounding", "unused_data",
                   "dimensions", "shape", "closed_form", "asks", "well_posed")
# The code domain's checks (pipeline/domains/code/__init__.py): the reference is Python defining the
# function the problem names, the tests call it, the reference passes them in the sandbox,
# and a function returning None does not.
CODE_CHECKS = ("syntax", "names_function", "tests_call", "reference_passes", "tests_discriminate")
# The domain registry: one entry per package pipeline/domains/<kind>/ (its `DOMAIN` class is
# loaded by that name), with the check names `[validity] checks` may give for it. Adding a
# domain is its package and one entry here.
CHECK_NAMES = {"math": VALIDITY_CHECKS, "code": CODE_CHECKS}
VERIFIER_ENGINES = ("campaign", "own")
# "solve": the verifier re-solves the problem and its majority answer must not contradict
# the reference; "judge": an instruction-tuned model reads problem, solution and answer
# and replies VERDICT: VALID or INVALID (pipeline/prompts/judge_chat.toml).
VERIFIER_METHODS = ("solve", "judge")


@dataclass(frozen=True)
class ValidityConfig:
    # A candidate is `disputed` when a confident solver majority (share >= threshold)
    # disagrees with its reference answer: SPARQ's "high quality but invalid" problems.
    threshold: float = 0.75
    exclude_parents: bool = False  # keep disputed candidates out of parent selection
    gate: str = "archive"
    checks: tuple[str, ...] = VALIDITY_CHECKS  # the deterministic checks that run
    # A reference the checks reject whose one fault the domain can correct with certainty
    # (math: a wrong result in the solution's last computation, "4 times 22 is 12") is
    # corrected and checked again; it goes on when every check passes (pipeline/domains/
    # math/repair.py). Only where a gate is on: gate "none" is SPARQ exactly. On by
    # default: measured on the embedded model it adds valid problems per token
    # (docs/validity.md, "Repair").
    repair: bool = True

    def validate(self, p: str) -> None:
        check(0 < self.threshold <= 1, f"{p}.threshold", "a number in (0, 1]", self.threshold)
        check(self.gate in GATES, f"{p}.gate", f"one of {GATES}", self.gate)
        known = tuple(dict.fromkeys(c for names in CHECK_NAMES.values() for c in names))
        for c in self.checks:
            check(c in known, f"{p}.checks", f"names from {known}", list(self.checks))


@dataclass(frozen=True)
class VerifierConfig:
    # An independent re-solve of every candidate that could enter the archive: its
    # majority answer (share >= `share` of m attempts) must not contradict the reference.
    # "campaign": the campaign's own engine; "own": the [verifier.engine] table (any
    # engine: a stronger in-process vLLM model, or openai endpoints).
    m: int = 0  # attempts per candidate; 0 = no verifier (default.toml says why it is off)
    engine: str = "campaign"
    method: str = "solve"
    prompt: str = "solve_fewshot"
    judge_prompt: str = "judge_chat"  # method = "judge"
    temperature: float = 0.2
    top_p: float = 1.0
    max_tokens: int = 48
    share: float = 0.75
    own: EngineConfig = field(default_factory=EngineConfig)

    def validate(self, p: str) -> None:
        check(0 <= self.m <= 64, f"{p}.m", "an integer in [0, 64] (0 = off)", self.m)
        check(self.engine in VERIFIER_ENGINES, f"{p}.engine", f"one of {VERIFIER_ENGINES}", self.engine)
        check(bool(self.prompt), f"{p}.prompt", "a prompt name or path", self.prompt)
        check(self.method in VERIFIER_METHODS, f"{p}.method", f"one of {VERIFIER_METHODS}", self.method)
        check(bool(self.judge_prompt), f"{p}.judge_prompt", "a prompt name or path", self.judge_prompt)
        check(0 <= self.temperature <= 10, f"{p}.temperature", "a number in [0, 10]", self.temperature)
        check(0 < self.top_p <= 1, f"{p}.top_p", "a number in (0, 1]", self.top_p)
        check(1 <= self.max_tokens <= 1_000_000, f"{p}.max_tokens", "an integer in [1, 1000000]", self.max_tokens)
        check(0 < self.share <= 1, f"{p}.share", "a number in (0, 1]", self.share)


@dataclass(frozen=True)
class DaskConfig:
    # Fan-out of mutation, solving and verification over a Dask cluster through
    # prefect-dask's DaskTaskRunner (the Prefect flow only). Each worker process builds
    # its own engine and judge once; the archive and the commit stay in the flow.
    enabled: bool = False
    address: str = ""  # a running scheduler, e.g. tcp://10.0.0.5:8786; "" = a LocalCluster
    n_workers: int = 2  # LocalCluster only
    threads_per_worker: int = 1  # LocalCluster only
    chunk_size: int = 8  # prompts (or problems to verify) per task

    def validate(self, p: str) -> None:
        check(1 <= self.n_workers <= 10_000, f"{p}.n_workers", "an integer in [1, 10000]", self.n_workers)
        check(1 <= self.threads_per_worker <= 1024, f"{p}.threads_per_worker", "an integer in [1, 1024]",
              self.threads_per_worker)
        check(1 <= self.chunk_size <= MANY, f"{p}.chunk_size", f"an integer in [1, {MANY}]", self.chunk_size)
        check(not self.address or "://" in self.address, f"{p}.address",
               "a scheduler address such as tcp://host:8786, or empty for a LocalCluster", self.address)


DOMAIN_KINDS = tuple(CHECK_NAMES)  # pipeline/domains: DOMAINS is built from these names


@dataclass(frozen=True)
class DomainConfig:
    # What kind of problem the campaign grows (pipeline/domains/): its parsing, judging,
    # validity checks and export rows.
    kind: str = "math"

    def validate(self, p: str) -> None:
        check(self.kind in DOMAIN_KINDS, f"{p}.kind", f"one of {DOMAIN_KINDS}", self.kind)


@dataclass(frozen=True)
class Config:
    domain: DomainConfig = field(default_factory=DomainConfig)
    run: RunConfig = field(default_factory=RunConfig)
    seeds: SeedsConfig = field(default_factory=SeedsConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    archive: ArchiveConfig = field(default_factory=ArchiveConfig)
    operators: OperatorsConfig = field(default_factory=OperatorsConfig)
    validity: ValidityConfig = field(default_factory=ValidityConfig)
    verifier: VerifierConfig = field(default_factory=VerifierConfig)
    dask: DaskConfig = field(default_factory=DaskConfig)

    def validate(self, p: str) -> None:
        # The checks are the chosen domain's: math's names mean nothing to code problems.
        names = CHECK_NAMES[self.domain.kind]
        check(all(c in names for c in self.validity.checks), "validity.checks",
              f"names from {names}: the checks of domain {self.domain.kind!r} (set [validity] checks to them)",
              list(self.validity.checks))

    def replace(self, section: str, **changes: Any) -> Config:
        """A copy with some keys of one section changed (validated like a loaded file)."""
        return replace_section(self, section, changes)


_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a finite number", str: "a string"}


def _describe(tp: Any) -> str:
    if dataclasses.is_dataclass(tp):
        return "a table"
    if typing.get_origin(tp) is tuple:
        item = _describe(typing.get_args(tp)[0])
        return "a list of " + {"a table": "tables", "a string": "strings"}.get(item, item)
    return _TYPE_NAMES[tp]


def _convert(value: object, tp: Any, key: str, source: str, error: type[ConfigError]) -> object:
    """One TOML value checked against a field type and returned converted (lists -> tuples)."""
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key, source, error)
    if typing.get_origin(tp) is tuple:
        item_tp = typing.get_args(tp)[0]
        if not isinstance(value, list | tuple):
            raise error(f"config key '{key}' in {source}: expected {_describe(tp)}, "
                        f"got {type(value).__name__} {value!r}")
        return tuple(_convert(v, item_tp, f"{key}[{i}]", source, error) for i, v in enumerate(value))
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        # inf and nan (valid TOML) and ints past float range are no setting: an infinite
        # backoff or timeout would hang a run.
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        try:
            ok = ok and math.isfinite(float(value))  # type: ignore[arg-type]
        except OverflowError:
            ok = False
    elif tp is str:
        ok = isinstance(value, str)
    else:
        raise TypeError(f"unsupported config field type {tp!r}")
    if not ok:
        raise error(f"config key '{key}' in {source}: expected {_describe(tp)}, got {type(value).__name__} {value!r}")
    return float(value) if tp is float else value  # type: ignore[arg-type]


def build(cls: type, data: object, prefix: str, source: str, error: type[ConfigError] = ConfigError) -> Any:
    """A frozen config dataclass `cls` from a TOML table, checked key by key.

    Unknown keys, wrong types (bool, int, finite float, str, lists of those or of tables,
    nested tables) and the class's own `validate(prefix)` fail with `error` (a ConfigError)
    whose one-line message names the key and `source`. Every config of the project (this
    module's, filters/config.py's, finetune/config.py's) is read through here.
    """
    if not isinstance(data, dict):
        raise error(f"config key '{prefix}' in {source}: expected a table, got {data!r}")
    if hasattr(cls, "moved"):
        data = cls.moved(data, prefix, source)
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        key = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        # repr: a key may hold a newline or other control characters, and the error stays one line.
        raise error(f"unknown config key {key!r} in {source}; expected one of: {', '.join(names)}")
    kwargs = {name: _convert(data[name], hints[name], f"{prefix}.{name}" if prefix else name, source, error)
              for name in names if name in data}
    obj = cls(**kwargs)
    if hasattr(obj, "validate"):
        try:
            obj.validate(prefix)
        except ConfigError as exc:
            raise type(exc)(f"{exc} (in {source})") from None
    return obj


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`base` with the keys of `over`; tables merge key by key, lists replace (they never append)."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def read_toml(path: Path | str, error: type[ConfigError] = ConfigError) -> dict[str, Any]:
    """The TOML file at `path` as a dict; a missing, non-UTF-8 or invalid file is one `error` line."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise error(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"config file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise error(f"config file {path} is not UTF-8 text: {exc}") from None


def check_keys(data: dict[str, Any], cls: type, prefix: str, source: str,
               error: type[ConfigError] = ConfigError) -> None:
    """Unknown keys and non-table sections of a user file, before it is merged over a default,
    so that the error names the user's file."""
    if hasattr(cls, "moved"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConfigMovedWarning)  # build() says it once
            data = cls.moved(data, prefix, source)
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else key
        if key not in names:
            raise error(f"unknown config key {full!r} in {source}; expected one of: {', '.join(names)}")
        if dataclasses.is_dataclass(hints[key]):
            if not isinstance(value, dict):
                raise error(f"config key '{full}' in {source}: expected a table, got {value!r}")
            check_keys(value, hints[key], full, source, error)


def load_layered(cls: type, default: Path, path: Path | str | None = None,
                 error: type[ConfigError] = ConfigError) -> Any:
    """`cls` from the packaged `default` file, overridden by the keys of `path` (if given)."""
    data = read_toml(default, error)
    obj = build(cls, data, "", str(default), error)  # the default itself must be valid
    if path is None:
        return obj
    user = read_toml(path, error)
    check_keys(user, cls, "", str(path), error)
    return build(cls, merge(data, user), "", str(path), error)


def from_dict(data: dict[str, Any], source: str = "<dict>") -> Config:
    return build(Config, data, "", source)


def packaged_config(path: Path | str) -> Path | str:
    """A bare name of a packaged config ("code": pipeline/configs/code.toml) as its path,
    unless a file of that name exists here; anything else unchanged."""
    text = str(path)
    packaged = DEFAULT_CONFIG.parent / f"{text}.toml"
    if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", text) and not Path(text).exists() and packaged.is_file():
        return packaged
    return path


def load_config(path: Path | str | None = None) -> Config:
    """The packaged default, overridden by the keys of `path` (if given: a TOML file, or
    the name of a packaged config such as "code")."""
    return load_layered(Config, DEFAULT_CONFIG, None if path is None else packaged_config(path))


def replace_section(config: Any, section: str, changes: dict[str, Any], error: type[ConfigError] = ConfigError) -> Any:
    """A copy of a config dataclass with some keys of one section changed, built and checked
    like a loaded file (the source in messages is "override")."""
    data = to_dict(config)
    data[section].update(changes)
    return build(type(config), data, "", "override", error)


def to_dict(config: Any) -> dict[str, Any]:
    """Plain TOML-able dict of a config dataclass, recursively (tuples become lists)."""

    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, tuple):
            return [conv(x) for x in v]
        return v

    return conv(config)


def dump_config(config: Config) -> str:
    """TOML text of the resolved config (contains no secrets by construction)."""
    return tomli_w.dumps(to_dict(config))


__all__ = [
    "ArchiveConfig", "Config", "ConfigError", "ConfigMovedWarning", "EngineConfig", "GeneratorConfig",
    "OpenAISettings", "OperatorsConfig", "QualityConfig", "RunConfig", "ScriptedSettings", "SeedsConfig",
    "SolverConfig", "ValidityConfig", "VllmSettings", "build", "check", "check_keys",
    "dump_config", "from_dict", "load_config", "load_layered", "merge", "read_toml", "replace_section", "to_dict",
]
