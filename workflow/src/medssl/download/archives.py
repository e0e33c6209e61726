"""Atomic unpacking of zip and tar archives.

:func:`unpack` extracts into a hidden temporary folder next to the target and renames it into place,
so a killed job leaves nothing that looks complete. Archives that would write outside the target,
or more than ``downloads.max_unpacked_gb`` or the free disk space, are refused before anything is
written.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tarfile
import uuid
import zipfile
from collections.abc import Iterable
from pathlib import Path

from medssl.download.transfer import DownloadError, _write_error

_JUNK = ("__MACOSX", ".DS_Store", "Thumbs.db")  # archive debris that would become a "class" folder
MAX_UNPACKED_GB = 100.0  # downloads.max_unpacked_gb; the largest shipped archive (ISIC 2020's DICOMs) is 23 GB


def archive_format(path: str | os.PathLike) -> str:
    """``zip``, ``tar`` (also .tar.gz/.tgz/.tar.bz2/.tar.xz) or ``npz`` from a file name."""
    name = str(path).lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        return "tar"
    if name.endswith(".npz"):
        return "npz"
    raise DownloadError(f"{path}: unknown archive type (expected .zip, .tar[.gz|.bz2|.xz], .tgz or .npz)")


def _check_size(archive: Path, total: int, into: Path, max_gb: float) -> None:
    """Refuse an archive whose members add up to more than ``max_gb`` or than the free disk space,
    before anything is written. The declared sizes bound what is written: zipfile stops a member at
    its size in the central directory, and a tar member's size is its header's."""
    if total > max_gb * 1e9:
        raise DownloadError(f"{archive}: its files add up to {_gb(total)} unpacked, more than "
                            f"downloads.max_unpacked_gb = {max_gb:g}: a zip bomb, or a bigger data set than "
                            "expected; raise downloads.max_unpacked_gb if you trust the archive. Nothing was unpacked")
    free = shutil.disk_usage(into).free
    if total > free:
        raise DownloadError(f"{archive}: its files add up to {_gb(total)} unpacked, but {into.parent} has "
                            f"{_gb(free)} free; free disk space and re-run. Nothing was unpacked")


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def _unsafe(archive: Path, name: str, why: str) -> DownloadError:
    return DownloadError(f"{archive}: member {name!r} {why}: an unsafe archive, not unpacked; check where it came "
                         "from (a tampered or wrong file)")


def _extract(archive: Path, into: Path, max_gb: float, log: logging.Logger) -> None:
    """Every check runs on the member list before the first file is written: paths leaving
    ``into`` (absolute, ``..``, links pointing out), the total size."""
    def inside(names: Iterable[str]) -> None:
        for name in names:
            if not (into / name).resolve().is_relative_to(into.resolve()):
                raise _unsafe(archive, name, "points outside the archive folder (an absolute path or '..')")

    if archive_format(archive) == "zip":
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            inside(i.filename for i in members)
            # zipfile writes a symlink member as a small file holding the link's target: never an image
            links = [i.filename for i in members if stat.S_ISLNK(i.external_attr >> 16)]
            if links:
                log.warning("%s: %d symlink member(s) not unpacked (a zip link is not a file): %s", archive,
                            len(links), links[:5])
            members = [i for i in members if i.filename not in links]
            _check_size(archive, sum(i.file_size for i in members), into, max_gb)
            zf.extractall(into, members)
    else:
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            inside(m.name for m in members)
            for member in members:
                try:
                    tarfile.data_filter(member, str(into))  # links pointing out, device files
                except tarfile.FilterError as err:
                    raise _unsafe(archive, member.name, f"is refused by tarfile's data filter ({err})") from err
            _check_size(archive, sum(m.size for m in members if m.isfile()), into, max_gb)
            tf.extractall(into, members, filter="data")


def unpack(archive: str | os.PathLike, to: str | os.PathLike, member: str | None = None,
           links: Iterable[str | os.PathLike] = (), log: logging.Logger | None = None,
           max_gb: float = MAX_UNPACKED_GB) -> Path:
    """Extract ``archive`` (or only its folder ``member``) to the folder ``to``, atomically.

    Archive debris (``__MACOSX``, ``.DS_Store``) is dropped. ``links``: extra paths made symlinks to
    ``to`` (e.g. a second name the split files use for the same images). An archive with a member
    that would land outside ``to``, or whose files add up to more than ``max_gb`` GB or the free
    disk space, is refused before anything is written.
    """
    log = log or logging.getLogger(__name__)
    archive, to = Path(archive), Path(to)
    fmt = archive_format(archive)
    if fmt == "npz":
        raise DownloadError(f"{archive}: an .npz is read directly (source kind npz), not unpacked")
    try:
        to.parent.mkdir(parents=True, exist_ok=True)
        tmp = to.parent / f".{to.name}.unpacking-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
    except OSError as err:
        raise _write_error(to.parent, err) from err
    try:
        log.info("unpacking %s into %s", archive, to)
        try:
            _extract(archive, tmp, max_gb, log)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError) as err:
            raise DownloadError(f"{archive}: not a valid {fmt} archive ({err}); delete it and re-run") from err
        except OSError as err:
            raise _write_error(tmp, err) from err
        for junk in [p for pattern in _JUNK for p in tmp.rglob(pattern)]:
            shutil.rmtree(junk) if junk.is_dir() else junk.unlink(missing_ok=True)
        src = tmp / member if member else tmp
        if not src.is_dir():
            top = sorted(p.name for p in tmp.iterdir())
            raise DownloadError(f"{archive}: has no folder {member!r} (config key unpack.member); "
                                f"its top level holds {top[:20]}")
        if to.exists():
            shutil.rmtree(to)
        os.replace(src, to)
        for link in map(Path, links):
            if link.is_symlink() or link.exists():
                link.unlink()
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(to, link.parent), target_is_directory=True)
            log.info("linked %s -> %s", link, to)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = sum(1 for p in to.rglob("*") if p.is_file())
    log.info("unpacked %d files into %s", n, to)
    return to
