"""The sandbox pool: one long-lived sandbox runs sample after sample, and none leaks into the next.

The adversarial cases themselves run against the pool in test_sandbox.py (parametrized); here the
same worker is reused on purpose, so whatever a sample leaves behind would be seen by the next one.
"""

from __future__ import annotations

import json
import os
import shutil
import signal

import pytest

from selfalign.sandbox import ExecutionSettings, Limits, make_sandbox, run_many

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap missing: apt-get install bubblewrap")

LIMITS = Limits(wall_seconds=3, cpu_seconds=2, memory_mb=512, processes=16, tmp_mb=16, output_bytes=8192)

# What a sample can see of the sandbox it shares with earlier samples: files in the writable places,
# other processes, SysV IPC objects, its uid and its environment.
PROBE = """
import json, os
others = [p for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, os.getpid())]
with open("/proc/sysvipc/shm") as handle:
    segments = handle.read().splitlines()[1:]
print(json.dumps({"tmp": sorted(os.listdir("/tmp")), "shm": sorted(os.listdir("/dev/shm")), "others": others,
                  "segments": segments, "uid": os.getuid(), "env": sorted(os.environ)}))
"""

LEAVE_BEHIND = {
    "files": "open('/tmp/left', 'w').write('x')\nopen('/dev/shm/left', 'w').write('x')\nimport os\nos.mkdir('/tmp/dir')",
    "setsid daemon": (
        "import os, time\n"
        "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(60)\n    os._exit(0)\n"
        "os.wait()\n"
    ),
    "sysv segment": (
        "import ctypes\nlibc = ctypes.CDLL(None)\n"
        "assert libc.shmget(0, 4096, 0o1000 | 0o666) >= 0  # IPC_PRIVATE, IPC_CREAT\n"
    ),
    "fork bomb": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
    "endless output": "while True:\n    print('y' * 1000)",
    "environment": "import os\nos.environ['LEAK'] = '1'\nos.putenv('LEAK', '1')",
    "kill everything": "import os, signal\nfor target in (-1, 1, os.getppid()):\n    try:\n        os.kill(target, signal.SIGKILL)\n    except OSError:\n        pass",
    "segfault": "import ctypes\nctypes.string_at(0)",
}


def _tree(pid: int) -> list[int]:
    children = open(f"/proc/{pid}/task/{pid}/children").read().split()
    return [pid] + [descendant for child in children for descendant in _tree(int(child))]


@pytest.fixture()
def pool():
    if os.geteuid() != 0:
        pytest.skip("the sandbox pool needs root (a uid and namespaces per sample)")
    sandbox = make_sandbox(ExecutionSettings(backend="pool"))
    yield sandbox
    sandbox.close()


@pytest.mark.parametrize("case", sorted(LEAVE_BEHIND))
def test_next_sample_in_the_same_worker_starts_clean(pool, case):
    [baseline] = run_many(pool, [PROBE], LIMITS, workers=1)
    first, probe = run_many(pool, [LEAVE_BEHIND[case], PROBE], LIMITS, workers=1)
    assert pool.started == 1  # one worker ran all three: the probe really shared its sandbox
    assert probe.status == "pass", probe.stderr_tail
    seen, clean = json.loads(probe.stdout_tail), json.loads(baseline.stdout_tail)
    assert {k: v for k, v in seen.items() if k != "uid"} == {k: v for k, v in clean.items() if k != "uid"}
    assert seen["tmp"] == [] or all(name not in ("left", "dir") for name in seen["tmp"])
    assert seen["shm"] == [] and seen["others"] == [] and seen["segments"] == []
    assert seen["uid"] != 0 and first.status != "infra-error"


def test_uid_differs_between_concurrent_samples(pool):
    verdicts = run_many(pool, ["import os, time\ntime.sleep(0.5)\nprint(os.getuid())"] * 4, LIMITS, workers=4)
    assert len({v.stdout_tail for v in verdicts}) == 4


def test_traceback_reads_as_from_a_fresh_interpreter(pool):
    bubblewrap = make_sandbox(ExecutionSettings(backend="bubblewrap"))
    program = "def f(n):\n    return f(n - 1) if n else 1 / 0\n\nf(3)\n"
    assert pool.run(program, LIMITS).stderr_tail == bubblewrap.run(program, LIMITS).stderr_tail


def test_exit_statuses_match_a_fresh_interpreter(pool):
    bubblewrap = make_sandbox(ExecutionSettings(backend="bubblewrap"))
    programs = [
        "import sys\nsys.exit(3)",
        "import sys\nsys.exit('message')",
        "raise SystemExit",
        "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)",
        "import atexit\natexit.register(lambda: print('bye'))\nprint('hi')",
        "import threading, time\nthreading.Thread(target=lambda: (time.sleep(0.2), print('late'))).start()",
        "import sys\nsys.stdout.write('no newline')",
        "print(__name__, __file__)",
    ]
    for program in programs:
        ours, theirs = pool.run(program, LIMITS), bubblewrap.run(program, LIMITS)
        assert (ours.status, ours.returncode, ours.stdout_tail, ours.stderr_tail) == (
            theirs.status, theirs.returncode, theirs.stdout_tail, theirs.stderr_tail
        ), program


def test_a_dead_worker_is_an_infra_error_then_replaced(pool):
    assert pool.run("print(1)", LIMITS).status == "pass"
    [worker] = pool.idle
    for pid in _tree(worker.proc.pid):  # the sandbox dies between two samples
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # already gone with its parent
    [verdict] = run_many(pool, ["print(2)"], LIMITS, workers=1, infra_retries=1)
    assert (verdict.status, verdict.attempts, verdict.stdout_tail) == ("pass", 2, "2\n")
    assert pool.started == 2


def test_a_changed_tmp_size_starts_a_matching_worker(pool):
    fill = "open('/tmp/f', 'wb').write(bytes(12 << 20))"
    assert pool.run(fill, LIMITS).status == "pass"  # 16 MiB /tmp
    small = Limits(wall_seconds=3, tmp_mb=8)
    verdict = pool.run(fill, small)
    assert verdict.status == "fail" and "No space left" in verdict.stderr_tail


def test_without_root_the_pool_falls_back_to_one_sandbox_per_sample(monkeypatch, caplog):
    from selfalign.sandbox import BubblewrapSandbox

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with caplog.at_level("WARNING"):
        sandbox = make_sandbox(ExecutionSettings(backend="pool"))
    assert isinstance(sandbox, BubblewrapSandbox)
    assert "needs root" in caplog.text
