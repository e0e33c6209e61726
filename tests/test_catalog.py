"""The Snakemake workflow catalog's conventions: the catalog file, a .test/ config (run by
tests/test_workflow.py), and the rule graph in docs/development.md kept current."""
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_catalog_file_says_how_to_deploy_and_report():
    usage = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())["usage"]
    assert usage["software-stack-deployment"]["conda"] is True
    assert usage["report"] is True
    for env in re.findall(r'conda:\s*\n\s*"([^"]+)"', "".join(p.read_text() for p in (REPO / "workflow/rules").glob("*.smk"))):
        assert (REPO / "workflow" / "rules" / env).resolve().exists(), env


def test_test_config_is_valid():
    from snakemake.utils import validate

    config = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))


def test_rule_graph_is_current():
    svg = (REPO / "workflow" / "report" / "rulegraph.svg").read_text()
    assert "workflow/report/rulegraph.svg" in (REPO / "docs" / "development.md").read_text()
    dot = subprocess.run([sys.executable, "-m", "snakemake", "--rulegraph", "--workflow-profile", "none"], cwd=REPO,
                         capture_output=True, text=True, timeout=300, check=True).stdout
    rules = set(re.findall(r'label = "(\w+)"', dot))
    drawn = set(re.findall(r">(\w+)</text>", svg))
    assert rules and rules == drawn, f"regenerate the rule graph of docs/development.md: {sorted(rules ^ drawn)}"
