"""The SFT set's companions: a Parquet copy of ``train.jsonl`` and a Hugging Face dataset card.

``write_parquet`` keeps the records' order and their nested fields (``concepts`` as a list,
``provenance`` as a struct of structs), so ``pyarrow.parquet.read_table(path).to_pylist()`` gives the
records back. ``dataset_card`` renders ``README.md`` in the Hub's format: YAML front matter
(licence, languages, task, size, tags), then the funnel of the run, the configuration, the licences
of the sources, the fields, how the set was made and how to cite it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml

from .stage_funnel import markdown_table
from .stages import STAGES
from .shards import atomic_path

PSF_LICENSE_URL = "https://docs.python.org/3/license.html"

# What each field of a record means; fields not listed here are described as "(undocumented)".
FIELD_DESCRIPTIONS = {
    "instruction": "The instruction the base model wrote from the concepts (training input).",
    "response": "The response the base model wrote, holding a Python code block (training target).",
    "tests": "The tests written with the response; they passed in the sandbox.",
    "seed": "The seed function the concepts were drawn from (exact source text).",
    "source": "Where the seed comes from: `file:line`, relative to its code tree.",
    "concepts": "Programming concepts the base model listed for the seed (list of strings).",
    "category": "The task category sampled for the instruction.",
    "difficulty": "The difficulty sampled for the instruction.",
    "seed_id": "Lineage id: `s-` + SHA-1 of the seed text.",
    "concepts_id": "Lineage id: `c-` + hash of `seed_id` and the concepts.",
    "instruction_id": "Lineage id: `i-` + hash of `concepts_id` and the instruction.",
    "response_id": "Lineage id: `r-` + hash of `instruction_id`, `sample_index` and the response.",
    "verdict_id": "Lineage id: `v-` + hash of `response_id` and the execution verdict (always a pass here).",
    "row": "Absolute index of the seed, fixed by the near-dedup step; sampling seed = `seed + row`.",
    "sample_index": "Which of the n sampled responses to the instruction this one is.",
    "response_format": "The prompt format the response was written in (`sca`: tagged response and tests; `sc2`: the four-section layout).",
    "provenance": (
        "Per generation step (`concepts`, `instruction`, `response`): the few-shot example ids used "
        "(`fewshot`), the prompt's SHA-1 (`prompt_sha1`), the sampling seed (`sampling_seed`) and the "
        "finish reason (`finish_reason`)."
    ),
}

CITATION_BIBTEX = """\
@inproceedings{wei2024selfcodealign,
  title     = {SelfCodeAlign: Self-Alignment for Code Generation},
  author    = {Wei, Yuxiang and Cassano, Federico and Liu, Jiawei and Ding, Yifeng and Jain, Naman and
               Mueller, Zachary and de Vries, Harm and von Werra, Leandro and Guha, Arjun and Zhang, Lingming},
  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)},
  year      = {2024},
  note      = {arXiv:2410.24198}
}

@article{lozhkov2024starcoder2,
  title   = {StarCoder 2 and The Stack v2: The Next Generation},
  author  = {Lozhkov, Anton and others},
  journal = {arXiv preprint arXiv:2402.19173},
  year    = {2024}
}"""


def write_parquet(records: Iterable[Mapping[str, Any]], path: str | os.PathLike[str]) -> int:
    """Write the records, in order, to a Parquet file atomically; return how many were written.

    The schema is inferred from the records: lists become list columns and dicts struct columns, so
    nested fields round-trip. A field missing from some records reads back as None in those.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [dict(record) for record in records]
    table = pa.Table.from_pylist(rows)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return table.num_rows


def size_category(count: int) -> str:
    """The Hub's ``size_categories`` value for ``count`` records."""
    bounds = [
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
        (100_000_000, "10M<n<100M"),
        (1_000_000_000, "100M<n<1B"),
    ]
    for bound, label in bounds:
        if count < bound:
            return label
    return "n>1B"


def _plain(obj: Any) -> Any:
    """``obj`` as plain JSON types, so that ``yaml.safe_dump`` accepts it."""
    return json.loads(json.dumps(obj, default=str))


def _sources(config: Mapping[str, Any]) -> tuple[bool, list[str]]:
    sources = config.get("sources") or {}
    return bool(sources.get("stdlib", True)), list(sources.get("paths") or [])


def _front_matter(config: Mapping[str, Any], record_count: int) -> dict[str, Any]:
    stdlib, paths = _sources(config)
    meta: dict[str, Any] = {"license": "other"}
    if stdlib and not paths:
        meta.update(license_name="psf-2.0", license_link=PSF_LICENSE_URL)
    else:
        meta.update(license_name="mixed")  # the user's own trees: see the card's licence section
    meta.update(
        language=["en", "code"],
        task_categories=["text-generation"],
        size_categories=[size_category(record_count)],
        tags=["code", "python", "synthetic", "instruction-tuning", "self-alignment", "selfcodealign", "starcoder2"],
        pretty_name="SelfCodeAlign SFT set (selfalign workflow)",
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": "train.parquet"}]}],
    )
    return meta


def _funnel_table(funnel_rows: Sequence[Mapping[str, Any]], record_count: int) -> list[str]:
    rows = [dict(row) for row in funnel_rows]
    return [*markdown_table(rows), f"| written to `train.jsonl` / `train.parquet` | | {record_count} | |"]


def _licence_section(config: Mapping[str, Any]) -> list[str]:
    stdlib, paths = _sources(config)
    lines = ["## Licence of the sources", ""]
    if stdlib:
        lines.append(
            "- Seeds from the **Python standard library** of the interpreter that ran the workflow, "
            f"distributed under the Python Software Foundation License (PSF-2.0, {PSF_LICENSE_URL}). "
            "The `seed` field holds the functions verbatim."
        )
    for path in paths:
        lines.append(f"- Seeds from the code tree `{path}`: licence **not known to the workflow**.")
    if paths:
        lines.append("")
        lines.append(
            "**Users must check the licences of their own code trees** before using or publishing this "
            "set: every record's `seed` field is a verbatim copy of a function from them, and `source` "
            "names its file."
        )
    else:
        lines.append("")
        lines.append(
            "With other code trees (`sources.paths`), users must check the licences of their own trees: "
            "the `seed` field copies their functions verbatim."
        )
    base = (config.get("model") or {}).get("base")
    lines.append("")
    if base:
        lines.append(
            f"The instructions, responses and tests were generated by the base model `{base}`; its licence "
            "(for StarCoder2, the BigCode OpenRAIL-M) may restrict the use of its outputs."
        )
    else:
        lines.append(
            "The instructions, responses and tests were generated by the demo teacher, a toy model trained "
            "by the workflow on its own few-shot files (MIT, like the workflow)."
        )
    return lines


def dataset_card(
    funnel_rows: Sequence[Mapping[str, Any]],
    config: Mapping[str, Any],
    record_count: int,
    fields: Iterable[str],
) -> str:
    """The ``README.md`` of the SFT set, in the Hugging Face dataset card format."""
    front = yaml.safe_dump(_front_matter(config, record_count), sort_keys=False, allow_unicode=True)
    lines = ["---", front.rstrip("\n"), "---", ""]
    lines += [
        "# SelfCodeAlign SFT set",
        "",
        f"{record_count} instruction-response pairs for supervised fine-tuning, written by a base model "
        "from seed functions and validated by running them, the way SelfCodeAlign and "
        "StarCoder2-15B-Instruct were made. Made by the `selfalign` Snakemake workflow. Every pair keeps "
        "the lineage ids of the seed, concepts, instruction, response and verdict it came from.",
        "",
        "Files: `train.jsonl` (one JSON object per line) and `train.parquet` (the same records, same order).",
        "",
        "## Counts per stage",
        "",
        "Records in and out of every stage of the run, summed over shards, with the reasons for drops:",
        "",
        *_funnel_table(funnel_rows, record_count),
        "",
        "## Fields",
        "",
        "| field | meaning |",
        "|---|---|",
    ]
    for field in fields:
        lines.append(f"| `{field}` | {FIELD_DESCRIPTIONS.get(field, '(undocumented)')} |")
    lines += ["", "## How it was made", ""]
    lines += [f"{i}. {stage.made}" for i, stage in enumerate(STAGES, start=1)]
    lines += [""]
    lines += _licence_section(config)
    config_yaml = yaml.safe_dump(_plain(dict(config)), sort_keys=False, allow_unicode=True)
    lines += [
        "",
        "## Configuration",
        "",
        "The workflow's configuration for this run (schema defaults filled in):",
        "",
        "```yaml",
        config_yaml.rstrip("\n"),
        "```",
        "",
        "## Citation",
        "",
        "If you use this data, cite SelfCodeAlign and StarCoder2:",
        "",
        "```bibtex",
        CITATION_BIBTEX,
        "```",
        "",
        "and the workflow that made it, as described in `CITATION.cff` at the root of its repository.",
        "",
    ]
    return "\n".join(lines)
