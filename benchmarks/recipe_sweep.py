"""Does an SSL recipe beat the untrained backbone on a real dataset? One recipe, one dataset, fast.

The pipeline's protocol without the DAG's per-job overhead, for tuning sweeps on 2 CPU cores:
the dataset's stratified split (``split.test_fraction`` / ``split.seed`` of its config entry), SSL
pretraining with ``medssl.ssl.run_pretraining`` on the SSL pool, embeddings of labeled_train and test
with the trained and with the ``random_init`` backbone (cached per dataset and backbone), and the
configured classifiers at each budget and seed (``medssl.evaluate.classify.run_budget``). Prints one line per
classifier x budget (SSL, random_init, gap) and writes ``<out>/<dataset>/<tag>/result.json``.

    python benchmarks/recipe_sweep.py --configfile config/config.yaml benchmarks/real_data.yaml \\
        --dataset derma --method dino --set params.min_steps=1280 --tag dino_ms1280

``--set`` takes dotted keys under ``methods.<method>`` (values parsed as YAML). Run from the repository
root: `benchmarks/real_data.yaml`'s datasets (one README-style ``kind: folder`` entry each) are the folders
`benchmarks/real_datasets.py` writes to ``benchmarks/out/data``; `benchmarks/robustness_table.py` tabulates
the runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from shipped import load_config  # benchmarks/shipped.py: --configfile files merged as Snakemake does
from medssl.backbone import build_backbone, load_backbone
from medssl.checks import with_dataset_params
from medssl.data.sources import index_folder
from medssl.data.splits import make_splits, read_split, write_split
from medssl.embed import embed_split
from medssl.evaluate.classify import run_budget
from medssl.ssl import run_pretraining


def apply_sets(method: dict, sets: list[str]) -> dict:
    method = json.loads(json.dumps(method))
    for item in sets:
        key, value = item.split("=", 1)
        node = method
        *path, leaf = key.split(".")
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return method


def splits_for(ds_name: str, ds: dict, out: Path) -> dict[str, Path]:
    folder = out / ds_name / "splits"
    paths = {s: folder / f"{s}.csv" for s in ("labeled_train", "unlabeled_train", "test")}
    if not all(p.exists() for p in paths.values()):
        labeled = index_folder(Path(ds["source"]["root"]), ds["classes"])
        split = ds.get("split", {})
        frames = make_splits(labeled, None, split.get("test_fraction", 0.3), split.get("seed", 0))
        folder.mkdir(parents=True, exist_ok=True)
        for name, frame in frames.items():
            write_split(frame, paths[name])
    return paths


def embed_both(backbone, ds: dict, paths: dict[str, Path], normalize: str) -> dict:
    return {s: embed_split(backbone, read_split(paths[s]), ds["source"]["root"], ds["classes"], ds["image_size"],
                           ds.get("channels", 3), normalize, device=torch.device("cpu"))
            for s in ("labeled_train", "test")}


def evaluate(emb: dict, cfg: dict, classifiers: list[str], budgets: list) -> dict:
    ev = cfg["evaluation"]
    specs = {k: ev["classifiers"][k] for k in classifiers}
    scores: dict = {}
    for budget in budgets:
        for clf, _, record, _ in run_budget(emb["labeled_train"], emb["test"], budget, ev["seeds"], specs,
                                            ev.get("preprocessing", ["power_transform", "pca"]),
                                            estimator_packages=ev.get("estimator_packages", [])):
            scores.setdefault(clf, {}).setdefault(str(budget), []).append(record["balanced_accuracy"])
    return {clf: {b: float(np.mean(v)) for b, v in per.items()} for clf, per in scores.items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configfile", nargs="+", type=Path, required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--method", required=True, help="an entry of the config's methods")
    p.add_argument("--set", nargs="*", default=[], dest="sets")
    p.add_argument("--tag", default=None)
    p.add_argument("--out", type=Path, default=Path("benchmarks/out/sweep"))  # ignored by git
    p.add_argument("--budgets", nargs="+", default=["10", "25", "100", "all"])
    p.add_argument("--classifiers", nargs="+", default=["svm", "logreg"])
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg = load_config(args.configfile, root=Path.cwd())
    ds = cfg["datasets"][args.dataset]
    method = apply_sets(with_dataset_params(cfg["methods"][args.method], ds, args.method), args.sets)
    tag = args.tag or args.method
    budgets = [b if b == "all" else int(b) for b in args.budgets]
    paths = splits_for(args.dataset, ds, args.out)
    normalize = method.get("augmentation", {}).get("normalize", "imagenet")

    # the reference depends on everything but the SSL recipe: cached per backbone, views' normalisation,
    # evaluation protocol, budgets and classifiers
    ref_key = hashlib.sha256(json.dumps([cfg["backbone"], normalize, cfg["evaluation"], args.budgets,
                                         args.classifiers], sort_keys=True).encode()).hexdigest()[:10]
    ref_file = args.out / args.dataset / f"random_init_{ref_key}.json"
    if not ref_file.exists():
        torch.manual_seed(0)
        spec = cfg["backbone"]
        ref = build_backbone(spec["name"], pretrained=spec.get("pretrained", False), **spec.get("kwargs", {}))
        ref_file.write_text(json.dumps(evaluate(embed_both(ref, ds, paths, normalize), cfg, args.classifiers,
                                                budgets)))
    reference = json.loads(ref_file.read_text())

    work = args.out / args.dataset / tag
    work.mkdir(parents=True, exist_ok=True)
    (work / "method.yaml").write_text(yaml.safe_dump(method))
    t0 = time.perf_counter()
    output = run_pretraining({
        "kind": method["kind"], "params": dict(method.get("params") or {}),
        "augmentation": dict(method.get("augmentation") or {}),
        "collapse": {**(method.get("collapse") or {}), "action": "warn"},
        "splits": {s: str(paths[s]) for s in ("labeled_train", "unlabeled_train")},
        "image_root": ds["source"]["root"], "image_size": ds["image_size"], "channels": ds.get("channels", 3),
        "backbone": cfg["backbone"], "work_dir": str(work), "output": str(work / "backbone.pt")})
    train_seconds = time.perf_counter() - t0
    scores = evaluate(embed_both(load_backbone(cfg["backbone"], output), ds, paths, normalize), cfg,
                      args.classifiers, budgets)
    health = json.loads((work / "health.json").read_text()) if (work / "health.json").exists() else {}
    lines = []
    for clf in args.classifiers:
        cells = [f"{b}: {scores[clf][str(b)]:.3f}/{reference[clf][str(b)]:.3f} "
                 f"({scores[clf][str(b)] - reference[clf][str(b)]:+.3f})" for b in budgets]
        lines.append(f"{args.dataset} {tag} {clf}  " + "  ".join(cells))
    worst = min(scores[c][str(b)] - reference[c][str(b)] for c in args.classifiers for b in budgets
                if b == "all" or b >= 10)
    lines.append(f"{args.dataset} {tag} train {train_seconds:.0f}s  worst gap (>=10) {worst:+.3f}  "
                 f"verdict {health.get('verdict', health.get('status', '?'))}")
    print("\n".join(lines))
    (work / "result.json").write_text(json.dumps({
        "dataset": args.dataset, "tag": tag, "sets": args.sets, "scores": scores, "random_init": reference,
        "worst_gap": worst, "train_seconds": train_seconds, "health": health}, indent=1))


if __name__ == "__main__":
    main()
