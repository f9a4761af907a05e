"""Docstring split, judge prompt assembly, verdict reading and the judge's training documents."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from selfalign.fewshot import load_judge_fewshot
from selfalign.judge import (
    JUDGE_SAMPLING,
    judge_answer_completion,
    judge_document,
    judge_prompt,
    judge_verdict,
    split_docstring,
)

JUDGE = load_judge_fewshot(Path(__file__).resolve().parents[2] / "workflow" / "resources" / "fewshot" / "docstring_judge.yaml")


def test_split_docstring_on_its_own_lines() -> None:
    source = 'def area(w, h):\n    """Area of a rectangle.\n\n    Both sides are positive.\n    """\n    return w * h\n'
    assert split_docstring(source) == (
        "def area(w, h):\n    return w * h",
        "Area of a rectangle.\n\nBoth sides are positive.",
    )


def test_split_docstring_single_quotes_and_prefix() -> None:
    assert split_docstring("def f(x):\n    '''Double x.'''\n    return 2 * x") == (
        "def f(x):\n    return 2 * x",
        "Double x.",
    )
    assert split_docstring('def g(p):\n    r"""Match \\d in p."""\n    return p') == (
        "def g(p):\n    return p",
        "Match \\d in p.",
    )


def test_split_docstring_sharing_a_line_keeps_the_code() -> None:
    assert split_docstring('def f(): """Doc."""; return 1') == ("def f(): ; return 1", "Doc.")


@pytest.mark.parametrize(
    "source",
    [
        "def f(x):\n    return x",
        'def f(x):\n    """never closed\n    return x',
        'def f():\n    """   """\n    return 1',
    ],
)
def test_split_docstring_none(source: str) -> None:
    assert split_docstring(source) is None


@pytest.mark.parametrize("example", JUDGE.examples, ids=lambda example: example.id)
def test_split_docstring_round_trips_the_shipped_examples(example) -> None:
    header, _, body = example.code.partition("\n")
    docstring = example.docstring.replace("\n", "\n    ").replace("\n    \n", "\n\n")
    source = f'{header}\n    """{docstring}\n    """\n{body}'
    assert split_docstring(source) == (example.code, example.docstring)


def test_judge_prompt_structure() -> None:
    code, docstring = "def inc(x):\n    return x + 1", "Add one to x."
    prompt = judge_prompt(JUDGE, code, docstring, seed=5)
    templates = JUDGE.templates
    query = templates.question.format(code=code, docstring=docstring) + templates.query_upvotes + templates.lead_in
    assert prompt.endswith(query) and prompt.endswith("My answer is:")
    # All 7 shots then the query; shots are concatenated with no separator.
    assert prompt.count("<issue_start>") == len(JUDGE.examples) + 1
    assert prompt.count(templates.query_upvotes) == 1
    assert "\n<issue_start>" in prompt and "\n\n<issue_start>" not in prompt


def test_judge_prompt_shots_follow_the_seed() -> None:
    def order(prompt: str) -> list[str]:
        return [example.id for example in sorted(JUDGE.examples, key=lambda example: prompt.index(example.code))]

    expected = [example.id for example in random.Random(11).sample(list(JUDGE.examples), len(JUDGE.examples))]
    assert order(judge_prompt(JUDGE, "def q(): pass", "Q.", 11)) == expected
    orders = {tuple(order(judge_prompt(JUDGE, "def q(): pass", "Q.", seed))) for seed in range(20)}
    assert len(orders) > 10  # reshuffled per prompt
    assert judge_prompt(JUDGE, "def q(): pass", "Q.", 3) == judge_prompt(JUDGE, "def q(): pass", "Q.", 3)


def test_judge_prompt_shots_and_exclude() -> None:
    assert judge_prompt(JUDGE, "def q(): pass", "Q.", 0, shots=2).count("<issue_start>") == 3
    prompt = judge_prompt(JUDGE, "def q(): pass", "Q.", 0, exclude="clamp")
    assert prompt.count("<issue_start>") == len(JUDGE.examples) and "def clamp" not in prompt
    with pytest.raises(ValueError):
        judge_prompt(JUDGE, "def q(): pass", "Q.", 0, shots=-1)


@pytest.mark.parametrize(
    ("text", "keep"),
    [
        (" Yes", True),
        (" yes.", True),
        (" No", False),
        ("", False),
        (" Yes no", False),
        ("YES yes no", True),
        (" Not", False),
        (" Maybe", False),
    ],
)
def test_judge_verdict(text: str, keep: bool) -> None:
    assert judge_verdict(text) is keep


def test_decoding_constants() -> None:
    assert JUDGE_SAMPLING.temperature == 0.0 and JUDGE_SAMPLING.max_new_tokens == 5
    assert JUDGE_SAMPLING.stop == ("\n",) and JUDGE_SAMPLING.n == 1


@pytest.mark.parametrize("example", JUDGE.examples, ids=lambda example: example.id)
def test_judge_document_is_prompt_plus_answer(example) -> None:
    document = judge_document(JUDGE, example.id, seed=2)
    prompt = judge_prompt(JUDGE, example.code, example.docstring, 2, exclude=example.id)
    assert document == prompt + f" {example.answer}\n"
    assert judge_answer_completion(JUDGE, example) == f" {example.answer}\n"
    # The query's own example is never among its shots.
    assert document.count(example.code) == 1
    assert judge_verdict(document[len(prompt) :].rstrip("\n")) is (example.answer == "Yes")


def test_judge_document_unknown_id() -> None:
    with pytest.raises(KeyError, match="no judge example"):
        judge_document(JUDGE, "nope", 0)
