# Self-OSS-Instruct, first two steps: seed -> concepts -> instruction (few-shot completion prompts).


rule generate_concepts:
    input:
        shard="results/seeds/final/{shard}.jsonl",
        model=base_model(),
        fewshot=instruct_fewshot(),
    output:
        shard="results/instruct/concepts/{shard}.jsonl",
        stats="results/instruct/concepts/{shard}.stats.json",
    params:
        step="concepts",
        sampling=config["generation"]["concepts"],
        seed=config["seed"],
        backend=config["generation"]["backend"],
        batch_size=config["generation"]["batch_size"],
        device=config["generation"]["device"],
        chunk_rows=config["generation"]["chunk_rows"],
    threads: GPU_THREADS
    log:
        "results/logs/generate_concepts/{shard}.log",
    benchmark:
        "results/benchmarks/generate_concepts/{shard}.tsv"
    conda:
        "../envs/generate.yaml"
    resources:
        mem_mb=mem_mb("gpu"),
        runtime=runtime("gpu"),
        gpu=GPUS,
    script:
        "../scripts/generate.py"


rule generate_instructions:
    input:
        shard="results/instruct/concepts/{shard}.jsonl",
        model=base_model(),
        fewshot=instruct_fewshot(),
    output:
        shard="results/instruct/instructions/{shard}.jsonl",
        stats="results/instruct/instructions/{shard}.stats.json",
    params:
        step="instructions",
        sampling=config["generation"]["instructions"],
        seed=config["seed"],
        backend=config["generation"]["backend"],
        batch_size=config["generation"]["batch_size"],
        device=config["generation"]["device"],
        chunk_rows=config["generation"]["chunk_rows"],
    threads: GPU_THREADS
    log:
        "results/logs/generate_instructions/{shard}.log",
    benchmark:
        "results/benchmarks/generate_instructions/{shard}.tsv"
    conda:
        "../envs/generate.yaml"
    resources:
        mem_mb=mem_mb("gpu"),
        runtime=runtime("gpu"),
        gpu=GPUS,
    script:
        "../scripts/generate.py"
