"""Checks of data a user placed by hand (sources that cannot be scripted) and of MedMNIST ``.npz`` files.

:func:`check_manual` verifies the folder layout and the number of files per class, and its error says
what to download and where to put it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from medssl.data.files import IMAGE_EXTENSIONS, skipped, walk
from medssl.download.transfer import DownloadError


def check_npz(path: str | os.PathLike, splits: Iterable[str] = ("train", "val", "test")) -> dict[str, int]:
    """A MedMNIST-format archive: ``<split>_images`` and ``<split>_labels`` per split -> images per split."""
    import numpy as np

    path = Path(path)
    try:
        with np.load(path) as npz:
            keys = set(npz.files)
            counts = {}
            for split in splits:
                missing = {f"{split}_images", f"{split}_labels"} - keys
                if missing:
                    raise DownloadError(f"{path}: not a MedMNIST-format .npz, missing {sorted(missing)} "
                                        f"(it has {sorted(keys)})")
                n_img, n_lab = len(npz[f"{split}_images"]), len(npz[f"{split}_labels"])
                if n_img != n_lab:
                    raise DownloadError(f"{path}: {split} has {n_img} images but {n_lab} labels")
                counts[split] = n_img
    except (OSError, ValueError) as err:
        if isinstance(err, DownloadError):
            raise
        raise DownloadError(f"{path}: cannot read the .npz ({err})") from err
    return counts


def manual_instructions(dataset: str, manual: Mapping) -> str:
    """What to download and where to put it, for a source that cannot be scripted."""
    lines = [f"Dataset {dataset!r} must be downloaded by hand: {manual.get('why', 'it cannot be scripted')}.",
             f"  1. Download: {manual['what']}"]
    if manual.get("url"):
        lines.append(f"     from {manual['url']}")
    lines.append(f"  2. Put it so that this folder exists: {manual['root']}")
    if manual.get("classes"):
        names = list(manual["classes"])
        lines.append(f"     with one sub-folder per class ({len(names)}: {', '.join(names[:25])}"
                     f"{', ...' if len(names) > 25 else ''}), images anywhere below them")
    if manual.get("note"):
        lines.append(f"     {manual['note']}")
    lines.append("  3. Run snakemake again: the layout and the file count per class are checked.")
    return "\n".join(lines)


def _count_files(folder: Path, extensions: Iterable[str]) -> int:
    exts = {e.lower() for e in extensions}
    return sum(1 for p in walk(folder) if p.suffix.lower() in exts)


def check_manual(dataset: str, manual: Mapping, extensions: Iterable[str] = IMAGE_EXTENSIONS) -> dict[str, int]:
    """Verify hand-placed data against ``manual.classes`` ({class folder: expected file count; null = at
    least one}; nested folders such as ``train/NORMAL`` allowed) and/or
    ``manual.count`` (files in all); returns the counts found. ``manual.tolerance`` (default 0) allows
    that many files more or fewer per class (for sources whose count varies by one between releases)."""
    root = Path(manual["root"])
    extensions = tuple(extensions)
    if not root.is_dir():
        raise DownloadError(f"{root}: not found.\n" + manual_instructions(dataset, manual))
    tolerance = int(manual.get("tolerance", 0))
    problems, found = [], {}
    expected = manual.get("classes") or {}
    present = sorted(p.name for p in root.iterdir() if p.is_dir() and not skipped(p.name))
    for cls, want in expected.items():
        if not (root / cls).is_dir():
            problems.append(f"class folder {root / cls} is missing")
            continue
        found[cls] = n = _count_files(root / cls, extensions)
        if want is None and n == 0:
            problems.append(f"{root / cls}: no image files ({', '.join(extensions)})")
        elif want is not None and abs(n - int(want)) > tolerance:
            problems.append(f"{root / cls}: {n} image files, expected {want}")
    extra = [p for p in present if expected and p not in {c.split("/")[0] for c in expected}]
    if extra:
        problems.append(f"{root}: unexpected folder(s) {extra} (not in the expected classes)")
    if manual.get("count") is not None:
        total = _count_files(root, extensions)
        found["total"] = total
        if abs(total - int(manual["count"])) > tolerance:
            problems.append(f"{root}: {total} image files in all, expected {manual['count']}")
    if problems:
        raise DownloadError(f"dataset {dataset!r}: the data under {root} are incomplete or laid out "
                            "differently:\n  - " + "\n  - ".join(problems) + "\n"
                            + manual_instructions(dataset, manual))
    return found
