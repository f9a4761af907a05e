"""Selection of the SFT set: format checks, a seeded shuffle, one passing response per instruction, dedup.

As the reference's sanitize step, for the layout each response was written in (its ``response_format``):

- ``sca`` (tags): only passing samples; the response and the tests each hold a ```` ```python ```` block,
  the tests an ``assert`` and more than declarations; no unfinished-code markers; instructions over a
  word cap are dropped.
- ``sc2`` (sections): the implementation holds a ```` ```python ```` block and the tests exactly one
  (two fences); text after the tests' closing fence and from the first line starting with ``/`` is cut.

After a seeded shuffle the first row wins for each instruction and each response (whitespace removed,
one key space, as the reference) and, per ``name_keys``, for each function-name key: ``sca`` takes the
set of every function and method name and the set of class names of the first code block (lowercased,
``_`` removed; a set seen before drops the row), ``sc2`` the space-joined function and method names in
definition order; in both a first block that does not parse drops the row. The shuffle is what makes
the kept response a random passing one.

Two phases so no process holds more than keys: ``candidate_keys`` per shard, ``select`` globally.
"""

from __future__ import annotations

import ast
import random
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from . import neardedup
from .decontamination import BenchmarkString, Decontaminator
from .formats import SCA, get_format, section_texts
from .programs import FENCE, extract_code_blocks

INCOMPLETE_MARKERS = ("todo", "fixme", "write your code here", "your code here", "your code goes here", "notimplemented")
NAME_KEY_STYLES = ("sca", "sc2")
_DECLARATION_STARTS = ("def", "class", "import", "from")


def _only_declarations(code: str) -> bool:
    """The reference's test: every line starting with a letter is a def/class/import/from line."""
    return all(line.startswith(_DECLARATION_STARTS) for line in code.splitlines() if line and line[0].isalpha())


def _format_of(record: dict[str, Any]):
    return get_format(record.get("response_format", SCA.name))


def cut_tests(tests: str) -> str:
    """SC2's tests section: up to its closing fence, and before the first line starting with ``/``."""
    if tests.count(FENCE) >= 2:
        tests = tests[: tests.rindex(FENCE) + len(FENCE)]
    lines = tests.splitlines(keepends=True)
    strange = next((index for index, line in enumerate(lines) if line.startswith("/")), None)
    return "".join(lines[:strange]).strip() if strange is not None else tests


def format_problem(record: dict[str, Any], max_instruction_words: int) -> str | None:
    """The reason a passing sample is unusable for training, or None."""
    response, tests, instruction = record["response"], record["tests"], record["instruction"]
    fmt = _format_of(record)
    if len(instruction.split()) > max_instruction_words:
        return "instruction_too_long"
    lowered = (response + "\n" + tests).lower()
    if any(marker in lowered for marker in INCOMPLETE_MARKERS):
        return "incomplete_marker"
    if fmt.selection_checks == "sections":
        implementation = section_texts(fmt, response).get("[Implementation]", response)
        if not extract_code_blocks(implementation, "python"):
            return "response_without_code"
        test_blocks = extract_code_blocks(tests, "python")
        if len(test_blocks) != 1 or tests.count(FENCE) != 2:
            return "tests_not_one_block"
        tests = cut_tests(tests)
    else:
        if not extract_code_blocks(response, "python"):
            return "response_without_code"
        test_blocks = extract_code_blocks(tests, "python")
        if not test_blocks:
            return "tests_without_code"
    if "assert" not in tests:
        return "tests_without_assert"
    if _only_declarations("\n".join(test_blocks)):
        return "tests_only_declarations"
    return None


def text_key(text: str) -> str:
    """The reference's exact-dedup key: the text with all whitespace removed."""
    return "".join(text.split())


def _definitions(tree: ast.AST) -> Iterator[ast.AST]:
    """Depth-first, in source order (as ``ast.NodeVisitor`` visits)."""
    yield tree
    for child in ast.iter_child_nodes(tree):
        yield from _definitions(child)


def _compressed(names: Iterable[str]) -> str:
    return " ".join(sorted({name.replace("_", "").lower() for name in names}))


def name_keys(response: str, style: str = "sca") -> list[str] | None:
    """The function-name keys of the response's first code block; None when it does not parse.

    ``sca``: the set of every function and method name and the set of class names, each lowercased
    without ``_`` (an empty set gives no key); ``sc2``: the function and method names joined by spaces,
    in definition order (no key when there are none). No code block: no key.
    """
    if style not in NAME_KEY_STYLES:
        raise ValueError(f"name key style must be one of {NAME_KEY_STYLES}, got {style!r}")
    blocks = extract_code_blocks(response)
    if not blocks:
        return []
    try:
        tree = ast.parse(blocks[0])
    except (SyntaxError, ValueError):
        return None
    nodes = list(_definitions(tree))
    functions = [n.name for n in nodes if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if style == "sc2":
        return [" ".join(functions)] if functions else []
    classes = [n.name for n in nodes if isinstance(n, ast.ClassDef)]
    return [key for key in (_compressed(functions), _compressed(classes)) if key]


def name_key(response: str) -> str | None:
    """One printable form of the ``sca`` name keys (None: no code or no definitions or no parse)."""
    keys = name_keys(response)
    return " | ".join(keys) if keys else None


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def code_representation(response: str) -> str | None:
    """The reference's code representation: ``ast.unparse`` of the top-level functions and classes of
    the response's code blocks (joined by a newline), docstrings removed ("" when it defines none);
    None when the code does not parse."""
    try:
        tree = ast.parse("\n".join(extract_code_blocks(response)))
    except (SyntaxError, ValueError):
        return None
    definitions = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
    return ast.unparse(_without_docstrings(ast.Module(body=definitions, type_ignores=[])))


def candidate_keys(record: dict[str, Any]) -> dict[str, Any]:
    fmt = _format_of(record)
    # SC2 deduplicated the raw response, tests section included; SCA the response part only.
    whole = fmt.i2r_answer.format(response=record["response"], tests=record["tests"]) if fmt.response_sections else record["response"]
    return {
        "response_id": record["response_id"],
        "instruction_key": text_key(record["instruction"]),
        "response_key": text_key(whole),
        "name_keys": {style: name_keys(record["response"], style) for style in NAME_KEY_STYLES},
        "code_representation": code_representation(record["response"]),
        # what the final decontamination reads (lowercased there)
        "instruction": record["instruction"],
        "response": record["response"],
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
    name_key_style: str = "sca",
    removed: list[dict[str, Any]] | None = None,
) -> tuple[list[str], Counter[str]]:
    """Response ids to keep, in the shuffled order, and the drop counts by reason.

    Sorting by response id before the shuffle makes the result independent of shard order. In the
    reference's order: exact and function-name dedup, then the optional final decontamination, then
    the optional MinHash passes. Each dropped row goes to ``removed`` (when given) with its ``reason``
    and, for a duplicate, the ``duplicate_of`` response that was kept instead.
    """
    rows = sorted(keys, key=lambda k: k["response_id"])
    random.Random(seed).shuffle(rows)
    # instructions and responses share one key space, as the reference; key -> the response that claimed it
    seen_text: dict[str, str] = {}
    seen_names: dict[str, str] = {}
    kept: list[dict[str, Any]] = []
    dropped: Counter[str] = Counter()
    drop = _dropper(dropped, removed)
    for row in rows:
        if row["instruction_key"] in seen_text:
            drop(row, "duplicate_instruction", seen_text[row["instruction_key"]])
            continue
        if row["response_key"] in seen_text:
            drop(row, "duplicate_response", seen_text[row["response_key"]])
            continue
        names = row["name_keys"][name_key_style] if dedup_function_names else []
        if names is None:
            drop(row, "name_key_syntax_error")
            continue
        if clash := next((name for name in names if name in seen_names), None):
            drop(row, "duplicate_function_names", seen_names[clash], {"function_names": clash})
            continue
        seen_text.update(dict.fromkeys((row["instruction_key"], row["response_key"]), row["response_id"]))
        seen_names.update(dict.fromkeys(names, row["response_id"]))
        kept.append(row)
    if decontaminator is not None:
        kept, contaminated = decontaminate(kept, decontaminator, removed)
        dropped.update(contaminated)
    if near_dedup is not None and near_dedup.fields:
        kept, near = minhash_dedup(
            kept, near_dedup.fields, near_dedup.threshold, near_dedup.num_perm, near_dedup.seed, removed
        )
        dropped.update(near)
    return [row["response_id"] for row in kept], dropped


def _dropper(counts: Counter[str], removed: list[dict[str, Any]] | None):
    """Count a dropped row by reason and, when ``removed`` is kept, record what a person reads of it."""

    def drop(row: dict[str, Any], reason: str, duplicate_of: str | None = None, extra: dict[str, Any] | None = None) -> None:
        counts[reason] += 1
        if removed is not None:
            entry = {"reason": reason, "response_id": row["response_id"]}
            if duplicate_of is not None:
                entry["duplicate_of"] = duplicate_of
            removed.append({**entry, **(extra or {}), "instruction": row["instruction"], "response": row["response"]})

    return drop


def decontaminate(
    keys: list[dict[str, Any]], decontaminator: Decontaminator, removed: list[dict[str, Any]] | None = None
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """The reference's final decontamination: drop a row whose lowercased instruction and response,
    joined by a blank line, contain a benchmark string; ``decontaminator`` must hold lowercased strings
    (``lowercased_decontaminator``). Drops are counted per benchmark."""
    kept: list[dict[str, Any]] = []
    dropped: Counter[str] = Counter()
    drop = _dropper(dropped, removed)
    for row in keys:
        text = row["instruction"].lower() + "\n\n" + row["response"].lower()
        match = decontaminator.match(text)
        if match is None:
            kept.append(row)
        else:
            drop(row, f"contaminated_{match.benchmark}", extra={"task_id": match.task_id, "matched": match.text})
    return kept, dropped


def lowercased_decontaminator(strings: Iterable[BenchmarkString]) -> Decontaminator:
    return Decontaminator(BenchmarkString(s.text.lower(), s.benchmark, s.task_id) for s in strings)


MINHASH_FIELDS = {"instruction": "instruction", "response": "response", "code": "code_representation"}
_REFERENCE_NON_WORD = re.compile(r"\W")


def reference_shingles(text: str, ngram: int = neardedup.NGRAM) -> set[bytes]:
    """The reference's final-dedup shingles: ``re.split(r"\\W", text.lower())`` with its empty tokens
    kept, word n-grams joined by a space; a text under ``ngram`` tokens is one shingle."""
    tokens = _REFERENCE_NON_WORD.split(text.lower())
    if len(tokens) < ngram:
        return {" ".join(tokens).encode("utf-8")}
    return {" ".join(tokens[i : i + ngram]).encode("utf-8") for i in range(len(tokens) - ngram + 1)}


def minhash_dedup(
    keys: list[dict[str, Any]],
    fields: Iterable[str],
    threshold: float,
    num_perm: int,
    seed: int,
    removed: list[dict[str, Any]] | None = None,
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Near-dedup of ``keys`` (already in the shuffled order) on each field in turn, as the reference
    ran MinHash three times in place: in every cluster the row earliest in the order stays.

    ``code`` rows without any function or class ("") bypass that pass (the reference's
    ``--ignore_empty``); rows whose code does not parse are dropped, as the reference did. Unlike the
    reference, texts under five words take part (as one shingle) instead of being dropped silently.
    """
    dropped: Counter[str] = Counter()
    drop = _dropper(dropped, removed)
    for field in fields:
        key = MINHASH_FIELDS[field]
        if field == "code":
            for row in keys:
                if row[key] is None:
                    drop(row, "code_representation_syntax_error")
            keys = [row for row in keys if row[key] is not None]
        # Position labels make "smallest id in the cluster" mean "first in the shuffled order".
        labelled = [{"id": f"{i:012d}", "text": row[key]} for i, row in enumerate(keys) if row[key] != ""]
        if not labelled:
            continue
        sketches = neardedup.signatures(
            labelled, "text", num_perm=num_perm, seed=seed, id_field="id", shingler=reference_shingles
        )
        representative = neardedup.cluster([sketches], threshold=threshold, num_perm=num_perm)
        survivors = []
        for i, row in enumerate(keys):
            label = representative.get(f"{i:012d}")
            if label is None or label == f"{i:012d}":
                survivors.append(row)
            else:
                drop(row, f"near_duplicate_{field}", keys[int(label)]["response_id"])
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
    "response_format",
    "provenance",
)


def sft_record(record: dict[str, Any]) -> dict[str, Any]:
    """The training pair with its lineage back to the seed; training reads instruction and response."""
    return {field: record[field] for field in SFT_FIELDS if field in record}
