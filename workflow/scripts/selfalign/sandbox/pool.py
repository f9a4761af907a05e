"""A pool of long-lived bubblewrap sandboxes, each running one sample at a time in a fresh child.

Starting bubblewrap (namespaces, mounts) and a Python interpreter costs more than most generated
programs take to run. Here each worker is one bubblewrap sandbox, started once, with the same
layout as ``BubblewrapSandbox`` (read-only system, no network, size-capped /tmp, empty environment).
Inside it ``supervisor.py`` runs every sample in a new pid, mount and IPC namespace, as its own
uid with its own rlimits and the syscall filter, kills the sample's whole namespace when it ends or
hits the wall limit, and empties /tmp before the next sample; every sample's processes are forks of a
zygote that never saw another sample's data (see that module for the process tree).

``start="fork"`` runs the program in a fork of the supervisor's already started interpreter (the
program still runs as a real ``__main__`` file); ``start="exec"`` executes a fresh
``python -I -B`` for every sample, slower but byte-for-byte the interpreter start of the baseline.

Workers are created on demand, one per concurrent caller, so ``run_many(..., workers=threads)``
holds ``threads`` sandboxes. Needs root (per-sample uids and namespaces); elsewhere ``make_sandbox``
falls back to the per-sample backend.
"""

from __future__ import annotations

import atexit
import json
import os
import platform
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any, Literal

from .bubblewrap import ROOT_NAMESPACES, BubblewrapSandbox
from .core import MAX_WALL_STRETCH, Limits, Verdict, starved_verdict, verdict_of
from .host import interpreter, launcher_env
from .seccomp import filter_file

HERE = Path(__file__).parent
SUPERVISOR_IN_SANDBOX = "/sandbox-pool/supervisor.py"
# Beyond the (stretched) wall limit the supervisor needs a moment to reap and clean; past this margin
# the worker is considered wedged and replaced.
ANSWER_MARGIN_SECONDS = 30.0
Start = Literal["fork", "exec"]
POOL_STARTS: tuple[Start, ...] = ("fork", "exec")
# Standard-library modules generated programs and their tests import most; with start="fork" the
# supervisor imports them once so that samples skip that work.
PRELOAD = (
    "abc", "bisect", "collections", "copy", "dataclasses", "datetime", "decimal", "enum", "fractions", "functools",
    "heapq", "itertools", "json", "math", "operator", "random", "re", "string", "typing", "unittest",
)


class PoolUnavailable(RuntimeError):
    pass


class _Worker:
    """One bubblewrap sandbox with a supervisor, spoken to by JSON lines."""

    def __init__(self, argv: list[str], tmp_mb: int):
        self.tmp_mb = tmp_mb
        self.log: IO[bytes] = tempfile.TemporaryFile()
        # A new session and no --die-with-parent: PDEATHSIG follows the *thread* that started bwrap,
        # and pool threads come and go. The supervisor ends on EOF of its stdin instead.
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=launcher_env(),
            cwd="/", start_new_session=True,
        )
        self.buffer = b""

    def ask(self, request: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """The supervisor's answer, or None if it died, garbled its answer or took too long."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
            self.proc.stdin.flush()
        except OSError:
            return None
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self.buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    return None
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    return None
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        try:
            answer = json.loads(line)
        except ValueError:
            return None
        return answer if isinstance(answer, dict) else None

    def log_tail(self, size: int = 2000) -> str:
        self.log.seek(0, os.SEEK_END)
        self.log.seek(max(0, self.log.tell() - size))
        return self.log.read().decode("utf-8", errors="replace")

    def close(self) -> None:
        if self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self.log.close()


class PoolSandbox:
    name = "pool"

    def __init__(self, start: Start = "fork"):
        if os.geteuid() != 0:
            raise PoolUnavailable("the sandbox pool needs root (a uid per sample and namespaces per sample)")
        if start not in POOL_STARTS:
            raise ValueError(f"unknown pool start {start!r}: expected 'fork' or 'exec'")
        self.start = start
        self.layout = BubblewrapSandbox()  # the same filesystem layout, and its per-sample uids
        self.python_dirs = self.layout.python_dirs
        self.idle: list[_Worker] = []
        self.lock = threading.Lock()
        self.started = 0
        self.files = ""  # a directory holding the compiled filter, bound into every worker
        self.files_lock = threading.Lock()
        self._filter_dir()
        atexit.register(self.close)

    def _filter_dir(self) -> str:
        with self.files_lock:  # made again if close() removed it and the pool is used once more
            if not os.path.isdir(self.files):
                self.files = tempfile.mkdtemp(prefix="sandbox-pool-")
                os.chmod(self.files, 0o755)
                filter_file(self.files)
            return self.files

    def _argv(self, limits: Limits) -> list[str]:
        files = self._filter_dir()
        binds = [
            "--perms", "0755", "--tmpfs", "/sandbox",  # the supervisor (root) writes each main.py here
            "--ro-bind", str(HERE / "supervisor.py"), SUPERVISOR_IN_SANDBOX,
            "--ro-bind", str(HERE / "confine.py"), "/sandbox-pool/confine.py",
            "--ro-bind", os.path.join(files, "seccomp.bpf"), "/sandbox-pool/seccomp.bpf",
        ]
        keep = sorted({"/tmp/" + Path(d).relative_to("/tmp").parts[0] for d in self.python_dirs if d.startswith("/tmp/")})
        argv = self.layout.bwrap_argv(ROOT_NAMESPACES, limits, binds, die_with_parent=False)
        argv += [interpreter(), "-I", "-B", SUPERVISOR_IN_SANDBOX, "--seccomp=/sandbox-pool/seccomp.bpf"]
        argv += [f"--keep={path}" for path in keep]
        return argv + ([f"--preload={','.join(PRELOAD)}"] if self.start == "fork" else [])

    def _take(self, limits: Limits) -> _Worker:
        with self.lock:
            for index, worker in enumerate(self.idle):
                if worker.tmp_mb == limits.tmp_mb:  # the /tmp size is fixed when the sandbox starts
                    return self.idle.pop(index)
            self.started += 1
        return _Worker(self._argv(limits), limits.tmp_mb)

    def _give_back(self, worker: _Worker) -> None:
        with self.lock:
            self.idle.append(worker)

    def run(self, program: str, limits: Limits) -> Verdict:
        start = time.monotonic()
        try:
            worker = self._take(limits)
        except OSError as err:
            return Verdict("infra-error", None, "", f"sandbox-pool: cannot start bwrap: {err}", time.monotonic() - start)
        uid = self.layout.uids.free.get() if self.layout.uids else None
        max_wall = limits.wall_seconds * MAX_WALL_STRETCH
        request = {"program": program, "uid": uid, "limits": asdict(limits), "start": self.start, "max_wall_seconds": max_wall}
        try:
            answer = worker.ask(request, max_wall + ANSWER_MARGIN_SECONDS)
        finally:
            if self.layout.uids and uid is not None:
                self.layout.uids.free.put(uid)
        if answer is None or "error" in answer:
            detail = answer["error"] if answer else worker.log_tail()
            worker.close()
            return Verdict("infra-error", None, "", f"sandbox-pool: worker failed: {detail}", time.monotonic() - start)
        self._give_back(worker)
        if answer["starved"]:
            return starved_verdict(
                answer["stdout"], answer["stderr"], answer["seconds"], answer["waited_seconds"], limits, answer["peak_memory_mb"]
            )
        returncode = None if answer["timed_out"] else answer["returncode"]
        return verdict_of(
            returncode, answer["stdout"], answer["stderr"], answer["seconds"], limits, answer["peak_memory_mb"],
            cpu_seconds=answer["cpu_seconds"],
        )

    def close(self) -> None:
        with self.lock:
            workers, self.idle = self.idle, []
        for worker in workers:
            worker.close()
        with self.files_lock:
            if self.files:
                shutil.rmtree(self.files, ignore_errors=True)

    def versions(self) -> dict[str, str]:
        return {**self.layout.versions(), "sandbox": self.name, "pool_start": self.start, "python": platform.python_version()}
