"""Turn a generated response and its tests into one executable program.

The program is the concatenation of every fenced block: implementation first, then tests, which is
how self-validation checks a response against its own tests.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Literal

FENCE = "```"
# A block that reads stdin would block (or fail) in the sandbox: its script entry point is cut off.
_MAIN_GUARD = re.compile(r"""^if\s+__name__\s*==\s*(['"])__main__\1\s*:""", re.MULTILINE)

DropReason = Literal["no_code", "uncompilable"]


@dataclass(frozen=True)
class BuiltProgram:
    program: str | None  # None exactly when drop_reason is set
    drop_reason: DropReason | None = None


def extract_code_blocks(text: str) -> list[str]:
    """Every fenced block, with or without a language tag, stripped; empty blocks are skipped.

    A scanning parser rather than a regex: an unclosed final fence (a response cut by the token
    limit) still yields its code.
    """
    blocks: list[str] = []
    position = 0
    while (opening := text.find(FENCE, position)) != -1:
        body_start = text.find("\n", opening)  # the rest of the fence line is the language tag
        if body_start == -1:
            break
        closing = text.find(FENCE, body_start)
        block = text[body_start + 1 : closing if closing != -1 else len(text)].strip()
        if block:
            blocks.append(block)
        if closing == -1:
            break
        position = closing + len(FENCE)
    return blocks


def _without_stdin_entry_point(block: str) -> str:
    if "input(" not in block:
        return block
    guard = _MAIN_GUARD.search(block)
    return block[: guard.start()].rstrip() if guard else block


def build_program(response: str, tests: str) -> BuiltProgram:
    """All blocks of ``response`` then all blocks of ``tests``, joined by blank lines.

    A response without any block is "no_code" (tests alone prove nothing); a joined program that
    does not parse is "uncompilable".
    """
    response_blocks = extract_code_blocks(response)
    if not response_blocks:
        return BuiltProgram(None, "no_code")
    blocks = [_without_stdin_entry_point(block) for block in response_blocks + extract_code_blocks(tests)]
    program = "\n\n".join(block for block in blocks if block)
    try:
        ast.parse(program)
    except (SyntaxError, ValueError):  # ValueError: source with NUL bytes
        return BuiltProgram(None, "uncompilable")
    return BuiltProgram(program)


def defined_functions(code: str) -> list[str]:
    """Names of the top-level (async) functions of ``code``, in order; raises SyntaxError if it does not parse."""
    return [
        node.name
        for node in ast.parse(code).body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]
