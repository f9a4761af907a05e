"""Rule report_sections: the plots and tables of the run report (snakemake --report), from the stats
files, the records, the SFT's train_stats.json and every score file."""

import platform
from pathlib import Path

import matplotlib
import snakemake as snakemake_package
import yaml

from selfalign import funnel, report
from selfalign.rulekit import start_logging
from selfalign.shards import atomic_path, atomic_writer, read_json, read_shards

log = start_logging(snakemake.log[0], "report_sections")
out = snakemake.output


def write_page(path: str, title: str, fragments: list[str]) -> None:
    with atomic_writer(path) as handle:
        handle.write(report.html_page(title, fragments))


def write_plot(path: str, draw, *args) -> None:
    with atomic_path(path) as tmp:
        draw(*args, tmp)


# The stage funnel
totals = read_json(snakemake.input.totals)
rows = funnel.load_rows(totals)
header = ["stage", "in", "out", "dropped", "reasons for drops"]
write_plot(out.funnel_plot, report.plot_funnel, rows)
write_page(out.funnel_table, "Stage funnel", [report.table_html("Records in and out of every stage", header, report.funnel_table(rows))])

# Generation statistics: the sampled category and difficulty of every instruction, finish reasons per step
instructions = list(read_shards(snakemake.input.instructions))
responses = list(read_shards(snakemake.input.responses))
categories = report.spread(instructions, "category")
difficulties = report.spread(instructions, "difficulty")
finish = {
    "concepts": report.finish_reasons(instructions, "concepts"),
    "instruction": report.finish_reasons(instructions, "instruction"),
    "response": report.finish_reasons(responses, "response"),
}
write_plot(
    out.generation_plot,
    report.plot_counters,
    [("instruction category", categories), ("instruction difficulty", difficulties), ("response finish reason", finish["response"])],
)
generation_drops = [row for row in rows if row["stage"] in ("concepts", "instructions", "responses")]
write_page(
    out.generation_table,
    "Generation statistics",
    [
        report.table_html("Instruction category", ["category", "instructions"], categories.most_common()),
        report.table_html("Instruction difficulty", ["difficulty", "instructions"], difficulties.most_common()),
        report.table_html(
            "Finish reasons of the kept records (length-cut completions are dropped, see below)",
            ["step", "finish reason", "records"],
            [[step, reason, count] for step, counts in finish.items() for reason, count in counts.most_common()],
        ),
        report.table_html("Generation drops", header, report.funnel_table(generation_drops)),
    ],
)

# Execution verdicts by kind
verdicts = report.verdict_counts(read_json(path) for path in snakemake.input.verdict_stats)
write_plot(out.verdicts_plot, report.plot_counters, [("execution verdicts", verdicts)])
write_page(out.verdicts_table, "Execution verdicts", [report.table_html("Verdicts by kind", ["verdict", "samples"], verdicts.most_common())])

# The selection funnel
selection = report.selection_rows(rows)
write_plot(out.selection_plot, report.plot_funnel, selection, "From generated samples to the SFT set")
write_page(out.selection_table, "Selection funnel", [report.table_html("Selection funnel", header, report.funnel_table(selection))])

# The training loss
train_stats = read_json(Path(snakemake.input.model) / report.TRAIN_STATS_NAME)
loss = report.loss_rows(train_stats)
write_plot(out.loss_plot, report.plot_loss, loss)
summary_keys = ["examples", "epochs", "steps", "effective_batch", "world_size", "zero_stage", "learning_rate", "train_seconds"]
write_page(
    out.loss_table,
    "SFT training",
    [
        report.table_html("Training run", ["setting", "value"], [[k, train_stats.get(k, "")] for k in summary_keys]),
        report.table_html("Loss per optimizer step", ["step", "loss", "learning rate"], [[r["step"], r["loss"], r["learning_rate"]] for r in loss]),
    ],
)

# Base-versus-tuned scores: every score file, whatever the benchmark
scores = report.score_rows([p for p in snakemake.input.scores if str(p).endswith(".json")], read_json)
write_plot(out.scores_plot, report.plot_scores, scores)
metrics = sorted({key for row in scores for key in row["metrics"]})
write_page(
    out.scores_table,
    "Scores",
    [report.table_html("Scores", ["benchmark", "model", *metrics], [[r["benchmark"], r["model"], *(r["metrics"].get(m, "") for m in metrics)] for r in scores])],
)

# The run's configuration and tool versions
tool_versions = {
    "python (report)": platform.python_version(),
    "snakemake": snakemake_package.__version__,
    "matplotlib": matplotlib.__version__,
    **funnel.versions([totals, train_stats]),
}
write_page(
    out.run_table,
    "Configuration and tool versions",
    [
        report.table_html("Tool versions", ["tool", "version"], list(tool_versions.items())),
        report.table_html(
            "Configuration (with defaults filled in)",
            ["key", "value"],
            [[key, yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()] for key, value in report.flatten(snakemake.config)],
        ),
    ],
)
log.info("report sections written: %d funnel stages, %d score files", len(rows), len(scores))
