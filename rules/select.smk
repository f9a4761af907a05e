# Selection: format checks per shard -> one global keep list -> the SFT set.


rule select_candidates:
    input:
        "results/execute/verdicts/{shard}.jsonl",
    output:
        shard="results/select/candidates/{shard}.jsonl",
        stats="results/select/candidates/{shard}.stats.json",
    params:
        selection=config["selection"],
    log:
        "results/logs/select_candidates/{shard}.log",
    benchmark:
        "results/benchmarks/select_candidates/{shard}.tsv"
    conda:
        "../envs/seeds.yaml"
    resources:
        mem_mb=mem_mb("light"),
        runtime=runtime("light"),
    script:
        "../scripts/select_candidates.py"


rule select_keep:
    input:
        shard_paths("results/select/candidates/{shard}.jsonl"),
    output:
        keep="results/select/keep.json",
        stats="results/select/keep.stats.json",
    params:
        selection=config["selection"],
    log:
        "results/logs/select_keep.log",
    benchmark:
        "results/benchmarks/select_keep.tsv"
    conda:
        "../envs/seeds.yaml"
    resources:
        mem_mb=mem_mb("cpu"),
        runtime=runtime("light"),
    script:
        "../scripts/select_keep.py"


rule assemble_sft_data:
    input:
        candidates=shard_paths("results/select/candidates/{shard}.jsonl"),
        keep="results/select/keep.json",
    output:
        data="results/sft/train.jsonl",
        stats="results/sft/train.stats.json",
    log:
        "results/logs/assemble_sft_data.log",
    benchmark:
        "results/benchmarks/assemble_sft_data.tsv"
    conda:
        "../envs/seeds.yaml"
    resources:
        mem_mb=mem_mb("light"),
        runtime=runtime("light"),
    script:
        "../scripts/assemble_sft_data.py"
