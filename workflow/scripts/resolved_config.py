"""Rule resolved_config: write the run's configuration with every default filled in, as the rules see it."""

import yaml

from selfalign.rulekit import start_logging
from selfalign.shards import atomic_writer

log = start_logging(snakemake.log[0], "resolved_config")
with atomic_writer(snakemake.output[0]) as handle:
    handle.write("# The configuration this run uses: the given config file (or the demo) + the schema's defaults.\n")
    yaml.safe_dump(dict(snakemake.params.config), handle, sort_keys=True)
log.info("wrote %s", snakemake.output[0])
