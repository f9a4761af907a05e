"""Build and run the ``deepspeed`` launcher command that starts one ``selfalign.sft`` process per rank.

Single node (what the workflow does): ``deepspeed --num_gpus N --master_port P --module selfalign.sft
ARGS``. On a GPU node N is the job's GPU count; when ``CUDA_VISIBLE_DEVICES`` is set (Slurm sets it),
pass it as ``visible_devices`` so the launcher uses ``--include localhost:IDS``: with ``--num_gpus``
DeepSpeed ignores that variable and takes GPUs 0..N-1, which on a shared node belong to someone else.
On a CPU machine ``--num_gpus N`` gives N ranks over gloo (without it, one rank).

Multi-node (not wired into the workflow): write a hostfile with one ``HOST slots=GPUS`` line per node
(on Slurm: ``scontrol show hostnames "$SLURM_JOB_NODELIST"``) and run, from the first node,
``deepspeed --hostfile HOSTFILE --num_nodes M --num_gpus G --master_addr FIRST_HOST --master_port P
--module selfalign.sft ARGS``. The launcher reaches the other nodes over passwordless ssh (pdsh) and
exports the variables listed in ``~/.deepspeed_env``, so put ``PYTHONPATH`` (with ``workflow/scripts/``) and
``OMP_NUM_THREADS`` there; the target batch then spans M x G ranks. Without ssh between nodes, use
``srun`` with ``torchrun --nnodes M --nproc_per_node G --rdzv_backend c10d --rdzv_endpoint
FIRST_HOST:P -m selfalign.sft ARGS`` instead; ``selfalign.sft`` reads its rank from the environment
either way.

``--module`` rather than the path of ``sft.py``: running a file puts its directory first on
``sys.path``, so a library module named like a stdlib one (``select``, ``types``) would shadow it.
"""

from __future__ import annotations

import argparse
import collections
import os
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from .lifetime import guarded

SCRIPTS_DIR = Path(__file__).resolve().parents[1]
SFT_MODULE = "selfalign.sft"
LOG_TAIL_LINES = 60


class LaunchError(RuntimeError):
    """The launcher exited non-zero; the message carries the log path and its last lines."""


def deepspeed_executable() -> Path:
    """The ``deepspeed`` console script of the running interpreter's environment (not whatever is on PATH)."""
    path = Path(sys.executable).parent / "deepspeed"
    if not path.is_file():
        raise FileNotFoundError(f"no deepspeed launcher next to {sys.executable}; install deepspeed there")
    return path


def launch_command(
    ranks: int, master_port: int, sft_args: Sequence[str], visible_devices: str | None = None
) -> list[str]:
    """``deepspeed`` command for ``ranks`` local ranks running ``selfalign.sft`` with ``sft_args``."""
    if ranks < 1:
        raise ValueError(f"ranks must be >= 1, got {ranks}")
    devices = [device for device in (visible_devices or "").split(",") if device.strip()]
    if devices and len(devices) != ranks:
        raise ValueError(f"{ranks} ranks requested but {len(devices)} visible devices ({visible_devices})")
    placement = ["--include", "localhost:" + ",".join(devices)] if devices else ["--num_gpus", str(ranks)]
    return [
        str(deepspeed_executable()),
        *placement,
        "--master_port", str(master_port),
        "--no_local_rank",  # ranks read LOCAL_RANK from the environment; sft's CLI has no --local_rank
        "--module", SFT_MODULE,
        *sft_args,
    ]


def sft_arguments(cfg: Mapping[str, object], model: str, data: str, output: str, gpus: int = 0) -> list[str]:
    """``selfalign.sft`` arguments for the ``sft`` config section, one base model, one data set, one output;
    ``gpus``, the job's GPU count, makes every rank fail at once if it sees fewer."""
    flags = [
        flag
        for key, flag in (("gradient_checkpointing", "--gradient-checkpointing"), ("offload_optimizer", "--offload-optimizer"))
        if cfg.get(key)
    ]
    return [
        "--model", model,
        "--data", data,
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
        "--loss-weighting", str(cfg.get("loss_weighting", "example")),
        "--expect-gpus", str(gpus),
        *flags,
    ]


def planned_command(gpus: int, cpu_ranks: int, sft_args: Sequence[str]) -> str:
    """The launcher command a job will run, for dry runs: the port and the GPU ids are only known inside the job
    (a free port; Slurm's ``CUDA_VISIBLE_DEVICES``), so they appear as placeholders."""
    placement = f"--include localhost:<{gpus} ids from CUDA_VISIBLE_DEVICES>" if gpus > 0 else f"--num_gpus {cpu_ranks}"
    return " ".join(
        ["deepspeed", placement, "--master_port <free port>", "--no_local_rank", "--module", SFT_MODULE, *sft_args]
    )


def available_cpus() -> int:
    """CPUs this process may run on (Slurm's cgroup/affinity limit, not the node's total)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def launch_env(ranks: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for the launcher: ``workflow/scripts/`` on PYTHONPATH and the CPUs split between ranks
    (otherwise each rank starts one thread per CPU and 2 ranks on 2 cores thrash)."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SCRIPTS_DIR), env.get("PYTHONPATH", "")]))
    env["OMP_NUM_THREADS"] = str(max(1, available_cpus() // ranks))
    env["TOKENIZERS_PARALLELISM"] = "false"  # tokenizers' own thread pool would oversubscribe too
    return env


def free_port() -> int:
    """A TCP port free right now, for the rendezvous (two jobs on one node must not share one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_launch(cmd: Sequence[str], env: Mapping[str, str], log_path: str | os.PathLike[str]) -> None:
    """Run the launcher, streaming its output (all ranks, stdout and stderr) into ``log_path``."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
    with open(log_path, "a", encoding="utf-8") as log:  # the rule script logs to the same file
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        # Under the guardian: the runner, its launcher and every rank die with this job, also when only
        # this process is killed (the launcher forwards no signal to the ranks then).
        with subprocess.Popen(
            guarded(cmd), env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            errors="replace", bufsize=1,
        ) as process:
            assert process.stdout is not None
            for line in process.stdout:
                log.write(line)
                log.flush()  # a job watched with tail -f, or killed, still shows its last lines
                tail.append(line)
        if process.returncode != 0:
            raise LaunchError(
                f"deepspeed exited with {process.returncode}; log: {log_path}; last lines:\n" + "".join(tail)
            )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m selfalign.launch", description="Run selfalign.sft on N local ranks via deepspeed.",
        usage="%(prog)s --ranks N --log LOG [--master-port P] -- SFT_ARGS...",
    )
    parser.add_argument("--ranks", type=int, required=True, help="GPUs of the job, or CPU ranks")
    parser.add_argument("--log", required=True, help="file that receives the output of all ranks")
    parser.add_argument("--master-port", type=int, default=None, help="default: a free port")
    parser.add_argument("sft_args", nargs=argparse.REMAINDER, help="arguments of selfalign.sft, after --")
    options = parser.parse_args(argv)
    sft_args = options.sft_args[1:] if options.sft_args[:1] == ["--"] else options.sft_args
    cmd = launch_command(
        options.ranks, options.master_port or free_port(), sft_args, os.environ.get("CUDA_VISIBLE_DEVICES")
    )
    run_launch(cmd, launch_env(options.ranks), options.log)


if __name__ == "__main__":
    main()
