"""config/README.md stays in step with the schema: every key the schema knows is documented there, and
every top-level key it documents exists in the schema. (Method and trainer parameters are checked by
their dataclasses in medssl, not by the schema, so the README's tables below the top level may name
keys the schema leaves open.)"""
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
DOC = (REPO / "config" / "README.md").read_text()


def schema_keys(node=SCHEMA, seen=None):
    """Every property name anywhere in the schema, following $ref into $defs."""
    seen = set() if seen is None else seen
    keys = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if ref and ref not in seen:
            seen.add(ref)
            target = SCHEMA
            for part in ref.removeprefix("#/").split("/"):
                target = target[part]
            keys |= schema_keys(target, seen)
        keys |= set(node.get("properties", {}))
        for key, value in node.items():
            if key != "$defs":
                keys |= schema_keys(value, seen)
    elif isinstance(node, list):
        for value in node:
            keys |= schema_keys(value, seen)
    return keys


def documented_tokens():
    """Every word inside a `code span` of config/README.md (`source.kind` gives source and kind)."""
    return {word for span in re.findall(r"`([^`]+)`", DOC) for word in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", span)}


def test_every_schema_key_is_documented():
    missing = sorted(schema_keys() - documented_tokens())
    assert not missing, f"config keys in the schema but not in config/README.md: {missing}"


def test_every_documented_top_level_key_exists_in_the_schema():
    top = set(re.findall(r"^\| `(\w+)` \|", DOC.split("## Top level", 1)[1].split("\n## ", 1)[0], re.M))
    assert top and top <= set(SCHEMA["properties"]), sorted(top - set(SCHEMA["properties"]))


def _keys_with_schema_defaults(node, keys):
    if isinstance(node, dict):
        keys |= {k for k, v in (node.get("properties") or {}).items() if isinstance(v, dict) and "default" in v}
        for value in node.values():
            _keys_with_schema_defaults(value, keys)
    elif isinstance(node, list):
        for value in node:
            _keys_with_schema_defaults(value, keys)
    return keys


def test_rules_and_scripts_do_not_restate_the_schemas_defaults():
    """The schema is the one home of a config key's default: Snakemake's validate() fills it in, so a
    rule or script reads ``config[...]["key"]``, never ``.get("key", <its default again>)``."""
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    keys = _keys_with_schema_defaults(schema, set())
    assert {"embedding_threads", "preprocessing", "bootstrap_samples", "channels", "prefix"} <= keys
    files = [*(REPO / "workflow" / "rules").glob("*.smk"), *(REPO / "workflow" / "scripts").glob("*.py")]
    restated = [f"{path.relative_to(REPO)}:{i}: {line.strip()}" for path in files
                for i, line in enumerate(path.read_text().splitlines(), 1)
                for m in re.finditer(r'\.get\("(\w+)", ', line) if m.group(1) in keys]
    assert not restated, "\n".join(restated)


def test_validation_fills_the_defaults_the_rules_read(tmp_path):
    """Snakemake's validate() fills the schema's defaults, nested ones included (figures.confusion, the
    downloads block, the baselines), and the keys are accepted where the figure reads them."""
    from snakemake.utils import validate

    schema = REPO / "workflow" / "schemas" / "config.schema.yaml"
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for key in ("figures", "downloads", "baselines"):
        config.pop(key, None)
    validate(config, str(schema))
    assert config["figures"]["confusion"] == {"bootstrap_samples": 1000}
    assert config["downloads"]["dir"] == "data/downloads" and config["downloads"]["retries"] == 5
    assert config["baselines"] == {"supervised": {"enabled": False}, "linear_layer": {"enabled": False}}
    assert config["evaluation"]["preprocessing"] == ["power_transform", "pca"]
    set_by_user = {**config, "figures": {"confusion": {"bootstrap_samples": 0, "budget": "all"}}}
    validate(set_by_user, str(schema))
    assert set_by_user["figures"]["confusion"]["bootstrap_samples"] == 0
