"""Seed-stage audit trail: why each function was dropped (heuristics, pyright), skipped docstring
styles counted, and HumanEval helper functions caught by decontamination."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from selfalign import decontamination as decontam
from selfalign.decontamination import Decontaminator
from selfalign.heuristics import heuristic_rejection, removed_record as heuristics_removed
from selfalign.seeds import extract_functions, iter_seed_records, python_files
from selfalign.typecheck import removed_record as typecheck_removed, typecheck

TQ = "'" * 3


def test_heuristic_rejections_name_rule_line_and_message():
    code = "def f(x):\n    import subprocess\n    return x"
    rejection = heuristic_rejection(code)
    assert (rejection.rule, rejection.line) == ("banned_import", 2) and "subprocess" in rejection.message
    assert heuristic_rejection("def f(x):\n    y = x  # TODO\n    return y").line == 2
    assert heuristic_rejection("def f():\n    return 1").rule == "zero_arguments"
    assert heuristic_rejection("def f(x):\n    print(x)").line is None
    row = heuristics_removed({"seed_id": "s-1", "source": "a.py:3"}, rejection)
    assert row == {
        "seed_id": "s-1", "source": "a.py:3", "stage": "heuristics", "reason": "banned_import", "line": 2,
        "message": rejection.message,
    }


def test_pyright_diagnostics_are_kept_per_function():
    functions = ["def ok(x: int) -> int:\n    return x + 1", "def bad(x):\n    return undefined_name + x"]
    result = typecheck(functions, batch_size=10)
    assert [check.ok for check in result.checks] == [True, False]
    (diagnostic,) = result.checks[1].diagnostics
    assert diagnostic.rule == "reportUndefinedVariable" and diagnostic.line == 2 and "undefined_name" in diagnostic.message
    row = typecheck_removed({"seed_id": "s-2", "source": "b.py:1"}, result.checks[1])
    assert row["reason"] == "pyright_error" and row["diagnostics"][0]["rule"] == "reportUndefinedVariable"
    assert row["diagnostics"][0]["line"] == 2 and row["detail"] is None


def test_skipped_docstring_styles_are_counted(tmp_path: Path):
    source = (
        'def a(x):\n    """kept"""\n    return x\n\n'
        f"def b(x):\n    {TQ}single{TQ}\n    return x\n\n"
        'def c(x):\n    r"""raw"""\n    return x\n\n'
        'def d(x):\n    "short"\n    return x\n\n'
        f"def e(x):\n    {TQ}no return value: not a seed anyway{TQ}\n"
    )
    skipped: Counter[str] = Counter()
    assert [f.text[:5] for f in extract_functions(source, skipped=skipped)] == ["def a"]
    assert skipped == {
        "function_docstring_triple_single": 1,
        "function_docstring_prefixed": 1,
        "function_docstring_single_quoted": 1,
    }
    (tmp_path / "m.py").write_text(source)
    counts: Counter[str] = Counter()
    assert len(list(iter_seed_records(python_files([tmp_path], ["**/*.py"], []), counts))) == 1
    assert counts["function_docstring_triple_single"] == 1
    assert extract_functions(source, any_docstring=True, skipped=Counter())[1].text.startswith("def b")


def test_planted_humaneval_helper_is_removed_and_named():
    strings = decontam.humaneval_strings()
    helpers = {s.task_id: s.text for s in strings if s.benchmark == "humaneval_helper"}
    assert set(helpers) == {"HumanEval/10", "HumanEval/32", "HumanEval/38", "HumanEval/50"}
    assert helpers["HumanEval/10"].startswith("def is_palindrome(")
    planted = "import math\n\n\n" + helpers["HumanEval/32"] + "\n"  # poly(), pasted into a seed file
    found = Decontaminator(strings).find(planted)
    assert found is not None and found.string.benchmark == "humaneval_helper" and found.string.task_id == "HumanEval/32"


def test_benchmark_table_drives_every_reader():
    assert set(decontam.BENCHMARKS) == {"humaneval", "mbpp", "ds1000", "livecodebench"}
    labels = {label for entry in decontam.BENCHMARKS.values() for label in entry.labels}
    assert {s.benchmark for s in decontam.benchmark_strings("humaneval")} <= labels
