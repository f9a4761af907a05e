import gzip
import json

import pytest

from selfalign.records import FIELDS, read_stage, sampling_seed, seed_id
from selfalign.shards import (
    CountMismatch,
    RecordError,
    StageStats,
    atomic_writer,
    publish_together,
    read_json,
    read_jsonl,
    read_shards,
    stats_path_for,
    write_json,
    write_jsonl,
)


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


def _finished_shard(directory, name="01", count=3):
    """A shard with its stats, as a stage job leaves them."""
    stats = StageStats("stage", name)
    stats.seen(count)
    stats.kept(write_jsonl(directory / f"{name}.jsonl", ({"i": i} for i in range(count))))
    stats.write(directory / f"{name}.stats.json")
    return directory / f"{name}.jsonl"


def test_a_record_deleted_from_a_finished_shard_fails_the_reader_with_both_counts(tmp_path):
    shard = _finished_shard(tmp_path)
    assert len(list(read_jsonl(shard))) == 3
    lines = shard.read_text().splitlines(keepends=True)
    shard.write_text(lines[0] + lines[2])  # still valid JSONL: only the count shows the loss
    with pytest.raises(CountMismatch, match=r"01.jsonl: 2 records, but its producer's stats .*01.stats.json count 3"):
        list(read_jsonl(shard))
    with pytest.raises(CountMismatch):
        list(read_shards([shard]))
    assert len(list(read_jsonl(shard, check_count=False))) == 2  # a caller that knows better may opt out


def test_a_whole_run_stats_file_counts_each_shard(tmp_path):
    write_jsonl(tmp_path / "00.jsonl", [{"i": 0}, {"i": 1}])
    write_jsonl(tmp_path / "01.jsonl.gz", [{"i": 2}])
    write_json(tmp_path / "stats.json", {"in": 3, "out": 3, "shards": {"00": 2, "01": 2}})
    assert len(list(read_jsonl(tmp_path / "00.jsonl"))) == 2
    with pytest.raises(CountMismatch, match=r"01.jsonl.gz: 1 records, but .*stats.json count 2"):
        list(read_jsonl(tmp_path / "01.jsonl.gz"))
    write_jsonl(tmp_path / "elsewhere" / "x.jsonl", [{"i": 0}])  # no stats at all: nothing to check against
    assert len(list(read_jsonl(tmp_path / "elsewhere" / "x.jsonl"))) == 1


def test_publish_together_makes_all_outputs_appear_at_the_end_and_none_on_failure(tmp_path):
    first, first_stats = tmp_path / "a" / "00.jsonl", tmp_path / "a" / "00.stats.json"
    second, second_stats = tmp_path / "b" / "00.jsonl", tmp_path / "b" / "00.stats.json"
    finals = [first, first_stats, second, second_stats]

    def step(pub, path, stats_path, source=None):
        stats = StageStats("step", "00")
        rows = list(read_jsonl(source)) if source else [{"i": i} for i in range(4)]
        stats.seen(len(rows))
        stats.kept(write_jsonl(pub.path(path), rows[1:] if source else rows))
        stats.drop("first", 1 if source else 0)
        stats.write(pub.path(stats_path))

    # a failure between the steps: none of the outputs, not even the finished first step's
    with pytest.raises(RuntimeError, match="killed between steps"):
        with publish_together(*finals) as pub:
            step(pub, first, first_stats)
            assert not first.exists()  # staged, not yet visible
            raise RuntimeError("killed between steps")
    assert not any(path.exists() for path in finals)
    assert sorted(p.name for d in (tmp_path / "a", tmp_path / "b") for p in d.iterdir()) == []

    # a kill leaves staged files; the next attempt of the job clears them and publishes everything
    stale = first.with_name(".publishing.00.jsonl")
    stale.write_text("left by a killed attempt\n")
    with publish_together(*finals) as pub:
        assert not stale.exists()
        step(pub, first, first_stats)
        step(pub, second, second_stats, source=pub.path(first))  # reads the staged shard, count checked
    assert [len(list(read_jsonl(path))) for path in (first, second)] == [4, 3]
    assert read_json(second_stats)["out"] == 3
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["00.jsonl", "00.stats.json"]

    with pytest.raises(FileNotFoundError, match="never written, nothing published"):
        with publish_together(tmp_path / "c" / "x.jsonl", tmp_path / "c" / "y.json") as pub:
            write_jsonl(pub.path(tmp_path / "c" / "x.jsonl"), [])
    assert list((tmp_path / "c").iterdir()) == []
