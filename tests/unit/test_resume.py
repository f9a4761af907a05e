"""Generation shards are flushed in chunks; a killed job resumes and writes the same bytes.

Also: the same shard generated twice with the same seeds is identical on the transformers backend.
The tiny model's EOS logit is scaled up so that many samples end by themselves within a few tokens
and parse (a plain random model runs every sample to the token budget, and all would be dropped).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from selfalign import instruct
from selfalign.generation import StepSettings
from selfalign.backends import TransformersBackend
from selfalign.fewshot import load_instruct_fewshot
from selfalign.resume import chunk_dir_for, fingerprint, run_in_chunks
from selfalign.shards import StageStats, write_jsonl
from selfalign.teacher import build_model, train_tokenizer

REPO = Path(__file__).resolve().parents[2]
FEWSHOT_PATH = REPO / "workflow" / "resources" / "fewshot" / "self_oss_instruct.yaml"
FEWSHOT = load_instruct_fewshot(FEWSHOT_PATH)
JOB = Path(__file__).with_name("resume_job.py")
TEXTS = ["def add(a, b):\n    return a + b\n" * 20, "for item in items:\n    print(item)\n" * 20]
SAMPLING = {"shots": 2, "n": 1, "temperature": 0.7, "top_p": 1.0, "max_new_tokens": 24}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    torch.manual_seed(0)
    tokenizer = train_tokenizer([], TEXTS, vocab_size=300)
    model = build_model(tokenizer, {"num_hidden_layers": 1, "tie_word_embeddings": False})
    with torch.no_grad():
        model.lm_head.weight[tokenizer.eos_token_id] *= -10  # large |logit|: EOS wins at some steps, never at the first
    path = tmp_path_factory.mktemp("eos-llama")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def seed_rows(count: int) -> list[dict]:
    rows = []
    for row in range(count):
        snippet = FEWSHOT.examples[row % len(FEWSHOT.examples)].snippet
        rows.append({"row": row, "seed_id": f"s{row}", "seed": snippet, "source": "test"})
    return rows


def counts(stats: StageStats) -> dict:
    """The counts and the dropped records (one per counted drop, with its reason and completion)."""
    assert len(stats.removed) == sum(stats.dropped.values())
    return {"in": stats.records_in, "out": stats.records_out, "dropped": dict(stats.dropped), "removed": stats.removed}


def test_same_shard_twice_is_identical_on_transformers(model_dir: Path, tmp_path: Path) -> None:
    backend = TransformersBackend(str(model_dir), device="cpu", threads=2)
    rows = seed_rows(6)
    runs = []
    for attempt in range(2):
        stats = StageStats("concepts", "00")
        out = instruct.concepts_step(rows, FEWSHOT, backend, StepSettings.from_config(SAMPLING), 3407, stats)
        write_jsonl(tmp_path / f"{attempt}.jsonl", out)
        runs.append(((tmp_path / f"{attempt}.jsonl").read_bytes(), counts(stats)))
    assert runs[0] == runs[1]
    assert runs[0][1]["out"] >= 1, runs[0][1]  # some samples ended by EOS and parsed


def test_chunked_run_equals_one_call(model_dir: Path, tmp_path: Path) -> None:
    backend = TransformersBackend(str(model_dir), device="cpu", threads=2)
    rows = seed_rows(5)
    whole_stats = StageStats("concepts", "00")
    whole = instruct.concepts_step(rows, FEWSHOT, backend, StepSettings.from_config(SAMPLING), 3407, whole_stats)
    chunked_stats = StageStats("concepts", "00")
    step = lambda chunk, stats: instruct.concepts_step(chunk, FEWSHOT, backend, StepSettings.from_config(SAMPLING), 3407, stats)  # noqa: E731
    chunked = run_in_chunks(rows, step, tmp_path / "00.jsonl", 2, chunked_stats, "key")
    assert chunked == whole and counts(chunked_stats) == counts(whole_stats)
    assert sorted(p.name for p in chunk_dir_for(tmp_path / "00.jsonl").iterdir())[:3] == [
        "000000.jsonl",
        "000000.removed.jsonl",
        "000000.stats.json",
    ]


def test_chunks_of_other_settings_are_discarded(tmp_path: Path) -> None:
    output = tmp_path / "00.jsonl"
    rows = [{"row": k} for k in range(4)]
    calls: list[int] = []

    def step(chunk: list[dict], stats: StageStats) -> list[dict]:
        calls.append(len(chunk))
        stats.seen(len(chunk))
        stats.kept(len(chunk))
        stats.extra["instructions"] = len(chunk)
        stats.extra["category_counts"] = {"class": 1, "function": len(chunk) - 1}
        return chunk

    run_in_chunks(rows, step, output, 2, StageStats("x"), "settings-a")
    resumed = StageStats("x")
    run_in_chunks(rows, step, output, 2, resumed, "settings-a")  # all chunks done: nothing runs
    assert calls == [2, 2]
    # Counters of the chunks add up.
    assert resumed.records_in == 4 and resumed.extra["instructions"] == 4
    assert resumed.extra["category_counts"] == {"class": 2, "function": 2}
    run_in_chunks(rows, step, output, 2, StageStats("x"), "settings-b")  # other settings: start over
    assert calls == [2, 2, 2, 2]
    assert fingerprint({"a": 1}, {}) != fingerprint({"a": 2}, {})


def _run(model_dir: Path, rows_path: Path, output: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(JOB), str(model_dir), str(rows_path), str(output), "2"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_killed_job_resumes_with_identical_output(model_dir: Path, tmp_path: Path) -> None:
    rows_path = tmp_path / "rows.jsonl"
    write_jsonl(rows_path, seed_rows(8))  # 4 chunks of 2 rows
    whole = tmp_path / "whole" / "00.jsonl"
    whole.parent.mkdir()
    assert _run(model_dir, rows_path, whole).returncode == 0

    resumed = tmp_path / "resumed" / "00.jsonl"
    resumed.parent.mkdir()
    chunks = chunk_dir_for(resumed)
    job = subprocess.Popen(
        [sys.executable, str(JOB), str(model_dir), str(rows_path), str(resumed), "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not (chunks / "000001.stats.json").exists():
        assert job.poll() is None, "the job ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    job.send_signal(signal.SIGKILL)  # as a scheduler's time limit or preemption does
    job.wait()
    assert not resumed.exists()
    done_before = {p.name for p in chunks.glob("*.stats.json")}
    assert 2 <= len(done_before) < 4

    rerun = _run(model_dir, rows_path, resumed)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert rerun.stdout.count("chunk of 2 rows done") == 4 - len(done_before)  # finished chunks were skipped
    assert resumed.read_bytes() == whole.read_bytes()
    assert json.loads(Path(f"{resumed}.counts.json").read_text()) == json.loads(Path(f"{whole}.counts.json").read_text())
    assert not chunks.exists()
