"""The files the Snakemake workflow catalog and citation tools read."""

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_catalog_settings_use_the_keys_the_catalog_reads():
    settings = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())
    usage = settings["usage"]
    # the catalog's page template knows these three methods; every one we list must be true
    assert set(usage["software-stack-deployment"]) <= {"conda", "apptainer", "apptainer+conda"}
    assert usage["software-stack-deployment"]["conda"] is True
    assert usage["report"] is True  # read at usage.report, not under software-stack-deployment
    assert (REPO / "workflow" / "Snakefile").exists() and (REPO / "config" / "README.md").exists()


def test_apptainer_deployment_has_a_container():
    settings = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())
    if any("apptainer" in key for key in settings["usage"]["software-stack-deployment"]):
        assert 'container: "docker://' in (REPO / "workflow" / "Snakefile").read_text()


def test_citation_lists_the_reproduced_papers():
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["authors"]
    titles = [reference["title"] for reference in citation["references"]]
    assert any("SelfCodeAlign" in t for t in titles) and any("StarCoder 2" in t for t in titles)
