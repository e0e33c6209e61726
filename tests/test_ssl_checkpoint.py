"""Damaged checkpoints and failed checkpoint writes (medssl.ssl.checkpoint): a checkpoint cut short is
named in the log, moved aside, and training resumes from the previous one (or starts over) with the
weights of an uninterrupted run; a write that fails (a full disk) never replaces a good checkpoint."""
from __future__ import annotations

import errno
import logging

import pytest
import torch

from medssl.ssl import checkpoint, trainer
from test_ssl import TINY_VIT, Killed, random_dataset, read_log, stand_in_augment, tiny_cfg, train_dino

TIMING = {"seconds", "images_per_s"}


def run(out, monkeypatch=None, die_after_epoch=None):
    """A 2-epoch DINO run checkpointed every epoch; ``die_after_epoch``: killed once that epoch's
    checkpoint is written."""
    if die_after_epoch is not None:
        original = checkpoint.save_checkpoint

        def save_then_die(path, state):
            original(path, state)
            if state["epoch"] == die_after_epoch:
                raise Killed

        monkeypatch.setattr(trainer, "save_checkpoint", save_then_die)
        with pytest.raises(Killed):
            train_dino(tiny_cfg(), TINY_VIT, random_dataset(32), stand_in_augment, out)
        monkeypatch.setattr(trainer, "save_checkpoint", original)
        return None
    return train_dino(tiny_cfg(), TINY_VIT, random_dataset(32), stand_in_augment, out)


def assert_same_run(a, b):
    wa, wb = torch.load(a / "teacher_backbone.pt", weights_only=True), torch.load(b / "teacher_backbone.pt",
                                                                                  weights_only=True)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    rows = [[{k: v for k, v in r.items() if k not in TIMING} for r in read_log(d / "train_log.csv")] for d in (a, b)]
    assert rows[0] == rows[1] and len(rows[0]) == 2


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    return len(data) // 2


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    run(out)
    return out


def test_checkpoints_rotate_into_checkpoint_prev(full):
    assert torch.load(full / "checkpoint.pt", weights_only=True)["epoch"] == 2
    assert torch.load(full / "checkpoint.prev.pt", weights_only=True)["epoch"] == 1
    assert not list(full.glob(".*.tmp"))


@pytest.mark.parametrize("die_after, damage_prev, resumed_from", [
    (2, False, 1),  # the newest checkpoint cut in half: back to the previous one
    (1, False, 0),  # no previous checkpoint: start over
    (2, True, 0),   # the previous one damaged too: start over
])
def test_truncated_checkpoint_is_moved_aside_and_training_resumes(full, tmp_path, monkeypatch, caplog,
                                                                  die_after, damage_prev, resumed_from):
    run(tmp_path, monkeypatch, die_after_epoch=die_after)
    size = truncate(tmp_path / "checkpoint.pt")
    if damage_prev:
        truncate(tmp_path / "checkpoint.prev.pt")
    with caplog.at_level(logging.INFO):
        run(tmp_path)
    assert_same_run(full, tmp_path)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    damaged = [w for w in warnings if "is damaged or unreadable" in w]
    assert f"{tmp_path / 'checkpoint.pt'} is damaged or unreadable (RuntimeError: PytorchStreamReader" in damaged[0]
    aside = sorted(tmp_path.glob("checkpoint.corrupt-*Z.pt"))
    assert len(aside) == 1 and aside[0].stat().st_size == size and aside[0].name in damaged[0]
    if resumed_from:
        assert any("taking back checkpoint.prev.pt (epoch 1), the previous checkpoint" in w for w in warnings)
        assert f"resuming from epoch {resumed_from}" in caplog.text and "epoch 0/2" not in caplog.text
    else:
        assert any("training starts over from epoch 0" in w for w in warnings) and "resuming" not in caplog.text
        assert "epoch 0/2" in caplog.text
    assert len(damaged) == 1 + damage_prev
    assert len(list(tmp_path.glob("checkpoint.prev.corrupt-*.pt"))) == damage_prev


def full_disk_at_epoch(epoch, monkeypatch, error=None):
    """torch.save writes half of the checkpoint of ``epoch``, then fails as a full disk does."""
    real = torch.save

    def save(obj, f, *args, **kwargs):
        real(obj, f, *args, **kwargs)
        if isinstance(obj, dict) and obj.get("epoch") == epoch:
            truncate(f)
            raise error or OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", save)


def test_a_full_disk_while_writing_keeps_the_previous_checkpoint(full, tmp_path, monkeypatch):
    run(tmp_path, monkeypatch, die_after_epoch=1)
    good = (tmp_path / "checkpoint.pt").read_bytes()
    full_disk_at_epoch(2, monkeypatch)
    with pytest.raises(OSError) as err:
        run(tmp_path)
    assert err.value.errno == errno.ENOSPC
    assert str(err.value) == (f"[Errno 28] could not write {tmp_path / 'checkpoint.pt'} ([Errno 28] No space left on "
                              "device); the existing checkpoint.pt is unchanged; free disk space and run again")
    assert (tmp_path / "checkpoint.pt").read_bytes() == good
    assert not (tmp_path / "checkpoint.prev.pt").exists() and not list(tmp_path.glob(".*.tmp"))
    monkeypatch.undo()
    run(tmp_path)  # space freed: resumes from epoch 1
    assert_same_run(full, tmp_path)


def test_torch_writer_failure_is_reported_as_a_write_error_naming_the_file(tmp_path, monkeypatch):
    """torch's C++ writer reports a full disk as RuntimeError ('file write failed')."""
    path = tmp_path / "checkpoint.pt"
    checkpoint.save_checkpoint(path, {"epoch": 1})
    checkpoint.save_checkpoint(path, {"epoch": 2})
    before = path.read_bytes(), (tmp_path / "checkpoint.prev.pt").read_bytes()
    full_disk_at_epoch(3, monkeypatch, RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed"))
    with pytest.raises(OSError, match=r"could not write .*checkpoint.pt \(PytorchStreamWriter failed writing file "
                                      r"data/0: file write failed\); the existing checkpoint.pt is unchanged"):
        checkpoint.save_checkpoint(path, {"epoch": 3})
    assert (path.read_bytes(), (tmp_path / "checkpoint.prev.pt").read_bytes()) == before
    assert not list(tmp_path.glob(".*.tmp"))
