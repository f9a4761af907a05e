"""The library list that workflow/rules/library.smk puts into Snakemake's source cache is complete."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_library_module_is_cached_for_remote_modules():
    text = (REPO / "workflow" / "rules" / "library.smk").read_text()
    listed = re.search(r"LIBRARY_MODULES = \[(.*?)\]", text, re.S).group(1)
    names = re.findall(r'"([^"]+)"', listed)
    library = REPO / "workflow" / "scripts" / "selfalign"
    on_disk = sorted(p.relative_to(library).with_suffix("").as_posix() for p in library.rglob("*.py"))
    assert sorted(names) == on_disk, "add the new module to LIBRARY_MODULES in workflow/rules/library.smk"
    assert not [p for p in library.rglob("*") if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts]
