"""The cost of many label draws (`evaluation.draws`): CPU seconds per classifier of n draws at each small
budget, and what they add to a whole fit job.

Embeddings: a folder with the embedding stage's `labeled_train.npz` and `test.npz` (e.g. the demo's
`results/embeddings/synthetic_marrow/dino`), or `--isic`: the paper-sized synthetic pair of
`benchmarks/sweep.py` (17,731 x 384, ISIC 2019 class counts, test 7,600). Classifiers and preprocessing
come from `--config`. Every draw is fit as the pipeline fits it (`medssl.evaluate.classify`: one front per labeled
subset, shared by the classifiers that use it) on one BLAS thread, and timed in CPU seconds, which unlike
wall time do not grow when other jobs share the machine. `--job` also runs a whole fit job
(`medssl.evaluate.fit_sweep.run_sweep`, every budget and seed of the config) with and without the draws.

    .venv/bin/python benchmarks/draws.py --embeddings results/embeddings/synthetic_marrow/dino --n 100
    .venv/bin/python benchmarks/draws.py --isic --config config/paper.yaml --n 10 --budgets 1,10
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))


def draw_costs(train, test, budgets: list[str], n: int, classifiers: dict, preprocessing: list[str]) -> dict:
    """{budget: {"front": s, <classifier>: s}}: CPU seconds of n draws (seeds 0..n-1), the shared
    preprocessing apart; each classifier's time is its fit, test predictions, scores and metrics."""
    from medssl.evaluate.budgets import budget_subset
    from medssl.evaluate.classify import build_classifier, class_scores, predict, score
    from medssl.evaluate.preprocessing import classifier_steps, preprocessed

    out = {}
    for budget in budgets:
        cost = defaultdict(float)
        for seed in range(n):
            subset, fronts = train.subset(budget_subset(train.labels, train.classes, budget, seed)), {}
            for name, spec in classifiers.items():
                start = time.process_time()
                X, X_test, _ = preprocessed(classifier_steps(spec, preprocessing), subset, test, seed, fronts)
                middle = time.process_time()
                estimator = build_classifier(spec, seed).fit(X, subset.labels)
                y_pred = predict(estimator, X_test, spec.get("predict", "predict"))
                score(test.labels, y_pred, len(train.classes), class_scores(estimator, X_test, len(train.classes))[0])
                cost["front"] += middle - start
                cost[name] += time.process_time() - middle
        out[budget] = {k: round(v, 2) for k, v in cost.items()}
        if n > 1:
            print(f"budget {budget}: {n} draws, CPU s {out[budget]}", flush=True)
    return out


def job_cpu(train_path: Path, test_path: Path, evaluation: dict) -> float:
    """CPU seconds of the fits of one fit job (every budget x seed, and the config's draws)."""
    from medssl.evaluate import draws
    from medssl.evaluate.fit_sweep import run_sweep

    start = time.process_time()
    for _ in run_sweep(train_path, test_path, [str(b) for b in evaluation["budgets"]], evaluation["seeds"],
                       evaluation["classifiers"], evaluation.get("preprocessing", ["power_transform", "pca"]),
                       draws=draws.settings(evaluation)):
        pass
    return time.process_time() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--embeddings", type=Path, help="folder with labeled_train.npz and test.npz")
    where.add_argument("--isic", action="store_true", help="the paper-sized synthetic pair of benchmarks/sweep.py")
    parser.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    parser.add_argument("--classifiers", help="comma separated (default: every one of the config)")
    parser.add_argument("--n", type=int, default=100, help="draws per budget (default 100)")
    parser.add_argument("--budgets", default="1,5,10")
    parser.add_argument("--job", action="store_true",
                        help="also time a whole fit job of the config, without and with its evaluation.draws")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "draws.json")
    args = parser.parse_args(argv)

    from medssl.evaluate.budgets import Embeddings
    from medssl.runtime import limit_threads

    limit_threads(1)
    evaluation = yaml.safe_load(args.config.read_text())["evaluation"]
    classifiers = evaluation["classifiers"]
    if args.classifiers:
        classifiers = {name: classifiers[name] for name in args.classifiers.split(",")}
    with tempfile.TemporaryDirectory() as tmp:
        if args.isic:
            from sweep import make_embeddings

            train_path, test_path = make_embeddings(Path(tmp))
        else:
            train_path, test_path = args.embeddings / "labeled_train.npz", args.embeddings / "test.npz"
        train, test = Embeddings.load(train_path), Embeddings.load(test_path)
        preprocessing = evaluation.get("preprocessing", ["power_transform", "pca"])
        draw_costs(train, test, args.budgets.split(",")[:1], 1, classifiers, preprocessing)  # imports, untimed
        result = {"embeddings": "isic" if args.isic else str(args.embeddings), "n_labeled": len(train.labels),
                  "dim": int(train.features.shape[1]), "n_test": len(test.labels), "n": args.n,
                  "config": str(args.config),
                  "costs": draw_costs(train, test, args.budgets.split(","), args.n, classifiers, preprocessing)}
        if args.job:
            plain = {k: v for k, v in evaluation.items() if k != "draws"}
            result["job_cpu_without_draws"] = round(job_cpu(train_path, test_path, plain), 1)
            result["job_cpu_with_draws"] = round(job_cpu(train_path, test_path, evaluation), 1)
            result["draws"] = evaluation.get("draws")
            print(f"fit job: {result['job_cpu_without_draws']} CPU s without draws, "
                  f"{result['job_cpu_with_draws']} with {evaluation.get('draws')}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
