from selfalign.selection import candidate_keys, format_problem, name_key, select, sft_record

RESPONSE = "Here it is.\n```python\ndef add(a, b):\n    return a + b\n```"
TESTS = "```python\nassert add(1, 2) == 3\n```"


def _record(i, instruction="Write add.", response=RESPONSE, tests=TESTS):
    return {
        "response_id": f"r-{i:03d}",
        "instruction": instruction,
        "response": response,
        "tests": tests,
        "seed_id": "s-1",
        "verdict_id": "v-1",
    }


def test_format_problems():
    assert format_problem(_record(1), 200) is None
    assert format_problem(_record(1, instruction="w " * 201), 200) == "instruction_too_long"
    assert format_problem(_record(1, response="no code here"), 200) == "response_without_code"
    assert format_problem(_record(1, tests="```python\nprint(1)\n```"), 200) == "tests_without_assert"
    todo = RESPONSE.replace("return a + b", "return a + b  # TODO")
    assert format_problem(_record(1, response=todo), 200) == "incomplete_marker"
    declarations = "```python\nimport math\ndef check():\n    assert True\n```"
    assert format_problem(_record(1, tests=declarations), 200) == "tests_only_declarations"


def test_name_key_normalises_function_names():
    assert name_key(RESPONSE) == name_key(RESPONSE.replace("def add", "def Add_"))
    assert name_key("```python\nclass Stack:\n    pass\n```") == "stack"
    assert name_key("no code") is None


def test_one_response_per_instruction_seeded_and_order_independent():
    records = [_record(i, instruction=f"Write add {i % 3}.", response=RESPONSE.replace("a + b", f"a + b + {i} - {i}")) for i in range(9)]
    keys = [candidate_keys(r) for r in records]
    kept, dropped = select(keys, seed=6666, dedup_function_names=False)
    assert len(kept) == 3 and dropped["duplicate_instruction"] == 6
    assert select(list(reversed(keys)), seed=6666, dedup_function_names=False)[0] == kept
    assert select(keys, seed=1, dedup_function_names=False)[0] != kept or len(kept) == 1


def test_function_name_and_response_dedup():
    a = _record(1, instruction="Write add.")
    b = _record(2, instruction="Sum two numbers.")  # same response text
    c = _record(3, instruction="Plus.", response=RESPONSE.replace("a + b", "b + a"))  # same function name
    kept, dropped = select([candidate_keys(r) for r in (a, b, c)], seed=0)
    assert len(kept) == 1
    assert dropped["duplicate_response"] + dropped["duplicate_function_names"] == 2


def test_sft_record_keeps_lineage():
    out = sft_record(_record(1))
    assert out["instruction"] == "Write add." and out["seed_id"] == "s-1" and out["verdict_id"] == "v-1"


# Optional stages after the exact dedup: MinHash near-dedup and the final decontamination.

from selfalign.decontamination import BenchmarkString, humaneval_strings  # noqa: E402
from selfalign.selection import NearDedup, code_representation, lowercased_decontaminator  # noqa: E402

WORDS = "given a list of integers return the running maximum of the list as a new list of the same length".split()


def _variant(i: int, words: list[str]) -> dict:
    body = f"def f{i}(values):\n    return values[:{i}]"
    return _record(i, instruction=" ".join(words), response=f"Sure.\n```python\n{body}\n```")


def test_code_representation_keeps_definitions_without_docstrings():
    response = '```python\nimport os\n\ndef add(a, b):\n    """Sum."""\n    return a + b\n\nclass Box:\n    "A box."\n\nprint(add(1, 2))\n```'
    assert code_representation(response) == "def add(a, b):\n    return a + b\n\nclass Box:\n    pass"
    assert code_representation("```python\nprint(1)\n```") == ""
    assert code_representation("```python\ndef broken(:\n```") is None


def test_minhash_drops_near_duplicate_instructions_keeping_the_first_in_order():
    near = [_variant(i, WORDS[:-1] + [f"length{i}"]) for i in range(4)]  # one word differs
    distinct = _variant(9, [f"unrelated{k}" for k in range(20)])
    keys = [candidate_keys(r) for r in near + [distinct]]
    exact_only, _ = select(keys, seed=3)
    kept, dropped = select(keys, seed=3, near_dedup=NearDedup(fields=("instruction",)))
    assert len(kept) == 2 and dropped["near_duplicate_instruction"] == 3
    assert kept == [rid for rid in exact_only if rid in kept]  # survivors keep the shuffled order
    assert [rid for rid in exact_only if rid != "r-009"][0] in kept  # the earliest of the cluster stays


def test_minhash_code_pass_skips_rows_without_definitions():
    scripts = [_record(i, instruction=f"Task {i} " + " ".join(f"w{i}x{k}" for k in range(8)), response="```python\nprint(1 + 1)\n```") for i in range(3)]
    scripts = [{**r, "response": r["response"].replace("1 + 1", f"1 + {r['response_id'][-1]}")} for r in scripts]
    kept, dropped = select([candidate_keys(r) for r in scripts], seed=0, dedup_function_names=False, near_dedup=NearDedup(fields=("code",)))
    assert len(kept) == 3 and not dropped


def test_final_decontamination_drops_rows_quoting_a_benchmark_case_insensitively():
    problem = humaneval_strings()[0]  # HumanEval/0's docstring
    contaminated = _record(1, instruction="Please solve: " + problem.text.upper())
    clean = _record(2, instruction="Write a function that adds two numbers.", response=RESPONSE.replace("add", "plus"))
    decontaminator = lowercased_decontaminator([problem, BenchmarkString("unused benchmark text", "other", "x/1")])
    kept, dropped = select([candidate_keys(r) for r in (contaminated, clean)], seed=0, decontaminator=decontaminator)
    assert kept == ["r-002"] and dropped == {f"contaminated_{problem.benchmark}": 1}


def test_removed_rows_say_why_and_which_response_was_kept_instead():
    """select_keep writes these rows to results/select/removed.jsonl: the report samples them by reason."""
    a = _record(1, instruction="Write add.")
    b = _record(2, instruction="Write add.", response=RESPONSE.replace("a + b", "b + a"))  # same instruction
    c = _record(3, instruction="Sum two numbers.")  # same response as a
    d = _record(4, instruction="Plus.", response=RESPONSE.replace("a + b", "a - -b"))  # same function name
    near = [_variant(i, WORDS[:-1] + [f"length{i}"]) for i in range(10, 13)]
    problem = humaneval_strings()[0]
    contaminated = _record(20, instruction="Please solve: " + problem.text, response=RESPONSE.replace("add", "zz"))
    removed: list[dict] = []
    rows = [candidate_keys(r) for r in (a, b, c, d, *near, contaminated)]
    kept, dropped = select(
        rows, seed=0, decontaminator=lowercased_decontaminator([problem]), near_dedup=NearDedup(fields=("instruction",)), removed=removed
    )
    assert sorted(r["reason"] for r in removed) == sorted(dropped.elements())  # one row per counted drop
    assert not {r["response_id"] for r in removed} & set(kept)
    by_reason = {r["reason"]: r for r in removed}
    assert by_reason["duplicate_instruction"]["duplicate_of"] in kept
    assert by_reason["near_duplicate_instruction"]["duplicate_of"] in kept
    assert by_reason[f"contaminated_{problem.benchmark}"]["task_id"] == problem.task_id
    assert {"instruction", "response"} <= set(by_reason["duplicate_instruction"])
    assert select(rows, seed=0, decontaminator=lowercased_decontaminator([problem]), near_dedup=NearDedup(fields=("instruction",)))[0] == kept
