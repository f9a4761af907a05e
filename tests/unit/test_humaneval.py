"""HumanEval prompts, program assembly and scoring through the real sandbox."""

from __future__ import annotations

import gzip
import json
import shutil

import pytest

from selfalign.humaneval import (
    COMPLETION_STOP,
    INSTRUCT_TEMPLATE,
    build_requests,
    completion_to_program,
    format_instruct_prompt,
    load_problems,
    score,
)
from selfalign.sandbox import Limits, make_sandbox

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap missing: apt-get install bubblewrap")


@pytest.fixture(scope="module")
def problems():
    return load_problems()


@pytest.fixture(scope="module")
def sandbox():
    return make_sandbox("bubblewrap")


def by_id(problems, task_id):
    return next(p for p in problems if p["task_id"] == task_id)


def test_instruct_prompt_layout():
    prompt = format_instruct_prompt("Do {this}.")
    assert prompt.endswith("\n\n### Instruction\nDo {this}.\n\n### Response\n")
    assert format_instruct_prompt("Do it.", "Done.") == prompt.replace("Do {this}.", "Do it.") + "Done."
    assert INSTRUCT_TEMPLATE.format(instruction="i", response="r") == format_instruct_prompt("i", "r")


def test_bundled_problems_load(problems):
    assert len(problems) == 164
    assert problems[0]["task_id"] == "HumanEval/0"


def test_problems_from_a_path_are_checked(tmp_path, problems):
    good = tmp_path / "two.jsonl.gz"
    with gzip.open(good, "wt") as handle:
        for problem in problems[:2]:
            handle.write(json.dumps(problem) + "\n")
    assert [p["task_id"] for p in load_problems(str(good))] == ["HumanEval/0", "HumanEval/1"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"task_id": "X/0", "prompt": "def f():\n", "test": ""}) + "\n")
    with pytest.raises(ValueError, match="bad.jsonl: problem 1: field 'entry_point'"):
        load_problems(str(bad))


def test_instruct_requests_hand_over_the_signature(problems):
    [request] = build_requests(problems[:1], "instruct", max_new_tokens=64, bos="<s>")
    signature = problems[0]["prompt"].strip()
    assert request.prompt.startswith("<s>")
    assert "Write a Python function to solve the given task:\n```python\n" + signature + "\n```" in request.prompt
    assert request.prompt.endswith("### Response\n```python\n" + signature)
    assert (request.spec.temperature, request.spec.n, request.spec.max_new_tokens) == (0.0, 1, 64)
    assert request.spec.stop == ("\n```",)
    assert request.key == "HumanEval/0"


def test_completion_requests_are_the_raw_prompt(problems):
    requests = build_requests(problems[:3], "completion", max_new_tokens=32)
    assert [r.prompt for r in requests] == [p["prompt"] for p in problems[:3]]
    assert requests[0].spec.stop == COMPLETION_STOP


def test_unknown_style_is_rejected(problems):
    with pytest.raises(ValueError, match="unknown HumanEval prompt style"):
        build_requests(problems, "chat", 16)


def test_instruct_body_continues_the_prompt(problems):
    problem = by_id(problems, "HumanEval/0")
    program = completion_to_program(problem, "instruct", "\n" + problem["canonical_solution"] + "```\nExplanation")
    assert program.startswith(problem["prompt"].rstrip() + "\n" + problem["canonical_solution"])
    assert "Explanation" not in program
    assert program.endswith("check(has_close_elements)\n")


@needs_bwrap
def test_instruct_programs_pass_in_all_shapes(problems, sandbox):
    problem = by_id(problems, "HumanEval/2")  # truncate_number
    body = problem["canonical_solution"]
    echoed = "\n```\n\nOr as a whole:\n```python\ndef truncate_number(number: float) -> float:\n" + body + "```"
    shapes = ["\n" + body, "\n" + body + "```", echoed]
    result = score([problem] * 3, shapes, "instruct", sandbox, Limits(), workers=2)
    assert result["pass@1"] == 1.0


@needs_bwrap
def test_canonical_solutions_all_pass(problems, sandbox):
    result = score(problems, [p["canonical_solution"] for p in problems], "completion", sandbox, Limits(), workers=2)
    assert result["pass@1"] == 1.0
    assert result["n"] == result["passed"] == 164
    assert result["statuses"] == {"pass": 164}


@needs_bwrap
def test_wrong_and_looping_completions_fail(problems, sandbox):
    chosen = problems[:2]
    result = score(chosen, ["    return None\n", "    while True:\n        pass\n"], "completion", sandbox,
                   Limits(wall_seconds=20, cpu_seconds=1), workers=2)
    assert [(r["task_id"], r["passed"], r["status"]) for r in result["results"]] == [
        ("HumanEval/0", False, "fail"), ("HumanEval/1", False, "timeout")]
    assert result["pass@1"] == 0.0


def test_score_needs_one_completion_per_problem(problems):
    with pytest.raises(ValueError, match="1 completions for 2 problems"):
        score(problems[:2], ["x"], "completion", make_sandbox("process"), Limits(), workers=1)
