"""The SSL job a shipped config gives the trainer: what the step benchmarks (`benchmarks/dino_step.py`,
`benchmarks/ssl_step.py`) time, so that their presets name config files instead of restating shapes.

:func:`job_spec` merges config files as ``snakemake --configfile a.yaml b.yaml`` does
(``snakemake.utils.update_config``), takes a ``methods`` entry with the dataset's ``method_params`` applied
(``medssl.checks.with_dataset_params``, as the pretrain_ssl rule) and returns the part of the rule's job
description (`workflow/scripts/pretrain_ssl.py`) that decides a training step: ``kind``, ``params``,
``augmentation``, ``backbone`` and the dataset's ``image_size``. ``medssl.ssl.launch.parse_spec`` reads it as
the trainer does: the method's config class supplies every default, and the views not set follow
``image_size``. Torch-free (``parse_spec`` is not).
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from snakemake.utils import update_config

from medssl.checks import with_dataset_params

REPO = Path(__file__).resolve().parents[1]


def load_config(files: list[str], root: Path = REPO) -> dict:
    """The config of ``files`` (relative to ``root``), each merged into the ones before it."""
    config: dict = {}
    for name in files:
        update_config(config, yaml.safe_load((Path(root) / name).read_text()))
    return config


def job_spec(files: list[str], method: str, dataset: str | None = None, root: Path = REPO) -> dict:
    """The job of ``methods.<method>`` on ``datasets.<dataset>`` (default: the config's first dataset)."""
    config = load_config(files, root)
    dataset = dataset or next(iter(config["datasets"]))
    ds = config["datasets"][dataset]
    entry = with_dataset_params(config["methods"][method], ds, method)
    return {"kind": entry["kind"], "params": dict(entry.get("params") or {}),
            "augmentation": dict(entry.get("augmentation") or {}), "image_size": int(ds["image_size"]),
            "backbone": json.loads(json.dumps(config["backbone"])),
            "source": f"{' + '.join(files)}: datasets.{dataset}, methods.{method}"}


def with_overrides(spec: dict, backbone: str | None = None, kwargs: dict | None = None,
                   image_size: int | None = None, params: dict | None = None,
                   augmentation: dict | None = None) -> dict:
    """``spec`` with the given values replacing its own (``None``: keep); kwargs replace the backbone's."""
    spec = json.loads(json.dumps(spec))
    if backbone is not None:
        spec["backbone"]["name"] = backbone
    if kwargs is not None:
        spec["backbone"]["kwargs"] = dict(kwargs)
    if image_size is not None:
        spec["image_size"] = int(image_size)
    spec["params"].update({k: v for k, v in (params or {}).items() if v is not None})
    spec["augmentation"].update({k: v for k, v in (augmentation or {}).items() if v is not None})
    if any(v is not None for v in (backbone, kwargs, image_size, *(params or {}).values(),
                                   *(augmentation or {}).values())):
        spec["source"] = spec.get("source", "") + " (with overrides)"
    return spec
