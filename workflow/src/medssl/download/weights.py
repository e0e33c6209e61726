"""Published DINO checkpoints as backbone weights (method kind ``published``).

Nielsen et al. released one DINO teacher per dataset (Zenodo record 10391339, three 192.9 MB files;
docs/papers.md#released-weights). Each file is the flat state dict of sparsam's ``MultiCropModelWrapper``:
``backbone.*`` (the timm XCiT-S/8 with ``num_classes=0``) and ``projection_head.*`` (the DINO head).
Their own loading code keeps the ``backbone.`` keys, strips the prefix and loads them strictly into
the timm model; :func:`fetch_published_weights` does the same and saves the result like a
pretrained backbone, so the embedding stage treats it like any other method.

Downloads use :mod:`medssl.download` (``<file>.part``, resumed with HTTP Range requests; the final
name only after the MD5 matched; a mismatch moves the file to ``<file>.bad``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping

import torch
import torch.nn as nn

from medssl.backbone import build_backbone
from medssl.download import ChecksumError, local_path, fetch, verify_checksum

__all__ = ["ZENODO_RECORD", "ChecksumError", "download", "backbone_state",
           "load_published_backbone", "fetch_published_weights"]

ZENODO_RECORD = "https://zenodo.org/records/10391339"


def download(url: str, dest: str | os.PathLike, md5: str | None = None, log: logging.Logger | None = None,
             retries: int = 5, timeout: float = 60.0) -> Path:
    """The file behind ``url`` on disk, MD5-checked; returns its path.

    ``file://`` URLs (and plain paths) are used in place; http(s) goes through
    :func:`medssl.download.fetch` (resumed with Range requests, retried, a file with the wrong
    sum moved aside).
    """
    log = log or logging.getLogger(__name__)
    local = local_path(url)
    if local is None:
        return fetch(url, dest, md5=md5, retries=retries, timeout=timeout, log=log)
    if not local.is_file():
        raise FileNotFoundError(f"published weights {url}: no such file {local}")
    verify_checksum(local, url, md5=md5, log=log, quarantine=False)
    return local


def backbone_state(checkpoint: Mapping, prefix: str = "backbone.") -> dict[str, torch.Tensor]:
    """The ``prefix``-ed entries of a wrapper state dict, prefix removed (sparsam's loading rule).

    A checkpoint that nests its state dict (``teacher``, ``state_dict``, ``model``) and DDP's
    ``module.`` prefix are accepted too.
    """
    state = checkpoint
    if not any(isinstance(k, str) and k.removeprefix("module.").startswith(prefix) for k in state):
        for key in ("teacher", "state_dict", "model"):
            if isinstance(state.get(key), Mapping):
                return backbone_state(state[key], prefix)
    out = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        if key.startswith(prefix):
            out[key[len(prefix):]] = value
    if not out:
        sample = ", ".join(list(map(str, state))[:6])
        raise ValueError(f"the checkpoint has no {prefix!r} keys (it has e.g. {sample})")
    return out


def load_published_backbone(path: str | os.PathLike, backbone_spec: dict, prefix: str = "backbone.") -> nn.Module:
    """Build ``backbone_spec``'s timm model (no ImageNet download) and load the checkpoint's backbone
    strictly: a missing, unexpected or differently shaped tensor is an error that names it."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = backbone_state(checkpoint, prefix)
    kwargs = dict(backbone_spec.get("kwargs") or {})
    model = build_backbone(backbone_spec["name"], pretrained=False, **kwargs)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{path}: its {prefix!r} weights do not fit backbone {backbone_spec['name']} "
                         f"{kwargs} (the published checkpoints are timm xcit_small_12_p8_224 with "
                         f"num_classes=0; set backbone.name accordingly): {err}") from err
    return model


def fetch_published_weights(url: str, md5: str | None, download_path: str | os.PathLike, backbone_spec: dict,
                            output: str | os.PathLike, prefix: str = "backbone.",
                            log: logging.Logger | None = None) -> Path:
    """Download (or find) a published checkpoint, verify it and save its backbone to ``output``."""
    log = log or logging.getLogger(__name__)
    path = download(url, download_path, md5, log)
    model = load_published_backbone(path, backbone_spec, prefix)
    n_params = sum(p.numel() for p in model.parameters())
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, output)
    log.info("loaded %d backbone tensors (%d parameters) of %s strictly into %s; wrote %s",
             len(model.state_dict()), n_params, path, backbone_spec["name"], output)
    return output
