import gzip
import json

import pytest

from selfalign.records import FIELDS, read_stage, sampling_seed, seed_id
from selfalign.shards import RecordError, StageStats, atomic_writer, read_jsonl, stats_path_for, write_jsonl


def test_round_trip_plain_and_gzip(tmp_path):
    records = [{"a": 1, "b": "x"}, {"a": 2, "b": "ü"}]
    for name in ("s.jsonl", "s.jsonl.gz"):
        assert write_jsonl(tmp_path / name, records) == 2
        assert list(read_jsonl(tmp_path / name)) == records
    assert gzip.open(tmp_path / "s.jsonl.gz", "rt").read().count("\n") == 2


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2,}\n')
    with pytest.raises(RecordError, match=r"bad.jsonl:3: not valid JSON"):
        list(read_jsonl(path))


def test_missing_and_mistyped_fields_name_the_field(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"seed_id": "s-1", "seed": "x"}) + "\n")
    with pytest.raises(RecordError, match=r"s.jsonl:1: field 'source': missing"):
        list(read_stage(path, "seeds"))
    path.write_text(json.dumps({"seed_id": "s-1", "seed": "x", "source": "a.py:1", "row": "7"}) + "\n")
    with pytest.raises(RecordError, match=r"field 'row': expected int, got str"):
        list(read_stage(path, "final_seeds"))
    path.write_text("[1, 2]\n")
    with pytest.raises(RecordError, match="expected a JSON object"):
        list(read_jsonl(path))


def test_atomic_writer_leaves_nothing_when_the_block_fails(tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic_writer(target) as handle:
            handle.write("partial")
            raise RuntimeError("killed")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_stats_count_and_paths(tmp_path):
    stats = StageStats("judge", "01")
    stats.seen(5)
    stats.kept(3)
    stats.drop("judged_no", 2)
    written = stats.write(tmp_path / "01.stats.json")
    assert written["in"] == written["out"] + sum(written["dropped"].values())
    assert stats_path_for("results/x/01.jsonl").name == "01.stats.json"
    assert stats_path_for("results/x/01.jsonl.gz").name == "01.stats.json"


def test_ids_are_content_hashes_and_seeds_follow_the_row():
    assert seed_id("def f(): pass") == seed_id("def f(): pass") != seed_id("def g(): pass")
    assert sampling_seed(3407, 5) == 3412
    assert set(FIELDS["final_seeds"]) >= {"seed_id", "row"}
