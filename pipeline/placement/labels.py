"""Skill labelling for the skill-set archive: prompt values and output parsing (pure).

The labeller sees the run's vocabulary and, in the few-shot prompt, one labelled seed per
skill (the first seed carrying it, for the first `max_examples` skills), so the examples
never name a skill outside the vocabulary. Its answer is "Skills: a, b" (few-shot) or
SPARQ's <skills>a,b</skills> (chat); labels outside the vocabulary map to nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from archives import parse_skill_labels, skill_key
from pipeline.prompts import Prompt, PromptTemplate

_TAGGED = re.compile(r"<skills>(.*?)(?:</skills>|$)", re.S | re.I)
_PREFIXED = re.compile(r"skills\s*:\s*([^\n]*)", re.I)


def label_examples(seeds: Sequence[tuple[str, str, str | None]], vocabulary: Sequence[str],
                   max_skills: int, max_examples: int = 6) -> str:
    """Few-shot block: one (problem, solution, skills) seed per skill, most common first."""
    blocks: list[str] = []
    used: set[int] = set()
    for skill in vocabulary[:max_examples]:
        for i, (problem, solution, labels) in enumerate(seeds):
            key = skill_key(labels, vocabulary, max_skills)
            if i not in used and skill in key:
                used.add(i)
                blocks.append(f"Problem: {problem}\nSolution: {solution}\nSkills: {', '.join(key)}\n\n")
                break
    return "".join(blocks)


def render_label(template: PromptTemplate, problem: str, solution: str, vocabulary: Sequence[str],
                 examples: str, max_skills: int) -> Prompt:
    values = {"problem": problem, "solution": solution, "skills": ", ".join(vocabulary), "examples": examples,
              "max_skills": str(max_skills), "example_skills": ",".join(vocabulary[:2])}
    return template.render(**{k: v for k, v in values.items() if k in template.fields})


def parse_skills(raw: str, response_prefix: str = "") -> list[str]:
    """Normalised labels of a labeller output, in its order (vocabulary not applied yet)."""
    text = response_prefix + (raw or "")
    m = _TAGGED.search(text) or _PREFIXED.search(text)
    return parse_skill_labels(m.group(1)) if m else []
