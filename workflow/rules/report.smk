# The funnel: records in and out of every stage, with the reasons for drops, and the scores.


# Every shard's stats summed once; the funnel, the dataset card and the report read these totals.
rule stage_totals:
    input:
        stage_stats(),
    output:
        "results/report/stage_totals.json",
    log:
        "results/logs/stage_totals.log",
    benchmark:
        "results/benchmarks/stage_totals.tsv"
    conda:
        "../envs/seeds.yaml"
    localrule: True
    script:
        "../scripts/stage_totals.py"


rule funnel:
    input:
        totals="results/report/stage_totals.json",
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


# The report's plots and tables (snakemake --report report.html embeds them with their captions).


# The stages that keep their dropped records (selfalign/stages.py): the data section samples them.
DROPPED = {
    stage: paths
    for stage, paths in stage_table().dropped_paths(SHARDS).items()
    if stage != "judge" or config["seeds"]["judge"]["enabled"]
}


rule report_sections:
    input:
        totals="results/report/stage_totals.json",
        instructions=shard_paths("results/instruct/instructions/{shard}.jsonl"),
        responses=shard_paths("results/respond/responses/{shard}.jsonl"),
        verdict_stats=shard_paths("results/execute/verdicts/{shard}.stats.json"),
        model="results/models/tuned",
        scores=rules.scores.input,
        sft_data="results/sft/train.jsonl",
        verdicts=shard_paths("results/execute/verdicts/{shard}.jsonl"),
        dropped=[
            path for sources in DROPPED.values() for paths in sources for path in paths
        ],
    output:
        funnel_plot=report(
            "results/report/funnel.svg",
            caption="../report/funnel.rst",
            category="1. Stage funnel",
            labels={"section": "Stage funnel", "view": "plot"},
        ),
        funnel_table=report(
            "results/report/funnel.html",
            caption="../report/funnel.rst",
            category="1. Stage funnel",
            labels={"section": "Stage funnel", "view": "table"},
        ),
        generation_plot=report(
            "results/report/generation.svg",
            caption="../report/generation.rst",
            category="2. Generation",
            labels={"section": "Generation", "view": "plot"},
        ),
        generation_table=report(
            "results/report/generation.html",
            caption="../report/generation.rst",
            category="2. Generation",
            labels={"section": "Generation", "view": "table"},
        ),
        verdicts_plot=report(
            "results/report/verdicts.svg",
            caption="../report/verdicts.rst",
            category="3. Execution verdicts",
            labels={"section": "Execution verdicts", "view": "plot"},
        ),
        verdicts_table=report(
            "results/report/verdicts.html",
            caption="../report/verdicts.rst",
            category="3. Execution verdicts",
            labels={"section": "Execution verdicts", "view": "table"},
        ),
        selection_plot=report(
            "results/report/selection.svg",
            caption="../report/selection.rst",
            category="4. Selection",
            labels={"section": "Selection", "view": "plot"},
        ),
        selection_table=report(
            "results/report/selection.html",
            caption="../report/selection.rst",
            category="4. Selection",
            labels={"section": "Selection", "view": "table"},
        ),
        loss_plot=report(
            "results/report/loss.svg",
            caption="../report/loss.rst",
            category="5. Training",
            labels={"section": "Training", "view": "plot"},
        ),
        loss_table=report(
            "results/report/loss.html",
            caption="../report/loss.rst",
            category="5. Training",
            labels={"section": "Training", "view": "table"},
        ),
        scores_plot=report(
            "results/report/scores.svg",
            caption="../report/scores.rst",
            category="6. Scores",
            labels={"section": "Scores", "view": "plot"},
        ),
        scores_table=report(
            "results/report/scores.html",
            caption="../report/scores.rst",
            category="6. Scores",
            labels={"section": "Scores", "view": "table"},
        ),
        data_table=report(
            "results/report/data.html",
            caption="../report/data.rst",
            category="7. The data",
            labels={"section": "The data", "view": "samples"},
        ),
        run_table=report(
            "results/report/run.html",
            caption="../report/run.rst",
            category="8. Configuration and versions",
            labels={"section": "Configuration and versions", "view": "table"},
        ),
    params:
        config=config,
        report=config["report"],
        seed=config["seed"],
        dropped=DROPPED,
    log:
        "results/logs/report_sections.log",
    benchmark:
        "results/benchmarks/report_sections.tsv"
    conda:
        "../envs/report.yaml"
    localrule: True
    script:
        "../scripts/report_sections.py"


rule report:
    input:
        "results/report/funnel.md",
        rules.report_sections.output,
