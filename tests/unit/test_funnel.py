from selfalign.funnel import aggregate, load_rows, to_markdown, to_tsv, totals
from selfalign.shards import StageStats, write_json


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
        "model": "base", "benchmark": "mbpp", "dataset": {"version": "MBPP+ v0.2.0"}, "prompt_style": "completion",
        "base": {"pass@1": 0.5, "passed": 1}, "plus": {"pass@1": 0.25, "passed": 1}, "problems": 4,
    }
    markdown = to_markdown(rows, [score])
    assert "| docstring judge | 18 | 14 | judged_no 4 |" in markdown
    assert "| mbpp | MBPP+ v0.2.0 | base | completion | 0.500 | 0.250 | 4 |" in markdown


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
