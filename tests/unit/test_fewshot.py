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
from selfalign.formats import get_format
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
SC2_PATH = REPO / "workflow" / "resources" / "fewshot" / "self_oss_instruct_sc2.yaml"
DEMO_PATH = REPO / "workflow" / "resources" / "fewshot" / "self_oss_instruct_demo.yaml"  # the demo teacher's
FIXTURES = REPO / "tests" / "fixtures" / "fewshot"
JUDGE_PATH = REPO / "workflow" / "resources" / "fewshot" / "docstring_judge.yaml"
CODE_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)

INSTRUCT = load_instruct_fewshot(INSTRUCT_PATH)
SC2_FILE = load_instruct_fewshot(SC2_PATH)
JUDGE = load_judge_fewshot(JUDGE_PATH)
DEMO_FILE = load_instruct_fewshot(DEMO_PATH)
ALL_EXAMPLES = [(f.format.name, e) for f in (INSTRUCT, SC2_FILE) for e in f.examples]
# every file's examples run in the sandbox, the demo's short ones too
RUNNABLE_EXAMPLES = [*ALL_EXAMPLES, *(("sca", e) for e in DEMO_FILE.examples)]


def program_of(example: InstructExample) -> str:
    return "\n\n".join(block for text in (example.response, example.tests) for block in CODE_BLOCK.findall(text))


def test_instruct_file_shape() -> None:
    examples = INSTRUCT.examples
    assert INSTRUCT.format.name == "sca" and len(examples) == 21
    categories = Counter(example.category for example in examples)
    assert set(categories) == set(CATEGORIES)
    # the reference's SCA file: 15 function, 2 class, 4 program implementations
    assert categories == {"function implementation": 15, "class implementation": 2, "program implementation": 4}
    assert {example.difficulty for example in examples} == {"easy", "medium", "hard"}
    assert all(example.language == "Python" for example in examples)
    # Some snippets are windows that start mid-function, indentation kept.
    assert any(example.snippet.startswith(" ") for example in examples)


def test_sc2_file_shape() -> None:
    assert SC2_FILE.format.name == "sc2" and len(SC2_FILE.examples) == 16 == len(SC2_FILE.i2r_examples)
    assert {e.category for e in SC2_FILE.examples} <= set(SC2_FILE.format.categories)
    for example in SC2_FILE.examples:
        assert example.response.startswith("[Reasoning]\n") and "[Tests]" not in example.response


def test_responses_reason_before_and_explain_after_the_code() -> None:
    for _, example in ALL_EXAMPLES:
        before, _, after = example.response.partition("```python")
        assert len(before.split()) >= 40 and len(after.split("```", 1)[1].split()) >= 20, example.id
        assert example.tests.split("```")[0].strip(), f"{example.id}: tests open with a sentence"


def test_reference_layouts_load(tmp_path: Path) -> None:
    sc2 = load_instruct_fewshot(FIXTURES / "reference_sc2_layout.txt")
    assert sc2.format.name == "sc2" and sc2.system.i2r.startswith("Answer the instruction")
    first, second = sc2.examples
    assert first.snippet == "    total = sum(parts)\n    return total / len(parts)"
    assert first.concepts == ("averaging", "division", "list input") and first.difficulty == "easy"
    assert first.response.startswith("[Reasoning]") and first.tests.startswith("```python\nassert mean")
    assert (second.language, second.difficulty, second.i2r_shot) == ("Rust", "very hard", False)
    assert [e.id for e in sc2.i2r_examples] == ["example-1"]
    sca = load_instruct_fewshot(FIXTURES / "reference_sca_layout.txt")
    assert sca.format.name == "sca" and sca.system.c2i == "Create a task with the given properties."
    (only,) = sca.examples
    assert only.category == "function implementation" and only.concepts[0] == "min and max"
    assert only.response.endswith("```") and only.tests.startswith("```python\nassert clamp(5")
    broken = tmp_path / "broken.txt"
    broken.write_text((FIXTURES / "reference_sca_layout.txt").read_text().replace("[Tests]\n", ""))
    with pytest.raises(FewShotError, match="example 1: expected the fields"):
        load_instruct_fewshot(broken)


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
    programs = [build_program(example.response, example.tests, get_format(fmt)).program for fmt, example in RUNNABLE_EXAMPLES]
    verdicts = run_many(BubblewrapSandbox(), programs, Limits(wall_seconds=30), workers=2)
    failed = {
        f"{fmt}:{example.id}": verdict.stderr_tail[-500:]
        for (fmt, example), verdict in zip(RUNNABLE_EXAMPLES, verdicts, strict=True)
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
        (lambda data: data.__setitem__("format", "sc3"), None, "format", "unknown prompt format"),
        (_set(2, "response", "Text </response> then\n```python\nx = 1\n```"), "example 2", "response", "parse back"),
        (_set(2, "tests", "```python\nassert 1\nassert 2\nassert 3\n```\n```python\nassert 4\n```"), "example 2", "tests", "exactly one"),
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
