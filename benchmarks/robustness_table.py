"""The markdown rows of benchmarks/robustness.md from the runs of benchmarks/recipe_sweep.py.

One row per dataset x recipe tag x classifier: SSL / random_init (gap) at every budget, the worst gap at
>= 10 labels per class over both classifiers, the pass / fail verdict and the pretraining time.

    python benchmarks/robustness_table.py                       # every run under benchmarks/out/sweep
    python benchmarks/robustness_table.py --datasets derma lung --tags simclr0 simclr_col
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def rows(results: list[dict], classifiers: tuple[str, ...] = ("svm", "logreg")) -> list[str]:
    out = []
    for r in sorted(results, key=lambda r: (r["dataset"], r["tag"])):
        verdict = "pass" if r["worst_gap"] > 0 else "**fail**"
        for clf in classifiers:
            if clf not in r["scores"]:
                continue
            cells = [f"{r['scores'][clf][b]:.3f} / {r['random_init'][clf][b]:.3f} "
                     f"({r['scores'][clf][b] - r['random_init'][clf][b]:+.3f})" for b in r["scores"][clf]]
            out.append(f"| `{r['dataset']}` | {r['tag']} | {clf} | " + " | ".join(cells)
                       + f" | {r['worst_gap']:+.3f} {verdict} | {r['train_seconds']:.0f} s |")
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("benchmarks/out/sweep"))
    p.add_argument("--datasets", nargs="*")
    p.add_argument("--tags", nargs="*")
    args = p.parse_args(argv)
    results = [json.loads(f.read_text()) for f in sorted(args.out.glob("*/*/result.json"))]
    results = [r for r in results if (not args.datasets or r["dataset"] in args.datasets)
               and (not args.tags or r["tag"] in args.tags)]
    budgets = next(iter(results[0]["scores"].values())).keys() if results else []
    print("| dataset | recipe | classifier | " + " | ".join(str(b) for b in budgets)
          + " | worst gap (>= 10) | train |")
    print("|---" * (len(budgets) + 5) + "|")
    print("\n".join(rows(results)))


if __name__ == "__main__":
    main()
