# Selection: format checks per shard (in the execution job) -> one global keep list -> the SFT set.


rule select_keep:
    input:
        shard_paths("results/select/candidates/{shard}.jsonl"),
    output:
        keep="results/select/keep.json",
        stats="results/select/keep.stats.json",
        removed="results/select/removed.jsonl",
    params:
        selection=section("selection"),
        benchmark_paths=section("seeds", "decontamination", "paths"),
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
        parquet="results/sft/train.parquet",
        stats="results/sft/train.stats.json",
        removed="results/sft/removed.jsonl",
    params:
        sanitize=section("selection", "sanitize"),
        seed=config["selection"]["seed"],
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


# The card is its own rule: it records the whole configuration, and a config change must not rewrite
# the training set (that would retrain the model).
rule sft_card:
    input:
        data="results/sft/train.jsonl",
        totals="results/report/stage_totals.json",
    output:
        "results/sft/README.md",
    params:
        config=config,
    log:
        "results/logs/sft_card.log",
    benchmark:
        "results/benchmarks/sft_card.tsv"
    conda:
        "../envs/seeds.yaml"
    resources:
        mem_mb=mem_mb("light"),
        runtime=runtime("light"),
    script:
        "../scripts/sft_card.py"
