"""Trained heads on frozen embeddings: the "linear evaluation" of Chattopadhyay et al. (SmallDataSSL).

SmallDataSSL's `linear.py` (docs/papers.md#smalldatassl-evaluation) trains, on a frozen ResNet-50, an MLP head
Linear(2048, 512) -> BatchNorm1d -> LeakyReLU -> Linear(512, classes) with unweighted cross-entropy,
Adam at lr 1.0, batch 64, 200 epochs, StepLR(25, 0.5) stepped only after epoch 25, non-augmented
images, each epoch starting from the best-so-far weights, the best chosen on a 10 % validation split
(accuracy, >=). Without augmentation a frozen backbone gives the same features every epoch, so the
same head can be trained on the stored embeddings: `MLPProbe`, a scikit-learn-style estimator that
`fit_classifiers` runs over every budget and seed like any other classifier.

What differs from the original, on purpose: the best-so-far accuracy is tracked (linear.py never
updates `best_acc`, so it keeps every epoch and tests the last one), the validation part is stratified
and seeded (`holdout_split`), and the backbone's BatchNorm layers stay in eval mode (linear.py calls
`model.train()`, so the frozen backbone normalised training batches with their own statistics and
drifted its running statistics; stored embeddings are eval-mode features).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import accuracy_score, balanced_accuracy_score

from medssl.evaluate.budgets import holdout_split
from medssl.evaluate.estimators import SoftmaxHead

SELECTION = {"accuracy": accuracy_score, "balanced_accuracy": balanced_accuracy_score}


class MLPProbe(SoftmaxHead, ClassifierMixin, BaseEstimator):
    """The paper's linear evaluation head on frozen features (defaults = SmallDataSSL `linear.py`).

    hidden_dim: width of the hidden layer (Linear -> BatchNorm1d -> LeakyReLU(negative_slope) ->
        Linear); None = a single linear layer trained the same way.
    optimizer: "adam" or "sgd" (torch defaults otherwise: no momentum, no weight decay), at `lr`.
    lr_step_size, lr_gamma, lr_step_after: StepLR(step_size, gamma), stepped at the end of every
        epoch whose 0-based index is > lr_step_after (the original's `if epoch > 25`).
    val_fraction: stratified, seeded part of the training data held out to choose the epoch
        (classes with fewer than 3 images stay in training; with no validation part the last epoch
        is kept). selection: "accuracy" (the paper) or "balanced_accuracy"; ties go to the later epoch.
    reload_best: start every epoch from the best weights so far (the optimizer state carries on).
    standardize: standardise features with the training part's mean/std (the paper: raw features).
    random_state seeds the split, the initial weights and the batch order.
    """

    def __init__(self, hidden_dim: int | None = 512, negative_slope: float = 0.01, lr: float = 1.0,
                 optimizer: str = "adam", batch_size: int = 64, max_epochs: int = 200, lr_step_size: int = 25,
                 lr_gamma: float = 0.5, lr_step_after: int = 25, val_fraction: float = 0.1,
                 selection: str = "accuracy", reload_best: bool = True, standardize: bool = False,
                 random_state: int = 0, n_threads: int = 1):
        self.hidden_dim = hidden_dim
        self.negative_slope = negative_slope
        self.lr = lr
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.lr_step_size = lr_step_size
        self.lr_gamma = lr_gamma
        self.lr_step_after = lr_step_after
        self.val_fraction = val_fraction
        self.selection = selection
        self.reload_best = reload_best
        self.standardize = standardize
        self.random_state = random_state
        self.n_threads = n_threads

    def _check_params(self) -> None:
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"MLPProbe: optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if self.selection not in SELECTION:
            raise ValueError(f"MLPProbe: selection must be one of {sorted(SELECTION)}, got {self.selection!r}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"MLPProbe: val_fraction must be in [0, 1), got {self.val_fraction}")

    def _build(self, torch, n_features: int, n_classes: int):
        nn = torch.nn
        if self.hidden_dim is None:
            return nn.Linear(n_features, n_classes)
        return nn.Sequential(nn.Linear(n_features, self.hidden_dim), nn.BatchNorm1d(self.hidden_dim),
                             nn.LeakyReLU(self.negative_slope), nn.Linear(self.hidden_dim, n_classes))

    def fit(self, X, y):
        import torch

        self._check_params()
        threads = torch.get_num_threads()
        torch.set_num_threads(self.n_threads)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(self.random_state))  # the initial weights
                return self._fit(torch, np.asarray(X, dtype=np.float32), np.asarray(y))
        finally:
            torch.set_num_threads(threads)

    def _fit(self, torch, X, y):
        from torch.nn import functional as F

        self.classes_, yi = np.unique(y, return_inverse=True)
        fit_idx, val_idx = holdout_split(yi, self.val_fraction, self.random_state) if self.val_fraction else (
            np.arange(len(yi)), np.zeros(0, dtype=np.int64))
        self.mean_ = X[fit_idx].mean(axis=0) if self.standardize else np.zeros(X.shape[1], np.float32)
        self.scale_ = (X[fit_idx].std(axis=0) + 1e-6) if self.standardize else np.ones(X.shape[1], np.float32)
        Xs = torch.from_numpy((X - self.mean_) / self.scale_)
        Y = torch.from_numpy(yi.astype(np.int64))
        Xf, Yf, Xv, Yv = Xs[fit_idx], Y[fit_idx], Xs[val_idx], Y[val_idx]
        model = self._build(torch, X.shape[1], len(self.classes_))
        opt = (torch.optim.Adam if self.optimizer == "adam" else torch.optim.SGD)(model.parameters(), lr=self.lr)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=self.lr_step_size, gamma=self.lr_gamma)
        gen = torch.Generator().manual_seed(int(self.random_state))
        batch = max(1, min(int(self.batch_size), len(fit_idx)))
        metric = SELECTION[self.selection]
        best_state, best_score, self.best_epoch_ = copy.deepcopy(model.state_dict()), -np.inf, None
        self.history_: list[dict[str, Any]] = []
        for epoch in range(int(self.max_epochs)):
            if self.reload_best:
                model.load_state_dict(best_state)
            model.train()
            order, losses = torch.randperm(len(Xf), generator=gen), []
            for start in range(0, len(order), batch):
                b = order[start:start + batch]
                if len(b) == 1 and len(order) > 1 and self.hidden_dim is not None:
                    continue  # BatchNorm cannot train on a trailing single sample
                loss = F.cross_entropy(model(Xf[b]), Yf[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
            row = {"epoch": epoch, "lr": opt.param_groups[0]["lr"], "train_loss": float(np.mean(losses))}
            if len(val_idx):
                model.eval()
                with torch.no_grad():
                    row["val_score"] = float(metric(Yv.numpy(), model(Xv).argmax(1).numpy()))
            if not len(val_idx) or row["val_score"] >= best_score:
                best_score, self.best_epoch_ = row.get("val_score", -np.inf), epoch
                best_state = copy.deepcopy(model.state_dict())
            self.history_.append(row)
            if epoch > self.lr_step_after:
                sched.step()
        model.load_state_dict(best_state)
        self.model_ = model.eval()
        self.n_fit_, self.n_val_ = len(fit_idx), len(val_idx)
        return self

    def decision_function(self, X):
        import torch

        Xs = (np.asarray(X, dtype=np.float32) - self.mean_) / self.scale_
        with torch.no_grad():
            return self.model_(torch.from_numpy(Xs)).numpy().astype(np.float64)
