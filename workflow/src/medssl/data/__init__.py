"""Datasets: where their images are, their manifests and splits, image checks and loading.

One module per concern, each importable on its own; only :mod:`medssl.data.dataset` imports torch:

* ``sources``: one class per ``source.kind`` (folder, manifest, npz, generated) -- image root,
  files, downloads, index, official splits -- and :func:`~medssl.data.sources.source_for`;
* ``synthetic`` and ``marrow_cells``: the demo's synthetic bone-marrow dataset;
* ``manifests``: manifest CSVs, image ids inside the dataset root; ``splits``: split files,
  stratified and official splits, the SSL pool;
* ``images``: reading and checking an image (a file, DICOM, a row of a .npz); ``files``: the one
  walk of a dataset folder; ``errors``: :class:`~medssl.data.errors.DatasetError`;
* ``checks``: the split files a job relies on (train/test overlap, paths outside the root, classes
  without images), non-finite embeddings, the fingerprint that re-runs indexing;
* ``dataset``: the torch dataset (:class:`~medssl.data.dataset.ImageDataset`, ``load_all``).

Conventions: an image is identified by its path relative to a dataset root, in POSIX form; tables
have columns ``image`` and ``label``; "no label" is the empty string ``""`` (never NaN), and
unlabeled split files carry only ``image``; every bad-input error is a :class:`DatasetError`
naming the file, the config key or the class concerned.

The names below are importable from ``medssl.data`` too; each loads only its own module on first
use, so ``from medssl.data import read_split`` does not import torch.
"""

from __future__ import annotations

import importlib

_MODULES = {
    "errors": ["DatasetError"],
    "synthetic": ["SYNTHETIC_MARROW_CLASSES", "SYNTHETIC_MARROW_DEFAULT_COUNTS", "generate_synthetic_marrow"],
    "sources": ["source_for", "index_folder", "index_unlabeled", "index_split_folders", "index_npz"],
    "manifests": ["read_manifest", "read_groups"],
    "splits": ["read_split", "write_split", "make_splits", "official_splits", "ssl_pool"],
    "images": ["check_images", "load_image"],
    "dataset": ["ImageDataset", "load_all"],
}
_HOME = {name: f"medssl.data.{module}" for module, names in _MODULES.items() for name in names}

__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
