"""Which files make up a dataset folder: one walk shared by indexing (medssl.data.sources.index_folder),
the plan-time fingerprint (medssl.data.sources.FolderSource.files) and the check of hand-placed data,
so that all three see the same files.

* hidden names (``.DS_Store``, macOS ``._x.png`` resource forks, ``.cache/``) and ``__MACOSX`` /
  ``Thumbs.db`` are not part of a dataset;
* symlinked folders and files are followed, also out of the dataset root (a dataset laid out as
  links into shared storage); image ids stay the paths inside the root;
* a folder or file reached twice (a symlink loop, two links to one folder, a hard link) is refused
  naming both paths: a loop would never end, and the same image under two names could land in both
  the training and the test split.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from medssl.data.errors import DatasetError

JUNK = ("__MACOSX", "Thumbs.db")  # archive and OS debris that is not hidden by its name
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm")  # what indexing and checks count


def skipped(name: str) -> bool:
    """A file or folder name that is not part of a dataset."""
    return name.startswith(".") or name in JUNK


def walk(*tops: str | os.PathLike) -> Iterator[Path]:
    """Every file below the folders ``tops`` (sorted per folder; not :func:`skipped`), following
    symlinks; a missing top is skipped.

    A dangling symlink is yielded too (the caller names it missing). Raises :class:`DatasetError`
    for an unreadable folder and for a folder or file reached twice."""
    seen: dict[tuple[int, int], str] = {}

    def once(path: str, st: os.stat_result) -> None:
        key = (st.st_dev, st.st_ino)
        if key in seen:
            raise DatasetError(
                f"{path} and {seen[key]} are the same {'folder' if os.path.isdir(path) else 'file'} "
                f"({os.path.realpath(path)}), reached twice through a symlink or a hard link: a symlink loop, "
                "or the same images under two names (one could land in the training split and the other in "
                "the test split); remove the link")
        seen[key] = path

    def unreadable(err: OSError) -> None:
        raise DatasetError(f"{err.filename}: cannot list the folder ({err.strerror}); fix its permissions") from err

    for top in map(Path, tops):
        if not top.is_dir():
            continue
        once(str(top), top.stat())
        for dirpath, dirnames, filenames in os.walk(top, followlinks=True, onerror=unreadable):
            dirnames[:] = sorted(d for d in dirnames if not skipped(d))
            for d in dirnames:
                path = os.path.join(dirpath, d)
                once(path, os.stat(path))
            for name in sorted(filenames):
                if skipped(name):
                    continue
                path = os.path.join(dirpath, name)
                try:
                    st = os.stat(path)
                except OSError:  # a dangling or looping symlink
                    yield Path(path)
                    continue
                once(path, st)
                yield Path(path)
