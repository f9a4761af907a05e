"""Length statistics of few-shot files' I->R answers: median prose words, code lines and test asserts.

    .venv/bin/python benchmarks/fewshot_stats.py [FILE ...]

Without arguments it reads the two shipped files. Pass the reference's published
``prompts/self-ossinstruct-fewshot.txt`` (either code generation) to put its figures beside them;
BENCHMARKS.md quotes the numbers.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

from selfalign.fewshot import load_instruct_fewshot  # noqa: E402
from selfalign.fewshot_stats import summary  # noqa: E402

SHIPPED = Path(__file__).resolve().parents[1] / "workflow" / "resources" / "fewshot"
COLUMNS = (
    "examples",
    "i2r_examples",
    "median_prose_words",
    "median_test_prose_words",
    "median_code_lines",
    "median_test_asserts",
)


def main(paths: list[str]) -> None:
    files = [Path(p) for p in paths] or [SHIPPED / "self_oss_instruct.yaml", SHIPPED / "self_oss_instruct_sc2.yaml"]
    print("| file | format | " + " | ".join(COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))
    for path in files:
        fewshot = load_instruct_fewshot(path)
        row = summary(fewshot)
        print(f"| {path.name} | {fewshot.format.name} | " + " | ".join(f"{row[c]:g}" for c in COLUMNS) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
