"""Selection keys as the reference computes them, one test per key, for both flows."""

from __future__ import annotations

from selfalign.formats import SC2
from selfalign.sanitize import remove_comment_lines, smart_sanitize
from selfalign.selection import (
    candidate_keys,
    format_problem,
    name_keys,
    reference_shingles,
    select,
    text_key,
)

TESTS = "Checks:\n\n```python\nassert add(1, 2) == 3\nassert add(0, 0) == 0\n```"


def block(code: str, tag: str = "python") -> str:
    return f"```{tag}\n{code}\n```"


def record(i: int, instruction: str, response: str, tests: str = TESTS, fmt: str = "sca") -> dict:
    return {"response_id": f"r-{i:03d}", "instruction": instruction, "response": response, "tests": tests, "response_format": fmt}


def test_text_keys_remove_all_whitespace():
    assert text_key(" Write\n a  function\tadd. ") == "Writeafunctionadd."
    a = record(1, "Write add.", "Do it.\n" + block("def add(a, b):\n    return a + b"))
    b = record(2, "Write   add.\n", "Do  it.\n\n" + block("def add(a, b):\n    return a + b"))
    kept, dropped = select([candidate_keys(a), candidate_keys(b)], seed=0, dedup_function_names=False)
    assert len(kept) == 1 and dropped["duplicate_instruction"] == 1


def test_sca_name_keys_cover_methods_and_classes_normalised():
    code = "class Stack_Box:\n    def push(self, x):\n        def inner():\n            pass\n\nasync def Pop_():\n    pass"
    assert name_keys(block(code)) == ["inner pop push", "stackbox"]
    # A class-only key collides with an equally named function set, as in the reference's shared key set.
    assert name_keys(block("class Stack:\n    pass")) == ["stack"]
    assert name_keys(block("print(1)")) == []
    assert name_keys("no code at all") == []


def test_sc2_name_key_joins_function_names_in_definition_order():
    code = "def b():\n    def a():\n        pass\n\nclass K:\n    def m(self):\n        pass\n\ndef c():\n    pass"
    assert name_keys(block(code), "sc2") == ["b a m c"]
    assert name_keys(block("class K:\n    pass"), "sc2") == []


def test_name_key_uses_the_first_block_and_parse_errors_drop_the_row():
    response = block("def add(a, b)\n    return a + b") + "\n" + block("def fine():\n    pass")
    assert name_keys(response) is None and name_keys(response, "sc2") is None
    broken = record(1, "Write add.", response)
    kept, dropped = select([candidate_keys(broken)], seed=0)
    assert kept == [] and dropped == {"name_key_syntax_error": 1}


def test_method_names_deduplicate_across_classes():
    a = record(1, "Task one.", block("class A:\n    def run(self):\n        return 1"))
    b = record(2, "Task two.", block("class B:\n    def run(self):\n        return 2"))
    kept, dropped = select([candidate_keys(a), candidate_keys(b)], seed=0)
    assert len(kept) == 1 and dropped["duplicate_function_names"] == 1


def test_python_fences_are_required_in_response_and_tests():
    untagged = record(1, "Write add.", "Here:\n" + block("def add(a, b):\n    return a + b", tag=""))
    assert format_problem(untagged, 200) == "response_without_code"
    tests_untagged = record(2, "Write add.", block("def add(a, b):\n    return a + b"), tests=block("assert add(1, 2) == 3", tag=""))
    assert format_problem(tests_untagged, 200) == "tests_without_code"


def test_reference_minhash_tokens_keep_empty_strings():
    # "a, b" splits on each non-word character: "a", "", "b"
    assert reference_shingles("a, b", ngram=5) == {b"a  b"}
    assert reference_shingles("x y z w v u", ngram=5) == {b"x y z w v", b"y z w v u"}


SC2_RESPONSE = (
    "[Reasoning]\nAdd the two numbers.\n\n"
    "[Implementation]\n" + block("def add(a, b):\n    # sum them\n    return a + b") + "\n\n"
    "[Explanation]\nIt returns the sum."
)


def test_sc2_format_checks():
    ok = record(1, "Write add.", SC2_RESPONSE, fmt="sc2")
    assert format_problem(ok, 10_000) is None
    two_blocks = TESTS + "\n\n" + block("assert add(2, 2) == 4")
    assert format_problem({**ok, "tests": two_blocks}, 10_000) == "tests_not_one_block"
    no_code = SC2_RESPONSE.replace(block("def add(a, b):\n    # sum them\n    return a + b"), "prose only")
    assert format_problem({**ok, "response": no_code}, 10_000) == "response_without_code"


def test_sc2_response_key_includes_the_tests_section():
    a = candidate_keys(record(1, "Write add.", SC2_RESPONSE, fmt="sc2"))
    b = candidate_keys(record(1, "Write add.", SC2_RESPONSE, tests=TESTS.replace("0, 0", "1, 1"), fmt="sc2"))
    assert a["response_key"] != b["response_key"] and "[Tests]" in a["response_key"]


def test_smart_sanitize_is_seeded_per_pair_and_strips_tags_and_comments():
    pair = record(7, "Write add.", SC2_RESPONSE, fmt="sc2")
    outcomes = {smart_sanitize(pair, seed)["response"] for seed in range(40)}
    assert len(outcomes) > 1 and smart_sanitize(pair, 3) == smart_sanitize(pair, 3)
    for seed in range(40):
        out = smart_sanitize(pair, seed)
        assert "[Reasoning]" not in out["response"] and "# sum them" not in out["response"]
        assert "assert" not in out["response"]  # the instruction never mentions tests: tests dropped
        assert "def add(a, b):\n    return a + b" in out["response"]
    appended = [smart_sanitize(pair, seed)["instruction"] for seed in range(40)]
    assert any("assert add(" in text for text in appended) and "Write add." in appended
    with_tests = smart_sanitize({**pair, "instruction": "Write add and test it."}, 0)
    assert "assert add(1, 2) == 3" in with_tests["response"]
    assert smart_sanitize({**pair, "response": SC2_RESPONSE + " TODO"}, 0) is None
    assert smart_sanitize({**pair, "response_format": "sca"}, 0)["response"] == SC2_RESPONSE


def test_remove_comment_lines_only_inside_code_blocks():
    text = "# heading\n```python\nx = 1\n\n# note\ny = 2  # kept\n```"
    assert remove_comment_lines(text) == "# heading\n```python\nx = 1\ny = 2  # kept\n```"
    assert SC2.name == "sc2"
