"""Code-block extraction and program assembly from a response and its tests."""

from __future__ import annotations

import pytest

from selfalign.programs import BuiltProgram, build_program, defined_functions, extract_code_blocks

RESPONSE = """Here is a solution.

```python
def add(a, b):
    return a + b
```

It adds two numbers.
"""
TESTS = """```python
assert add(1, 2) == 3
```"""


def test_blocks_with_and_without_language_tag():
    text = "intro\n```python\nx = 1\n```\nmiddle\n```\ny = 2\n```\n```py3  \n  z = 3  \n```"
    assert extract_code_blocks(text) == ["x = 1", "y = 2", "z = 3"]


def test_unclosed_final_fence_is_dropped_as_the_reference():
    assert extract_code_blocks("```python\nx = 1\n```\n```python\ny = 2\nz = 3") == ["x = 1"]


def test_blocks_filtered_by_tag():
    text = "```python\nx = 1\n```\n```\ny = 2\n```\n```Python\nz = 3\n```"
    assert extract_code_blocks(text, "python") == ["x = 1", "z = 3"]


def test_no_blocks_and_empty_blocks():
    assert extract_code_blocks("just prose, no code") == []
    assert extract_code_blocks("```python\n\n```") == []
    assert extract_code_blocks("trailing fence only ```") == []


def test_indentation_inside_a_block_is_preserved():
    assert extract_code_blocks("```\ndef f():\n    return 1\n```") == ["def f():\n    return 1"]


def test_program_is_response_blocks_then_test_blocks():
    built = build_program(RESPONSE, TESTS)
    assert built == BuiltProgram("def add(a, b):\n    return a + b\n\nassert add(1, 2) == 3")


def test_response_without_code_is_no_code():
    assert build_program("I cannot help with that.", TESTS) == BuiltProgram(None, "no_code")


def test_unparsable_program_is_uncompilable():
    assert build_program("```python\ndef add(a, b)\n    return a + b\n```", TESTS) == BuiltProgram(None, "uncompilable")


@pytest.mark.parametrize("quote", ['"', "'"])
def test_stdin_reading_entry_point_is_cut(quote):
    block = f"def ask():\n    return input()\n\nif __name__ == {quote}__main__{quote}:\n    print(ask())"
    built = build_program(f"```python\n{block}\n```", "")
    assert built.program == "def ask():\n    return input()"


def test_entry_point_cut_on_the_word_input_as_the_reference():
    # The reference cuts when the block mentions "input" anywhere, not only a call.
    block = 'def f(input_list):\n    return input_list\n\nif __name__ == "__main__":\n    print(f([1]))'
    assert build_program(f"```python\n{block}\n```", "").program == "def f(input_list):\n    return input_list"


def test_entry_point_kept_when_nothing_reads_stdin():
    block = 'def f():\n    return 1\n\nif __name__ == "__main__":\n    print(f())'
    assert build_program(f"```python\n{block}\n```", "").program == block


def test_defined_functions_are_top_level_only():
    code = "import os\n\ndef a():\n    def inner():\n        pass\n\nasync def b():\n    pass\n\nclass C:\n    def m(self):\n        pass\n"
    assert defined_functions(code) == ["a", "b"]


def test_defined_functions_rejects_unparsable_code():
    with pytest.raises(SyntaxError):
        defined_functions("def broken(:")
