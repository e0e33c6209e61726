"""The shipped configs carry the papers' recipes: config/paper.yaml is sparsam's augmentation and
DINO settings, config/presets/dino_reference.yaml the reference DINO's."""
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from medssl.augment import DINO_PRESET, PAPER_PRESET, MultiCropConfig
from medssl.ssl.dino import DinoConfig

CONFIG = Path(__file__).resolve().parents[1] / "config"


def load(name):
    return yaml.safe_load((CONFIG / name).read_text())


@pytest.mark.parametrize("config, preset", [("paper.yaml", PAPER_PRESET),
                                            ("presets/dino_reference.yaml", DINO_PRESET)])
def test_augmentation_equals_the_preset(config, preset):
    ours = MultiCropConfig.from_dict(load(config)["methods"]["dino"]["augmentation"])
    expected = MultiCropConfig.from_dict(preset)
    for field in fields(MultiCropConfig):
        a, b = getattr(ours, field.name), getattr(expected, field.name)
        if isinstance(b, str):
            assert a == b, field.name
        else:
            assert a == pytest.approx(b, rel=1e-6), field.name


def test_paper_dino_hyperparameters():
    cfg = DinoConfig.from_dict(load("paper.yaml")["methods"]["dino"]["params"])
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.warmup_epochs) == (500, 256, 5e-4, 2)
    assert (cfg.out_dim, cfg.hidden_dim, cfg.bottleneck_dim, cfg.head_layers) == (65536, 2048, 256, 4)
    assert (cfg.student_temp, cfg.warmup_teacher_temp, cfg.teacher_temp, cfg.warmup_teacher_temp_epochs) == (
        0.1, 0.02, 0.04, 10)
    assert (cfg.clip_mode, cfg.clip_value, cfg.center_momentum) == ("agc", 0.32, 0.9)
    assert (cfg.weight_decay, cfg.weight_decay_end) == (0.04, 0.4)
    assert cfg.momentum_teacher < cfg.momentum_teacher_end == 1.0  # rises towards 1 (sparsam's was inverted)
    backbone = load("paper.yaml")["backbone"]
    assert backbone["name"] == "xcit_small_12_p8_224.fb_dist_in1k" and backbone["kwargs"]["img_size"] == 256


def test_paper_backbone_resolves_to_the_distilled_weights():
    """sparsam's `timm.models.xcit_small_12_p8_224_dist` is a deprecated alias of the distilled weights;
    the bare `xcit_small_12_p8_224` resolves to the non-distilled ones (timm's default tag)."""
    import timm
    from timm.models import get_pretrained_cfg
    from timm.models import get_deprecated_models

    name = load("paper.yaml")["backbone"]["name"]
    assert get_pretrained_cfg(name).hf_hub_id == "timm/xcit_small_12_p8_224.fb_dist_in1k"
    assert get_deprecated_models("xcit")["xcit_small_12_p8_224_dist"] == name
    assert get_pretrained_cfg("xcit_small_12_p8_224").hf_hub_id.endswith(".fb_in1k")
    assert name in timm.list_models("xcit_small_12_p8_224*", pretrained=True)


def test_reference_dino_hyperparameters():
    cfg = DinoConfig.from_dict(load("presets/dino_reference.yaml")["methods"]["dino"]["params"])
    assert (cfg.head_layers, cfg.clip_mode, cfg.clip_value) == (3, "norm", 3.0)
    assert (cfg.momentum_teacher, cfg.momentum_teacher_end, cfg.warmup_epochs, cfg.drop_path_rate) == (
        0.996, 1.0, 10, 0.1)


def test_paper_dl_baseline_optimisation():
    """docs/papers.md#dl-baseline: AdamW 1e-4 / 0.05, batch 256, fp16 + GradScaler, warm-up 250 iterations, plateau
    decay 0.5 (patience and cooldown 500 iterations), AGC 0.16, the DINO multi-crop views."""
    dl = load("paper.yaml")["baselines"]["supervised"]
    assert (dl["lr"], dl["weight_decay"], dl["batch_size"], dl["precision"]) == (1e-4, 0.05, 256, "fp16")
    assert dl["warmup_iterations"] == 250
    assert dl["lr_plateau"] == {"decay_rate": 0.5, "patience_iterations": 500, "cooldown_iterations": 500}
    assert (dl["clip_mode"], dl["clip_value"], dl["augment"], dl["val_fraction"]) == ("agc", 0.16, "multicrop", 0.3)
    assert dl["multicrop"] == load("paper.yaml")["methods"]["dino"]["augmentation"]


def test_paper_config_has_both_svm_arms():
    """The paper's argmax of Platt probabilities, and SVC.predict beside it (Fig. 1 shows both)."""
    classifiers = load("paper.yaml")["evaluation"]["classifiers"]
    paper, predict = classifiers["svm"], classifiers["svm_predict"]
    assert (paper["predict"], predict["predict"]) == ("proba_argmax", "predict")
    assert paper["params"] == predict["params"] and paper["estimator"] == predict["estimator"] == "sklearn.svm.SVC"
    assert load("paper.yaml")["figures"]["confusion"]["classifier"] == "svm"


def test_one_image_per_class_proba_argmax_collapses_where_predict_does_not():
    import numpy as np

    from medssl.evaluate.budgets import Embeddings
    from medssl.evaluate.classify import run_budget

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(8, 32)) * 5

    def make(n):
        y = np.repeat(np.arange(8), n)
        x = (centres[y] + rng.normal(size=(len(y), 32))).astype(np.float32)
        return Embeddings(x, np.array([f"i{i}" for i in range(len(y))]), y, [f"c{i}" for i in range(8)])

    classifiers = {k: v for k, v in load("paper.yaml")["evaluation"]["classifiers"].items()
                   if k in ("svm", "svm_predict")}
    result = {name: rec["balanced_accuracy"] for name, _, rec, _ in
              run_budget(make(20), make(10), "1", [0], classifiers, ["power_transform", "pca"])}
    assert result["svm"] < 0.2 and result["svm_predict"] > 0.9


def test_paper_ssl_plus_ll_is_the_papers():
    """docs/papers.md#linear-layer-arm: the SuperGym with only the final norm and a linear head training
    (lr 1e-4, wd 0.05, multi-crop views); the embedding-based LinearProbe stays as the fast alternative."""
    paper = load("paper.yaml")
    ll = paper["baselines"]["linear_layer"]
    dl = paper["baselines"]["supervised"]
    assert ll["enabled"] and ll["methods"] == ["dino"] and ll["augment"] == "multicrop"
    for key in ["lr", "weight_decay", "batch_size", "val_fraction", "precision", "warmup_iterations", "lr_plateau",
                "clip_mode", "clip_value"]:
        assert ll[key] == dl[key], key
    assert paper["evaluation"]["classifiers"]["linear"]["estimator"] == "medssl.evaluate.estimators.LinearProbe"
    assert paper["evaluation"]["embedding_precision"] == "fp16"


@pytest.mark.parametrize("method", ["dino", "simclr", "dclw", "simsiam", "vicreg"])
def test_small_data_presets_overlay_the_demo_config_and_pass_the_plan_time_checks(method):
    """`--configfile config/config.yaml config/presets/small_data_<method>.yaml`: Snakemake merges the
    overlay into the demo config; the merged config passes the schema and medssl's plan-time checks."""
    from snakemake.utils import validate

    from medssl.checks import config_errors
    from medssl.ssl import parse_spec

    from snakemake.utils import update_config

    merged = load("config.yaml")
    update_config(merged, load(f"presets/small_data_{method}.yaml"))
    validate(merged, schema=str(CONFIG.parent / "workflow" / "schemas" / "config.schema.yaml"))
    assert config_errors(merged) == []
    entry = merged["methods"][method]
    assert entry["kind"] == method and {"dino", "random_init"} <= set(merged["methods"])
    _, params, views, _ = parse_spec({**entry, "image_size": 32})
    assert params.epochs <= 20 and views.global_size == 32 and views.rotation_degrees == 0


def test_views_a_vit_cannot_cut_into_patches_are_refused_at_planning():
    """28-px MedMNIST images with 4-px patches: the default local view (half the image, 14 px) is no
    multiple of the patch, and timm would refuse the first batch; config/medmnist.yaml sets 12 px."""
    from medssl.checks import view_size_errors

    config = load("medmnist.yaml")
    assert view_size_errors(config) == []
    del config["methods"]["dino"]["augmentation"]["local_size"]
    errors = view_size_errors(config)
    assert len(errors) == len(config["datasets"])
    assert all(e.startswith("methods.dino.augmentation.local_size: 14-px views of datasets.") and
               "backbone.kwargs.patch_size 4; set local_size to a multiple of 4" in e for e in errors)
    config["backbone"]["kwargs"]["dynamic_img_pad"] = True  # timm pads such views itself
    assert view_size_errors(config) == []


def test_medmnist_dino_is_the_demo_recipe_but_for_its_image_size():
    """A --configfile replaces the demo config, so config/medmnist.yaml carries the demo's DINO recipe
    itself; it may differ only where 28-px images need it (its local views) and in its checkpoint
    interval, so a change to the recipe cannot reach one config and miss the other."""
    demo, medmnist = load("config.yaml")["methods"]["dino"], load("medmnist.yaml")["methods"]["dino"]
    allowed = {"params": {"checkpoint_every_epochs"}, "augmentation": {"local_size"}}
    for section, keys in allowed.items():
        a, b = demo.get(section, {}), medmnist.get(section, {})
        differ = {k for k in set(a) | set(b) if a.get(k) != b.get(k)}
        assert differ <= keys, (section, {k: (a.get(k), b.get(k)) for k in differ - keys})
