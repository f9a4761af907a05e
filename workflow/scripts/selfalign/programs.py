"""Turn a generated response and its tests into one executable program.

The program holds the response's code and then the tests' code, which is how self-validation checks a
response against its own tests. Which blocks make it is a rule the prompt format names
(``PromptFormat.program_rule``), one per reference flow:

- ``all_blocks`` (SelfCodeAlign): every closed fenced block, any language tag, the response's before the
  tests'; a block that mentions ``input`` loses its script entry point; joined by blank lines; the whole
  program must parse ("uncompilable" otherwise) and the response must hold a block ("no_code").
- ``python_blocks_that_parse`` (StarCoder2-Instruct): over the whole answer as the model wrote it, every
  block opened by a line ```` ```python ```` and closed by the next line starting with ```` ``` ````;
  blocks that do not parse on their own are skipped, the rest joined by a newline, nothing cut. No python
  block is "no_code"; blocks but none that parse is "uncompilable".
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .formats import PromptFormat

FENCE = "```"
PROGRAM_RULES = ("all_blocks", "python_blocks_that_parse")
# SC2's block: an opening line that is exactly ```python (trailing whitespace allowed; blank lines
# after it are not part of the body) and a body up to the next line that starts with a fence. The
# closing fence is only looked at, not consumed, so it can open the next block.
_SC2_BLOCK = re.compile(r"^```python\s*\n(.*?)(?=^```)", re.DOTALL | re.MULTILINE)
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


def build_program(response: str, tests: str, fmt: PromptFormat | None = None) -> BuiltProgram:
    """The program of one sample under ``fmt.program_rule`` (``all_blocks`` when no format is given)."""
    if fmt is None or fmt.program_rule == "all_blocks":
        return _all_blocks(response, tests)
    if fmt.program_rule == "python_blocks_that_parse":
        # The rule reads the answer as the model wrote it: a block left open in the response runs on
        # into the tests, as it did there.
        return python_blocks_that_parse(fmt.i2r_answer.format(response=response, tests=tests))
    raise ValueError(f"unknown program rule '{fmt.program_rule}' (known: {', '.join(PROGRAM_RULES)})")


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):  # ValueError: source with NUL bytes
        return False
    return True


def python_blocks_that_parse(answer: str) -> BuiltProgram:
    """SC2's rule over the whole answer text (response and tests as the model wrote them)."""
    blocks = _SC2_BLOCK.findall(answer)
    if not blocks:
        return BuiltProgram(None, "no_code")
    program = "\n".join(block for block in blocks if _parses(block))
    if not program:  # as the reference: only an empty join is dropped
        return BuiltProgram(None, "uncompilable")
    return BuiltProgram(program)


def _all_blocks(response: str, tests: str) -> BuiltProgram:
    """All blocks of ``response`` then all blocks of ``tests``, joined by blank lines.

    A response without any block is "no_code" (tests alone prove nothing); a joined program that
    does not parse is "uncompilable".
    """
    response_blocks = extract_code_blocks(response)
    if not response_blocks:
        return BuiltProgram(None, "no_code")
    blocks = [_without_stdin_entry_point(block) for block in response_blocks + extract_code_blocks(tests)]
    program = "\n\n".join(block for block in blocks if block)
    if not _parses(program):
        return BuiltProgram(None, "uncompilable")
    return BuiltProgram(program)


def defined_functions(code: str) -> list[str]:
    """Names of the top-level (async) functions of ``code``, in order; raises SyntaxError if it does not parse."""
    return [
        node.name
        for node in ast.parse(code).body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]
