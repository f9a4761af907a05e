import json
import random

import numpy as np
import pytest

from selfalign.neardedup import cluster, keep_set, shard_signatures, shingles, signatures

BASE = '''def moving_average(values, window):
    """Return the moving averages of `values` over a sliding window of size `window`.

    The first average covers values[0:window]; a window larger than the input gives an empty list.
    """
    if window <= 0:
        raise ValueError("window must be positive")
    averages = []
    running_total = sum(values[:window])
    if len(values) >= window:
        averages.append(running_total / window)
    for index in range(window, len(values)):
        running_total += values[index] - values[index - window]
        averages.append(running_total / window)
    return averages
'''
RENAMED = BASE.replace("index", "position")
COMMENTED = BASE.replace("    for index", "    # slide the window one step at a time, reusing the previous total\n    for index")
UNRELATED_1 = '''def parse_headers(lines):
    """Parse HTTP header lines into a dictionary with lower-cased names.

    Continuation lines that start with whitespace are appended to the previous header.
    """
    headers = {}
    last = None
    for line in lines:
        if line[:1] in (" ", "\\t") and last is not None:
            headers[last] += " " + line.strip()
            continue
        name, _, value = line.partition(":")
        last = name.strip().lower()
        headers[last] = value.strip()
    return headers
'''
UNRELATED_2 = '''def gcd(a, b):
    """Greatest common divisor of two integers by Euclid's algorithm."""
    while b:
        a, b = b, a % b
    return abs(a)
'''

RECORDS = [
    {"seed_id": "s-3", "seed": BASE},
    {"seed_id": "s-1", "seed": RENAMED},
    {"seed_id": "s-2", "seed": COMMENTED},
    {"seed_id": "s-4", "seed": UNRELATED_1},
    {"seed_id": "s-0", "seed": UNRELATED_2},
]
EXPECTED = {"s-0": "s-0", "s-1": "s-1", "s-2": "s-1", "s-3": "s-1", "s-4": "s-4"}


def test_shingles_are_lowercased_word_5grams():
    assert shingles("A b, C;d e F") == {b"a b c d e", b"b c d e f"}
    assert shingles("  short   text ") == {b"short text"}
    assert shingles("!!") == {b""}


def test_near_duplicates_cluster_to_the_smallest_id():
    mapping = cluster([signatures(RECORDS, "seed")], threshold=0.5)
    assert mapping == EXPECTED
    assert keep_set(mapping) == {"s-0", "s-1", "s-4"}


def test_result_does_not_depend_on_record_or_shard_order():
    for trial in range(5):
        shuffled = RECORDS[:]
        random.Random(trial).shuffle(shuffled)
        shards = [signatures(shuffled[:2], "seed"), signatures(shuffled[2:], "seed")]
        assert cluster(shards[::-1]) == EXPECTED


def test_shard_signatures_in_parallel_equal_serial(tmp_path):
    paths = []
    for index, part in enumerate((RECORDS[:2], RECORDS[2:], [])):
        path = tmp_path / f"{index:02d}.jsonl"
        path.write_text("".join(json.dumps({**record, "source": "local"}) + "\n" for record in part))
        paths.append(str(path))
    serial = shard_signatures(paths, "seed", num_perm=64, seed=7, workers=1)
    parallel = shard_signatures(paths, "seed", num_perm=64, seed=7, workers=2)
    assert [s.ids for s in parallel] == [s.ids for s in serial] == [[r["seed_id"] for r in RECORDS[:2]], [r["seed_id"] for r in RECORDS[2:]], []]
    assert all(np.array_equal(p.hashvalues, s.hashvalues) for p, s in zip(parallel, serial))
    assert cluster(parallel, num_perm=64) == EXPECTED


def test_incompatible_signatures_are_refused():
    with pytest.raises(ValueError, match="num_perm"):
        cluster([signatures(RECORDS, "seed", num_perm=64)], num_perm=128)
    with pytest.raises(ValueError, match="seeds or schemes"):
        cluster([signatures(RECORDS[:2], "seed", seed=1), signatures(RECORDS[2:], "seed", seed=2)])
    clash = [{"seed_id": "s-3", "seed": UNRELATED_2}]
    with pytest.raises(ValueError, match="s-3"):
        cluster([signatures(RECORDS, "seed"), signatures(clash, "seed")])


def test_same_id_in_two_shards_counts_once():
    assert cluster([signatures(RECORDS, "seed"), signatures(RECORDS[:1], "seed")]) == EXPECTED


def test_missing_field_names_the_record():
    with pytest.raises(ValueError, match="record 1: field 'seed'"):
        signatures([{"seed_id": "a", "seed": "x"}, {"seed_id": "b"}], "seed")


def test_empty_input():
    sigs = signatures([], "seed")
    assert sigs.hashvalues.shape == (0, 128)
    assert cluster([sigs]) == {} and keep_set({}) == set()


def _variants(count: int, rng: random.Random) -> list[dict[str, str]]:
    """Functions from a small vocabulary, with renamed-identifier and added-comment copies mixed in."""
    words = [f"name{i}" for i in range(60)]
    records = []
    for index in range(count):
        body = " ".join(rng.choice(words) for _ in range(40))
        text = f"def f{index}(x):\n    return {body}\n"
        records.append({"seed_id": f"s-{index:05d}", "seed": text})
        if index % 5 == 0:
            records.append({"seed_id": f"s-{index:05d}r", "seed": text.replace(f"f{index}(", "renamed(")})
        if index % 7 == 0:
            records.append({"seed_id": f"s-{index:05d}c", "seed": text + "    # an added comment\n"})
    return records


def test_numpy_banding_equals_minhashlsh_query_insert():
    from selfalign.neardedup import cluster_with_lsh

    records = _variants(400, random.Random(0))
    shards = [signatures(records[0::2], "seed"), signatures(records[1::2], "seed")]
    for threshold in (0.3, 0.5, 0.8):
        assert cluster(shards, threshold=threshold) == cluster_with_lsh(shards, threshold=threshold)
    mapping = cluster(shards, threshold=0.5)
    assert all(mapping[f"s-{i:05d}r"] == mapping[f"s-{i:05d}"] for i in range(0, 400, 5))
    assert all(mapping[f"s-{i:05d}c"] == mapping[f"s-{i:05d}"] for i in range(0, 400, 7))
