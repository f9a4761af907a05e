"""The sandbox interface: limits, verdicts, the Protocol every backend implements, and the one place
where an ending becomes a verdict class."""

from __future__ import annotations

import re
import signal
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, Protocol

Status = Literal["pass", "fail", "timeout", "memory", "infra-error"]

MIB = 1024 * 1024
# Launcher tools print errors prefixed with their own name; seeing one first means the sandbox, not
# the program, failed.
LAUNCHER_PREFIXES = ("bwrap:", "setpriv:", "prlimit:", "sandbox-pool:", "sandbox-confine:")
MEMORY_ERROR = re.compile(r"^MemoryError\b", re.MULTILINE)
# A sample stopped by a limit (wall, CPU, a kill) whose peak resident memory reached this share of its
# address-space limit was exhausting memory: filling a few GiB can take about as long as the wall limit,
# and which limit fires first is then a matter of machine speed, not of what the program did.
MEMORY_NEAR_LIMIT = 0.75


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 10.0
    cpu_seconds: int = 10
    memory_mb: int = 4096  # address space (RLIMIT_AS)
    processes: int = 64  # RLIMIT_NPROC, counted per uid
    file_size_mb: int = 64
    tmp_mb: int = 128  # the private /tmp is RAM, not counted by RLIMIT_AS, so it needs its own cap
    open_files: int = 256
    output_bytes: int = 65536  # kept per stream (the tail); the rest is read and discarded

    @classmethod
    def from_config(cls, execution: Mapping[str, Any]) -> Limits:
        """The limits named in the ``execution`` config section; its other keys are not limits."""
        names = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in execution.items() if key in names})


@dataclass(frozen=True)
class Verdict:
    status: Status
    returncode: int | None  # None when the program never started or was killed by the wall timer
    stdout_tail: str
    stderr_tail: str
    seconds: float
    attempts: int = 1
    peak_memory_mb: float | None = None  # peak resident memory of the sample's largest process, if known


# The wall limit counts the time a sample ran or slept, not the time it waited for a CPU held by other
# processes: at the limit its deadline moves on by that wait (``confine.cpu_wait_seconds``: the waits
# of its threads, at most the time none of its processes ran), up to this many times the limit. A
# sample still running then, having had less than its wall time to itself, was starved by the
# machine's load: an infra-error (retried), never a "timeout" that a less busy machine would not give.
MAX_WALL_STRETCH = 4.0
STARVED = "sandbox: starved"  # how an infra-error from a starved sample begins


def wall_deadline(start: float, limits: Limits, waited: float) -> float:
    """The wall deadline (``time.monotonic`` clock) of a sample started at ``start`` whose threads
    waited at most ``waited`` seconds for a CPU."""
    return start + min(limits.wall_seconds + waited, limits.wall_seconds * MAX_WALL_STRETCH)


def starved(limits: Limits, seconds: float, waited: float) -> bool:
    """Whether a sample stopped at ``seconds`` by the wall timer got less than its wall time to itself."""
    return seconds - waited < limits.wall_seconds


def starved_verdict(stdout: str, stderr: str, seconds: float, waited: float, limits: Limits, peak: float | None) -> Verdict:
    message = (
        f"{STARVED}: stopped after {seconds:.1f} s, {waited:.1f} s of them waiting for a CPU; "
        f"the wall limit is {limits.wall_seconds:g} s of the sample's own time (the machine is overloaded)\n"
    )
    return Verdict("infra-error", None, stdout, message + stderr, seconds, peak_memory_mb=peak)


class Sandbox(Protocol):
    name: str

    def run(self, program: str, limits: Limits) -> Verdict: ...

    def versions(self) -> dict[str, str]: ...

    def close(self) -> None:
        """Release what the backend holds between samples (long-lived sandboxes, files)."""
        ...


def _near_memory_limit(peak_memory_mb: float | None, limits: Limits) -> bool:
    return peak_memory_mb is not None and peak_memory_mb >= MEMORY_NEAR_LIMIT * limits.memory_mb


def classify(
    returncode: int | None,
    stderr: str,
    seconds: float,
    limits: Limits,
    peak_memory_mb: float | None = None,
    cpu_seconds: float | None = None,
) -> Status:
    """The class of a program's ending: ``returncode`` in shell convention (128 + signal), None when the
    wall timer killed it; ``cpu_seconds``: the CPU time its processes used, where known (else the wall
    time ``seconds`` stands in for it)."""
    if returncode == 0:
        return "pass"
    stopped_by_limit = returncode is None or returncode in (128 + signal.SIGXCPU, 128 + signal.SIGKILL)
    if stopped_by_limit and _near_memory_limit(peak_memory_mb, limits):
        return "memory"
    if returncode is None or returncode == 128 + signal.SIGXCPU:
        return "timeout"
    if MEMORY_ERROR.search(stderr):
        return "memory"
    if returncode == 128 + signal.SIGKILL:
        # Nothing but the CPU hard limit (after an ignored SIGXCPU) or the OOM killer sends SIGKILL here;
        # CPU time tells them apart whatever the load (wall time grows with it).
        used = seconds if cpu_seconds is None else cpu_seconds
        return "timeout" if used >= limits.cpu_seconds else "memory"
    return "fail"


def verdict_of(
    returncode: int | None,
    stdout: str,
    stderr: str,
    seconds: float,
    limits: Limits,
    peak_memory_mb: float | None = None,
    launcher_prefixes: tuple[str, ...] = LAUNCHER_PREFIXES,
    cpu_seconds: float | None = None,
) -> Verdict:
    """The verdict of a program's ending (see ``classify``); every backend uses it."""
    if returncode not in (0, None) and stderr.startswith(launcher_prefixes):
        return Verdict("infra-error", returncode, stdout, stderr, seconds, peak_memory_mb=peak_memory_mb)
    status = classify(returncode, stderr, seconds, limits, peak_memory_mb, cpu_seconds)
    return Verdict(status, returncode, stdout, stderr, seconds, peak_memory_mb=peak_memory_mb)
