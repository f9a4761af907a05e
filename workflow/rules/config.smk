# The configuration the run really uses: the user's file (or the demo) with the schema's defaults filled in.


rule resolved_config:
    output:
        "results/config.yaml",
    params:
        config=canonical(config),
    localrule: True
    log:
        "results/logs/resolved_config.log",
    benchmark:
        "results/benchmarks/resolved_config.tsv"
    conda:
        "../envs/seeds.yaml"
    script:
        "../scripts/resolved_config.py"
