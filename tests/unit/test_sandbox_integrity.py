"""What no sample may do on any backend: call the syscalls the filter blocks, find a trace of an earlier
sample, or have memory exhaustion read as anything but ``memory``. Real bubblewrap, real pool."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
from pathlib import Path

import pytest
import yaml

from selfalign.sandbox import ExecutionSettings, Limits, classify, make_sandbox, run_many
from selfalign.sandbox.seccomp import BLOCKED, syscall_numbers

REPO = Path(__file__).resolve().parents[2]
LIMITS = Limits(wall_seconds=20, cpu_seconds=10, memory_mb=2048, processes=32, tmp_mb=16, output_bytes=1 << 16)

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap missing: apt-get install bubblewrap")

BACKENDS = [
    pytest.param(("bubblewrap", "fork"), id="bubblewrap"),
    pytest.param(("pool", "fork"), id="pool-fork"),
    pytest.param(("pool", "exec"), id="pool-exec"),
    pytest.param(("process", "fork"), id="process"),
]


@pytest.fixture(params=BACKENDS)
def sandbox(request):
    backend, start = request.param
    if backend == "pool" and os.geteuid() != 0:
        pytest.skip("the sandbox pool needs root (a uid and namespaces per sample)")
    sandbox = make_sandbox(ExecutionSettings(backend=backend, pool_start=start))
    yield sandbox
    sandbox.close()


def test_blocked_syscalls_fail_with_eperm(sandbox):
    numbers = syscall_numbers()
    program = f"""
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
seen = {{}}
for name, number in {numbers!r}.items():
    ctypes.set_errno(0)
    result = libc.syscall(number, 0, 0, 0, 0, 0, 0)
    seen[name] = ctypes.get_errno() if result == -1 else "returned %d" % result
# clone3 is refused as unknown so that the C library falls back to clone, whose flags are checked
for name, number, flags in (("clone3", {syscall_numbers(("clone3",))["clone3"]}, 0),
                            ("clone with CLONE_NEWUSER", {syscall_numbers(("clone",))["clone"]}, 0x10000000 | 17)):
    ctypes.set_errno(0)
    result = libc.syscall(number, flags, 0, 0, 0, 0, 0)
    if result == 0:
        os._exit(0)  # a child was made after all: let the parent report it
    seen[name] = ctypes.get_errno() if result == -1 else "returned %d" % result
print(json.dumps(seen))
"""
    verdict = sandbox.run(program, LIMITS)
    assert verdict.status == "pass", verdict.stderr_tail
    seen = json.loads(verdict.stdout_tail)
    assert set(numbers) >= {"add_key", "keyctl", "request_key", "ptrace", "perf_event_open", "bpf", "userfaultfd",
                            "mount", "unshare", "setns", "init_module", "clock_settime"}
    assert {name: seen[name] for name in numbers} == dict.fromkeys(numbers, errno.EPERM)
    assert seen["clone3"] == errno.ENOSYS and seen["clone with CLONE_NEWUSER"] == errno.EPERM
    assert len(numbers) >= len(BLOCKED) - 2  # only a few names are missing on some architectures


def test_no_key_outlives_its_sample(sandbox):
    add_key = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
KEY_SPEC_USER_KEYRING = -4
serial = libc.syscall({add_key}, b"user", b"left-behind", b"secret", 6, KEY_SPEC_USER_KEYRING)
print(serial, ctypes.get_errno())
""".format(add_key=syscall_numbers(("add_key",))["add_key"])
    verdict = sandbox.run(add_key, LIMITS)
    assert verdict.stdout_tail.split() == ["-1", str(errno.EPERM)]


def test_ordinary_programs_still_run(sandbox):
    program = """
import multiprocessing, subprocess, sys, threading

results = []
threads = [threading.Thread(target=results.append, args=(i,)) for i in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
assert sorted(results) == [0, 1, 2, 3]

child = subprocess.run([sys.executable, "-c", "print(6 * 7)"], capture_output=True, text=True, check=True)
assert child.stdout == "42\\n", child

def square(x):
    return x * x

if __name__ == "__main__":
    with multiprocessing.get_context("fork").Pool(2) as pool:
        assert pool.map(square, range(5)) == [0, 1, 4, 9, 16]
    print("ok")
"""
    verdict = sandbox.run(program, LIMITS)
    assert (verdict.status, verdict.stdout_tail) == ("pass", "ok\n"), verdict.stderr_tail


# Sample A leaves a marker in its program and its output; sample B, in the same worker, looks for it in
# every frame it can walk up to, every object the collector knows and their referents, its /proc/self
# files and every writable page of its own memory (read before B builds the marker it looks for, so
# that its own copy is not found). The same search finds B's own marker: the search itself works.
MARKER = "c0ffee-previous-sample-7f3a9d"
EARLIER = f"secret = {MARKER!r}\nprint(secret * 3)\n"
SEARCH = """
import gc, json, os, sys

def memory_pages():
    pages = []
    with open("/proc/self/maps") as maps:
        regions = [line.split() for line in maps]
    with open("/proc/self/mem", "rb", buffering=0) as memory:
        for region in regions:
            start, end = (int(x, 16) for x in region[0].split("-"))
            if "w" not in region[1] or (len(region) > 5 and region[5] in ("[vvar]", "[vsyscall]")):
                continue
            try:
                memory.seek(start)
                pages.append(memory.read(end - start))
            except (OSError, OverflowError):
                continue
    return pages

pages = memory_pages()
own = "own-" + "marker-" + "1b2c3d"  # in B's program text, hence in its memory
found = {}
for label, hexed in (("earlier", %r), ("own", own.encode().hex())):
    needle = bytes.fromhex(hexed).decode()
    hits = []
    if label == "earlier":
        frame = sys._getframe()
        while frame is not None:
            for value in list(frame.f_locals.values()) + list(frame.f_globals.values()):
                if isinstance(value, (str, bytes)) and value is not needle and needle in str(value):
                    hits.append("frame " + frame.f_code.co_name)
            frame = frame.f_back
        for obj in gc.get_objects():
            for value in gc.get_referents(obj):
                if isinstance(value, (str, bytes)) and value is not needle and needle in str(value):
                    hits.append("object " + type(obj).__name__)
        for name in os.listdir("/proc/self"):
            try:
                with open("/proc/self/" + name, "rb") as handle:
                    if needle.encode() in handle.read(1 << 20):
                        hits.append("/proc/self/" + name)
            except OSError:
                pass
    hits += ["memory"] * sum(page.count(needle.encode()) for page in pages)
    found[label] = hits
print(json.dumps(found))
""" % (MARKER.encode().hex(),)


def test_a_sample_finds_nothing_of_the_sample_before_it(sandbox):
    earlier, search = run_many(sandbox, [EARLIER, SEARCH], LIMITS, workers=1)
    assert earlier.status == "pass" and MARKER in earlier.stdout_tail
    assert search.status == "pass", search.stderr_tail
    found = json.loads(search.stdout_tail)
    assert found["earlier"] == []
    assert "memory" in found["own"]
    if getattr(sandbox, "started", 1) != 1:
        pytest.fail("the two samples ran in different workers")


def test_slow_memory_exhaustion_near_the_wall_limit_is_memory(sandbox):
    # Up to 432 MiB (written, so resident) at once, then 8 MiB every half second: the program would pass
    # the 512 MiB limit about 5 s later, but the 3 s wall limit comes first. The old rule called it timeout.
    program = (
        "import time\nchunks = [b'x' * (8 << 20) for _ in range(54)]\n"
        "while True:\n    time.sleep(0.5)\n    chunks.append(b'x' * (8 << 20))\n"
    )
    verdict = sandbox.run(program, Limits(wall_seconds=3, cpu_seconds=10, memory_mb=512))
    assert (verdict.status, verdict.returncode) == ("memory", None), verdict
    hang = sandbox.run("import time\ntime.sleep(60)", Limits(wall_seconds=1, memory_mb=512))
    assert (hang.status, hang.returncode) == ("timeout", None)
    assert hang.peak_memory_mb is not None and hang.peak_memory_mb < 0.75 * 512


def test_classification_by_peak_memory():
    limits = Limits(memory_mb=1000, cpu_seconds=10)
    assert classify(None, "", 10.0, limits, peak_memory_mb=800) == "memory"  # killed at the wall, near the limit
    assert classify(None, "", 10.0, limits, peak_memory_mb=100) == "timeout"
    assert classify(128 + signal.SIGXCPU, "", 10.0, limits, peak_memory_mb=900) == "memory"
    assert classify(128 + signal.SIGKILL, "", 2.0, limits, peak_memory_mb=None) == "memory"
    # a SIGKILL after a long wall time (a loaded machine) but little CPU is not the CPU limit's
    assert classify(128 + signal.SIGKILL, "", 30.0, limits, cpu_seconds=0.5) == "memory"
    assert classify(128 + signal.SIGKILL, "", 30.0, limits, cpu_seconds=11.0) == "timeout"
    assert classify(1, "Traceback ...\nMemoryError\n", 1.0, limits) == "memory"
    # a program that ends by itself with another error is that error, however much memory it used
    assert classify(1, "AssertionError\n", 1.0, limits, peak_memory_mb=900) == "fail"


def test_settings_are_typed_once_from_the_config():
    execution = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["execution"]
    settings = ExecutionSettings.from_config(execution)
    assert settings.backend == execution["backend"] and settings.infra_retries == execution["infra_retries"]
    assert settings.limits == Limits(
        wall_seconds=execution["wall_seconds"], cpu_seconds=execution["cpu_seconds"],
        memory_mb=execution["memory_mb"], processes=execution["processes"],
    )
    with pytest.raises(ValueError, match=r"execution\.wall_second: unknown setting"):
        ExecutionSettings.from_config({**execution, "wall_second": 3})
    with pytest.raises(ValueError, match=r"execution\.pool_start"):
        ExecutionSettings.from_config({**execution, "pool_start": "spawn"})
