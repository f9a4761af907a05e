# Self-OSS-Instruct, third step: instruction -> n responses, each with its tests.


rule generate_responses:
    input:
        shard="results/instruct/instructions/{shard}.jsonl",
        model=base_model(),
        fewshot=instruct_fewshot(),
    output:
        shard="results/respond/responses/{shard}.jsonl",
        stats="results/respond/responses/{shard}.stats.json",
    params:
        step="responses",
        sampling=config["generation"]["responses"],
        seed=config["seed"],
        backend=config["generation"]["backend"],
        batch_size=config["generation"]["batch_size"],
        device=config["generation"]["device"],
        chunk_rows=config["generation"]["chunk_rows"],
    threads: GPU_THREADS
    log:
        "results/logs/generate_responses/{shard}.log",
    benchmark:
        "results/benchmarks/generate_responses/{shard}.tsv"
    conda:
        "../envs/generate.yaml"
    resources:
        mem_mb=mem_mb("gpu"),
        runtime=runtime("gpu"),
        gpu=GPUS,
    script:
        "../scripts/generate.py"
