from selfalign.funnel import aggregate, to_markdown, to_tsv
from selfalign.shards import StageStats


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
