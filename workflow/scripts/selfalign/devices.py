"""Fail fast when a GPU job sees no GPU.

A conda env solved on a login node without a driver can hold a CPU-only PyTorch; a job then sees no GPU
and, left alone, would run for its whole time limit on the CPU. ``require_gpus`` stops it at once and
says why: the rule, the job's ``CUDA_VISIBLE_DEVICES`` and the torch build.
"""

from __future__ import annotations

import logging
import os


class NoGPUError(RuntimeError):
    """The job was given GPUs but torch sees fewer."""


def torch_build() -> str:
    """``torch 2.x (CUDA 12.6)`` or ``torch 2.x (CPU-only build)``."""
    import torch

    cuda = torch.version.cuda
    return f"torch {torch.__version__} ({'CUDA ' + cuda if cuda else 'CPU-only build'})"


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


# Only for a Slurm test cluster with fake GPUs (GRES device files, no driver): GPU jobs run on the CPU.
ALLOW_NO_GPU = "SELFALIGN_ALLOW_NO_GPU"


def require_gpus(rule: str, expected: int) -> int:
    """Raise ``NoGPUError`` when ``expected`` > 0 GPUs were given to the job but torch sees fewer;
    return the count torch sees. ``expected`` 0 (a CPU run) checks nothing."""
    if expected <= 0:
        return visible_gpus()
    seen = visible_gpus()
    if seen >= expected:
        return seen
    if os.environ.get(ALLOW_NO_GPU) == "1":  # a test cluster whose GPUs are device files without a driver
        logging.getLogger(__name__).warning("%s: %d GPU(s) given, %d seen; running on CPU (%s=1)", rule, expected, seen, ALLOW_NO_GPU)
        return seen
    import torch

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    hint = (
        "the env holds a CPU-only PyTorch: recreate it with the CUDA build (on a login node without a GPU: "
        "CONDA_OVERRIDE_CUDA=12.6 snakemake ... --conda-create-envs-only)"
        if torch.version.cuda is None
        else "check the job's GPU request (resources gpu / --gpus) and that the node's driver works (nvidia-smi)"
    )
    raise NoGPUError(
        f"{rule}: the job was given {expected} GPU(s) but sees {seen} "
        f"(CUDA_VISIBLE_DEVICES={visible if visible is not None else '<unset>'}, {torch_build()}); {hint}"
    )
