"""Mid-training probe: does an SSL run beat the untrained backbone yet?

Embeds a workflow run's splits with the teacher backbone of ``results/ssl/<dataset>/<method>/checkpoint.pt``
(or the finished ``backbone.pt``) and with ``random_init``'s backbone, and fits the configured SVM / LR at a
few budgets (the pipeline's protocol: same splits, subsets, preprocessing and estimators), so a tuning
sweep can stop a hopeless recipe early instead of waiting for the whole DAG. Prints one line per
classifier x budget: SSL, random_init and the gap (mean over seeds).

    python benchmarks/probe_checkpoint.py --workdir <a workflow run folder> --configfile cfg.yaml m.yaml \\
        --dataset digits --method dino_x --budgets 10 25
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from shipped import load_config  # benchmarks/shipped.py: --configfile files merged as Snakemake does
from medssl.backbone import load_backbone
from medssl.data.splits import read_split
from medssl.embed import embed_split
from medssl.evaluate.classify import run_budget


def teacher_backbone(ssl_dir: Path, backbone_spec: dict) -> torch.nn.Module:
    if (ssl_dir / "backbone.pt").exists():
        return load_backbone(backbone_spec, ssl_dir / "backbone.pt")
    ckpt = torch.load(ssl_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    state = {k.removeprefix("backbone."): v for k, v in ckpt["teacher"].items() if k.startswith("backbone.")}
    backbone = load_backbone(backbone_spec, None)
    backbone.load_state_dict(state, strict=True)
    print(f"checkpoint of epoch {ckpt['epoch']}")
    return backbone


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--configfile", nargs="+", type=Path, required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--method", required=True)
    p.add_argument("--budgets", nargs="+", default=["10", "25"])
    p.add_argument("--classifiers", nargs="+", default=["svm", "logreg"])
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    cfg = load_config(args.configfile, root=Path.cwd())
    ds = cfg["datasets"][args.dataset]
    method = cfg["methods"][args.method]
    root = ds["source"]["root"]
    splits = {s: read_split(args.workdir / "splits" / args.dataset / f"{s}.csv") for s in ("labeled_train", "test")}
    normalize = method.get("augmentation", {}).get("normalize", "imagenet")
    ri_backbone = load_backbone(cfg["backbone"], args.workdir / "results/ssl" / args.dataset / "random_init" / "backbone.pt")
    backbones = {"ssl": teacher_backbone(args.workdir / "results/ssl" / args.dataset / args.method, cfg["backbone"]),
                 "random_init": ri_backbone}
    classifiers = {k: cfg["evaluation"]["classifiers"][k] for k in args.classifiers}
    results: dict = {}
    for name, backbone in backbones.items():
        emb = {s: embed_split(backbone, df, root, ds["classes"], ds["image_size"], ds.get("channels", 3), normalize,
                              device=torch.device("cpu")) for s, df in splits.items()}
        for budget in args.budgets:
            for clf, seed, record, _ in run_budget(emb["labeled_train"], emb["test"], budget,
                                                   cfg["evaluation"]["seeds"], classifiers,
                                                   cfg["evaluation"].get("preprocessing", ["power_transform", "pca"]),
                                                   estimator_packages=cfg["evaluation"].get("estimator_packages", [])):
                results.setdefault((clf, budget, name), []).append(record["balanced_accuracy"])
    for clf in args.classifiers:
        for budget in args.budgets:
            s, r = np.mean(results[(clf, budget, "ssl")]), np.mean(results[(clf, budget, "random_init")])
            print(f"{args.dataset} {args.method} {clf} budget {budget}: ssl {s:.3f} random_init {r:.3f} gap {s - r:+.3f}")


if __name__ == "__main__":
    main()
