"""Prompt assembly (exact reference structure), per-row sampling, parsers and the teacher corpus."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
from selfalign.fewshot import (
    InstructExample,
    InstructFewShot,
    InstructSystem,
    load_instruct_fewshot,
    load_judge_fewshot,
)
from selfalign.judge import judge_verdict
from selfalign.prompts import (
    C2I_STOP,
    I2R_STOP,
    S2C_STOP,
    ParsedResponse,
    c2i_document,
    c2i_prompt,
    i2r_document,
    i2r_prompt,
    parse_concepts,
    parse_instruction,
    parse_response,
    s2c_document,
    s2c_prompt,
    teacher_documents,
)

FEWSHOT_DIR = Path(__file__).resolve().parents[2] / "workflow" / "resources" / "fewshot"
INSTRUCT = load_instruct_fewshot(FEWSHOT_DIR / "self_oss_instruct.yaml")
JUDGE = load_judge_fewshot(FEWSHOT_DIR / "docstring_judge.yaml")


def tiny_example(name: str) -> InstructExample:
    return InstructExample(
        id=name,
        snippet=f"    x = {name}()",
        category="function implementation",
        language="Python",
        difficulty="easy",
        concepts=(f"{name} one", f"{name} two", f"{name} three"),
        instruction=f"Write `{name}()`.",
        response=f"Done.\n\n```python\ndef {name}():\n    return 1\n```",
        tests=f"```python\nassert {name}() == 1\n```",
    )


TINY = InstructFewShot(
    path="tiny.yaml",
    system=InstructSystem(s2c="SYS-S2C", c2i="SYS-C2I", i2r="SYS-I2R"),
    examples=tuple(tiny_example(name) for name in ("alpha", "beta", "gamma")),
)


def cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
    """What a backend returns: the completion cut before the first stop string."""
    cut = min((text.index(s) for s in stop if s in text), default=len(text))
    return text[:cut]


def test_s2c_exact_assembly() -> None:
    prompt = s2c_prompt(TINY, "def seed():\n    return 0\n\n", seed=7, shots=2)
    first, second = (TINY.by_id(example_id) for example_id in prompt.fewshot_ids)
    expected = (
        "SYS-S2C\n\n"
        f"## Example 1\n### Snippet\n{first.snippet}\n\n### Concepts\n{', '.join(first.concepts)}\n\n"
        f"## Example 2\n### Snippet\n{second.snippet}\n\n### Concepts\n{', '.join(second.concepts)}\n\n"
        "## Example 3\n### Snippet\ndef seed():\n    return 0\n\n### Concepts"
    )
    assert prompt.text == expected
    assert prompt.stop == S2C_STOP == ("## Example",)
    assert prompt.category is None and prompt.difficulty is None


def test_shots_are_random_sample_of_the_row_seed() -> None:
    for seed in range(30):
        expected = tuple(e.id for e in random.Random(seed).sample(list(INSTRUCT.examples), 8))
        assert s2c_prompt(INSTRUCT, "x = 1", seed).fewshot_ids == expected
        assert i2r_prompt(INSTRUCT, "Do it.", seed).fewshot_ids == expected[:1]


def test_shots_capped_by_available_and_exclude() -> None:
    prompt = s2c_prompt(TINY, "x = 1", seed=1, shots=8)
    assert sorted(prompt.fewshot_ids) == ["alpha", "beta", "gamma"]
    excluded = s2c_prompt(TINY, "x = 1", seed=1, shots=8, exclude="beta")
    assert sorted(excluded.fewshot_ids) == ["alpha", "gamma"] and "## Example 3\n" in excluded.text
    assert (
        s2c_prompt(TINY, "x = 1", seed=1, shots=0).text
        == "SYS-S2C\n\n\n\n## Example 1\n### Snippet\nx = 1\n\n### Concepts"
    )
    with pytest.raises(ValueError):
        s2c_prompt(TINY, "   ", seed=1)


def test_c2i_exact_assembly_and_properties() -> None:
    prompt = c2i_prompt(TINY, ["loops", "dicts"], seed=3, shots=1)
    (shot,) = (TINY.by_id(example_id) for example_id in prompt.fewshot_ids)
    rng = random.Random(3)
    category = rng.choice(["function implementation"] * 2 + ["class implementation", "program implementation"])
    difficulty = rng.choice(["easy", "medium", "hard"])
    assert (prompt.category, prompt.difficulty) == (category, difficulty)
    assert prompt.text == (
        "SYS-C2I\n\n## Example 1\n### Properties\n"
        f"category: {shot.category}\nlanguage: Python\ndifficulty: {shot.difficulty}\n"
        f"concepts: {', '.join(shot.concepts)}\n\n### Task\n{shot.instruction}\n\n"
        f"## Example 2\n### Properties\ncategory: {category}\nlanguage: Python\n"
        f"difficulty: {difficulty}\nconcepts: loops, dicts\n\n### Task"
    )
    assert prompt.stop == C2I_STOP


def test_c2i_property_distribution() -> None:
    prompts = [c2i_prompt(INSTRUCT, ["a"], seed, shots=0) for seed in range(4000)]
    categories = Counter(p.category for p in prompts)
    assert abs(categories["function implementation"] / 4000 - 0.5) < 0.04
    assert abs(categories["class implementation"] / 4000 - 0.25) < 0.04
    assert abs(categories["program implementation"] / 4000 - 0.25) < 0.04
    assert set(Counter(p.difficulty for p in prompts)) == {"easy", "medium", "hard"}


def test_c2i_override_keeps_the_shots() -> None:
    drawn = c2i_prompt(INSTRUCT, ["a", "b"], seed=9)
    forced = c2i_prompt(INSTRUCT, ["a", "b"], seed=9, category="class implementation", difficulty="hard")
    assert forced.fewshot_ids == drawn.fewshot_ids
    assert (forced.category, forced.difficulty) == ("class implementation", "hard")
    assert forced.text.endswith(
        "category: class implementation\nlanguage: Python\ndifficulty: hard\nconcepts: a, b\n\n### Task"
    )
    with pytest.raises(ValueError):
        c2i_prompt(INSTRUCT, [], seed=9)


def test_i2r_exact_assembly() -> None:
    prompt = i2r_prompt(TINY, "  Write `delta()`.\n", seed=4)
    (shot,) = (TINY.by_id(example_id) for example_id in prompt.fewshot_ids)
    assert prompt.text == (
        f"SYS-I2R\n\n## Example 1\n<instruction>\n{shot.instruction}\n</instruction>\n\n<response>\n"
        f"{shot.response}\n</response>\n\n<tests>\n{shot.tests}\n</tests>\n\n"
        "## Example 2\n<instruction>\nWrite `delta()`.\n</instruction>\n\n<response>"
    )
    assert prompt.stop == I2R_STOP == ("## Example", "</tests>")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\nloops, recursion ,  dicts\n\n", (["loops", "recursion", "dicts"], None)),
        ("a,,b, ", (["a", "b"], None)),
        ("  \n", (None, "no_concepts")),
        (", ,", (None, "no_concepts")),
        (",".join(f"c{i}" for i in range(17)), (None, "too_many_concepts")),
        ("x" * 101, (None, "concept_too_long")),
    ],
)
def test_parse_concepts(text: str, expected: tuple) -> None:
    assert parse_concepts(text) == expected


def test_parse_instruction() -> None:
    assert parse_instruction("\nWrite `f`.\n\n") == ("Write `f`.", None)
    assert parse_instruction(" \n ") == (None, "empty_instruction")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\nok\n</response>\n\n<tests>\nassert 1\n", (ParsedResponse("ok", "assert 1"), None)),
        ("\nok\n</response>\n\n<tests>\nassert 1\n</tests>\nrest", (ParsedResponse("ok", "assert 1"), None)),
        ("\nok but never closed", (None, "no_response_end")),
        ("\n \n</response>\n<tests>\nassert 1", (None, "empty_response")),
        ("\nok\n</response>\n\nno tests tag", (None, "no_tests")),
        ("\nok\n</response>\n\n<tests>\n  \n", (None, "empty_tests")),
    ],
)
def test_parse_response(text: str, expected: tuple) -> None:
    assert parse_response(text) == expected


# --- teacher documents: the prompt the pipeline renders + exactly the completion it expects --------


@pytest.mark.parametrize("example", INSTRUCT.examples, ids=lambda example: example.id)
def test_documents_round_trip_through_the_parsers(example: InstructExample) -> None:
    s2c = s2c_prompt(INSTRUCT, example.snippet, 5, shots=3, exclude=example.id)
    document = s2c_document(INSTRUCT, example, 5, 3)
    assert document.startswith(s2c.text) and example.id not in s2c.fewshot_ids
    completion = document[len(s2c.text) :]
    assert completion.startswith("\n") and completion.endswith(f"\n\n## Example {len(s2c.fewshot_ids) + 2}")
    assert parse_concepts(cut_at_stop(completion, s2c.stop)) == (list(example.concepts), None)

    c2i = c2i_prompt(
        INSTRUCT, example.concepts, 5, 3, category=example.category, difficulty=example.difficulty, exclude=example.id
    )
    document = c2i_document(INSTRUCT, example, 5, 3)
    assert document.startswith(c2i.text) and example.id not in c2i.fewshot_ids
    assert parse_instruction(cut_at_stop(document[len(c2i.text) :], c2i.stop)) == (example.instruction, None)

    i2r = i2r_prompt(INSTRUCT, example.instruction, 5, 1, exclude=example.id)
    document = i2r_document(INSTRUCT, example, 5, 1)
    assert document.startswith(i2r.text) and document.endswith("</tests>")
    parsed, reason = parse_response(cut_at_stop(document[len(i2r.text) :], i2r.stop))
    assert reason is None and parsed == ParsedResponse(example.response, example.tests)


def test_teacher_documents_mix_and_determinism() -> None:
    shots = {"s2c": 2, "c2i": 2}
    documents = teacher_documents(INSTRUCT, JUDGE, 40, seed=1, shots=shots)
    assert documents == teacher_documents(INSTRUCT, JUDGE, 40, seed=1, shots=shots)
    assert documents != teacher_documents(INSTRUCT, JUDGE, 40, seed=2, shots=shots)
    kinds = Counter()
    for document in documents:
        if document.startswith(INSTRUCT.system.s2c):
            kinds["s2c"] += 1
            assert document.count("### Snippet") == 3
        elif document.startswith(INSTRUCT.system.c2i):
            kinds["c2i"] += 1
            assert document.count("### Properties") == 3
        elif document.startswith(INSTRUCT.system.i2r):
            kinds["i2r"] += 1
            assert document.count("<instruction>") == 2 and document.endswith("</tests>")
        else:
            kinds["judge"] += 1
            assert document.count("<issue_start>") == len(JUDGE.examples)  # 6 shots + the query
            answer = document.rsplit("My answer is:", 1)[1]
            assert answer in (" Yes\n", " No\n") and judge_verdict(answer) is (answer == " Yes\n")
    assert kinds == {"s2c": 10, "c2i": 10, "i2r": 10, "judge": 10}


def test_teacher_documents_reject_unknown_task() -> None:
    with pytest.raises(ValueError, match="unknown tasks"):
        teacher_documents(INSTRUCT, JUDGE, 4, seed=0, shots={"s2i": 2})


# --- the sc2 format: the same assembly, its own query templates, property order, stops and parser ------

SC2_FILE = load_instruct_fewshot(FEWSHOT_DIR / "self_oss_instruct_sc2.yaml")


def test_sc2_c2i_property_block_and_category_draw() -> None:
    prompt = c2i_prompt(SC2_FILE, ["loops", "sets"], seed=11, shots=2)
    query = prompt.text.rsplit("## Example 3\n", 1)[1]
    lines = query.split("\n")
    assert lines[0] == "### Property" and lines[-1] == "### Instruction"
    assert [line.split(":")[0] for line in lines[1:5]] == ["category", "language", "concepts", "difficulty"]
    assert prompt.category == "code generation (function implementation)"
    # the one-item category draw still consumes the rng, so shots match the sca draw order
    assert c2i_prompt(INSTRUCT, ["loops", "sets"], seed=11, shots=2).difficulty == prompt.difficulty


def test_sc2_i2r_prompt_and_parser() -> None:
    prompt = i2r_prompt(SC2_FILE, "Write `f`.", seed=3)
    assert prompt.text.endswith("### Instruction\nWrite `f`.\n\n### Response") and prompt.stop == ("## Example",)
    (shot,) = (SC2_FILE.by_id(i) for i in prompt.fewshot_ids)
    assert f"### Response\n{shot.response}\n\n[Tests]\n{shot.tests}\n\n## Example 2" in prompt.text
    completion = "\n[Reasoning]\nThink.\n\n[Implementation]\n```python\nx = 1\n```\n\n[Explanation]\nSo.\n\n[Tests]\n```python\nassert x\n```\n\n"
    parsed, reason = parse_response(completion, SC2_FILE.format)
    assert reason is None and parsed.response.startswith("[Reasoning]") and parsed.tests == "```python\nassert x\n```"
    assert parse_response(completion.replace("[Explanation]", "[Explain]"), SC2_FILE.format) == (None, "bad_sections")
    assert parse_response(completion.replace("[Tests]", "Tests"), SC2_FILE.format) == (None, "no_response_end")
    swapped = completion.replace("[Reasoning]", "[TMP]").replace("[Explanation]", "[Reasoning]").replace("[TMP]", "[Explanation]")
    assert parse_response(swapped, SC2_FILE.format) == (None, "bad_sections")


@pytest.mark.parametrize("example", SC2_FILE.examples, ids=lambda example: example.id)
def test_sc2_documents_round_trip(example: InstructExample) -> None:
    i2r = i2r_prompt(SC2_FILE, example.instruction, 5, 1, exclude=example.id)
    document = i2r_document(SC2_FILE, example, 5, 1)
    assert document.startswith(i2r.text) and document.endswith("\n\n## Example 3")
    parsed, reason = parse_response(cut_at_stop(document[len(i2r.text) :], i2r.stop), SC2_FILE.format)
    assert reason is None and parsed == ParsedResponse(example.response, example.tests)
