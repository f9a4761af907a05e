"""Rule extract_stack_functions: the seed functions of one raw Stack shard (the parsing, in parallel per shard);
documents that are binary, too large or do not parse are counted by reason. Exact dedup across shards
happens in extract_seeds."""

from collections import Counter

from selfalign import seeds
from selfalign.rulekit import shard_name, start_logging
from selfalign.shards import StageStats, read_jsonl, write_jsonl

log = start_logging(snakemake.log[0], "extract_stack_functions")
sources = dict(snakemake.params.sources)
stats = StageStats("extract_stack", shard_name(snakemake.output.shard))
skipped: Counter = Counter()


def documents():
    for document in read_jsonl(snakemake.input[0], {"path": str, "content": str}):
        stats.extra["documents"] += 1
        yield document


stats.extra["documents"] = 0
records = seeds.iter_document_records(
    documents(), skipped, max_bytes=sources["max_file_bytes"], any_docstring=sources["docstring_quotes"] == "any"
)
stats.kept(write_jsonl(snakemake.output.shard, records))
stats.seen(stats.records_out)  # in/out count functions; documents and their skips are listed beside
stats.extra["skipped"] = dict(sorted(skipped.items()))
log.info("%s", stats.write(snakemake.output.stats))
