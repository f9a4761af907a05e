"""Confining a sample from inside a sandbox: rlimits, the compiled syscall filter, peak memory, and the
time its processes waited for a CPU.

Standard library only: it runs where the workflow's package is not importable, as the pool's
supervisor's companion (bound next to it) and as a launcher script in front of a sample
(Apptainer, the process backend):

    python3 -I -B confine.py --limits '{"memory_mb": 512, ...}' --seccomp FILTER.bpf -- python3 main.py

which sets the limits, loads the filter (compiled on the host by ``seccomp.filter_bpf``) and executes
the command. A failure of its own is reported on stderr with a ``sandbox-confine:`` prefix and status
125, which the host reads as an infra-error.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import sys
from collections.abc import Mapping
from typing import Any

MIB = 1024 * 1024
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
SETUP_FAILED = 125


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def install_seccomp(bpf: bytes) -> None:
    """Load a compiled filter for this process and everything it starts; it cannot be removed."""
    size = ctypes.sizeof(_SockFilter)
    if not bpf or len(bpf) % size:
        raise OSError(f"not a compiled seccomp filter ({len(bpf)} bytes)")
    program = (_SockFilter * (len(bpf) // size)).from_buffer_copy(bpf)
    fprog = _SockFprog(len(program), ctypes.cast(program, ctypes.POINTER(_SockFilter)))
    libc = ctypes.CDLL(None, use_errno=True)
    # no_new_privs first: it lets an unprivileged process load a filter, and no setuid binary can drop it
    for args in ((PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), (PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0)):
        if libc.prctl(*args) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"prctl({args[0]}): {os.strerror(error)}")


def apply_limits(limits: Mapping[str, Any]) -> None:
    """The rlimits of ``sandbox.Limits`` (given as a dict) on this process."""
    cpu = int(limits["cpu_seconds"])
    for which, value in (
        (resource.RLIMIT_AS, limits["memory_mb"] * MIB),
        (resource.RLIMIT_CPU, (cpu, cpu + 1)),  # soft SIGXCPU (a "timeout"), hard SIGKILL backstop
        (resource.RLIMIT_NPROC, limits["processes"]),
        (resource.RLIMIT_FSIZE, limits["file_size_mb"] * MIB),
        (resource.RLIMIT_NOFILE, limits["open_files"]),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(which, value if isinstance(value, tuple) else (value, value))


def _tree(pid: int) -> list[int]:
    pids, pending = [], [pid]
    while pending:
        current = pending.pop()
        pids.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    pending += [int(child) for child in handle.read().split()]
        except OSError:
            continue  # gone meanwhile
    return pids


def cpu_wait_seconds(pid: int, elapsed: float) -> float:
    """How long other processes kept ``pid`` and its descendants (a sample, started ``elapsed`` seconds
    ago) from a CPU, read while they live; 0 where the kernel does not say.

    The time its threads spent runnable but waiting for a CPU (the scheduler's ``run_delay``,
    ``/proc/PID/task/TID/schedstat``), summed, as a sample's processes mostly run one after the other
    (bwrap, setpriv, python), but at most the time none of its processes ran (``elapsed`` less the CPU
    time they used, reaped children included): the waits of a sample whose own processes keep the
    CPUs busy (a fork bomb, a parallel computation) are its own doing.
    """
    waited, used = 0, 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    for process in _tree(pid):
        try:
            tasks = os.listdir(f"/proc/{process}/task")
            with open(f"/proc/{process}/stat", "rb") as handle:
                fields = handle.read().rpartition(b")")[2].split()
            used += (int(fields[13]) + int(fields[14])) / ticks  # cutime, cstime (fields 16, 17): reaped children
        except (OSError, ValueError, IndexError):
            continue
        for task in tasks:
            try:
                with open(f"/proc/{process}/task/{task}/schedstat") as handle:
                    running, delay = (int(value) for value in handle.read().split()[:2])
            except (OSError, ValueError):
                continue
            waited += delay
            used += running / 1e9
    return max(0.0, min(waited / 1e9, elapsed - used))


def peak_rss_mb(pid: int) -> float | None:
    """The largest peak resident size (VmHWM) among ``pid`` and its descendants, read while they live."""
    peaks = []
    for process in _tree(pid):
        try:
            with open(f"/proc/{process}/status") as handle:
                for line in handle:
                    if line.startswith("VmHWM:"):
                        peaks.append(int(line.split()[1]) / 1024)
                        break
        except (OSError, ValueError):
            continue
    return max(peaks) if peaks else None


def main() -> None:
    parser = argparse.ArgumentParser(description="set a sample's limits and syscall filter, then run it")
    parser.add_argument("--limits", required=True, help="sandbox.Limits as JSON")
    parser.add_argument("--seccomp", required=True, help="compiled filter (BPF) to load")
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()
    try:
        apply_limits(json.loads(args.limits))
        with open(args.seccomp, "rb") as handle:
            install_seccomp(handle.read())
        os.execvp(args.command[0], args.command)
    except (OSError, ValueError, KeyError) as err:
        sys.stderr.write(f"sandbox-confine: {err}\n")
        sys.stderr.flush()
        os._exit(SETUP_FAILED)


if __name__ == "__main__":
    main()
