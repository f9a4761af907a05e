"""Put the library (scripts/) on sys.path, as Snakemake does for the rule scripts, and the tests' shared helpers
(tests/*.py: vllm_server, proctree)."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))
sys.path.append(str(REPO / "tests"))  # appended: the test dirs' own conftest modules come first
