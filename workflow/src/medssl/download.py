"""Dataset downloads: resumable HTTP(S) with retries, checksums, atomic unpacking, manual sources.

Every failure is a :class:`DownloadError` whose message names the URL or the path concerned and what
to do. The rules in ``workflow/rules/download.smk`` are thin wrappers around :func:`fetch`,
:func:`unpack` and :func:`check_manual`.

* :func:`fetch` writes ``<dest>.part`` and resumes it with an HTTP Range request after a dropped
  connection (within a job with back-off, and across job restarts); the file gets its final name
  only once its sha256/md5 matched. A file with the wrong sum is moved to ``<dest>.bad`` (never
  left under the name of a good download) and the error gives both sums and that path.
* :func:`unpack` extracts into a hidden temporary folder next to the target and renames it into
  place, so a killed job leaves nothing that looks complete.
* :func:`check_manual` verifies data a user placed by hand (sources that cannot be scripted):
  the folder layout and the number of files per class.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import stat
import tarfile
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import unquote, urlparse

from medssl.data.files import skipped, walk

__all__ = ["DownloadError", "ChecksumError", "file_hash", "verify_checksum", "fetch", "unpack",
           "archive_format", "local_path", "check_npz", "check_manual", "manual_instructions"]

_CHUNK = 1 << 20
_JUNK = ("__MACOSX", ".DS_Store", "Thumbs.db")  # archive debris that would become a "class" folder
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm")
MAX_UNPACKED_GB = 100.0  # downloads.max_unpacked_gb; the largest shipped archive (ISIC 2020's DICOMs) is 23 GB


class DownloadError(RuntimeError):
    """A download, unpacking or manual-data check failed; the message says where and what to do."""


class ChecksumError(DownloadError, ValueError):
    """A file's checksum differs from the configured one."""


def file_hash(path: str | os.PathLike, algorithm: str = "sha256", chunk: int = _CHUNK) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_checksum(path: Path, source: str, sha256: str | None = None, md5: str | None = None,
                    log: logging.Logger | None = None, quarantine: bool = True) -> None:
    """Compare ``path`` with the configured sums; on a mismatch move it to ``<path>.bad`` (if
    ``quarantine``) and raise :class:`ChecksumError` with both sums and where the file went."""
    log = log or logging.getLogger(__name__)
    path = Path(path)
    checks = [(a, e) for a, e in (("sha256", sha256), ("md5", md5)) if e]
    if not checks:
        log.warning("%s: no checksum configured; sha256 of %s is %s (add it to the config to pin the file)",
                    source, path, file_hash(path, "sha256"))
        return
    for algorithm, expected in checks:
        actual = file_hash(path, algorithm)
        if actual.lower() != expected.lower():
            where = f"the file is left at {path}"
            if quarantine:
                bad = path.with_name(path.name.removesuffix(".part") + ".bad")
                os.replace(path, bad)
                where = f"the bad file was moved to {bad}"
            raise ChecksumError(f"{source}: {algorithm} of the download is {actual}, expected {expected}; "
                                f"{where} (a changed or corrupted file: check the source, delete it and re-run)")
        log.info("%s: %s %s verified", source, algorithm, actual)


def local_path(url: str) -> Path | None:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return Path(unquote(parsed.netloc + parsed.path))
    if parsed.scheme == "":
        return Path(url)
    return None


class _WriteError(DownloadError):
    pass


def _write_error(path: Path, err: OSError) -> _WriteError:
    return _WriteError(f"cannot write {path}: {err.strerror or err} (errno {err.errno}); "
                       "free disk space or fix the permissions of that folder, then re-run (the download resumes)")


def _looks_like_html(head: bytes) -> bool:
    start = head.lstrip()[:64].lower()
    return start.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml version")) and b"html" in start


def fetch(url: str, dest: str | os.PathLike, sha256: str | None = None, md5: str | None = None,
          retries: int = 5, backoff: float = 2.0, timeout: float = 60.0,
          log: logging.Logger | None = None) -> Path:
    """Download ``url`` to ``dest`` (resumable, retried, checksum-verified); returns ``dest``.

    A complete ``dest`` with the right sums is kept. ``file://`` URLs and plain paths are copied
    (a local mirror). HTTP 4xx (other than 408/429) and an HTML page where a file was expected
    fail at once; 5xx, timeouts and dropped connections are retried ``retries`` times, waiting
    ``backoff * 2**k`` seconds, resuming the partial file.
    """
    log = log or logging.getLogger(__name__)
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _write_error(dest.parent, err) from err
    if dest.exists():
        try:
            verify_checksum(dest, f"{url} (earlier download)", sha256, md5, log, quarantine=False)
            log.info("%s: using the earlier download %s", url, dest)
            return dest
        except ChecksumError:
            log.warning("%s: %s has the wrong checksum; downloading again", url, dest)
            dest.unlink()
    part = dest.with_name(dest.name + ".part")
    local = local_path(url)
    if local is not None:
        if not local.is_file():
            raise DownloadError(f"{url}: no such file {local}")
        try:
            shutil.copyfile(local, part)
        except OSError as err:
            raise _write_error(part, err) from err
    else:
        for attempt in range(1, retries + 1):
            try:
                _fetch_into(url, part, timeout, log)
                break
            except DownloadError:
                raise
            except urllib.error.HTTPError as err:
                if err.code < 500 and err.code not in (408, 429):
                    hint = " (the file is not there: check the URL, the record may have moved)" if err.code == 404 else ""
                    raise DownloadError(f"downloading {url} failed: HTTP {err.code} {err.reason}{hint}") from err
                _retry_or_raise(url, part, attempt, retries, backoff, err, log)
            except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, OSError) as err:
                _retry_or_raise(url, part, attempt, retries, backoff, err, log)
    verify_checksum(part, url, sha256, md5, log)
    os.replace(part, dest)
    log.info("%s: saved %s (%d bytes)", url, dest, dest.stat().st_size)
    return dest


def _retry_or_raise(url, part, attempt, retries, backoff, err, log):
    if attempt == retries:
        kept = f"; the partial file {part} is kept and resumed by the next run" if part.exists() else ""
        raise DownloadError(f"downloading {url} failed after {retries} attempts: {err}{kept}") from err
    wait = backoff * 2 ** (attempt - 1)
    log.warning("%s: attempt %d/%d failed (%s); resuming in %.0f s", url, attempt, retries, err, wait)
    time.sleep(wait)


def _fetch_into(url: str, part: Path, timeout: float, log: logging.Logger) -> None:
    start = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "medssl-download"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and start:  # the partial file is already complete
            return
        raise
    with response:
        if response.geturl() != url:  # the checksum, not the host, vouches for the file
            log.info("%s: redirected to %s", url, response.geturl())
        resumed = start > 0 and response.status == 206
        if start and not resumed:
            log.info("%s: the server does not resume downloads; starting again", url)
            start = 0
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        first = response.read(_CHUNK)
        ctype = response.headers.get("Content-Type", "")
        if not resumed and (ctype.startswith("text/html") or _looks_like_html(first)) \
                and not urlparse(url).path.lower().endswith((".html", ".htm")):
            snippet = first[:200].decode("utf-8", "replace").replace("\n", " ")
            raise DownloadError(f"{url} served an HTML page (Content-Type {ctype or 'unknown'}) instead of the "
                                f"file: a login wall, a moved record or an error page. Open the URL in a browser; "
                                f"page starts: {snippet!r}")
        log.info("%s: downloading %s%s", url, f"{total / 1e6:.1f} MB" if total else "(size unknown)",
                 f", resuming at {start / 1e6:.1f} MB" if resumed else "")
        try:
            f = open(part, "ab" if resumed else "wb")
        except OSError as err:
            raise _write_error(part, err) from err
        with f:
            done, t0, last = start, time.monotonic(), time.monotonic()
            block = first
            while block:
                try:
                    f.write(block)
                except OSError as err:
                    raise _write_error(part, err) from err
                done += len(block)
                if time.monotonic() - last > 30:  # progress of big files in the log
                    last = time.monotonic()
                    rate = (done - start) / max(last - t0, 1e-9) / 1e6
                    pct = f" ({100 * done / total:.0f} %)" if total else ""
                    log.info("%s: %.1f MB%s at %.1f MB/s", part.name, done / 1e6, pct, rate)
                block = response.read(_CHUNK)
    size = part.stat().st_size
    if total is not None and size != total:
        raise ConnectionError(f"the connection dropped at {size} of {total} bytes")


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
