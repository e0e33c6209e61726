"""Collapse signals (Jing et al. 2022; Garrido et al. 2023 "RankMe") and the end-of-run verdict.

For every method, at the end of each epoch, on a fixed seeded sample of training images (no
augmentation, the embedding stage's preprocessing) through the backbone that the embedding
stage will use:

* ``embedding_std``: the per-dimension standard deviation of the L2-normalised embeddings,
  averaged over the d dimensions; ``embedding_std_ratio`` = that × sqrt(d). Embeddings spread
  evenly over the sphere give ≈ 1; complete collapse (every image on one point) gives 0.
* ``effective_rank``: exp of the entropy of the normalised singular values of the centred,
  L2-normalised embeddings (1 ... d); dimensional collapse (embeddings on a few directions)
  makes it small. Centred so that a direction shared by every image does not count; 0 when the
  embeddings do not vary at all.

DINO also has teacher entropy / ln(out_dim) (→ 1: uniform teacher outputs) and KL(teacher‖student)
(→ 0: the student already matches a teacher that carries no information).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from medssl.augment import normalize
from medssl.backbone import pooled

COLLAPSE_COLUMNS = ("embedding_std", "embedding_std_ratio", "effective_rank")

# signal -> (threshold key, kind of bound, what it means, what to change)
_CHECKS = {
    "embedding_std_ratio": ("min_std_ratio", "min", "complete collapse: the images' embeddings hardly differ",
                            "lower the lr or raise the warm-up, check the augmentation is not too strong for the "
                            "image size, or (DINO) sharpen the teacher (teacher_temp) and keep the centring"),
    "effective_rank": ("min_effective_rank", "min", "dimensional collapse: the embeddings span only a few directions",
                       "lower the lr, use a larger projector/out_dim, (VICReg) raise the variance/covariance "
                       "weights, (SimSiam) turn on the predictor"),
    "teacher_entropy_ratio": ("max_teacher_entropy_ratio", "max",
                              "the DINO teacher's outputs are close to uniform",
                              "lower teacher_temp (or its warm-up), raise momentum_teacher, use fewer prototypes "
                              "(out_dim) or lower the lr"),
    "kl_teacher_student": ("min_kl_teacher_student", "min", "the DINO student copies an uninformative teacher",
                           "lower teacher_temp, lower the lr, or strengthen the augmentation"),
}


@dataclass(frozen=True)
class CollapseConfig:
    """``methods.<name>.collapse``: the sample the signals use and the thresholds of the verdict."""

    sample_size: int = 512  # training images (fewer when the pool is smaller)
    seed: int = 0
    batch_size: int = 128
    min_std_ratio: float = 0.005  # untrained backbones: 0.05-0.2 on small images; 1 epoch of tiny DCLW 0.019; collapsed ~0
    min_effective_rank: float = 1.5
    max_teacher_entropy_ratio: float = 0.9  # DINO only (a collapsed demo-like run ended at 5.8 / ln 512 = 0.93)
    min_kl_teacher_student: float = 0.0  # DINO only; 0 = not checked
    action: str = "fail"  # fail: the pretraining rule fails | warn: it completes, health.json says collapsed

    def __post_init__(self) -> None:
        if self.action not in ("fail", "warn"):
            raise ValueError(f"collapse.action must be fail or warn, got {self.action!r}")
        if self.sample_size < 2:
            raise ValueError(f"collapse.sample_size must be >= 2, got {self.sample_size}")

    @classmethod
    def from_dict(cls, d: dict | None) -> "CollapseConfig":
        d = dict(d or {})
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"unknown collapse key(s): {', '.join(unknown)} (known: {', '.join(known)})")
        return cls(**{k: (float(v) if known[k].type == "float" else v) for k, v in d.items()})


def sample_images(dataset, cfg: CollapseConfig) -> torch.Tensor:
    """A fixed uint8 batch [n, C, S, S] drawn with the collapse seed (not the global RNG)."""
    g = torch.Generator().manual_seed(cfg.seed)
    idx = torch.randperm(len(dataset), generator=g)[:cfg.sample_size].tolist()
    return torch.stack([dataset[i][0] for i in idx])


@torch.no_grad()
def embedding_signals(backbone: nn.Module, images: torch.Tensor, normalize_mode: str,
                      device: torch.device, batch_size: int = 128) -> dict[str, float]:
    was_training = backbone.training
    backbone.eval()
    try:
        feats = []
        for chunk in images.split(batch_size):
            out = backbone(normalize(chunk.to(device), normalize_mode))
            feats.append(pooled(out).float())
    finally:
        backbone.train(was_training)
    return signals_of(torch.cat(feats))


def signals_of(features: torch.Tensor) -> dict[str, float]:
    """The embedding signals of a feature matrix [n, d] (see the module docstring)."""
    z = F.normalize(features.double(), dim=1)
    d = z.shape[1]
    std = z.std(dim=0).mean().item()
    s = torch.linalg.svdvals(z - z.mean(dim=0))
    total = s.sum()
    if total <= 1e-9 * max(1, len(z)):
        rank = 0.0
    else:
        p = s / total
        p = p[p > 0]
        rank = math.exp(-(p * p.log()).sum().item())
    if not math.isfinite(std):
        std, rank = float("nan"), float("nan")
    return {"embedding_std": std, "embedding_std_ratio": std * math.sqrt(d), "effective_rank": rank}


def verdict(signals: dict[str, float], cfg: CollapseConfig) -> list[dict]:
    """The checks the final signals fail (empty: healthy). A non-finite signal fails its check."""
    failed = []
    for name, value in signals.items():
        if name not in _CHECKS:
            continue
        key, bound, meaning, advice = _CHECKS[name]
        threshold = getattr(cfg, key)
        if bound == "min" and threshold <= 0:  # a minimum of 0 disables the check
            continue
        bad = not math.isfinite(value) or (value < threshold if bound == "min" else value > threshold)
        if bad:
            failed.append({"signal": name, "value": value, "threshold_key": key, "threshold": threshold,
                           "bound": bound, "meaning": meaning, "advice": advice})
    return failed


def failure_message(label: str, failures: list[dict], where: str) -> str:
    lines = [f"{label} pretraining ended collapsed ({where}):"]
    for f in failures:
        op = "<" if f["bound"] == "min" else ">"
        lines.append(f"  {f['signal']} = {f['value']:.4g} {op} collapse.{f['threshold_key']} = {f['threshold']:g}: "
                     f"{f['meaning']}. What to change: {f['advice']}.")
    lines.append("  To keep these weights anyway set collapse.action: warn (health.json then says 'collapsed').")
    return "\n".join(lines)


class CollapseError(RuntimeError):
    """A finished run whose final signals say it collapsed (collapse.action: fail)."""
