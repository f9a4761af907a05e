"""The shipped few-shot files load, have the structure the prompts need, and every example's code really passes."""

from __future__ import annotations

import ast
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from selfalign.programs import build_program
from selfalign.sandbox import BubblewrapSandbox, Limits, run_many
from selfalign.fewshot import (
    CATEGORIES,
    FewShotError,
    InstructExample,
    load_instruct_fewshot,
    load_judge_fewshot,
)

REPO = Path(__file__).resolve().parents[2]
INSTRUCT_PATH = REPO / "workflow" / "resources" / "fewshot" / "self_oss_instruct.yaml"
JUDGE_PATH = REPO / "workflow" / "resources" / "fewshot" / "docstring_judge.yaml"
CODE_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)

INSTRUCT = load_instruct_fewshot(INSTRUCT_PATH)
JUDGE = load_judge_fewshot(JUDGE_PATH)


def program_of(example: InstructExample) -> str:
    return "\n\n".join(block for text in (example.response, example.tests) for block in CODE_BLOCK.findall(text))


def test_instruct_file_shape() -> None:
    examples = INSTRUCT.examples
    assert len(examples) >= 16
    categories = Counter(example.category for example in examples)
    assert set(categories) == set(CATEGORIES)
    assert categories["class implementation"] >= 2 and categories["program implementation"] >= 2
    assert categories["function implementation"] > len(examples) / 2
    assert {example.difficulty for example in examples} == {"easy", "medium", "hard"}
    assert all(example.language == "Python" for example in examples)
    # Some snippets are windows that start mid-function, indentation kept.
    assert any(example.snippet.startswith(" ") for example in examples)


@pytest.mark.parametrize("example", INSTRUCT.examples, ids=lambda example: example.id)
def test_instruction_names_what_the_response_defines(example: InstructExample) -> None:
    # Every top-level function/class of the solution is named (in backticks) by the instruction.
    defined = {
        node.name for node in ast.parse(program_of(example)).body if isinstance(node, ast.FunctionDef | ast.ClassDef)
    }
    named = set(re.findall(r"`(\w+)", example.instruction))
    assert defined and defined <= named, (defined, named)


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap missing: apt-get install bubblewrap")
def test_every_response_passes_its_tests_in_the_sandbox() -> None:
    # The same program assembly and sandbox as the execution stage: a shot that fails there would
    # teach the model to write failing tests.
    programs = [build_program(example.response, example.tests).program for example in INSTRUCT.examples]
    verdicts = run_many(BubblewrapSandbox(), programs, Limits(wall_seconds=30), workers=2)
    failed = {
        example.id: verdict.stderr_tail[-500:]
        for example, verdict in zip(INSTRUCT.examples, verdicts, strict=True)
        if verdict.status != "pass"
    }
    assert not failed, failed


def test_judge_file_shape() -> None:
    answers = Counter(example.answer for example in JUDGE.examples)
    assert answers == {"Yes": 4, "No": 3}
    for example in JUDGE.examples:
        tree = ast.parse(example.code)
        assert isinstance(tree.body[0], ast.FunctionDef) and len(tree.body) == 1
    assert JUDGE.templates.lead_in.endswith("My answer is:")
    assert "<issue_start>" in JUDGE.templates.question and "<issue_comment>" in JUDGE.templates.lead_in


# --- validation: each broken variant names the file, the example and the field ---------------------


def write_variant(tmp_path: Path, source: Path, edit: Any) -> Path:
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    edit(data)
    path = tmp_path / source.name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _set(index: int, field: str, value: object) -> Any:
    return lambda data: data["examples"][index].__setitem__(field, value)


def _delete(index: int, field: str) -> Any:
    return lambda data: data["examples"][index].pop(field)


@pytest.mark.parametrize(
    ("edit", "where", "field", "problem"),
    [
        (_delete(1, "instruction"), "example 1 (id 'top-words')", "instruction", "missing"),
        (_set(0, "category", "script"), "example 0 (id 'chunk-list')", "category", "not one of"),
        (_set(2, "difficulty", "very hard"), "example 2", "difficulty", "not one of"),
        (_set(3, "concepts", ["one", "two"]), "example 3", "concepts", "3-6"),
        (_set(3, "concepts", ["a, b", "c", "d"]), "example 3", "concepts", "without commas"),
        (_set(4, "tests", "```python\nprint(1)\n```"), "example 4", "tests", "assert"),
        (_set(4, "response", "no code here"), "example 4", "response", "```python"),
        (_set(5, "id", "chunk-list"), "example 5", "id", "duplicate"),
        (_set(5, "id", "Bad Id"), "example 5", "id", "slug"),
        (_set(6, "colour", "red"), "example 6", "colour", "unknown field"),
        (_set(7, "instruction", "   "), "example 7", "instruction", "empty"),
        (_set(8, "instruction", 42), "example 8", "instruction", "expected a string"),
        (lambda data: data["system"].pop("c2i"), "system", "c2i", "missing"),
        (lambda data: data.__setitem__("examples", []), None, "examples", "non-empty list"),
    ],
)
def test_instruct_validation_errors(tmp_path: Path, edit: Any, where: str | None, field: str, problem: str) -> None:
    path = write_variant(tmp_path, INSTRUCT_PATH, edit)
    with pytest.raises(FewShotError) as caught:
        load_instruct_fewshot(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and f"field '{field}'" in message and problem in message
    if where:
        assert where in message


@pytest.mark.parametrize(
    ("edit", "where", "field", "problem"),
    [
        (_set(0, "answer", True), "example 0 (id 'clamp')", "answer", "quote it"),
        (_set(1, "answer", "Maybe"), "example 1", "answer", "not one of"),
        (_set(2, "upvotes", -1), "example 2", "upvotes", "non-negative"),
        (_set(3, "code", 'def f():\n    """Doc."""\n    return 1'), "example 3", "code", "without its docstring"),
        (_delete(4, "rationale"), "example 4", "rationale", "missing"),
        (
            lambda data: data["templates"].__setitem__("question", "{code} only"),
            "templates",
            "question",
            "placeholders",
        ),
        (lambda data: data["templates"].__setitem__("lead_in", "Answer:"), "templates", "lead_in", "My answer is:"),
        (
            lambda data: data["templates"].__setitem__("verdict", "{answer} {oops"),
            "templates",
            "verdict",
            "bad template",
        ),
    ],
)
def test_judge_validation_errors(tmp_path: Path, edit: Any, where: str, field: str, problem: str) -> None:
    path = write_variant(tmp_path, JUDGE_PATH, edit)
    with pytest.raises(FewShotError) as caught:
        load_judge_fewshot(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and where in message and f"field '{field}'" in message
    assert problem in message


def test_not_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("examples: [unclosed\n", encoding="utf-8")
    with pytest.raises(FewShotError, match=re.escape(str(path)) + ".*not valid YAML"):
        load_instruct_fewshot(path)
