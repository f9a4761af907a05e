"""Prompt formats of Self-OSS-Instruct as data: query templates, answer layout, stops and response parser.

A few-shot file declares its format (``format: sca`` or ``format: sc2``, or a mapping with every field
of ``PromptFormat``); prompt rendering and response parsing read only these fields, so a new layout is
a new table row, not a new code path. The two rows follow the reference's two code generations:

- ``sca`` (SelfCodeAlign): ``### Properties`` / ``### Task`` for C->I with the property lines
  category, language, difficulty, concepts; I->R in ``<instruction>`` / ``<response>`` / ``<tests>``
  tags, stopped at ``</tests>``; the C->I category drawn 50/25/25 over function/class/program.
- ``sc2`` (StarCoder2-15B-Instruct-v0.1): ``### Property`` / ``### Instruction`` with the lines
  category, language, concepts, difficulty; I->R under ``### Instruction`` / ``### Response`` with the
  four sections ``[Reasoning] [Implementation] [Explanation] [Tests]``; the category is always
  function implementation (still drawn, so the random-call order is the reference's).

The executed program follows each flow's rule too (``program_rule``, see ``programs.py``): ``sca`` runs
every closed block, ``sc2`` only its python blocks that parse.

A parsed response is two texts: ``response`` (for ``sc2`` the first three sections, tags kept, so
selection can still see and drop them) and ``tests`` (the body of the tests part).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from .programs import PROGRAM_RULES

PROPERTY_KEYS = ("category", "language", "difficulty", "concepts")


@dataclass(frozen=True)
class PromptFormat:
    name: str
    property_order: tuple[str, ...]  # a permutation of PROPERTY_KEYS: the C->I property block's lines
    categories: tuple[str, ...]  # categories an example of this format may have
    category_draw: tuple[str, ...]  # C->I draws one uniformly (repeats weight it), as the reference
    difficulties: tuple[str, ...]
    s2c_query: str  # {snippet}
    c2i_query: str  # {property}
    i2r_query: str  # {instruction}
    i2r_answer: str  # {response}, {tests}: how an example's answer is rendered
    stops: Mapping[str, tuple[str, ...]]  # per task: s2c, c2i, i2r
    # The parser: response = text before ``response_end``; tests = text after ``tests_start`` (which
    # must follow ``response_end`` with only whitespace between) up to ``tests_end`` if present.
    response_end: str
    tests_start: str
    tests_end: str
    response_sections: tuple[str, ...]  # markers the response must hold once each, in this order
    selection_checks: str  # "tags" (SCA's sanitize format check) or "sections" (SC2's)
    program_rule: str  # which blocks the executed program holds: one of programs.PROGRAM_RULES

    def property_block(self, values: Mapping[str, str]) -> str:
        return "\n".join(f"{key}: {values[key]}" for key in self.property_order)


SCA = PromptFormat(
    name="sca",
    property_order=("category", "language", "difficulty", "concepts"),
    categories=("function implementation", "class implementation", "program implementation"),
    category_draw=(
        "function implementation",
        "function implementation",
        "class implementation",
        "program implementation",
    ),
    difficulties=("easy", "medium", "hard"),
    s2c_query="### Snippet\n{snippet}\n\n### Concepts\n",
    c2i_query="### Properties\n{property}\n\n### Task\n",
    i2r_query="<instruction>\n{instruction}\n</instruction>\n\n<response>\n",
    i2r_answer="{response}\n</response>\n\n<tests>\n{tests}\n</tests>",
    stops={"s2c": ("## Example",), "c2i": ("## Example",), "i2r": ("## Example", "</tests>")},
    response_end="</response>",
    tests_start="<tests>",
    tests_end="</tests>",
    response_sections=(),
    selection_checks="tags",
    program_rule="all_blocks",
)

SC2 = PromptFormat(
    name="sc2",
    property_order=("category", "language", "concepts", "difficulty"),
    categories=(
        "code generation (function implementation)",
        "code generation (class implementation)",
        "code generation (program implementation)",
    ),
    category_draw=("code generation (function implementation)",),
    difficulties=("easy", "medium", "hard"),
    s2c_query="### Snippet\n{snippet}\n\n### Concepts\n",
    c2i_query="### Property\n{property}\n\n### Instruction\n",
    i2r_query="### Instruction\n{instruction}\n\n### Response\n",
    i2r_answer="{response}\n\n[Tests]\n{tests}",
    stops={"s2c": ("## Example",), "c2i": ("## Example",), "i2r": ("## Example",)},
    response_end="[Tests]",
    tests_start="",
    tests_end="",
    response_sections=("[Reasoning]", "[Implementation]", "[Explanation]"),
    selection_checks="sections",
    program_rule="python_blocks_that_parse",
)

FORMATS: dict[str, PromptFormat] = {fmt.name: fmt for fmt in (SCA, SC2)}
SELECTION_CHECKS = ("tags", "sections")
TASKS = ("s2c", "c2i", "i2r")


def get_format(name: str) -> PromptFormat:
    if name not in FORMATS:
        raise KeyError(f"unknown prompt format '{name}' (known: {', '.join(FORMATS)})")
    return FORMATS[name]


def format_from_mapping(data: Mapping[str, Any]) -> PromptFormat:
    """A format written out in a few-shot file; raises ValueError naming the first bad field."""
    names = [field.name for field in fields(PromptFormat)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"unknown field '{unknown[0]}' (allowed: {', '.join(names)})")
    missing = [name for name in names if name not in data]
    if missing:
        raise ValueError(f"field '{missing[0]}' missing")
    values = dict(data)
    for name in ("property_order", "categories", "category_draw", "difficulties", "response_sections"):
        if not isinstance(values[name], list) or not all(isinstance(v, str) for v in values[name]):
            raise ValueError(f"field '{name}': expected a list of strings")
        values[name] = tuple(values[name])
    if sorted(values["property_order"]) != sorted(PROPERTY_KEYS):
        raise ValueError(f"field 'property_order': must order exactly {', '.join(PROPERTY_KEYS)}")
    stops = values["stops"]
    if not isinstance(stops, dict) or set(stops) != set(TASKS):
        raise ValueError(f"field 'stops': expected a mapping with {', '.join(TASKS)}")
    values["stops"] = {task: tuple(stops[task]) for task in TASKS}
    if values["selection_checks"] not in SELECTION_CHECKS:
        raise ValueError(f"field 'selection_checks': one of {', '.join(SELECTION_CHECKS)}")
    if values["program_rule"] not in PROGRAM_RULES:
        raise ValueError(f"field 'program_rule': one of {', '.join(PROGRAM_RULES)}")
    templates = {"s2c_query": "{snippet}", "c2i_query": "{property}", "i2r_query": "{instruction}"}
    for name, placeholder in templates.items():
        if placeholder not in str(values[name]):
            raise ValueError(f"field '{name}': must contain {placeholder}")
    if "{response}" not in str(values["i2r_answer"]) or "{tests}" not in str(values["i2r_answer"]):
        raise ValueError("field 'i2r_answer': must contain {response} and {tests}")
    if not values["response_end"]:
        raise ValueError("field 'response_end': must not be empty")
    return PromptFormat(**values)


def parse_answer(fmt: PromptFormat, text: str) -> tuple[tuple[str, str] | None, str | None]:
    """``((response, tests), None)`` or ``(None, drop reason)`` for one I->R completion."""
    head, found_end, rest = text.partition(fmt.response_end)
    if not found_end:
        return None, "no_response_end"
    response = head.strip()
    if not response:
        return None, "empty_response"
    position = 0
    for marker in fmt.response_sections:
        if response.count(marker) != 1 or rest.count(marker) != 0:
            return None, "bad_sections"
        index = response.find(marker)
        if index < position:
            return None, "bad_sections"
        position = index
    if fmt.response_sections and not response.startswith(fmt.response_sections[0]):
        return None, "bad_sections"
    if fmt.tests_start:
        between, found_tests, rest = rest.partition(fmt.tests_start)
        if not found_tests or between.strip():
            return None, "no_tests"
    if fmt.tests_end:
        rest = rest.partition(fmt.tests_end)[0]
    tests = rest.strip()
    if not tests:
        return None, "empty_tests"
    return (response, tests), None


def section_texts(fmt: PromptFormat, response: str) -> dict[str, str]:
    """The text of each of ``fmt.response_sections`` in ``response`` (marker removed, stripped)."""
    markers = list(fmt.response_sections)
    out: dict[str, str] = {}
    for index, marker in enumerate(markers):
        start = response.index(marker) + len(marker)
        end = response.index(markers[index + 1]) if index + 1 < len(markers) else len(response)
        out[marker] = response[start:end].strip()
    return out
