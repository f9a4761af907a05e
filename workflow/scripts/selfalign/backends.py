"""Generation backends: a factory and the transformers (HF ``generate``) backend.

The transformers backend runs anywhere torch runs (the CPU demo, a single GPU). vLLM in-process and
an OpenAI-compatible server live in ``vllm_backends`` (imported only when asked for).

Reproducibility contract: a request's completions depend only on its prompt and ``spec`` (seed
included), not on which other requests share the call. Sampled requests therefore run one request
per ``generate`` call (``num_return_sequences=n``) right after ``torch.manual_seed(spec.seed)``.
Greedy requests are batched with left padding; they use no randomness, although padding can in
rare cases flip a near-tie argmax through floating-point differences.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


def make_backend(kind: str, **options: Any) -> GenerationBackend:
    """Build the backend named ``kind`` with its constructor ``options``."""
    if kind == "transformers":
        return TransformersBackend(**options)
    if kind == "vllm":
        from .vllm_backends import VLLMBackend

        return VLLMBackend(**options)
    if kind == "openai":
        from .vllm_backends import OpenAIBackend

        return OpenAIBackend(**options)
    raise ValueError(f"unknown generation backend '{kind}' (expected transformers, vllm or openai)")


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
