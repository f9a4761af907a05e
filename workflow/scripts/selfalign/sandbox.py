"""Run untrusted generated Python in a sandbox and classify the outcome.

Each program is written to a private file and run by a fresh ``python3 -I -B`` of the workflow's own
interpreter, so generated code sees the same Python and packages as the workflow. The "bubblewrap"
backend isolates it (no network, read-only system, private size-capped /tmp, empty environment,
rlimits, its own uid); the "process" backend only applies rlimits and exists for debugging.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import queue
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from typing import Literal, Protocol

log = logging.getLogger(__name__)

Status = Literal["pass", "fail", "timeout", "memory", "infra-error"]

MIB = 1024 * 1024
# Launcher tools print errors prefixed with their own name; seeing one first means the sandbox, not
# the program, failed.
_LAUNCHER_PREFIXES = ("bwrap:", "setpriv:", "prlimit:")
_MEMORY_ERROR = re.compile(r"^MemoryError\b", re.MULTILINE)


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


@dataclass(frozen=True)
class Verdict:
    status: Status
    returncode: int | None  # None when the program never started or was killed by the wall timer
    stdout_tail: str
    stderr_tail: str
    seconds: float
    attempts: int = 1


class Sandbox(Protocol):
    name: str

    def run(self, program: str, limits: Limits) -> Verdict: ...

    def versions(self) -> dict[str, str]: ...


def _rlimit_argv(limits: Limits) -> list[str]:
    # CPU soft < hard: the soft limit sends SIGXCPU (a recognisable "timeout"); the hard one is the backstop.
    return [
        "prlimit",
        f"--as={limits.memory_mb * MIB}",
        f"--cpu={limits.cpu_seconds}:{limits.cpu_seconds + 1}",
        f"--nproc={limits.processes}",
        f"--fsize={limits.file_size_mb * MIB}",
        f"--nofile={limits.open_files}",
        "--core=0",
        "--",
    ]


def _launcher_env() -> dict[str, str]:
    """Only PATH, to find bwrap/prlimit where the cluster installs them; no secrets reach the program."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def _interpreter_dirs() -> list[str]:
    """Host directories the interpreter needs: the venv and the real installation it points into."""
    dirs: list[str] = []
    for prefix in (os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix)):
        if prefix == "/usr" or prefix.startswith("/usr/") or prefix in dirs:
            continue  # /usr is bound anyway
        dirs.append(prefix)
    return dirs


def _ancestors(path: str) -> list[str]:
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


class _OutputTail:
    """The last ``cap`` bytes of a stream: endless output costs reading time, not memory."""

    def __init__(self, cap: int):
        self.cap, self.data = cap, bytearray()

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > self.cap:
            del self.data[: len(self.data) - self.cap]

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def _classify(returncode: int, stderr: str, seconds: float, limits: Limits) -> Status:
    if returncode == 0:
        return "pass"
    if returncode == 128 + signal.SIGXCPU:
        return "timeout"
    if _MEMORY_ERROR.search(stderr):
        return "memory"
    if returncode == 128 + signal.SIGKILL:
        # Nothing but the CPU hard limit (after an ignored SIGXCPU) or the OOM killer sends SIGKILL here.
        return "timeout" if seconds >= limits.cpu_seconds else "memory"
    return "fail"


def _execute(argv: list[str], limits: Limits, cwd: str, env: dict[str, str]) -> Verdict:
    """Run ``argv`` in its own session, capture capped output, kill the whole group at the wall limit."""
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as err:
        return Verdict("infra-error", None, "", f"cannot start {argv[0]}: {err}", time.monotonic() - start)
    assert proc.stdout is not None and proc.stderr is not None
    tails = {proc.stdout: _OutputTail(limits.output_bytes), proc.stderr: _OutputTail(limits.output_bytes)}
    deadline = start + limits.wall_seconds
    timed_out = False
    with selectors.DefaultSelector() as selector:
        for stream in tails:
            selector.register(stream, selectors.EVENT_READ)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            for key, _ in selector.select(remaining):
                chunk = os.read(key.fd, 65536)
                if chunk:
                    tails[key.fileobj].add(chunk)  # type: ignore[index]
                else:
                    selector.unregister(key.fileobj)
    if not timed_out:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
    if timed_out:
        with contextlib.suppress(ProcessLookupError):  # the group may have just exited
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for stream in tails:
        stream.close()
    seconds = time.monotonic() - start
    stdout, stderr = tails[proc.stdout].text(), tails[proc.stderr].text()
    if timed_out:
        return Verdict("timeout", None, stdout, stderr, seconds)
    # Shell convention for a signal death (bwrap reports it so; Popen gives -signal without bwrap).
    returncode = 128 - proc.returncode if proc.returncode < 0 else proc.returncode
    if returncode != 0 and stderr.startswith(_LAUNCHER_PREFIXES):
        return Verdict("infra-error", returncode, stdout, stderr, seconds)
    return Verdict(_classify(returncode, stderr, seconds, limits), returncode, stdout, stderr, seconds)


class _ProgramFile:
    """A private directory holding ``main.py``, readable by the sandbox uid, removed on exit."""

    def __init__(self, program: str):
        self.program = program

    def __enter__(self) -> str:
        self.dir = tempfile.mkdtemp(prefix="sandbox-")
        os.chmod(self.dir, 0o755)
        path = os.path.join(self.dir, "main.py")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(self.program)
        os.chmod(path, 0o644)
        return path

    def __exit__(self, *_: object) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class _UidPool:
    """Distinct uids for concurrent runs: RLIMIT_NPROC counts every process of a uid, so sandboxes
    sharing one uid would share one process budget. The range is keyed by our pid so that parallel
    workflow jobs on one node do not share uids either."""

    SLOTS = 256

    def __init__(self) -> None:
        base = 1_000_000 + (os.getpid() % 4_000_000) * self.SLOTS
        self.free: queue.SimpleQueue[int] = queue.SimpleQueue()
        for slot in range(self.SLOTS):
            self.free.put(base + slot)


class BubblewrapSandbox:
    name = "bubblewrap"

    def __init__(self) -> None:
        self.as_root = os.geteuid() == 0
        self.uids = _UidPool() if self.as_root else None
        self.python_dirs = _interpreter_dirs()

    def _argv(self, program_path: str, limits: Limits, uid: int | None) -> list[str]:
        if uid is None:
            namespaces = ["--unshare-all"]
            drop_privileges: list[str] = []
        else:
            # As root the uid must change for real (RLIMIT_NPROC is not enforced for root, even mapped
            # inside a user namespace), so bwrap keeps the real uid and the program drops to ``uid``
            # with setpriv; everything but the user namespace is unshared, as --unshare-all would.
            namespaces = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
            drop_privileges = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs"]
        mount_points = sorted({"/etc", "/sandbox", *(a for d in self.python_dirs for a in _ancestors(d))})
        argv = ["bwrap", *namespaces, "--die-with-parent", "--new-session"]
        for directory in mount_points:  # bwrap would create them mode 0700, unreadable by the sandbox uid
            argv += ["--perms", "0755", "--dir", directory]
        argv += [
            "--ro-bind", "/usr", "/usr",
            "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
            "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/sbin", "/sbin",
            "--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache",
            "--proc", "/proc", "--dev", "/dev",
            # world-writable with the sticky bit, like a host /tmp: bwrap would make them root's 0755
            "--perms", "1777", "--size", str(4 * MIB), "--tmpfs", "/dev/shm",
            "--perms", "1777", "--size", str(limits.tmp_mb * MIB), "--tmpfs", "/tmp",
        ]
        # An interpreter under /tmp (a venv in a checkout there) lies below the fresh tmpfs: its
        # ancestors must be made again, readable, or bwrap creates them 0700.
        for directory in mount_points:
            if directory.startswith(("/tmp/", "/dev/shm/")):
                argv += ["--perms", "0755", "--dir", directory]
        for directory in self.python_dirs:
            argv += ["--ro-bind", directory, directory]
        argv += [
            "--ro-bind", program_path, "/sandbox/main.py",
            "--remount-ro", "/", "--chdir", "/tmp",
            "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp",
            "--setenv", "LANG", "C.UTF-8",
            "--",
        ]
        return argv + drop_privileges + _rlimit_argv(limits) + [sys.executable, "-I", "-B", "/sandbox/main.py"]

    def run(self, program: str, limits: Limits) -> Verdict:
        uid = self.uids.free.get() if self.uids else None
        try:
            with _ProgramFile(program) as path:
                return _execute(self._argv(path, limits, uid), limits, cwd="/", env=_launcher_env())
        finally:
            if self.uids and uid is not None:
                self.uids.free.put(uid)

    def versions(self) -> dict[str, str]:
        try:
            bwrap = subprocess.run(["bwrap", "--version"], capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError) as err:
            bwrap = f"unavailable ({err})"
        return {"sandbox": self.name, "bwrap": bwrap, "python": platform.python_version(), "interpreter": sys.executable}


class ProcessSandbox:
    """rlimits only: the program sees the network, the filesystem and other processes."""

    name = "process"

    def run(self, program: str, limits: Limits) -> Verdict:
        with _ProgramFile(program) as path:
            env = {**_launcher_env(), "HOME": os.path.dirname(path), "LANG": "C.UTF-8"}
            argv = _rlimit_argv(limits) + [sys.executable, "-I", "-B", path]
            return _execute(argv, limits, cwd=os.path.dirname(path), env=env)

    def versions(self) -> dict[str, str]:
        return {"sandbox": self.name, "python": platform.python_version(), "interpreter": sys.executable}


def make_sandbox(backend: str) -> Sandbox:
    if backend == "bubblewrap":
        return BubblewrapSandbox()
    if backend == "process":
        log.warning("sandbox backend 'process' only sets rlimits: generated code can reach the network and files")
        return ProcessSandbox()
    raise ValueError(f"unknown sandbox backend {backend!r}: expected 'bubblewrap' or 'process'")


def run_many(
    sandbox: Sandbox,
    programs: Sequence[str],
    limits: Limits,
    workers: int,
    infra_retries: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> list[Verdict]:
    """Run every program on a pool of ``workers`` threads, in input order; retry only infra-errors."""

    def run_one(program: str) -> Verdict:
        attempts, verdict = 1, sandbox.run(program, limits)
        while verdict.status == "infra-error" and attempts <= infra_retries:
            attempts, verdict = attempts + 1, sandbox.run(program, limits)
        return replace(verdict, attempts=attempts)

    verdicts: list[Verdict | None] = [None] * len(programs)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(run_one, program): index for index, program in enumerate(programs)}
        for done, future in enumerate(as_completed(futures), start=1):
            verdicts[futures[future]] = future.result()
            if progress is not None:
                progress(done, len(programs))
    assert all(verdict is not None for verdict in verdicts)
    return verdicts  # type: ignore[return-value]
