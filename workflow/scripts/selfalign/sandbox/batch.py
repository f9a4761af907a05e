"""Running many programs through one sandbox, in parallel, in input order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import replace

from .core import Limits, Sandbox, Verdict


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
