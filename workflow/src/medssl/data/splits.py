"""Splits: the split files (labeled_train / unlabeled_train / test CSVs), the stratified (optionally
grouped) split of a dataset, the official splits of a dataset shipped with them, and the SSL pool.

Torch-free; sklearn is imported only when a split is made."""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from medssl.data.errors import DatasetError
from medssl.data.manifests import check_images_column, clean_str, read_table

SPLIT_NAMES = ("labeled_train", "unlabeled_train", "test")


def read_split(csv_path: Path, labeled: bool = True) -> pd.DataFrame:
    """Read one split file (``labeled_train.csv``, ``unlabeled_train.csv``, ``test.csv``).

    Accepts ``image,label`` and the paper's ``,image,label`` (leading index).
    ``labeled=True``: returns ``image,label`` with every label a non-empty
    string.  ``labeled=False``: returns only ``image`` -- any label column in the
    file is dropped on purpose so the SSL stage can never see labels.
    """
    df = read_table(csv_path)
    if "image" not in df.columns:
        raise DatasetError(f"{csv_path}: column 'image' not found; columns are {list(df.columns)}")
    out = pd.DataFrame({"image": clean_str(df["image"])})
    if labeled:
        if "label" not in df.columns:
            raise DatasetError(f"{csv_path}: column 'label' not found; columns are {list(df.columns)}")
        out["label"] = clean_str(df["label"])
        empty = out.index[out["label"] == ""].tolist()
        if empty:
            raise DatasetError(
                f"{csv_path}: {len(empty)} row(s) with an empty 'label' in a labeled split "
                f"(first data rows {[i + 2 for i in empty[:10]]} counting the header as line 1)"
            )
    check_images_column(out, str(csv_path))
    return out.reset_index(drop=True)


def write_split(df: pd.DataFrame, csv_path: Path) -> None:
    """Write a split table without index, atomically (temp file + ``os.replace``)."""
    csv_path = Path(csv_path)
    if "image" not in df.columns:
        raise DatasetError(f"{csv_path}: refusing to write a split without an 'image' column")
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{csv_path.name}.", suffix=".tmp", dir=csv_path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            df.to_csv(fh, index=False)
        os.replace(tmp, csv_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def official_splits(manifest: pd.DataFrame, val_split: str = "unlabeled_train") -> dict[str, pd.DataFrame]:
    """A dataset's official splits from the first component of each image id ("train/...",
    "val/...", "test/..."; MedMNIST .npz rows, or a folder source with ``split_folders``):
    train -> labeled_train, test -> test; val -> ``val_split`` (``unlabeled_train``: SSL pool only,
    labels unused; ``labeled_train``; ``drop``)."""
    split = manifest["image"].str.partition("/")[0]
    if val_split not in ("unlabeled_train", "labeled_train", "drop"):
        raise DatasetError(f"source.val_split must be unlabeled_train, labeled_train or drop, got {val_split!r}")
    train_parts = ["train"] + (["val"] if val_split == "labeled_train" else [])
    out = {
        "labeled_train": manifest.loc[split.isin(train_parts), ["image", "label"]],
        "unlabeled_train": manifest.loc[split == "val", ["image"]] if val_split == "unlabeled_train"
        else manifest.iloc[0:0][["image"]],
        "test": manifest.loc[split == "test", ["image", "label"]],
    }
    return {k: v.reset_index(drop=True) for k, v in out.items()}


def make_splits(
    labeled: pd.DataFrame,
    unlabeled: pd.DataFrame | None,
    test_fraction: float,
    seed: int,
    groups: Mapping[str, str] | None = None,
) -> dict[str, pd.DataFrame]:
    """Stratified train/test split of the labeled images plus the unlabeled pool.

    ``groups`` ({image: group id}, e.g. ISIC's lesion_id or a patient id) keeps every group on one
    side: a grouped stratified split (sklearn ``StratifiedGroupKFold`` with round(1 / test_fraction)
    folds, the first fold is test). Images without a group id form a group of their own.

    Returns ``labeled_train`` / ``test`` (``image,label``) and
    ``unlabeled_train`` (``image`` only), each sorted by image.  Classes with
    fewer than 2 images go entirely to ``labeled_train`` (with a warning).
    Unlabeled images that land in ``test`` are dropped from the pool (warning),
    so test never overlaps the training data.
    """
    from sklearn.model_selection import train_test_split

    if not (isinstance(test_fraction, (int, float)) and 0.0 < float(test_fraction) < 1.0):
        raise DatasetError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    for col in ("image", "label"):
        if col not in labeled.columns:
            raise DatasetError(f"make_splits: labeled table has no {col!r} column")
    lab = pd.DataFrame({"image": clean_str(labeled["image"]), "label": clean_str(labeled["label"])})
    lab = lab[lab["label"] != ""]
    if lab.empty:
        raise DatasetError("make_splits: no labeled images")
    check_images_column(lab, "make_splits labeled table")
    lab = lab.sort_values("image", kind="stable").reset_index(drop=True)

    counts = lab["label"].value_counts()
    rare = sorted(counts.index[counts < 2].tolist())
    if rare:
        warnings.warn(
            f"class(es) {rare} have fewer than 2 images: all their images go to labeled_train "
            "and none to test",
            stacklevel=2,
        )
    keep = lab[~lab["label"].isin(rare)]
    if keep.empty:
        raise DatasetError(f"make_splits: no class has 2 or more labeled images ({rare[:10]} have 1): the test "
                           "split would be empty; add images")
    n_test, n_classes = math.ceil(float(test_fraction) * len(keep)), keep["label"].nunique()  # sklearn's rounding
    if groups is None and n_test < n_classes:
        smallest = ", ".join(f"{c}: {n}" for c, n in counts[counts >= 2].sort_values().head(5).items())
        raise DatasetError(
            f"make_splits: test_fraction={test_fraction} puts {n_test} of the {len(keep)} images in the test split, "
            f"fewer than the {n_classes} classes, and a stratified split needs a test image of each: set "
            f"split.test_fraction to at least {math.ceil(100 * n_classes / len(keep)) / 100:g}, or add images "
            f"(smallest classes {smallest})")
    try:
        if groups is None:
            train, test = train_test_split(keep, test_size=float(test_fraction), random_state=seed,
                                           stratify=keep["label"])
        else:
            train, test = _grouped_split(keep, groups, float(test_fraction), seed)
    except ValueError as e:
        raise DatasetError(
            f"make_splits: cannot stratify {len(keep)} images over {n_classes} classes with "
            f"test_fraction={test_fraction} ({e}); change split.test_fraction or add images"
        ) from e
    train = pd.concat([train, lab[lab["label"].isin(rare)]])
    train = train.sort_values("image", kind="stable").reset_index(drop=True)
    test = test.sort_values("image", kind="stable").reset_index(drop=True)

    if unlabeled is None or len(unlabeled) == 0:
        unl = pd.DataFrame({"image": pd.Series([], dtype=object)})
    else:
        if "image" not in unlabeled.columns:
            raise DatasetError("make_splits: unlabeled table has no 'image' column")
        unl = pd.DataFrame({"image": clean_str(unlabeled["image"])})
        unl = unl[unl["image"] != ""].drop_duplicates()
        leaked = unl["image"].isin(set(test["image"]))
        if leaked.any():
            warnings.warn(
                f"{int(leaked.sum())} unlabeled image(s) are in the test split and were removed "
                "from unlabeled_train",
                stacklevel=2,
            )
            unl = unl[~leaked]
        unl = unl.sort_values("image", kind="stable").reset_index(drop=True)

    test_set = set(test["image"])
    assert not test_set & set(train["image"]), "test overlaps labeled_train"
    assert not test_set & set(unl["image"]), "test overlaps unlabeled_train"
    return {"labeled_train": train, "unlabeled_train": unl, "test": test}


def _grouped_split(lab: pd.DataFrame, groups: Mapping[str, str], test_fraction: float, seed: int):
    from sklearn.model_selection import StratifiedGroupKFold

    ids = [str(groups.get(img) or "") or f"image:{img}" for img in lab["image"]]
    folds = StratifiedGroupKFold(n_splits=max(2, round(1 / test_fraction)), shuffle=True, random_state=seed)
    train_idx, test_idx = next(folds.split(lab, lab["label"], ids))
    return lab.iloc[train_idx], lab.iloc[test_idx]


def ssl_pool(splits: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Images for self-supervised pretraining: unlabeled_train ∪ labeled_train, never test."""
    for key in ("labeled_train", "unlabeled_train"):
        if key not in splits:
            raise DatasetError(f"ssl_pool: splits has no {key!r}")
    imgs = pd.concat(
        [clean_str(splits["unlabeled_train"]["image"]), clean_str(splits["labeled_train"]["image"])]
    )
    pool = sorted(set(imgs) - {""})
    if "test" in splits:
        leaked = sorted(set(pool) & set(clean_str(splits["test"]["image"])))
        if leaked:
            raise DatasetError(
                f"ssl_pool: {len(leaked)} test image(s) are also in the training splits, "
                f"e.g. {leaked[:5]}"
            )
    return pd.DataFrame({"image": pool})
