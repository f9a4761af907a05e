"""The library list that workflow/rules/library.smk puts into Snakemake's source cache is complete."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_library_module_is_cached_for_remote_modules():
    text = (REPO / "workflow" / "rules" / "library.smk").read_text()
    listed = re.search(r"LIBRARY_MODULES = \[(.*?)\]", text, re.S).group(1)
    names = re.findall(r'"([^"]+)"', listed)
    on_disk = sorted(p.stem for p in (REPO / "workflow" / "scripts" / "selfalign").glob("*.py"))
    assert sorted(names) == on_disk, "add the new module to LIBRARY_MODULES in workflow/rules/library.smk"
    assert not [p for p in (REPO / "workflow" / "scripts" / "selfalign").iterdir() if p.is_file() and p.suffix != ".py"]


def test_no_rule_script_shares_a_name_with_a_library_module():
    scripts = {p.stem for p in (REPO / "workflow" / "scripts").glob("*.py")}
    library = {p.stem for p in (REPO / "workflow" / "scripts" / "selfalign").glob("*.py")}
    not_yet_renamed = {"evalplus_data"}  # remove once its rule script or library module has its own name
    assert not (scripts & library) - not_yet_renamed, f"one name per thing: rename {sorted(scripts & library)}"
