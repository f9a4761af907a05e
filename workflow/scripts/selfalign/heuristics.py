"""The reference's seed pre-filter (``seed_gathering/filter_dataset.py::pre_filtering``), with reasons.

Rejection rules, checked in the reference's order (benchmark decontamination, its rule 3, lives in
``decontam.py``; its rule 7, a docstring-shape check that an ``and``/``or`` slip made nearly inert,
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
"""

from __future__ import annotations

import ast
import re

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


def _reference_reject(code: str, tree: ast.Module, max_lines: int) -> str | None:
    lower = code.lower()
    if any(word in lower for word in BAD_WORDS):
        return "bad_word"
    if any(substring in lower for substring in _REFERENCE_IMPORT_SUBSTRINGS):
        return "banned_import"
    lines = code.split("\n")
    if len(lines) > max_lines:
        return "too_many_lines"
    if any(line.startswith("def ") and "():" in line for line in lines):
        return "zero_arguments"
    if not _has_return_value(tree):
        return "no_return_value"
    return None


def _fixed_reject(code: str, tree: ast.Module, max_lines: int) -> str | None:
    if _BAD_WORD_PATTERN.search(code.lower()):
        return "bad_word"
    if _imported_packages(tree) & set(BANNED_IMPORTS):
        return "banned_import"
    if len(code.split("\n")) > max_lines:
        return "too_many_lines"
    top_level_functions = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if any(_takes_no_argument(function) for function in top_level_functions):
        return "zero_arguments"
    if not _has_return_value(tree):
        return "no_return_value"
    return None


def heuristic_reject(code: str, mode: str = "fixed", max_lines: int = 150) -> str | None:
    """The reason ``code`` is rejected by the pre-filter, or ``None`` if it passes."""
    if mode not in MODES:
        raise ValueError(f"heuristics mode must be one of {MODES}, got {mode!r}")
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError):
        return "syntax_error"
    if mode == "reference":
        return _reference_reject(code, tree, max_lines)
    return _fixed_reject(code, tree, max_lines)
