"""A dataset's source (``datasets.<name>.source``): one class per ``source.kind`` -- folder, manifest,
npz, generated -- that knows where the images are (:attr:`Source.image_root`), which files make the
dataset up (:meth:`Source.files`, fingerprinted while Snakemake plans), where its downloads are saved,
how it is indexed into a manifest (:meth:`Source.index`) and how the manifest is split
(:meth:`Source.splits`: the official splits or a stratified split). :func:`source_for` picks the
class: this is the only module that branches on ``source.kind``.

The rules build a source for every dataset while Snakemake plans: making one reads nothing.
"""

from __future__ import annotations

import os
import unicodedata
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import ClassVar
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from medssl.data.errors import DatasetError
from medssl.data.files import IMAGE_EXTENSIONS, skipped, walk
from medssl.data.images import NPZ_SPLITS, npz_array
from medssl.data.manifests import check_inside_root, read_groups, read_manifest
from medssl.data.splits import make_splits, official_splits
from medssl.data.synthetic import SYNTHETIC_MARROW_DEFAULT_COUNTS, generate_synthetic_marrow



class Source:
    """The images of the dataset ``name`` (its config: ``dataset``, a ``datasets.<name>`` entry)."""

    kind: ClassVar[str]
    generated: ClassVar[bool] = False  # images made by the workflow (rule generate_dataset), not user data
    has_official_splits: ClassVar[bool] = False  # split by the dataset's own train/val/test, not split.seed

    def __init__(self, dataset: Mapping, name: str):
        self.dataset, self.name, self.config = dataset, name, dataset["source"]

    @property
    def image_root(self) -> str:
        """The folder the image ids of the manifest and the splits are relative to."""
        return self.config["root"]

    @property
    def classes(self) -> list[str]:
        return list(self.dataset["classes"])

    @property
    def group_column(self) -> str | None:
        return self.dataset.get("split", {}).get("group_column")

    def files(self) -> list[str]:
        """The files the dataset is read from: a change to one re-indexes it."""
        return []

    def download_path(self, item: Mapping, downloads_dir: str) -> str:
        """Where ``item`` of ``source.download`` is saved: its ``to``, else
        ``<downloads_dir>/<dataset>/<the URL's file name>``."""
        return item.get("to", f"{downloads_dir}/{self.name}/{PurePosixPath(urlparse(item['url']).path).name}")

    def root_error(self, key: str, value: str, real: str) -> str | None:
        """What is wrong with the folder ``value`` (resolved: ``real``) of the config key ``key`` for
        this kind (:func:`medssl.checks.dataset_errors` checks what is wrong for any kind)."""
        return None

    def class_error(self, key: str, name: str) -> str | None:
        """What is wrong with the class ``name`` (config key ``key``) for this kind."""
        return None

    def index(self) -> pd.DataFrame:
        """Every image of the dataset -> DataFrame(image, label[, group]); :func:`medssl.data.images.check_images`
        checks them."""
        if self.group_column:
            raise DatasetError(f"datasets.{self.name}.split.group_column: group ids come from a manifest CSV "
                               f"column; source.kind {self.kind!r} has none")
        return self._index()

    def _index(self) -> pd.DataFrame:
        raise NotImplementedError(f"source.kind {self.kind!r} is not indexed")

    def splits(self, manifest: pd.DataFrame) -> dict[str, pd.DataFrame]:
        """labeled_train / unlabeled_train / test of the dataset's ``manifest``: its official splits
        (``source.val_split`` says where val goes), else a stratified split from ``split.seed``
        (grouped by the manifest's ``group`` column with ``split.group_column``)."""
        if self.has_official_splits:
            return official_splits(manifest, self.config.get("val_split", "unlabeled_train"))
        split = self.dataset.get("split", {})
        labeled = manifest[manifest["label"] != ""].reset_index(drop=True)
        unlabeled = manifest.loc[manifest["label"] == "", ["image"]].reset_index(drop=True)
        groups = dict(zip(manifest["image"], manifest["group"])) if split.get("group_column") else None
        return make_splits(labeled, unlabeled, split.get("test_fraction", 0.3), split.get("seed", 0), groups)


class FolderSource(Source):
    """``root/<class>/**`` and the unlabeled images below ``unlabeled_root``; with ``split_folders``,
    ``root/{train,val,test}/<class>/**``, the official splits."""

    kind = "folder"

    @property
    def has_official_splits(self) -> bool:
        return bool(self.config.get("split_folders"))

    def files(self) -> list[str]:
        """Every file below the folders (:func:`medssl.data.files.walk`, which refuses a symlink loop
        here, while Snakemake plans)."""
        return [str(p) for p in walk(*[top for top in (self.config["root"], self.config.get("unlabeled_root")) if top])]

    def root_error(self, key: str, value: str, real: str) -> str | None:
        cwd = os.path.realpath(".")
        if cwd == real or cwd.startswith(real.rstrip(os.sep) + os.sep):
            return (f"{key}: {value!r} holds the working directory {cwd}, where the workflow writes results/ and "
                    "splits/ (indexing would walk them, and each run would change the dataset); give the folder of "
                    "the dataset itself")
        return None

    def class_error(self, key: str, name: str) -> str | None:
        if "/" in name or "\\" in name or skipped(name):
            return (f"{key}: {name!r} is not a folder name indexing reads (a folder source's classes are the visible "
                    "folders directly under source.root: no '/', no leading '.', not __MACOSX); rename the folder "
                    "and the class")
        return None

    def _index(self) -> pd.DataFrame:
        root = Path(self.image_root)
        if self.has_official_splits:
            return index_split_folders(root, self.classes)
        manifest = index_folder(root, self.classes)
        if self.config.get("unlabeled_root"):
            manifest = pd.concat([manifest, index_unlabeled(self.config["unlabeled_root"], root)], ignore_index=True)
        return manifest


class ManifestSource(Source):
    """A CSV ``manifest`` (image,label and any other columns; image paths relative to ``root``)."""

    kind = "manifest"

    def files(self) -> list[str]:
        return [self.config["manifest"]]

    def index(self) -> pd.DataFrame:
        manifest = read_manifest(Path(self.config["manifest"]))
        check_inside_root(manifest["image"].tolist(), Path(self.image_root), self.config["manifest"])
        if self.group_column:  # a grouped split keeps e.g. all images of one lesion on one side
            manifest["group"] = read_groups(Path(self.config["manifest"]), self.group_column)
        return manifest


class NpzSource(Source):
    """A MedMNIST-format .npz (``path``): image ids ``<split>/<row>`` inside it, its official splits."""

    kind = "npz"
    has_official_splits = True

    @property
    def image_root(self) -> str:
        return self.config["path"]

    def files(self) -> list[str]:
        return [self.config["path"]]

    def download_path(self, item: Mapping, downloads_dir: str) -> str:
        if item.get("unpack"):
            return super().download_path(item, downloads_dir)
        return item.get("to", self.config["path"])  # the downloaded file is the .npz itself

    def _index(self) -> pd.DataFrame:
        return index_npz(Path(self.image_root), self.classes)


class GeneratedSource(Source):
    """The synthetic marrow images that rule generate_dataset draws (:mod:`medssl.data.synthetic`)."""

    kind = "generated"
    generated = True

    @property
    def image_root(self) -> str:
        return f"results/data/{self.name}/synthetic"

    def generate(self, seed: int) -> pd.DataFrame:
        """Draw the images (``source.class_counts``, else the default counts of ``classes``) into
        :attr:`image_root`; returns their manifest."""
        counts = self.config.get("class_counts") or {
            name: SYNTHETIC_MARROW_DEFAULT_COUNTS.get(name) for name in self.dataset["classes"]
        }
        unknown = [name for name, n in counts.items() if n is None or name not in SYNTHETIC_MARROW_DEFAULT_COUNTS]
        if unknown or set(counts) != set(self.dataset["classes"]):
            raise DatasetError(
                f"datasets.{self.name}.classes: the synthetic_marrow generator knows "
                f"{sorted(SYNTHETIC_MARROW_DEFAULT_COUNTS)}; unknown or mismatched: "
                f"{unknown or sorted(set(counts) ^ set(self.dataset['classes']))}"
            )
        return generate_synthetic_marrow(Path(self.image_root), counts, self.config.get("n_unlabeled", 0),
                                         self.dataset["image_size"], seed)


KINDS: dict[str, type[Source]] = {cls.kind: cls for cls in (FolderSource, ManifestSource, NpzSource, GeneratedSource)}


def source_for(dataset: Mapping, name: str) -> Source:
    """The source of the dataset ``name`` (``dataset``: its ``datasets.<name>`` config)."""
    return KINDS[dataset["source"]["kind"]](dataset, name)


# --------------------------------------------------------------------------------------
# Indexing a folder, a folder of official splits, a .npz
# --------------------------------------------------------------------------------------


def index_folder(
    root: Path,
    class_names: Sequence[str] | None = None,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
) -> pd.DataFrame:
    """Index ``root/<class>/**/<image>`` into a DataFrame(image, label).

    ``image`` is the POSIX path relative to ``root``; rows are sorted by
    (label, image).  Files directly in ``root`` and names :func:`medssl.data.files.skipped` (hidden,
    ``__MACOSX``) are ignored; symlinks are followed (:func:`medssl.data.files.walk`).  With
    ``class_names``, folders must match exactly (compared in Unicode NFC, as a macOS archive may
    spell them decomposed): missing and extra class folders are both errors, named in the message.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder does not exist or is not a directory")
    exts = _extensions(extensions)
    on_disk = {_nfc(p.name): p.name for p in sorted(root.iterdir()) if p.is_dir() and not skipped(p.name)}
    if class_names is None:
        folders = {name: name for name in on_disk.values()}
    else:
        wanted = {_nfc(c): c for c in class_names}
        missing = [c for key, c in wanted.items() if key not in on_disk]
        extra = [name for key, name in on_disk.items() if key not in wanted]
        problems = []
        if missing:
            problems.append(f"missing class folder(s) {missing}")
        if extra:
            problems.append(f"unexpected folder(s) not in class_names {extra}")
        if problems:
            raise DatasetError(f"{root}: " + "; ".join(problems) + ". The class folders must be the dataset's "
                               "`classes`: correct a misspelt name, add the class to `classes`, or move the "
                               "folder out of the dataset root")
        folders = {c: on_disk[key] for key, c in wanted.items()}
    if not folders:
        raise DatasetError(f"{root}: no class sub-folders found")
    found: dict[str, list[str]] = {name: [] for name in folders.values()}
    ignored: dict[str, int] = {}
    for path in walk(*(root / name for name in folders.values())):
        rel = path.relative_to(root)
        kind = rel.suffix.lower()
        if kind in exts:
            found[rel.parts[0]].append(rel.as_posix())
        else:
            ignored[kind or rel.name] = ignored.get(kind or rel.name, 0) + 1
    if ignored:
        warnings.warn(f"{root}: {sum(ignored.values())} file(s) in the class folders are not indexed, their names "
                      f"not ending in {sorted(exts)}: {dict(sorted(ignored.items()))}", stacklevel=2)
    rows = []
    for cls, name in folders.items():
        if not found[name]:
            raise DatasetError(f"{root / name}: class folder {cls!r} contains no images ({sorted(exts)})")
        rows.extend((f, cls) for f in sorted(found[name]))
    return pd.DataFrame(rows, columns=["image", "label"])


def index_unlabeled(folder: Path, root: Path, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> pd.DataFrame:
    """Every image below ``folder`` (``source.unlabeled_root``) -> DataFrame(image, label ""), the image
    paths relative to the dataset ``root`` (``../unlabeled/x.png`` for a folder beside it)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: source.unlabeled_root does not exist or is not a directory")
    exts = _extensions(extensions)
    found = sorted(Path(os.path.relpath(p, root)).as_posix() for p in walk(folder) if p.suffix.lower() in exts)
    if not found:
        raise DatasetError(f"{folder}: source.unlabeled_root contains no images ({sorted(exts)})")
    return pd.DataFrame({"image": found, "label": ""})


def _extensions(extensions: Sequence[str]) -> set[str]:
    return {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}


def _nfc(name: str) -> str:
    return unicodedata.normalize("NFC", name)


def index_split_folders(root: Path, class_names: Sequence[str]) -> pd.DataFrame:
    """``root/{train,val,test}/<class>/**`` (a dataset shipped with its official split, e.g. the pneumonia
    CXRs) -> DataFrame(image, label) with image ids ``<split>/<class>/...`` for :func:`official_splits`."""
    root = Path(root)
    parts = [p for p in NPZ_SPLITS if (root / p).is_dir()]
    if "train" not in parts or "test" not in parts:
        raise DatasetError(f"{root}: split_folders needs train/ and test/ sub-folders; found {parts}")
    frames = [index_folder(root / p, class_names).assign(image=lambda f, p=p: p + "/" + f["image"]) for p in parts]
    return pd.concat(frames, ignore_index=True)


def index_npz(path: Path, class_names: Sequence[str]) -> pd.DataFrame:
    """Every image of a MedMNIST-format .npz -> DataFrame(image, label); image = "<split>/<row>".

    Labels are the integer label column mapped through ``class_names`` (MedMNIST's ``info``
    order); multi-label files (ChestMNIST) are refused."""
    path = Path(path)
    rows = []
    for split in NPZ_SPLITS:
        labels = np.asarray(npz_array(path, f"{split}_labels"))
        if labels.ndim == 2 and labels.shape[1] != 1:
            raise DatasetError(f"{path}: {split}_labels has {labels.shape[1]} columns (multi-label); "
                               "only single-label MedMNIST sets are supported")
        labels = labels.reshape(-1).astype(np.int64)
        n_images = len(npz_array(path, f"{split}_images"))
        if len(labels) != n_images:
            raise DatasetError(f"{path}: {split} has {n_images} images but {len(labels)} labels")
        bad = sorted(set(labels[(labels < 0) | (labels >= len(class_names))].tolist()))
        if bad:
            raise DatasetError(f"{path}: {split} label(s) {bad} have no class name; classes has "
                               f"{len(class_names)} entries {list(class_names)}")
        width = max(6, len(str(n_images)))
        rows += [(f"{split}/{i:0{width}d}", class_names[k]) for i, k in enumerate(labels)]
    return pd.DataFrame(rows, columns=["image", "label"])
