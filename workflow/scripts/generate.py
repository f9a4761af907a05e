"""Rules generate_concepts / generate_instructions / generate_responses: one Self-OSS-Instruct step on one shard."""

from selfalign import instruct
from selfalign.fewshot import load_instruct_fewshot
from selfalign.records import read_stage
from selfalign.rulekit import rule_backend, shard_name, start_logging
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
stats = StageStats(step, shard_name(snakemake.output.shard))

rows = list(read_stage(snakemake.input.shard, input_stage))
fewshot = load_instruct_fewshot(snakemake.input.fewshot)
backend = rule_backend(snakemake, log, f"{step} requests", kind=snakemake.params.backend)
log.info("%s: %d rows, sampling %s", step, len(rows), sampling)
out = run_step(rows, fewshot, backend, sampling, snakemake.params.seed, stats)
write_jsonl(snakemake.output.shard, out)
stats.extra["sampling"] = sampling
stats.versions = backend.versions()
log.info("%s", stats.write(snakemake.output.stats))
