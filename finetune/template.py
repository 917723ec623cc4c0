"""The chat template set on the base model for SFT, and the prompt text it gives at evaluation.

The bundled Gemma 3 270M is a base model without a chat template. We use the plain text
format of the `solve_fewshot` prompt rather than Gemma's `<start_of_turn>` markup: the base
model already continues "Problem: ...\\nSolution:" with a worked solution ending in "The
answer is N.", so fine-tuning starts from a format it knows, and base and fine-tuned models
are evaluated on the same text (few-shot for the base, zero-shot for the fine-tuned one).

    <bos>Problem: {user}\\nSolution: {assistant}<eos>\\n

`{% generation %}` marks the assistant text so TRL's `assistant_only_loss` trains on the
solution tokens only. A system message, if any, is written as a plain line first.
"""

from __future__ import annotations

from typing import Any

PROBLEM_SOLUTION_TEMPLATE = (
    "{{ bos_token }}"
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] | trim }}\n\n"
    "{% elif m['role'] == 'user' %}Problem: {{ m['content'] | trim }}\nSolution:"
    "{% elif m['role'] == 'assistant' %}{% generation %} {{ m['content'] | trim }}{{ eos_token }}"
    "{% endgeneration %}\n"
    "{% endif %}"
    "{% endfor %}"
)
# Stops for sampling: the template ends a solution with <eos>, but a model that learnt the
# format only partly may go on to invent the next problem.
CHAT_STOP = ("\nProblem:",)


def chat_prompt_text(tokenizer: Any, problem: str) -> str:
    """The evaluation prompt of a chat-template model as text, without the leading BOS.

    Engines tokenise a string prompt with the tokenizer's own special tokens (BOS for
    Gemma); passing the rendered chat (which starts with BOS) would give two.
    """
    text = tokenizer.apply_chat_template([{"role": "user", "content": problem}], tokenize=False,
                                         add_generation_prompt=True)
    bos = tokenizer.bos_token or ""
    if bos and text.startswith(bos):
        text = text[len(bos):]
    return text
