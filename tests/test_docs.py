"""The documentation can be followed: the README stays short, every repository path that the README,
docs/, the configs, profiles and the comments and docstrings of workflow/ and benchmarks/ name exists (so does
every #anchor they point at in a Markdown file, and every pointer of a test into docs/), and no text names a
file that is not in the repository."""
import importlib
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README_MAX_LINES = 200

# Top-level folders of the repository: a token starting with one of them is a repository path.
# results/ and data/ are left out: the workflow writes them.
TOP = ("workflow", "config", "docs", "benchmarks", "tests", "splits", "profiles", "envs", ".ci", ".test")
PATH = re.compile(r"(?<![\w/.$~-])(?:\.\./)*(?:" + "|".join(re.escape(t) for t in TOP) + r")/"
                  r"(?:\{[^}\s]*\}|<[^>\s]*>|[\w.+*…=-]|/)*(?:#[\w-]+)?")
LINK = re.compile(r"\]\(([^)\s]+)\)")  # Markdown links: [text](target)
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)
# Written by the workflow or a benchmark, not shipped: splits made at run time (`make_splits`), benchmark output.
GENERATED = ("splits/bm/", "benchmarks/out/")
# Paths in examples that stand for the user's own files: a dataset being added, a config of one's own, the
# config of a host workflow that uses medssl as a module.
EXAMPLES = {"splits/my_cells", "config/bm_only.yaml", "config/medssl.yaml"}
# A file of facts kept outside the repository: no text may name it or cite its sections ("... 3.4").
OUTSIDE = "REFERENCE" + ".md"
CITING_OUTSIDE = re.compile("REFERENCE" + r"(?:\.md|\s+(?:§\s*|section\s+)?\d)")


def texts():
    """(file, text) of every file whose named paths must exist, each as a whole: Markdown, the YAML of config/
    and profiles/ (comments and values), and the Python, Snakemake, reST and YAML files of workflow/ and
    benchmarks/ (docstrings, comments and the paths their code names)."""
    files = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "config").rglob("*.yaml")),
             REPO / "config" / "README.md", REPO / "profiles" / "README.md", REPO / "splits" / "README.md",
             *sorted((REPO / "profiles").rglob("*.yaml")), *sorted((REPO / "benchmarks").glob("*.md")),
             REPO / "workflow" / "Snakefile"]
    for folder in ("workflow", "benchmarks"):
        files += sorted(p for ext in ("*.py", "*.smk", "*.rst", "*.yaml") for p in (REPO / folder).rglob(ext))
    return [(f, f.read_text()) for f in files if f.exists()]


def texts_of_tests():
    """The tests' docstrings and comments: only their pointers into docs/ (their code names paths in
    temporary workflows, which need not exist here)."""
    tests = [f for f in sorted((REPO / "tests").glob("*.py")) if f.name != Path(__file__).name]  # not its examples
    return [(f, "\n".join(re.findall(r"(?<![\w/.])docs/\S+", f.read_text()))) for f in tests]


def slug(heading):
    """GitHub's anchor of a heading: lower case, code marks and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.replace("`", "").strip().lower())
    return text.replace(" ", "-")


def anchors(md):
    """Every anchor a Markdown file has (duplicates get -1, -2, ... as on GitHub)."""
    seen, out = {}, set()
    for heading in HEADING.findall(md.read_text()):
        s = slug(heading)
        out.add(s if s not in seen else f"{s}-{seen[s]}")
        seen[s] = seen.get(s, 0) + 1
    return out


def exists(path, base):
    """Whether `path` (relative to `base`, may hold <name>, {a,b}, * or … placeholders) names something there."""
    path = path.split("#", 1)[0].rstrip(".,:;)")
    if not path or path.rstrip("/") in EXAMPLES or (path.rstrip("/") + "/").startswith(GENERATED):
        return True
    patterns = [re.sub(r"\{[^{},]*\}", "*", path)]  # a Snakemake wildcard {dataset}
    while any("{" in p for p in patterns):  # brace expansion: a.{png,pdf} -> a.png, a.pdf
        p = next(p for p in patterns if "{" in p)
        patterns.remove(p)
        head, rest = p.split("{", 1)
        body, tail = rest.split("}", 1) if "}" in rest else (rest, "")
        patterns += [head + alt + tail for alt in body.split(",")]
    for p in patterns:
        p = re.sub(r"<[^>]*>|…|\*+", "*", p).replace("...", "*")
        if not any(base.glob(p.rstrip("/"))) and not (base / p).exists():
            return False
    return True


def broken_paths(file, text):
    """The repository paths and local link targets `text` (of `file`) names that do not exist."""
    broken = []
    for match in PATH.finditer(text):
        token = match.group(0)
        base = file.parent if token.startswith("../") else REPO
        page, _, anchor = token.partition("#")
        if not exists(page, base):
            broken.append(token)
        elif anchor and page.endswith(".md") and anchor not in anchors(base / page):
            broken.append(token)
    if file.suffix == ".md":
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                continue
            page, _, anchor = target.partition("#")
            page_path = (file.parent / page) if page else file
            if page and not exists(page, file.parent):
                broken.append(target)
            elif anchor and page_path.suffix == ".md" and anchor not in anchors(page_path):
                broken.append(target)
    return list(dict.fromkeys(broken))


def test_readme_is_short():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines: move details into docs/"


def test_every_named_repository_path_exists():
    broken = {str(f.relative_to(REPO)): b for f, text in texts() + texts_of_tests() if (b := broken_paths(f, text))}
    assert not broken, f"paths named but not in the repository: {broken}"


def repository_files():
    """The files git tracks or would track (ignored ones such as results/ left out); every file without git."""
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                                capture_output=True, text=True, check=True, timeout=60).stdout.split("\0")
        return [REPO / name for name in listed if name]
    except (OSError, subprocess.SubprocessError):
        ignored = {".git", ".venv", "results", "data", ".snakemake", "__pycache__", ".pytest_cache", "out"}
        return [p for p in REPO.rglob("*") if not ignored & set(p.relative_to(REPO).parts)]


def test_no_text_names_a_file_outside_the_repository():
    naming = []
    for path in repository_files():
        if path.is_file() and path.suffix not in (".png", ".svg", ".pt", ".npz"):
            try:
                if CITING_OUTSIDE.search(path.read_text()):
                    naming.append(str(path.relative_to(REPO)))
            except UnicodeDecodeError:
                continue
    assert not naming, f"{OUTSIDE} is not part of the repository; cite docs/ instead: {naming}"


@pytest.mark.parametrize("text, broken", [
    ("see `config/nothing_here.yaml` and config/config.yaml", ["config/nothing_here.yaml"]),
    ("results in `splits/<dataset>/test.csv`, `workflow/rules/*.smk`", []),
    ("figures `workflow/report/{rulegraph.svg,missing.rst}`", ["workflow/report/{rulegraph.svg,missing.rst}"]),
    ("[the papers](docs/no_such_page.md#dino)", ["docs/no_such_page.md#dino"]),
    ("rule output `splits/{dataset}/test.csv`; written to `splits/bm/`", []),
    ("[config](config/README.md#no-such-section)", ["config/README.md#no-such-section"]),
    ("[config](config/README.md#top-level)", []),
    ("# the optimisation (docs/papers.md#smalldatassl-optimisation): SGD", []),
    ("# the optimisation (docs/papers.md#no-such-anchor): SGD", ["docs/papers.md#no-such-anchor"]),
])
def test_the_check_finds_what_is_missing(text, broken):
    assert broken_paths(REPO / "README.md", text) == broken


@pytest.mark.parametrize("text, cites", [
    ("(REFERENCE" + ".md 1.14)", True), ("(REFERENCE" + " 3.4)", True), ("(REFERENCE" + " §3.3:", True),
    ("see REFERENCE" + " section 5", True), ("health.REFERENCE, health.PRETRAINED_REFERENCE", False),
    ('REFERENCE = "untrained reference"', False),
], ids=["file", "section", "section-sign", "word-section", "health-constants", "assignment"])
def test_the_check_finds_citations_of_the_outside_file(text, cites):
    assert bool(CITING_OUTSIDE.search(text)) is cites


DOTTED = re.compile(r"\bmedssl(?:\.[A-Za-z_]\w*)+")


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_every_named_medssl_module_or_object_exists():
    """`medssl.evaluate.estimators.LinearProbe` in a config, a doc or a docstring names something real: a
    module moved or an object renamed leaves no stale name behind (config paths are what users copy)."""
    names = {m.group(0) for _, text in texts() for m in DOTTED.finditer(text)}
    names = {n for n in names if "__main__" not in n and not n.endswith((".yaml", ".py", ".smk", ".log", ".md"))}
    assert "medssl.evaluate.estimators.LinearProbe" in names
    assert not (stale := sorted(n for n in names if not _resolves(n))), stale
