"""The Stack v1 source, on local files laid out as the hub serves them (the hub is not reachable in tests)."""

import json
import logging
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from selfalign import stack
from selfalign.seeds import iter_document_records

GOOD = 'def area(width, height):\n    """Area of a width x height rectangle."""\n    return width * height\n'
OTHER = 'def double(x):\n    """Twice x."""\n    return 2 * x\n'
# the-stack-dedup's Python rows carry the file in `content` and its path in `max_stars_repo_path`.
ROWS = [
    {"hexsha": "a1", "size": len(GOOD), "content": GOOD, "max_stars_repo_path": "pkg/geometry.py", "lang": "Python"},
    {"hexsha": "b2", "size": 9, "content": "def f(:\n", "max_stars_repo_path": "pkg/broken.py", "lang": "Python"},
    {"hexsha": "c3", "size": 5, "content": "\x00\x01bin", "max_stars_repo_path": "pkg/blob.py", "lang": "Python"},
    {"hexsha": "d4", "size": 2000, "content": "x = 1\n" * 400, "max_stars_repo_path": "pkg/huge.py", "lang": "Python"},
    {"hexsha": "e5", "size": len(GOOD), "content": GOOD, "max_stars_repo_path": "fork/geometry.py", "lang": "Python"},
    {"hexsha": "f6", "size": len(OTHER), "content": OTHER, "max_stars_repo_path": None, "lang": "Python"},
]


def _parquet_layout(root):
    folder = root / "data" / "python"
    folder.mkdir(parents=True)
    for index, part in enumerate((ROWS[:3], ROWS[3:])):
        pq.write_table(pa.Table.from_pylist(part), folder / f"train-{index:05d}-of-00002.parquet")
    return [str(root / "data")]


def _jsonl_layout(root):
    path = root / "python.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return [str(path)]


@pytest.mark.parametrize("layout", [_parquet_layout, _jsonl_layout])
def test_local_stack_files_stream_into_counted_seed_records(tmp_path, layout):
    cfg = {"local_files": layout(tmp_path), "dataset": "unused", "data_dir": None, "split": "train"}
    documents = list(stack.stack_documents(stack.stream_rows(cfg), "content", "max_stars_repo_path"))
    assert [d["path"] for d in documents] == [
        "pkg/geometry.py#0", "pkg/broken.py#1", "pkg/blob.py#2", "pkg/huge.py#3", "fork/geometry.py#4", "row#5",
    ]
    skipped = Counter()
    records = list(iter_document_records(documents, skipped, max_bytes=1000))
    assert [r["source"] for r in records] == ["pkg/geometry.py#0:1", "row#5:1"]
    assert skipped == {"syntax_error": 1, "binary": 1, "too_large": 1, "duplicate": 1}


def test_stack_limit_and_missing_text_field(tmp_path):
    cfg = {"local_files": _jsonl_layout(tmp_path)}
    assert len(list(stack.stack_documents(stack.stream_rows(cfg), "content", None, limit=2))) == 2
    with pytest.raises(ValueError, match="row 0: field 'code'"):
        next(stack.stack_documents(stack.stream_rows(cfg), "code", None))


def test_local_files_must_be_one_known_format(tmp_path):
    (tmp_path / "a.parquet").write_bytes(b"")
    (tmp_path / "b.jsonl").write_text("")
    with pytest.raises(ValueError, match="mixes parquet and JSON"):
        stack.local_data_files([str(tmp_path)])
    with pytest.raises(FileNotFoundError, match="missing"):
        stack.local_data_files([str(tmp_path / "missing")])


def test_token_never_reaches_the_log(tmp_path, monkeypatch):
    secret = "hf_" + "x" * 30
    monkeypatch.setenv("HF_TOKEN", secret)
    log_file = tmp_path / "rule.log"
    logger = logging.getLogger("stack-test")
    handler = logging.FileHandler(log_file)
    logger.addHandler(handler)
    try:
        stack.redact_secrets(logger)
        logger.warning("request failed with headers %s", {"authorization": f"Bearer {secret}"})
    finally:
        logger.removeHandler(handler)
        handler.close()
    text = log_file.read_text()
    assert secret not in text and "Bearer ***" in text
