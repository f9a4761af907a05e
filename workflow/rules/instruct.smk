# Self-OSS-Instruct, first two steps: seed -> concepts -> instruction (few-shot completion prompts).
# The three generation steps share one rule body (generate_concepts); the other two reuse it with their
# own shards and sampling settings (the third, generate_responses, is in respond.smk).


rule generate_concepts:
    input:
        preflight=ancient("results/preflight.json"),
        shard="results/seeds/final/{shard}.jsonl",
        model=base_model(),
        fewshot=instruct_fewshot(),
    output:
        shard="results/instruct/concepts/{shard}.jsonl",
        stats="results/instruct/concepts/{shard}.stats.json",
        removed="results/instruct/concepts/{shard}.removed.jsonl",
    params:
        step="concepts",
        sampling=section("generation", "concepts"),
        seed=config["seed"],
        generation=generation_params(),
        chunk_rows=section("generation", "chunk_rows"),
    threads: GPU_THREADS
    log:
        "results/logs/generate_concepts/{shard}.log",
    benchmark:
        "results/benchmarks/generate_concepts/{shard}.tsv"
    conda:
        generation_env("generate")
    resources:
        mem_mb=gpu_job_mem_mb("gpu"),
        runtime=generation_runtime("concepts"),
        gpu=generation_gpus(),
    script:
        "../scripts/generate.py"


use rule generate_concepts as generate_instructions with:
    input:
        preflight=ancient("results/preflight.json"),
        shard="results/instruct/concepts/{shard}.jsonl",
        model=base_model(),
        fewshot=instruct_fewshot(),
    output:
        shard="results/instruct/instructions/{shard}.jsonl",
        stats="results/instruct/instructions/{shard}.stats.json",
        removed="results/instruct/instructions/{shard}.removed.jsonl",
    params:
        step="instructions",
        sampling=section("generation", "instructions"),
        seed=config["seed"],
        generation=generation_params(),
        chunk_rows=section("generation", "chunk_rows"),
    resources:
        mem_mb=gpu_job_mem_mb("gpu"),
        runtime=generation_runtime("instructions"),
        gpu=generation_gpus(),
    log:
        "results/logs/generate_instructions/{shard}.log",
    benchmark:
        "results/benchmarks/generate_instructions/{shard}.tsv"
