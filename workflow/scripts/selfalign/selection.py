"""Selection of the SFT set: format checks, a seeded shuffle, one passing response per instruction, dedup.

As the SelfCodeAlign reference (sanitize step): only passing samples; the response must hold a Python
block and the tests an `assert`; no unfinished-code markers; instructions over a word cap are dropped.
After a seeded shuffle the first row wins for each instruction and each response (one key space, as
the reference), and for each set of defined function names. The shuffle is what makes the kept
response a random passing one.

Two phases so no process holds more than keys: ``candidate_keys`` per shard, ``select`` globally.
"""

from __future__ import annotations

import ast
import random
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from .programs import extract_code_blocks

INCOMPLETE_MARKERS = ("todo", "fixme", "write your code here", "your code here", "your code goes here", "notimplemented")
_ONLY_DECLARATIONS = re.compile(r"^(def |class |import |from |@|\s|#|$)")


def format_problem(record: dict[str, Any], max_instruction_words: int) -> str | None:
    """The reason a passing sample is unusable for training, or None."""
    response, tests, instruction = record["response"], record["tests"], record["instruction"]
    if len(instruction.split()) > max_instruction_words:
        return "instruction_too_long"
    lowered = (response + "\n" + tests).lower()
    if any(marker in lowered for marker in INCOMPLETE_MARKERS):
        return "incomplete_marker"
    if not extract_code_blocks(response):
        return "response_without_code"
    test_blocks = extract_code_blocks(tests)
    if not test_blocks or "assert" not in tests:
        return "tests_without_assert"
    test_code = "\n".join(test_blocks)
    if all(_ONLY_DECLARATIONS.match(line) for line in test_code.splitlines()):
        return "tests_only_declarations"
    return None


def _normalised(names: list[str]) -> str:
    return " ".join(sorted({name.lower().replace("_", "") for name in names}))


def name_key(response: str) -> str | None:
    """Normalised names of the functions (or, failing that, classes) the first code block defines."""
    blocks = extract_code_blocks(response)
    if not blocks:
        return None
    try:
        body = ast.parse(blocks[0]).body
    except SyntaxError:
        return None
    functions = [node.name for node in body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if functions:
        return "def:" + _normalised(functions)
    classes = [node.name for node in body if isinstance(node, ast.ClassDef)]
    return "class:" + _normalised(classes) if classes else None


def candidate_keys(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "response_id": record["response_id"],
        "instruction_key": record["instruction"].strip(),
        "response_key": record["response"].strip(),
        "name_key": name_key(record["response"]),
    }


def select(
    keys: Iterable[dict[str, Any]], seed: int, dedup_function_names: bool = True
) -> tuple[list[str], Counter[str]]:
    """Response ids to keep, in the shuffled order, and the drop counts by reason.

    Sorting by response id before the shuffle makes the result independent of shard order.
    """
    rows = sorted(keys, key=lambda k: k["response_id"])
    random.Random(seed).shuffle(rows)
    seen_text: set[str] = set()  # instructions and responses share one key space, as the reference
    seen_names: set[str] = set()
    kept: list[str] = []
    dropped: Counter[str] = Counter()
    for row in rows:
        if row["instruction_key"] in seen_text:
            dropped["duplicate_instruction"] += 1
            continue
        if row["response_key"] in seen_text:
            dropped["duplicate_response"] += 1
            continue
        if dedup_function_names and row["name_key"] is not None and row["name_key"] in seen_names:
            dropped["duplicate_function_names"] += 1
            continue
        seen_text.update((row["instruction_key"], row["response_key"]))
        if row["name_key"] is not None:
            seen_names.add(row["name_key"])
        kept.append(row["response_id"])
    return kept, dropped


SFT_FIELDS = (
    "instruction",
    "response",
    "tests",
    "seed",
    "source",
    "concepts",
    "category",
    "difficulty",
    "seed_id",
    "concepts_id",
    "instruction_id",
    "response_id",
    "verdict_id",
    "row",
    "sample_index",
    "provenance",
)


def sft_record(record: dict[str, Any]) -> dict[str, Any]:
    """The training pair with its lineage back to the seed; training reads instruction and response."""
    return {field: record[field] for field in SFT_FIELDS if field in record}
