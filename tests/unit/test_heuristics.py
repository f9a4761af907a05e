import pytest

from selfalign.heuristics import heuristic_reject


def fn(body: str, signature: str = "def f(x):") -> str:
    return f'{signature}\n    """Doc."""\n{body}\n    return x\n'


GOOD = fn("    y = x + 1")


@pytest.mark.parametrize("mode", ["fixed", "reference"])
def test_good_function_passes(mode):
    assert heuristic_reject(GOOD, mode) is None


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (fn("    # TODO: speed up"), "bad_word"),
        (fn("    # FixMe later"), "bad_word"),
        (fn("    # a known bug here"), "bad_word"),
        (fn("    import os"), "banned_import"),
        (fn("    import os.path"), "banned_import"),
        (fn("    from subprocess import run"), "banned_import"),
        (fn("    import matplotlib.pyplot as plt"), "banned_import"),
        (fn("\n".join(["    y = 1"] * 150)), "too_many_lines"),
        (fn("    y = 1", signature="def f():"), "zero_arguments"),
        ('def f(x):\n    """Doc."""\n    print(x)\n    return\n', "no_return_value"),
        ('def f(x):\n    """Doc."""\n    print(x)\n', "no_return_value"),
    ],
)
@pytest.mark.parametrize("mode", ["fixed", "reference"])
def test_rejections_common_to_both_modes(mode, code, reason):
    assert heuristic_reject(code, mode) == reason


@pytest.mark.parametrize(
    ("code", "reference_reason"),
    [
        (fn("    debug = True"), "bad_word"),  # substring: debug contains bug
        (fn("    todo_items = []"), "bad_word"),
        (fn("    import osgeo"), "banned_import"),  # substring: `import os`
        (fn("    from system import x"), "banned_import"),  # substring: `from sys`
        ('def f(x):\n    """Do not import os here."""\n    return x\n', "banned_import"),
    ],
)
def test_reference_substring_false_positives_are_fixed(code, reference_reason):
    assert heuristic_reject(code, "reference") == reference_reason
    assert heuristic_reject(code, "fixed") is None


@pytest.mark.parametrize(
    "signature",
    ["def f() -> int:", "async def f():"],
)
def test_zero_argument_forms_the_reference_misses(signature):
    code = fn("    x = 1", signature=signature)
    assert heuristic_reject(code, "reference") is None
    assert heuristic_reject(code, "fixed") == "zero_arguments"


@pytest.mark.parametrize("signature", ["def f(*args):", "def f(**kwargs):", "def f(*, key):", "def f(x, /):"])
def test_any_parameter_kind_counts_as_an_argument(signature):
    assert heuristic_reject(fn("    x = 1", signature=signature), "fixed") is None


def test_nested_function_return_counts():
    code = 'def f(x):\n    """Doc."""\n    def g():\n        return x\n    g()\n'
    assert heuristic_reject(code, "fixed") is None


def test_line_limit_is_configurable():
    assert heuristic_reject(GOOD, max_lines=3) == "too_many_lines"


def test_syntax_error_and_unknown_mode():
    assert heuristic_reject("def f(:\n") == "syntax_error"
    with pytest.raises(ValueError, match="mode"):
        heuristic_reject(GOOD, mode="strict")
