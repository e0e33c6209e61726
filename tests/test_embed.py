"""Frozen-backbone embeddings (rule embed)."""
import numpy as np
import pandas as pd
import torch
from PIL import Image

from medssl.embed import embed_split, extract_features


def test_embedding_precision_fp16_on_cpu_equals_fp32():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5))
    images = torch.randint(0, 255, (6, 3, 4, 4), dtype=torch.uint8)
    data = torch.utils.data.TensorDataset(images, torch.zeros(6))
    a = extract_features(net, data, "imagenet", device=torch.device("cpu"), precision="fp16")
    b = extract_features(net, data, "imagenet", device=torch.device("cpu"), precision="fp32")
    np.testing.assert_array_equal(a, b)


def test_embed_split_keeps_the_split_order_and_does_not_depend_on_the_batch_size(tmp_path):
    """One row per image in the split's order, labels as class indices; batching (and so the number of
    devices a run is spread over) does not change a feature."""
    rng = np.random.default_rng(0)
    rows = []
    for i, label in enumerate(["b", "a", "b", "a", "a"]):
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
        rows.append((f"{i}.png", label))
    split = pd.DataFrame(rows, columns=["image", "label"])
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    one, all_at_once = (embed_split(net, split, tmp_path, ["a", "b"], 8, 3, "imagenet", batch_size=b,
                                    device=torch.device("cpu"), precision="fp32") for b in (1, 5))
    assert one.features.shape == (5, 4) and one.features.dtype == np.float32
    assert list(one.images) == list(split["image"]) and list(one.labels) == [1, 0, 1, 0, 0]
    np.testing.assert_allclose(one.features, all_at_once.features, rtol=1e-5, atol=1e-6)


def test_the_embedding_normalises_as_the_backbone_was_pretrained():
    """A method's images are normalised as its pretraining views were: its `augmentation`, else its kind's
    defaults; an untrained kind without views is given the SSL method's (rules/common.smk)."""
    from medssl.ssl.kinds import get_method, pretraining_normalize, pretraining_views

    def normalize(kind, augmentation):
        return pretraining_normalize(pretraining_views(kind, augmentation))

    assert normalize("dino", {"normalize": "minus_one_one"}) == "minus_one_one"
    assert normalize("simclr", {}) == get_method("simclr").augmentation_defaults["normalize"]
    assert normalize("random_init", {}) == "imagenet"
    assert normalize("random_init", {"normalize": "minus_one_one"}) == "minus_one_one"
