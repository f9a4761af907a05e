# The funnel: records in and out of every stage, with the reasons for drops, and the scores.


rule funnel:
    input:
        stats=stage_stats(),
        scores=score_paths(),
    output:
        tsv="results/report/funnel.tsv",
        md="results/report/funnel.md",
    log:
        "results/logs/funnel.log",
    benchmark:
        "results/benchmarks/funnel.tsv"
    conda:
        "../envs/seeds.yaml"
    localrule: True
    script:
        "../scripts/funnel.py"


# Target rules: run or rerun one stage by name.


rule seeds:
    input:
        shard_paths("results/seeds/final/{shard}.jsonl"),
        "results/seeds/decontamination_report.tsv",


rule concepts:
    input:
        shard_paths("results/instruct/concepts/{shard}.jsonl"),


rule instructions:
    input:
        shard_paths("results/instruct/instructions/{shard}.jsonl"),


rule responses:
    input:
        shard_paths("results/respond/responses/{shard}.jsonl"),


rule verdicts:
    input:
        shard_paths("results/execute/verdicts/{shard}.jsonl"),


rule sft_data:
    input:
        "results/sft/train.jsonl",
        "results/sft/train.parquet",
        "results/sft/README.md",


rule model:
    input:
        "results/models/tuned",


rule scores:
    input:
        score_paths(),


rule report:
    input:
        "results/report/funnel.md",
