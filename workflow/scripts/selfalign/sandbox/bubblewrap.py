"""One fresh bubblewrap sandbox per sample.

Each program is written to a private file and run by a fresh ``python3 -I -B`` of the workflow's own
interpreter, so generated code sees the same Python and packages as the workflow: no network, the
system read-only, a private size-capped /tmp, an empty environment, rlimits, its own uid (as root),
and the syscall filter (``seccomp``) loaded by bwrap itself (``--seccomp FD``) right before the
program starts.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

from .core import Limits, Verdict
from .host import ProgramFile, UidPool, ancestors, execute, interpreter, interpreter_dirs, launcher_env, rlimit_argv
from .seccomp import filter_bpf

ROOT_NAMESPACES = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]


class BubblewrapSandbox:
    name = "bubblewrap"

    def __init__(self) -> None:
        self.as_root = os.geteuid() == 0
        self.uids = UidPool.shared() if self.as_root else None
        self.python_dirs = interpreter_dirs()
        self.bpf = filter_bpf()  # built now: a missing libseccomp fails here, not as retried infra-errors

    def argv(self, program_path: str, limits: Limits, uid: int | None, seccomp_fd: int | None = None) -> list[str]:
        if uid is None:
            namespaces = ["--unshare-all"]
            drop_privileges: list[str] = []
        else:
            # As root the uid must change for real (RLIMIT_NPROC is not enforced for root, even mapped
            # inside a user namespace), so bwrap keeps the real uid and the program drops to ``uid``
            # with setpriv; everything but the user namespace is unshared, as --unshare-all would.
            namespaces = ROOT_NAMESPACES
            drop_privileges = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs"]
        binds = ["--ro-bind", program_path, "/sandbox/main.py"]
        if seccomp_fd is not None:
            binds += ["--seccomp", str(seccomp_fd)]
        argv = self.bwrap_argv(namespaces, limits, binds)
        return argv + drop_privileges + rlimit_argv(limits) + [interpreter(), "-I", "-B", "/sandbox/main.py"]

    def bwrap_argv(self, namespaces: list[str], limits: Limits, binds: list[str], die_with_parent: bool = True) -> list[str]:
        """bwrap and its options up to ``--``: the filesystem layout, environment and ``binds``."""
        mount_points = sorted({"/etc", "/sandbox", *(a for d in self.python_dirs for a in ancestors(d))})
        argv = ["bwrap", *namespaces, *(["--die-with-parent"] if die_with_parent else []), "--new-session"]
        for directory in mount_points:  # bwrap would create them mode 0700, unreadable by the sandbox uid
            argv += ["--perms", "0755", "--dir", directory]
        argv += [
            "--ro-bind", "/usr", "/usr",
            "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
            "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/sbin", "/sbin",
            "--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache",
            "--proc", "/proc", "--dev", "/dev",
            # world-writable with the sticky bit, like a host /tmp: bwrap would make them root's 0755
            "--perms", "1777", "--size", str(4 * 1024 * 1024), "--tmpfs", "/dev/shm",
            "--perms", "1777", "--size", str(limits.tmp_mb * 1024 * 1024), "--tmpfs", "/tmp",
        ]
        # An interpreter under /tmp (a venv in a checkout there) lies below the fresh tmpfs: its
        # ancestors must be made again, readable, or bwrap creates them 0700.
        for directory in mount_points:
            if directory.startswith(("/tmp/", "/dev/shm/")):
                argv += ["--perms", "0755", "--dir", directory]
        for directory in self.python_dirs:
            argv += ["--ro-bind", directory, directory]
        return argv + binds + [
            "--remount-ro", "/", "--chdir", "/tmp",
            "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp",
            "--setenv", "LANG", "C.UTF-8",
            "--",
        ]

    def run(self, program: str, limits: Limits) -> Verdict:
        uid = self.uids.free.get() if self.uids else None
        # bwrap reads the filter from a descriptor: a pipe holding the compiled program (small enough
        # for the pipe's buffer), read and closed by bwrap before the sample starts.
        read_end, write_end = os.pipe()
        try:
            os.write(write_end, self.bpf)
            os.close(write_end)
            with ProgramFile(program) as path:
                argv = self.argv(path, limits, uid, seccomp_fd=read_end)
                return execute(argv, limits, cwd="/", env=launcher_env(), pass_fds=(read_end,))
        finally:
            os.close(read_end)
            if self.uids and uid is not None:
                self.uids.free.put(uid)

    def versions(self) -> dict[str, str]:
        try:
            bwrap = subprocess.run(["bwrap", "--version"], capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError) as err:
            bwrap = f"unavailable ({err})"
        return {"sandbox": self.name, "bwrap": bwrap, "python": platform.python_version(), "interpreter": sys.executable}

    def close(self) -> None:
        """Nothing outlives a sample here."""
