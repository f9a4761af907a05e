"""The sandbox against real bubblewrap: outcomes, isolation, limits and parallel runs."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytest

from selfalign.sandbox import ExecutionSettings, Limits, make_sandbox, run_many

REPO = Path(__file__).resolve().parents[2]
FAST = Limits(wall_seconds=5, cpu_seconds=2, memory_mb=512, processes=16, tmp_mb=16, output_bytes=4096)
CPU_BOUND = Limits(wall_seconds=30, cpu_seconds=1)

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap missing: apt-get install bubblewrap")


# Every safe backend that runs here faces the same tests: one fresh bubblewrap sandbox per sample, and
# the pool of long-lived sandboxes in both start modes (the pool needs root: the tests then skip it).
BACKENDS = [
    pytest.param(("bubblewrap", "fork"), id="bubblewrap"),
    pytest.param(("pool", "fork"), id="pool-fork"),
    pytest.param(("pool", "exec"), id="pool-exec"),
]


@pytest.fixture(scope="module", params=BACKENDS)
def sandbox(request):
    backend, start = request.param
    if backend == "pool" and os.geteuid() != 0:
        pytest.skip("the sandbox pool needs root (a uid and namespaces per sample)")
    sandbox = make_sandbox(ExecutionSettings(backend=backend, pool_start=start))
    yield sandbox
    if hasattr(sandbox, "close"):
        sandbox.close()


def test_passing_program(sandbox):
    verdict = sandbox.run("print('hello')", FAST)
    assert (verdict.status, verdict.returncode, verdict.stdout_tail) == ("pass", 0, "hello\n")


@pytest.mark.parametrize("program", ["assert 1 + 1 == 3", "def broken(:\n    pass", "raise SystemExit(3)"])
def test_failing_programs(sandbox, program):
    verdict = sandbox.run(program, FAST)
    assert verdict.status == "fail"
    assert verdict.returncode not in (0, None)


def test_error_output_is_captured(sandbox):
    verdict = sandbox.run("assert 1 + 1 == 3, 'arithmetic'", FAST)
    assert "AssertionError: arithmetic" in verdict.stderr_tail


def test_recursive_solution_passes(sandbox):
    # Correct recursive code and helper calls must pass (exec() inside a function would break them).
    program = (
        "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n\n"
        "def fibs(k):\n    return [fib(i) for i in range(k)]\n\n"
        "assert fibs(8) == [0, 1, 1, 2, 3, 5, 8, 13]\n"
    )
    assert sandbox.run(program, FAST).status == "pass"


def test_busy_loop_hits_cpu_limit(sandbox):
    # A generous wall limit: other jobs on the machine slow how fast CPU seconds accrue.
    verdict = sandbox.run("while True:\n    pass", CPU_BOUND)
    assert (verdict.status, verdict.returncode) == ("timeout", 128 + signal.SIGXCPU)


def test_sleep_hits_wall_limit(sandbox):
    verdict = sandbox.run("import time\ntime.sleep(60)", Limits(wall_seconds=1))
    assert (verdict.status, verdict.returncode) == ("timeout", None)
    assert verdict.seconds < 3


def test_memory_bomb(sandbox):
    verdict = sandbox.run("chunks = []\nwhile True:\n    chunks.append(bytearray(64 * 1024 * 1024))", FAST)
    assert verdict.status == "memory"


def test_a_large_job_process_does_not_make_a_cpu_timeout_a_memory_verdict(sandbox):
    """A scoring job may hold a model: its sandbox's children start with the job's size in the kernel's
    peak-memory count (kept across exec), which must not read as the sample's."""
    held = bytearray(600 * 1024 * 1024)
    for offset in range(0, len(held), 4096):
        held[offset] = 1  # resident, as a loaded model is
    ignores_xcpu = "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n    pass"
    verdict = sandbox.run(ignores_xcpu, Limits(wall_seconds=30, cpu_seconds=1, memory_mb=512))
    assert (verdict.status, verdict.returncode) == ("timeout", 128 + signal.SIGKILL), verdict
    assert sandbox.run("chunks = []\nwhile True:\n    chunks.append(bytearray(64 * 1024 * 1024))", FAST).status == "memory"
    del held


def test_endless_output_is_capped(sandbox):
    verdict = sandbox.run("while True:\n    print('y' * 1000)", Limits(wall_seconds=1, output_bytes=2048))
    assert verdict.status == "timeout"
    assert len(verdict.stdout_tail) == 2048


def test_network_is_unreachable(sandbox):
    with socket.socket() as server:  # a host loopback service the sandbox must not reach
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        program = f"""
import socket
import sys
for address in [("127.0.0.1", {port}), ("1.1.1.1", 53)]:
    try:
        socket.create_connection(address, timeout=2).close()
        print("connected", address)
    except OSError:
        print("blocked")
"""
        verdict = sandbox.run(program, FAST)
    assert verdict.stdout_tail.split() == ["blocked", "blocked"]


def test_writes_only_to_private_tmp(sandbox):
    targets = ["/tmp/ok.txt", "/evil", "/usr/evil", "/sandbox/main.py", os.path.join(os.path.realpath(sys.prefix), "evil")]
    program = f"""
for path in {targets!r}:
    try:
        with open(path, "w") as handle:
            handle.write("x")
        print("wrote", path)
    except OSError:
        print("blocked", path)
"""
    lines = sandbox.run(program, FAST).stdout_tail.splitlines()
    assert lines == [f"wrote {targets[0]}"] + [f"blocked {path}" for path in targets[1:]]


def test_tmp_is_size_capped(sandbox):
    program = """
with open("/tmp/fill", "wb") as handle:
    for _ in range(64):
        handle.write(bytes(1024 * 1024))
"""
    verdict = sandbox.run(program, Limits(tmp_mb=8, file_size_mb=64))
    assert verdict.status == "fail"
    assert "No space left" in verdict.stderr_tail


def test_host_files_are_hidden(sandbox):
    home = Path.home()
    hidden = [REPO / "workflow" / "scripts", REPO / "tests", "/etc/passwd", "/var", "/sys"]
    hidden += [home / name for name in sorted(os.listdir(home)) if name != ".pyenv"][:5]
    program = f"import os\nprint([p for p in {[str(p) for p in hidden]!r} if os.path.exists(p)])"
    verdict = sandbox.run(program, FAST)
    assert (verdict.status, verdict.stdout_tail) == ("pass", "[]\n")


def test_environment_is_not_inherited(sandbox, monkeypatch):
    monkeypatch.setenv("SELFALIGN_TEST_SECRET", "hunter2")
    verdict = sandbox.run("import json, os\nprint(json.dumps(dict(os.environ)))", FAST)
    environment = json.loads(verdict.stdout_tail)
    assert "SELFALIGN_TEST_SECRET" not in environment
    assert set(environment) <= {"PATH", "HOME", "LANG", "PWD", "LC_CTYPE"}


def test_runs_as_unprivileged_user(sandbox):
    verdict = sandbox.run("import os\nprint(os.getuid())", FAST)
    assert int(verdict.stdout_tail) != 0


def test_process_limit_holds(sandbox):
    program = """
import os, time
children = 0
try:
    for _ in range(200):
        if os.fork() == 0:
            time.sleep(1)
            os._exit(0)
        children += 1
except OSError:
    pass
print(children)
"""
    verdict = sandbox.run(program, FAST)
    assert int(verdict.stdout_tail) < FAST.processes


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop the bomb to its own uid")
def test_fork_bomb_is_contained_and_reaped(sandbox):
    program = "import os\nprint(os.getuid(), flush=True)\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    verdict = sandbox.run(program, Limits(wall_seconds=2, processes=32))
    assert verdict.status == "timeout"
    # Scoped to the bomb's own uid: other test runs on the machine may have sandboxes of their own.
    _assert_no_stray_processes(int(verdict.stdout_tail.split()[0]))


# Adversarial programs: each must get its own verdict and leave the host and the next sample untouched.

NEXT_SAMPLE = "print('next')"


def _stray_processes(sample_uid: int) -> list[str]:
    """Host processes a sample left behind: any of its own uid (as root each sample has one), or, where
    that uid is ours, any python still running main.py. Scoped to the sample so parallel runs don't count."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            uid = int(next(line for line in (entry / "status").read_text().splitlines() if line.startswith("Uid:")).split()[1])
            running_main = b"/sandbox/main.py" in (entry / "cmdline").read_bytes()
        except (OSError, StopIteration, ValueError):
            continue
        if uid == sample_uid and (uid != os.getuid() or running_main):
            found.append(entry.name)
    return found


def _assert_no_stray_processes(sample_uid: int, grace_seconds: float = 2.0) -> None:
    deadline = time.monotonic() + grace_seconds
    while (stray := _stray_processes(sample_uid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stray == []


def test_segfault_is_a_failure_not_an_infra_error(sandbox):
    # A crash of the interpreter itself is the program's fault: it must not be retried as infra-error.
    verdicts = run_many(sandbox, ["import ctypes\nctypes.string_at(0)", NEXT_SAMPLE], FAST, workers=1)
    assert [(v.status, v.attempts) for v in verdicts] == [("fail", 1), ("pass", 1)]
    assert verdicts[0].returncode == 128 + signal.SIGSEGV
    assert verdicts[1].stdout_tail == "next\n"


def test_killing_the_parent_init_and_own_group_is_contained(sandbox):
    program = """
import os, signal, time
print("uid", os.getuid(), flush=True)
for target in (os.getppid(), 1, -1):
    try:
        os.kill(target, signal.SIGKILL)
        print("sent", target, flush=True)
    except OSError as err:
        print("refused", target, type(err).__name__, flush=True)
time.sleep(0.2)
print("alive", flush=True)
os.killpg(0, signal.SIGKILL)
print("survived killpg", flush=True)
"""
    parent_group = os.getpgrp()
    verdicts = run_many(sandbox, [program, NEXT_SAMPLE], FAST, workers=1)
    killer, following = verdicts
    # Killing the parent, init or everything in reach must not take the sandbox's own chain down
    # (else "alive" would be missing); killing its own group ends only the program itself. Exit
    # status alone cannot tell a self-inflicted SIGKILL from the OOM killer, so both read as a loss.
    assert "alive" in killer.stdout_tail.splitlines()
    assert "survived killpg" not in killer.stdout_tail
    assert killer.returncode == 128 + signal.SIGKILL
    assert killer.status not in ("pass", "infra-error")
    assert (following.status, following.stdout_tail) == ("pass", "next\n")
    assert os.getpgrp() == parent_group  # this test process (and its group) is still here
    _assert_no_stray_processes(int(killer.stdout_tail.split()[1]))


def test_setsid_daemon_does_not_outlive_its_sample(sandbox):
    # A double-forked session leader that ignores hangups, keeps the output pipes open and writes for
    # ever: the verdict must not wait for it, and nothing of it may survive on the host.
    program = """
import os, signal, time
print("uid", os.getuid(), flush=True)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        with open("/tmp/daemon.log", "a") as log:
            while True:
                log.write("x")
                log.flush()
                print("daemon", flush=True)
                time.sleep(0.01)
    os._exit(0)
os.wait()
while not os.path.exists("/tmp/daemon.log"):
    time.sleep(0.01)
print("main done", flush=True)
"""
    verdict = sandbox.run(program, FAST)
    assert verdict.status == "pass"
    assert "main done" in verdict.stdout_tail
    assert verdict.seconds < FAST.wall_seconds / 2  # not held open by the daemon's copies of the pipes
    _assert_no_stray_processes(int(verdict.stdout_tail.split()[1]))
    following = sandbox.run(
        "import os\n"
        "others = [p for p in os.listdir('/proc') if p.isdigit() and int(p) not in (1, os.getpid())]\n"
        "print(sorted(os.listdir('/tmp')), others)",
        FAST,
    )
    assert (following.status, following.stdout_tail) == ("pass", f"{_interpreter_entries_in_tmp(sandbox)} []\n")


def _interpreter_entries_in_tmp(sandbox) -> list[str]:
    """Top-level /tmp entries the sandbox recreates for an interpreter living under /tmp (a checkout there)."""
    return sorted({Path(d).relative_to("/tmp").parts[0] for d in sandbox.python_dirs if d.startswith("/tmp/")})


def test_filling_the_private_tmp_stays_inside(sandbox):
    marker = f"fill-{os.getpid()}-{time.monotonic_ns()}"
    program = f"""
import errno
written = {{}}
for directory in ("/tmp", "/dev/shm"):
    written[directory] = 0
    try:
        with open(f"{{directory}}/{marker}", "wb") as handle:
            while True:
                handle.write(bytes(1024 * 1024))
                handle.flush()
                written[directory] += 1
    except OSError as err:
        assert err.errno == errno.ENOSPC, err
print(written["/tmp"], written["/dev/shm"])
"""
    limits = Limits(wall_seconds=10, tmp_mb=8, file_size_mb=64)
    verdict = sandbox.run(program, limits)
    # The program catches the full disk and passes: the cap shows as an ordinary OSError inside.
    assert verdict.status == "pass", verdict.stderr_tail
    tmp_mib, shm_mib = map(int, verdict.stdout_tail.split())
    assert 0 < tmp_mib <= limits.tmp_mb and 0 < shm_mib <= 4
    assert not any(Path(d, marker).exists() for d in ("/tmp", "/dev/shm", tempfile.gettempdir()))
    # The next sample gets a fresh, empty /tmp with room to write.
    following = sandbox.run(
        "import os\nopen('/tmp/x', 'wb').write(bytes(1 << 20))\nprint(sorted(os.listdir('/tmp')))", limits
    )
    assert (following.status, following.stdout_tail) == ("pass", f"{sorted(['x', *_interpreter_entries_in_tmp(sandbox)])}\n")


def test_proc_reveals_no_parent_secrets(sandbox, monkeypatch):
    secret = "hunter2-via-proc"
    monkeypatch.setenv("SELFALIGN_PROC_SECRET", secret)
    through_init = ["/proc/1/root/etc/passwd", "/proc/1/cwd", f"/proc/1/root{REPO / 'workflow/scripts/selfalign/sandbox/core.py'}"]
    program = f"""
import json, os
paths = ["/proc/self/environ", "/proc/1/environ", f"/proc/{{os.getppid()}}/environ", *{through_init!r}]
paths += [f"/proc/{{pid}}/{{name}}" for pid in os.listdir("/proc") if pid.isdigit() for name in ("environ", "cmdline")]
seen = {{}}
for path in paths:
    try:
        if os.path.isdir(path):
            seen[path] = os.listdir(path)
            continue
        with open(path, "rb") as handle:
            seen[path] = handle.read().decode("utf-8", "replace")
    except OSError as err:
        seen[path] = type(err).__name__
print(json.dumps(seen))
"""
    verdict = sandbox.run(program, replace(FAST, output_bytes=1 << 20))
    assert verdict.status == "pass", verdict.stderr_tail
    seen = json.loads(verdict.stdout_tail)
    assert secret not in verdict.stdout_tail and "SELFALIGN_PROC_SECRET" not in verdict.stdout_tail
    # The sandbox's init (bwrap, still root) is another user: neither its environment nor the files
    # it can see are open to the program, and the program's own environment is the cleared one.
    assert seen["/proc/1/environ"] == "PermissionError"
    assert [seen[path] for path in through_init] == ["PermissionError"] * len(through_init)
    assert set(seen["/proc/self/environ"].strip("\0").split("\0")) <= {"PATH=/usr/bin:/bin", "HOME=/tmp", "LANG=C.UTF-8", "PWD=/tmp"}

def test_run_many_keeps_order_and_runs_in_parallel(sandbox):
    programs = [f"import time\ntime.sleep(1)\nprint({i})\nassert {i} % 2 == 0" for i in range(4)]
    seen: list[tuple[int, int]] = []
    start = time.monotonic()
    verdicts = run_many(sandbox, programs, FAST, workers=4, progress=lambda done, total: seen.append((done, total)))
    assert time.monotonic() - start < 3  # serial would take at least 4 s
    assert [v.stdout_tail for v in verdicts] == ["0\n", "1\n", "2\n", "3\n"]
    assert [v.status for v in verdicts] == ["pass", "fail", "pass", "fail"]
    assert seen[-1] == (4, 4)


@pytest.mark.parametrize("backend", ["bubblewrap", "pool"])
def test_missing_bwrap_is_an_infra_error_retried(monkeypatch, tmp_path, backend):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty PATH: bwrap cannot be found
    [verdict] = run_many(make_sandbox(ExecutionSettings(backend=backend)), ["print(1)"], FAST, workers=1, infra_retries=2)
    assert (verdict.status, verdict.attempts) == ("infra-error", 3)
    assert "bwrap" in verdict.stderr_tail


def test_versions_name_the_tools(sandbox):
    versions = sandbox.versions()
    assert versions["sandbox"] == sandbox.name
    assert versions["bwrap"].startswith("bubblewrap")


def test_process_backend_warns_and_runs(caplog):
    with caplog.at_level(logging.WARNING):
        sandbox = make_sandbox(ExecutionSettings(backend="process"))
    assert "only sets rlimits and a syscall filter" in caplog.text
    assert sandbox.run("print(2 + 2)", FAST).stdout_tail == "4\n"
    assert sandbox.run("while True:\n    pass", CPU_BOUND).status == "timeout"


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match="execution.backend: unknown sandbox backend"):
        ExecutionSettings(backend="docker")


def test_an_interpreter_under_tmp_stays_reachable_below_the_private_tmpfs():
    from selfalign.sandbox import BubblewrapSandbox

    sandbox = BubblewrapSandbox()
    sandbox.python_dirs = ["/tmp/checkout/.venv"]
    argv = sandbox.argv("/tmp/program.py", Limits(), uid=None)
    tmpfs = argv.index("/tmp", argv.index("--tmpfs"))
    remade = [i for i in range(len(argv) - 1) if argv[i] == "--dir" and argv[i + 1] == "/tmp/checkout"]
    bind = argv.index("/tmp/checkout/.venv")
    assert any(tmpfs < i < bind for i in remade)
