"""MinHash-LSH near-deduplication of seeds (datasketch 2.0), in two phases.

1. ``signatures``: MinHash per record with ``MinHash.bulk`` (one shared set of permutations, chunks
   of ``BULK_CHUNK`` documents), per shard, shards in parallel processes (``shard_signatures``); only
   the hash values are kept, the compact form ``LeanMinHash`` keeps.
2. ``cluster``: one pass over all shards' signatures. The bands are cut with datasketch's optimal
   (b, r) for the threshold, exactly as ``MinHashLSH`` cuts them, but bucketed with numpy over the
   whole signature matrix; every bucket links its members to its first one, and connected
   components of those links are the clusters (the same clusters as inserting each ``LeanMinHash``
   into a ``MinHashLSH`` and closing over its query results, ``cluster_with_lsh``, which the tests
   and the benchmark compare against). The representative is the cluster's smallest id.
3. Per shard, ``keep_set`` is the ids to keep (the rule ``near_dedup_seeds`` filters every shard with it).

Shingling follows the defaults of ChenghaoMou/text-dedup, which the reference used for the seed
near-dedup at Jaccard 0.5: tokens ``re.split(r"\\W+", text.lower())`` without empties, word 5-grams
joined by a space, and a text of fewer than 5 tokens is one shingle of all its tokens (text-dedup
silently dropped such rows; here they take part). The reference's other flags were not recorded;
text-dedup's num_perm was 250 or 256, the default here is 128 (configurable). Hashing is
datasketch's default (sha1, "affine32" permutations), not text-dedup's own implementation, so
signatures are not bit-identical to the reference's; the band layout uses the same optimal (b, r).
As in text-dedup, every pair that shares an LSH band is a duplicate; no Jaccard re-check follows.
"""

from __future__ import annotations

import multiprocessing
import os
import re
from concurrent.futures import ProcessPoolExecutor
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from datasketch import LeanMinHash, MinHash, MinHashLSH

from .lifetime import die_with_parent

NGRAM = 5
DEFAULT_NUM_PERM = 128
DEFAULT_SEED = 42  # text-dedup's default seed
DEFAULT_THRESHOLD = 0.5  # the reference's seed near-dedup threshold
BULK_CHUNK = 4096
_NON_WORD = re.compile(r"\W+")


@dataclass
class Signatures:
    ids: list[str]
    hashvalues: np.ndarray  # shape (len(ids), num_perm), one MinHash per row; uint32 when the values fit
    num_perm: int
    seed: int
    scheme: str  # datasketch permutation scheme; sketches of different schemes cannot be compared

    def __post_init__(self) -> None:
        if self.hashvalues.shape != (len(self.ids), self.num_perm):
            raise ValueError(f"hashvalues shape {self.hashvalues.shape} != ({len(self.ids)}, {self.num_perm})")


def shingles(text: str, ngram: int = NGRAM) -> set[bytes]:
    """Word n-grams of ``text``; a text with no word token gets the single shingle ``b""``."""
    tokens = [token for token in _NON_WORD.split(text.lower()) if token]
    if len(tokens) < ngram:
        return {" ".join(tokens).encode("utf-8")}
    return {" ".join(tokens[i : i + ngram]).encode("utf-8") for i in range(len(tokens) - ngram + 1)}


def signatures(
    records: Iterable[dict[str, Any]],
    text_field: str,
    num_perm: int = DEFAULT_NUM_PERM,
    seed: int = DEFAULT_SEED,
    id_field: str = "seed_id",
    shingler: Callable[[str], set[bytes]] = shingles,
) -> Signatures:
    """MinHash signatures of ``record[text_field]``, labelled by ``record[id_field]``; ``shingler``
    turns a text into its shingles (selection passes the reference's final-dedup tokenisation)."""
    ids: list[str] = []

    def shingle_sets() -> Iterator[set[bytes]]:
        for index, record in enumerate(records):
            for name in (id_field, text_field):
                if not isinstance(record.get(name), str):
                    raise ValueError(f"record {index}: field '{name}' missing or not a string")
            ids.append(record[id_field])
            yield shingler(record[text_field])

    # MinHash.bulk shares one set of permutations across documents; chunks bound the MinHash objects
    # alive at once, and only the hash values are kept.
    template = MinHash(num_perm=num_perm, seed=seed)
    rows: list[np.ndarray] = []
    sets = shingle_sets()
    while chunk := list(islice(sets, BULK_CHUNK)):
        rows.extend(sketch.hashvalues for sketch in MinHash.bulk(chunk, num_perm=num_perm, seed=seed))
    values = np.stack(rows) if rows else np.empty((0, num_perm), dtype=template.hashvalues.dtype)
    if values.size and values.max() <= np.iinfo(np.uint32).max:  # datasketch's default scheme: 32-bit values
        values = values.astype(np.uint32)  # half the disk and memory of the global step; LeanMinHash widens again
    return Signatures(ids, values, num_perm, seed, template.scheme)


def _shard_signatures(job: tuple[str, str, int, int]) -> Signatures:
    from .records import read_stage  # in the worker process

    path, text_field, num_perm, seed = job
    return signatures(read_stage(path, "seeds"), text_field=text_field, num_perm=num_perm, seed=seed)


def shard_signatures(
    paths: list[str], text_field: str, num_perm: int = DEFAULT_NUM_PERM, seed: int = DEFAULT_SEED, workers: int = 1
) -> list[Signatures]:
    """``signatures`` of every shard file (seed records), in ``paths`` order, ``workers`` shards at a time."""
    jobs = [(str(path), text_field, num_perm, seed) for path in paths]
    if workers <= 1 or len(jobs) <= 1:
        return [_shard_signatures(job) for job in jobs]
    # Workers forked by this process (the thread that forks them waits in map), each killed by the kernel
    # when this process dies, also by a SIGKILL of this process alone; otherwise they would run on, orphaned.
    with ProcessPoolExecutor(
        max_workers=min(workers, len(jobs)),
        mp_context=multiprocessing.get_context("fork"),
        initializer=die_with_parent,
        initargs=(os.getpid(),),
    ) as pool:
        return list(pool.map(_shard_signatures, jobs))


def _find(parent: dict[str, str], item: str) -> str:
    root = item
    while parent[root] != root:
        root = parent[root]
    while parent[item] != root:  # path compression
        parent[item], item = root, parent[item]
    return root


def _union(parent: dict[str, str], a: str, b: str) -> None:
    root_a, root_b = _find(parent, a), _find(parent, b)
    if root_a != root_b:  # the smaller id becomes the root, so the root is the cluster's smallest id
        parent[max(root_a, root_b)] = min(root_a, root_b)


def _merged(signatures_list: list[Signatures], num_perm: int) -> dict[str, tuple[np.ndarray, int, str]]:
    """id -> (hash values, seed, scheme) over all shards; an id seen twice must carry the same sketch."""
    merged: dict[str, tuple[np.ndarray, int, str]] = {}
    for sigs in signatures_list:
        if sigs.num_perm != num_perm:
            raise ValueError(f"signatures with num_perm {sigs.num_perm}, expected {num_perm}")
        for sid, values in zip(sigs.ids, sigs.hashvalues):
            if sid in merged and not np.array_equal(merged[sid][0], values):
                raise ValueError(f"id {sid} has two different signatures")
            merged[sid] = (values, sigs.seed, sigs.scheme)
    if len({(seed, scheme) for _, seed, scheme in merged.values()}) > 1:
        raise ValueError("signatures were computed with different seeds or schemes and cannot be compared")
    return merged


def _matrix(signatures_list: list[Signatures], num_perm: int) -> tuple[list[str], np.ndarray]:
    """Sorted distinct ids and their hash values (one row each) over all shards."""
    if any(sigs.num_perm != num_perm for sigs in signatures_list):
        raise ValueError(f"signatures with num_perm {[s.num_perm for s in signatures_list]}, expected {num_perm}")
    if len({(sigs.seed, sigs.scheme) for sigs in signatures_list if sigs.ids}) > 1:
        raise ValueError("signatures were computed with different seeds or schemes and cannot be compared")
    ids = np.array([sid for sigs in signatures_list for sid in sigs.ids], dtype=str)
    values = np.concatenate([sigs.hashvalues for sigs in signatures_list]) if signatures_list else np.empty((0, num_perm))
    order = np.argsort(ids, kind="stable")
    ids, values = ids[order], values[order]
    first = np.ones(len(ids), dtype=bool)
    first[1:] = ids[1:] != ids[:-1]
    repeats = np.flatnonzero(~first)
    if repeats.size:  # an id seen twice (in two shards) must carry the same sketch
        heads = np.maximum.accumulate(np.where(first, np.arange(len(ids)), 0))
        differs = np.any(values[repeats] != values[heads[repeats]], axis=1)
        if differs.any():
            raise ValueError(f"id {ids[repeats[differs][0]]} has two different signatures")
    values = values[first]
    if values.size and values.max() <= np.iinfo(np.uint32).max:  # datasketch's values fit 32 bits: half the memory
        values = values.astype(np.uint32)
    return ids[first].tolist(), np.ascontiguousarray(values)


def band_layout(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) that datasketch's MinHashLSH picks for ``threshold`` and ``num_perm``."""
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return lsh.b, lsh.r


def cluster(
    signatures_list: list[Signatures], threshold: float = DEFAULT_THRESHOLD, num_perm: int = DEFAULT_NUM_PERM
) -> dict[str, str]:
    """Map every id to its cluster's representative, the smallest id in the cluster.

    Two ids are linked when all ``r`` hash values of one of the ``b`` bands are equal (an LSH
    candidate pair); clusters are the connected components. Ids are sorted first, so the result does
    not depend on the order of shards or records.
    """
    ids, values = _matrix(signatures_list, num_perm)
    count = len(ids)
    if count == 0:
        return {}
    bands, rows = band_layout(threshold, num_perm)
    index = np.arange(count)
    sources, targets = [], []
    for band in range(bands):
        block = np.ascontiguousarray(values[:, band * rows : (band + 1) * rows])
        keys = block.view(np.dtype((np.void, block.dtype.itemsize * rows))).ravel()
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        head = first[inverse.ravel()]  # the bucket's first (smallest) row
        linked = head != index
        sources.append(index[linked])
        targets.append(head[linked])
    source, target = np.concatenate(sources), np.concatenate(targets)
    graph = coo_matrix((np.ones(len(source), dtype=np.int8), (source, target)), shape=(count, count))
    _, labels = connected_components(graph, directed=False)
    smallest = np.full(labels.max() + 1, count)
    np.minimum.at(smallest, labels, index)  # rows are in id order: the smallest row is the smallest id
    representative = smallest[labels]
    return {sid: ids[rep] for sid, rep in zip(ids, representative.tolist())}


def cluster_with_lsh(
    signatures_list: list[Signatures], threshold: float = DEFAULT_THRESHOLD, num_perm: int = DEFAULT_NUM_PERM
) -> dict[str, str]:
    """``cluster`` computed one ``LeanMinHash`` at a time through ``MinHashLSH`` query/insert and union-find.

    The slow, obviously-right form: tests and the benchmark check that ``cluster`` agrees with it.
    """
    merged = _merged(signatures_list, num_perm)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    parent = {sid: sid for sid in merged}
    for sid in sorted(merged):
        values, seed, scheme = merged[sid]
        sketch = LeanMinHash(seed=seed, hashvalues=values, scheme=scheme)
        for other in lsh.query(sketch):
            _union(parent, sid, str(other))
        lsh.insert(sid, sketch)
    return {sid: _find(parent, sid) for sid in sorted(merged)}


def keep_set(mapping: dict[str, str]) -> set[str]:
    """The ids that represent their cluster."""
    return {sid for sid, representative in mapping.items() if sid == representative}
