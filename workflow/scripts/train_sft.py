"""Rule train_sft: fine-tune the base model on the SFT set through the DeepSpeed launcher.

One rank per GPU of the job; on a CPU-only machine `sft.ranks` ranks over gloo.
"""

import os

from selfalign.launch import free_port, launch_command, launch_env, run_launch, sft_arguments
from selfalign.rulekit import start_logging

log = start_logging(snakemake.log[0], "train_sft")
cfg = dict(snakemake.params.sft)
# the job's own GPU request (config resources.sft_gpus, or a profile's set-resources), not a second setting
gpus = int(getattr(snakemake.resources, "gpu", 0) or 0)
ranks = gpus if gpus > 0 else cfg["ranks"]
output = snakemake.output[0]
sft_args = sft_arguments(cfg, snakemake.input.model, snakemake.input.data, output, gpus=gpus)
# On a GPU node the ranks go to the devices Slurm gave the job.
visible = os.environ.get("CUDA_VISIBLE_DEVICES") if gpus > 0 else None
command = launch_command(ranks=ranks, master_port=free_port(), sft_args=sft_args, visible_devices=visible)
log.info("launching %d rank(s): %s", ranks, " ".join(command))
run_launch(command, env=launch_env(ranks), log_path=snakemake.log[0])
