"""Running many programs through one sandbox, in parallel, in input order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import replace

from .core import Limits, Sandbox, Verdict


def run_many(
    sandbox: Sandbox,
    programs: Sequence[str],
    limits: Limits | Sequence[Limits],
    workers: int,
    infra_retries: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> list[Verdict]:
    """Run every program on a pool of ``workers`` threads, in input order; retry only infra-errors.
    ``limits`` holds for every program, or is one per program."""
    per_program = [limits] * len(programs) if isinstance(limits, Limits) else list(limits)
    if len(per_program) != len(programs):
        raise ValueError(f"{len(per_program)} limits for {len(programs)} programs")

    def run_one(index: int) -> Verdict:
        program, own = programs[index], per_program[index]
        attempts, verdict = 1, sandbox.run(program, own)
        while verdict.status == "infra-error" and attempts <= infra_retries:
            attempts, verdict = attempts + 1, sandbox.run(program, own)
        return replace(verdict, attempts=attempts)

    verdicts: list[Verdict | None] = [None] * len(programs)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(run_one, index): index for index in range(len(programs))}
        for done, future in enumerate(as_completed(futures), start=1):
            verdicts[futures[future]] = future.result()
            if progress is not None:
                progress(done, len(programs))
    assert all(verdict is not None for verdict in verdicts)
    return verdicts  # type: ignore[return-value]
