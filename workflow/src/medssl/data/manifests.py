"""Reading a dataset's manifest CSV (one row per image) and the cleaning every table of image ids gets.

Conventions used throughout :mod:`medssl.data`: an image is identified by its path relative to the
dataset root, in POSIX form; tables have columns ``image`` and ``label``; "no label" is the empty
string ``""`` (never NaN), and unlabeled split files carry only ``image``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath

import pandas as pd

from medssl.data.errors import SHOW, DatasetError


def read_table(csv_path: Path) -> pd.DataFrame:
    """A CSV of strings (empty cells ""), without the unnamed index column pandas writes."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DatasetError(f"{csv_path}: file not found")
    try:
        df = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DatasetError(f"{csv_path}: cannot parse CSV ({e})") from e
    # the original paper's split files carry pandas' unnamed index column (",image,label")
    first = df.columns[0] if len(df.columns) else None
    if first is not None and (first == "" or str(first).startswith("Unnamed: 0")):
        df = df.drop(columns=[first])
    return df


def clean_str(s: pd.Series) -> pd.Series:
    return s.astype(object).where(s.notna(), "").astype(str).str.strip()


def check_images_column(df: pd.DataFrame, where: str) -> None:
    empty = int((df["image"] == "").sum())
    if empty:
        raise DatasetError(f"{where}: {empty} row(s) with an empty 'image' entry")
    dup = df["image"][df["image"].duplicated()].unique().tolist()
    if dup:
        raise DatasetError(f"{where}: duplicate image entries, e.g. {dup[:5]} ({len(dup)} in all)")


def read_manifest(csv_path: Path, image_col: str = "image", label_col: str = "label") -> pd.DataFrame:
    """Read a dataset manifest (one row per image) -> DataFrame(image, label).

    Unlabeled rows get ``label == ""``.  Missing columns, empty or duplicate
    image entries raise :class:`DatasetError` naming the file.
    """
    df = read_table(csv_path)
    for col, key in ((image_col, "image_col"), (label_col, "label_col")):
        if col not in df.columns:
            raise DatasetError(
                f"{csv_path}: column {col!r} ({key}) not found; columns are {list(df.columns)}"
            )
    out = pd.DataFrame({"image": clean_str(df[image_col]), "label": clean_str(df[label_col])})
    check_images_column(out, str(csv_path))
    return out.reset_index(drop=True)


def read_groups(csv_path: Path, column: str) -> pd.Series:
    """The group-id column (``split.group_column``, e.g. ``lesion_id``) of a manifest, row-aligned."""
    df = read_table(csv_path)
    if column not in df.columns:
        raise DatasetError(f"{csv_path}: column {column!r} (split.group_column) not found; columns are "
                           f"{list(df.columns)}")
    return clean_str(df[column]).reset_index(drop=True)


def outside_root(image: str) -> bool:
    """An absolute path, or one whose '..' parts leave the folder it is relative to."""
    if PurePosixPath(image).is_absolute() or PureWindowsPath(image).is_absolute():
        return True
    parts = os.path.normpath(image.replace("\\", "/")).split(os.sep)
    return parts[0] == ".."


def check_inside_root(images: Sequence[str], root: str | Path, source: str,
                      allowed: Sequence[str | Path] = ()) -> None:
    """Refuse image paths that are absolute or leave ``root`` (``../../etc/passwd``), naming the
    rows (line numbers of ``source``, header = line 1). ``allowed``: further folders the paths may
    point into (a folder dataset's ``unlabeled_root``, as in the config)."""
    root = Path(root)
    extra = [os.path.abspath(a) for a in allowed]
    bad = []
    for line, image in enumerate(map(str, images), start=2):
        if not outside_root(image):
            continue
        target = os.path.abspath(root / image)
        if not PurePosixPath(image).is_absolute() and any(
                target == a or target.startswith(a + os.sep) for a in extra):
            continue
        bad.append(f"line {line}: {image!r}")
    if bad:
        raise DatasetError(
            f"{source}: {len(bad)} image path(s) outside the dataset root {root} (paths must be "
            f"relative to it, without '..' that leave it): " + "; ".join(bad[:SHOW])
            + (f" (and {len(bad) - SHOW} more)" if len(bad) > SHOW else ""))
