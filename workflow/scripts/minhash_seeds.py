"""Rule minhash_seeds: phase 1 of near-dedup, MinHash signatures of one shard."""

from selfalign import neardedup
from selfalign.records import read_stage
from selfalign.rulekit import start_logging

log = start_logging(snakemake.log[0], "minhash_seeds")
cfg = dict(snakemake.params.near_dedup)
signatures = neardedup.signatures(
    read_stage(snakemake.input[0], "seeds"), text_field="seed", num_perm=cfg["num_perm"], seed=cfg["hash_seed"]
)
neardedup.save_signatures(snakemake.output[0], signatures)
log.info("%d signatures", len(signatures.ids))
