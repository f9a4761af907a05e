"""Rule report_sections: the plots and pages of the run report (snakemake --report), written by
selfalign.report_pages from the stage totals, the records, the SFT's train_stats.json and the score files."""

import os
from pathlib import Path

import matplotlib
import snakemake as snakemake_package

from selfalign import report, report_pages
from selfalign.rulekit import start_logging

log = start_logging(snakemake.log[0], "report_sections")
params = snakemake.params
inputs = report_pages.ReportInputs(
    totals=snakemake.input.totals,
    instructions=list(snakemake.input.instructions),
    responses=list(snakemake.input.responses),
    verdict_stats=list(snakemake.input.verdict_stats),
    train_stats=str(Path(snakemake.input.model) / report.TRAIN_STATS_NAME),
    scores=list(snakemake.input.scores),
    sft_data=snakemake.input.sft_data,
    verdicts=list(snakemake.input.verdicts),
    dropped={stage: [list(paths) for paths in sources] for stage, sources in params.dropped.items()},
)
outputs = report_pages.ReportOutputs(**{name: str(path) for name, path in snakemake.output.items()})
settings = report_pages.ReportSettings(
    config=params.config,
    run_dir=os.getcwd(),  # Snakemake runs the script in the run directory (--directory)
    pairs=params.report["pairs"],
    dropped_per_reason=params.report["dropped_per_reason"],
    seed=params.seed,
    reference=params.report["reference"],
    tool_versions={"snakemake": snakemake_package.__version__, "matplotlib": matplotlib.__version__},
)
counts = report_pages.write_sections(inputs, outputs, settings)
log.info("report sections written: %s", counts)
