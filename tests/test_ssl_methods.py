"""Every SSL method through the shared trainer: registry, exact resume after a kill, resuming a finished
run, collapse verdicts (fail / warn, health.json), fp16, and one step of every shipped preset."""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import logging
import math
from pathlib import Path

import pytest
import torch
import yaml
from snakemake.utils import update_config
from torch.utils.data import TensorDataset

from medssl.augment import MultiCropAugment, MultiCropConfig
from medssl.runtime import MixedPrecision
from medssl.ssl import KINDS, CollapseConfig, CollapseError, Schedules, get_method, parse_spec, train, training_step
from medssl.ssl import checkpoint, collapse, trainer
from medssl.ssl.optim import build_optimizer

REPO = Path(__file__).resolve().parents[1]
TINY_VIT = {"name": "vit_tiny_patch16_224", "pretrained": False,
            "kwargs": {"img_size": 16, "patch_size": 4, "depth": 2, "embed_dim": 32, "num_heads": 2,
                       "dynamic_img_size": True}}
TINY_PARAMS = {
    "dino": {"out_dim": 32, "hidden_dim": 16, "bottleneck_dim": 8, "warmup_epochs": 1, "drop_path_rate": 0.1},
    "simclr": {"proj_hidden_dim": 32, "proj_dim": 16},
    "dclw": {"proj_hidden_dim": 32, "proj_dim": 16, "symmetric": True},
    "simsiam": {"proj_hidden_dim": 32, "proj_dim": 16, "predictor": True, "predictor_hidden_dim": 8},
    "vicreg": {"proj_hidden_dim": 32, "proj_dim": 32},
}


def dataset(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randint(0, 256, (n, 3, 16, 16), generator=g, dtype=torch.uint8),
                         torch.zeros(n, dtype=torch.long))


def setup(kind, **params):
    method = get_method(kind)
    cfg = method.Config.from_dict({"epochs": 2, "batch_size": 16, "num_workers": 0, "device": "cpu",
                                   "checkpoint_every_epochs": 1, **TINY_PARAMS[kind], **params})
    aug = {**method.augmentation_defaults, "global_size": 16, "blur_kernel": 0, "blur_sigma": [0.1, 1.0]}
    if kind == "dino":
        aug.update(local_size=8, n_local=2)
    return method, cfg, MultiCropAugment(MultiCropConfig.from_dict(aug))


def read_rows(path):
    with open(path) as f:
        return [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in csv.DictReader(f)]


def test_every_kind_names_its_method():
    assert sorted(KINDS) == sorted(TINY_PARAMS) == ["dclw", "dino", "simclr", "simsiam", "vicreg"]
    for kind in KINDS:
        assert get_method(kind).kind == kind


class Killed(Exception):
    pass


@pytest.mark.parametrize("kind", sorted(TINY_PARAMS))
def test_kill_and_resume_reproduces_the_uninterrupted_run(kind, tmp_path, monkeypatch):
    method, cfg, aug = setup(kind)
    data = dataset()
    full = train(method, cfg, TINY_VIT, data, aug, tmp_path / "full")
    original = trainer.save_checkpoint

    def save_then_die(path, state):
        original(path, state)
        if state["epoch"] == 1:
            raise Killed

    monkeypatch.setattr(trainer, "save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        train(method, cfg, TINY_VIT, data, aug, tmp_path / "resumed")
    monkeypatch.setattr(trainer, "save_checkpoint", original)
    resumed = train(method, cfg, TINY_VIT, data, aug, tmp_path / "resumed")
    a, b = torch.load(full, weights_only=True), torch.load(resumed, weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = read_rows(tmp_path / "full" / "train_log.csv")
    assert rows == read_rows(tmp_path / "resumed" / "train_log.csv") and len(rows) == 2
    assert set(rows[0]) >= {"loss", "embedding_std_ratio", "effective_rank", *method.log_columns}
    assert all(math.isfinite(float(v)) for r in rows for v in r.values())
    health = json.loads((tmp_path / "full" / "health.json").read_text())
    assert health["verdict"] == "ok" and health["kind"] == kind and not health["warned"]


def test_resuming_a_finished_run_writes_the_outputs_again(tmp_path, caplog):
    method, cfg, aug = setup("simclr", epochs=1)
    data = dataset(32)
    out = train(method, cfg, TINY_VIT, data, aug, tmp_path)
    before = torch.load(out, weights_only=True)
    rows = read_rows(tmp_path / "train_log.csv")
    for name in (out.name, "train_log.csv", "health.json"):  # what Snakemake removes before a rerun
        (tmp_path / name).unlink()
    with caplog.at_level(logging.INFO):
        again = train(method, cfg, TINY_VIT, data, aug, tmp_path)
    assert "resuming from epoch 1 (1 of 1 epochs done" in caplog.text and "epoch 0/1" not in caplog.text
    after = torch.load(again, weights_only=True)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert read_rows(tmp_path / "train_log.csv") == rows and (tmp_path / "health.json").exists()


def test_temporary_files_are_unique_per_call_and_process():
    a, b = checkpoint._unique_tmp(Path("x/checkpoint.pt")), checkpoint._unique_tmp(Path("x/checkpoint.pt"))
    assert a != b and a.parent == Path("x") and str(__import__("os").getpid()) in a.name


def test_a_second_trainer_waits_for_the_one_writing_the_folder(tmp_path, caplog):
    """An orphaned trainer (Snakemake killed) still holds the folder: the rerun waits, then resumes."""
    import fcntl
    import os
    import threading

    method, cfg, aug = setup("simsiam", epochs=1)
    fd = os.open(tmp_path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    threading.Timer(2.0, os.close, args=(fd,)).start()
    with caplog.at_level(logging.WARNING):
        assert train(method, cfg, TINY_VIT, dataset(32), aug, tmp_path).exists()
    assert "another trainer is writing" in caplog.text


def test_collapsing_dino_fails_naming_the_signal_and_warn_completes(tmp_path):
    # A teacher temperature of 100 makes the teacher's outputs uniform: entropy = ln(out_dim).
    method, cfg, aug = setup("dino", epochs=1, warmup_epochs=0, teacher_temp=100.0, warmup_teacher_temp=100.0)
    with pytest.raises(CollapseError) as err:
        train(method, cfg, TINY_VIT, dataset(32), aug, tmp_path / "fail")
    message = str(err.value)
    assert "teacher_entropy_ratio = 1" in message and "collapse.max_teacher_entropy_ratio = 0.9" in message
    assert "teacher_temp" in message and "collapse.action: warn" in message
    health = json.loads((tmp_path / "fail" / "health.json").read_text())
    assert health["verdict"] == "collapsed" and not health["warned"]

    out = train(method, cfg, TINY_VIT, dataset(32), aug, tmp_path / "warn", collapse_cfg=CollapseConfig(action="warn"))
    assert out.exists()
    health = json.loads((tmp_path / "warn" / "health.json").read_text())
    assert health["verdict"] == "collapsed" and health["warned"]
    assert [f["signal"] for f in health["failed"]] == ["teacher_entropy_ratio"]


def test_sinkhorn_teacher_entropy_is_reported_but_not_a_collapse_verdict():
    from medssl.ssl.dino import DINO, DinoConfig

    row = {"teacher_entropy": 0.95 * math.log(256), "kl_teacher_student": 0.3}
    for centering, key in (("ema", "teacher_entropy_ratio"), ("sinkhorn", "sinkhorn_teacher_entropy_ratio")):
        method = DINO.__new__(DINO)
        method.cfg = DinoConfig(out_dim=256, centering=centering)
        signals = method.signals(row)
        assert set(signals) == {key, "kl_teacher_student"} and signals[key] == pytest.approx(0.95)
        failed = [f["signal"] for f in collapse.verdict(signals, CollapseConfig())]
        assert failed == (["teacher_entropy_ratio"] if centering == "ema" else [])


def test_embedding_signals_on_collapsed_and_spread_features():
    g = torch.Generator().manual_seed(0)
    spread = collapse.signals_of(torch.randn(512, 64, generator=g))
    assert spread["embedding_std_ratio"] == pytest.approx(1.0, abs=0.05) and spread["effective_rank"] > 40
    point = collapse.signals_of(torch.ones(512, 64) + 1e-9 * torch.randn(512, 64, generator=g))
    assert point["embedding_std_ratio"] < 1e-6
    line = collapse.signals_of(torch.randn(512, 1, generator=g) * torch.randn(1, 64, generator=g))
    assert line["effective_rank"] < 1.01  # all variation along one direction: dimensional collapse
    failed = collapse.verdict({**point, "effective_rank": 1.0}, CollapseConfig())
    assert {f["signal"] for f in failed} == {"embedding_std_ratio", "effective_rank"}


def test_collapse_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match="min_std"):
        CollapseConfig.from_dict({"min_std": 0.1})
    with pytest.raises(ValueError, match="action"):
        CollapseConfig.from_dict({"action": "ignore"})


def test_fp16_on_the_cpu_runs_fp32_and_a_grad_scaler_is_checkpointed(tmp_path, monkeypatch, caplog):
    method, cfg, aug = setup("vicreg", epochs=1, precision="fp16")
    with caplog.at_level(logging.WARNING):
        train(method, cfg, TINY_VIT, dataset(32), aug, tmp_path / "cpu")
    assert "methods.<name>.params.precision: fp16 autocast needs CUDA; running in fp32 on cpu" in caplog.text
    assert torch.load(tmp_path / "cpu" / "checkpoint.pt", weights_only=True)["scaler"] == {}  # no loss scaling
    # where fp16 runs (CUDA), the GradScaler's state is checkpointed: a scaler forced on shows it
    monkeypatch.setattr(MixedPrecision, "scaled", property(lambda self: True))
    train(method, cfg, TINY_VIT, dataset(32), aug, tmp_path / "scaled")
    assert torch.load(tmp_path / "scaled" / "checkpoint.pt", weights_only=True)["scaler"]["scale"] > 0


def test_bad_keys_fail_naming_the_section():
    with pytest.raises(ValueError, match=r"params \(simclr\).*tempurature"):
        parse_spec({"kind": "simclr", "params": {"tempurature": 0.5}})
    with pytest.raises(ValueError, match="n_local"):
        parse_spec({"kind": "vicreg", "augmentation": {"n_local": 2}})
    with pytest.raises(ValueError, match="unknown SSL method kind 'byol'"):
        parse_spec({"kind": "byol"})


PRESETS = sorted((REPO / "config/presets").glob("*.yaml"))


def _overlay(base: dict, top: dict) -> dict:
    """Snakemake's --configfile merge (nested mappings updated key by key), on a copy of ``base``."""
    out = copy.deepcopy(base)
    update_config(out, top)
    return out


def _preset_methods():
    """Every trained method of every preset; a preset that only overrides part of an entry (an overlay,
    e.g. medmnist_64.yaml) is stepped as merged onto the demo config."""
    demo = yaml.safe_load((REPO / "config/config.yaml").read_text())
    for path in PRESETS:
        config = yaml.safe_load(path.read_text())
        for name, entry in (config.get("methods") or {}).items():
            if "kind" not in entry:
                entry = _overlay(demo["methods"][name], entry)
            if entry["kind"] in KINDS:
                backbone = config.get("backbone") or {}
                backbone = backbone if "name" in backbone else _overlay(demo["backbone"], backbone)
                yield pytest.param(backbone, entry, id=f"{path.stem}-{name}")


@pytest.mark.parametrize("backbone, entry", list(_preset_methods()))
def test_one_step_of_every_shipped_preset(backbone, entry):
    """The preset's backbone, heads and views as shipped, at tiny scale: 2 images, and crops 4x smaller
    (multiples of 16 px: 224 -> 64, 96 -> 32; still different sizes, the dino_reference crash)."""
    torch.manual_seed(0)
    method, cfg, aug_cfg, _ = parse_spec({**entry, "params": {**(entry.get("params") or {}), "device": "cpu"}})
    aug_cfg = dataclasses.replace(aug_cfg, global_size=max(32, 16 * round(aug_cfg.global_size / 64)),
                                  local_size=max(32, 16 * round(aug_cfg.local_size / 64)))
    size = aug_cfg.global_size
    images = torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8)
    views = MultiCropAugment(aug_cfg)(images, torch.Generator().manual_seed(0))
    m = method.build(cfg, backbone, len(views))
    optimizer = build_optimizer(m.model, cfg, torch.device("cpu"), m.fixed_lr_prefixes())
    sched = Schedules.from_config(cfg, iters_per_epoch=1, global_batch=2)
    m.train_mode()
    stats = training_step(m, m.model, optimizer, views, 0, sched, cfg)
    assert math.isfinite(stats["loss"])


def test_views_default_to_the_dataset_image_size():
    assert parse_spec({"kind": "vicreg", "image_size": 32})[2].global_size == 32
    assert parse_spec({"kind": "vicreg", "image_size": 32, "augmentation": {"global_size": 24}})[2].global_size == 24
    # DINO: global views at the image size, local views at half of it (a 64 px dataset is not trained on 32 px crops)
    views = parse_spec({"kind": "dino", "image_size": 64})[2]
    assert (views.global_size, views.local_size) == (64, 32)
    views = parse_spec({"kind": "dino", "image_size": 64, "augmentation": {"global_size": 56, "local_size": 24}})[2]
    assert (views.global_size, views.local_size) == (56, 24)


def test_simsiam_output_bn_and_a_fixed_predictor_lr_outside_the_warm_up():
    method, cfg, aug = setup("simsiam", warmup_epochs=1, proj_output_bn=True, predictor_lr="fixed")
    views = aug(dataset(8)[:][0], torch.Generator().manual_seed(0))
    m = method.build(cfg, TINY_VIT, len(views))
    last = m.model.head.projector[-1]
    assert isinstance(last, torch.nn.BatchNorm1d) and not last.affine
    optimizer = build_optimizer(m.model, cfg, torch.device("cpu"), m.fixed_lr_prefixes())
    predictor = {id(p) for p in m.model.head.predictor.parameters()}
    assert [len(g["params"]) for g in optimizer.param_groups[2:]] == [2, 4]  # 2 weights; biases and BN
    assert {id(p) for g in optimizer.param_groups[2:] for p in g["params"]} == predictor
    sched = Schedules.from_config(cfg, iters_per_epoch=4, global_batch=8)
    before = {n: p.detach().clone() for n, p in m.model.named_parameters()}
    m.train_mode()
    training_step(m, m.model, optimizer, views, 0, sched, cfg)  # step 0 of the warm-up: lr 0
    assert [g["lr"] for g in optimizer.param_groups] == [0.0, 0.0, sched.base_lr, sched.base_lr]
    assert sched.base_lr == cfg.lr > 0
    changed = {n for n, p in m.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith("head.predictor.") for n in changed)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [sched.wd[0], 0.0, sched.wd[0], 0.0]


@pytest.mark.parametrize("params, message", [({"predictor_lr": "constant", "predictor": True}, "scheduled or fixed"),
                                             ({"predictor_lr": "fixed", "predictor": False}, "needs predictor")])
def test_simsiam_predictor_lr_is_checked(params, message):
    with pytest.raises(ValueError, match=message):
        get_method("simsiam").Config.from_dict(params)
