# Seed stage: extraction -> heuristics -> pyright -> decontamination -> LLM judge -> MinHash near-dedup.


# Runs where the workflow is started (a login or transfer node with internet), not on a compute node.
rule fetch_stack:
    output:
        shards=shard_paths("results/seeds/stack/{shard}.jsonl.gz"),
        stats="results/seeds/stack/stats.json",
    params:
        stack=section("sources", "stack"),
    localrule: True
    log:
        "results/logs/fetch_stack.log",
    benchmark:
        "results/benchmarks/fetch_stack.tsv"
    conda:
        "../envs/seeds.yaml"
    script:
        "../scripts/fetch_stack.py"


# Benchmark strings for decontamination; downloads from the hub unless local paths are configured, so
# it too runs where the workflow is started.
rule benchmark_strings:
    output:
        strings="results/seeds/benchmarks/strings.jsonl",
        stats="results/seeds/benchmarks/strings.stats.json",
    params:
        decontamination=section("seeds", "decontamination"),
    localrule: True
    log:
        "results/logs/benchmark_strings.log",
    benchmark:
        "results/benchmarks/benchmark_strings.tsv"
    conda:
        "../envs/seeds.yaml"
    script:
        "../scripts/benchmark_strings.py"


rule extract_stack_functions:
    input:
        "results/seeds/stack/{shard}.jsonl.gz",
    output:
        shard="results/seeds/stack_functions/{shard}.jsonl.gz",
        stats="results/seeds/stack_functions/{shard}.stats.json",
    params:
        sources=section("sources"),
    log:
        "results/logs/extract_stack_functions/{shard}.log",
    benchmark:
        "results/benchmarks/extract_stack_functions/{shard}.tsv"
    conda:
        "../envs/seeds.yaml"
    resources:
        mem_mb=mem_mb("light"),
        runtime=runtime("cpu"),
    script:
        "../scripts/extract_stack_functions.py"


rule extract_seeds:
    input:
        preflight=ancient("results/preflight.json"),
        stack=stack_shards("results/seeds/stack_functions/{shard}.jsonl.gz"),
        stack_stats=stack_shards("results/seeds/stack_functions/{shard}.stats.json"),
    output:
        shards=shard_paths("results/seeds/extracted/{shard}.jsonl"),
        stats="results/seeds/extracted/stats.json",
    params:
        sources=section("sources"),
    log:
        "results/logs/extract_seeds.log",
    benchmark:
        "results/benchmarks/extract_seeds.tsv"
    conda:
        "../envs/seeds.yaml"
    resources:
        mem_mb=mem_mb("cpu"),
        runtime=runtime("cpu"),
    script:
        "../scripts/extract_seeds.py"


# The per-shard CPU filters run as one job: heuristics -> autoimport + pyright -> decontamination. Each step
# still writes its own shard and stats; one job instead of three keeps the DAG (and the Slurm queue) small.
rule filter_seeds:
    input:
        shard="results/seeds/extracted/{shard}.jsonl",
        strings="results/seeds/benchmarks/strings.jsonl",
    output:
        heuristics="results/seeds/heuristics/{shard}.jsonl",
        heuristics_stats="results/seeds/heuristics/{shard}.stats.json",
        heuristics_removed="results/seeds/heuristics/{shard}.removed.jsonl",
        typechecked="results/seeds/typechecked/{shard}.jsonl",
        typechecked_stats="results/seeds/typechecked/{shard}.stats.json",
        typechecked_removed="results/seeds/typechecked/{shard}.removed.jsonl",
        shard="results/seeds/decontaminated/{shard}.jsonl",
        removed="results/seeds/decontaminated/{shard}.removed.jsonl",
        stats="results/seeds/decontaminated/{shard}.stats.json",
    params:
        heuristics=section("seeds", "heuristics"),
        typecheck=section("seeds", "typecheck"),
        decontamination=section("seeds", "decontamination"),
    threads: CPU_THREADS
    log:
        "results/logs/filter_seeds/{shard}.log",
    benchmark:
        "results/benchmarks/filter_seeds/{shard}.tsv"
    conda:
        "../envs/seeds.yaml"
    resources:
        mem_mb=mem_mb("cpu"),
        runtime=runtime("cpu"),
    script:
        "../scripts/filter_seeds.py"


rule decontamination_report:
    input:
        shard_paths("results/seeds/decontaminated/{shard}.removed.jsonl"),
    output:
        "results/seeds/decontamination_report.tsv",
    localrule: True
    log:
        "results/logs/decontamination_report.log",
    benchmark:
        "results/benchmarks/decontamination_report.tsv"
    conda:
        "../envs/seeds.yaml"
    script:
        "../scripts/decontamination_report.py"


rule judge_seeds:
    input:
        preflight=ancient("results/preflight.json"),
        shard="results/seeds/decontaminated/{shard}.jsonl",
        model=base_model(),
        fewshot=workflow.source_path("../resources/fewshot/docstring_judge.yaml"),
    output:
        shard="results/seeds/judged/{shard}.jsonl",
        removed="results/seeds/judged/{shard}.removed.jsonl",
        stats="results/seeds/judged/{shard}.stats.json",
    params:
        judge=section("seeds", "judge"),
        generation=generation_params(),
    threads: GPU_THREADS
    log:
        "results/logs/judge_seeds/{shard}.log",
    benchmark:
        "results/benchmarks/judge_seeds/{shard}.tsv"
    conda:
        generation_env("generate")
    resources:
        mem_mb=gpu_job_mem_mb("gpu"),
        runtime=generation_runtime("judge"),
        gpu=generation_gpus(),
    script:
        "../scripts/judge_seeds.py"


# Near-dedup in one job: MinHash signatures of every shard (in parallel, one process per thread), one
# global LSH + union-find, then every shard filtered to one representative per cluster. The stats file
# counts all shards (records per shard under "shards"), as extract_seeds' does.
rule near_dedup_seeds:
    input:
        judged_seeds(),
    output:
        clusters="results/seeds/near_dedup/clusters.json",
        removed="results/seeds/near_dedup/removed.jsonl",
        stats="results/seeds/near_dedup/clusters.stats.json",
        shards=shard_paths("results/seeds/final/{shard}.jsonl"),
        shard_counts="results/seeds/final/stats.json",
    params:
        near_dedup=section("seeds", "near_dedup"),
        limit=section("seeds", "limit"),
    threads: CPU_THREADS
    log:
        "results/logs/near_dedup_seeds.log",
    benchmark:
        "results/benchmarks/near_dedup_seeds.tsv"
    conda:
        "../envs/seeds.yaml"
    resources:
        mem_mb=near_dedup_mem_mb,
        runtime=runtime("cpu"),
    script:
        "../scripts/near_dedup_seeds.py"
