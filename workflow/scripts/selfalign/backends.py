"""Generation backends: their registry (``BACKENDS``: kind -> settings, implementation, conda env), the
typed settings each rule script builds once from its params, and the transformers (HF ``generate``) backend.

The transformers backend runs anywhere torch runs (the CPU demo, a single GPU). vLLM in-process and
an OpenAI-compatible server live in ``vllm_backends`` (imported only when asked for).

Reproducibility contract: a request's completions depend only on its prompt and ``spec`` (seed
included), not on which other requests share the call. Sampled requests therefore run one request
per ``generate`` call (``num_return_sequences=n``) right after ``torch.manual_seed(spec.seed)``.
Greedy requests are batched with left padding; they use no randomness, although padding can in
rare cases flip a near-tie argmax through floating-point differences.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .generation import (
    Completion,
    FinishReason,
    GenerationBackend,
    GenerationRequest,
    SamplingSpec,
    check_spec,
)

ProgressCallback = Callable[[int, int], None]  # (requests done, requests total)

_DTYPES = ("auto", "float32", "bfloat16", "float16")


# --- Typed settings of each backend, built once in the rule script from the rule's params ---------------


@dataclass(frozen=True)
class TransformersSettings:
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 8

    @classmethod
    def from_config(cls, generation: Mapping[str, Any], gpus: int) -> TransformersSettings:
        return cls(device=str(generation["device"]), batch_size=int(generation["batch_size"]))


@dataclass(frozen=True)
class VLLMSettings:
    tensor_parallel_size: int = 1
    dtype: str = "auto"
    max_model_len: int | None = None
    gpu_memory_utilization: float = 0.9
    enable_prefix_caching: bool = True
    chunk_requests: int = 4096
    enforce_eager: bool = False
    engine_options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, generation: Mapping[str, Any], gpus: int) -> VLLMSettings:
        # Tensor parallelism is the job's GPU count: one engine spans every GPU the job was given.
        return cls(tensor_parallel_size=max(1, gpus), **dict(generation.get("vllm") or {}))


@dataclass(frozen=True)
class OpenAISettings:
    base_url: str = ""
    model: str | None = None  # None: the model path, vLLM's default served name
    api_key_env: str = "OPENAI_API_KEY"  # the key itself never enters settings, params, logs or stats
    max_concurrency: int = 64
    max_retries: int = 5
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 60.0
    timeout_seconds: float = 600.0
    max_context: int | None = None

    @classmethod
    def from_config(cls, generation: Mapping[str, Any], gpus: int) -> OpenAISettings:
        options = {k: v for k, v in dict(generation.get("openai") or {}).items() if k != "api_key"}
        options["base_url"] = options.get("base_url") or os.environ.get("OPENAI_BASE_URL", "")
        return cls(**options)


BackendSettings = TransformersSettings | VLLMSettings | OpenAISettings


@dataclass(frozen=True)
class BackendKind:
    """One row of the generation-backend registry."""

    settings: type[TransformersSettings] | type[VLLMSettings] | type[OpenAISettings]
    implementation: str  # "module:Class", imported only when the backend is built (vLLM is heavy)
    config_keys: tuple[str, ...]  # the keys of the ``generation`` section this backend reads
    model_argument: str  # the constructor argument that receives the rule's model directory
    # the env file (workflow/envs/) of the rules that generate with this backend, per rule role
    conda_envs: Mapping[str, str] = field(default_factory=dict)
    takes_threads: bool = False  # whether the constructor sets torch's CPU threads
    uses_job_gpus: bool = True  # False: the model runs elsewhere (a server), the job needs no GPU


# The registry of generation backends: adding one is a module, a row here and its schema entry.
# Rule roles: "generate" (judge, concepts, instructions, responses), "evaluate" (EvalPlus scoring).
BACKENDS: dict[str, BackendKind] = {
    "transformers": BackendKind(
        settings=TransformersSettings,
        implementation="selfalign.backends:TransformersBackend",
        config_keys=("device", "batch_size"),
        model_argument="model_path",
        conda_envs={"generate": "generate.yaml", "evaluate": "evaluate.yaml"},
        takes_threads=True,
    ),
    "vllm": BackendKind(
        settings=VLLMSettings,
        implementation="selfalign.vllm_backends:VLLMBackend",
        config_keys=("vllm",),
        model_argument="model_path",
        conda_envs={"generate": "generate-vllm.yaml", "evaluate": "generate-vllm.yaml"},
    ),
    "openai": BackendKind(
        settings=OpenAISettings,
        implementation="selfalign.vllm_backends:OpenAIBackend",
        config_keys=("openai",),
        model_argument="tokenizer_path",
        conda_envs={"generate": "generate.yaml", "evaluate": "evaluate.yaml"},
        uses_job_gpus=False,
    ),
}


def backend_kind(kind: str) -> BackendKind:
    try:
        return BACKENDS[kind]
    except KeyError:
        raise ValueError(f"unknown generation backend '{kind}' (expected {', '.join(BACKENDS)})") from None


def job_gpus(generation: Mapping[str, Any], gpus: int) -> int:
    """GPUs a generating job asks for: the configured count, or none when the model runs on a server."""
    return gpus if backend_kind(str(generation["backend"])).uses_job_gpus else 0


def backend_params(generation: Mapping[str, Any]) -> dict[str, Any]:
    """The part of the ``generation`` section a generating rule's ``params:`` carry: the chosen backend and
    its own keys only (another backend's options must not rerun the rule), never the API key."""
    kind = str(generation["backend"])
    params: dict[str, Any] = {"backend": kind}
    for key in backend_kind(kind).config_keys:
        value = generation.get(key)
        params[key] = {k: v for k, v in value.items() if k != "api_key"} if isinstance(value, Mapping) else value
    return params


@dataclass(frozen=True)
class BackendChoice:
    """The backend a rule generates with and its typed settings (from the ``generation`` config section)."""

    kind: str
    settings: BackendSettings
    gpus: int = 0  # GPUs the job was given

    @classmethod
    def from_config(cls, generation: Mapping[str, Any], gpus: int = 0) -> BackendChoice:
        kind = str(generation["backend"])
        return cls(kind=kind, settings=backend_kind(kind).settings.from_config(generation, gpus), gpus=gpus)

    def fingerprint(self) -> dict[str, Any]:
        """What a resumable job compares between attempts (holds no secret)."""
        return {"backend": self.kind, "backend_settings": asdict(self.settings)}


def make_backend(kind: str, **options: Any) -> GenerationBackend:
    """Build the backend named ``kind`` with its constructor ``options``."""
    module, _, name = backend_kind(kind).implementation.partition(":")
    return getattr(importlib.import_module(module), name)(**options)


def open_backend(
    choice: BackendChoice,
    model_path: str,
    threads: int | None = None,
    progress: ProgressCallback | None = None,
    job: str = "generation",
) -> GenerationBackend:
    """The backend of ``choice`` on the model (or, for a server, the tokenizer) in ``model_path``. A job that
    was given GPUs but sees none fails here, before any model is loaded (``job`` names it in the message)."""
    entry = backend_kind(choice.kind)
    if entry.uses_job_gpus and choice.gpus > 0:
        from .devices import require_gpus

        require_gpus(job, choice.gpus)
    options: dict[str, Any] = {**asdict(choice.settings), entry.model_argument: str(model_path), "progress": progress}
    if entry.takes_threads:
        options["threads"] = threads
    if isinstance(choice.settings, OpenAISettings):
        options["model"] = choice.settings.model or str(model_path)
    if isinstance(choice.settings, VLLMSettings):
        options["engine_options"] = dict(choice.settings.engine_options)
    return make_backend(choice.kind, **options)


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` before the earliest occurrence of any stop string; say whether one matched."""
    positions = [pos for pos in (text.find(s) for s in stop if s) if pos >= 0]
    if not positions:
        return text, False
    return text[: min(positions)], True


class GeneratedTextStop:
    """A ``generate`` stopping criterion that looks for the stop strings in the generated tokens only.

    Each step decodes the last tokens of every row after ``prompt_length`` (left padding aligns every
    prompt's end there); a stop string of B bytes lies within the last B + 1 tokens the step it
    completes, since every token is at least one byte.
    """

    def __init__(self, tokenizer: Any, stop: Sequence[str], prompt_length: int):
        self.tokenizer = tokenizer
        self.stop = [s for s in stop if s]
        self.prompt_length = prompt_length
        self.window = max(len(s.encode("utf-8")) for s in self.stop) + 1

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        generated = input_ids[:, self.prompt_length :]
        texts = self.tokenizer.batch_decode(
            generated[:, -self.window :], skip_special_tokens=False, clean_up_tokenization_spaces=False
        )
        return torch.tensor([any(s in text for s in self.stop) for text in texts], device=input_ids.device)


class TransformersBackend:
    """HF transformers ``generate`` on CPU or one CUDA device, loaded from a local directory."""

    name = "transformers"

    def __init__(
        self,
        model_path: str,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 8,
        threads: int | None = None,
        progress: ProgressCallback | None = None,
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got '{dtype}'")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if threads is not None:
            torch.set_num_threads(threads)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if dtype == "auto":
            # CPU matmuls in half precision are slow and less exact; GPUs prefer bf16 where supported.
            if device.startswith("cuda"):
                dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
            else:
                dtype = "float32"

        self.model_path = str(model_path)
        self.device = device
        self.batch_size = batch_size
        self.progress = progress
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self.tokenizer.padding_side = "left"  # decoder-only batching: prompts end where generation starts
        # Any: transformers' generate mixin typing rejects concrete models under pyright.
        self.model: Any = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=getattr(torch, dtype))
        self.model.to(device).eval()

        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        if eos is None:
            raise ValueError(f"{self.model_path}: neither the generation config nor the tokenizer defines an EOS token")
        self._eos_ids: list[int] = list(eos) if isinstance(eos, (list, tuple)) else [eos]
        pad = self.tokenizer.pad_token_id
        self._pad_id: int = self._eos_ids[0] if pad is None else pad
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token_id = self._pad_id

    @property
    def max_context(self) -> int:
        """Prompt + generated tokens the model can attend to."""
        return int(self.model.config.max_position_embeddings)

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes as a prompt (special tokens the tokenizer adds included)."""
        return len(self.tokenizer(text).input_ids)

    def fits(self, request: GenerationRequest) -> bool:
        """Whether the prompt leaves room for ``max_new_tokens`` in the context window."""
        return self.count_tokens(request.prompt) + request.spec.max_new_tokens <= self.max_context

    def versions(self) -> dict[str, str]:
        import transformers

        return {
            "backend": self.name,
            "torch": self._torch.__version__,
            "transformers": transformers.__version__,
            "model": self.model_path,
        }

    def generate(self, requests: list[GenerationRequest]) -> list[list[Completion]]:
        for request in requests:
            self._check(request)
        results: dict[int, list[Completion]] = {}
        done = 0
        for indices in self._batches(requests):
            batch = [requests[i] for i in indices]
            for i, completions in zip(indices, self._generate_batch(batch)):
                results[i] = completions
            done += len(indices)
            if self.progress is not None:
                self.progress(done, len(requests))
        return [results[i] for i in range(len(requests))]

    def _check(self, request: GenerationRequest) -> None:
        check_spec(request)
        spec = request.spec
        where = f"request '{request.key}'" if request.key else "request"
        prompt_tokens = self.count_tokens(request.prompt)
        if prompt_tokens + spec.max_new_tokens > self.max_context:
            raise ValueError(
                f"{where}: prompt of {prompt_tokens} tokens + max_new_tokens {spec.max_new_tokens} exceeds the "
                f"model context of {self.max_context}; skip it with fits()/count_tokens() and count the drop"
            )

    def _batches(self, requests: list[GenerationRequest]) -> list[list[int]]:
        """Sampled requests alone (seeded per request); greedy ones grouped by spec, similar lengths together."""
        batches: list[list[int]] = []
        greedy: dict[tuple[int, tuple[str, ...]], list[int]] = {}
        for i, request in enumerate(requests):
            if request.spec.temperature > 0:
                batches.append([i])
            else:
                greedy.setdefault((request.spec.max_new_tokens, request.spec.stop), []).append(i)
        for group in greedy.values():
            group.sort(key=lambda i: len(requests[i].prompt))
            batches.extend(group[start : start + self.batch_size] for start in range(0, len(group), self.batch_size))
        return batches

    def _generate_batch(self, batch: list[GenerationRequest]) -> list[list[Completion]]:
        torch = self._torch
        spec = batch[0].spec  # a batch shares max_new_tokens and stop strings (see _batches)
        sampled = spec.temperature > 0
        inputs = self.tokenizer([r.prompt for r in batch], return_tensors="pt", padding=True).to(self.device)
        options: dict[str, Any] = dict(
            max_new_tokens=spec.max_new_tokens,
            do_sample=sampled,
            num_return_sequences=spec.n,
            pad_token_id=self._pad_id,
            eos_token_id=self._eos_ids,
            repetition_penalty=1.0,  # override any checkpoint default: the reference has no penalty
        )
        if sampled:
            # top_k 0 turns off the library's default top_k 50: the reference samples with temperature and top_p only.
            options.update(temperature=spec.temperature, top_p=spec.top_p, top_k=0)
            torch.manual_seed(spec.seed)
        if spec.stop:
            # Not generate's own stop_strings: they match the end of the whole sequence, so a stop string
            # that begins in the prompt (a base-model prompt ending in "#" with the stop "##") ends the
            # completion after a token or two.
            prompt_length = inputs["input_ids"].shape[1]
            options["stopping_criteria"] = [GeneratedTextStop(self.tokenizer, spec.stop, prompt_length)]
        with torch.inference_mode():
            output = self.model.generate(**inputs, **options)
        generated = output[:, inputs["input_ids"].shape[1] :].tolist()
        completions = [self._completion(ids, spec) for ids in generated]
        return [completions[k * spec.n : (k + 1) * spec.n] for k in range(len(batch))]

    def _completion(self, ids: list[int], spec: SamplingSpec) -> Completion:
        eos_at = next((k for k, token in enumerate(ids) if token in self._eos_ids), None)
        if eos_at is not None:
            ids = ids[:eos_at]
        else:
            # A row that stopped early in a batch is padded to the batch's length.
            while ids and ids[-1] == self._pad_id:
                ids.pop()
        text = self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        text, stopped = cut_at_stop(text, spec.stop)
        reason: FinishReason
        if stopped:
            reason = "stop"
        elif eos_at is not None:
            reason = "eos"
        elif len(ids) >= spec.max_new_tokens:
            reason = "length"
        else:
            # Ended early with neither EOS nor a stop string in its text: a batch neighbour's padding
            # cannot cause this (it is stripped above), so say so rather than guess.
            reason = "stop"
        num_tokens = len(ids) + (eos_at is not None)
        return Completion(text=text, finish_reason=reason, num_tokens=num_tokens)
