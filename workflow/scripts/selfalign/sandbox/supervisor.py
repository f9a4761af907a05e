"""Supervisor that runs inside one long-lived sandbox and executes samples one at a time.

Started by ``pool.PoolSandbox`` as ``python -I -B supervisor.py`` inside bubblewrap, as root of that
sandbox so it can give every sample its own uid. Standard library only: it must not import the
workflow's package, which the sandbox does not show; ``confine.py`` (rlimits, loading the syscall
filter, peak memory) is bound next to it and loaded from its file.

Protocol: one JSON request per line on stdin (``program``, ``uid``, ``limits``, ``start``,
``max_wall_seconds``), one JSON answer per line on stdout (``returncode``, ``timed_out``, ``starved``,
``waited_seconds``, ``stdout``, ``stderr``, ``seconds``, ``peak_memory_mb``, ``cpu_seconds``). EOF on stdin ends the
supervisor, and with it the sandbox, also in the middle of a sample (the job that started the pool died).

Each sample gets a process tree of its own (why each step):
  supervisor --fork--> Z, the zygote, once, before the first request is read: every sample's
      processes are forks of Z, whose memory never held a request, a program or an answer, so a
      sample (which in fork mode runs inside such a fork) finds nothing of the samples before it
      in its frames, objects or memory. Z reports only exit statuses.
  Z --fork--> A: unshares pid, mount and IPC namespaces (own /proc, own SysV IPC)
  A --fork--> B: pid 1 of the new pid namespace, root; dies with A (PDEATHSIG)
  B --fork--> C: the sample (pid 2): session, rlimits, its own uid, clean env, cwd /tmp, then the
      syscall filter; it reads nothing but its limits and uid from B
When B exits, the kernel kills everything left in that pid namespace: setsid daemons and fork bombs
go with it. On the wall limit the supervisor kills A, hence B, hence the namespace. Afterwards
/tmp and /dev/shm are emptied, so no file reaches the next sample.
"""

from __future__ import annotations

import argparse
import atexit
import builtins
import ctypes
import importlib
import importlib.util
import io
import json
import os
import select
import selectors
import shutil
import signal
import socket
import sys
import threading
import time
import traceback
import types

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWPID = 0x00020000, 0x08000000, 0x20000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 2, 4, 8, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 1, 4, 36
PROGRAM = "/sandbox/main.py"
SETUP_FAILED = 125  # with a "sandbox-pool:" line on stderr: the host reads it as an infra-error
ENVIRONMENT = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}

_libc = ctypes.CDLL(None, use_errno=True)


def _load_confine() -> types.ModuleType:
    """confine.py from beside this file, without putting its directory on the samples' sys.path."""
    spec = importlib.util.spec_from_file_location("sandbox_confine", os.path.join(os.path.dirname(__file__), "confine.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


confine = _load_confine()


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _setup_failed(message: str, fd: int = 2) -> None:
    os.write(fd, f"sandbox-pool: {message}\n".encode())
    os._exit(SETUP_FAILED)


def _close_all_but(*keep: int) -> None:
    """Drop inherited descriptors (the protocol pipes above all) the sample's processes must not hold."""
    low = 0
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 16)


def _status_code(status: int) -> int:
    """Shell convention: 128 + signal for a signal death, as bwrap reports it."""
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _fresh_stdio() -> None:
    """New stdio objects on fds 0-2, as a fresh interpreter with LANG=C.UTF-8 and pipes would have."""
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding="utf-8")
    sys.stdout = sys.__stdout__ = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)), encoding="utf-8")
    sys.stderr = sys.__stderr__ = io.TextIOWrapper(
        io.BufferedWriter(io.FileIO(2, "w", closefd=False)), encoding="utf-8", errors="backslashreplace", line_buffering=True
    )


def _run_program_here() -> int:
    """Run the program as ``__main__`` in this (forked) interpreter, like ``python -I -B main.py``."""
    sys.argv = [PROGRAM]
    main = types.ModuleType("__main__")
    main.__file__ = PROGRAM
    main.__builtins__ = builtins
    main.__cached__ = None
    sys.modules["__main__"] = main
    code = 0
    try:
        with open(PROGRAM, "rb") as handle:
            source = handle.read()
        exec(compile(source, PROGRAM, "exec"), main.__dict__)  # module-level: globals are locals
    except SystemExit as exit_request:
        code = _system_exit_code(exit_request)
    except BaseException as error:  # noqa: BLE001 - any uncaught exception ends the program with status 1
        traceback_ = error.__traceback__
        # Start the traceback at the program's own frame, as a fresh interpreter would.
        error = error.with_traceback(traceback_.tb_next if traceback_ is not None else None)
        sys.excepthook(type(error), error, error.__traceback__)
        code = 1
    try:  # what interpreter shutdown does: wait for non-daemon threads, atexit, flush
        threading._shutdown()  # type: ignore[attr-defined]
        atexit._run_exitfuncs()
    except SystemExit as exit_request:
        code = _system_exit_code(exit_request)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed or broken stream, as at real shutdown
            code = code or 120
    return code


def _system_exit_code(exit_request: SystemExit) -> int:
    value = exit_request.code
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


def _sample(request: dict, out_w: int, err_w: int, bpf: bytes) -> None:
    """Process C: become the sample and run it (never returns)."""
    try:
        os.setsid()
        os.dup2(os.open("/dev/null", os.O_RDONLY), 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.closerange(3, 1 << 16)
        confine.apply_limits(request["limits"])
        uid = request.get("uid")
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)  # from root to another uid: every capability is dropped too
            # A uid change marks the process undumpable, so its own /proc/self files would stay root's;
            # an exec would reset that, a fork does not.
            _check(_libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "dumpable")
        os.chdir("/tmp")
        confine.install_seccomp(bpf)  # also sets no_new_privs
    except OSError as err:
        _setup_failed(f"cannot prepare the sample: {err}")
    if request.get("start") == "exec":
        try:
            os.execve(sys.executable, [sys.executable, "-I", "-B", PROGRAM], ENVIRONMENT)
        except OSError as err:
            _setup_failed(f"cannot execute {sys.executable}: {err}")
    os.environ.clear()
    os.environ.update(ENVIRONMENT)
    _fresh_stdio()
    os._exit(_run_program_here())


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _namespace_init(request_r: int, out_w: int, err_w: int, lifeline: int, bpf: bytes) -> None:
    """Process B, pid 1 of the sample's namespace: mount its /proc, wait for the request, run C, reap,
    exit with C's status."""
    try:
        _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")
        # getppid() reads 0 across the namespace boundary: A's end of the lifeline closing tells
        # whether A died before PDEATHSIG was armed.
        if select.select([lifeline], [], [], 0)[0]:
            os._exit(SETUP_FAILED)  # A is already gone: nobody waits for this sample
        os.close(lifeline)
        _check(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "private mounts")
        _check(_libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None), "mount /proc")
    except OSError as err:
        _setup_failed(str(err), err_w)
    raw = _read_all(request_r)  # the namespace is made in advance; the sample starts on this
    if not raw:
        os._exit(0)  # the supervisor is ending
    request = json.loads(raw)
    os.close(request_r)
    sample = os.fork()
    if sample == 0:
        _sample(request, out_w, err_w, bpf)
    os.close(out_w)
    os.close(err_w)
    while True:  # reap orphans until the sample itself ends
        pid, status = os.wait()
        if pid == sample:
            os._exit(_status_code(status))  # pid 1 leaving kills the rest of the namespace


def _unshared_parent(request_r: int, out_w: int, err_w: int, bpf: bytes) -> None:
    """Process A: new namespaces for its next child, then wait for that child (B)."""
    _close_all_but(request_r, out_w, err_w)
    try:
        _check(_libc.unshare(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC), "unshare")
    except OSError as err:
        _setup_failed(str(err), err_w)
    lifeline_r, lifeline_w = os.pipe()
    init = os.fork()
    if init == 0:
        os.close(lifeline_w)
        _namespace_init(request_r, out_w, err_w, lifeline_r, bpf)
    for fd in (lifeline_r, request_r, out_w, err_w):
        os.close(fd)
    _, status = os.waitpid(init, 0)
    os._exit(_status_code(status))


def _reap_all() -> None:
    """Wait for every remaining child: as subreaper the zygote inherits an orphaned B, which exits
    only once its namespace is empty."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _zygote(channel: socket.socket, bpf: bytes) -> None:
    """Process Z: on each request byte, fork the process tree of one sample (A, which makes B), hand
    its pipes and pidfd over, wait for it, then report its wait status and peak memory. Only
    integers ever come back in; the sample's data never passes through here."""
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    _check(_libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "subreaper")
    while channel.recv(1):
        request_r, request_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            channel.close()
            for fd in (request_w, out_r, err_r):
                os.close(fd)
            try:
                _unshared_parent(request_r, out_w, err_w, bpf)
            except BaseException:  # noqa: BLE001 - a bug here must surface as an infra-error, not a hang
                _setup_failed(traceback.format_exc(limit=4).replace("\n", " | "), err_w)
            os._exit(SETUP_FAILED)
        pidfd = os.pidfd_open(pid)
        socket.send_fds(channel, [json.dumps({"pid": pid}).encode()], [request_w, out_r, err_r, pidfd])
        for fd in (request_r, request_w, out_r, out_w, err_r, err_w, pidfd):
            os.close(fd)
        _, status, usage = os.wait4(pid, 0)
        _reap_all()  # after a wall timeout B outlives A for a moment: wait until the namespace is gone
        cpu = usage.ru_utime + usage.ru_stime  # of every process of the sample: each was waited for
        channel.send(json.dumps({"status": status, "maxrss_kb": usage.ru_maxrss, "cpu_seconds": cpu}).encode())
    os._exit(0)


class _Slot:
    """The process tree of the next sample, made by the zygote before its request arrives (forks,
    namespaces and the /proc mount are off the sample's clock); B waits on ``request_w``."""

    def __init__(self, channel: socket.socket):
        self.channel = channel
        channel.send(b"n")
        message, fds, _, _ = socket.recv_fds(channel, 1024, 4)
        if len(fds) != 4:
            raise RuntimeError("the zygote is gone")
        self.request_w, self.out_r, self.err_r, self.pidfd = fds
        self.pid = json.loads(message)["pid"]

    def start(self, request: dict) -> None:
        try:
            os.write(self.request_w, json.dumps(request).encode())
        except BrokenPipeError:
            pass  # the slot died while waiting: its stderr says why (an infra-error)
        os.close(self.request_w)

    def kill(self) -> None:
        try:
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)  # A dies, B gets PDEATHSIG, the namespace goes
        except ProcessLookupError:
            pass

    def ended(self) -> tuple[int, float, float]:
        """A's wait status and the peak RSS (MiB) of the largest process that was waited for."""
        message = self.channel.recv(1024)
        if not message:
            raise RuntimeError("the zygote is gone")
        report = json.loads(message)
        for fd in (self.out_r, self.err_r, self.pidfd):
            os.close(fd)
        return report["status"], report["maxrss_kb"] / 1024, report["cpu_seconds"]

    def discard(self) -> None:
        os.close(self.request_w)  # B reads EOF and leaves
        self.ended()


class _Tail:
    # host.OutputTail again: the supervisor cannot import the package (see the module docstring)
    def __init__(self, cap: int):
        self.cap, self.data = cap, bytearray()

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > self.cap:
            del self.data[: len(self.data) - self.cap]


def _empty(directory: str, keep: set[str]) -> None:
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if path in keep:
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass


def run_one(request: dict, keep: set[str], slot: _Slot) -> dict:
    if os.path.exists(PROGRAM):
        os.unlink(PROGRAM)
    with open(PROGRAM, "w", encoding="utf-8") as handle:
        handle.write(request["program"])
    os.chmod(PROGRAM, 0o444)
    limits = request["limits"]
    start = time.monotonic()
    slot.start({key: request.get(key) for key in ("uid", "limits", "start")})  # B never sees the program
    tails = {slot.out_r: _Tail(limits["output_bytes"]), slot.err_r: _Tail(limits["output_bytes"])}
    wall = limits["wall_seconds"]
    deadline = start + wall
    exited = timed_out = starved = False
    peak: float | None = None
    waited = 0.0
    with selectors.DefaultSelector() as selector:
        for fd in (slot.out_r, slot.err_r, slot.pidfd):
            selector.register(fd, selectors.EVENT_READ)
        # The host sends the next request only after this answer, so stdin turning readable now means EOF:
        # the job died (even by SIGKILL). End the sample and the sandbox now, not at the wall limit.
        selector.register(0, selectors.EVENT_READ)
        # Until the sample's namespace is gone (its init exits when the sample does) and both pipes
        # are drained; a daemon cannot keep them open, as it dies with the namespace.
        while not exited or len(selector.get_map()) > 1:  # stdin stays registered
            remaining = deadline - time.monotonic()
            if remaining <= 0 and not exited:
                # Time spent waiting for a CPU does not count against the wall limit, up to a stretch
                # (core.MAX_WALL_STRETCH on the host, passed in as "max_wall_seconds").
                waited = confine.cpu_wait_seconds(slot.pid, time.monotonic() - start)
                later = start + min(wall + waited, request["max_wall_seconds"])
                if later > time.monotonic():
                    deadline = later
                    continue
                starved = time.monotonic() - start - waited < wall
                timed_out = exited = True
                peak = confine.peak_rss_mb(slot.pid)  # measured while the sample's processes still live
                slot.kill()
                selector.unregister(slot.pidfd)
                remaining = 5.0
            events = selector.select(max(remaining, 0.05) if not exited else 5.0)
            if not events and exited:
                break  # a writer outlived the namespace: cannot happen, but never hang on it
            for key, _ in events:
                if key.fd == 0:
                    slot.kill()  # the job that started the pool died: end the sample and the sandbox now
                    os._exit(0)
                if key.fd == slot.pidfd:
                    exited = True
                    selector.unregister(slot.pidfd)
                    continue
                chunk = os.read(key.fd, 65536)
                if chunk:
                    tails[key.fd].add(chunk)
                else:
                    selector.unregister(key.fd)
    seconds = time.monotonic() - start
    status, waited_peak, cpu = slot.ended()  # the zygote has reaped the whole namespace by now
    _empty("/tmp", keep)
    _empty("/dev/shm", set())
    return {
        "returncode": None if timed_out else _status_code(status),
        "timed_out": timed_out,
        "starved": starved,
        "waited_seconds": waited,
        "stdout": tails[slot.out_r].data.decode("utf-8", errors="replace"),
        "stderr": tails[slot.err_r].data.decode("utf-8", errors="replace"),
        "seconds": seconds,
        "peak_memory_mb": peak if timed_out else waited_peak,
        "cpu_seconds": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", action="append", default=[], help="/tmp entry holding the interpreter (a mount point)")
    parser.add_argument("--preload", default="", help="comma-separated modules to import before forking samples")
    parser.add_argument("--seccomp", required=True, help="the compiled syscall filter every sample gets")
    args = parser.parse_args()
    keep = set(args.keep)
    with open(args.seccomp, "rb") as handle:
        bpf = handle.read()
    # Imported once here, a fork finds them ready (each sample still gets its own copy of their state;
    # random reseeds itself in every forked child).
    for module in filter(None, args.preload.split(",")):
        importlib.import_module(module)
    _check(_libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "subreaper")
    channel, zygote_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    zygote = os.fork()  # before the first request is read: see the module docstring
    if zygote == 0:
        channel.close()
        _zygote(zygote_end, bpf)
    zygote_end.close()
    protocol_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(os.open("/dev/null", os.O_WRONLY), 1)  # stray prints must not corrupt the protocol
    slot = _Slot(channel)
    for line in sys.stdin:
        try:
            answer = run_one(json.loads(line), keep, slot)
        except Exception:  # noqa: BLE001 - report; the host replaces this worker
            answer = {"error": traceback.format_exc(limit=3)}
            protocol_out.write(json.dumps(answer) + "\n")
            protocol_out.flush()
            return
        protocol_out.write(json.dumps(answer) + "\n")
        protocol_out.flush()
        slot = _Slot(channel)  # the next namespace is made while the host reads the answer
    slot.discard()
    channel.close()
    os.waitpid(zygote, 0)


if __name__ == "__main__":
    main()
