"""Child processes that die with the job that started them, however the job ends.

A job is killed by a signal to its process group (Snakemake, ``kill -9 -PGID``, Ctrl-C) or, on Slurm,
by its cgroup; sometimes only its main process dies (the OOM killer, ``kill -9 PID``). Tools such as
pyright (a Python wrapper that starts node) or the DeepSpeed launcher (a runner, a launcher, one
process per rank) start children of their own, which a plain ``subprocess`` call would leave running
in the second case, and which a new session would hide from the first.

``guarded(argv)`` runs ``argv`` under a small guardian (this file run as a script, standard library
only), which stays in the job's process group, so a signal to the group reaches it and everything
below it, and

- gets ``SIGTERM`` from the kernel when the job's process dies (``PR_SET_PDEATHSIG``; checked
  against a parent that died before it was armed),
- is a child subreaper (``PR_SET_CHILD_SUBREAPER``), so whatever ``argv`` starts and orphans stays
  below it instead of moving to init,
- on ``SIGTERM``/``SIGINT``/``SIGHUP``, and when ``argv`` exits, kills every process still below it, then
  exits as ``argv`` did (same code, or killed by the same signal).

Process-pool workers, which start nothing of their own, need no guardian: ``die_with_parent`` as the
pool's initializer ties each to the job. The death signal follows the *thread* that started the
guardian: start it from a thread that waits for it (as ``subprocess.run`` does). Processes that leave the subtree by themselves (a daemon that
double-forks into a new session *and* escapes the subreaper) are out of reach; the sandbox's own
processes are tied to the job by bubblewrap's ``--die-with-parent`` and pid namespaces instead.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36
_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def guarded(argv: Sequence[str]) -> list[str]:
    """``argv`` wrapped in the guardian: it and every process it starts die with this process."""
    if not sys.platform.startswith("linux"):  # prctl and /proc are Linux's; elsewhere run it as it is
        return list(argv)
    return [sys.executable, "-I", "-S", str(Path(__file__).resolve()), str(os.getpid()), "--", *argv]


def die_with_parent(parent: int) -> None:
    """In a child process (e.g. a process pool's ``initializer``, with ``initargs=(os.getpid(),)``): the
    kernel kills it when ``parent``, which must be its parent, dies; if that already happened, it exits now.

    For pool workers, which run library code only and start nothing themselves, this is enough: SIGKILL
    (nothing to clean up), and they must be forked by the job itself (the ``fork`` start method; a
    fork server would be their parent instead) from a thread that lives as long as the pool.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0):
        raise OSError(ctypes.get_errno(), f"prctl(PR_SET_PDEATHSIG): {os.strerror(ctypes.get_errno())}")
    if os.getppid() != parent:  # the parent died before the death signal was armed, or is not our parent
        os._exit(128 + signal.SIGKILL)


def _parents() -> dict[int, int]:
    """pid -> parent pid of every live (non-zombie) process, from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rpartition(b")")[2].split()  # the command name may hold spaces and ')'
        except OSError:  # exited meanwhile
            continue
        if fields and fields[0] not in (b"Z", b"X"):
            parents[int(entry)] = int(fields[1])
    return parents


def descendants(pid: int) -> list[int]:
    """Live processes below ``pid``."""
    children: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, []))
    return found


def _kill_below(me: int) -> None:
    """SIGKILL every process below ``me`` until none is left (a process may fork while the list is read)."""
    for _ in range(100):
        below = descendants(me)
        if not below:
            return
        for pid in below:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _reap()


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _guard(parent: int, argv: list[str]) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) or libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0):
        sys.stderr.write(f"guardian: prctl failed: {os.strerror(ctypes.get_errno())}\n")
        os._exit(126)
    if os.getppid() != parent:  # the job died before the death signal was armed
        os._exit(128 + signal.SIGTERM)
    me = os.getpid()
    signal.pthread_sigmask(signal.SIG_BLOCK, _FORWARDED)  # no handler may run before the child exists
    child = os.fork()
    if child == 0:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORWARDED)
        try:
            os.execvp(argv[0], argv)
        except OSError as err:
            sys.stderr.write(f"guardian: cannot run {argv[0]}: {err}\n")
            os._exit(127)

    def end(signum: int, frame: object) -> None:
        _kill_below(me)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(me, signum)  # die of the same signal, as the caller expects from a killed child

    for signum in _FORWARDED:
        signal.signal(signum, end)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORWARDED)
    while True:
        pid, status = os.wait()  # adopted orphans are reaped here too
        if pid == child:
            break
    _kill_below(me)  # whatever the command left running
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        if signum not in (signal.SIGKILL, signal.SIGSTOP):  # those have no handler to reset
            signal.signal(signum, signal.SIG_DFL)
        os.kill(me, signum)
    os._exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit("usage: lifetime.py PARENT_PID -- COMMAND [ARGS...]")
    _guard(int(sys.argv[1]), sys.argv[3:])
