"""Resumable HTTP(S) downloads with retries and checksums.

:func:`fetch` writes ``<dest>.part`` and resumes it with an HTTP Range request after a dropped
connection (within a job with back-off, and across job restarts); the file gets its final name only
once its sha256/md5 matched. A file with the wrong sum is moved to ``<dest>.bad`` (never left under
the name of a good download) and the error gives both sums and that path.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlparse

_CHUNK = 1 << 20


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
