import json

import pyarrow.parquet as pq
import yaml

from selfalign import datacard, stage_funnel
from selfalign.stages import STAGES
from selfalign.selection import SFT_FIELDS
from selfalign.shards import write_json


def _record(i: int, concepts: list[str]) -> dict:
    return {
        "instruction": f"Write f{i}.",
        "response": f"```python\ndef f{i}():\n    return {i}\n```",
        "tests": f"```python\nassert f{i}() == {i}\n```",
        "seed": "def g(x):\n    return x",
        "source": "mod.py:1",
        "concepts": concepts,
        "category": "function implementation",
        "difficulty": "easy",
        "seed_id": f"s-{i:016x}",
        "concepts_id": f"c-{i:016x}",
        "instruction_id": f"i-{i:016x}",
        "response_id": f"r-{i:016x}",
        "verdict_id": f"v-{i:016x}",
        "row": i,
        "sample_index": i % 10,
        "provenance": {
            step: {"fewshot": [f"ex-{i}", "ex-b"], "prompt_sha1": "ab" * 20, "sampling_seed": 3407 + i, "finish_reason": "stop"}
            for step in ("concepts", "instruction", "response")
        },
    }


def test_parquet_round_trip_keeps_order_and_nested_fields(tmp_path):
    records = [_record(i, ["loops", "ünïcode"][: i % 3]) for i in (5, 1, 3)]  # not sorted, empty list included
    path = tmp_path / "sft" / "train.parquet"
    assert datacard.write_parquet(iter(records), path) == 3
    assert pq.read_table(path).to_pylist() == records
    assert [p.name for p in path.parent.iterdir()] == ["train.parquet"]  # no temporary file left


def test_parquet_failure_leaves_no_file(tmp_path):
    path = tmp_path / "train.parquet"
    try:
        datacard.write_parquet([{"a": 1}, {"a": "x"}], path)  # mixed types: pyarrow refuses
    except Exception:
        pass
    assert list(tmp_path.iterdir()) == []


def _funnel_rows(tmp_path):
    stats = [
        {"stage": "extract", "in": 10, "out": 10, "dropped": {}},
        {"stage": "heuristics", "in": 10, "out": 7, "dropped": {"zero_arguments": 3}},
        {"stage": "select_keep", "in": 7, "out": 2, "dropped": {"duplicate_instruction": 4, "duplicate_response": 1}},
    ]
    paths = []
    for i, item in enumerate(stats):
        paths.append(str(tmp_path / f"{i}.stats.json"))
        write_json(paths[-1], {"shard": None, "seconds": 0.1, "versions": {}, **item})
    return stage_funnel.aggregate(paths)


def _split(card: str) -> tuple[dict, str]:
    assert card.startswith("---\n")
    _, front, body = card.split("---\n", 2)
    return yaml.safe_load(front), body


def test_card_front_matter_counts_licence_and_citation(tmp_path):
    config = {"shards": 2, "sources": {"stdlib": True, "paths": []}, "model": {"base": None}, "selection": {"seed": 6666}}
    card = datacard.dataset_card(_funnel_rows(tmp_path), config, 2, list(SFT_FIELDS))
    meta, body = _split(card)
    assert meta["license"] == "other" and meta["license_name"] == "psf-2.0"
    assert meta["language"] == ["en", "code"]
    assert meta["task_categories"] == ["text-generation"]
    assert meta["size_categories"] == ["n<1K"]
    assert "code" in meta["tags"] and "synthetic" in meta["tags"]
    # counts per stage, with the reasons for drops
    assert "| seeds extracted | 10 | 10 | - |" in body
    assert "| heuristic filters | 10 | 7 | zero_arguments 3 |" in body
    assert "duplicate_instruction 4, duplicate_response 1" in body
    # licence of the sources
    assert "## Licence of the sources" in body
    assert "Python Software Foundation License" in body
    assert "check the licences of their own trees" in body
    # fields and lineage ids
    for field in SFT_FIELDS:
        assert f"| `{field}` |" in body
    assert "(undocumented)" not in body
    # the configuration, as YAML that parses back
    config_block = body.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(config_block) == config
    # how it was made: one line per stage of the stage table
    assert body.count(f"\n{len(STAGES)}. ") == 1 and f"\n{len(STAGES) + 1}. " not in body
    # citation
    assert "## Citation" in body
    assert "SelfCodeAlign: Self-Alignment for Code Generation" in body and "2024" in body
    assert "StarCoder 2 and The Stack v2" in body
    assert "CITATION.cff" in body


def test_card_with_own_trees_warns_and_marks_licence_mixed(tmp_path):
    config = {"sources": {"stdlib": False, "paths": ["/src/mycode"]}, "model": {"base": "/models/starcoder2-15b"}}
    meta, body = _split(datacard.dataset_card(_funnel_rows(tmp_path), config, 12_345, ["instruction", "extra"]))
    assert meta["license"] == "other" and meta["license_name"] == "mixed"
    assert meta["size_categories"] == ["10K<n<100K"]
    assert "`/src/mycode`" in body and "Users must check the licences of their own code trees" in body
    assert "Python Software Foundation" not in body
    assert "/models/starcoder2-15b" in body
    assert "| `extra` | (undocumented) |" in body


def test_size_categories():
    assert [datacard.size_category(n) for n in (0, 999, 1000, 10**5, 2 * 10**9)] == [
        "n<1K", "n<1K", "1K<n<10K", "100K<n<1M", "n>1B"
    ]


def test_card_config_accepts_non_plain_values(tmp_path):
    card = datacard.dataset_card([], {"sources": {"paths": ()}, "x": (1, 2)}, 0, [])
    meta, body = _split(card)
    assert json.dumps(meta)  # front matter is plain YAML
    assert "x:\n- 1\n- 2" in body
