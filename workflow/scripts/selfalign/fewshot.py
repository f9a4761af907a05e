"""Load and validate the two few-shot files: Self-OSS-Instruct examples and docstring-judge shots.

Both files are YAML written by hand. Every field is checked on load, and an error names the file,
the example (id or index) and the field, so a typo fails the run before any model is called.

A Self-OSS-Instruct file declares its prompt format (``format:``, see ``formats.py``). The loader also
reads the reference's own published few-shot text files (``### System: ...`` then ``### Example N``
blocks with ``[Code] [Property] [Instruction] ...`` fields, in either code generation's layout), so a
user may point the workflow at a copy downloaded separately.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .formats import SC2, SCA, PromptFormat, format_from_mapping, get_format, parse_answer

CATEGORIES = SCA.categories
DIFFICULTIES = SCA.difficulties
INSTRUCT_TASKS = ("s2c", "c2i", "i2r")
JUDGE_ANSWERS = ("Yes", "No")
JUDGE_LEAD_IN_END = "My answer is:"  # the judge query ends here; the verdict is the next word
MIN_CONCEPTS, MAX_CONCEPTS = 3, 6
MIN_TEST_ASSERTS = 3

_ID = re.compile(r"[a-z0-9][a-z0-9_-]*\Z")
_PYTHON_BLOCK = re.compile(r"^```python\n.*?^```", re.DOTALL | re.MULTILINE)
_REFERENCE_SYSTEM = re.compile(r"### System: (I->R|C->I|S->C|S->I)")
_REFERENCE_EXAMPLE = re.compile(r"### Example \d+")
# The reference's field markers per layout: SC2 has [Solution] (an example without one is no I->R shot).
_REFERENCE_FIELDS = {
    "sc2": ("Code", "Property", "Instruction", "Solution", "Response"),
    "sca": ("Code", "Property", "Instruction", "Response", "Tests"),
}

# Placeholders each judge template must use, exactly: a missing or unknown one is a typo.
JUDGE_TEMPLATE_FIELDS: dict[str, frozenset[str]] = {
    "question": frozenset({"code", "docstring"}),
    "query_upvotes": frozenset(),
    "lead_in": frozenset(),
    "verdict": frozenset({"answer", "rationale", "upvotes"}),
}


class FewShotError(ValueError):
    """A malformed few-shot file, located by file, example and field."""

    def __init__(self, path: str | os.PathLike[str], where: str | None, field: str | None, problem: str):
        self.path, self.where, self.field, self.problem = str(path), where, field, problem
        location = ": ".join(part for part in (self.path, where, f"field '{field}'" if field else None) if part)
        super().__init__(f"{location}: {problem}")


@dataclass(frozen=True)
class InstructExample:
    id: str
    snippet: str  # rstripped only: a window may start mid-function, so its indentation is kept
    category: str
    language: str
    difficulty: str
    concepts: tuple[str, ...]
    instruction: str
    response: str  # prose + a ```python block (sc2: the [Reasoning] [Implementation] [Explanation] sections)
    tests: str  # prose + a ```python block of asserts
    i2r_shot: bool = True  # eligible as an I->R shot (the reference's SC2 file: only examples with a solution)


@dataclass(frozen=True)
class InstructSystem:
    s2c: str
    c2i: str
    i2r: str


@dataclass(frozen=True)
class InstructFewShot:
    path: str
    system: InstructSystem
    examples: tuple[InstructExample, ...]
    format: PromptFormat = SCA

    @property
    def i2r_examples(self) -> tuple[InstructExample, ...]:
        return tuple(example for example in self.examples if example.i2r_shot)

    def by_id(self, example_id: str) -> InstructExample:
        for example in self.examples:
            if example.id == example_id:
                return example
        raise KeyError(f"{self.path}: no example with id '{example_id}'")


@dataclass(frozen=True)
class JudgeExample:
    id: str
    code: str
    docstring: str
    answer: str  # "Yes" or "No"
    rationale: str
    upvotes: int


@dataclass(frozen=True)
class JudgeTemplates:
    question: str  # {code}, {docstring}: the asker's issue text
    query_upvotes: str  # inserted after the question of the query only
    lead_in: str  # the answerer's fixed opening, ending with "My answer is:"
    verdict: str  # {answer}, {rationale}, {upvotes}: what follows the lead-in in a shot


@dataclass(frozen=True)
class JudgeFewShot:
    path: str
    templates: JudgeTemplates
    examples: tuple[JudgeExample, ...]


def _load_yaml(path: Path) -> Mapping[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise FewShotError(path, None, None, f"not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise FewShotError(path, None, None, f"expected a mapping at the top, got {type(data).__name__}")
    return data


class _Fields:
    """Typed access to one mapping of the file, raising FewShotError with its location."""

    def __init__(self, path: Path, where: str | None, data: object, allowed: tuple[str, ...]):
        self.path, self.where = path, where
        if not isinstance(data, dict):
            raise FewShotError(path, where, None, f"expected a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise FewShotError(path, where, str(unknown[0]), f"unknown field (allowed: {', '.join(allowed)})")
        self.data = data

    def fail(self, field: str, problem: str) -> FewShotError:
        return FewShotError(self.path, self.where, field, problem)

    def raw(self, field: str) -> object:
        if field not in self.data:
            raise self.fail(field, "missing")
        return self.data[field]

    def text(self, field: str, *, single_line: bool = False, keep_indent: bool = False) -> str:
        value = self.raw(field)
        if isinstance(value, bool):  # YAML 1.1 reads bare Yes/No/on/off as booleans
            raise self.fail(field, f"expected a string, got the boolean {value}; quote it")
        if not isinstance(value, str):
            raise self.fail(field, f"expected a string, got {type(value).__name__}")
        value = value.rstrip() if keep_indent else value.strip()
        if not value.strip():
            raise self.fail(field, "empty")
        if single_line and "\n" in value:
            raise self.fail(field, "must be a single line")
        return value

    def choice(self, field: str, choices: tuple[str, ...]) -> str:
        value = self.text(field, single_line=True)
        if value not in choices:
            raise self.fail(field, f"'{value}' is not one of {', '.join(choices)}")
        return value

    def integer(self, field: str) -> int:
        value = self.raw(field)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise self.fail(field, f"expected a non-negative integer, got {value!r}")
        return value

    def template(self, field: str, placeholders: frozenset[str]) -> str:
        value = self.raw(field)
        if not isinstance(value, str) or not value:
            raise self.fail(field, "expected a non-empty string")
        try:
            used = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        except ValueError as err:
            raise self.fail(field, f"bad template ({err}); write literal braces as {{{{ }}}}") from None
        if used != placeholders:
            expected = ", ".join(f"{{{name}}}" for name in sorted(placeholders)) or "none"
            raise self.fail(field, f"placeholders {sorted(used)} differ from the expected: {expected}")
        return value


def _example_id(fields: _Fields, seen: set[str]) -> str:
    example_id = fields.text("id", single_line=True)
    if not _ID.match(example_id):
        raise fields.fail("id", f"'{example_id}' is not a slug (lowercase letters, digits, '_' or '-')")
    if example_id in seen:
        raise fields.fail("id", f"duplicate id '{example_id}'")
    seen.add(example_id)
    return example_id


def _where(index: int, data: object) -> str:
    label = data.get("id") if isinstance(data, dict) else None
    return f"example {index} (id '{label}')" if isinstance(label, str) else f"example {index}"


def _example_list(top: _Fields) -> list[object]:
    examples = top.raw("examples")
    if not isinstance(examples, list) or not examples:
        raise top.fail("examples", "expected a non-empty list")
    return examples


def _concepts(fields: _Fields) -> tuple[str, ...]:
    value = fields.raw("concepts")
    if not isinstance(value, list) or not MIN_CONCEPTS <= len(value) <= MAX_CONCEPTS:
        raise fields.fail("concepts", f"expected a list of {MIN_CONCEPTS}-{MAX_CONCEPTS} strings, got {value!r}")
    concepts = []
    for concept in value:
        # Concepts are rendered comma-joined on one line and parsed back by splitting on commas.
        if not isinstance(concept, str) or not concept.strip() or "," in concept or "\n" in concept:
            raise fields.fail("concepts", f"{concept!r} must be a non-empty single-line string without commas")
        concepts.append(concept.strip())
    return tuple(concepts)


def _instruct_example(path: Path, index: int, data: object, seen: set[str], fmt: PromptFormat) -> InstructExample:
    allowed = ("id", "snippet", "category", "language", "difficulty", "concepts", "instruction", "response", "tests")
    fields = _Fields(path, _where(index, data), data, allowed)
    example = InstructExample(
        id=_example_id(fields, seen),
        snippet=fields.text("snippet", keep_indent=True),
        category=fields.choice("category", fmt.categories),
        language=fields.text("language", single_line=True),
        difficulty=fields.choice("difficulty", fmt.difficulties),
        concepts=_concepts(fields),
        instruction=fields.text("instruction"),
        response=fields.text("response"),
        tests=fields.text("tests"),
    )
    if not _PYTHON_BLOCK.search(example.response):
        raise fields.fail("response", "needs a ```python code block")
    if len(_PYTHON_BLOCK.findall(example.tests)) != 1 or example.tests.count("```") != 2:
        raise fields.fail("tests", "must hold exactly one ```python code block")
    if example.tests.count("assert ") < MIN_TEST_ASSERTS:
        raise fields.fail("tests", f"needs at least {MIN_TEST_ASSERTS} assert statements")
    for field in ("instruction", "response", "tests"):
        if "## Example" in getattr(example, field):
            raise fields.fail(field, "must not contain '## Example'")
    # The answer must come back unchanged through the format's own parser, as a model's would.
    answer = fmt.i2r_answer.format(response=example.response, tests=example.tests)
    parsed, reason = parse_answer(fmt, answer)
    if parsed != (example.response, example.tests):
        markers = [m for m in (fmt.response_end, fmt.tests_start, fmt.tests_end) if m]
        field = "response" if any(m in example.response for m in markers) or reason == "bad_sections" else "tests"
        raise fields.fail(field, f"does not parse back in the '{fmt.name}' format ({reason or 'text changes'})")
    return example


def _format(top: _Fields) -> PromptFormat:
    value = top.data.get("format", "sca")
    try:
        return get_format(value) if isinstance(value, str) else format_from_mapping(value)
    except (KeyError, ValueError) as err:
        raise top.fail("format", str(err).strip("'\"")) from None


def load_instruct_fewshot(path: str | os.PathLike[str]) -> InstructFewShot:
    """Read a Self-OSS-Instruct few-shot file: this project's YAML or the reference's published text."""
    path = Path(path)
    if path.suffix == ".txt":
        return load_reference_fewshot(path)
    top = _Fields(path, None, _load_yaml(path), ("format", "system", "examples"))
    fmt = _format(top)
    system = _Fields(path, "system", top.raw("system"), INSTRUCT_TASKS)
    seen: set[str] = set()
    examples = tuple(_instruct_example(path, index, data, seen, fmt) for index, data in enumerate(_example_list(top)))
    return InstructFewShot(
        path=str(path),
        system=InstructSystem(**{task: system.text(task) for task in INSTRUCT_TASKS}),
        examples=examples,
        format=fmt,
    )


def _reference_property(path: Path, where: str, text: str, fmt: PromptFormat) -> dict[str, str]:
    lines = text.strip().split("\n")
    if len(lines) != len(fmt.property_order) or any(":" not in line for line in lines):
        raise FewShotError(path, where, "Property", f"expected {len(fmt.property_order)} 'key: value' lines")
    return {key: line[line.index(":") + 1 :].strip() for key, line in zip(fmt.property_order, lines)}


def _reference_example(path: Path, number: int, text: str, fmt: PromptFormat) -> InstructExample:
    names = _REFERENCE_FIELDS[fmt.name]
    where = f"example {number}"
    parts = re.split("|".join(rf"\[{name}\]\n" for name in names), text)
    if len(parts) != len(names) + 1 or parts[0].strip():
        raise FewShotError(path, where, None, f"expected the fields {', '.join(f'[{n}]' for n in names)} in this order")
    values = dict(zip(names, parts[1:]))
    prop = _reference_property(path, where, values["Property"], fmt)
    i2r_shot = fmt.name != "sc2" or bool(values["Solution"].strip())
    if fmt.name == "sc2":  # the [Response] holds all four sections, [Tests] included
        parsed, reason = parse_answer(fmt, values["Response"].strip())
        if parsed is None and i2r_shot:
            raise FewShotError(path, where, "Response", f"not in the sc2 layout ({reason})")
        # an example without a [Solution] is never an I->R shot; its free-form response is kept as is
        response, tests = parsed or (values["Response"].strip(), "")
    else:
        response, tests = values["Response"].strip(), values["Tests"].strip()
    return InstructExample(
        id=f"example-{number}",
        snippet=values["Code"].rstrip(),
        category=prop["category"],
        language=prop["language"],
        difficulty=prop["difficulty"],
        concepts=tuple(concept.strip() for concept in prop["concepts"].split(",")),
        instruction=values["Instruction"].strip(),
        response=response,
        tests=tests,
        i2r_shot=i2r_shot,
    )


def load_reference_fewshot(path: str | os.PathLike[str]) -> InstructFewShot:
    """Read the reference's published few-shot text file (either layout, told apart by its fields).

    Split as the reference splits it: system prompts by ``### System: <task>`` in the head, examples by
    ``### Example N``, fields by their ``[Name]`` lines; the snippet is ``rstrip``ped, the rest stripped.
    """
    path = Path(path)
    content = path.read_text(encoding="utf-8").strip()
    head, *bodies = _REFERENCE_EXAMPLE.split(content)
    if not bodies:
        raise FewShotError(path, None, None, "no '### Example N' block")
    fmt = SC2 if "[Solution]\n" in bodies[0] else SCA
    system_parts = _REFERENCE_SYSTEM.split(head)
    prompts = {system_parts[i]: system_parts[i + 1].strip() for i in range(1, len(system_parts) - 1, 2)}
    tasks = {"s2c": "S->C", "c2i": "C->I", "i2r": "I->R"}
    for task, label in tasks.items():
        if not prompts.get(label):
            raise FewShotError(path, "system", label, "missing '### System: " + label + "' prompt")
    examples = tuple(_reference_example(path, number, body.strip(), fmt) for number, body in enumerate(bodies, start=1))
    return InstructFewShot(
        path=str(path),
        system=InstructSystem(**{task: prompts[label] for task, label in tasks.items()}),
        examples=examples,
        format=fmt,
    )


def _judge_example(path: Path, index: int, data: object, seen: set[str]) -> JudgeExample:
    fields = _Fields(path, _where(index, data), data, ("id", "code", "docstring", "answer", "rationale", "upvotes"))
    code = fields.text("code")
    if '"""' in code or "'''" in code:
        raise fields.fail("code", "must be the function without its docstring")
    return JudgeExample(
        id=_example_id(fields, seen),
        code=code,
        docstring=fields.text("docstring"),
        answer=fields.choice("answer", JUDGE_ANSWERS),
        rationale=fields.text("rationale"),
        upvotes=fields.integer("upvotes"),
    )


def load_judge_fewshot(path: str | os.PathLike[str]) -> JudgeFewShot:
    """Read the docstring-judge YAML (dialogue templates + Yes/No shots)."""
    path = Path(path)
    top = _Fields(path, None, _load_yaml(path), ("templates", "examples"))
    section = _Fields(path, "templates", top.raw("templates"), tuple(JUDGE_TEMPLATE_FIELDS))
    templates = JudgeTemplates(
        **{name: section.template(name, fields) for name, fields in JUDGE_TEMPLATE_FIELDS.items()}
    )
    if not templates.lead_in.endswith(JUDGE_LEAD_IN_END):
        raise section.fail("lead_in", f"must end with '{JUDGE_LEAD_IN_END}'")
    if not templates.verdict.startswith(" {answer}\n"):
        raise section.fail("verdict", "must start with ' {answer}' and a newline (the judge stops at the newline)")
    seen: set[str] = set()
    examples = tuple(_judge_example(path, index, data, seen) for index, data in enumerate(_example_list(top)))
    return JudgeFewShot(path=str(path), templates=templates, examples=examples)
