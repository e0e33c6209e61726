"""DINOv2's anti-collapse tools in DINO: Sinkhorn-Knopp teacher centring and the KoLeo regulariser."""
import math

import pytest
import torch

from medssl.ssl import Schedules
from medssl.ssl.dino import DINO, DinoConfig, DINOLoss, koleo_loss, sinkhorn_knopp


def test_sinkhorn_knopp_balances_prototypes_and_keeps_rows_distributions():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(64, 16, generator=g) * 5
    scores[:, 0] += 20  # every sample prefers prototype 0: softmax would collapse onto it
    q = sinkhorn_knopp(scores, iterations=50)
    assert torch.allclose(q.sum(dim=1), torch.ones(64), atol=1e-4)
    assert torch.allclose(q.sum(dim=0), torch.full((16,), 64 / 16), rtol=1e-3)
    assert torch.softmax(scores, dim=1)[:, 0].mean() > 0.9
    # shifting all scores changes nothing (the max shift is only for numerical stability)
    torch.testing.assert_close(sinkhorn_knopp(scores + 1000.0, 3), sinkhorn_knopp(scores, 3), rtol=1e-3, atol=1e-5)


def test_sinkhorn_loss_keeps_teacher_entropy_away_from_both_collapses():
    g = torch.Generator().manual_seed(1)
    n, k = 32, 64
    teacher = torch.randn(2 * n, k, generator=g)
    teacher[:, 3] += 10  # a teacher whose softmax is one-hot on prototype 3 for every image
    student = torch.randn(4 * n, k, generator=g)
    ema = DINOLoss(k, 4, centering="ema")
    sk = DINOLoss(k, 4, centering="sinkhorn")
    ema(student, teacher, 0.04)
    sk(student, teacher, 0.04)
    assert ema.last_stats["teacher_entropy"] < 0.05  # collapsed onto one prototype
    assert 0.05 < sk.last_stats["teacher_entropy"] < math.log(k) - 0.5
    assert torch.count_nonzero(sk.center) == 0  # no EMA centre with Sinkhorn-Knopp


def test_koleo_is_lower_for_spread_features_and_has_gradients():
    g = torch.Generator().manual_seed(2)
    spread = torch.randn(32, 8, generator=g)
    clumped = torch.randn(1, 8, generator=g) + 0.01 * torch.randn(32, 8, generator=g)
    assert koleo_loss(spread) < koleo_loss(clumped)
    x = spread.clone().requires_grad_(True)
    koleo_loss(x).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_config_rejects_unknown_centering_and_negative_koleo():
    with pytest.raises(ValueError, match="centering"):
        DinoConfig(centering="mean")
    with pytest.raises(ValueError, match="koleo_weight"):
        DinoConfig(koleo_weight=-1)


def test_dino_loss_adds_koleo_on_the_global_views_and_backpropagates():
    spec = {"name": "vit_tiny_patch16_224", "pretrained": False,
            "kwargs": {"img_size": 16, "patch_size": 8, "depth": 1, "embed_dim": 24, "num_heads": 2,
                       "dynamic_img_size": True}}
    g = torch.Generator().manual_seed(0)
    views = [torch.randn(8, 3, 16, 16, generator=g) for _ in range(2)] + [torch.randn(8, 3, 8, 8, generator=g)]
    losses = {}
    for weight in (0.0, 0.5):
        torch.manual_seed(0)
        cfg = DinoConfig(out_dim=32, hidden_dim=16, bottleneck_dim=8, centering="sinkhorn", koleo_weight=weight,
                         epochs=1, warmup_epochs=0)
        method = DINO.build(cfg, spec, n_views=3)
        sched = Schedules.from_config(cfg, iters_per_epoch=1, global_batch=8)
        loss, stats = method.loss(method.model, views, 0, sched)
        loss.backward()
        losses[weight] = loss.item()
        assert math.isfinite(loss.item()) and 0 < stats["teacher_entropy"] <= math.log(32)
        assert method.model.backbone.cls_token.grad is not None
    assert losses[0.5] != losses[0.0]  # KoLeo enters the loss


def test_small_data_preset_overlays_the_demo_dino():
    from pathlib import Path

    import yaml

    from medssl.augment import MultiCropConfig

    config = Path(__file__).resolve().parents[1] / "config"
    demo = yaml.safe_load((config / "config.yaml").read_text())["methods"]["dino"]
    preset = yaml.safe_load((config / "presets/small_data_dino.yaml").read_text())["methods"]["dino"]
    params = {**demo["params"], **preset["params"]}
    cfg = DinoConfig.from_dict(params)
    assert (cfg.centering, cfg.koleo_weight, cfg.out_dim, cfg.batch_size) == ("sinkhorn", 0.02, 256, 32)
    aug = MultiCropConfig.from_dict({**demo["augmentation"], **preset["augmentation"]})
    assert aug.rotation_degrees == 0 and aug.vflip_p == 0
