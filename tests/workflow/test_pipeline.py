"""End to end: the whole pipeline on a small test config, for real (pyright, bubblewrap, DeepSpeed, HumanEval).

One run (the session fixture `run` in conftest.py, shared with test_report.py) feeds every assertion; it takes a few minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import yaml

from conftest import small_config, snakemake, write_config
from selfalign import stages

PER_SHARD_STAGES = [
    ("seeds/extracted", "seeds"),  # extracted and final: one stats file for all shards (whole-run jobs)
    ("seeds/heuristics", "seeds"),
    ("seeds/typechecked", "seeds"),
    ("seeds/decontaminated", "seeds"),
    ("seeds/judged", "seeds"),
    ("seeds/final", "final_seeds"),
    ("instruct/concepts", "concepts"),
    ("instruct/instructions", "instructions"),
    ("respond/responses", "responses"),
    ("execute/verdicts", "verdicts"),
    ("select/candidates", "verdicts"),
]


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_every_stage_has_non_empty_shards_with_stats(run):
    results, _ = run
    whole_run = {
        "seeds/extracted": json.loads((results / "seeds/extracted/stats.json").read_text()),
        "seeds/final": json.loads((results / "seeds/near_dedup/clusters.stats.json").read_text()),
    }
    for stats in whole_run.values():
        assert stats["in"] == stats["out"] + sum(stats["dropped"].values())
    for stage, _kind in PER_SHARD_STAGES:
        total = 0
        for shard in ("00", "01"):
            path = results / stage / f"{shard}.jsonl"
            records = _lines(path)
            if stage in whole_run:
                assert whole_run[stage]["shards"][shard] == len(records), path
            else:
                stats = json.loads((results / stage / f"{shard}.stats.json").read_text())
                assert stats["out"] == len(records), path
                assert {"in", "out", "dropped", "seconds", "versions"} <= stats.keys()
                assert stats["in"] == stats["out"] + sum(stats["dropped"].values()), path
            total += len(records)
        assert total > 0, f"{stage} is empty"
    assert _lines(results / "sft/train.jsonl"), "the SFT set is empty"


def test_every_kept_drop_file_lists_each_counted_drop(run):
    """What the report's data section samples: one record per drop its stage counted, with the reason."""
    results, _ = run
    run_dir = results.parent
    for stage, sources in stages.dropped_paths(["00", "01"]).items():
        spec = stages.BY_NAME[stage]
        if stage == "judge" and not (run_dir / sources[0][0]).exists():
            continue  # the judge is disabled in the small config
        listed: Counter[str] = Counter()
        for source, paths in zip(spec.dropped, sources, strict=True):
            for path in paths:
                listed.update(reason for r in _lines(run_dir / path) if (reason := source.reason_of(r)) is not None)
        counted: Counter[str] = Counter()
        for path in stages._expand([spec.stats], ["00", "01"]):
            counted.update(json.loads((run_dir / path).read_text())["dropped"])
        assert listed == counted, stage


def test_final_record_traces_back_to_its_seed(run):
    results, _ = run
    pair = _lines(results / "sft/train.jsonl")[0]
    seeds = {r["seed_id"]: r for shard in ("00", "01") for r in _lines(results / f"seeds/final/{shard}.jsonl")}
    assert pair["seed_id"] in seeds and pair["seed"] == seeds[pair["seed_id"]]["seed"]
    verdicts = {r["response_id"]: r for shard in ("00", "01") for r in _lines(results / f"execute/verdicts/{shard}.jsonl")}
    verdict = verdicts[pair["response_id"]]
    assert verdict["verdict"] == "pass" and verdict["verdict_id"] == pair["verdict_id"]
    assert verdict["instruction_id"] == pair["instruction_id"] and verdict["concepts_id"] == pair["concepts_id"]
    for step in ("concepts", "instruction", "response"):
        assert pair["provenance"][step]["sampling_seed"] == 3407 + pair["row"]


def test_tuned_model_reloads_offline_and_generates(run):
    results, _ = run
    code = (
        "import sys; from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        "tok = AutoTokenizer.from_pretrained(sys.argv[1]); model = AutoModelForCausalLM.from_pretrained(sys.argv[1])\n"
        "ids = tok.apply_chat_template([{'role': 'user', 'content': 'Write a function.'}], return_tensors='pt', return_dict=True)\n"
        "out = model.generate(**ids, max_new_tokens=8, do_sample=False)\n"
        "print('GENERATED', out.shape[1] > ids['input_ids'].shape[1])\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code, str(results / "models/tuned")], capture_output=True, text=True, env=env
    )
    assert "GENERATED True" in result.stdout, result.stderr[-3000:]
    stats = json.loads((results / "models/tuned/train_stats.json").read_text())
    assert stats["world_size"] == 2


def test_loss_falls_over_the_demo_training(run):
    results, _ = run
    rows = [line.split("\t") for line in (results / "models/tuned/loss.tsv").read_text().splitlines()[1:]]
    losses = [float(row[2]) for row in rows]
    assert len(losses) >= 4 and sum(losses[-2:]) / 2 < sum(losses[:2]) / 2, losses


def test_scores_for_base_and_tuned_model_and_printed_funnel(run):
    results, completed = run
    for model in ("base", "tuned"):
        for benchmark in ("humaneval", "mbpp"):
            scores = json.loads((results / f"scores/{model}/{benchmark}.json").read_text())
            assert scores["problems"] == min(40, scores["dataset"]["problems"])
            assert 0.0 <= scores["plus"]["pass@1"] <= scores["base"]["pass@1"] <= 1.0
    assert "# Funnel" in completed.stdout
    tsv = (results / "report/funnel.tsv").read_text()
    assert "typecheck" in tsv and "select_keep" in tsv


def test_changing_one_stage_reruns_only_it_and_downstream(run):
    results, _ = run
    workdir = results.parent
    config = small_config()
    config["generation"]["instructions"]["temperature"] = 0.9
    write_config(workdir, yaml.safe_dump(config))
    result = snakemake("-n", "--directory", str(workdir), "instructions", cwd=workdir)
    assert result.returncode == 0, result.stderr
    planned = result.stdout
    assert "generate_instructions" in planned
    for upstream in ("generate_concepts", "judge_seeds", "train_teacher", "extract_seeds", "filter_seeds"):
        assert upstream not in planned, upstream


def test_sft_set_comes_as_parquet_with_a_dataset_card(run):
    import pyarrow.parquet as pq

    results, _ = run
    rows = _lines(results / "sft/train.jsonl")
    assert pq.read_table(results / "sft/train.parquet").to_pylist() == rows
    card = (results / "sft/README.md").read_text()
    assert card.startswith("---\n") and "license" in card and f"{len(rows)}" in card
