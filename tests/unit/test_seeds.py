import ast
from collections import Counter
from pathlib import Path

import pytest

from selfalign.records import seed_id
from selfalign.seeds import extract_functions, iter_seed_records, python_files, stdlib_root

SOURCE = '''import functools


def kept(x):
    """Double x."""
    # a comment inside the body stays in the text
    return 2 * x


@functools.cache
def decorated(n):
    """Square n."""
    return n * n


async def fetch(url):
    """Fetch url."""
    return await url.get()


def single_quoted(x):
    \'\'\'Single-quoted docstring.\'\'\'
    return x


def raw_docstring(x):
    r"""Raw docstring."""
    return x


def bare_return(x):
    """Returns nothing."""
    print(x)
    return


def nested_return(x):
    """Only a nested function returns a value."""
    def inner():
        return x
    inner()


def no_docstring(x):
    return x


class Holder:
    def method(self, x):
        """Methods are not top-level."""
        return x
'''


def names(functions):
    return [f.text.split("(")[0].split()[-1] for f in functions]


def test_extract_selects_top_level_triple_double_docstring_with_return_value():
    functions = extract_functions(SOURCE)
    assert names(functions) == ["kept", "decorated", "fetch", "nested_return"]
    kept = functions[0]
    assert kept.lineno == 4
    assert kept.text == 'def kept(x):\n    """Double x."""\n    # a comment inside the body stays in the text\n    return 2 * x'


def test_extract_excludes_decorators_and_reports_def_line():
    decorated = extract_functions(SOURCE)[1]
    assert decorated.text.startswith("def decorated(n):")
    assert decorated.lineno == SOURCE.splitlines().index("def decorated(n):") + 1


def test_any_docstring_flag_accepts_other_string_literals():
    assert names(extract_functions(SOURCE, any_docstring=True)) == [
        "kept", "decorated", "fetch", "single_quoted", "raw_docstring", "nested_return",
    ]


def test_text_equals_ast_source_segment_with_odd_line_ends_and_unicode():
    source = (
        'x = 1\r\ndef crlf(a):\r\n    """Caf\u00e9 \u2028 docstring."""\r\n    return a\r\n'
        '\x0c\ndef formfeed(b):\n    """\u00fc\u00f1\u00ee."""\n    s = "\u00e9"; return b + s'
    )
    functions = extract_functions(source)
    tree = ast.parse(source)
    assert [f.text for f in functions] == [ast.get_source_segment(source, node) for node in tree.body[1:]]


def test_extract_raises_on_syntax_error():
    with pytest.raises(SyntaxError):
        extract_functions("def broken(:\n")


def write(path: Path, content: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def test_python_files_include_exclude_sorted(tmp_path):
    root_a, root_b = tmp_path / "a", tmp_path / "b"
    for relative in ("pkg/z.py", "pkg/m.py", "test/t.py", "notes.txt"):
        write(root_a / relative, "")
    write(root_b / "x.py", "")
    found = python_files([root_b, root_a], include=["**/*.py"], exclude=["test/**"])
    assert found == [(root_a, root_a / "pkg/m.py"), (root_a, root_a / "pkg/z.py"), (root_b, root_b / "x.py")]
    assert python_files([root_a], ["**/*.py"], ["pkg/z.py", "test"]) == [(root_a, root_a / "pkg/m.py")]


def test_python_files_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        python_files([tmp_path / "missing"], ["**/*.py"], [])


def test_broken_symlinks_are_counted_by_reason_and_directory_loops_end(tmp_path):
    root = tmp_path / "tree"
    write(root / "pkg/real.py", "")
    (root / "pkg/alias.py").symlink_to("real.py")  # a good link: a file like any other
    (root / "pkg/dangling.py").symlink_to("gone.py")
    (root / "pkg/loop_a.py").symlink_to("loop_b.py")
    (root / "pkg/loop_b.py").symlink_to("loop_a.py")
    (root / "pkg/again").symlink_to(root / "pkg", target_is_directory=True)  # a directory loop
    skip: Counter[str] = Counter()
    found = python_files([root], ["**/*.py", "pkg/*.py"], [], skip)  # two patterns: each link counted once
    assert [path.name for _, path in found] == ["alias.py", "real.py"]
    assert skip == Counter({"symlink_loop": 2, "dangling_symlink": 1})


def test_iter_seed_records_skips_bad_files_and_duplicates(tmp_path):
    function = 'def one(x):\n    """One."""\n    return x + 1\n'
    write(tmp_path / "src/good.py", "import math\n\n" + function)
    write(tmp_path / "src/copy.py", function)
    write(tmp_path / "src/latin1.py", "# caf\xe9\n".encode("latin-1") + function.encode())
    write(tmp_path / "src/broken.py", "def broken(:\n")
    write(tmp_path / "src/blob.py", b"\x00\x01binary")
    write(tmp_path / "src/huge.py", function + "#" * 5000 + "\n")
    bom_function = 'def two(x):\n    """Two."""\n    return x + 2'
    write(tmp_path / "src/with_bom.py", b"\xef\xbb\xbf" + bom_function.encode())
    files = python_files([tmp_path], ["**/*.py"], [])
    skip: Counter[str] = Counter()
    records = list(iter_seed_records(files, skip, max_bytes=2000))
    assert skip == Counter({"duplicate": 1, "not_utf8": 1, "syntax_error": 1, "binary": 1, "too_large": 1})
    text = function.rstrip("\n")
    # files are visited in sorted order, so copy.py comes before good.py
    assert records == [
        {"seed_id": seed_id(text), "seed": text, "source": "src/copy.py:1"},
        {"seed_id": seed_id(bom_function), "seed": bom_function, "source": "src/with_bom.py:1"},
    ]


def test_stdlib_extraction_smoke():
    root = stdlib_root()
    assert (root / "textwrap.py").is_file()
    skip: Counter[str] = Counter()
    records = list(iter_seed_records(python_files([root], ["textwrap.py", "json/*.py"], []), skip))
    assert records, "the stdlib has documented top-level functions that return values"
    assert len({r["seed_id"] for r in records}) == len(records)
    for record in records:
        assert not Path(record["source"].rsplit(":", 1)[0]).is_absolute()
        assert record["seed"].lstrip().startswith(("def ", "async def "))
