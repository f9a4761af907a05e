"""The run report's sections, written to the files rule ``report_sections`` declares: per section a plot
(SVG) and a page (HTML) that ``snakemake --report`` embeds with the section's caption.

``ReportInputs``, ``ReportOutputs`` and ``ReportSettings`` are what the rule script builds from
Snakemake's input, output and params; nothing here reads Snakemake's objects.
"""

from __future__ import annotations

import html
import json
import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from . import lineage, report, scores, stage_funnel, stages
from .shards import atomic_path, atomic_writer, read_json, read_shards

# Fields of a dropped record that a person does not read: repeated elsewhere, or ids of prompts.
HIDDEN_FIELDS = ("provenance", "program", "selection_keys")
# Shown first, as they say why a record was dropped; the rest follow in the record's order, the seed last.
FIRST_FIELDS = (
    "seed_id", "source", "benchmark", "task_id", "method", "matched", "verdict", "execution.stderr_tail",
    "execution.stdout_tail", "execution.returncode", "instruction", "response", "tests", "completion",
)
TEXT_LIMIT = 2000  # characters of one field shown; the files hold the rest


@dataclass(frozen=True)
class ReportInputs:
    totals: str  # results/report/stage_totals.json
    instructions: Sequence[str]
    responses: Sequence[str]
    verdict_stats: Sequence[str]
    train_stats: str  # the tuned model's train_stats.json
    scores: Sequence[str]  # score files results/scores/<model>/<benchmark>.json
    sft_data: str  # results/sft/train.jsonl
    verdicts: Sequence[str]  # verdict shards: the siblings of the sampled pairs
    dropped: Mapping[str, Sequence[Sequence[str]]]  # stage -> its dropped-record files per source (selfalign.stages)


@dataclass(frozen=True)
class ReportOutputs:
    funnel_plot: str
    funnel_table: str
    generation_plot: str
    generation_table: str
    verdicts_plot: str
    verdicts_table: str
    selection_plot: str
    selection_table: str
    loss_plot: str
    loss_table: str
    scores_plot: str
    scores_table: str
    data_table: str
    run_table: str


@dataclass(frozen=True)
class ReportSettings:
    config: Mapping[str, Any]  # the run's configuration, defaults filled in (shown as it is)
    run_dir: str  # paths in the report are shown relative to it
    pairs: int = 10  # SFT pairs shown with their lineage
    dropped_per_reason: int = 3
    seed: int = 0
    reference: Mapping[str, Any] | None = None  # published scores to show beside ours (config report.reference)
    tool_versions: Mapping[str, str] = field(default_factory=dict)  # the report job's own tools (snakemake, ...)


def write_sections(inputs: ReportInputs, out: ReportOutputs, settings: ReportSettings) -> dict[str, int]:
    """Every section's plot and page; returns a few counts for the log."""
    totals = read_json(inputs.totals)
    rows = stage_funnel.load_rows(totals)
    _funnel(rows, out)
    _generation(inputs, rows, out)
    _verdicts(inputs, out)
    _selection(rows, out)
    train_stats = read_json(inputs.train_stats)
    _training(train_stats, out)
    score_count = _scores(inputs, settings, out)
    pairs = _data(inputs, settings, out)
    _run(totals, train_stats, settings, out)
    return {"stages": len(rows), "score_files": score_count, "pairs": pairs}


def _page(path: str, title: str, fragments: Sequence[str]) -> None:
    with atomic_writer(path) as handle:
        handle.write(report.html_page(title, fragments))


def _plot(path: str, draw: Callable[..., None], *args: Any, **kwargs: Any) -> None:
    """Draw into a temporary file beside ``path`` and rename it there: the plot lands at its declared path."""
    with atomic_path(path) as tmp:
        draw(*args, path=tmp, **kwargs)


def _funnel(rows: list[dict[str, Any]], out: ReportOutputs) -> None:
    _plot(out.funnel_plot, report.plot_funnel, rows)
    _page(
        out.funnel_table,
        "Stage funnel",
        [report.table_html("Records in and out of every stage", report.FUNNEL_HEADER, report.funnel_table(rows))],
    )


def _generation(inputs: ReportInputs, rows: list[dict[str, Any]], out: ReportOutputs) -> None:
    """The sampled category and difficulty of every instruction, finish reasons per step."""
    instructions = list(read_shards(inputs.instructions))
    responses = list(read_shards(inputs.responses))
    categories = report.spread(instructions, "category")
    difficulties = report.spread(instructions, "difficulty")
    finish = {
        "concepts": report.finish_reasons(instructions, "concepts"),
        "instruction": report.finish_reasons(instructions, "instruction"),
        "response": report.finish_reasons(responses, "response"),
    }
    _plot(
        out.generation_plot,
        report.plot_counters,
        [("instruction category", categories), ("instruction difficulty", difficulties), ("response finish reason", finish["response"])],
    )
    _page(
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
            report.table_html(
                "Generation drops", report.FUNNEL_HEADER, report.funnel_table(report.section_rows(rows, "generation"))
            ),
        ],
    )


def _verdicts(inputs: ReportInputs, out: ReportOutputs) -> None:
    verdicts = report.verdict_counts(read_json(path) for path in inputs.verdict_stats)
    _plot(out.verdicts_plot, report.plot_counters, [("execution verdicts", verdicts)])
    _page(out.verdicts_table, "Execution verdicts", [report.table_html("Verdicts by kind", ["verdict", "samples"], verdicts.most_common())])


def _selection(rows: list[dict[str, Any]], out: ReportOutputs) -> None:
    selection = report.section_rows(rows, "selection")
    _plot(out.selection_plot, report.plot_funnel, selection, title="From generated samples to the SFT set")
    _page(out.selection_table, "Selection funnel", [report.table_html("Selection funnel", report.FUNNEL_HEADER, report.funnel_table(selection))])


def _training(train_stats: Mapping[str, Any], out: ReportOutputs) -> None:
    loss = report.loss_rows(train_stats)
    _plot(out.loss_plot, report.plot_loss, loss)
    summary_keys = ["examples", "epochs", "steps", "effective_batch", "world_size", "zero_stage", "learning_rate", "train_seconds"]
    _page(
        out.loss_table,
        "SFT training",
        [
            report.table_html("Training run", ["setting", "value"], [[k, train_stats.get(k, "")] for k in summary_keys]),
            report.table_html(
                "Loss per optimizer step", ["step", "loss", "learning rate"], [[r["step"], r["loss"], r["learning_rate"]] for r in loss]
            ),
        ],
    )


def _scores(inputs: ReportInputs, settings: ReportSettings, out: ReportOutputs) -> int:
    ours = scores.read_scores(inputs.scores)
    differences = scores.differences(ours)
    base_model = (settings.config.get("model") or {}).get("base")
    references = scores.reference_rows(settings.reference, [row.benchmark for row in ours], base_model)
    _plot(out.scores_plot, report.plot_scores, [*ours, *references])
    fragments = [report.table_html("Greedy pass@1 of the base and the tuned model", report.SCORE_HEADER, report.score_table(ours))]
    if differences:
        fragments.append(report.table_html("Tuned minus base", report.SCORE_HEADER, report.score_table(differences)))
    if references:
        fragments.append(
            report.table_html(_reference_caption(settings.reference or {}, base_model), report.SCORE_HEADER, report.score_table(references))
        )
    _page(out.scores_table, "Scores", fragments)
    return len(ours)


def _reference_caption(reference: Mapping[str, Any], base_model: str | None) -> str:
    """Where the published numbers come from and, for a table across base models, which row is shown."""
    caption = f"Published reference numbers ({reference.get('source', '')})"
    if not reference.get("base_models"):
        return caption
    match = scores.matching_base_model(reference, base_model)
    if match:
        return f"{caption}, the row for the base model {match['base_model']}"
    return f"{caption}: no row for model.base {base_model!s}, the whole table"


def _data(inputs: ReportInputs, settings: ReportSettings, out: ReportOutputs) -> int:
    """A seeded sample of SFT pairs with their lineage, and of the dropped records per stage and reason."""
    pairs = lineage.sample_pairs(inputs.sft_data, settings.pairs, settings.seed)
    lineage.add_siblings(pairs, inputs.verdicts)
    sources: list[tuple[str, stages.Dropped, Sequence[str]]] = []
    for stage, per_source in inputs.dropped.items():
        specs = stages.BY_NAME[stage].dropped
        if len(specs) != len(per_source):
            raise ValueError(f"stage {stage!r} keeps {len(specs)} kinds of dropped records in selfalign.stages, {len(per_source)} given")
        sources += [(stage, spec, paths) for spec, paths in zip(specs, per_source)]
    dropped = lineage.sample_all_dropped(sources, settings.dropped_per_reason, settings.seed)
    fragments = [
        f"<h3>{len(pairs)} SFT pairs with their lineage</h3>",
        f"<p>Drawn with seed {settings.seed} from <code>{html.escape(report.display_path(inputs.sft_data, settings.run_dir))}</code>.</p>",
        *(pair_html(number, pair) for number, pair in enumerate(pairs, start=1)),
        "<h3>Dropped records by stage and reason</h3>",
    ]
    if not dropped:
        fragments.append("<p>No stage kept dropped records in this run.</p>")
    fragments += [dropped_html(sample) for sample in dropped]
    _page(out.data_table, "The data", fragments)
    return len(pairs)


def _run(totals: Mapping[str, Any], train_stats: Mapping[str, Any], settings: ReportSettings, out: ReportOutputs) -> None:
    tool_versions = {
        "python (report)": platform.python_version(),
        **settings.tool_versions,
        **stage_funnel.versions([totals, train_stats]),
    }
    config_rows = [[key, _config_value(value, settings.run_dir)] for key, value in report.flatten(settings.config)]
    _page(
        out.run_table,
        "Configuration and tool versions",
        [
            report.table_html("Tool versions", ["tool", "version"], report.versions_table(tool_versions, settings.run_dir)),
            report.table_html("Configuration (with defaults filled in)", ["key", "value"], config_rows),
        ],
    )


def _config_value(value: Any, run_dir: str) -> str:
    """A config value in one line; paths as the user wrote them, except those inside the run directory."""
    if isinstance(value, str):
        return report.display_path(value, run_dir, shorten=False)
    if isinstance(value, list):
        value = [report.display_path(v, run_dir, shorten=False) if isinstance(v, str) else v for v in value]
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


# ---- the data section's HTML ------------------------------------------------------------------


def _pre(text: Any) -> str:
    text = text if isinstance(text, str) else json.dumps(text, ensure_ascii=False, indent=1)
    if len(text) > TEXT_LIMIT:
        text = text[:TEXT_LIMIT] + f"\n… ({len(text) - TEXT_LIMIT} more characters)"
    return f"<pre>{html.escape(text)}</pre>"


def _counts(counter: Mapping[str, int]) -> str:
    return ", ".join(f"{reason} {count}" for reason, count in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def pair_html(number: int, pair: lineage.Pair) -> str:
    """One SFT pair from seed to verdict: lineage table, then the texts in the order they were made."""
    record = pair.record
    passed = pair.siblings.get("pass", 0)
    samples = sum(pair.siblings.values())
    execution = (pair.verdict or {}).get("execution") or {}
    verdict = (pair.verdict or {}).get("verdict", "(not found in the verdict shards)")
    if execution.get("seconds") is not None:
        verdict += f" in {execution['seconds']} s"
    facts = [
        ["seed id", record.get("seed_id", "")],
        ["seed source", record.get("source", "")],
        ["category / difficulty", f"{record.get('category', '')} / {record.get('difficulty', '')}"],
        ["chosen sample", f"{record.get('sample_index', '')} ({record.get('response_id', '')})"],
        ["its verdict", verdict],
        ["samples of this instruction that passed", f"{passed} of {samples}" + (f" ({_counts(pair.siblings)})" if samples else "")],
        ["lineage ids", " → ".join(str(record.get(k, "")) for k in ("seed_id", "concepts_id", "instruction_id", "response_id", "verdict_id"))],
    ]
    concepts = record.get("concepts") or []
    return (
        f'<section class="pair" data-response-id="{html.escape(str(record.get("response_id", "")))}">'
        + report.table_html(f"Pair {number}", [], facts)
        + "<h4>Seed function</h4>" + _pre(record.get("seed", ""))
        + "<h4>Concepts</h4><p>" + html.escape(", ".join(map(str, concepts)) or "(none)") + "</p>"
        + "<h4>Instruction</h4>" + _pre(record.get("instruction", ""))
        + "<h4>Chosen response</h4>" + _pre(record.get("response", ""))
        + "<h4>Its tests</h4>" + _pre(record.get("tests", ""))
        + "</section><hr>"
    )


def _shown_fields(record: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """A dropped record's fields as a person reads them: nested objects one level flat, prompt ids hidden."""
    fields: list[tuple[str, Any]] = []
    for key, value in record.items():
        if key in HIDDEN_FIELDS or (key.endswith("_id") and key != "seed_id"):
            continue
        if isinstance(value, Mapping):
            fields += [(f"{key}.{inner}", item) for inner, item in value.items() if item not in ("", None)]
        elif value not in ("", None):
            fields.append((key, value))
    rank = {name: i for i, name in enumerate(FIRST_FIELDS)}
    return sorted(fields, key=lambda kv: (kv[0] == "seed", rank.get(kv[0], len(rank))))


def dropped_html(sample: lineage.DroppedSample) -> str:
    label = stages.BY_NAME[sample.stage].label if sample.stage in stages.BY_NAME else sample.stage
    parts = [
        f'<section class="dropped" data-stage="{html.escape(sample.stage)}" data-reason="{html.escape(sample.reason)}">',
        f"<h4>{html.escape(label)}: {html.escape(sample.reason)} ({len(sample.records)} of {sample.total} shown)</h4>",
    ]
    for record in sample.records:
        rows = "".join(
            f"<tr><th>{html.escape(key)}</th><td>{_pre(value) if isinstance(value, str) and chr(10) in value else html.escape(str(value))}</td></tr>"
            for key, value in _shown_fields(record)
        )
        parts.append(f"<table>{rows}</table>")
    parts.append("</section>")
    return "".join(parts)
