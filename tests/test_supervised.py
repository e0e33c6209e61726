"""The supervised DL baseline on a tiny image set: record format, identical subsets, best weights."""
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from medssl.evaluate.budgets import Embeddings
from medssl.evaluate.classify import run_budget
from medssl.evaluate.supervised import augment_batch, run_supervised, split_labels, train_model
from medssl.settings import SupervisedConfig

CLASSES = ["red", "green", "blue"]
BACKBONE = {"name": "vit_tiny_patch16_224", "pretrained": False,
            "kwargs": {"img_size": 16, "patch_size": 8, "depth": 1, "embed_dim": 32, "num_heads": 2}}
SETTINGS = {"epochs": 4, "lr": 3e-3, "batch_size": 16, "patience": 2, "device": "cpu"}


@pytest.fixture(scope="module")
def image_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    rows = []
    for split, counts in [("train", [20, 12, 4]), ("test", [6, 6, 3])]:
        for k, (cls, n) in enumerate(zip(CLASSES, counts)):
            for i in range(n):
                arr = rng.integers(0, 60, (16, 16, 3), dtype=np.uint8)
                arr[..., k] += 150
                name = f"{split}/{cls}_{i}.png"
                (root / split).mkdir(exist_ok=True)
                Image.fromarray(arr).save(root / name)
                rows.append((split, name, cls))
    frame = pd.DataFrame(rows, columns=["split", "image", "label"])
    labeled = frame[frame.split == "train"][["image", "label"]].reset_index(drop=True)
    test = frame[frame.split == "test"][["image", "label"]].reset_index(drop=True)
    return root, labeled, test


def run(image_set, budget, seed=0, min_class_size=None, **settings):
    root, labeled, test = image_set
    return run_supervised(labeled, test, root, CLASSES, 16, 3, budget, seed, min_class_size, BACKBONE,
                          SupervisedConfig.from_dict({**SETTINGS, **settings}), torch.device("cpu"))


def test_record_has_the_fit_format_and_learns(image_set):
    record, test, y_pred = run(image_set, "all")
    for key in ["classifier", "budget", "seed", "n_train", "n_test", "n_classes", "pool_class_counts",
                "balanced_accuracy", "per_class_recall", "confusion_matrix", "classes", "train_images",
                "fit_seconds", "min_class_size"]:
        assert key in record
    assert record["classifier"] == "finetune" and record["n_train"] == 36 and record["n_test"] == 15
    assert record["n_fit"] + record["n_val"] == 36 and record["early_stopping"]
    assert len(y_pred) == len(test.labels) == 15
    assert record["balanced_accuracy"] > 0.5  # colour is trivially learnable; chance is 1/3


def test_same_subset_as_the_classifier_arms(image_set):
    root, labeled, test = image_set
    pool = split_labels(labeled, CLASSES)
    pool = Embeddings(np.random.default_rng(0).normal(size=(len(pool.labels), 4)).astype(np.float32), pool.images,
                      pool.labels, CLASSES)
    test_e = split_labels(test, CLASSES)
    test_e = Embeddings(np.zeros((len(test_e.labels), 4), np.float32), test_e.images, test_e.labels, CLASSES)
    knn = {"knn": {"estimator": "medssl.evaluate.estimators.ClassScaledKNN"}}
    for budget, mcs in [("5", None), ("5", 10)]:
        (_, _, ssl, _), = run_budget(pool, test_e, budget, [1], knn, [], min_class_size=mcs)
        record, _, _ = run(image_set, budget, seed=1, min_class_size=mcs, epochs=1)
        assert record["train_images"] == ssl["train_images"]
        assert record["classes"] == ssl["classes"] and record["n_test"] == ssl["n_test"]


def test_budget_of_one_trains_without_validation(image_set):
    record, _, _ = run(image_set, "1", epochs=2)
    assert record["n_train"] == 3 and record["n_val"] == 0 and not record["early_stopping"]
    assert record["best_epoch"] == 1 and record["epochs_run"] == 2


def test_returns_the_best_epoch_weights_not_the_last():
    torch.manual_seed(0)
    images = torch.randint(0, 255, (30, 3, 16, 16), dtype=torch.uint8)
    labels = np.repeat(np.arange(3), 10)
    images[labels == 0, 0] = 250
    model, info = train_model(images, labels, 3, BACKBONE, SupervisedConfig.from_dict(
        {**SETTINGS, "epochs": 6, "patience": 10}), 0, torch.device("cpu"))
    history = info["history"]
    best = max(range(len(history)), key=lambda e: (history[e]["val_balanced_accuracy"], -history[e]["val_loss"]))
    assert info["best_epoch"] == best
    from medssl.evaluate.budgets import holdout_split
    from medssl.evaluate.supervised import predict_logits

    _, val = holdout_split(labels, 0.3, 0)
    logits = predict_logits(model, [images[val]], torch.device("cpu"), "imagenet")
    loss = torch.nn.functional.cross_entropy(logits, torch.as_tensor(labels[val]),
                                             weight=torch.as_tensor([1.0, 1.0, 1.0]))
    assert float(loss) == pytest.approx(history[best]["val_loss"], rel=1e-4)


def test_smalldatassl_recipe_mlp_head_unweighted_step_lr(image_set):
    record, _, _ = run(image_set, "all", epochs=4, patience=10, head="mlp", class_weighted=False, lr_step_size=1,
                       lr_gamma=0.5, lr_step_after=1, augment="none")
    assert [row["lr"] for row in record["history"]] == pytest.approx([3e-3, 3e-3, 3e-3, 1.5e-3])
    assert 0.0 <= record["roc_auc"] <= 1.0 and record["roc_auc_scores"] == "softmax"
    from medssl.evaluate.supervised import build_model

    model = build_model(BACKBONE, 3, "mlp")
    assert isinstance(model[2], torch.nn.BatchNorm1d) and model[-1].out_features == 3
    with pytest.raises(ValueError, match="head"):
        build_model(BACKBONE, 3, "deep")


def test_dihedral_augmentation_keeps_pixels():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.uint8).reshape(2, 3, 4, 4)
    y = augment_batch(x, "dihedral", torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.dtype == torch.uint8
    assert torch.equal(y.flatten(1).sort(1).values, x.flatten(1).sort(1).values)
    assert torch.equal(augment_batch(x, "none", torch.Generator()), x)


def test_lr_warmup_and_plateau_follow_timm_as_sparsam():
    """sparsam: PlateauLRScheduler(warmup_t=250, decay 0.5, patience 500, cooldown 500) stepped after
    every iteration i with step(i, smoothed loss); timm starts the warm-up at lr 0."""
    from medssl.evaluate.supervised import LrSchedule

    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([param], lr=1e-4)
    schedule = LrSchedule(opt, 250, {"decay_rate": 0.5, "patience_iterations": 500, "cooldown_iterations": 500}, 10)
    used = []
    for _ in range(1000):
        used.append(opt.param_groups[0]["lr"])  # the lr this iteration's update runs at
        schedule.step(1.0)  # a flat loss: a plateau
    expected = [0.0, 0.0] + [(i - 1) / 250 * 1e-4 for i in range(2, 252)]
    assert used[:252] == pytest.approx(expected, abs=1e-12)
    assert used[252] == pytest.approx(1e-4) and used[700] == pytest.approx(1e-4)
    assert used[-1] == pytest.approx(5e-5)  # halved once the flat loss outlasted the patience


def test_no_schedule_keys_means_a_constant_lr():
    from medssl.evaluate.supervised import LrSchedule

    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-4)
    assert LrSchedule.from_settings(opt, SupervisedConfig(), 1) is None


def test_adaptive_gradient_clipping_is_unit_wise():
    """AGC 0.16 (sparsam's supervised clip): each output row's gradient is scaled to at most
    0.16 * max(|w_row|, 1e-3); rows already below it are untouched."""
    from medssl.evaluate.supervised import clip_gradients

    layer = torch.nn.Linear(4, 3)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 0, 0]]))
        layer.bias.zero_()
    layer.weight.grad = torch.tensor([[10.0, 0, 0, 0], [0, 0.1, 0, 0], [0, 0, 5.0, 0]])
    layer.bias.grad = torch.full((3,), 1.0)
    clip_gradients(layer.parameters(), "agc", 0.16)
    norms = layer.weight.grad.norm(dim=1)
    torch.testing.assert_close(norms, torch.tensor([0.16, 0.1, 0.16 * 1e-3]))
    # the bias (1-D) is clipped by whole-tensor norms: |b| = 0 -> 0.16 * 1e-3
    assert float(layer.bias.grad.norm()) == pytest.approx(0.16e-3, rel=1e-4)
    with pytest.raises(ValueError, match="clip_mode"):
        clip_gradients(layer.parameters(), "value", 1.0)


def test_paper_settings_train_with_multicrop_views_and_log_the_cpu_precision(caplog):
    torch.manual_seed(0)
    images = torch.randint(0, 255, (12, 3, 16, 16), dtype=torch.uint8)
    labels = np.repeat(np.arange(3), 4)
    settings = {**SETTINGS, "epochs": 2, "precision": "fp16", "warmup_iterations": 3, "clip_mode": "agc",
                "augment": "multicrop", "multicrop": {"global_size": 16, "local_size": 8, "n_local": 2,
                                                      "rotation_degrees": 180, "vflip_p": 0.5}}
    bb = {**BACKBONE, "kwargs": {**BACKBONE["kwargs"], "dynamic_img_size": True}}
    with caplog.at_level("WARNING"):
        _, info = train_model(images, labels, 3, bb, SupervisedConfig.from_dict(settings), 0, torch.device("cpu"))
    assert info["precision"] == "fp32" and "fp16 autocast needs CUDA" in caplog.text
    # one iteration per epoch: after step(0) the lr is still 0, after step(1) 1/3 of 3e-3
    assert [row["lr"] for row in info["history"]] == pytest.approx([0.0, 1e-3])



def test_global_norm_clipping_is_the_norm_of_all_gradients():
    """clip_mode global_norm (baselines.*): torch's clip_grad_norm_ over every trainable parameter."""
    from medssl.evaluate.supervised import clip_gradients

    torch.manual_seed(0)
    ours, ref = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    for layer in (ours, ref):
        torch.manual_seed(1)
        for p in layer.parameters():
            p.grad = torch.randn_like(p) * 10
    clip_gradients(ours.parameters(), "global_norm", 0.5)
    torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.5)
    for a, b in zip(ours.parameters(), ref.parameters()):
        assert torch.equal(a.grad, b.grad)
    assert float(torch.cat([p.grad.flatten() for p in ours.parameters()]).norm()) == pytest.approx(0.5, rel=1e-4)
    with pytest.raises(ValueError, match="clip_mode"):
        clip_gradients(ours.parameters(), "norm", 0.5)
