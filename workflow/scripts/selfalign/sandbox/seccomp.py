"""The syscall filter every backend installs in front of a sample, compiled to BPF by libseccomp.

Modelled on Docker's default profile: everything a program needs is allowed, and the calls that reach
state outliving the sample or the kernel's administration fail with EPERM: kernel keyrings (keys
persist per uid, so the next sample with the same uid, or a host process, would find them), tracing
and profiling, BPF, userfaultfd, io_uring, mounts and new namespaces (also through ``clone`` flags),
kernel modules, the clocks, reboot/kexec, swap, quotas, accounting and file handles. ``clone3`` answers
ENOSYS, as in Docker: its flags sit behind a pointer a filter cannot read, and the C library then falls
back to ``clone``, whose flags are checked. Calls of another architecture (the 32-bit ABI on x86-64)
kill the process, libseccomp's default for a foreign architecture.

The filter is built here, on the host, with libseccomp's API (PyPI ``pyseccomp``: ctypes over
libseccomp.so.2); inside the sandbox it is only loaded (``bwrap --seccomp FD``, or
``confine.install_seccomp`` in the pool's supervisor and under Apptainer), so no sandbox needs
libseccomp.
"""

from __future__ import annotations

import errno
import functools
import os
import tempfile

BLOCKED = (
    # keyrings
    "add_key", "keyctl", "request_key",
    # tracing, profiling, BPF, page-fault handling, asynchronous I/O rings
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "perf_event_open", "bpf", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    # mounts, namespaces, root changes
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "fsopen", "fsconfig", "fsmount", "fspick",
    "move_mount", "open_tree", "mount_setattr",
    # kernel modules, kexec, reboot, swap, quotas, accounting
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot",
    "swapon", "swapoff", "quotactl", "acct", "syslog",
    # clocks and host identity
    "clock_settime", "clock_adjtime", "settimeofday", "adjtimex", "sethostname", "setdomainname",
    # raw hardware and file handles
    "iopl", "ioperm", "open_by_handle_at", "name_to_handle_at", "lookup_dcookie", "uselib", "vhangup",
)
# clone(2) flags that make new namespaces: NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET.
CLONE_NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)


class SeccompUnavailable(RuntimeError):
    pass


@functools.cache
def filter_bpf() -> bytes:
    """The compiled filter (a BPF program for the native architecture)."""
    try:
        import pyseccomp as seccomp
    except (ImportError, RuntimeError) as err:  # pyseccomp raises RuntimeError when libseccomp is missing
        raise SeccompUnavailable(
            f"cannot build the sandbox's syscall filter: {err} (install libseccomp2 and `pip install pyseccomp`)"
        ) from err
    rules = seccomp.SyscallFilter(seccomp.ALLOW)
    for name in BLOCKED:
        try:
            rules.add_rule(seccomp.ERRNO(errno.EPERM), name)
        except OSError:
            continue  # not a syscall on this architecture (iopl on arm64...)
    for flag in CLONE_NAMESPACE_FLAGS:
        rules.add_rule(seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    with tempfile.TemporaryFile() as handle:
        rules.export_bpf(handle)
        handle.seek(0)
        return handle.read()


def syscall_numbers(names: tuple[str, ...] = BLOCKED) -> dict[str, int]:
    """Native syscall numbers of ``names`` that exist here (for tests that call them directly)."""
    import pyseccomp as seccomp

    numbers = {}
    for name in names:
        number = seccomp.resolve_syscall(seccomp.Arch.NATIVE, name)
        if number >= 0:
            numbers[name] = number
    return numbers


def filter_file(directory: str) -> str:
    """Write the compiled filter to ``directory``/seccomp.bpf, readable by the sample's uid; its path."""
    path = os.path.join(directory, "seccomp.bpf")
    with open(path, "wb") as handle:
        handle.write(filter_bpf())
    os.chmod(path, 0o444)
    return path
