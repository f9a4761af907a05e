"""The generation interface: prompts + a sampling spec -> completions with a finish reason.

Backends implement ``GenerationBackend.generate``. Prompts are raw completion-mode text (few-shot
prompts for a base model, as the reference does); no chat template is applied here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

FinishReason = Literal["stop", "eos", "length"]


@dataclass(frozen=True)
class SamplingSpec:
    n: int = 1
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 1.0
    max_new_tokens: int = 512
    stop: tuple[str, ...] = ()
    seed: int = 0  # per-row seed: base seed + absolute row index

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> SamplingSpec:
        """The sampling keys of a config section (``generation.<step>``, the judge's); other keys ignored."""
        return cls(
            n=int(section["n"]),
            temperature=float(section["temperature"]),
            top_p=float(section["top_p"]),
            max_new_tokens=int(section["max_new_tokens"]),
        )

    def for_row(self, stop: tuple[str, ...], seed: int) -> SamplingSpec:
        """This spec with one prompt's stop strings and one row's sampling seed."""
        return replace(self, stop=tuple(stop), seed=seed)


@dataclass(frozen=True)
class StepSettings:
    """One Self-OSS-Instruct step's settings: few-shot examples per prompt and the sampling spec
    (its stop strings and seed are filled in per prompt and per row)."""

    shots: int
    sampling: SamplingSpec

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> StepSettings:
        """From ``generation.concepts`` / ``.instructions`` / ``.responses``."""
        return cls(shots=int(section["shots"]), sampling=SamplingSpec.from_config(section))


@dataclass(frozen=True)
class Completion:
    text: str  # generated text, cut before the first stop string (the stop string is not included)
    finish_reason: FinishReason  # "stop": a stop string matched; "eos": the model ended; "length": cut by max_new_tokens
    num_tokens: int = 0


@dataclass
class GenerationRequest:
    prompt: str
    spec: SamplingSpec
    key: str = ""  # caller's id for the row, carried through for logging
    meta: dict = field(default_factory=dict)


class GenerationBackend(Protocol):
    name: str

    def generate(self, requests: list[GenerationRequest]) -> list[list[Completion]]:
        """Return, for every request, ``spec.n`` completions in order."""
        ...

    def count_tokens(self, text: str) -> int: ...

    @property
    def max_context(self) -> int: ...

    def versions(self) -> dict[str, str]: ...


def check_spec(request: GenerationRequest) -> None:
    """Reject sampling settings no backend can honour, naming the request."""
    spec = request.spec
    where = f"request '{request.key}'" if request.key else "request"
    if spec.n < 1:
        raise ValueError(f"{where}: n must be >= 1, got {spec.n}")
    if spec.temperature < 0:
        raise ValueError(f"{where}: temperature must be >= 0, got {spec.temperature}")
    if spec.temperature == 0 and spec.n != 1:
        raise ValueError(f"{where}: greedy decoding (temperature 0) gives identical samples; n must be 1, got {spec.n}")
    if not 0 < spec.top_p <= 1:
        raise ValueError(f"{where}: top_p must be in (0, 1], got {spec.top_p}")
    if spec.max_new_tokens < 1:
        raise ValueError(f"{where}: max_new_tokens must be >= 1, got {spec.max_new_tokens}")
