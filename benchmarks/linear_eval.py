"""SmallDataSSL's linear evaluation on stored embeddings: medssl.evaluate.probes.MLPProbe against a plain loop of
the paper's `linear.py` epoch (docs/papers.md#smalldatassl-evaluation) on the same features, threads and settings.

Data: pneumonia-sized synthetic ResNet-50 embeddings (4,708 training x 2,048, 2 classes 1:3, Gaussian
clusters; 624 test). Both fit the MLP head (2048 -> 512 -> BN -> LeakyReLU -> 2) with Adam lr 1.0, batch 64,
StepLR(25, 0.5) after epoch 25, each epoch restarted from the best weights, the best epoch on a 10 %
validation part. The plain loop is the paper's: DataLoader over a TensorDataset, `copy.deepcopy` of the
state dict, validation in batches of 1 (the paper's val loader). Reports seconds per epoch (fastest of
--repeats alternating runs) and test accuracy of both, and writes them as JSON to --out.

    .venv/bin/python benchmarks/linear_eval.py --epochs 5 --threads 1
"""
from __future__ import annotations

import argparse
import copy
import json
import time

import numpy as np
import torch

from medssl.evaluate.budgets import holdout_split
from medssl.evaluate.probes import MLPProbe


def data(n_train=4708, n_test=624, dim=2048, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (2, dim)).astype(np.float32) * 0.2
    y = (rng.random(n_train + n_test) < 0.74).astype(np.int64)
    X = np.abs(centres[y] + rng.normal(0, 1, (len(y), dim)).astype(np.float32))  # ReLU-like features
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def paper_loop(X, y, Xt, yt, epochs, seed=0):
    """linear.py's epoch on features (with its best_acc update fixed, as MLPProbe)."""
    torch.manual_seed(seed)
    fit, val = holdout_split(y, 0.1, seed)
    head = torch.nn.Sequential(torch.nn.Linear(X.shape[1], 512), torch.nn.BatchNorm1d(512), torch.nn.LeakyReLU(),
                               torch.nn.Linear(512, 2))
    opt = torch.optim.Adam(head.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=25, gamma=0.5)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(X[fit]),
                                                                        torch.from_numpy(y[fit])),
                                         batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(seed))
    best_acc, best = 0.0, copy.deepcopy(head.state_dict())
    for epoch in range(epochs):
        head.load_state_dict(best)
        head.train()
        for xb, yb in loader:
            if len(xb) == 1:
                continue
            loss = torch.nn.functional.cross_entropy(head(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        head.eval()
        with torch.no_grad():
            preds = [int(head(torch.from_numpy(X[i:i + 1])).argmax()) for i in val]
        acc = float(np.mean(np.asarray(preds) == y[val]))
        if acc >= best_acc:
            best_acc, best = acc, copy.deepcopy(head.state_dict())
        if epoch > 25:
            sched.step()
    head.load_state_dict(best)
    head.eval()
    with torch.no_grad():
        return float((head(torch.from_numpy(Xt)).argmax(1).numpy() == yt).mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs; the fastest of each is kept")
    parser.add_argument("--out", default="results/benchmarks/linear_eval.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    X, y, Xt, yt = data()
    result = {"n_train": len(X), "dim": X.shape[1], "epochs": args.epochs, "threads": args.threads}
    runs = {"ours": lambda: float((MLPProbe(max_epochs=args.epochs, n_threads=args.threads)
                                   .fit(X, y).predict(Xt) == yt).mean()),
            "paper_loop": lambda: paper_loop(X, y, Xt, yt, args.epochs)}
    for _ in range(args.repeats):  # alternating, so that load on a shared machine hits both alike
        for name, run in runs.items():
            t0 = time.perf_counter()
            acc = run()
            per_epoch = (time.perf_counter() - t0) / args.epochs
            print(f"{name}: {per_epoch:.2f} s/epoch, test accuracy {acc:.3f}")
            if per_epoch < result.get(name, {}).get("seconds_per_epoch", np.inf):
                result[name] = {"seconds_per_epoch": per_epoch, "test_accuracy": acc}
    from pathlib import Path

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
