"""vLLM backends: in-process ``vllm.LLM`` (GPU nodes) and an OpenAI-compatible server (vLLM, TGI).

Both send the same request fields, built by ``sampling_options`` (``SamplingParams`` and the
``/v1/completions`` body share the names n, temperature, top_p, max_tokens, stop, seed), and map
results with the same ``map_finish``. Each request carries its own seed (base seed + absolute row),
so a row's completions do not depend on which other rows share the call or the shard's chunking.

vLLM reports ``finish_reason`` "stop" both for the end-of-sequence token and for a stop string;
``stop_reason`` tells them apart (None: EOS; a string: that stop string; an int: a stop token id).
Servers that send no ``stop_reason`` (TGI) give "stop" for both, and the pipeline treats them alike.
The stop string itself is not part of the returned text, as with the transformers backend.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .generation import Completion, FinishReason, GenerationRequest, SamplingSpec, check_spec

ProgressCallback = Callable[[int, int], None]
log = logging.getLogger(__name__)

# HTTP statuses worth retrying: the server is overloaded, restarting or behind a flaky proxy.
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def sampling_options(spec: SamplingSpec) -> dict[str, Any]:
    """The request fields of one spec, named as both ``vllm.SamplingParams`` and ``/v1/completions`` name them."""
    return {
        "n": spec.n,
        "temperature": spec.temperature,
        "top_p": spec.top_p,
        "max_tokens": spec.max_new_tokens,
        "stop": list(spec.stop),
        "seed": spec.seed,
    }


def map_finish(finish_reason: str | None, stop_reason: int | str | None) -> FinishReason:
    """vLLM's (finish_reason, stop_reason) -> the pipeline's stop / eos / length."""
    if finish_reason == "length":
        return "length"
    if finish_reason != "stop":
        # "abort" or anything unknown: the completion did not end by itself; drop it like a cut one.
        return "length"
    return "stop" if isinstance(stop_reason, str) else "eos"


def _check(request: GenerationRequest, count_tokens: Callable[[str], int], max_context: int) -> None:
    check_spec(request)
    prompt_tokens = count_tokens(request.prompt)
    if prompt_tokens + request.spec.max_new_tokens > max_context:
        where = f"request '{request.key}'" if request.key else "request"
        raise ValueError(
            f"{where}: prompt of {prompt_tokens} tokens + max_new_tokens {request.spec.max_new_tokens} exceeds the "
            f"model context of {max_context}; skip it with count_tokens() and count the drop"
        )


class _LocalTokenizer:
    """Context length and prompt-token counts of both vLLM paths: the model's own tokenizer, loaded locally."""

    tokenizer: Any
    _max_context: int

    @property
    def max_context(self) -> int:
        return self._max_context

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text).input_ids)


class VLLMBackend(_LocalTokenizer):
    """One ``vllm.LLM`` per job; every prompt of a chunk goes into one ``generate`` call."""

    name = "vllm"

    def __init__(
        self,
        model_path: str,
        tensor_parallel_size: int = 1,
        dtype: str = "auto",
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.9,
        enable_prefix_caching: bool = True,
        chunk_requests: int = 4096,
        enforce_eager: bool = False,
        engine_options: dict[str, Any] | None = None,
        progress: ProgressCallback | None = None,
    ):
        from vllm import LLM

        if chunk_requests < 1:
            raise ValueError(f"chunk_requests must be >= 1, got {chunk_requests}")
        self.model_path = str(model_path)
        self.chunk_requests = chunk_requests
        self.progress = progress
        self.tensor_parallel_size = max(1, tensor_parallel_size)
        # Prefix caching: the few-shot system prompt and shots are shared by many prompts of a shard.
        self.llm = LLM(
            model=self.model_path,
            tensor_parallel_size=self.tensor_parallel_size,
            dtype=dtype,
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            enable_prefix_caching=enable_prefix_caching,
            enforce_eager=enforce_eager,
            **(engine_options or {}),  # any other vllm.LLM / EngineArgs setting, e.g. max_num_batched_tokens
        )
        self.tokenizer = self.llm.get_tokenizer()
        self._max_context = int(self.llm.llm_engine.model_config.max_model_len)

    def versions(self) -> dict[str, str]:
        import torch
        import vllm

        return {
            "backend": self.name,
            "vllm": vllm.__version__,
            "torch": torch.__version__,
            "model": self.model_path,
            "tensor_parallel_size": str(self.tensor_parallel_size),
        }

    def generate(self, requests: list[GenerationRequest]) -> list[list[Completion]]:
        from vllm import SamplingParams

        for request in requests:
            _check(request, self.count_tokens, self.max_context)
        results: list[list[Completion]] = []
        for start in range(0, len(requests), self.chunk_requests):
            chunk = requests[start : start + self.chunk_requests]
            params = [SamplingParams(**sampling_options(r.spec)) for r in chunk]
            outputs = self.llm.generate([r.prompt for r in chunk], params, use_tqdm=False)
            for output in outputs:
                choices = sorted(output.outputs, key=lambda choice: choice.index)
                results.append(
                    [
                        Completion(
                            text=choice.text,
                            finish_reason=map_finish(choice.finish_reason, choice.stop_reason),
                            num_tokens=len(choice.token_ids),
                        )
                        for choice in choices
                    ]
                )
            if self.progress is not None:
                self.progress(len(results), len(requests))
        return results


class TransientServerError(RuntimeError):
    """A response worth retrying (see ``TRANSIENT_STATUSES``)."""


class OpenAIBackend(_LocalTokenizer):
    """``POST {base_url}/completions`` per request, at most ``max_concurrency`` in flight, with retries.

    ``base_url`` ends with ``/v1``. The API key comes from ``api_key`` or the environment variable
    named by ``api_key_env``; it is sent as a bearer token and never logged or reported. Prompt
    tokens are counted with the model's tokenizer, loaded locally from ``tokenizer_path``.
    """

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        tokenizer_path: str,
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        max_concurrency: int = 32,
        max_retries: int = 5,
        backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 60.0,
        timeout_seconds: float = 600.0,
        max_context: int | None = None,
        progress: ProgressCallback | None = None,
    ):
        import requests
        from transformers import AutoTokenizer

        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if not base_url:
            raise ValueError("base_url is empty: set generation.openai.base_url or OPENAI_BASE_URL")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.timeout_seconds = timeout_seconds
        self.progress = progress
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
        key = api_key or os.environ.get(api_key_env) or "EMPTY"  # vLLM without --api-key accepts any key
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {key}"
        self._requests = requests
        self._max_context = max_context or self._served_max_context() or int(self.tokenizer.model_max_length)
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0}

    def __repr__(self) -> str:  # no key in logs or tracebacks
        return f"OpenAIBackend(base_url={self.base_url!r}, model={self.model!r})"

    def _served_max_context(self) -> int | None:
        """vLLM lists ``max_model_len`` in ``/v1/models``; other servers may not."""
        try:
            response = self._call("GET", "/models", None)
        except RuntimeError as err:  # a server without /models (HTTP 404): fall back to the tokenizer
            log.warning("%s/models: %s; taking the context length from the tokenizer", self.base_url, err)
            return None
        for entry in response.get("data", []):
            if entry.get("id") == self.model and entry.get("max_model_len"):
                return int(entry["max_model_len"])
        return None

    def versions(self) -> dict[str, str]:
        return {"backend": self.name, "base_url": self.base_url, "model": self.model}

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        """One HTTP call with exponential backoff on transient failures (429, 5xx, connection errors)."""
        from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

        transient = (TransientServerError, self._requests.ConnectionError, self._requests.Timeout)

        @retry(
            retry=retry_if_exception_type(transient),
            wait=wait_exponential(multiplier=self.backoff_seconds, max=self.max_backoff_seconds),
            stop=stop_after_attempt(self.max_retries + 1),
            before_sleep=lambda state: log.warning(
                "%s %s: attempt %d failed (%s); retrying", method, path, state.attempt_number, state.outcome.exception()
            ),
            reraise=True,
        )
        def attempt() -> dict[str, Any]:
            response = self._session.request(method, self.base_url + path, json=body, timeout=self.timeout_seconds)
            if response.status_code in TRANSIENT_STATUSES:
                raise TransientServerError(f"HTTP {response.status_code}: {response.text[:200]}")
            if response.status_code >= 400:
                raise RuntimeError(f"{method} {self.base_url}{path}: HTTP {response.status_code}: {response.text[:500]}")
            return response.json()

        return attempt()

    def _complete(self, request: GenerationRequest) -> list[Completion]:
        body = {"model": self.model, "prompt": request.prompt, **sampling_options(request.spec)}
        reply = self._call("POST", "/completions", body)
        usage = reply.get("usage") or {}
        for field in self.usage:
            self.usage[field] += int(usage.get(field) or 0)
        choices = sorted(reply["choices"], key=lambda choice: choice["index"])
        if len(choices) != request.spec.n:
            raise RuntimeError(f"request '{request.key}': asked for {request.spec.n} choices, got {len(choices)}")
        return [
            Completion(
                text=choice["text"],
                finish_reason=map_finish(choice.get("finish_reason"), choice.get("stop_reason")),
                # Per-choice token counts are not in the reply; re-tokenising the text is close enough for stats.
                num_tokens=len(self.tokenizer(choice["text"], add_special_tokens=False).input_ids),
            )
            for choice in choices
        ]

    def generate(self, requests: list[GenerationRequest]) -> list[list[Completion]]:
        for request in requests:
            _check(request, self.count_tokens, self.max_context)
        results: list[list[Completion]] = []
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            # map keeps input order; the pool bounds how many requests are in flight.
            for completions in pool.map(self._complete, requests):
                results.append(completions)
                if self.progress is not None and (len(results) % 64 == 0 or len(results) == len(requests)):
                    self.progress(len(results), len(requests))
        return results

