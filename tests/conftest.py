"""Put the library (scripts/) on sys.path, as Snakemake does for the rule scripts."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))
