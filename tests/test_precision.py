"""Mixed precision of the embedding pass and every trained arm (SSL trainer, DL baseline, linear layer):
one rule, medssl.runtime.MixedPrecision."""
import numpy as np
import pytest
import torch

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


# One rule (device x precision -> autocast dtype, loss scaling) for every trained arm. CUDA rows are
# checked on the rule alone (a torch.device("cuda") object, no CUDA needed); each arm is run on the CPU
# and must both ask the rule and train the way it answers.
RULE = {
    ("cpu", "auto"): (None, False), ("cpu", "bf16"): (torch.bfloat16, False),
    ("cpu", "fp16"): (None, False), ("cpu", "fp32"): (None, False),
    ("cuda", "auto"): (torch.bfloat16, False), ("cuda", "bf16"): (torch.bfloat16, False),
    ("cuda", "fp16"): (torch.float16, True), ("cuda", "fp32"): (None, False),
}


@pytest.mark.parametrize("device, precision", RULE)
def test_rule_per_device_and_precision(device, precision):
    amp = MixedPrecision(precision, torch.device(device), "k")
    assert (amp.dtype, amp.scaled) == RULE[device, precision]
    if device == "cpu":  # a real GradScaler (a CUDA one disables itself where there is no CUDA)
        assert amp.grad_scaler().is_enabled() is amp.scaled


class Spy(MixedPrecision):
    """MixedPrecision that remembers its instances and the GradScalers they made."""
    made: list = []

    def __init__(self, requested, device, key, log=None):
        super().__init__(requested, device, key, log)
        self.asked, self.scalers = (requested, device.type, key), []
        Spy.made.append(self)

    def grad_scaler(self):
        self.scalers.append(super().grad_scaler())
        return self.scalers[-1]


def train_ssl(precision, tmp_path):
    from test_ssl import TINY_VIT, random_dataset, stand_in_augment, tiny_cfg, train_dino

    train_dino(tiny_cfg(epochs=1, warmup_epochs=0, precision=precision), TINY_VIT, random_dataset(16),
               stand_in_augment, tmp_path)


def train_supervised(precision, tmp_path, section="baselines.supervised"):
    from test_ssl import TINY_VIT

    from medssl.evaluate.linear_layer import frozen_backbone_classifier
    from medssl.evaluate.supervised import train_model
    from medssl.settings import LinearLayerConfig, SupervisedConfig

    images = torch.randint(0, 255, (12, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    linear_layer = section == "baselines.linear_layer"
    model = frozen_backbone_classifier(TINY_VIT, None, 3) if linear_layer else None
    settings = (LinearLayerConfig if linear_layer else SupervisedConfig)(
        epochs=1, batch_size=4, augment="none", normalize="imagenet", precision=precision)
    train_model(images, np.repeat(np.arange(3), 4), 3, TINY_VIT, settings, 0, torch.device("cpu"), model)


ARMS = {"methods.<name>.params.precision": train_ssl, "baselines.supervised.precision": train_supervised,
        "baselines.linear_layer.precision": lambda p, tmp: train_supervised(p, tmp, "baselines.linear_layer")}


@pytest.mark.parametrize("precision", ["auto", "bf16", "fp16", "fp32"])
@pytest.mark.parametrize("key", ARMS)
def test_every_trained_arm_follows_the_rule_on_the_cpu(key, precision, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr("medssl.runtime.MixedPrecision", Spy)
    monkeypatch.setattr(Spy, "made", [])
    seen = set()

    def record(module, args, output):  # the autocast of every forward that trains
        if torch.is_grad_enabled():
            on = torch.is_autocast_enabled("cpu")
            seen.add(torch.get_autocast_dtype("cpu") if on else None)

    handle = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        with caplog.at_level("WARNING"):
            ARMS[key](precision, tmp_path)
    finally:
        handle.remove()
    dtype, scaled = RULE["cpu", precision]
    assert Spy.made and Spy.made[0].asked == (precision, "cpu", key)
    assert seen == {dtype}
    assert [s.is_enabled() for s in Spy.made[0].scalers] == [scaled]
    assert (f"{key}: fp16 autocast needs CUDA; running in fp32 on cpu" in caplog.text) is (precision == "fp16")


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path):
    from medssl.runtime import cpu_has_native_bf16

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n")
    assert not cpu_has_native_bf16(info)
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert cpu_has_native_bf16(info)
    assert not cpu_has_native_bf16(tmp_path / "missing")


def test_bf16_on_a_cpu_without_native_bf16_says_it_is_slow(caplog, monkeypatch):
    import medssl.runtime as runtime

    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    with caplog.at_level("WARNING"):
        amp = MixedPrecision("bf16", torch.device("cpu"), "methods.dino.params.precision")
    assert amp.dtype == torch.bfloat16  # what was asked for, with the warning
    assert "methods.dino.params.precision: bf16 on a CPU without native bf16" in caplog.text
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    caplog.clear()
    with caplog.at_level("WARNING"):
        MixedPrecision("bf16", torch.device("cpu"), "k")
        assert MixedPrecision("auto", torch.device("cpu"), "k").dtype is None  # auto stays fp32 on a CPU
    assert caplog.text == ""
