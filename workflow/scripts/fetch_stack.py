"""Rule fetch_stack: stream The Stack v1 (or local files laid out as the hub serves them) into N raw shards.

Run on a machine with internet and HF_TOKEN exported for the gated datasets; the token is read from the
environment by the hub client and scrubbed from this rule's log.
"""

import contextlib
import os

from selfalign import stack
from selfalign.rulekit import shard_name, start_logging
from selfalign.shards import StageStats, atomic_writer, dumps

log = start_logging(snakemake.log[0], "fetch_stack")
stack.redact_secrets(log)
cfg = dict(snakemake.params.stack)
where = f"local files {list(cfg['local_files'])}" if cfg["local_files"] else f"{cfg['dataset']} ({cfg['data_dir'] or 'all'}, {cfg['split']})"
log.info("streaming %s; a token is %s", where, "set" if any(os.environ.get(v) for v in stack.SECRET_VARIABLES) else "not set")

shard_count = len(snakemake.output.shards)
stats = StageStats("fetch_stack")  # one file for all shards (rows per shard under "shards"), as extract_seeds'
per_shard = [0] * shard_count
documents = stack.stack_documents(stack.stream_rows(cfg), cfg["text_field"], cfg["path_field"], cfg["limit"])
with contextlib.ExitStack() as exit_stack:
    writers = [exit_stack.enter_context(atomic_writer(path)) for path in snakemake.output.shards]
    for index, document in enumerate(documents):
        shard = index % shard_count  # round robin: the stream's order is fixed, so the layout is too
        writers[shard].write(dumps(document) + "\n")
        per_shard[shard] += 1
        stats.seen()
        stats.kept()
        if (index + 1) % 100_000 == 0:
            log.info("%d rows", index + 1)
stats.extra.update(
    source=where,
    shards={shard_name(path): count for path, count in zip(snakemake.output.shards, per_shard, strict=True)},
)
stats.write(snakemake.output.stats)
log.info("%d rows into %d shards", stats.records_out, shard_count)
