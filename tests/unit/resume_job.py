"""One resumable S->C shard on the transformers backend, for test_resume.py (run as a subprocess so
that the test can kill it mid-shard): ``python resume_job.py MODEL ROWS_JSONL OUTPUT CHUNK_ROWS``."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow" / "scripts"))

from selfalign import instruct  # noqa: E402
from selfalign.generation import StepSettings  # noqa: E402
from selfalign.backends import TransformersBackend  # noqa: E402
from selfalign.fewshot import load_instruct_fewshot  # noqa: E402
from selfalign.resume import discard_chunks, fingerprint, run_in_chunks  # noqa: E402
from selfalign.shards import StageStats, read_jsonl, write_jsonl  # noqa: E402

FEWSHOT = Path(__file__).resolve().parents[2] / "workflow" / "resources" / "fewshot" / "self_oss_instruct.yaml"
SAMPLING = {"shots": 2, "n": 1, "temperature": 0.7, "top_p": 1.0, "max_new_tokens": 24}

model, rows_path, output, chunk_rows = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
rows = list(read_jsonl(rows_path))
fewshot = load_instruct_fewshot(FEWSHOT)
backend = TransformersBackend(model, device="cpu", threads=1)
stats = StageStats("concepts", "00")
key = fingerprint({"sampling": SAMPLING, "seed": 3407, "model": model}, {"input": rows_path, "fewshot": FEWSHOT})


def step(chunk, chunk_stats):
    out = instruct.concepts_step(chunk, fewshot, backend, StepSettings.from_config(SAMPLING), 3407, chunk_stats)
    print(f"chunk of {len(chunk)} rows done", flush=True)
    return out


out = run_in_chunks(rows, step, output, chunk_rows, stats, key)
write_jsonl(output, out)
discard_chunks(output)
counts = {"in": stats.records_in, "out": stats.records_out, "dropped": dict(stats.dropped), "removed": stats.removed}
Path(output + ".counts.json").write_text(json.dumps(counts, sort_keys=True))
