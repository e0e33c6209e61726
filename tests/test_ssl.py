"""Tests for medssl.ssl, written from the DINO formulas (docs/papers.md#reference-dino-caron-et-al-2021), not from
the code."""

from __future__ import annotations

import csv
import logging
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from medssl.backbone import load_backbone
from medssl.ssl import (MultiCropWrapper, Schedules, clip_gradients, cosine_schedule, ema_update, param_groups, train,
                        trainer, training_step)
from medssl.ssl.dino import (DINO, DINOHead, DINOLoss, DinoConfig, build_student_teacher, cancel_last_layer_grads,
                             teacher_temp_schedule)
from medssl.ssl.optim import load_optimizer_state

TINY_VIT = {
    "name": "vit_tiny_patch16_224",
    "pretrained": False,
    "kwargs": {"img_size": 16, "patch_size": 4, "depth": 2, "embed_dim": 32, "num_heads": 2,
               "dynamic_img_size": True},
}


def tiny_cfg(**overrides) -> DinoConfig:
    base = dict(epochs=2, batch_size=16, lr=5e-4, warmup_epochs=1, out_dim=64, hidden_dim=32,
                bottleneck_dim=16, head_layers=3, freeze_last_layer_epochs=1, num_workers=0,
                device="cpu", seed=0, checkpoint_every_epochs=1)
    base.update(overrides)
    return DinoConfig(**base)


def stand_in_augment(images: torch.Tensor, g: torch.Generator) -> list[torch.Tensor]:
    """2 global crops (the image and a random horizontal flip) and 2 random 8x8 local crops.
    Random numbers come from the CPU generator, as in medssl.augment."""
    x = images.float() / 127.5 - 1
    flip = (torch.rand(x.shape[0], generator=g) < 0.5).to(x.device)[:, None, None, None]
    crops = [x, torch.where(flip, x.flip(-1), x)]
    for _ in range(2):
        i, j = torch.randint(0, 9, (2,), generator=g).tolist()
        crops.append(x[..., i:i + 8, j:j + 8].contiguous())
    return crops


def random_dataset(n: int = 64, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 16, 16), generator=g, dtype=torch.uint8)
    return TensorDataset(images, torch.zeros(n, dtype=torch.long))


def train_dino(cfg: DinoConfig, backbone_spec: dict, dataset, augment, out_dir, **kwargs):
    return train(DINO, cfg, backbone_spec, dataset, augment, out_dir, **kwargs)


# ---------------------------------------------------------------- loss
def reference_loss(student, teacher, center, n_crops, student_temp, teacher_temp):
    """The DINO loss (docs/papers.md#dino-loss) written as an explicit double loop over (teacher crop, student
    crop) pairs."""
    b = student.shape[0] // n_crops
    total, n_pairs = 0.0, 0
    for iq in (0, 1):
        q = F.softmax((teacher[iq * b:(iq + 1) * b] - center) / teacher_temp, dim=-1)
        for v in range(n_crops):
            if v == iq:
                continue
            logp = F.log_softmax(student[v * b:(v + 1) * b] / student_temp, dim=-1)
            total += (-(q * logp).sum(-1)).mean()
            n_pairs += 1
    return total / n_pairs


def test_loss_matches_double_loop_and_uses_old_center():
    torch.manual_seed(0)
    n_crops, b, k = 6, 5, 32
    student, teacher = torch.randn(n_crops * b, k), torch.randn(2 * b, k)
    loss_fn = DINOLoss(k, n_crops, student_temp=0.1, center_momentum=0.9)
    old_center = torch.randn(1, k)
    loss_fn.center.copy_(old_center)
    loss = loss_fn(student, teacher, teacher_temp=0.04)
    expected = reference_loss(student, teacher, old_center, n_crops, 0.1, 0.04)
    assert torch.allclose(loss, expected, rtol=1e-5, atol=1e-6)
    # centre ← 0.9·c + 0.1·batch mean of the raw teacher logits, after the loss was computed
    assert torch.allclose(loss_fn.center, 0.9 * old_center + 0.1 * teacher.mean(0, keepdim=True), atol=1e-6)


def test_center_starts_at_zero_and_first_update():
    torch.manual_seed(1)
    loss_fn = DINOLoss(16, 3)
    assert torch.equal(loss_fn.center, torch.zeros(1, 16))
    assert "center" in loss_fn.state_dict()  # checkpointed
    student, teacher = torch.randn(12, 16), torch.randn(8, 16)
    loss = loss_fn(student, teacher, 0.07)
    assert torch.allclose(loss, reference_loss(student, teacher, torch.zeros(1, 16), 3, 0.1, 0.07), atol=1e-6)
    assert torch.allclose(loss_fn.center, 0.1 * teacher.mean(0, keepdim=True), atol=1e-7)


def test_loss_has_twelve_pair_terms_for_2_plus_5_crops():
    # With a uniform teacher (q = 1/K) pair (iq, v) costs a_v = mean_b(−mean_k log_softmax(s_v / τ_s)),
    # so the mean over the 12 pairs (iq ∈ {0,1}, v ≠ iq) is (2·Σ_v a_v − a_0 − a_1) / 12.
    torch.manual_seed(2)
    n_crops, b, k = 7, 4, 10
    student = torch.randn(n_crops * b, k) * torch.arange(1, n_crops + 1).repeat_interleave(b)[:, None]
    teacher = torch.zeros(2 * b, k)
    loss = DINOLoss(k, n_crops)(student, teacher, 0.04)
    a = [(-F.log_softmax(s / 0.1, -1).mean(-1)).mean() for s in student.chunk(n_crops)]
    assert torch.allclose(loss, (2 * sum(a) - a[0] - a[1]) / 12, rtol=1e-5)
    assert not torch.allclose(loss, (2 * sum(a)) / 14, rtol=1e-3)


def test_collapse_signals():
    loss_fn = DINOLoss(8, 3)
    student, teacher = torch.randn(6, 8), torch.zeros(4, 8)  # uniform teacher
    loss = loss_fn(student, teacher, 0.04)
    assert loss_fn.last_stats["teacher_entropy"].item() == pytest.approx(math.log(8), rel=1e-5)
    assert loss_fn.last_stats["kl_teacher_student"].item() == pytest.approx(loss.item() - math.log(8), rel=1e-4)


# ---------------------------------------------------------------- schedules
def test_cosine_schedule():
    base, final, epochs, ipe, warm = 1.0, 0.1, 5, 4, 2
    s = cosine_schedule(base, final, epochs, ipe, warmup_epochs=warm, start_warmup_value=0.0)
    assert len(s) == epochs * ipe
    assert s[0] == 0.0
    assert s[warm * ipe - 1] == pytest.approx(base)  # linspace includes both ends
    n = epochs * ipe - warm * ipe
    assert s[warm * ipe] == pytest.approx(base)  # cosine at i=0
    assert s[-1] == pytest.approx(final + 0.5 * (base - final) * (1 + math.cos(math.pi * (n - 1) / n)))
    assert s[-1] != final and s[-1] > final
    assert np.all(np.diff(s[: warm * ipe]) > 0) and np.all(np.diff(s[warm * ipe:]) < 0)
    # fractional warm-up rounds to iterations; no warm-up starts at base
    assert cosine_schedule(1.0, 0.0, 2, 10, warmup_epochs=0.25)[2] == pytest.approx(1.0)
    assert cosine_schedule(0.996, 1.0, 3, 7)[0] == pytest.approx(0.996)
    assert np.all(np.diff(cosine_schedule(0.996, 1.0, 3, 7)) > 0)  # momentum rises towards 1
    with pytest.raises(ValueError):
        cosine_schedule(1.0, 0.0, 2, 10, warmup_epochs=3)


def test_teacher_temp_schedule_per_iteration():
    s = teacher_temp_schedule(0.02, 0.04, warmup_epochs=2, epochs=4, iters_per_epoch=5)
    assert len(s) == 20
    w = 10
    for k in range(20):
        expected = 0.02 + (0.04 - 0.02) * k / w if k <= w else 0.04
        assert s[k] == pytest.approx(expected)
    assert np.all(teacher_temp_schedule(0.04, 0.07, 0, 3, 5) == 0.07)


def test_schedules_from_config_scale_lr_with_batch():
    cfg = tiny_cfg(epochs=3, warmup_epochs=1, lr=5e-4)
    sched = Schedules.from_config(cfg, iters_per_epoch=4, global_batch=128)
    assert sched.lr[0] == 0.0 and sched.lr[3] == pytest.approx(5e-4 * 128 / 256)
    assert sched.wd[0] == pytest.approx(0.04) and sched.method["momentum"][0] == pytest.approx(0.996)
    assert sched.method["freeze_last_layer_iters"] == 4


def test_min_steps_raises_epochs_and_stretches_every_epoch_schedule():
    cfg = tiny_cfg(epochs=4, warmup_epochs=1, freeze_last_layer_epochs=0.5, warmup_teacher_temp_epochs=2,
                   warmup_teacher_temp=0.01, min_steps=30)
    assert cfg.sized_to(iters_per_epoch=8) is cfg  # 32 steps already reach the floor
    sized = cfg.sized_to(iters_per_epoch=3)  # 12 steps < 30: 10 epochs, every epoch key x 2.5
    assert (sized.epochs, sized.warmup_epochs, sized.freeze_last_layer_epochs,
            sized.warmup_teacher_temp_epochs) == (10, 2.5, 1.25, 5.0)
    sched = Schedules.from_config(sized, iters_per_epoch=3, global_batch=16)
    momentum, teacher_temp = sched.method["momentum"], sched.method["teacher_temp"]
    assert len(sched.lr) == len(momentum) == len(teacher_temp) == 30
    # the warm-up keeps its quarter of training (round(7.5) = 8 of 30 steps, peak at the 8th); momentum over 30
    assert np.argmax(sched.lr) == 7 and sched.method["freeze_last_layer_iters"] == 4
    assert teacher_temp[15] == pytest.approx(cfg.teacher_temp)
    assert momentum[-1] > momentum[15] > momentum[0]
    with pytest.raises(ValueError, match="min_steps"):
        tiny_cfg(min_steps=-1)


def test_train_with_min_steps_logs_and_runs_the_raised_epochs(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    # 32 images at batch 16: 2 iterations per epoch; min_steps 6 raises 2 epochs to 3
    train_dino(tiny_cfg(epochs=2, min_steps=6), TINY_VIT, random_dataset(32), stand_in_augment, tmp_path)
    assert [int(r["epoch"]) for r in read_log(tmp_path / "train_log.csv")] == [0, 1, 2]
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["global_step"] == 6
    assert "6 optimiser steps = 3 epochs x 2 iterations" in caplog.text
    assert "epochs raised from 2 to reach min_steps 6" in caplog.text


# ---------------------------------------------------------------- utilities
class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.bn(self.conv(x)).mean((2, 3)))


def test_ema_updates_parameters_only():
    torch.manual_seed(0)
    teacher, student = SmallNet(), SmallNet()
    student.bn.running_mean.fill_(5.0)
    before_t = {k: v.clone() for k, v in teacher.state_dict().items()}
    m = 0.9
    ema_update(teacher, student, m)
    for name, p in teacher.named_parameters():
        expected = m * before_t[name] + (1 - m) * dict(student.named_parameters())[name]
        assert torch.allclose(p, expected, atol=1e-7), name
    assert torch.equal(teacher.bn.running_mean, before_t["bn.running_mean"])
    assert torch.equal(teacher.bn.num_batches_tracked, before_t["bn.num_batches_tracked"])


def test_param_groups_no_decay_for_bias_and_1d():
    net = SmallNet()
    decay, no_decay = param_groups(net)
    names = {id(p): n for n, p in net.named_parameters()}
    assert {names[id(p)] for p in decay["params"]} == {"conv.weight", "fc.weight"}
    assert {names[id(p)] for p in no_decay["params"]} == {"conv.bias", "bn.weight", "bn.bias", "fc.bias"}
    assert no_decay["weight_decay"] == 0.0


def test_param_groups_with_fixed_lr_prefixes_split_each_group_and_refuse_a_prefix_that_matches_nothing():
    net = SmallNet()
    groups = param_groups(net, ("fc.",))
    names = {id(p): n for n, p in net.named_parameters()}
    assert [sorted(names[id(p)] for p in g["params"]) for g in groups] == [
        ["conv.weight"], ["bn.bias", "bn.weight", "conv.bias"], ["fc.weight"], ["fc.bias"]]
    assert [g.get("fixed_lr", False) for g in groups] == [False, False, True, True]
    with pytest.raises(ValueError, match="no parameter name starts with"):
        param_groups(net, ("predictor.",))


def test_groups_say_whether_they_are_decayed_also_after_loading_a_state_saved_without_it():
    flags = [(True, False), (False, False), (True, True), (False, True)]  # (decayed, fixed_lr)
    groups = param_groups(SmallNet(), ("fc.",))
    assert [(g["decayed"], g.get("fixed_lr", False)) for g in groups] == flags
    optimizer = torch.optim.AdamW(groups)
    state = optimizer.state_dict()
    for group in state["param_groups"]:  # a state saved without the flags
        group.pop("decayed")
        group.pop("fixed_lr", None)
    load_optimizer_state(optimizer, state)
    assert [(g["decayed"], g.get("fixed_lr", False)) for g in optimizer.param_groups] == flags


def test_clip_gradients_norm_per_parameter():
    net = SmallNet()
    for p in net.parameters():
        p.grad = torch.full_like(p, 10.0)
    small = net.fc.bias
    small.grad = torch.full_like(small, 0.1)  # norm < clip: untouched
    clip_gradients(net, "norm", 3.0)
    for name, p in net.named_parameters():
        if p is small:
            assert torch.allclose(p.grad, torch.full_like(p, 0.1))
        else:
            assert p.grad.norm().item() == pytest.approx(3.0, rel=1e-4), name


def test_clip_gradients_agc_unitwise():
    lin = nn.Linear(5, 3)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(3, 5))
    lin.weight.grad = torch.randn(3, 5) * 100
    lin.bias.grad = torch.zeros(3)
    clip_gradients(lin, "agc", 0.32)
    # each output unit's gradient row is rescaled to 0.32 · max(‖w_row‖, 1e-3)
    assert torch.allclose(lin.weight.grad.norm(dim=1), 0.32 * lin.weight.norm(dim=1), rtol=1e-4)


def test_head_shapes_cosines_and_frozen_magnitude():
    head = DINOHead(24, 50, hidden_dim=32, bottleneck_dim=8, n_layers=3, norm_last_layer=True)
    linears = [m for m in head.mlp if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(24, 32), (32, 32), (32, 8)]
    assert all(torch.all(m.bias == 0) for m in linears)
    out = head(torch.randn(7, 24))
    assert out.shape == (7, 50)
    assert out.abs().max() <= 1 + 1e-5
    magnitude = head.last_layer.parametrizations.weight.original0
    assert torch.all(magnitude == 1) and not magnitude.requires_grad
    # with magnitude 1 each output is the cosine between the bottleneck vector and a prototype
    z = F.normalize(head.mlp(torch.ones(1, 24)), dim=-1)
    protos = F.normalize(head.last_layer.parametrizations.weight.original1, dim=-1)
    assert torch.allclose(head(torch.ones(1, 24)), z @ protos.T, atol=1e-6)
    assert head.last_layer.bias is None
    free = DINOHead(24, 50, n_layers=1, bottleneck_dim=8, norm_last_layer=False)
    assert isinstance(free.mlp, nn.Linear) and (free.mlp.in_features, free.mlp.out_features) == (24, 8)
    assert free.last_layer.parametrizations.weight.original0.requires_grad


def test_multicrop_wrapper_groups_by_resolution_and_keeps_order():
    calls = []

    class Stub(nn.Module):
        def forward(self, x):
            calls.append(tuple(x.shape))
            return x.mean((2, 3))  # [B, C]

    wrapper = MultiCropWrapper(Stub(), nn.Identity())
    crops = [torch.full((2, 3, 8, 8), float(i)) for i in range(2)] + \
            [torch.full((2, 3, 4, 4), float(i)) for i in range(2, 5)]
    out = wrapper(crops)
    assert calls == [(4, 3, 8, 8), (6, 3, 4, 4)]
    assert out.shape == (10, 3)
    assert torch.equal(out[:, 0], torch.arange(5).repeat_interleave(2).float())


def test_cancel_last_layer_grads_window():
    model = MultiCropWrapper(nn.Linear(6, 6), DINOHead(6, 10, hidden_dim=8, bottleneck_dim=4))

    def grads_after_backward(it):
        model.zero_grad(set_to_none=True)
        model([torch.randn(3, 6)]).sum().backward()
        cancel_last_layer_grads(model, it, freeze_iters=5)
        return {n: p.grad for n, p in model.named_parameters() if p.requires_grad}

    during = grads_after_backward(4)
    assert all(g is None for n, g in during.items() if "last_layer" in n)
    assert all(g is not None for n, g in during.items() if "last_layer" not in n)
    after = grads_after_backward(5)
    assert all(g is not None for g in after.values())


# ---------------------------------------------------------------- student/teacher
def test_teacher_starts_as_copy_and_never_gets_gradients():
    torch.manual_seed(0)
    cfg = tiny_cfg()
    student, teacher = build_student_teacher(cfg, TINY_VIT)
    s_state, t_state = student.state_dict(), teacher.state_dict()
    assert s_state.keys() == t_state.keys()
    assert any(k.startswith("head.last_layer") for k in t_state)
    assert all(torch.equal(s_state[k], t_state[k]) for k in s_state)
    assert not any(p.requires_grad for p in teacher.parameters())

    loss_fn = DINOLoss(cfg.out_dim, 4)
    opt = torch.optim.AdamW(param_groups(student))
    sched = Schedules.from_config(cfg, iters_per_epoch=3, global_batch=8)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    dino = DINO(cfg, student, loss_fn, teacher)
    for it in range(4):  # crosses the last-layer freeze window (3 iterations) and lr warm-up
        stats = training_step(dino, student, opt, stand_in_augment(images, g), it, sched, cfg)
        assert math.isfinite(stats["loss"])
        assert all(p.grad is None for p in teacher.parameters())
    assert opt.param_groups[0]["lr"] == pytest.approx(sched.lr[3])
    assert opt.param_groups[0]["weight_decay"] == pytest.approx(sched.wd[3])
    assert opt.param_groups[1]["weight_decay"] == 0.0
    changed = [k for k, v in teacher.state_dict().items() if not torch.equal(v, before[k])]
    assert any("backbone" in k for k in changed) and any("head.mlp" in k for k in changed)


def test_config_from_dict():
    cfg = DinoConfig.from_dict({"lr": "5e-4", "epochs": 3, "warmup_epochs": 1, "clip_mode": "agc"})
    assert cfg.lr == 5e-4 and cfg.epochs == 3 and cfg.clip_mode == "agc"
    with pytest.raises(ValueError, match="not_a_key"):
        DinoConfig.from_dict({"not_a_key": 1})
    with pytest.raises(ValueError, match="clip_mode"):
        DinoConfig(clip_mode="bogus")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_cuda(tmp_path):
    with pytest.raises(RuntimeError, match="(?i)cuda"):
        train_dino(tiny_cfg(device="cuda"), TINY_VIT, random_dataset(16), stand_in_augment, tmp_path)


# ---------------------------------------------------------------- end to end
def read_log(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_train_dino_end_to_end(tmp_path):
    out = train_dino(tiny_cfg(), TINY_VIT, random_dataset(64), stand_in_augment, tmp_path)
    assert out == tmp_path / "teacher_backbone.pt" and out.exists()
    assert (tmp_path / "checkpoint.pt").exists() and not (tmp_path / "checkpoint.pt.tmp").exists()
    rows = read_log(tmp_path / "train_log.csv")
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert set(rows[0]) == set(trainer.log_columns(DINO))
    assert all(math.isfinite(float(r["loss"])) for r in rows)
    assert 0 < float(rows[-1]["teacher_entropy"]) <= math.log(64) + 1e-4
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["global_step"] == 8
    backbone = load_backbone(TINY_VIT, out)  # strict load into a fresh timm model
    assert backbone(torch.zeros(2, 3, 16, 16)).shape == (2, 32)
    state = torch.load(out, weights_only=True)
    assert all(torch.equal(state[k], ckpt["teacher"]["backbone." + k]) for k in state)


class Killed(Exception):
    pass


def test_resume_reproduces_uninterrupted_run(tmp_path, monkeypatch, caplog):
    cfg = tiny_cfg(epochs=2, checkpoint_every_epochs=1)
    data = random_dataset(64)
    full = train_dino(cfg, TINY_VIT, data, stand_in_augment, tmp_path / "full")

    original = trainer.save_checkpoint

    def save_then_die(path, state):
        original(path, state)
        if state["epoch"] == 1:
            raise Killed

    monkeypatch.setattr(trainer, "save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        train_dino(cfg, TINY_VIT, data, stand_in_augment, tmp_path / "resumed")
    monkeypatch.setattr(trainer, "save_checkpoint", original)
    assert len(read_log(tmp_path / "resumed" / "train_log.csv")) == 1

    with caplog.at_level(logging.INFO):
        resumed = train_dino(cfg, TINY_VIT, data, stand_in_augment, tmp_path / "resumed")
    assert "resuming from epoch 1" in caplog.text

    a, b = torch.load(full, weights_only=True), torch.load(resumed, weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    ca = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)
    cb = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    assert ca["epoch"] == cb["epoch"] == 2
    assert torch.equal(ca["loss"]["center"], cb["loss"]["center"])
    timing = {"seconds", "images_per_s"}
    rows_a = read_log(tmp_path / "full" / "train_log.csv")
    rows_b = read_log(tmp_path / "resumed" / "train_log.csv")
    assert len(rows_a) == len(rows_b) == 2
    for ra, rb in zip(rows_a, rows_b):
        assert {k: v for k, v in ra.items() if k not in timing} == {k: v for k, v in rb.items() if k not in timing}


def test_changed_config_starts_new_training_and_keeps_old_checkpoint(tmp_path, caplog):
    """A checkpoint belongs to one config: a changed setting trains anew, the old checkpoint is kept
    as checkpoint.<hash>.pt and taken back when the old setting returns."""
    data = random_dataset(32)
    train_dino(tiny_cfg(epochs=1, warmup_epochs=0), TINY_VIT, data, stand_in_augment, tmp_path)
    first = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["run_hash"]
    with caplog.at_level(logging.INFO):
        train_dino(tiny_cfg(epochs=2, warmup_epochs=0), TINY_VIT, data, stand_in_augment, tmp_path)
    assert "starting a new training" in caplog.text and "resuming" not in caplog.text
    assert (tmp_path / f"checkpoint.{first}.pt").exists()
    assert len(read_log(tmp_path / "train_log.csv")) == 2
    caplog.clear()
    with caplog.at_level(logging.INFO):
        train_dino(tiny_cfg(epochs=1, warmup_epochs=0), TINY_VIT, data, stand_in_augment, tmp_path)
    assert "taking back" in caplog.text and "resuming from epoch 1" in caplog.text
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["run_hash"] == first
    assert len(read_log(tmp_path / "train_log.csv")) == 1


def test_non_finite_loss_raises_with_epoch_and_step(tmp_path):
    def nan_augment(images, g):
        return [torch.full_like(c, float("nan")) for c in stand_in_augment(images, g)]

    with pytest.raises(FloatingPointError, match=r"epoch 0, step 0"):
        train_dino(tiny_cfg(), TINY_VIT, random_dataset(32), nan_augment, tmp_path)


def test_small_dataset_auto_device_bf16(tmp_path, caplog):
    cfg = tiny_cfg(epochs=1, warmup_epochs=0, batch_size=64, device="auto", precision="bf16")
    with caplog.at_level(logging.WARNING):
        train_dino(cfg, TINY_VIT, random_dataset(8), stand_in_augment, tmp_path)
    assert "fewer than batch_size" in caplog.text
    if not torch.cuda.is_available():
        assert "CUDA not available: training on CPU" in caplog.text
    assert len(read_log(tmp_path / "train_log.csv")) == 1


def test_a_datasets_method_params_override_the_methods_own_and_keep_an_instances_seed():
    from medssl.checks import with_dataset_params

    dino = {"kind": "dino", "params": {"epochs": 20, "min_steps": 1280, "seed": 0}}
    demo = {"method_params": {"dino": {"min_steps": 0}}}
    assert with_dataset_params(dino, demo, "dino")["params"] == {"epochs": 20, "min_steps": 0, "seed": 0}
    assert with_dataset_params(dino, {"image_size": 32}, "dino") == dino
    # a pretrain_seeds instance (dino_seed1 of family dino) takes its family's override and keeps its seed
    instance = {**dino, "params": {**dino["params"], "seed": 1}, "family": "dino", "pretrain_seed": 1}
    assert with_dataset_params(instance, demo, "dino_seed1")["params"] == {"epochs": 20, "min_steps": 0, "seed": 1}
