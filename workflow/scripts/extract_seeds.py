"""Rule extract_seeds: top-level functions with a docstring and `return <expr>` from the configured code trees
and, when enabled, The Stack's raw shards, exact-deduplicated and partitioned into shards by content hash (so duplicates always meet in one shard)."""

import contextlib
import itertools
from collections import Counter
from pathlib import Path

from selfalign import seeds
from selfalign.rulekit import shard_name, start_logging
from selfalign.shards import StageStats, atomic_writer, dumps, publish_together, read_json, read_shards

log = start_logging(snakemake.log[0], "extract_seeds")
sources = dict(snakemake.params.sources)

roots = [Path(p) for p in sources["paths"]]
if sources["stdlib"]:
    roots.insert(0, seeds.stdlib_root())
for root in roots:
    if not root.is_dir():
        raise SystemExit(f"config sources.paths: {root} is not a directory")
skipped: Counter = Counter()  # per file: symlinks that lead nowhere, then unreadable or unparsable files
files = seeds.python_files(roots, sources["include"], sources["exclude"], skipped)
log.info("%d files under %d tree(s), %s", len(files), len(roots), dict(skipped) or "no broken symlinks")

shard_count = len(snakemake.output.shards)
stats = StageStats("extract")
per_shard = [0] * shard_count
stack_skipped: Counter = Counter()  # per Stack document, counted apart from local files
stack_documents = 0
for path in snakemake.input.stack_stats:
    shard_stats = read_json(path)
    stack_skipped.update(shard_stats["skipped"])
    stack_documents += shard_stats["documents"]
# The shards and the stats file appear together at the end: a kill leaves none of them.
with publish_together(*snakemake.output.shards, snakemake.output.stats) as pub, contextlib.ExitStack() as stack:
    writers = [stack.enter_context(atomic_writer(pub.path(path))) for path in snakemake.output.shards]
    options = dict(max_bytes=sources["max_file_bytes"], any_docstring=sources["docstring_quotes"] == "any")
    seen: set[str] = set()  # exact dedup across the local trees and The Stack
    records = itertools.chain(
        seeds.iter_seed_records(files, skipped, seen=seen, **options),
        # The Stack's functions, parsed per shard by extract_stack_functions: only exact dedup is left
        seeds.dedup_records(read_shards(snakemake.input.stack, {"seed_id": str, "seed": str, "source": str}), stack_skipped, seen),
    )
    for count, record in enumerate(records, start=1):
        shard = int(record["seed_id"][2:10], 16) % shard_count
        writers[shard].write(dumps(record) + "\n")
        per_shard[shard] += 1
        stats.seen()
        stats.kept()
        if count % 1000 == 0:
            log.info("%d functions extracted", count)
    stack.close()  # the shard writers finish before the stats that count them

    # One stats file for all shards (records per shard under "shards"): a stats file per shard would be 1,000
    # more outputs of this one job for Snakemake to index. File-level skips and duplicates are counted apart
    # from in/out ("skipped_*").
    stats.extra.update(
        shards={shard_name(path): count for path, count in zip(snakemake.output.shards, per_shard, strict=True)},
        files=len(files),
        skipped=dict(sorted(skipped.items())),
        stack_documents=stack_documents,
        stack_skipped=dict(sorted(stack_skipped.items())),
    )
    stats.write(pub.path(snakemake.output.stats))
log.info(
    "extracted %d functions; skipped files %s; skipped Stack documents %s",
    stats.records_out,
    dict(skipped),
    dict(stack_skipped),
)
