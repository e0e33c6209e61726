"""benchmarks/recipe_sweep.py, the harness behind benchmarks/robustness.md: a recipe is trained, embedded
and scored against the same backbone untrained, whose scores are cached per evaluation protocol."""
import json
import sys
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import recipe_sweep  # noqa: E402


def folder(root: Path) -> None:
    rng = np.random.default_rng(0)
    for c, cls in enumerate(["dark", "light"]):
        (root / cls).mkdir(parents=True)
        for i in range(12):
            img = rng.integers(0, 80, (16, 16, 3)) + 150 * c
            Image.fromarray(img.astype(np.uint8)).save(root / cls / f"{i}.png")


def test_a_recipe_is_scored_against_random_init_and_the_reference_is_cached_per_protocol(tmp_path):
    folder(tmp_path / "data")
    config = {
        "datasets": {"toy": {"source": {"kind": "folder", "root": str(tmp_path / "data")}, "image_size": 16,
                             "classes": ["dark", "light"], "split": {"test_fraction": 0.3, "seed": 0}}},
        "backbone": {"name": "vit_tiny_patch16_224", "pretrained": False,
                     "kwargs": {"img_size": 16, "patch_size": 4, "depth": 1, "embed_dim": 16, "num_heads": 2,
                                "dynamic_img_size": True}},
        "methods": {"simclr": {"kind": "simclr", "params": {"epochs": 1, "batch_size": 8, "proj_hidden_dim": 16,
                                                            "proj_dim": 8}}},
        "evaluation": {"seeds": [0], "classifiers": {
            "logreg": {"estimator": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 200}}}},
    }
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    common = ["--configfile", str(cfg), "--dataset", "toy", "--method", "simclr", "--out", str(tmp_path / "out"),
              "--classifiers", "logreg"]
    recipe_sweep.main([*common, "--tag", "a", "--budgets", "5", "all"])
    result = json.loads((tmp_path / "out/toy/a/result.json").read_text())
    assert set(result["scores"]["logreg"]) == set(result["random_init"]["logreg"]) == {"5", "all"}
    gaps = [result["scores"]["logreg"][b] - result["random_init"]["logreg"][b] for b in ("5", "all")]
    assert result["worst_gap"] == min(gaps) and (tmp_path / "out/toy/a/backbone.pt").exists()
    assert yaml.safe_load((tmp_path / "out/toy/a/method.yaml").read_text())["params"]["epochs"] == 1
    # another recipe (--set), same protocol: the reference is reused; other budgets: a second reference
    recipe_sweep.main([*common, "--tag", "b", "--budgets", "5", "all", "--set", "params.lr=0.002"])
    assert len(list((tmp_path / "out/toy").glob("random_init_*.json"))) == 1
    assert yaml.safe_load((tmp_path / "out/toy/b/method.yaml").read_text())["params"]["lr"] == 0.002
    recipe_sweep.main([*common, "--tag", "c", "--budgets", "all"])
    assert len(list((tmp_path / "out/toy").glob("random_init_*.json"))) == 2


def test_robustness_table_rows_give_every_budget_and_the_verdict():
    import robustness_table

    result = {"dataset": "toy", "tag": "a", "worst_gap": -0.01, "train_seconds": 12.0,
              "scores": {"svm": {"10": 0.5, "all": 0.7}}, "random_init": {"svm": {"10": 0.51, "all": 0.6}}}
    (row,) = robustness_table.rows([result])
    assert row == "| `toy` | a | svm | 0.500 / 0.510 (-0.010) | 0.700 / 0.600 (+0.100) | -0.010 **fail** | 12 s |"
