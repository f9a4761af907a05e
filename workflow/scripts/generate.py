"""Rules generate_concepts / generate_instructions / generate_responses: one Self-OSS-Instruct step on one shard.

The shard is generated in chunks of ``generation.chunk_rows`` rows, each flushed to
``<output>.chunks/``; a rerun after preemption or a time-limit kill resumes after the last finished
chunk and writes the same shard an uninterrupted run would.
"""

from selfalign import instruct
from selfalign.backends import BackendChoice, open_backend
from selfalign.fewshot import load_instruct_fewshot
from selfalign.generation import StepSettings
from selfalign.records import read_stage
from selfalign.resume import discard_chunks, fingerprint, run_in_chunks
from selfalign.rulekit import progress_logger, shard_name, start_logging
from selfalign.shards import StageStats, publish_together, write_jsonl

STEPS = {
    # step: (input stage, step function)
    "concepts": ("final_seeds", instruct.concepts_step),
    "instructions": ("concepts", instruct.instructions_step),
    "responses": ("instructions", instruct.responses_step),
}


def main() -> None:
    # Settings, typed once from the rule's params.
    step = snakemake.params.step
    settings = StepSettings.from_config(snakemake.params.sampling)
    choice = BackendChoice.from_config(snakemake.params.generation, gpus=int(snakemake.resources.get("gpu", 0) or 0))
    seed = int(snakemake.params.seed)
    chunk_rows = int(snakemake.params.chunk_rows)
    model = str(snakemake.input.model)

    log = start_logging(snakemake.log[0], f"generate_{step}")
    input_stage, run_step = STEPS[step]
    stats = StageStats(step, shard_name(snakemake.output.shard))
    rows = list(read_stage(snakemake.input.shard, input_stage))
    fewshot = load_instruct_fewshot(snakemake.input.fewshot)
    key = fingerprint(
        {"step": step, "sampling": dict(snakemake.params.sampling), "seed": seed, "model": model, **choice.fingerprint()},
        {"input": snakemake.input.shard, "fewshot": snakemake.input.fewshot},
    )
    out = []
    if rows:  # an empty shard loads no model
        backend = open_backend(
            choice, model, snakemake.threads, progress_logger(log, f"{step} requests"), job=snakemake.rule
        )
        log.info("%s: %d rows, %s, chunks of %d rows", step, len(rows), settings, chunk_rows)
        out = run_in_chunks(
            rows,
            lambda chunk, chunk_stats: run_step(chunk, fewshot, backend, settings, seed, chunk_stats),
            snakemake.output.shard,
            chunk_rows,
            stats,
            key,
        )
        stats.versions = backend.versions()
    stats.extra["sampling"] = dict(snakemake.params.sampling)
    output = snakemake.output
    # The shard, its dropped records (each with its reason and completion) and the stats appear together.
    with publish_together(output.shard, output.removed, output.stats) as pub:
        write_jsonl(pub.path(output.shard), out)
        write_jsonl(pub.path(output.removed), stats.removed)
        log.info("%s", stats.write(pub.path(output.stats)))
    discard_chunks(output.shard)


# A main guard: vLLM may start its engine in a spawned process, which imports this script again as
# __mp_main__; without the guard that import would run the whole job a second time.
if __name__ == "__main__":
    main()
