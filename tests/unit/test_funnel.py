"""The stage table (selfalign.stages) and the funnel summed from the stats files (selfalign.stage_funnel)."""

import re
from pathlib import Path

from selfalign import stages
from selfalign.scores import read_score
from selfalign.shards import StageStats, write_json
from selfalign.stage_funnel import aggregate, load_rows, to_markdown, to_tsv, totals

REPO = Path(__file__).resolve().parents[2]


def test_funnel_sums_shards_in_pipeline_order(tmp_path):
    paths = []
    for stage, shard, seen, kept, reason in [("judge", 0, 10, 6, "judged_no"), ("typecheck", 0, 20, 10, "pyright_error"), ("judge", 1, 8, 8, None)]:
        stats = StageStats(stage, shard)
        stats.seen(seen)
        stats.kept(kept)
        if reason:
            stats.drop(reason, seen - kept)
        paths.append(tmp_path / f"{stage}-{shard}.stats.json")
        stats.write(paths[-1])
    rows = aggregate(map(str, paths))
    assert [r["stage"] for r in rows] == ["typecheck", "judge"]
    assert (rows[1]["in"], rows[1]["out"], dict(rows[1]["dropped"])) == (18, 14, {"judged_no": 4})
    assert "judge\t18\t14\t4\tjudged_no 4" in to_tsv(rows)
    score = {
        "model": "base", "benchmark": "mbpp", "dataset": {"name": "mbpp", "version": "MBPP+ v0.2.0"}, "prompt_style": "completion",
        "base": {"pass@1": 0.5, "passed": 2}, "plus": {"pass@1": 0.25, "passed": 1}, "problems": 4,
    }
    write_json(tmp_path / "mbpp.json", score)
    markdown = to_markdown(rows, [read_score(tmp_path / "mbpp.json")])
    assert "| docstring judge | 18 | 14 | judged_no 4 |" in markdown
    assert "| mbpp | mbpp MBPP+ v0.2.0 | base | completion | 0.500 | 0.250 | 4 |" in markdown


def test_stage_totals_round_trip_to_the_same_funnel(tmp_path):
    paths = []
    for shard, (seen, kept, version) in enumerate([(10, 7, "1.1.414"), (5, 5, "1.1.414"), (4, 1, "1.1.415")]):
        stats = StageStats("typecheck", shard)
        stats.seen(seen)
        stats.kept(kept)
        stats.drop("pyright_error", seen - kept)
        stats.versions = {"pyright": version}
        paths.append(str(tmp_path / f"{shard}.stats.json"))
        stats.write(paths[-1])
    summed = totals(paths)
    assert summed["versions"] == {"pyright": "1.1.414, 1.1.415"} and summed["stats_files"] == 3
    write_json(tmp_path / "totals.json", summed)
    rows = load_rows(str(tmp_path / "totals.json"))
    assert to_tsv(rows) == to_tsv(aggregate(paths))
    assert (rows[0]["in"], rows[0]["out"], rows[0]["dropped"]["pyright_error"], rows[0]["shards"]) == (19, 13, 6, 3)


def test_limit_shows_in_the_label_only_when_it_cut_something(tmp_path):
    paths = []
    for name, over_limit in (("cut", 129), ("uncut", 0)):
        stats = StageStats("near_dedup")
        stats.seen(177)
        stats.kept(40 if over_limit else 169)
        stats.drop("near_duplicate", 8)
        if over_limit:
            stats.drop("over_limit", over_limit)
        paths.append(tmp_path / f"{name}.stats.json")
        stats.write(paths[-1])
    (cut,), (uncut,) = aggregate([str(paths[0])]), aggregate([str(paths[1])])
    assert stages.label(cut) == "near-dedup + limit 40"
    assert stages.label(uncut) == "near-dedup"
    assert "| near-dedup + limit 40 | 177 | 40 | over_limit 129, near_duplicate 8 |" in to_markdown([cut], [])


def test_the_stage_table_is_the_one_list_of_stages():
    names = [stage.name for stage in stages.STAGES]
    assert len(set(names)) == len(names) and len({stage.label for stage in stages.STAGES}) == len(names)
    paths = stages.stats_paths(["00", "01"])
    assert paths[0] == "results/seeds/extracted/stats.json" and "results/seeds/heuristics/01.stats.json" in paths
    assert len(paths) == sum(2 if stage.per_shard else 1 for stage in stages.STAGES)
    # every stage the scripts or the library record stats for is in the table, and every table stage is recorded
    scripts = "\n".join(p.read_text() for p in (REPO / "workflow" / "scripts").rglob("*.py"))
    recorded = set(re.findall(r'StageStats\("(\w+)"', scripts)) | {"concepts", "instructions", "responses"}  # generate.py: StageStats(step)
    not_in_funnel = {"fetch_stack", "benchmark_strings", "extract_stack"}  # inputs and helpers
    assert recorded - not_in_funnel == set(names)
    # every stats file the table names is an output of some rule
    rules = "\n".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    for stage in stages.STAGES:
        assert f'"{stage.stats}"' in rules, stage.stats
        for source in stage.dropped:
            assert f'"{source.pattern}"' in rules, source.pattern


def test_unknown_stages_go_last_with_their_own_name(tmp_path):
    for name, stage in (("a", "select_keep"), ("b", "new_stage"), ("c", "extract")):
        write_json(tmp_path / f"{name}.json", {"stage": stage, "in": 1, "out": 1, "dropped": {}})
    rows = aggregate([str(tmp_path / f"{n}.json") for n in "abc"])
    assert [stages.label(r) for r in rows] == ["seeds extracted", "selection (one per instruction, dedup)", "new_stage"]


def test_dropped_paths_one_list_per_source():
    paths = stages.dropped_paths(["00", "01"])
    assert paths["select_candidates"] == [
        ["results/execute/verdicts/00.jsonl", "results/execute/verdicts/01.jsonl"],
        ["results/select/candidates/00.removed.jsonl", "results/select/candidates/01.removed.jsonl"],
    ]
    assert paths["select_keep"] == [["results/select/removed.jsonl"]] and paths["sft_data"] == [["results/sft/removed.jsonl"]]
