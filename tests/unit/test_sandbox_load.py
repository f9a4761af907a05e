"""The sandbox's verdicts on a loaded machine, against real bubblewrap: time a sample waits for a CPU
held by other processes does not count against its wall limit, so a load never turns a passing sample
into a "timeout"; a sample starved past the stretch is an infra-error, not a verdict."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from selfalign.sandbox import ExecutionSettings, Limits, make_sandbox
from selfalign.sandbox.core import MAX_WALL_STRETCH, STARVED

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap missing: apt-get install bubblewrap")



def cpu_bound(seconds: float) -> str:
    """A sample that needs ``seconds`` of CPU time, whatever the load, then passes."""
    return f"import time\nwhile time.process_time() < {seconds}:\n    pass\nprint('done')"


@contextmanager
def sharing_one_cpu(hogs: int) -> Iterator[None]:
    """This thread, and every process it starts, on one CPU with ``hogs`` busy loops: a sample started
    here gets at most 1 / (hogs + 1) of a CPU."""
    cpu = min(os.sched_getaffinity(0))
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    # Each in a session of its own: with autogroup scheduling a session shares a CPU as one process would.
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True) for _ in range(hogs)]
    try:
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()
        os.sched_setaffinity(0, previous)


@pytest.fixture(params=["bubblewrap", "pool"])
def backend(request) -> str:
    if request.param == "pool" and os.geteuid() != 0:
        pytest.skip("the sandbox pool needs root (a uid and namespaces per sample)")
    return request.param


def _run(backend: str, program: str, limits: Limits):
    # Made inside the pinned context: the pool's long-lived workers take the CPU of the thread that starts them.
    sandbox = make_sandbox(ExecutionSettings(backend=backend))
    try:
        return sandbox.run(program, limits)
    finally:
        sandbox.close()


def test_a_sample_slowed_by_load_passes_past_its_wall_limit(backend):
    limits = Limits(wall_seconds=3, cpu_seconds=10, memory_mb=512)
    with sharing_one_cpu(hogs=3):  # 1 CPU second takes at least 4 s of wall time here
        verdict = _run(backend, cpu_bound(1.0), limits)
    assert (verdict.status, verdict.stdout_tail) == ("pass", "done\n"), verdict.stderr_tail
    assert limits.wall_seconds < verdict.seconds < limits.wall_seconds * MAX_WALL_STRETCH


def test_a_sample_starved_past_the_stretch_is_an_infra_error_not_a_timeout(backend):
    # It would pass within its wall limit on an idle machine; here it gets at most a tenth of a CPU.
    limits = Limits(wall_seconds=1, cpu_seconds=10, memory_mb=512)
    with sharing_one_cpu(hogs=9):  # at least 5 s of wall time: more than the 4 s the stretch allows
        verdict = _run(backend, cpu_bound(0.5), limits)
    assert verdict.status == "infra-error"
    assert verdict.stderr_tail.startswith(f"{STARVED}: stopped after "), verdict.stderr_tail


def test_a_sleeping_sample_still_times_out_at_its_wall_limit_under_load(backend):
    limits = Limits(wall_seconds=1, cpu_seconds=10, memory_mb=512)
    with sharing_one_cpu(hogs=3):
        verdict = _run(backend, "import time\ntime.sleep(60)", limits)
    assert (verdict.status, verdict.returncode) == ("timeout", None)
    assert verdict.seconds < limits.wall_seconds * MAX_WALL_STRETCH


def test_a_sample_past_the_cpu_hard_limit_is_a_timeout_under_load(backend):
    limits = Limits(wall_seconds=30, cpu_seconds=1, memory_mb=512)
    ignores_xcpu = "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n    pass"
    with sharing_one_cpu(hogs=1):
        verdict = _run(backend, ignores_xcpu, limits)
    assert (verdict.status, verdict.returncode) == ("timeout", 128 + signal.SIGKILL), verdict.stderr_tail


def test_the_pool_tells_a_sigkill_apart_by_cpu_time_not_wall_time():
    # SIGKILL comes from the CPU hard limit or from the OOM killer; in the pool, whose supervisor knows
    # the sample's CPU time, the wall time (which load stretches) does not decide which. A sample killed
    # after sleeping past its CPU limit used no CPU: not a timeout. (bubblewrap per sample still goes by
    # the wall time: its outer process does not wait for the sample, so the kernel does not count it.)
    if os.geteuid() != 0:
        pytest.skip("the sandbox pool needs root (a uid and namespaces per sample)")
    limits = Limits(wall_seconds=30, cpu_seconds=1, memory_mb=512)
    sleeper = "import os, signal, time\ntime.sleep(2)\nos.kill(os.getpid(), signal.SIGKILL)"
    verdict = _run("pool", sleeper, limits)
    assert verdict.returncode == 128 + signal.SIGKILL and verdict.seconds >= limits.cpu_seconds
    assert verdict.status != "timeout"
