"""Published DINO checkpoints as backbone weights (method kind ``published``).

Nielsen et al. released one DINO teacher per dataset (Zenodo record 10391339, three 192.9 MB files;
REFERENCE.md 1.14). Each file is the flat state dict of sparsam's ``MultiCropModelWrapper``:
``backbone.*`` (the timm XCiT-S/8 with ``num_classes=0``) and ``projection_head.*`` (the DINO head).
Their own loading code keeps the ``backbone.`` keys, strips the prefix and loads them strictly into
the timm model; :func:`fetch_published_weights` does the same and saves the result like a
pretrained backbone, so the embedding stage treats it like any other method.

A download is written to ``<file>.part`` and resumed with an HTTP Range request when it was cut
off; it gets its final name only after its MD5 matched, and a mismatch deletes it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Mapping
from urllib.parse import unquote, urlparse

import torch
import torch.nn as nn

from medssl.ssl import build_backbone

__all__ = ["ZENODO_RECORD", "ChecksumError", "md5sum", "download", "backbone_state",
           "load_published_backbone", "fetch_published_weights"]

ZENODO_RECORD = "https://zenodo.org/records/10391339"
_CHUNK = 1 << 20


class ChecksumError(ValueError):
    pass


def md5sum(path: str | os.PathLike, chunk: int = _CHUNK) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _check_md5(path: Path, expected: str | None, source: str, log: logging.Logger, delete: bool) -> None:
    actual = md5sum(path)
    if expected is None:
        log.warning("%s: no md5 configured; its md5 is %s (add it to the config to pin the file)", source, actual)
        return
    if actual.lower() != expected.lower():
        if delete:
            path.unlink(missing_ok=True)
        raise ChecksumError(f"{source}: md5 of {path.name} is {actual}, expected {expected}"
                            + (f"; deleted {path}" if delete else ""))
    log.info("%s: md5 %s verified", source, actual)


def _local_path(url: str) -> Path | None:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return Path(unquote(parsed.netloc + parsed.path))
    if parsed.scheme == "":
        return Path(url)
    return None


def download(url: str, dest: str | os.PathLike, md5: str | None = None, log: logging.Logger | None = None,
             retries: int = 5, timeout: float = 60.0) -> Path:
    """The file behind ``url`` on disk, MD5-checked; returns its path.

    ``file://`` URLs (and plain paths) are used in place. http(s) downloads go to ``dest`` via
    ``dest.part``, resuming a partial file with a Range request (also across job restarts); a
    complete ``dest`` with the right MD5 is not downloaded again.
    """
    log = log or logging.getLogger(__name__)
    local = _local_path(url)
    if local is not None:
        if not local.is_file():
            raise FileNotFoundError(f"published weights {url}: no such file {local}")
        _check_md5(local, md5, url, log, delete=False)
        return local

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        if md5 is None or md5sum(dest).lower() == md5.lower():
            log.info("%s: using the earlier download %s", url, dest)
            return dest
        log.warning("%s: %s has the wrong md5; downloading again", url, dest)
        dest.unlink()
    part = dest.with_name(dest.name + ".part")
    for attempt in range(1, retries + 1):
        try:
            _fetch_into(url, part, timeout, log)
            break
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as err:
            if isinstance(err, urllib.error.HTTPError) and err.code < 500 and err.code != 429:
                raise RuntimeError(f"downloading {url} failed: HTTP {err.code} {err.reason}") from err
            if attempt == retries:
                raise RuntimeError(f"downloading {url} failed after {retries} attempts: {err}; "
                                   f"the partial file {part} is kept and resumed next time") from err
            log.warning("%s: attempt %d failed (%s); resuming in %d s", url, attempt, err, 2 ** attempt)
            time.sleep(2 ** attempt)
    _check_md5(part, md5, url, log, delete=True)
    os.replace(part, dest)
    return dest


def _fetch_into(url: str, part: Path, timeout: float, log: logging.Logger) -> None:
    start = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "medssl"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and start:  # the partial file is already complete
            return
        raise
    with response:
        resumed = start > 0 and response.status == 206
        if start and not resumed:
            log.info("%s: the server does not resume downloads; starting again", url)
            start = 0
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        log.info("%s: downloading %s%s", url, f"{total / 1e6:.1f} MB" if total else "(size unknown)",
                 f", resuming at {start / 1e6:.1f} MB" if resumed else "")
        with open(part, "ab" if resumed else "wb") as f:
            while block := response.read(_CHUNK):
                f.write(block)
    size = part.stat().st_size
    if total is not None and size != total:
        raise ConnectionError(f"download of {url} ended at {size} of {total} bytes")


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
