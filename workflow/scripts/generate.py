"""Rules generate_concepts / generate_instructions / generate_responses: one Self-OSS-Instruct step on one shard.

The shard is generated in chunks of ``generation.chunk_rows`` rows, each flushed to
``<output>.chunks/``; a rerun after preemption or a time-limit kill resumes after the last finished
chunk and writes the same shard an uninterrupted run would.
"""

from selfalign import instruct
from selfalign.fewshot import load_instruct_fewshot
from selfalign.records import read_stage
from selfalign.resume import discard_chunks, fingerprint, run_in_chunks
from selfalign.rulekit import backend_settings, rule_backend, shard_name, start_logging
from selfalign.shards import StageStats, write_jsonl

STEPS = {
    # step: (input stage, step function)
    "concepts": ("final_seeds", instruct.concepts_step),
    "instructions": ("concepts", instruct.instructions_step),
    "responses": ("instructions", instruct.responses_step),
}

step = snakemake.params.step
log = start_logging(snakemake.log[0], f"generate_{step}")
input_stage, run_step = STEPS[step]
sampling = dict(snakemake.params.sampling)
seed = snakemake.params.seed
stats = StageStats(step, shard_name(snakemake.output.shard))

rows = list(read_stage(snakemake.input.shard, input_stage))
fewshot = load_instruct_fewshot(snakemake.input.fewshot)
kind = snakemake.params.backend
settings = {
    "step": step,
    "sampling": sampling,
    "seed": seed,
    "model": str(snakemake.input.model),
    "backend": kind,
    "backend_settings": backend_settings(snakemake, kind),  # never holds the API key
}
key = fingerprint(settings, {"input": snakemake.input.shard, "fewshot": snakemake.input.fewshot})
backend = rule_backend(snakemake, log, f"{step} requests", kind=kind)
log.info("%s: %d rows, sampling %s, chunks of %d rows", step, len(rows), sampling, snakemake.params.chunk_rows)
out = run_in_chunks(
    rows,
    lambda chunk, chunk_stats: run_step(chunk, fewshot, backend, sampling, seed, chunk_stats),
    snakemake.output.shard,
    snakemake.params.chunk_rows,
    stats,
    key,
)
write_jsonl(snakemake.output.shard, out)
discard_chunks(snakemake.output.shard)
stats.extra["sampling"] = sampling
stats.versions = backend.versions()
log.info("%s", stats.write(snakemake.output.stats))
