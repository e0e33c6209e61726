"""The classifiers medssl bundles for frozen embeddings, scikit-learn estimators a config names by path
(``evaluation.classifiers.<name>.estimator: medssl.evaluate.estimators.LinearProbe``)."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import balanced_accuracy_score
from sklearn.neighbors import KNeighborsClassifier

from medssl.evaluate.budgets import class_weights, holdout_split


class ClassScaledKNN(ClassifierMixin, BaseEstimator):
    """k-NN with k = neighbors_per_class x number of classes, as the paper (5 x classes),
    capped at the training-set size so that tiny budgets work (the original crashed)."""

    def __init__(self, neighbors_per_class: int = 5, weights: str = "distance", metric: str = "minkowski"):
        self.neighbors_per_class = neighbors_per_class
        self.weights = weights
        self.metric = metric

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        k = min(self.neighbors_per_class * len(self.classes_), len(y))
        self.knn_ = KNeighborsClassifier(n_neighbors=k, weights=self.weights, metric=self.metric).fit(X, y)
        self.n_neighbors_ = k
        return self

    def predict_proba(self, X):
        return self.knn_.predict_proba(X)

    def predict(self, X):
        return self.knn_.predict(X)


class CosineKNN(ClassifierMixin, BaseEstimator):
    """DINO's weighted k-NN (eval_knn.py): cosine similarity on L2-normalised features,
    top-k neighbours vote with weight exp(sim / temperature)."""

    def __init__(self, k: int = 20, temperature: float = 0.07):
        self.k = k
        self.temperature = temperature

    def fit(self, X, y):
        self.classes_, self.y_ = np.unique(y, return_inverse=True)
        self.X_ = _l2_normalise(np.asarray(X, dtype=np.float32))
        return self

    def predict_proba(self, X):
        sim = _l2_normalise(np.asarray(X, dtype=np.float32)) @ self.X_.T
        k = min(self.k, sim.shape[1])
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        weights = np.exp(np.take_along_axis(sim, top, axis=1) / self.temperature)
        scores = np.zeros((len(sim), len(self.classes_)))
        np.add.at(scores, (np.arange(len(sim))[:, None], self.y_[top]), weights)
        return scores / scores.sum(axis=1, keepdims=True)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class SoftmaxHead:
    """predict_proba (softmax) and predict (argmax) from a head's logits in `decision_function`."""

    def predict_proba(self, X):
        z = self.decision_function(X)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def predict(self, X):
        return self.classes_[self.decision_function(X).argmax(axis=1)]


class LinearProbe(SoftmaxHead, ClassifierMixin, BaseEstimator):
    """The paper's "SSL + LL": a linear layer trained on frozen SSL features.

    Used with `preprocess: false` on the frozen embeddings of a method, this equals a frozen
    backbone + linear head trained without augmentation (the original trained the final LayerNorm
    too, on a fresh ImageNet backbone instead of the SSL weights -- docs/differences.md#sparsam-code).
    Class-weighted cross-entropy, AdamW, mini-batches; early stopping on a stratified held-out
    `val_fraction` of the training set (`holdout_split`), keeping the best epoch's weights
    (highest validation balanced accuracy, ties to the lower validation loss). Without a
    validation part (budgets of 1-2 per class) it trains `max_epochs` and keeps the last weights.
    Features are standardised with the fit part's mean/std. Seeded by `random_state`."""

    def __init__(self, lr: float = 1e-2, weight_decay: float = 1e-4, max_epochs: int = 300,
                 patience: int = 30, batch_size: int = 256, val_fraction: float = 0.3,
                 standardize: bool = True, random_state: int = 0, n_threads: int = 1):
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.patience = patience
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.standardize = standardize
        self.random_state = random_state
        self.n_threads = n_threads

    def fit(self, X, y):
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(self.n_threads)
        try:
            return self._fit(torch, np.asarray(X, dtype=np.float32), np.asarray(y))
        finally:
            torch.set_num_threads(threads)

    def _fit(self, torch, X, y):
        from torch.nn import functional as F

        self.classes_, yi = np.unique(y, return_inverse=True)
        n_classes = len(self.classes_)
        fit_idx, val_idx = holdout_split(yi, self.val_fraction, self.random_state)
        self.mean_ = X[fit_idx].mean(axis=0) if self.standardize else np.zeros(X.shape[1], np.float32)
        self.scale_ = (X[fit_idx].std(axis=0) + 1e-6) if self.standardize else np.ones(X.shape[1], np.float32)
        Xs = torch.from_numpy((X - self.mean_) / self.scale_)
        Y = torch.from_numpy(yi.astype(np.int64))
        gen = torch.Generator().manual_seed(int(self.random_state))
        layer = torch.nn.Linear(X.shape[1], n_classes)
        with torch.no_grad():
            bound = 1.0 / np.sqrt(X.shape[1])
            layer.weight.uniform_(-bound, bound, generator=gen)
            layer.bias.zero_()
        weight = torch.as_tensor(class_weights(yi[fit_idx], n_classes), dtype=torch.float32)
        opt = torch.optim.AdamW(layer.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        Xf, Yf = Xs[fit_idx], Y[fit_idx]
        Xv, Yv = Xs[val_idx], Y[val_idx]
        batch = max(1, min(self.batch_size, len(fit_idx)))
        best, best_key, since = None, None, 0
        self.history_ = []
        for epoch in range(self.max_epochs):
            order = torch.randperm(len(Xf), generator=gen)
            for start in range(0, len(order), batch):
                b = order[start:start + batch]
                loss = F.cross_entropy(layer(Xf[b]), Yf[b], weight=weight)
                opt.zero_grad()
                loss.backward()
                opt.step()
            if len(val_idx) == 0:
                continue
            with torch.no_grad():
                logits = layer(Xv)
                val_loss = float(F.cross_entropy(logits, Yv, weight=weight))
                bacc = float(balanced_accuracy_score(Yv.numpy(), logits.argmax(1).numpy()))
            self.history_.append({"epoch": epoch, "val_balanced_accuracy": bacc, "val_loss": val_loss})
            key = (bacc, -val_loss)
            if best_key is None or key > best_key:
                best_key, since = key, 0
                best = {k: v.clone() for k, v in layer.state_dict().items()}
                self.best_epoch_ = epoch
            else:
                since += 1
                if since >= self.patience:
                    break
        if best is not None:
            layer.load_state_dict(best)
        else:
            self.best_epoch_ = self.max_epochs - 1
        self.n_fit_, self.n_val_ = len(fit_idx), len(val_idx)
        self.coef_ = layer.weight.detach().numpy().copy()
        self.intercept_ = layer.bias.detach().numpy().copy()
        return self

    def decision_function(self, X):
        Xs = (np.asarray(X, dtype=np.float32) - self.mean_) / self.scale_
        return Xs @ self.coef_.T + self.intercept_


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
