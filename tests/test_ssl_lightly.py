"""The SmallDataSSL losses against lightly 1.6.0 where lightly's definition agrees (docs/papers.md#smalldatassl-losses):
NTXentLoss(0.5) = SimCLR; VICRegLoss(25, 50, 1) = the paper's un-halved VICReg = ours with std_coeff 50;
NegativeCosineSimilarity on detached targets = SimSiam. lightly is a test-only dependency."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

lightly_loss = pytest.importorskip("lightly.loss")

from medssl.ssl.simclr import NTXentLoss  # noqa: E402
from medssl.ssl.simsiam import SimSiamLoss  # noqa: E402
from medssl.ssl.vicreg import VICRegLoss  # noqa: E402


def views(b=16, d=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, d, generator=g), torch.randn(b, d, generator=g)


def test_ntxent_equals_lightly():
    z1, z2 = (F.normalize(z, dim=1) for z in views())
    ours = NTXentLoss(0.5)(z1, z2)
    theirs = lightly_loss.NTXentLoss(temperature=0.5)(z1, z2)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)


def test_paper_vicreg_equals_lightly():
    z1, z2 = views(seed=1)
    ours = VICRegLoss(sim_coeff=25, std_coeff=50, cov_coeff=1)(z1, z2)
    theirs = lightly_loss.VICRegLoss(lambda_param=25, mu_param=50, nu_param=1)(z1, z2)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)


def test_simsiam_equals_lightly_negative_cosine_on_detached_targets():
    z1, z2 = views(seed=2)
    p1, p2 = z1 * 1.5 + 0.1, z2 - 0.2
    cos = lightly_loss.NegativeCosineSimilarity()
    theirs = 0.5 * cos(p1, z2.detach()) + 0.5 * cos(p2, z1.detach())
    assert SimSiamLoss()(p1, z1, p2, z2).item() == pytest.approx(theirs.item(), rel=1e-6)
