"""What the README tells a user to run needs only the README's install (`pip install -e .`, no extras):
every package those commands import is reachable from the main dependencies."""
import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
# Imported by `snakemake --report` (snakemake.report), which Snakemake itself does not require.
README_COMMAND_NEEDS = {"pygments", "jinja2", "snakemake"}


def closure(requirements):
    """Names of the installed distributions reached from `requirements`, extras and markers applied."""
    seen, todo = set(), [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        if name in seen or (req.marker and not req.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        try:
            todo += [Requirement(r) for r in metadata.requires(req.name) or []]
        except metadata.PackageNotFoundError:
            pass
    return seen


def test_readme_commands_need_no_extras():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reached = closure(project["dependencies"])
    assert README_COMMAND_NEEDS <= reached, f"add to [project] dependencies: {sorted(README_COMMAND_NEEDS - reached)}"
    assert "pygments" in {Requirement(r).name.lower() for r in project["dependencies"]}  # pinned in constraints.txt
    assert re.search(r"(?im)^pygments==", (REPO / "constraints.txt").read_text())
