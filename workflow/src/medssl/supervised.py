"""The supervised end-to-end DL baseline (the paper's "DL baseline"; "DL benchmark" = budget 'all').

Per (dataset, class-set variant, label budget, seed): the labeled subset is exactly the one every
other arm gets (`medssl.classify.budget_subset` on the split's labels, in the split's row order,
which is the embeddings' order), a stratified 70/30 part of it is held out for early stopping
(`holdout_split`; budgets of 1-2 per class have no validation part and train a fixed number of
epochs), and the configured timm architecture is trained end to end with class-weighted
cross-entropy and AdamW. The weights of the best validation epoch are returned (the original
returned an untrained copy, REFERENCE 5 bug 12). The result record and the predictions CSV have the
format of `fit_classifiers`, so aggregation treats the baseline as one more arm
(method "supervised", classifier "finetune").

Deliberate differences from the original (REFERENCE 1.9): light augmentation (random flips and
90-degree rotations on the uint8 batch) instead of the DINO multi-crop views (which crashed there),
a constant learning rate (the plateau scheduler with 500-iteration patience never acted at these
lengths), early stopping in epochs on validation balanced accuracy (ties to the lower validation
loss) computed from softmax argmax, and the backbone initialisation taken from `backbone.pretrained`.
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
from medssl.classify import (Embeddings, budget_subset, class_coverage_fields, class_weights, holdout_split,
                             restrict_classes, score)
from medssl.data import ImageDataset, load_all

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "epochs": 100,
    "lr": 1.0e-4,
    "weight_decay": 0.05,
    "batch_size": 64,
    "patience": 10,
    "val_fraction": 0.3,
    "augment": "dihedral",
    "normalize": "imagenet",
    "device": "auto",
    "num_workers": 0,
}


def settings_with_defaults(settings: Mapping[str, Any]) -> dict[str, Any]:
    return {**DEFAULTS, **{k: v for k, v in settings.items() if v is not None}}


def resolve_device(requested: str = "auto") -> torch.device:
    return runtime.resolve_device(requested, "baselines.supervised.device", "training the supervised baseline", log)


def split_labels(split: pd.DataFrame, classes: Sequence[str]) -> Embeddings:
    """The labels of a split file as a feature-less `Embeddings`, in the row order that the
    embedding stage uses, so `restrict_classes` and `budget_subset` give the same subsets here."""
    index = {c: i for i, c in enumerate(classes)}
    labels = np.asarray([index[label] for label in split["label"]], dtype=np.int64)
    return Embeddings(np.zeros((len(split), 0), np.float32), np.asarray(split["image"], dtype=str), labels,
                      list(classes))


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


def build_model(backbone_spec: Mapping[str, Any], n_classes: int) -> torch.nn.Module:
    import timm

    return timm.create_model(backbone_spec["name"], pretrained=bool(backbone_spec.get("pretrained", False)),
                             num_classes=n_classes, **dict(backbone_spec.get("kwargs") or {}))


@torch.inference_mode()
def predict_logits(model: torch.nn.Module, batches, device: torch.device, normalize_mode: str) -> torch.Tensor:
    model.eval()
    out = []
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    for x in batches:
        with autocast:
            out.append(model(normalize(x.to(device, non_blocking=True), normalize_mode)).float().cpu())
    return torch.cat(out) if out else torch.zeros((0, 0))


def train_model(images: torch.Tensor, labels: np.ndarray, n_classes: int, backbone_spec: Mapping[str, Any],
                settings: Mapping[str, Any], seed: int, device: torch.device,
                ) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train on uint8 images [N, C, S, S] with labels 0..n_classes-1; return the best model and a summary."""
    s = settings_with_defaults(settings)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    fit_idx, val_idx = holdout_split(labels, s["val_fraction"], seed)
    model = build_model(backbone_spec, n_classes).to(device)
    weight = torch.as_tensor(class_weights(labels[fit_idx], n_classes), dtype=torch.float32, device=device)
    opt = torch.optim.AdamW(model.parameters(), lr=s["lr"], weight_decay=s["weight_decay"])
    y = torch.as_tensor(labels, dtype=torch.int64)
    x_fit, y_fit = images[fit_idx], y[fit_idx]
    x_val, y_val = images[val_idx], y[val_idx]
    batch = max(1, min(int(s["batch_size"]), len(fit_idx)))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    best_state, best_key, best_epoch, since = None, None, None, 0
    history = []
    for epoch in range(int(s["epochs"])):
        model.train()
        order = torch.randperm(len(fit_idx), generator=gen)
        losses = []
        for start in range(0, len(order), batch):
            b = order[start:start + batch]
            if len(b) == 1 and start > 0:  # a trailing single image (BatchNorm backbones cannot take it)
                continue
            xb = augment_batch(x_fit[b], s["augment"], gen).to(device, non_blocking=True)
            with autocast:
                loss = F.cross_entropy(model(normalize(xb, s["normalize"])).float(), y_fit[b].to(device),
                                       weight=weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        row = {"epoch": epoch, "train_loss": float(np.mean(losses))}
        if len(val_idx):
            logits = predict_logits(model, x_val.split(256), device, s["normalize"])
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
        log.info("epoch %d %s", epoch, {k: round(v, 4) for k, v in row.items() if k != "epoch"})
        if len(val_idx) and since >= int(s["patience"]):
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    else:  # no validation part: the last epoch's weights
        best_epoch = len(history) - 1
    return model, {"n_fit": int(len(fit_idx)), "n_val": int(len(val_idx)), "best_epoch": int(best_epoch),
                   "epochs_run": len(history), "early_stopping": bool(len(val_idx)), "history": history}


def run_supervised(labeled: pd.DataFrame, test: pd.DataFrame, image_root: str | Path, classes: Sequence[str],
                   image_size: int, channels: int, budget: str, seed: int, min_class_size: int | None,
                   backbone_spec: Mapping[str, Any], settings: Mapping[str, Any],
                   device: torch.device | None = None) -> tuple[dict[str, Any], Embeddings, np.ndarray]:
    """One fit of the DL baseline. Returns (record, the scored test set's labels, test predictions)."""
    s = settings_with_defaults(settings)
    device = device or resolve_device(s["device"])
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

    images, labels = load_all(dataset(subset), num_workers=s["num_workers"])
    model, info = train_model(images, labels.numpy(), len(classes), backbone_spec, s, seed, device)
    loader = torch.utils.data.DataLoader(dataset(test_set), batch_size=256, shuffle=False,
                                         num_workers=s["num_workers"])
    logits = predict_logits(model, (x for x, _ in loader), device, s["normalize"])
    y_pred = logits.argmax(1).numpy()
    record = {
        "classifier": "finetune",
        "budget": str(budget),
        "seed": int(seed),
        "min_class_size": int(min_class_size or 1),
        "n_train": int(len(index)),
        "n_test": int(len(test_set.labels)),
        "n_classes": len(classes),
        "pool_class_counts": np.bincount(pool.labels, minlength=len(classes)).tolist(),
        **score(test_set.labels, y_pred, len(classes)),
        **class_coverage_fields(subset.labels, test_set.labels, classes),
        "classes": list(classes),
        "train_images": subset.images.tolist(),
        "fit_seconds": time.perf_counter() - t0,
        "device": str(device),
        **info,
    }
    log.info("supervised budget=%s seed=%d n_train=%d (fit %d, val %d) best_epoch=%d balanced_accuracy=%.4f",
             budget, seed, len(index), info["n_fit"], info["n_val"], info["best_epoch"],
             record["balanced_accuracy"])
    return record, test_set, y_pred
