# Self-OSS-Instruct, third step: instruction -> n responses, each with its tests (generate_concepts' body).


use rule generate_concepts as generate_responses with:
    input:
        preflight=ancient("results/preflight.json"),
        shard="results/instruct/instructions/{shard}.jsonl",
        model=base_model(),
        fewshot=instruct_fewshot(),
    output:
        shard="results/respond/responses/{shard}.jsonl",
        stats="results/respond/responses/{shard}.stats.json",
        removed="results/respond/responses/{shard}.removed.jsonl",
    params:
        step="responses",
        sampling=section("generation", "responses"),
        seed=config["seed"],
        generation=generation_params(),
        chunk_rows=section("generation", "chunk_rows"),
    resources:
        mem_mb=gpu_job_mem_mb("gpu"),
        runtime=generation_runtime("responses"),
        gpu=generation_gpus(),
    log:
        "results/logs/generate_responses/{shard}.log",
    benchmark:
        "results/benchmarks/generate_responses/{shard}.tsv"
