"""Run untrusted generated Python in a sandbox and classify the outcome.

Modules, each with one job (none imports another's private names; ``factory`` alone knows every backend):

- ``core``: ``Limits``, ``Verdict``, the ``Sandbox`` Protocol, and ``classify``/``verdict_of``, the one
  place where an ending becomes pass, fail, timeout, memory or infra-error;
- ``host``: host-side plumbing of the one-process-per-sample backends (wall timer, capped output,
  peak memory, uids);
- ``seccomp``: the syscall filter, compiled with libseccomp; ``confine``: stdlib-only code that runs
  inside sandboxes (rlimits, loading the filter, peak memory);
- backends: ``bubblewrap`` (one sandbox per sample), ``pool`` + ``supervisor`` (long-lived bubblewrap
  sandboxes running sample after sample), ``apptainer`` (clusters), ``process`` (unsafe, debugging);
- ``factory``: ``ExecutionSettings`` (the config's ``execution`` section, typed once) and
  ``make_sandbox``; ``batch``: ``run_many``.
"""

from .batch import run_many
from .bubblewrap import BubblewrapSandbox
from .core import MIB, Limits, Sandbox, Status, Verdict, classify, verdict_of
from .factory import BACKENDS, ExecutionSettings, make_sandbox

__all__ = [
    "BACKENDS", "MIB", "BubblewrapSandbox", "ExecutionSettings", "Limits", "Sandbox", "Status", "Verdict",
    "classify", "make_sandbox", "run_many", "verdict_of",
]
