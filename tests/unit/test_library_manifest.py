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


def test_no_rule_script_shares_a_name_with_a_library_module():
    scripts = {p.stem for p in (REPO / "workflow" / "scripts").glob("*.py")}
    library = {p.stem for p in (REPO / "workflow" / "scripts" / "selfalign").glob("*.py")}
    assert not scripts & library, f"one name per thing: rename {sorted(scripts & library)}"
