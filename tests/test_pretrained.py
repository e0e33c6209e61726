"""Method kind `pretrained` (medssl.download.pretrained): a frozen off-the-shelf timm model with its own
input size, interpolation and mean / std, its weights from a local file written here (no download)."""
import json
import time

import numpy as np
import pandas as pd
import pytest
import timm
import torch
import yaml
from PIL import Image

from medssl.backbone import load_backbone
from medssl.download.pretrained import fetch_pretrained_backbone, model_spec
from medssl.embed import embed_split
from snakemake_runner import REPO, run_snakemake

TINY_VIT = {"img_size": 24, "patch_size": 4, "depth": 1, "embed_dim": 24, "num_heads": 2}
# Deliberately not ImageNet's nor the SSL normalisation, and not the dataset's image size (16).
OVERLAY = {"input_size": [3, 24, 24], "mean": [0.3, 0.4, 0.5], "std": [0.2, 0.25, 0.3], "interpolation": "bicubic"}


def write_weights(path, suffix=".pth"):
    torch.manual_seed(7)
    model = timm.create_model("vit_tiny_patch16_224", num_classes=0, **TINY_VIT)
    file = path / f"weights{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file
        save_file(model.state_dict(), str(file))
    else:
        torch.save(model.state_dict(), file)
    return file, model.state_dict()


def method(weights):
    return {"kind": "pretrained", "model": "vit_tiny_patch16_224", "kwargs": TINY_VIT, "weights": str(weights),
            "pretrained_cfg": OVERLAY}


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_weights_load_and_the_embedding_uses_the_pretrained_config(tmp_path, monkeypatch, suffix):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    weights, state = write_weights(tmp_path, suffix)
    spec = model_spec(method(weights), {"name": "resnet18", "kwargs": {"zero_init_last": True}})
    assert spec["kwargs"] == TINY_VIT  # not the config backbone's
    cfg = fetch_pretrained_backbone(spec, tmp_path / "backbone.pt", tmp_path / "data_config.json")
    assert json.loads((tmp_path / "data_config.json").read_text()) == cfg
    assert (cfg["input_size"], cfg["mean"], cfg["std"], cfg["interpolation"]) == (
        OVERLAY["input_size"], pytest.approx(OVERLAY["mean"]), pytest.approx(OVERLAY["std"]), "bicubic")
    backbone = load_backbone({"name": spec["name"], "kwargs": spec["kwargs"]}, tmp_path / "backbone.pt")
    for key, value in backbone.state_dict().items():  # the file's weights, not a random init
        assert torch.equal(value, state[key]), key

    rng = np.random.default_rng(0)
    for i in range(3):  # 16 px images, as the dataset's image_size
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    split = pd.DataFrame({"image": [f"{i}.png" for i in range(3)], "label": ["a", "b", "a"]})
    from medssl.download.pretrained import preprocessing
    pre = preprocessing(cfg)
    emb = embed_split(backbone, split, tmp_path, ["a", "b"], pre["image_size"], pre["channels"], pre["normalize"],
                      resample=pre["resample"], device=torch.device("cpu"), precision="fp32")
    # By hand: resized to 24 px with bicubic, (x / 255 - mean) / std.
    images = np.stack([np.asarray(Image.open(tmp_path / f"{i}.png").convert("RGB").resize((24, 24), Image.BICUBIC))
                       for i in range(3)]).astype(np.float32) / 255
    x = (torch.from_numpy(images).permute(0, 3, 1, 2) - torch.tensor(OVERLAY["mean"]).view(1, 3, 1, 1)) \
        / torch.tensor(OVERLAY["std"]).view(1, 3, 1, 1)
    with torch.inference_mode():
        expected = backbone.eval()(x).numpy()
        imagenet = embed_split(backbone, split, tmp_path, ["a", "b"], 24, 3, "imagenet", device=torch.device("cpu"),
                               precision="fp32").features
    np.testing.assert_allclose(emb.features, expected, rtol=1e-4, atol=1e-5)
    assert not np.allclose(imagenet, expected, atol=1e-3)  # the SSL normalisation would differ
    assert emb.labels.tolist() == [0, 1, 0]


def test_a_missing_weights_file_is_named(tmp_path):
    spec = model_spec(method(tmp_path / "absent.pth"), {"name": "vit_tiny_patch16_224"})
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        fetch_pretrained_backbone(spec, tmp_path / "b.pt", tmp_path / "c.json")


def test_model_defaults_to_the_config_backbone_with_its_kwargs():
    backbone = {"name": "resnet50.tv_in1k", "kwargs": {"zero_init_last": True}}
    assert model_spec({"kind": "pretrained"}, backbone) == {
        "name": "resnet50.tv_in1k", "kwargs": {"zero_init_last": True}, "weights": None, "overlay": {}}
    assert model_spec({"kind": "pretrained", "model": "resnet18.a1_in1k"}, backbone)["kwargs"] == {}


def tiny_config(tmp_path, weights):
    config = yaml.safe_load((REPO / "tests/config/tiny.yaml").read_text())
    config["methods"] = {"random_init": {"kind": "random_init"}, "frozen_pretrained": method(weights)}
    config["evaluation"].pop("draws", None)
    config["evaluation"].update(budgets=[5, "all"], seeds=[0],
                                classifiers={k: config["evaluation"]["classifiers"][k] for k in ["logreg", "knn"]})
    config["baselines"] = {}
    config["figures"] = {"confusion": {"method": "frozen_pretrained", "classifier": "logreg", "budget": "all"}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_pretrained_arm_runs_end_to_end_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    weights, _ = write_weights(tmp_path)
    workdir = tmp_path / "run"
    start = time.monotonic()
    targets = ["results/tables/summary.csv", "results/tables/ssl_health.csv"]
    run_snakemake(workdir, tiny_config(tmp_path, weights), "--cores", "2", *targets, timeout=300)
    print(f"\npretrained arm end to end: {time.monotonic() - start:.1f} s")
    log = (workdir / "results/logs/fetch_pretrained_backbone/frozen_pretrained.log").read_text()
    assert f"the local file {weights}" in log
    cfg = json.loads((workdir / "results/pretrained/frozen_pretrained/data_config.json").read_text())
    assert cfg["input_size"] == [3, 24, 24] and cfg["mean"] == pytest.approx(OVERLAY["mean"])
    assert "pretrained model's own preprocessing" in (workdir / "results/logs/embed/tiny/frozen_pretrained.log").read_text()
    emb = np.load(workdir / "results/embeddings/tiny/frozen_pretrained/test.npz")
    assert emb["features"].shape[1] == TINY_VIT["embed_dim"]
    summary = pd.read_csv(workdir / "results/tables/summary.csv")
    assert {"frozen_pretrained", "random_init"} <= set(summary["method"])
    assert summary["balanced_accuracy_mean"].notna().all()
