"""Host-side plumbing of the backends that start one launcher process per sample (bubblewrap,
Apptainer, process): the program's file, the launcher's environment, capped output, the wall timer,
peak memory, and per-sample uids."""

from __future__ import annotations

import contextlib
import os
import queue
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from .confine import cpu_wait_seconds, peak_rss_mb
from .core import LAUNCHER_PREFIXES, MIB, Limits, Verdict, starved, starved_verdict, verdict_of, wall_deadline


def rlimit_argv(limits: Limits) -> list[str]:
    """``prlimit`` setting the sample's rlimits, up to the command it runs."""
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


def launcher_env() -> dict[str, str]:
    """Only PATH, to find bwrap/prlimit where the cluster installs them; no secrets reach the program."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def interpreter_dirs() -> list[str]:
    """Host directories the interpreter needs: the venv and the real installation it points into."""
    dirs: list[str] = []
    for prefix in (os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix)):
        if prefix == "/usr" or prefix.startswith("/usr/") or prefix in dirs:
            continue  # /usr is bound anyway
        dirs.append(prefix)
    return dirs


def interpreter() -> str:
    """``sys.executable`` reached through the resolved prefix: a venv that is itself a symlink (or sits
    below one) is bound at its real path, so the symlinked path would not exist in the sandbox."""
    relative = os.path.relpath(sys.executable, sys.prefix)
    if relative.startswith(".."):
        return sys.executable
    return os.path.join(os.path.realpath(sys.prefix), relative)


def ancestors(path: str) -> list[str]:
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


class OutputTail:
    """The last ``cap`` bytes of a stream: endless output costs reading time, not memory."""

    def __init__(self, cap: int):
        self.cap, self.data = cap, bytearray()

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > self.cap:
            del self.data[: len(self.data) - self.cap]

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def _wait(proc: subprocess.Popen[bytes], deadline: float) -> tuple[int | None, float | None]:
    """(wait status, peak RSS in MiB from the kernel's accounting) of ``proc``, or (None, None) at the deadline.

    Its CPU time is not used: bwrap's outer process does not wait for the sample, so the kernel's
    accounting misses it (the pool's supervisor reports it instead)."""
    with contextlib.closing(selectors.DefaultSelector()) as selector:
        pidfd = os.pidfd_open(proc.pid)
        try:
            selector.register(pidfd, selectors.EVENT_READ)
            if not selector.select(max(0.0, deadline - time.monotonic())):
                return None, None
        finally:
            os.close(pidfd)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    # KiB on Linux; includes the descendants it waited for. A child's count starts at this process's own
    # size when it was forked (Linux keeps it across exec), so a peak not above ours says nothing about
    # the sample: unknown, rather than a "memory" verdict for a job that merely holds a large model.
    ours = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return status, (usage.ru_maxrss / 1024 if usage.ru_maxrss > ours else None)


def execute(
    argv: list[str],
    limits: Limits,
    cwd: str,
    env: dict[str, str],
    launcher_prefixes: tuple[str, ...] = LAUNCHER_PREFIXES,
    pass_fds: tuple[int, ...] = (),
) -> Verdict:
    """Run ``argv`` in its own session, capture capped output, kill the whole group at the wall limit
    (stretched by the time the sample waited for a CPU; see ``core.MAX_WALL_STRETCH``)."""
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True, pass_fds=pass_fds,
        )
    except OSError as err:
        return Verdict("infra-error", None, "", f"cannot start {argv[0]}: {err}", time.monotonic() - start)
    assert proc.stdout is not None and proc.stderr is not None
    tails = {proc.stdout: OutputTail(limits.output_bytes), proc.stderr: OutputTail(limits.output_bytes)}
    deadline = start + limits.wall_seconds
    status: int | None = None
    peak: float | None = None
    waited = elapsed = 0.0
    with selectors.DefaultSelector() as selector:
        for stream in tails:
            selector.register(stream, selectors.EVENT_READ)
        while True:
            while selector.get_map() and time.monotonic() < deadline:
                for key, _ in selector.select(deadline - time.monotonic()):
                    chunk = os.read(key.fd, 65536)
                    if chunk:
                        tails[key.fileobj].add(chunk)  # type: ignore[index]
                    else:
                        selector.unregister(key.fileobj)
            if time.monotonic() < deadline:
                status, peak = _wait(proc, deadline)
            if status is not None:
                break
            # At the wall limit: the time the sample waited for a CPU does not count (see core.MAX_WALL_STRETCH).
            waited = cpu_wait_seconds(proc.pid, time.monotonic() - start)
            later = wall_deadline(start, limits, waited)
            if later <= time.monotonic():
                break
            deadline = later
    if status is None:  # the wall limit: measure the processes while they live, then kill the group
        elapsed = time.monotonic() - start
        peak = peak_rss_mb(proc.pid)
        with contextlib.suppress(ProcessLookupError):  # the group may have just exited
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for stream in tails:
        stream.close()
    seconds = time.monotonic() - start
    stdout, stderr = tails[proc.stdout].text(), tails[proc.stderr].text()
    if status is None:
        if starved(limits, elapsed, waited):
            return starved_verdict(stdout, stderr, seconds, waited, limits, peak)
        return verdict_of(None, stdout, stderr, seconds, limits, peak, launcher_prefixes)
    # Shell convention for a signal death (bwrap reports it so; Popen gives -signal without bwrap).
    returncode = 128 - proc.returncode if proc.returncode < 0 else proc.returncode
    return verdict_of(returncode, stdout, stderr, seconds, limits, peak, launcher_prefixes)


class ProgramFile:
    """A private directory holding ``main.py`` (and any ``extra`` files), readable by the sandbox uid,
    removed on exit."""

    def __init__(self, program: str, extra: dict[str, bytes] | None = None):
        self.program, self.extra = program, extra or {}

    def __enter__(self) -> str:
        self.dir = tempfile.mkdtemp(prefix="sandbox-")
        os.chmod(self.dir, 0o755)
        path = os.path.join(self.dir, "main.py")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(self.program)
        os.chmod(path, 0o644)
        for name, content in self.extra.items():
            with open(os.path.join(self.dir, name), "wb") as handle:
                handle.write(content)
            os.chmod(os.path.join(self.dir, name), 0o444)
        return path

    def __exit__(self, *_: object) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class UidPool:
    """Distinct uids for concurrent runs: RLIMIT_NPROC counts every process of a uid, so sandboxes
    sharing one uid would share one process budget. The range is keyed by our pid so that parallel
    workflow jobs on one node do not share uids either."""

    SLOTS = 256
    _shared: UidPool | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        base = 1_000_000 + (os.getpid() % 4_000_000) * self.SLOTS
        self.free: queue.SimpleQueue[int] = queue.SimpleQueue()
        for slot in range(self.SLOTS):
            self.free.put(base + slot)

    @classmethod
    def shared(cls) -> UidPool:
        """One pool per process: every sandbox object of this process draws from the same pid-keyed range."""
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared
