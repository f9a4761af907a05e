"""Seed extraction: top-level Python functions with a docstring and a ``return <expr>``.

The reference (``seed_gathering/generate_from_the_stack.py``) ran a tree-sitter query over The Stack:
a ``function_definition`` starting at column 0 whose first statement is a string with ``\"\"\"``
delimiters, captured as the exact text of the function node (decorators are outside that node).
Here the same selection is made with the standard ``ast`` module, over local source trees (for the
demo: the running interpreter's standard library).
"""

from __future__ import annotations

import ast
import errno
import re
import sysconfig
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from .records import seed_id

BINARY_PROBE_BYTES = 8192
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")  # the line ends `ast` counts (not \f, not \u2028)


@dataclass(frozen=True)
class ExtractedFunction:
    text: str  # exact source segment of the `def` (or `async def`) statement, decorators excluded
    lineno: int  # 1-based line of the `def` keyword


def stdlib_root() -> Path:
    """The standard library directory of the running interpreter."""
    return Path(sysconfig.get_paths()["stdlib"])


def _broken_link(path: Path) -> str | None:
    """Why the symlink ``path`` leads to no file (``symlink_loop``, ``dangling_symlink``), or None if it does."""
    try:
        path.stat()
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "symlink_loop"
        return "dangling_symlink" if err.errno in (errno.ENOENT, errno.ENOTDIR) else "unreadable"
    return None


def python_files(
    roots: list[Path], include: list[str], exclude: list[str], skip: Counter[str] | None = None
) -> list[tuple[Path, Path]]:
    """All ``(root, file)`` pairs matched by ``include`` and not by ``exclude``, sorted.

    Patterns are ``Path.glob`` patterns relative to each root (``**/*.py``, ``test/**``). An exclude
    pattern that matches a directory excludes everything below it (``Path.glob`` yields only
    directories for a trailing ``**``, and does not descend into symlinked directories, so a
    directory loop cannot recur). A matched symlink that loops or points nowhere is counted in
    ``skip`` by reason (``symlink_loop``, ``dangling_symlink``), once per path, like other skipped files.
    """
    found: set[tuple[Path, Path]] = set()
    broken: dict[Path, str] = {}
    for root in roots:
        if not root.is_dir():
            raise FileNotFoundError(f"seed root {root} is not a directory")
        excluded = {path for pattern in exclude for path in root.glob(pattern)}
        for pattern in include:
            for path in root.glob(pattern):
                if path in excluded or excluded.intersection(path.parents):
                    continue
                if path.is_symlink() and (reason := _broken_link(path)):
                    broken[path] = reason
                elif path.is_file():
                    found.add((root, path))
    if skip is not None:
        skip.update(broken.values())
    return sorted(found)


def _has_return_value(function: ast.AST) -> bool:
    # Like the reference's tree-sitter query `(return_statement)` over the whole function node,
    # this counts returns inside nested functions and classes too; a bare `return` does not count.
    return any(isinstance(node, ast.Return) and node.value is not None for node in ast.walk(function))


class _Segments:
    """``ast.get_source_segment`` with the source split into lines once, not on every call.

    (The stdlib function re-splits the whole source per call: quadratic on files with many functions.)
    """

    def __init__(self, source: str):
        self._lines = _LINE.findall(source)

    def __call__(self, node: ast.expr | ast.stmt) -> str:
        if node.end_lineno is None or node.end_col_offset is None:
            raise ValueError(f"node at line {node.lineno} has no end position")
        # ast positions: 1-based lines, columns in UTF-8 bytes
        first, last = node.lineno - 1, node.end_lineno - 1
        if first == last:
            return self._lines[first].encode()[node.col_offset : node.end_col_offset].decode()
        head = self._lines[first].encode()[node.col_offset :].decode()
        tail = self._lines[last].encode()[: node.end_col_offset].decode()
        return head + "".join(self._lines[first + 1 : last]) + tail


# Why a function with a string docstring is skipped under `docstring_quotes: triple_double`, counted in the
# extraction stats' "skipped" under these keys (functions, beside the per-file reasons).
DOCSTRING_SKIPS = {
    "triple_single": "function_docstring_triple_single",  # '''text'''
    "prefixed": "function_docstring_prefixed",  # r"""text""", u"""text""", ...
    "single_quoted": "function_docstring_single_quoted",  # "text" or 'text'
    "concatenated": "function_docstring_concatenated",  # implicit concatenation of several literals
}


def docstring_style(literal: str) -> str | None:
    """None for a plain triple-double-quoted literal (the reference's only accepted form), else why not."""
    if literal.startswith('"""') and literal.endswith('"""') and len(literal) >= 6:
        return None
    if literal[:1].isalpha():
        return "prefixed"
    if literal.startswith("'''"):
        return "triple_single"
    quote = literal[:1]
    if literal.endswith(quote) and literal.count(quote) == 2:
        return "single_quoted"
    return "concatenated"


def _docstring_ok(
    segment: _Segments, function: ast.FunctionDef | ast.AsyncFunctionDef, any_string: bool, skipped: Counter[str] | None
) -> bool:
    first = function.body[0]
    if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)):
        return False
    if any_string:
        return True
    # The reference's query required string_start == string_end == '"""': no prefix, no ''' quotes.
    style = docstring_style(segment(first.value))
    if style is not None and skipped is not None and _has_return_value(function):
        skipped[DOCSTRING_SKIPS[style]] += 1
    return style is None


def extract_functions(
    source: str, any_docstring: bool = False, skipped: Counter[str] | None = None
) -> list[ExtractedFunction]:
    """Top-level functions (``def`` and ``async def``) that start with a docstring and return a value.

    By default the docstring must be a plain triple-double-quoted literal, as in the reference;
    ``any_docstring=True`` accepts any string literal (``'''``, ``r\"\"\"``, single quotes). Functions
    that return a value but are skipped for their docstring's quotes are counted in ``skipped`` by style
    (``DOCSTRING_SKIPS``). Raises ``SyntaxError`` (or ``ValueError``/``RecursionError``) when ``source``
    does not parse.
    """
    tree = ast.parse(source)
    segment = _Segments(source)
    return [
        ExtractedFunction(text=segment(node), lineno=node.lineno)
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and _docstring_ok(segment, node, any_docstring, skipped)
        and _has_return_value(node)
    ]


class _SkipFile(Exception):
    """A file the scan cannot use; the message is the reason counted for it."""


def _check_text(data: bytes | str, max_bytes: int) -> str:
    """The source text of one file or document, or ``_SkipFile`` with the reason."""
    if isinstance(data, str):  # a dataset row: already decoded by its publisher
        if len(data) * 4 > max_bytes and len(data.encode("utf-8", "surrogatepass")) > max_bytes:  # UTF-8: <= 4 bytes a char
            raise _SkipFile("too_large")
        if "\0" in data[:BINARY_PROBE_BYTES]:
            raise _SkipFile("binary")
        return data.removeprefix("\ufeff")
    if b"\0" in data[:BINARY_PROBE_BYTES]:
        raise _SkipFile("binary")
    try:
        return data.decode("utf-8-sig")  # -sig: a leading byte-order mark is not part of the code
    except UnicodeDecodeError:
        raise _SkipFile("not_utf8") from None


def _read_source(path: Path, max_bytes: int) -> str:
    try:
        if path.stat().st_size > max_bytes:
            raise _SkipFile("too_large")
        data = path.read_bytes()
    except OSError:
        raise _SkipFile("unreadable") from None
    return _check_text(data, max_bytes)


def _parse(source: str, any_docstring: bool, skipped: Counter[str]) -> list[ExtractedFunction]:
    try:
        return extract_functions(source, any_docstring, skipped)
    except (SyntaxError, ValueError):
        raise _SkipFile("syntax_error") from None
    except RecursionError:  # pathologically nested code exceeds the parser's recursion limit
        raise _SkipFile("too_deep") from None


def _records(
    documents: Iterable[tuple[str, Callable[[], str]]], skip: Counter[str], seen: set[str], any_docstring: bool
) -> Iterator[dict[str, str]]:
    for name, load in documents:
        try:
            functions = _parse(load(), any_docstring, skip)
        except _SkipFile as skipped:
            skip[str(skipped)] += 1
            continue
        for function in functions:
            sid = seed_id(function.text)
            if sid in seen:
                skip["duplicate"] += 1
                continue
            seen.add(sid)
            yield {"seed_id": sid, "seed": function.text, "source": f"{name}:{function.lineno}"}


def dedup_records(records: Iterable[dict[str, str]], skip: Counter[str], seen: set[str]) -> Iterator[dict[str, str]]:
    """``records`` whose ``seed_id`` is not in ``seen`` (then added); the others counted as ``duplicate``."""
    for record in records:
        if record["seed_id"] in seen:
            skip["duplicate"] += 1
            continue
        seen.add(record["seed_id"])
        yield record


def iter_seed_records(
    files: list[tuple[Path, Path]],
    skip: Counter[str],
    max_bytes: int = 1_000_000,
    any_docstring: bool = False,
    seen: set[str] | None = None,
) -> Iterator[dict[str, str]]:
    """Yield ``{"seed_id", "seed", "source"}`` for every extracted function, exact-deduplicated.

    Files that are too large, unreadable, binary, not UTF-8 or do not parse are counted in ``skip``
    under that reason; a function whose text was already yielded (or is in ``seen``) is counted as
    ``duplicate``. ``source`` is ``<path relative to its root>:<line>``, so no machine path leaks into the data.
    """
    documents = ((path.relative_to(root).as_posix(), partial(_read_source, path, max_bytes)) for root, path in files)
    yield from _records(documents, skip, set() if seen is None else seen, any_docstring)


def iter_document_records(
    documents: Iterable[dict[str, str]],
    skip: Counter[str],
    max_bytes: int = 1_000_000,
    any_docstring: bool = False,
    seen: set[str] | None = None,
) -> Iterator[dict[str, str]]:
    """As ``iter_seed_records``, for in-memory ``{"path", "content"}`` documents (dataset rows)."""
    pairs = ((doc["path"], partial(_check_text, doc["content"], max_bytes)) for doc in documents)
    yield from _records(pairs, skip, set() if seen is None else seen, any_docstring)
