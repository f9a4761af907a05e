"""The toy teacher: tokenizer, model config, and a short real training run that must memorise its documents."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from selfalign.backends import TransformersBackend
from selfalign.generation import GenerationRequest, SamplingSpec
from selfalign.teacher import (
    EXTRA_SPECIAL_TOKENS,
    TeacherTimeout,
    build_model,
    length_batches,
    train_teacher,
    train_tokenizer,
)

TASKS = [
    ("Add two numbers.", "def add(a, b):\n    return a + b", "assert add(1, 2) == 3"),
    ("Reverse a string.", "def reverse(s):\n    return s[::-1]", "assert reverse('ab') == 'ba'"),
    ("Square a number.", "def square(x):\n    return x * x", "assert square(3) == 9"),
    ("Check if a number is even.", "def is_even(n):\n    return n % 2 == 0", "assert is_even(4)"),
    ("Sum a list.", "def total(xs):\n    return sum(xs)", "assert total([1, 2]) == 3"),
    ("Get the last item.", "def last(xs):\n    return xs[-1]", "assert last([1, 2]) == 2"),
]
DOCUMENTS = [
    f"## Example {k}\n<instruction>\n{instruction}\n</instruction>\n\n<response>\n```python\n{code}\n```\n</response>\n\n"
    f"<tests>\n```python\n{tests}\n```\n</tests>"
    for k, (instruction, code, tests) in enumerate(TASKS, start=1)
]
RESPONSE_OPEN = "<response>\n"


def prefix_and_rest(document: str) -> tuple[str, str]:
    cut = document.index(RESPONSE_OPEN) + len(RESPONSE_OPEN)
    return document[:cut], document[cut:]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out_dir = tmp_path_factory.mktemp("teacher") / "model"
    lines: list[str] = []
    # A fixed step count: the outcome is the same on an idle or an oversubscribed machine.
    stats = train_teacher(
        DOCUMENTS, [], out_dir, steps=250, seed=0, model_config={"vocab_size": 400}, threads=2, log=lines.append
    )
    assert any("loss" in line for line in lines)
    return out_dir, stats


@pytest.fixture(scope="module")
def backend(teacher: tuple[Path, dict]) -> TransformersBackend:
    return TransformersBackend(str(teacher[0]), device="cpu", threads=2)


def test_tokenizer_round_trip_and_special_ids() -> None:
    tokenizer = train_tokenizer([], DOCUMENTS * 5, vocab_size=400)
    text = "<issue_start>def f(x):\n\treturn 'héllo 🎉'  \n<|endoftext|>"
    ids = tokenizer(text).input_ids
    assert tokenizer.decode(ids) == text
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == ("<|endoftext|>",) * 2 + ("<|pad|>",)
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (0, 0, 1)
    assert tokenizer.convert_tokens_to_ids(EXTRA_SPECIAL_TOKENS) == [2, 3, 4]
    assert ids[0] == 2  # a special token is one atomic token


def test_build_model_defaults_and_overrides() -> None:
    tokenizer = train_tokenizer([], DOCUMENTS, vocab_size=300)
    model = build_model(tokenizer, {"num_hidden_layers": 3, "learning_rate": 0.01})
    config = model.config
    assert config.head_dim == 64 and config.num_hidden_layers == 3 and config.tie_word_embeddings
    assert config.max_position_embeddings == 4096 and config.vocab_size == len(tokenizer)
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    with pytest.raises(ValueError, match="hiden_size"):
        build_model(tokenizer, {"hiden_size": 64})


def test_length_batches_respect_the_token_budget() -> None:
    lengths = [5, 100, 7, 60, 6, 300]
    batches = length_batches(lengths, batch_tokens=200)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 200


def test_bad_documents_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        train_teacher(["ok", " "], [], tmp_path / "m", 1, 0, {}, 1, print)
    with pytest.raises(ValueError, match="exceed max_position_embeddings 64"):
        train_teacher(["x " * 500], [], tmp_path / "m", 1, 0, {"max_position_embeddings": 64}, 1, print)


def test_same_seed_and_steps_give_the_same_bytes_whatever_the_speed(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    train_teacher(DOCUMENTS, [], first, steps=6, seed=3, model_config={"vocab_size": 300}, threads=1, log=print)
    # a slow machine: every log line takes a while; nothing in the schedule may notice
    slow = lambda line: time.sleep(0.3)  # noqa: E731
    train_teacher(
        DOCUMENTS, [], second, steps=6, seed=3, model_config={"vocab_size": 300, "log_every": 1}, threads=1, log=slow
    )
    for name in sorted(p.name for p in first.iterdir()):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_a_time_ceiling_fails_the_job_instead_of_cutting_training_short(tmp_path: Path) -> None:
    with pytest.raises(TeacherTimeout, match=r"over the 1e-09 s ceiling \(model.teacher.seconds\)"):
        train_teacher(
            DOCUMENTS, [], tmp_path / "m", steps=5, seed=0, model_config={"vocab_size": 300}, threads=1,
            log=print, max_seconds=1e-9,
        )
    assert not (tmp_path / "m").exists()


def test_training_saves_a_model_and_reports_stats(teacher: tuple[Path, dict]) -> None:
    out_dir, stats = teacher
    assert stats["steps"] > 0 and stats["tokens"] > 0 and stats["params"] > 0
    assert stats["final_loss"] < 0.2
    assert stats["loss_curve"][-1]["loss"] < stats["loss_curve"][0]["loss"]
    assert (out_dir / "config.json").exists() and (out_dir / "tokenizer.json").exists()
    assert [p.name for p in out_dir.parent.iterdir()] == ["model"]  # no temp dir left behind


def test_greedy_reproduces_the_memorised_continuation_and_stops(backend: TransformersBackend) -> None:
    requests = []
    for document in DOCUMENTS:
        prefix, _ = prefix_and_rest(document)
        requests.append(GenerationRequest(prefix, SamplingSpec(max_new_tokens=80, stop=("</response>",))))
    for document, [completion] in zip(DOCUMENTS, backend.generate(requests)):
        _, rest = prefix_and_rest(document)
        assert completion.text == rest[: rest.index("</response>")]
        assert completion.finish_reason == "stop"


def test_eos_and_length_finish_reasons(backend: TransformersBackend) -> None:
    prefix, rest = prefix_and_rest(DOCUMENTS[0])
    [[to_end], [cut]] = backend.generate(
        [GenerationRequest(prefix, SamplingSpec(max_new_tokens=120)), GenerationRequest(prefix, SamplingSpec(max_new_tokens=5))]
    )
    assert (to_end.text, to_end.finish_reason) == (rest, "eos")
    assert cut.finish_reason == "length" and cut.num_tokens == 5 and rest.startswith(cut.text)


def test_sampling_with_a_seed_is_reproducible(backend: TransformersBackend) -> None:
    prefix, _ = prefix_and_rest(DOCUMENTS[1])
    spec = SamplingSpec(n=3, temperature=1.5, max_new_tokens=40, seed=11)
    first = backend.generate([GenerationRequest(prefix, spec)])[0]
    again = backend.generate(
        [GenerationRequest("## Example", SamplingSpec(temperature=0.7, seed=1, max_new_tokens=10)),
         GenerationRequest(prefix, spec)]
    )[1]
    assert first == again and len(first) == 3


def test_reloads_offline_in_a_fresh_process(teacher: tuple[Path, dict], tmp_path: Path) -> None:
    out_dir, _ = teacher
    prefix, rest = prefix_and_rest(DOCUMENTS[2])
    script = (
        "import json, sys\n"
        "from selfalign.backends import TransformersBackend\n"
        "from selfalign.generation import GenerationRequest, SamplingSpec\n"
        "backend = TransformersBackend(sys.argv[1], device='cpu', threads=1)\n"
        "[[c]] = backend.generate([GenerationRequest(sys.argv[2], SamplingSpec(max_new_tokens=80, stop=('</response>',)))])\n"
        "print(json.dumps(c.text))\n"
    )
    scripts_dir = Path(__file__).resolve().parents[2] / "workflow" / "scripts"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(scripts_dir), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", script, str(out_dir), prefix], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == rest[: rest.index("</response>")]
