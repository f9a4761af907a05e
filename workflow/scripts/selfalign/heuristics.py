"""The reference's seed pre-filter (``seed_gathering/filter_dataset.py::pre_filtering``), with reasons.

Rejection rules, checked in the reference's order (benchmark decontamination, its rule 3, lives in
``decontamination.py``; its rule 7, a docstring-shape check that an ``and``/``or`` slip made nearly inert,
is covered by extraction, which already requires the docstring):

1. ``bad_word``: the code mentions todo, fixme or bug.
2. ``banned_import``: the code imports argparse, os, subprocess, sys, setuptools, distutils,
   matplotlib or seaborn (functions that touch the machine or plot make poor self-contained tasks).
3. ``too_many_lines``: more than ``max_lines`` lines (150 in the reference).
4. ``zero_arguments``: a top-level function takes no argument.
5. ``no_return_value``: no ``return <expr>`` anywhere (nested functions count, a bare ``return``
   does not), as the reference's tree-sitter query.

``mode="reference"`` reproduces the reference's text matching and its false positives:
bad words are plain substrings of the lowercased code (``debug`` hits ``bug``), imports are the
substrings ``import X`` / ``from X`` (``import osgeo`` hits ``os``, ``from system`` hits ``sys``, and so
does the text of a docstring), and a zero-argument function is a line starting with ``def `` that
contains ``():`` (so ``def f() -> int:`` and ``async def f():`` pass).

``mode="fixed"`` matches bad words on word boundaries, reads imports from the syntax tree (the top
package of every ``import``/``from`` statement, wherever it sits), and counts the parameters of
every top-level ``def``/``async def`` (any positional, keyword-only, ``*args`` or ``**kwargs``
parameter makes it non-zero-argument).

In both modes code that does not parse is rejected first as ``syntax_error`` (the reference's
tree-sitter parse was error-tolerant; seeds come from ``ast`` extraction, so they always parse).

``heuristic_rejection`` says why with the line that triggered the rule, and ``removed_record`` turns that
into the row of a ``{shard}.removed.jsonl`` audit file, so every dropped seed can be looked up.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

BAD_WORDS = ("todo", "fixme", "bug")
BANNED_IMPORTS = ("argparse", "os", "subprocess", "sys", "setuptools", "distutils", "matplotlib", "seaborn")
MODES = ("fixed", "reference")

_REFERENCE_IMPORT_SUBSTRINGS = tuple(f"import {name}" for name in BANNED_IMPORTS) + tuple(
    f"from {name}" for name in BANNED_IMPORTS
)
_BAD_WORD_PATTERN = re.compile(r"\b(?:" + "|".join(BAD_WORDS) + r")\b")


def _imported_packages(tree: ast.AST) -> set[str]:
    packages = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            packages.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            packages.add(node.module.split(".")[0])
    return packages


def _takes_no_argument(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    args = function.args
    return not (args.posonlyargs or args.args or args.kwonlyargs or args.vararg or args.kwarg)


def _has_return_value(tree: ast.AST) -> bool:
    return any(isinstance(node, ast.Return) and node.value is not None for node in ast.walk(tree))


@dataclass(frozen=True)
class Rejection:
    rule: str  # the reason counted in the stats, e.g. "banned_import"
    line: int | None  # 1-based line of the function that triggered it, when one line did
    message: str


def _first_line(lines: list[str], predicate: Any) -> int | None:
    return next((number for number, line in enumerate(lines, start=1) if predicate(line)), None)


def _reference_reject(code: str, tree: ast.Module, max_lines: int) -> Rejection | None:
    lower = code.lower()
    lines = code.split("\n")
    for word in BAD_WORDS:
        if word in lower:
            return Rejection("bad_word", _first_line(lines, lambda l: word in l.lower()), f"mentions '{word}'")
    for substring in _REFERENCE_IMPORT_SUBSTRINGS:
        if substring in lower:
            return Rejection("banned_import", _first_line(lines, lambda l: substring in l.lower()), f"contains '{substring}'")
    if len(lines) > max_lines:
        return Rejection("too_many_lines", max_lines + 1, f"{len(lines)} lines, more than {max_lines}")
    zero = _first_line(lines, lambda l: l.startswith("def ") and "():" in l)
    if zero is not None:
        return Rejection("zero_arguments", zero, "a function without arguments")
    if not _has_return_value(tree):
        return Rejection("no_return_value", None, "no 'return <expression>'")
    return None


def _fixed_reject(code: str, tree: ast.Module, max_lines: int) -> Rejection | None:
    lines = code.split("\n")
    match = _BAD_WORD_PATTERN.search(code.lower())
    if match:
        return Rejection("bad_word", code.count("\n", 0, match.start()) + 1, f"mentions '{match.group(0)}'")
    for node in ast.walk(tree):
        packages = set()
        if isinstance(node, ast.Import):
            packages = {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            packages = {node.module.split(".")[0]}
        banned = sorted(packages & set(BANNED_IMPORTS))
        if banned:
            return Rejection("banned_import", node.lineno, f"imports {banned[0]}")
    if len(lines) > max_lines:
        return Rejection("too_many_lines", max_lines + 1, f"{len(lines)} lines, more than {max_lines}")
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _takes_no_argument(node):
            return Rejection("zero_arguments", node.lineno, f"{node.name}() takes no argument")
    if not _has_return_value(tree):
        return Rejection("no_return_value", None, "no 'return <expression>'")
    return None


def heuristic_rejection(code: str, mode: str = "fixed", max_lines: int = 150) -> Rejection | None:
    """Why ``code`` is rejected by the pre-filter (rule, line, message), or ``None`` if it passes."""
    if mode not in MODES:
        raise ValueError(f"heuristics mode must be one of {MODES}, got {mode!r}")
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError) as err:
        line = err.lineno if isinstance(err, SyntaxError) else None
        return Rejection("syntax_error", line, f"does not parse: {err}")
    if mode == "reference":
        return _reference_reject(code, tree, max_lines)
    return _fixed_reject(code, tree, max_lines)


def heuristic_reject(code: str, mode: str = "fixed", max_lines: int = 150) -> str | None:
    """The reason ``code`` is rejected by the pre-filter, or ``None`` if it passes."""
    rejection = heuristic_rejection(code, mode, max_lines)
    return None if rejection is None else rejection.rule


def removed_record(record: dict[str, Any], rejection: Rejection) -> dict[str, Any]:
    """One row of ``heuristics/{shard}.removed.jsonl``: the seed and the rule that dropped it."""
    return {
        "seed_id": record["seed_id"],
        "source": record["source"],
        "stage": "heuristics",
        "reason": rejection.rule,
        "line": rejection.line,
        "message": rejection.message,
    }
