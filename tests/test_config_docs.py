"""config/README.md stays in step with the schema: every key the schema knows is documented there,
and every key its tables document exists in the schema."""
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


def table_keys():
    """The keys in the first column of the README's key tables (`a.b`, `classifiers.<name>`)."""
    keys = set()
    for cell in re.findall(r"^\| *(`[^|]+)\|", DOC, re.M):
        for span in re.findall(r"`([^`]+)`", cell):
            keys |= {part for part in re.split(r"[.,\s]+", span) if re.fullmatch(r"[A-Za-z_]\w*", part)}
    return keys


def test_every_schema_key_is_documented():
    missing = sorted(schema_keys() - documented_tokens())
    assert not missing, f"config keys in the schema but not in config/README.md: {missing}"


def schema_values(node=SCHEMA):
    """Every enum/const value of the schema (tables like `kind` list values, not keys)."""
    values = set()
    if isinstance(node, dict):
        values |= {v for v in node.get("enum", []) if isinstance(v, str)}
        values |= {node["const"]} if isinstance(node.get("const"), str) else set()
        for value in node.values():
            values |= schema_values(value)
    elif isinstance(node, list):
        for value in node:
            values |= schema_values(value)
    return values


def test_every_documented_key_exists_in_the_schema():
    unknown = sorted(table_keys() - schema_keys() - schema_values())
    assert not unknown, f"keys documented in config/README.md tables but not in the schema: {unknown}"
