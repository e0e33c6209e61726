"""Checkpoints and logs of the SSL trainer, written so that a crash or a full disk mid-write never
costs a good file: a temp file beside the target, fsynced, then renamed into place. The checkpoint a
new one replaces is kept as ``checkpoint.prev.pt``; a checkpoint that cannot be read is moved aside
as ``checkpoint.corrupt-<UTC time>.pt`` and training resumes from the previous one (or starts over).
"""

from __future__ import annotations

import csv
import errno
import logging
import os
import time
import uuid
from pathlib import Path

import torch

CHECKPOINT = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"


def _unique_tmp(path: Path) -> Path:
    """A temp name no other process uses (an orphaned trainer may still write the same folder)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_torch_save(obj, path: Path, previous: Path | None = None) -> None:
    """Write ``obj`` to a temp file beside ``path``, fsync it, then rename it over ``path``: a crash
    or a full disk mid-write leaves ``path`` as it was. ``previous``: the file ``path`` held is
    kept under this name. A failed write raises OSError naming ``path``."""
    tmp = _unique_tmp(path)
    try:
        try:
            torch.save(obj, tmp)
            _fsync(tmp)
        except (OSError, RuntimeError) as err:  # torch's own writer reports a full disk as RuntimeError
            kept = f"the existing {path.name} is unchanged" if path.exists() else f"there was no {path.name} before"
            raise OSError(getattr(err, "errno", None) or errno.EIO,
                          f"could not write {path} ({err}); {kept}; free disk space and run again") from err
        if previous is not None and path.exists():
            os.replace(path, previous)
        os.replace(tmp, path)
        _fsync(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_log_csv(rows: list[dict], path: Path, columns: list[str]) -> None:
    tmp = _unique_tmp(path)
    try:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_checkpoint(path: Path, state: dict) -> None:
    """The checkpoint it replaces is kept as checkpoint.prev.pt: the fallback when the newest cannot
    be read."""
    atomic_torch_save(state, path, previous=path.with_name(PREVIOUS))


def load_checkpoint(path: Path, log: logging.Logger) -> dict | None:
    """The checkpoint in ``path``; None when it cannot be read, after moving it aside as
    ``<name>.corrupt-<UTC time>.pt`` and saying so."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise TypeError(f"it holds a {type(state).__name__}, not a checkpoint")
        return state
    except Exception as err:  # noqa: BLE001  (whatever the damage, the file is unusable)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside, n = path.with_name(f"{path.stem}.corrupt-{stamp}.pt"), 1
        while aside.exists():  # a second damaged file within the same second
            aside, n = path.with_name(f"{path.stem}.corrupt-{stamp}-{n}.pt"), n + 1
        os.replace(path, aside)
        reason = f"{str(err)}\n".splitlines()[0].split(". ")[0].rstrip(".")  # torch appends advice
        log.warning("%s is damaged or unreadable (%s), e.g. cut short by a crash or a full disk: moved aside "
                    "as %s", path, f"{type(err).__name__}: {reason}" if reason else type(err).__name__, aside.name)
        return None


def take_checkpoint(out_dir: Path, run_hash: str, log: logging.Logger) -> dict | None:
    """The checkpoint of this run identity, loaded, and in place as checkpoint.pt; None (and no
    checkpoint.pt) to train from the start. A checkpoint.pt of another identity is moved aside as
    checkpoint.<hash>.pt, and a moved-aside one of this identity is taken back; a damaged one is
    moved aside and the previous checkpoint (checkpoint.prev.pt) of this identity taken instead."""
    path = out_dir / CHECKPOINT
    damaged = False
    if path.exists():
        state = load_checkpoint(path, log)
        old = None if state is None else state.get("run_hash", "legacy")
        damaged = state is None
        if old == run_hash:
            return state
        if old is not None:
            aside = out_dir / f"checkpoint.{old}.pt"
            os.replace(path, aside)
            log.warning("%s was written by a run with other settings (run hash %s, now %s): kept as %s, "
                        "starting a new training", path, old, run_hash, aside.name)
    for candidate, taken in [(out_dir / f"checkpoint.{run_hash}.pt", "written earlier with these settings"),
                             (out_dir / PREVIOUS, "the previous checkpoint of this run")]:
        if candidate.exists() and (state := load_checkpoint(candidate, log)) is not None \
                and state.get("run_hash") == run_hash:
            os.replace(candidate, path)
            (log.warning if damaged else log.info)("taking back %s (epoch %s), %s", candidate.name,
                                                   state.get("epoch"), taken)
            return state
    if damaged:
        log.warning("no earlier checkpoint of this run is left: training starts over from epoch 0")
    return None
