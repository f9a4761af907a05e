# SelfCodeAlign / StarCoder2-Instruct self-alignment, end to end:
# seeds -> filters -> concepts -> instructions -> responses with tests -> sandboxed execution
# -> selection -> SFT -> scores. Each stage is rules over sharded JSONL under results/.
from snakemake.utils import min_version

min_version("9.20.0")


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/seeds.smk"
include: "rules/instruct.smk"
include: "rules/respond.smk"
include: "rules/execute.smk"
include: "rules/select.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        rules.sft_data.input,
        rules.scores.input,
        "results/report/funnel.md",


onsuccess:
    print_funnel("results/report/funnel.md")
