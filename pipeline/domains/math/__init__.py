"""Math word problems: a problem, a worked solution and a final answer, judged by
math-verify (answers.py), checked by exact arithmetic (validity.py, arith.py, forms.py,
dimensions.py), a last computation's slip corrected (repair.py), parsed from the
generator's "New solution:" format (mutation.py)."""

from __future__ import annotations

from pipeline.config import VALIDITY_CHECKS
from pipeline.domains.base import Mutation, ParseFailure, Repair, Validity, Verdict
from pipeline.domains.math.answers import AnswerJudge
from pipeline.domains.math.mutation import parse_mutation
from pipeline.domains.math.repair import repair_reference
from pipeline.domains.math.validity import check_reference, judge_verdict


class MathDomain:
    kind = "math"
    seed_columns = ("problem", "solution", "answer")
    default_prompts = {"generator": "mutate_fewshot", "solver": "solve_worked", "verifier": "solve_fewshot",
                       "judge": "judge_chat"}
    check_names = VALIDITY_CHECKS

    def parse(self, text: str, response_prefix: str) -> Mutation | ParseFailure:
        return parse_mutation(text, response_prefix)

    def check(self, mutation: Mutation, checks: tuple[str, ...]) -> Validity:
        return check_reference(mutation.problem, mutation.solution, mutation.answer, checks)

    def repair(self, mutation: Mutation) -> Repair | None:
        fixed = repair_reference(mutation.problem, mutation.solution, mutation.answer)
        if fixed is None:
            return None
        return Repair(Mutation(mutation.problem, fixed.solution, fixed.answer), fixed.note)

    def new_judge(self, timeout_s: float) -> AnswerJudge:
        return AnswerJudge(timeout_s=timeout_s)

    def read_judgements(self, replies: list[str]) -> tuple[Verdict, str | None]:
        return judge_verdict(replies)

    def messages(self, problem: str, content: str) -> list[dict[str, str]]:
        return [{"role": "user", "content": problem}, {"role": "assistant", "content": content}]


DOMAIN = MathDomain  # what pipeline.domains.DOMAINS builds for this kind
