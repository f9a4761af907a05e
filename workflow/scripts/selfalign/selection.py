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
from dataclasses import dataclass
from typing import Any

from . import neardedup
from .decontam import BenchmarkString, Decontaminator
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


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def code_representation(response: str) -> str | None:
    """The reference's code representation: ``ast.unparse`` of the top-level functions and classes of
    the response's code, docstrings removed ("" when it defines none); None when the code does not parse."""
    try:
        tree = ast.parse("\n\n".join(extract_code_blocks(response)))
    except (SyntaxError, ValueError):
        return None
    definitions = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    return ast.unparse(_without_docstrings(ast.Module(body=definitions, type_ignores=[])))


def candidate_keys(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "response_id": record["response_id"],
        "instruction_key": record["instruction"].strip(),
        "response_key": record["response"].strip(),
        "name_key": name_key(record["response"]),
        "code_representation": code_representation(record["response"]),
    }


@dataclass(frozen=True)
class NearDedup:
    fields: tuple[str, ...] = ("instruction", "response", "code")  # the reference's three passes, in order
    threshold: float = 0.7
    num_perm: int = 250
    seed: int = 42


def select(
    keys: Iterable[dict[str, Any]],
    seed: int,
    dedup_function_names: bool = True,
    decontaminator: Decontaminator | None = None,
    near_dedup: NearDedup | None = None,
) -> tuple[list[str], Counter[str]]:
    """Response ids to keep, in the shuffled order, and the drop counts by reason.

    Sorting by response id before the shuffle makes the result independent of shard order. In the
    reference's order: exact and function-name dedup, then the optional final decontamination, then
    the optional MinHash passes.
    """
    rows = sorted(keys, key=lambda k: k["response_id"])
    random.Random(seed).shuffle(rows)
    seen_text: set[str] = set()  # instructions and responses share one key space, as the reference
    seen_names: set[str] = set()
    kept: list[dict[str, Any]] = []
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
        kept.append(row)
    if decontaminator is not None:
        kept, contaminated = decontaminate(kept, decontaminator)
        dropped.update(contaminated)
    if near_dedup is not None and near_dedup.fields:
        kept, near = minhash_dedup(kept, near_dedup.fields, near_dedup.threshold, near_dedup.num_perm, near_dedup.seed)
        dropped.update(near)
    return [row["response_id"] for row in kept], dropped


def decontaminate(
    keys: list[dict[str, Any]], decontaminator: Decontaminator
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """The reference's final decontamination: drop a row whose lowercased instruction and response,
    joined by a blank line, contain a benchmark string; ``decontaminator`` must hold lowercased strings
    (``lowercased_decontaminator``). Drops are counted per benchmark."""
    kept: list[dict[str, Any]] = []
    dropped: Counter[str] = Counter()
    for row in keys:
        text = row["instruction_key"].lower() + "\n\n" + row["response_key"].lower()
        match = decontaminator.match(text)
        if match is None:
            kept.append(row)
        else:
            dropped[f"contaminated_{match.benchmark}"] += 1
    return kept, dropped


def lowercased_decontaminator(strings: Iterable[BenchmarkString]) -> Decontaminator:
    return Decontaminator(BenchmarkString(s.text.lower(), s.benchmark, s.task_id) for s in strings)


MINHASH_FIELDS = {"instruction": "instruction_key", "response": "response_key", "code": "code_representation"}


def minhash_dedup(
    keys: list[dict[str, Any]], fields: Iterable[str], threshold: float, num_perm: int, seed: int
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Near-dedup of ``keys`` (already in the shuffled order) on each field in turn, as the reference
    ran MinHash three times in place: in every cluster the row earliest in the order stays.

    ``code`` rows without any function or class ("") bypass that pass (the reference's
    ``--ignore_empty``); rows whose code does not parse are dropped, as the reference did. Unlike the
    reference, texts under five words take part (as one shingle) instead of being dropped silently.
    """
    dropped: Counter[str] = Counter()
    for field in fields:
        key = MINHASH_FIELDS[field]
        if field == "code":
            unparsable = [row for row in keys if row[key] is None]
            if unparsable:
                dropped["code_representation_syntax_error"] += len(unparsable)
                keys = [row for row in keys if row[key] is not None]
        # Position labels make "smallest id in the cluster" mean "first in the shuffled order".
        labelled = [{"id": f"{i:012d}", "text": row[key]} for i, row in enumerate(keys) if row[key] != ""]
        if not labelled:
            continue
        sketches = neardedup.signatures(labelled, "text", num_perm=num_perm, seed=seed, id_field="id")
        keep = neardedup.keep_set(neardedup.cluster([sketches], threshold=threshold, num_perm=num_perm))
        considered = {item["id"] for item in labelled}
        survivors = [row for i, row in enumerate(keys) if f"{i:012d}" not in considered or f"{i:012d}" in keep]
        if len(survivors) < len(keys):
            dropped[f"near_duplicate_{field}"] += len(keys) - len(survivors)
        keys = survivors
    return keys, dropped


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
