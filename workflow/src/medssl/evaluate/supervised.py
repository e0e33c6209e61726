"""The supervised end-to-end DL baseline (the paper's "DL baseline"; "DL benchmark" = budget 'all').

Per (dataset, class-set variant, label budget, seed): the labeled subset is exactly the one every
other arm gets (`medssl.evaluate.classify.budget_subset` on the split's labels, in the split's row order,
which is the embeddings' order), a stratified 70/30 part of it is held out for early stopping
(`holdout_split`; budgets of 1-2 per class have no validation part and train a fixed number of
epochs), and the configured timm architecture is trained end to end with class-weighted
cross-entropy and AdamW. The weights of the best validation epoch are returned (the original
returned an untrained copy, docs/differences.md#sparsam-code). The result record and the predictions CSV have the
format of `fit_classifiers`, so aggregation treats the baseline as one more arm
(method "supervised", classifier "finetune").

The paper's optimisation (docs/papers.md#dl-baseline) is config keys: AdamW lr 1e-4, wd 0.05, batch 256, fp16
autocast + GradScaler (`precision`), timm's PlateauLRScheduler stepped every iteration on the mean
training loss of the last epoch's worth of iterations (`warmup_iterations` 250 from lr 0,
`lr_plateau`), timm's adaptive gradient clipping 0.16 (`clip_mode`, `clip_value`), and the DINO
multi-crop views with labels repeated per view (`augment: multicrop`, which crashed in the original).
Deliberate differences: early stopping in epochs on validation balanced accuracy (ties to the lower
validation loss) computed from softmax argmax instead of every 100 iterations after 40 ignored
evaluations, and the backbone initialisation taken from `backbone.pretrained`. The keys, their defaults
and their checks are `medssl.settings.SupervisedConfig`.

`train_model` also trains the paper's "SSL + LL" arm (`medssl.evaluate.linear_layer`): a frozen backbone of
which only the final norm and a new linear head train.
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from medssl import runtime
from medssl.augment import normalize
from medssl.data.dataset import ImageDataset, load_all
from medssl.evaluate.budgets import Embeddings, budget_subset, class_weights, holdout_split, restrict_classes
from medssl.evaluate.classify import class_coverage_fields, score
from medssl.settings import BASELINE_CLIP_MODES, FinetuneConfig

log = logging.getLogger(__name__)

def resolve_device(settings: FinetuneConfig) -> torch.device:
    return runtime.resolve_device(settings.device, f"{settings.label}.device", f"training {settings.label}", log)


def split_labels(split: pd.DataFrame, classes: Sequence[str]) -> Embeddings:
    """The labels of a split file as a feature-less `Embeddings`, in the row order that the
    embedding stage uses, so `restrict_classes` and `budget_subset` give the same subsets here."""
    index = {c: i for i, c in enumerate(classes)}
    labels = np.asarray([index[label] for label in split["label"]], dtype=np.int64)
    return Embeddings(np.zeros((len(split), 0), np.float32), np.asarray(split["image"], dtype=str), labels,
                      list(classes))


class LrSchedule:
    """timm's ``PlateauLRScheduler`` as sparsam's SuperGym used it: stepped after every iteration
    ``i`` with ``step(i, mean of the last `window` training losses)``; a linear warm-up from lr 0
    over ``warmup_iterations`` (timm starts at ``warmup_lr_init`` = 0, so iterations 0 and 1 run at
    lr 0 and iteration i at (i - 1) / warmup * lr), then the lr is multiplied by
    ``lr_plateau.decay_rate`` when the smoothed loss has not improved for
    ``patience_iterations`` (``cooldown_iterations`` between decays). None for a constant lr."""

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_iterations: int, plateau: Mapping | None,
                 window: int):
        from collections import deque

        from timm.scheduler import PlateauLRScheduler

        plateau = dict(plateau or {})
        self.losses: deque = deque(maxlen=max(1, int(window)))
        self.scheduler = PlateauLRScheduler(
            optimizer, decay_rate=float(plateau.get("decay_rate", 0.5)),
            patience_t=int(plateau.get("patience_iterations", 2**62)),  # no plateau section: never decays
            cooldown_t=int(plateau.get("cooldown_iterations", 0)), warmup_t=int(warmup_iterations),
            warmup_lr_init=0.0, mode="min")
        self.iteration = 0

    @classmethod
    def from_settings(cls, optimizer, s: FinetuneConfig, window: int) -> "LrSchedule | None":
        if not s.warmup_iterations and not s.lr_plateau:
            return None
        return cls(optimizer, s.warmup_iterations, s.lr_plateau, window)

    def step(self, loss: float) -> None:
        self.losses.append(loss)
        self.scheduler.step(self.iteration, metric=float(np.mean(self.losses)))
        self.iteration += 1


def clip_gradients(parameters, mode: str, value: float) -> None:
    """'agc': timm's adaptive (unit-wise) gradient clipping, as sparsam's GradClipWrapper (eps 1e-3);
    'global_norm': the norm of all gradients together clipped to ``value`` (torch's clip_grad_norm_);
    'none'."""
    if mode == "none":
        return
    if mode not in BASELINE_CLIP_MODES:
        raise ValueError(f"clip_mode must be one of {BASELINE_CLIP_MODES}, got {mode!r}")
    from timm.utils import dispatch_clip_grad

    dispatch_clip_grad(parameters, value, mode={"agc": "agc", "global_norm": "norm"}[mode])


def augment_batch(x: torch.Tensor, mode: str, generator: torch.Generator) -> torch.Tensor:
    """Random dihedral transform per image (horizontal flip, then 0/90/180/270 degrees) on a uint8
    batch [B, C, S, S]; 'hflip' = flips only; 'none' = identity."""
    if mode == "none":
        return x
    flip = torch.rand(len(x), generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    if mode == "dihedral":
        k = torch.randint(0, 4, (len(x),), generator=generator)
        x = x.clone()
        for r in (1, 2, 3):
            sel = k == r
            if sel.any():
                x[sel] = torch.rot90(x[sel], r, dims=(-2, -1))
    elif mode != "hflip":
        raise ValueError(f"baselines.supervised.augment must be dihedral, hflip or none, got {mode!r}")
    return x


def build_model(backbone_spec: Mapping[str, Any], n_classes: int, head: str = "linear") -> torch.nn.Module:
    """The timm backbone with its linear classifier ('linear'), or SmallDataSSL's head ('mlp'):
    Linear(features, 512) -> BatchNorm1d -> LeakyReLU -> Linear(512, classes)."""
    import timm

    if head not in ("linear", "mlp"):
        raise ValueError(f"baselines.supervised.head must be 'linear' or 'mlp', got {head!r}")
    model = timm.create_model(backbone_spec["name"], pretrained=bool(backbone_spec.get("pretrained", False)),
                              num_classes=n_classes if head == "linear" else 0,
                              **dict(backbone_spec.get("kwargs") or {}))
    if head == "linear":
        return model
    nn = torch.nn
    return nn.Sequential(model, nn.Linear(model.num_features, 512), nn.BatchNorm1d(512), nn.LeakyReLU(),
                         nn.Linear(512, n_classes))


@torch.inference_mode()
def predict_logits(model: torch.nn.Module, batches, device: torch.device, normalize_mode: str,
                   precision: runtime.MixedPrecision | None = None) -> torch.Tensor:
    model.eval()
    out = []
    precision = precision or runtime.MixedPrecision("auto", device, "precision")
    for x in batches:
        with precision.autocast():
            out.append(model(normalize(x.to(device, non_blocking=True), normalize_mode)).float().cpu())
    return torch.cat(out) if out else torch.zeros((0, 0))


def _views(xb: torch.Tensor, s: FinetuneConfig, gen: torch.Generator, multicrop) -> list[torch.Tensor]:
    """The normalised training views of a uint8 batch already on its device."""
    if s.augment == "multicrop":
        return multicrop(xb, gen)
    return [normalize(augment_batch(xb, s.augment, gen), s.normalize)]


def train_model(images: torch.Tensor, labels: np.ndarray, n_classes: int, backbone_spec: Mapping[str, Any],
                s: FinetuneConfig, seed: int, device: torch.device,
                model: torch.nn.Module | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train on uint8 images [N, C, S, S] with labels 0..n_classes-1; return the best model and a summary.

    ``model``: train this one instead of a fresh ``backbone_spec`` classifier; parameters with
    ``requires_grad`` False stay frozen, and a model whose backbone is frozen trains in eval mode
    (its BatchNorm statistics stay those of the backbone). ``s``: the arm's settings
    (:class:`medssl.settings.SupervisedConfig` or :class:`medssl.settings.LinearLayerConfig`)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    fit_idx, val_idx = holdout_split(labels, s.val_fraction, seed)
    frozen = model is not None and not all(p.requires_grad for p in model.parameters())
    model = (model if model is not None else build_model(backbone_spec, n_classes, s.head)).to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    weight = torch.as_tensor(class_weights(labels[fit_idx], n_classes) if s.class_weighted else
                             np.ones(n_classes), dtype=torch.float32, device=device)
    opt = torch.optim.AdamW(trainable, lr=s.lr, weight_decay=s.weight_decay)
    sched = (torch.optim.lr_scheduler.StepLR(opt, s.lr_step_size, s.lr_gamma)
             if s.lr_step_size else None)
    precision = runtime.MixedPrecision(s.precision, device, f"{s.label}.precision", log)
    scaler = precision.grad_scaler()
    multicrop = None
    if s.augment == "multicrop":
        from medssl.augment import MultiCropAugment, MultiCropConfig

        multicrop = MultiCropAugment(MultiCropConfig.from_dict({**(s.multicrop or {}), "normalize": s.normalize}))
    y = torch.as_tensor(labels, dtype=torch.int64)
    x_fit, y_fit = images[fit_idx], y[fit_idx]
    x_val, y_val = images[val_idx], y[val_idx]
    batch = max(1, min(s.batch_size, len(fit_idx)))
    schedule = LrSchedule.from_settings(opt, s, window=-(-len(fit_idx) // batch))
    best_state, best_key, best_epoch, since = None, None, None, 0
    history = []
    for epoch in range(s.epochs):
        model.train(not frozen)
        order = torch.randperm(len(fit_idx), generator=gen)
        losses = []
        for start in range(0, len(order), batch):
            b = order[start:start + batch]
            if len(b) == 1 and start > 0:  # a trailing single image (BatchNorm backbones cannot take it)
                continue
            views = _views(x_fit[b].to(device, non_blocking=True), s, gen, multicrop)
            targets = y_fit[b].to(device).repeat(len(views))  # labels repeated per view
            with precision.autocast():
                logits = torch.cat([model(v) for v in views])
                loss = F.cross_entropy(logits.float(), targets, weight=weight)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            clip_gradients(trainable, s.clip_mode, s.clip_value)
            scaler.step(opt)
            scaler.update()
            losses.append(float(loss.detach()))
            if schedule is not None:
                schedule.step(losses[-1])
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)), "lr": float(opt.param_groups[0]["lr"])}
        if len(val_idx):
            logits = predict_logits(model, x_val.split(256), device, s.normalize, precision)
            row["val_loss"] = float(F.cross_entropy(logits, y_val, weight=weight.cpu()))
            row["val_balanced_accuracy"] = score(y_val.numpy(), logits.argmax(1).numpy(), n_classes)[
                "balanced_accuracy"]
            key = (row["val_balanced_accuracy"], -row["val_loss"])
            if best_key is None or key > best_key:
                best_key, best_epoch, since = key, epoch, 0
                best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
            else:
                since += 1
        history.append(row)
        log.info("epoch %d %s", epoch, {k: round(v, 6) for k, v in row.items() if k != "epoch"})
        if len(val_idx) and since >= s.patience:
            break
        if sched is not None and epoch > s.lr_step_after:
            sched.step()
    if best_state is not None:
        model.load_state_dict(best_state)
    else:  # no validation part: the last epoch's weights
        best_epoch = len(history) - 1
    return model, {"n_fit": int(len(fit_idx)), "n_val": int(len(val_idx)), "best_epoch": int(best_epoch),
                   "epochs_run": len(history), "early_stopping": bool(len(val_idx)), "history": history,
                   "precision": precision.name}


def run_supervised(labeled: pd.DataFrame, test: pd.DataFrame, image_root: str | Path, classes: Sequence[str],
                   image_size: int, channels: int, budget: str, seed: int, min_class_size: int | None,
                   backbone_spec: Mapping[str, Any], s: FinetuneConfig,
                   device: torch.device | None = None, model_factory=None,
                   classifier: str = "finetune") -> tuple[dict[str, Any], Embeddings, np.ndarray]:
    """One fit of the DL baseline. Returns (record, the scored test set's labels, test predictions).

    ``model_factory(n_classes)`` gives the model to train instead of a fresh ``backbone_spec``
    classifier (the "SSL + LL" arm), recorded as ``classifier``."""
    device = device or resolve_device(s)
    all_classes = list(classes)
    pool, test_set = restrict_classes(split_labels(labeled, all_classes), split_labels(test, all_classes),
                                      min_class_size)
    classes = pool.classes
    index = budget_subset(pool.labels, classes, budget, seed, all_classes)
    subset = pool.subset(index)
    t0 = time.perf_counter()

    def dataset(e: Embeddings) -> ImageDataset:
        return ImageDataset(e.images.tolist(), Path(image_root), image_size,
                            labels=[classes[i] for i in e.labels], class_names=classes, channels=channels)

    images, labels = load_all(dataset(subset), num_workers=s.num_workers)
    torch.manual_seed(seed)  # the new head of model_factory
    model = model_factory(len(classes)) if model_factory is not None else None
    model, info = train_model(images, labels.numpy(), len(classes), backbone_spec, s, seed, device, model)
    loader = torch.utils.data.DataLoader(dataset(test_set), batch_size=256, shuffle=False,
                                         num_workers=s.num_workers)
    logits = predict_logits(model, (x for x, _ in loader), device, s.normalize,
                            runtime.MixedPrecision(info["precision"], device, f"{s.label}.precision"))
    y_pred = logits.argmax(1).numpy()
    y_score = torch.softmax(logits.float(), dim=1).numpy()
    record = {
        "classifier": classifier,
        "budget": str(budget),
        "seed": int(seed),
        "min_class_size": int(min_class_size or 1),
        "n_train": int(len(index)),
        "n_test": int(len(test_set.labels)),
        "n_classes": len(classes),
        "pool_class_counts": np.bincount(pool.labels, minlength=len(classes)).tolist(),
        **score(test_set.labels, y_pred, len(classes), y_score),
        "roc_auc_scores": "softmax",
        **class_coverage_fields(subset.labels, test_set.labels, classes),
        "classes": list(classes),
        "train_images": subset.images.tolist(),
        "fit_seconds": time.perf_counter() - t0,
        "device": str(device),
        **info,
    }
    log.info("%s budget=%s seed=%d n_train=%d (fit %d, val %d) best_epoch=%d balanced_accuracy=%.4f",
             classifier, budget, seed, len(index), info["n_fit"], info["n_val"], info["best_epoch"],
             record["balanced_accuracy"])
    return record, test_set, y_pred


def write_fit(record: Mapping[str, Any], test_set: Embeddings, y_pred: np.ndarray, metrics_path: str | Path,
              predictions_path: str | Path, **meta: Any) -> None:
    """The fit's test predictions CSV (image, label, prediction) and its JSON record (``meta`` first)."""
    classes = record["classes"]
    with runtime.atomic_path(predictions_path) as tmp:
        pd.DataFrame({"image": test_set.images, "label": [classes[i] for i in test_set.labels],
                      "prediction": [classes[i] for i in y_pred]}).to_csv(tmp, index=False)
    runtime.write_json({**meta, **record}, metrics_path)
