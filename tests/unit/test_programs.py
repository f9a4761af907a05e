"""Code-block extraction and program assembly from a response and its tests."""

from __future__ import annotations

import shutil
from dataclasses import asdict

import pytest

from selfalign.execute_stage import execute_samples
from selfalign.formats import SC2, SCA, format_from_mapping
from selfalign.programs import BuiltProgram, build_program, defined_functions, extract_code_blocks
from selfalign.sandbox import BubblewrapSandbox, Limits
from selfalign.shards import StageStats

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


# --- SC2's rule (python_blocks_that_parse), chosen by the sc2 prompt format; SCA's (all_blocks) by sca ----

SC2_IMPLEMENTATION = "[Reasoning]\nAdd them.\n\n[Implementation]\n```python\ndef add(a, b):\n    return a + b\n```\n\n[Explanation]\nIt adds."
SC2_TESTS = "```python\nassert add(1, 2) == 3\n```"


def test_formats_name_their_program_rule():
    assert (SCA.program_rule, SC2.program_rule) == ("all_blocks", "python_blocks_that_parse")


def test_sc2_joins_python_blocks_by_a_newline():
    built = build_program(SC2_IMPLEMENTATION, SC2_TESTS, SC2)
    assert built == BuiltProgram("def add(a, b):\n    return a + b\n\nassert add(1, 2) == 3\n")


def test_a_block_that_does_not_parse_is_skipped_in_sc2_and_fails_the_program_in_sca():
    broken = "```python\nadd(1, 2) ==\n```"
    response = f"{SC2_IMPLEMENTATION}\nA sketch:\n{broken}"
    assert build_program(response, SC2_TESTS, SC2).program == "def add(a, b):\n    return a + b\n\nassert add(1, 2) == 3\n"
    assert build_program(response, SC2_TESTS, SCA) == BuiltProgram(None, "uncompilable")


def test_sc2_runs_only_python_tagged_blocks_at_line_start():
    response = (
        "```\nuntagged = 1\n```\n```py\nshort_tag = 1\n```\n```Python\ncapital = 1\n```\n"
        "  ```python\nindented = 1\n  ```\n```python\nkept = 1\n```"
    )
    assert build_program(response, SC2_TESTS, SC2).program == "kept = 1\n\nassert add(1, 2) == 3\n"
    sca = build_program(response, SC2_TESTS, SCA).program
    assert sca is not None and "untagged = 1" in sca and "capital = 1" in sca


def test_sc2_keeps_the_entry_point_that_sca_cuts():
    block = 'def ask():\n    return input()\n\nif __name__ == "__main__":\n    print(ask())\n'
    assert build_program(f"```python\n{block}```", SC2_TESTS, SC2).program == block + "\nassert add(1, 2) == 3\n"
    assert build_program(f"```python\n{block}```", SC2_TESTS, SCA).program == "def ask():\n    return input()\n\nassert add(1, 2) == 3"


def test_sc2_block_left_open_runs_into_the_next_fence_line():
    # The body ends at the next line starting with a fence, here the tests' opening one: "[Tests]" is
    # a valid expression, so the open block still parses and runs, as it did in the reference.
    built = build_program("[Implementation]\n```python\nx = 1", "```python\nassert x == 1\n```", SC2)
    assert built.program == "x = 1\n\n[Tests]\n\nassert x == 1\n"


def test_sc2_without_python_blocks_is_no_code_and_with_none_parsing_uncompilable():
    assert build_program("[Reasoning]\nNo code.", "assert True", SC2) == BuiltProgram(None, "no_code")
    assert build_program("```python\ndef f(:\n```", "```python\nassert f(\n```", SC2) == BuiltProgram(None, "uncompilable")


def test_sc2_tests_alone_make_a_program():
    # Unlike SCA, the rule does not ask the response for code (selection's format check does that).
    assert build_program("[Reasoning]\nNo code.", SC2_TESTS, SC2).program == "assert add(1, 2) == 3\n"
    assert build_program("[Reasoning]\nNo code.", SC2_TESTS, SCA) == BuiltProgram(None, "no_code")


def test_a_format_written_out_names_a_known_program_rule():
    written = {
        key: list(value) if isinstance(value, tuple) else {k: list(v) for k, v in value.items()} if isinstance(value, dict) else value
        for key, value in asdict(SC2).items()
    }
    assert format_from_mapping(written) == SC2
    with pytest.raises(ValueError, match="field 'program_rule': one of all_blocks, python_blocks_that_parse"):
        format_from_mapping({**written, "program_rule": "every_block"})


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap missing: apt-get install bubblewrap")
def test_the_execution_stage_runs_each_sample_by_its_formats_rule():
    # A response with a passing implementation and a sketch that does not parse: SC2's rule skips the
    # sketch and the sample passes; SCA's rule joins it in and the sample is not run.
    response = f"{SC2_IMPLEMENTATION}\n```python\nadd(1, 2) ==\n```"
    rows = [
        {"response_id": f"r-{fmt}", "response": response, "tests": SC2_TESTS, "response_format": fmt}
        for fmt in ("sc2", "sca")
    ]
    out = execute_samples(
        rows, BubblewrapSandbox(), Limits(wall_seconds=30), workers=2, infra_retries=1, stats=StageStats("execute")
    )
    assert [row["verdict"] for row in out] == ["pass", "uncompilable"]
    assert out[0]["program"] == "def add(a, b):\n    return a + b\n\nassert add(1, 2) == 3\n"
