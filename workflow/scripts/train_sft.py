"""Rule train_sft: fine-tune the base model on the SFT set through the DeepSpeed launcher.

One rank per GPU of the job; on a CPU-only machine `sft.ranks` ranks over gloo.
"""

import os

from selfalign.launch import free_port, launch_command, launch_env, run_launch
from selfalign.rulekit import start_logging

log = start_logging(snakemake.log[0], "train_sft")
cfg = dict(snakemake.params.sft)
gpus = snakemake.params.gpus
ranks = gpus if gpus > 0 else cfg["ranks"]
output = snakemake.output[0]
sft_args = [
    "--model", snakemake.input.model,
    "--data", snakemake.input.data,
    "--output", output,
    "--checkpoint-dir", output.rstrip("/") + ".checkpoints",
    "--zero-stage", str(cfg["zero_stage"]),
    "--epochs", str(cfg["epochs"]),
    "--lr", str(cfg["learning_rate"]),
    "--target-batch", str(cfg["target_batch"]),
    "--per-device-batch", str(cfg["per_device_batch"]),
    "--max-length", str(cfg["max_length"]),
    "--seed", str(cfg["seed"]),
    "--save-steps", str(cfg["save_steps"]),
]
# On a GPU node the ranks go to the devices Slurm gave the job.
visible = os.environ.get("CUDA_VISIBLE_DEVICES") if gpus > 0 else None
command = launch_command(ranks=ranks, master_port=free_port(), sft_args=sft_args, visible_devices=visible)
log.info("launching %d rank(s): %s", ranks, " ".join(command))
run_launch(command, env=launch_env(ranks), log_path=snakemake.log[0])
