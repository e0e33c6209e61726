"""The SmallDataSSL losses against direct implementations written from docs/papers.md#smalldatassl-losses (explicit
loops over anchors, not vectorised like medssl.ssl), both variants of each, and gradient flow."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from medssl.ssl.dclw import DCLWLoss
from medssl.ssl.simclr import NTXentLoss
from medssl.ssl.simsiam import SimSiamLoss
from medssl.ssl.vicreg import VICRegLoss


def unit(b=8, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (F.normalize(torch.randn(b, d, generator=g, dtype=torch.float64), dim=1),
            F.normalize(torch.randn(b, d, generator=g, dtype=torch.float64), dim=1))


def simclr_reference(z1, z2, tau):
    """Z = [z1; z2]; S = exp(Z Zᵀ/τ) without the diagonal; positive exp(<z1_i, z2_i>/τ) for both
    directions; loss = mean over 2B of −log(pos / Σ_row S)."""
    z = torch.cat([z1, z2])
    n, b = len(z), len(z1)
    total = 0.0
    for i in range(n):
        denom = sum(math.exp(float(z[i] @ z[k]) / tau) for k in range(n) if k != i)
        pos = math.exp(float(z1[i % b] @ z2[i % b]) / tau)
        total += -math.log(pos / denom)
    return total / n


def dclw_reference(z1, z2, tau, sigma):
    """w_i = 2 − B·softmax_i(<z1_i, z2_i>/σ); pos_i = −w_i<z1_i, z2_i>/τ; neg_i = log Σ_{j≠i}
    [exp(<z1_i, z1_j>/τ) + exp(<z1_i, z2_j>/τ)]; loss = mean_i(pos_i + neg_i), z1 anchors only."""
    b = len(z1)
    sims = [float(z1[i] @ z2[i]) for i in range(b)]
    softmax_den = sum(math.exp(s / sigma) for s in sims)
    total = 0.0
    for i in range(b):
        w = 2 - b * math.exp(sims[i] / sigma) / softmax_den
        neg = sum(math.exp(float(z1[i] @ z1[j]) / tau) + math.exp(float(z1[i] @ z2[j]) / tau)
                  for j in range(b) if j != i)
        total += -w * sims[i] / tau + math.log(neg)
    return total / b


def vicreg_reference(z1, z2, lam, mu, nu, halve_variance):
    """sim = MSE over all entries; std term per branch mean_d relu(1 − sqrt(var_d + 1e-4)) (unbiased),
    summed over branches (SmallDataSSL) or averaged (official); cov per branch Σ_{i≠j} C_ij²/D."""
    n, d = z1.shape
    sim = sum(float((z1[i, k] - z2[i, k]) ** 2) for i in range(n) for k in range(d)) / (n * d)
    std, cov = 0.0, 0.0
    for z in (z1, z2):
        mean = [sum(float(z[i, k]) for i in range(n)) / n for k in range(d)]
        var = [sum((float(z[i, k]) - mean[k]) ** 2 for i in range(n)) / (n - 1) for k in range(d)]
        std += sum(max(0.0, 1 - math.sqrt(v + 1e-4)) for v in var) / d
        c = [[sum((float(z[i, a]) - mean[a]) * (float(z[i, b]) - mean[b]) for i in range(n)) / (n - 1)
              for b in range(d)] for a in range(d)]
        cov += sum(c[a][b] ** 2 for a in range(d) for b in range(d) if a != b) / d
    if halve_variance:
        std /= 2
    return lam * sim + mu * std + nu * cov


@pytest.mark.parametrize("tau", [0.5, 0.1])
def test_ntxent_matches_formula(tau):
    z1, z2 = unit()
    assert NTXentLoss(tau)(z1, z2).item() == pytest.approx(simclr_reference(z1, z2, tau), rel=1e-6)


@pytest.mark.parametrize("symmetric", [False, True])
def test_dclw_matches_formula_one_direction_and_symmetric(symmetric):
    z1, z2 = unit(seed=1)
    expected = dclw_reference(z1, z2, 0.1, 0.5)
    if symmetric:  # the DCL authors' trainer: l(z1, z2) + l(z2, z1)
        expected += dclw_reference(z2, z1, 0.1, 0.5)
    got = DCLWLoss(0.1, 0.5, symmetric)(z1, z2).item()
    assert got == pytest.approx(expected, rel=1e-6)


def test_dclw_weights_are_not_detached():
    z1, z2 = unit(seed=2)
    z1.requires_grad_(True)
    loss = DCLWLoss(0.1, 0.5)(z1, z2)
    (g_full,) = torch.autograd.grad(loss, z1)
    # the same loss with the weights treated as constants has a different gradient
    b = len(z1)
    pos = (z1 * z2).sum(-1)
    w = (2 - b * torch.softmax(pos / 0.5, dim=0)).detach()
    mask = torch.eye(b, dtype=torch.float64) * math.log(1e-45)
    neg = torch.logsumexp(torch.cat([z1 @ z1.T / 0.1 + mask, z1 @ z2.T / 0.1 + mask], 1), 1)
    (g_det,) = torch.autograd.grad((-w * pos / 0.1 + neg).mean(), z1)
    assert not torch.allclose(g_full, g_det)


@pytest.mark.parametrize("mu, halve", [(25.0, True), (50.0, True)])
def test_vicreg_matches_formula_official_and_paper_variant(mu, halve):
    g = torch.Generator().manual_seed(3)
    z1, z2 = (torch.randn(10, 6, generator=g, dtype=torch.float64) * 0.7 for _ in range(2))
    got = VICRegLoss(25.0, mu, 1.0)(z1, z2).item()
    assert got == pytest.approx(vicreg_reference(z1, z2, 25.0, mu, 1.0, halve), rel=1e-6)
    if mu == 50.0:  # the paper's code: un-halved variance with mu 25 == the official formula with mu 50
        assert got == pytest.approx(vicreg_reference(z1, z2, 25.0, 25.0, 1.0, halve_variance=False), rel=1e-6)


def simsiam_reference(p1, z1, p2, z2):
    cos = lambda a, b: float(a @ b) / (math.sqrt(float(a @ a)) * math.sqrt(float(b @ b)))  # noqa: E731
    b = len(p1)
    return (0.5 * sum(-cos(p1[i], z2[i]) for i in range(b)) / b + 0.5 * sum(-cos(p2[i], z1[i]) for i in range(b)) / b)


@pytest.mark.parametrize("predictor", [False, True])
def test_simsiam_matches_formula_and_stops_gradients(predictor):
    g = torch.Generator().manual_seed(4)
    z1, z2 = (torch.randn(6, 5, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(2))
    if predictor:
        w = torch.randn(5, 5, generator=g, dtype=torch.float64)
        p1, p2 = z1 @ w, z2 @ w
    else:  # the paper's code: the loss on the projector outputs themselves
        p1, p2 = z1, z2
    loss = SimSiamLoss()(p1, z1, p2, z2)
    assert loss.item() == pytest.approx(simsiam_reference(p1.detach(), z1.detach(), p2.detach(), z2.detach()),
                                        rel=1e-6)
    # Stop-gradient: d loss / d z1 is only the path through p1 (z1 as a target gets none).
    g1, = torch.autograd.grad(loss, z1, retain_graph=True)
    p1_only = 0.5 * -F.cosine_similarity(p1, z2.detach(), dim=-1).mean()
    g_expected, = torch.autograd.grad(p1_only, z1)
    assert torch.allclose(g1, g_expected)
