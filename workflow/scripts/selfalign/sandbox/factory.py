"""The execution settings, typed once from the config's ``execution`` section, and the one registry of
sandbox backends that turns them into a sandbox."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .apptainer import ApptainerSandbox
from .bubblewrap import BubblewrapSandbox
from .core import Limits, Sandbox
from .pool import POOL_STARTS, PoolSandbox, PoolUnavailable
from .process import ProcessSandbox

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExecutionSettings:
    """What every rule that runs generated code needs to build its sandbox (config section ``execution``)."""

    backend: str = "pool"
    pool_start: str = "fork"
    apptainer_image: str | None = None
    infra_retries: int = 2
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"execution.backend: unknown sandbox backend {self.backend!r}: expected one of {', '.join(BACKENDS)}")
        if self.pool_start not in POOL_STARTS:
            raise ValueError(f"execution.pool_start: {self.pool_start!r} is not one of {', '.join(POOL_STARTS)}")

    @classmethod
    def from_config(cls, execution: Mapping[str, Any]) -> ExecutionSettings:
        """The settings of the config's ``execution`` section (defaults for keys it leaves out)."""
        own = {f.name for f in fields(cls)} - {"limits"}
        limit_names = {f.name for f in fields(Limits)}
        unknown = sorted(set(execution) - own - limit_names)
        if unknown:
            raise ValueError(f"execution.{unknown[0]}: unknown setting (known: {', '.join(sorted(own | limit_names))})")
        return cls(**{key: execution[key] for key in own if key in execution}, limits=Limits.from_config(execution))


def _pool(settings: ExecutionSettings) -> Sandbox:
    try:
        return PoolSandbox(start=settings.pool_start)  # type: ignore[arg-type]
    except PoolUnavailable as err:
        log.warning("%s: using one bubblewrap sandbox per sample instead", err)
        return BubblewrapSandbox()


def _process(settings: ExecutionSettings) -> Sandbox:
    log.warning("sandbox backend 'process' only sets rlimits and a syscall filter: generated code can reach the network and files")
    return ProcessSandbox()


# backend name -> how to build it from the settings
BACKENDS: dict[str, Callable[[ExecutionSettings], Sandbox]] = {
    "pool": _pool,
    "bubblewrap": lambda settings: BubblewrapSandbox(),
    "apptainer": lambda settings: ApptainerSandbox(settings.apptainer_image),
    "process": _process,
}


def make_sandbox(settings: ExecutionSettings) -> Sandbox:
    """The sandbox named by ``settings.backend``; "pool" falls back to "bubblewrap" where it cannot run."""
    return BACKENDS[settings.backend](settings)
