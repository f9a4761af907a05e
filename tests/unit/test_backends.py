"""The transformers backend on a tiny randomly initialised Llama (seconds to build, no training)."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfalign.backends import TransformersBackend, cut_at_stop, make_backend
from selfalign.generation import GenerationRequest, SamplingSpec
from selfalign.teacher import build_model, train_tokenizer

CONTEXT = 128
TEXTS = ["def add(a, b):\n    return a + b\n" * 20, "for item in items:\n    print(item)\n" * 20]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    torch.manual_seed(0)
    tokenizer = train_tokenizer([], TEXTS, vocab_size=300)
    model = build_model(tokenizer, {"max_position_embeddings": CONTEXT, "num_hidden_layers": 1})
    path = tmp_path_factory.mktemp("random-llama")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def backend(model_dir: Path) -> TransformersBackend:
    return TransformersBackend(str(model_dir), device="cpu", batch_size=4, threads=2)


def sampled(prompt: str, seed: int, n: int = 2) -> GenerationRequest:
    return GenerationRequest(prompt, SamplingSpec(n=n, temperature=1.0, top_p=0.95, max_new_tokens=12, seed=seed))


def greedy(prompt: str, max_new_tokens: int = 12) -> GenerationRequest:
    return GenerationRequest(prompt, SamplingSpec(max_new_tokens=max_new_tokens))


def test_cut_at_stop_cuts_before_the_earliest_stop_string() -> None:
    assert cut_at_stop("abc</r>def## x", ("## ", "</r>")) == ("abc", True)
    assert cut_at_stop("abc", ("</r>",)) == ("abc", False)
    assert cut_at_stop("abc", ()) == ("abc", False)


def test_make_backend_names_missing_and_unknown_backends(model_dir: Path) -> None:
    with pytest.raises(ValueError, match="base_url is empty"):
        make_backend("openai", base_url="", model="m", tokenizer_path=str(model_dir))
    with pytest.raises(ValueError, match="unknown generation backend 'nope'"):
        make_backend("nope")
    assert make_backend("transformers", model_path=str(model_dir), device="cpu").name == "transformers"


def test_versions_and_context(backend: TransformersBackend, model_dir: Path) -> None:
    versions = backend.versions()
    assert versions["model"] == str(model_dir) and versions["torch"] and versions["transformers"]
    assert backend.max_context == CONTEXT
    assert backend.count_tokens("def add(a, b):") > 0


def test_sampling_is_reproducible_whatever_else_is_in_the_call(backend: TransformersBackend) -> None:
    alone = backend.generate([sampled("def add(", seed=7)])
    mixed = backend.generate([greedy("for item"), sampled("for", seed=1), sampled("def add(", seed=7)])
    assert mixed[2] == alone[0]
    assert len(alone[0]) == 2
    other_seed = backend.generate([sampled("def add(", seed=8)])
    assert other_seed[0] != alone[0]


def test_greedy_batched_equals_greedy_alone(backend: TransformersBackend) -> None:
    prompts = ["def add(a, b):", "for", "print(item)\n", "def", "return a", "items"]
    batched = backend.generate([greedy(p) for p in prompts])
    for prompt, completions in zip(prompts, batched):
        assert backend.generate([greedy(prompt)]) == [completions]


def test_too_long_prompt_is_a_clear_error(backend: TransformersBackend) -> None:
    long_prompt = "def add(a, b):\n    return a + b\n" * 40
    request = greedy(long_prompt, max_new_tokens=16)
    assert backend.count_tokens(long_prompt) + 16 > backend.max_context
    assert not backend.fits(request)
    with pytest.raises(ValueError, match="exceeds the model context"):
        backend.generate([request])


def test_greedy_with_several_samples_is_rejected(backend: TransformersBackend) -> None:
    with pytest.raises(ValueError, match="n must be 1"):
        backend.generate([GenerationRequest("def", SamplingSpec(n=2, temperature=0.0), key="row-3")])


def test_progress_reports_every_batch(model_dir: Path) -> None:
    calls: list[tuple[int, int]] = []
    backend = TransformersBackend(str(model_dir), device="cpu", batch_size=2, progress=lambda d, t: calls.append((d, t)))
    backend.generate([greedy("def", 4), greedy("for", 4), greedy("print", 4), sampled("x", 0, n=1)])
    assert calls[-1] == (4, 4)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert len(calls) == 3  # two greedy batches of 2, one sampled request


def test_stop_strings_are_matched_in_the_generated_text_only(backend: TransformersBackend) -> None:
    """A prompt that ends in the first half of a stop string whose second half the model writes first:
    generate's own stop_strings stopped there (an empty completion); only generated text counts."""
    prompt = "def add(a, b):\n    return a"
    free = backend.generate([greedy(prompt, max_new_tokens=10)])[0][0]
    assert len(free.text) >= 2 and free.finish_reason == "length"
    stop = prompt[-3:] + free.text[:2]  # begins in the prompt, ends in the completion's first characters
    assert stop not in free.text
    stopped = backend.generate([GenerationRequest(prompt, SamplingSpec(max_new_tokens=10, stop=(stop,)))])[0][0]
    assert stopped == free  # not cut: the stop string is not in the generated text

    # A stop string inside the generated text still stops generation there, with the text cut before it.
    inner = free.text[2:5]
    cut = backend.generate([GenerationRequest(prompt, SamplingSpec(max_new_tokens=10, stop=(inner,)))])[0][0]
    assert cut.finish_reason == "stop" and cut.text == free.text[: free.text.index(inner)]
    assert cut.num_tokens < free.num_tokens
