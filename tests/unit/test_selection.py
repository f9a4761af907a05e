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
    assert name_key("```python\nclass Stack:\n    pass\n```") == "class:stack"
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
