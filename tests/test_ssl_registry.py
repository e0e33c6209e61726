"""How medssl.ssl is put together: no import cycle anywhere in medssl, a torch-free table of method kinds
that planning reads, a shared trainer that names no method, a new method that is its own module plus one
line of the table, and the losses every kind computes, pinned."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest
import torch
import torch.nn as nn
import yaml
from torch.utils.data import TensorDataset

from medssl import checks
from medssl.augment import MultiCropAugment
from medssl.ssl import Method, kinds, parse_spec, train
from medssl.ssl.config import SMALLDATA_AUGMENTATION, SmallDataConfig
from medssl.ssl.heads import mlp, two_view_model
from test_ssl_methods import REPO, TINY_VIT, dataset, read_rows, setup

SRC = REPO / "workflow" / "src"
SSL = SRC / "medssl" / "ssl"
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


# ---------------------------------------------------------------- imports
def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """medssl module -> the medssl modules it imports: at module level and inside functions (they run when
    called), by ``importlib.import_module("...")``, and by a string naming one (``"medssl.ssl.dino"``,
    ``"medssl.ssl.dino:DINO"``) in a module-level table, which loads it on first use. ``if TYPE_CHECKING:``
    blocks never run and do not count, nor does the package that Python runs before a submodule
    (``medssl.ssl`` before ``medssl.ssl.dino``)."""
    files = {_module_name(p): p for p in (SRC / "medssl").rglob("*.py")}
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text())
        named = [n for top in tree.body if isinstance(top, (ast.Assign, ast.AnnAssign)) for n in ast.walk(top)]
        named += [n.args[0] for n in ast.walk(tree) if isinstance(n, ast.Call) and n.args
                  and ast.unparse(n.func).endswith("import_module")]
        edges = {n.value.partition(":")[0] for n in named if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        edges &= set(files)
        for node in _runnable_nodes(tree):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name in files}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
                for alias in node.names:
                    edges |= {f"{base}.{alias.name}"} if f"{base}.{alias.name}" in files else {base} & set(files)
        graph[name] = edges - {name}
    return graph


def _runnable_nodes(tree: ast.AST):
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, path = {}, []

    def visit(m):
        state[m] = "open"
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                return path[path.index(n):] + [n]
            if n not in state and (cycle := visit(n)):
                return cycle
        state[m] = "done"
        path.pop()
        return None

    return next((c for m in sorted(graph) if m not in state and (c := visit(m))), None)


def test_no_import_cycle_in_medssl():
    graph = import_graph()
    assert "medssl.ssl.dino" in graph["medssl.ssl.kinds"] and "medssl.ssl.trainer" in graph["medssl.ssl.launch"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({**graph, "c": set()}) is None


# ---------------------------------------------------------------- the table of kinds
def test_the_table_of_kinds_loads_no_torch():
    code = ("import sys; from medssl.ssl import KINDS; import medssl.ssl.kinds, medssl.checks; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'timm')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_kind_is_written_once():
    """The rules take the trained kinds from the table (SSL_KINDS), and the schema lists none of them:
    medssl.checks refuses an unknown kind at plan time, naming the key."""
    common = (REPO / "workflow/rules/common.smk").read_text()
    assert re.search(r"^SSL_KINDS = list\(medssl_kinds\.KINDS\)$", common, re.M)

    def enums(node):
        if isinstance(node, dict):
            yield from ([node["enum"]] if "enum" in node else [])
            for value in node.values():
                yield from enums(value)
        elif isinstance(node, list):
            for value in node:
                yield from enums(value)

    assert not [e for e in enums(SCHEMA) if set(e) & set(kinds.KINDS)]
    trained_if = SCHEMA["$defs"]["method"]["allOf"][0]["if"]["properties"]["kind"]["not"]["enum"]
    assert tuple(trained_if) == checks.UNTRAINED_KINDS
    for name in ("trainer.py", "launch.py", "schedules.py", "__init__.py"):
        text = (SSL / name).read_text()
        named = re.findall(rf"(?i)\b({'|'.join(kinds.KINDS)})\b", text)
        assert not named, f"{name} names {named}"


def _method_schema_errors(entry: dict) -> list[str]:
    validator = jsonschema.Draft202012Validator({"$defs": SCHEMA["$defs"], "$ref": "#/$defs/method"})
    return [e.message for e in validator.iter_errors(entry)]


def test_an_unknown_kind_fails_at_plan_time_naming_the_key():
    assert _method_schema_errors({"kind": "byol", "params": {}}) == []
    assert _method_schema_errors({"kind": "byol", "urls": {}})  # shaped as a trained kind's entry
    assert checks.method_errors("m", {"kind": "byol"}) == [
        "methods.m.kind: 'byol' is not a method kind (trained: dino, simclr, dclw, simsiam, vicreg; "
        "not trained: random_init, published, pretrained)"]
    assert checks.method_errors("m", {"kind": "random_init"}) == []


# ---------------------------------------------------------------- a sixth method
@dataclass
class ToyConfig(SmallDataConfig):
    weight: float = 1.0

    label = "Toy"


class Toy(Method):
    """The two views' projections pulled together (it collapses, which does not matter here)."""

    kind = "toy"
    Config = ToyConfig
    augmentation_defaults = SMALLDATA_AUGMENTATION
    stat_names = ("gap",)
    log_columns = ("gap",)
    export_file = "toy_backbone.pt"

    @classmethod
    def build(cls, cfg, backbone_spec, n_views):
        return cls(cfg, two_view_model(cfg, backbone_spec, lambda d: mlp(d, 8, 4)), nn.Identity())

    def loss(self, model, views, it, sched):
        z1, z2 = model(views[:2])
        gap = self.cfg.weight * (z1 - z2).pow(2).mean()
        return gap, {"gap": gap.detach()}


def test_a_new_method_is_its_module_and_one_line_of_the_table(tmp_path, monkeypatch):
    monkeypatch.setitem(kinds.KINDS, "toy", f"{__name__}:Toy")
    entry = {"kind": "toy", "params": {"weight": 2, "epochs": 1, "batch_size": 8, "num_workers": 0, "device": "cpu"},
             "augmentation": {"blur_kernel": 0}, "collapse": {"action": "warn"}}
    assert checks.method_errors("m", entry, image_size=16) == [] and _method_schema_errors(entry) == []
    assert "methods.m.params (toy)" in checks.method_errors("m", {**entry, "params": {"wieght": 2}})[0]
    assert "methods.m.augmentation.n_local" in checks.method_errors("m", {**entry, "augmentation": {"n_local": 2}})[0]
    method, cfg, aug, collapse = parse_spec({**entry, "image_size": 16})
    assert method is Toy and cfg.weight == 2 and aug.global_size == 16
    images = torch.randint(0, 256, (16, 3, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    out = train(method, cfg, TINY_VIT, TensorDataset(images, torch.zeros(16)), MultiCropAugment(aug), tmp_path,
                collapse_cfg=collapse)
    assert out == tmp_path / "toy_backbone.pt" and out.exists()
    assert "gap" in (tmp_path / "train_log.csv").read_text().splitlines()[0].split(",")
    assert json.loads((tmp_path / "health.json").read_text())["kind"] == "toy"


# ---------------------------------------------------------------- pinned numbers
# Loss per epoch of every kind after 2 epochs of 3 steps (tests/test_ssl_methods.py's tiny setup, in fp32).
# Thread counts change them by < 2e-5 (summation order); a change to what a step computes, by far more.
PINNED = {"dino": [2.5294886430104575, 2.914869546890259], "simclr": [3.558582305908203, 3.7309458255767822],
          "dclw": [12.612167676289877, 7.285207430521647], "simsiam": [-0.05775747075676918, -0.08270512769619624],
          "vicreg": [22.36786715189616, 22.733911514282227]}


@pytest.mark.parametrize("kind", sorted(PINNED))
def test_every_kind_computes_the_pinned_losses(kind, tmp_path):
    method, cfg, aug = setup(kind, precision="fp32")
    train(method, cfg, TINY_VIT, dataset(), aug, tmp_path)
    losses = [float(r["loss"]) for r in read_rows(tmp_path / "train_log.csv")]
    assert losses == pytest.approx(PINNED[kind], rel=1e-4, abs=1e-6)


def test_no_module_of_medssl_is_over_450_lines():
    long = {str(p.relative_to(SRC)): n for p in (SRC / "medssl").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 450}
    assert not long, f"split these modules by concern: {long}"


def test_each_rule_file_has_a_module_and_a_test_file_of_its_name():
    """rules/<stage>.smk, a package medssl/<stage>/ or a module medssl[/<package>]/<stage>.py, and
    tests/test_<stage>.py: a newcomer finds a stage's code and tests from its rule file's name."""
    stages = sorted(p.stem for p in (REPO / "workflow" / "rules").glob("*.smk") if not p.stem.startswith("common"))
    assert {"data", "ssl", "embed", "classify", "report"} <= set(stages)
    package = SRC / "medssl"
    for stage in stages:
        homes = [package / stage / "__init__.py", package / f"{stage}.py", *package.glob(f"*/{stage}.py")]
        assert any(p.is_file() for p in homes), f"rules/{stage}.smk has no medssl module or package {stage}"
        assert (REPO / "tests" / f"test_{stage}.py").is_file(), f"rules/{stage}.smk has no tests/test_{stage}.py"
