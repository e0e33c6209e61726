"""The split files shipped in splits/: sparsam's published ISIC files byte for byte, the repaired
Endo split (and sparsam's original Endo files, refused for their train/test overlap)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medssl.data import DatasetError, read_split, ssl_pool
from medssl.data.checks import check_disjoint

SPLITS = Path(__file__).resolve().parents[1] / "splits"

# file: (data rows, sha256) -- the same table as splits/README.md
SHIPPED = {
    "isic/labeled_train.csv": (17731, "180316e7ba83e5ca1d702558b2fd70c3811bb8078ba2bca3c55ff02e52ac1c1d"),
    "isic/test.csv": (7600, "16f5284c48a6855f49660977e16b473b8d707112da0b2172c9ab888f9c16f2f9"),
    "isic/unlabeled_train.csv": (44107, "9a7887efe81ea2e5e469b6b5c38be1c04cb7762595e5b5ab563b89b178f9e201"),
    "endo/labeled_train.csv": (4835, "aec06e7b0a3ee01357bffb211718f530b3be043b0df8fc973a5355a3e30d8957"),
    "endo/test.csv": (2666, "904dadabd9cbaeac8ded4f2e6b62b16192be05d2068ff0f1e0b4d72e82956070"),
    "endo/sparsam_published/labeled_train.csv": (7463, "f27c33547c246f1284d10dab3483a1bd397d98f22dd4632c8e86aa55f361ebf6"),
    "endo/sparsam_published/test.csv": (2666, "1cf3fe437a29a8370f01deda650a2faf011ae63d0b41da1a85d8a827a1172ef7"),
}


def images(splits: dict[str, pd.DataFrame]) -> dict[str, pd.Series]:
    return {name: frame["image"] for name, frame in splits.items()}


def splits_of(folder: str, unlabeled: bool = False) -> dict[str, pd.DataFrame]:
    out = {name: read_split(SPLITS / folder / f"{name}.csv") for name in ("labeled_train", "test")}
    if unlabeled:
        out["unlabeled_train"] = read_split(SPLITS / folder / "unlabeled_train.csv", labeled=False)
    return out


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_row_counts_and_sha256(name):
    rows, sha = SHIPPED[name]
    data = (SPLITS / name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == sha
    assert len(read_split(SPLITS / name, labeled="unlabeled" not in name)) == rows
    assert sha in (SPLITS / "README.md").read_text()


def test_isic_is_the_papers_split_and_disjoint():
    splits = splits_of("isic", unlabeled=True)
    check_disjoint(images(splits), "splits/isic")
    ids = {k: {Path(p).stem for p in v["image"]} for k, v in splits.items()}
    assert not ids["labeled_train"] & ids["test"] and not ids["unlabeled_train"] & (ids["labeled_train"] | ids["test"])
    counts = splits["labeled_train"]["label"].value_counts() + splits["test"]["label"].value_counts()
    # the ISIC 2019 training ground truth (docs/papers.md#published-splits), split ~70/30
    assert counts.to_dict() == {"MEL": 4522, "NV": 12875, "BCC": 3323, "AK": 867, "BKL": 2624, "DF": 239,
                                "VASC": 253, "SCC": 628}
    assert len(ssl_pool(splits)) == 17731 + 44107


def test_endo_repaired_split_is_disjoint_stratified_and_derived_from_the_published_files():
    repaired, published = splits_of("endo"), splits_of("endo/sparsam_published")
    check_disjoint(images(repaired), "splits/endo")
    assert repaired["test"].equals(published["test"])  # the paper's test set, unchanged
    kept = published["labeled_train"][~published["labeled_train"]["image"].isin(published["test"]["image"])]
    assert repaired["labeled_train"].equals(kept.reset_index(drop=True))
    train, test = (repaired[k]["label"].value_counts() for k in ("labeled_train", "test"))
    fraction = (test / (train + test))[train + test >= 100]  # classes big enough to show the ratio
    assert fraction.between(0.34, 0.37).all() and len(fraction) == 14


def test_the_published_endo_files_are_refused_naming_the_overlap():
    with pytest.raises(DatasetError, match=r"2628 of the 2666 test images are also in labeled_train"):
        check_disjoint(images(splits_of("endo/sparsam_published")), "splits/endo/sparsam_published")
    with pytest.raises(DatasetError, match="2628 test image"):
        ssl_pool({**splits_of("endo/sparsam_published"), "unlabeled_train": pd.DataFrame({"image": []})})


def test_grouped_split_keeps_each_lesion_on_one_side():
    """split.group_column: a newly made split keeps every group (ISIC 2019 lesion_id) on one side."""
    from medssl.data import make_splits

    rng = np.random.default_rng(0)
    rows = [(f"ISIC_{i:07d}.jpg", ["MEL", "NV", "BCC"][i % 3], f"IL_{i // 3 if i < 240 else i}") for i in range(300)]
    rng.shuffle(rows)
    labeled = pd.DataFrame(rows, columns=["image", "label", "group"])
    groups = dict(zip(labeled["image"], labeled["group"]))
    splits = make_splits(labeled[["image", "label"]], None, 0.3, seed=0, groups=groups)
    side = {groups[i]: "train" for i in splits["labeled_train"]["image"]}
    assert not any(side.get(groups[i]) for i in splits["test"]["image"])
    assert 0.25 < len(splits["test"]) / 300 < 0.4
    assert set(splits["test"]["label"]) == {"MEL", "NV", "BCC"}
    again = make_splits(labeled[["image", "label"]], None, 0.3, seed=0, groups=groups)
    assert again["test"].equals(splits["test"])  # seeded
