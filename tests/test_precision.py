"""Mixed precision of the embedding pass and the DL baseline (medssl.runtime.MixedPrecision)."""
import numpy as np
import pytest
import torch

from medssl.embed import extract_features
from medssl.runtime import MixedPrecision


def test_precision_choices():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert MixedPrecision("fp16", cuda, "k").dtype == torch.float16  # the paper's torch.cuda.amp
    assert MixedPrecision("auto", cuda, "k").dtype == torch.bfloat16
    assert MixedPrecision("auto", cpu, "k").dtype is None and MixedPrecision("fp32", cuda, "k").dtype is None
    with pytest.raises(ValueError, match="evaluation.embedding_precision"):
        MixedPrecision("fp8", cpu, "evaluation.embedding_precision")


def test_fp16_on_cpu_falls_back_to_fp32_and_says_so(caplog):
    with caplog.at_level("WARNING"):
        amp = MixedPrecision("fp16", torch.device("cpu"), "evaluation.embedding_precision")
    assert amp.name == "fp32" and not amp.grad_scaler().is_enabled()
    assert "evaluation.embedding_precision: fp16 autocast needs CUDA" in caplog.text


def test_embedding_precision_fp16_on_cpu_equals_fp32():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5))
    images = torch.randint(0, 255, (6, 3, 4, 4), dtype=torch.uint8)
    data = torch.utils.data.TensorDataset(images, torch.zeros(6))
    a = extract_features(net, data, "imagenet", device=torch.device("cpu"), precision="fp16")
    b = extract_features(net, data, "imagenet", device=torch.device("cpu"), precision="fp32")
    np.testing.assert_array_equal(a, b)
