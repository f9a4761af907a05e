"""The instruct prompt layout shared by SFT and scoring, and HumanEval's prompt parts.

The SFT code formats its training prompts with ``format_instruct_prompt`` and the EvalPlus scoring
(``selfalign.evalplus_scoring``) its tuned-model prompts: a model is evaluated in exactly the format
it was tuned on.
"""

from __future__ import annotations

from typing import Literal


INSTRUCT_SYSTEM = (
    "You are a careful programming assistant. Read the task below and answer it with correct, "
    "well-explained code."
)
INSTRUCT_TEMPLATE = INSTRUCT_SYSTEM + "\n\n### Instruction\n{instruction}\n\n### Response\n{response}"


def format_instruct_prompt(instruction: str, response: str = "") -> str:
    """The SC2 instruct layout; with ``response=""`` it ends in ``### Response\\n`` (the prompt part)."""
    return INSTRUCT_TEMPLATE.format(instruction=instruction, response=response)


Style = Literal["instruct", "completion"]
STYLES: tuple[Style, ...] = ("instruct", "completion")
INSTRUCT_STOP = ("\n```",)
# A base model continues the prompt's function; anything at column 0 after it is not part of it.
COMPLETION_STOP = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\nassert ", "\n#")


def instruct_parts(problem: dict) -> tuple[str, str]:
    """(instruction, response prefix): the model is handed the signature and continues the body."""
    signature = problem["prompt"].strip()
    instruction = f"Complete the Python function below so that it does what its docstring says:\n```python\n{signature}\n```"
    return instruction, f"```python\n{signature}"
