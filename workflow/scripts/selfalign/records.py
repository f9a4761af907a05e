"""The record fields of every stage, and the lineage ids that tie a training pair to its seed.

Ids are content hashes, so they are stable across reruns and shard layouts:

- ``seed_id``        = ``s-`` + sha1(seed text)[:16]
- ``concepts_id``    = ``c-`` + hash(seed_id, concepts)
- ``instruction_id`` = ``i-`` + hash(concepts_id, instruction)
- ``response_id``    = ``r-`` + hash(instruction_id, sample index, response)
- ``verdict_id``     = ``v-`` + hash(response_id, verdict)

Each stage adds its fields and keeps everything upstream, so a final record carries the whole chain.
``FIELDS`` lists, per stage, the fields a reader of that stage's shards requires and their types;
``read_stage`` checks them and fails with file:line:field.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

from .shards import Record, read_jsonl


def content_hash(*parts: object, length: int = 16) -> str:
    digest = hashlib.sha1()
    for part in parts:
        digest.update(str(part).encode("utf-8"))
        digest.update(b"\x1f")  # unit separator: ("ab", "c") and ("a", "bc") hash differently
    return digest.hexdigest()[:length]


def seed_id(seed: str) -> str:
    return "s-" + hashlib.sha1(seed.encode("utf-8")).hexdigest()[:16]


def concepts_id(seed_id_: str, concepts: list[str]) -> str:
    return "c-" + content_hash(seed_id_, "\n".join(concepts))


def instruction_id(concepts_id_: str, instruction: str) -> str:
    return "i-" + content_hash(concepts_id_, instruction)


def response_id(instruction_id_: str, sample_index: int, response: str) -> str:
    return "r-" + content_hash(instruction_id_, sample_index, response)


def verdict_id(response_id_: str, verdict: str) -> str:
    return "v-" + content_hash(response_id_, verdict)


def sampling_seed(base_seed: int, row: int) -> int:
    """Per-row sampling seed, the reference's scheme: shards are order-independent and reruns reproduce."""
    return base_seed + row


FieldTypes = dict[str, type | tuple[type, ...]]

_SEED: FieldTypes = {"seed_id": str, "seed": str, "source": str}
_ROWED: FieldTypes = {**_SEED, "row": int}
_CONCEPTS: FieldTypes = {**_ROWED, "concepts_id": str, "concepts": list}
_INSTRUCTION: FieldTypes = {**_CONCEPTS, "instruction_id": str, "instruction": str, "category": str, "difficulty": str}
_RESPONSE: FieldTypes = {**_INSTRUCTION, "response_id": str, "sample_index": int, "response": str, "tests": str}
_VERDICT: FieldTypes = {**_RESPONSE, "verdict_id": str, "verdict": str}

FIELDS: dict[str, FieldTypes] = {
    "seeds": _SEED,  # extracted and filtered seed functions
    "final_seeds": _ROWED,  # after near-dedup: `row` is the absolute index used for sampling seeds
    "concepts": _CONCEPTS,
    "instructions": _INSTRUCTION,
    "responses": _RESPONSE,
    "verdicts": _VERDICT,
    "sft": {"instruction": str, "response": str, "seed_id": str, "response_id": str},
}

def read_stage(path: str | os.PathLike[str], stage: str) -> Iterator[Record]:
    """Read one shard of ``stage``, failing with file:line:field on a missing or mistyped field."""
    return read_jsonl(path, FIELDS[stage])

