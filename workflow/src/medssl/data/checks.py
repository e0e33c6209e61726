"""Checks of the data that stop bad input before anything trains, each naming the file, row or class.

Run by the first job that reads the splits (:func:`check_splits`) and again, cheaply, by every job that
trains or scores: test/train overlap, paths outside the dataset root, classes missing from a split,
non-finite embeddings.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from medssl.data.errors import SHOW, DatasetError


def _first(items: Sequence[str]) -> str:
    items = list(items)
    more = f" (and {len(items) - SHOW} more)" if len(items) > SHOW else ""
    return ", ".join(repr(i) for i in items[:SHOW]) + more


def check_disjoint(splits: Mapping[str, Iterable[str]], source: str = "splits") -> None:
    """Refuse any image that is both in ``test`` and in a training split (labeled or unlabeled).

    ``splits`` maps a split name (or file) to its image paths; ``test`` must be one of the keys
    (a key ending in ``test`` or ``test.csv``). The message names the files, the overlap count
    and the first images."""
    test_keys = [k for k in splits if Path(str(k)).stem == "test"]
    if not test_keys:
        return
    test = set(map(str, splits[test_keys[0]]))
    for name, images in splits.items():
        if name in test_keys:
            continue
        shared = sorted(test & set(map(str, images)))
        if shared:
            raise DatasetError(
                f"{source}: {len(shared)} of the {len(test)} test images are also in {name} (test split: "
                f"{test_keys[0]}; a train/test leak; a test image must never be trained on): {_first(shared)}. "
                "Use disjoint split files (for Endo the repaired splits/endo/, not sparsam's published files), or delete the split "
                "files to have disjoint ones made from the split seed")


def class_coverage(train_labels: Iterable[str], test_labels: Iterable[str],
                   classes: Sequence[str]) -> dict[str, list[str]]:
    """Classes of the config with no test image (not scored) and test classes with no labeled
    training image (cannot be predicted)."""
    train, test = set(map(str, train_labels)), set(map(str, test_labels))
    return {"no_test_images": [c for c in classes if c not in test],
            "not_in_training": [c for c in classes if c in test and c not in train]}


def warn_class_coverage(coverage: Mapping[str, list[str]], source: str) -> list[str]:
    """One warning per problem of :func:`class_coverage`; returns the messages."""
    messages = []
    if coverage["no_test_images"]:
        messages.append(f"{source}: class(es) {coverage['no_test_images']} have no test image: they are "
                        "not scored (left out of balanced accuracy and per-class recall, listed in each "
                        "fit's 'classes_without_test_images')")
    if coverage["not_in_training"]:
        messages.append(f"{source}: class(es) {coverage['not_in_training']} are in the test split but have "
                        "no labeled training image: no classifier can predict them (their recall is 0)")
    for message in messages:
        warnings.warn(message, stacklevel=2)
    return messages


def check_finite(features, images: Sequence[str], source: str) -> None:
    """Refuse embeddings with NaN or infinite values (a diverged backbone), naming the file and
    the first images, before scikit-learn fails on them with an unrelated message."""
    import numpy as np

    bad = np.flatnonzero(~np.isfinite(np.asarray(features)).all(axis=1))
    if len(bad):
        raise DatasetError(
            f"{source}: {len(bad)} of {len(features)} embedding(s) contain NaN or infinite values "
            f"(the backbone that made them diverged?), e.g. for {_first([str(images[i]) for i in bad])}")


def check_splits(paths: Mapping[str, str | Path], manifest, root: str | Path, classes: Sequence[str],
                 allowed: Sequence[str | Path] = ()) -> dict:
    """Everything a training job relies on in the split files; returns a summary (counts, classes
    per split, warnings). Images in the manifest were verified when it was indexed; the others (a
    shipped split may list any file) are verified here."""
    from medssl.data.images import check_images  # lazy: pandas, numpy, PIL
    from medssl.data.manifests import check_inside_root
    from medssl.data.splits import read_split

    import pandas as pd

    splits = {name: read_split(Path(path), labeled=name != "unlabeled_train") for name, path in paths.items()}
    for name in ("labeled_train", "test"):
        if splits[name].empty:
            raise DatasetError(f"{paths[name]}: no images; a split without images leaves nothing to "
                                 f"{'train' if name == 'labeled_train' else 'score'} on: list its images, or delete "
                                 "the split files to have them made from split.seed")
    for name, frame in splits.items():
        check_inside_root(frame["image"].tolist(), root, str(paths[name]), allowed)
    check_disjoint({str(paths[name]): frame["image"] for name, frame in splits.items()}, "split files")
    listed = pd.concat([f[["image"]].assign(label=f["label"] if "label" in f else "") for f in splits.values()])
    unverified = listed[~listed["image"].isin(set(manifest["image"]))].drop_duplicates("image")
    check_images(unverified.reset_index(drop=True), Path(root), classes)
    coverage = class_coverage(splits["labeled_train"]["label"], splits["test"]["label"], classes)
    messages = warn_class_coverage(coverage, str(paths["test"]))
    return {"images": {name: len(frame) for name, frame in splits.items()},
            "classes": {name: sorted(set(frame["label"])) for name, frame in splits.items() if "label" in frame},
            "verified_here": len(unverified), **coverage, "warnings": messages}


def dataset_fingerprint(files: Iterable[str | Path]) -> str:
    """A cheap fingerprint (path, size, mtime) of a dataset's files, as a rule param: when a file
    is added, removed or rewritten, the param changes and Snakemake re-runs the indexing rule."""
    digest = hashlib.sha1()
    for path in sorted(map(str, files)):
        try:
            st = os.stat(path)
        except OSError:
            digest.update(f"{path}\0missing\n".encode())
            continue
        digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()
