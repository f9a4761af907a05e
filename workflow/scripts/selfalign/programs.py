"""Turn a generated response and its tests into one executable program.

The program is the concatenation of every fenced block: implementation first, then tests, which is
how self-validation checks a response against its own tests.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Literal

FENCE = "```"
# A block that mentions ``input`` could block on stdin in the sandbox: as the reference, its script entry
# point (the first of these exact lines) and everything after it is cut off.
MAIN_GUARDS = ('if __name__ == "__main__":', "if __name__ == '__main__':")

DropReason = Literal["no_code", "uncompilable"]


@dataclass(frozen=True)
class BuiltProgram:
    program: str | None  # None exactly when drop_reason is set
    drop_reason: DropReason | None = None


def code_block_spans(text: str, tag: str | None = None) -> list[tuple[int, int]]:
    """``(start, end)`` of the body of every closed fenced block (only those tagged ``tag`` when given,
    case-insensitive), in order.

    The reference's scanning parser: the rest of a fence line is the language tag, and a final fence
    that is never closed (a response cut short) yields nothing, as its code is incomplete.
    """
    spans: list[tuple[int, int]] = []
    position = 0
    while (opening := text.find(FENCE, position)) != -1:
        tag_start = opening + len(FENCE)
        line_end = text.find("\n", tag_start)
        if line_end == -1:
            line_end = tag_start
        found_tag = text[tag_start:line_end].strip()
        body_start = line_end + 1 if found_tag else tag_start
        closing = text.find(FENCE, body_start)
        if closing == -1:
            break
        if tag is None or found_tag.lower() == tag.lower():
            spans.append((body_start, closing))
        position = closing + len(FENCE)
    return spans


def extract_code_blocks(text: str, tag: str | None = None) -> list[str]:
    """The stripped bodies of ``code_block_spans``; empty blocks are skipped."""
    return [block for start, end in code_block_spans(text, tag) if (block := text[start:end].strip())]


def _without_stdin_entry_point(block: str) -> str:
    if "input" not in block:
        return block
    for guard in MAIN_GUARDS:
        index = block.find(guard)
        if index != -1:
            return block[:index].strip()
    return block


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
