"""Typed settings of every trained arm: a dataclass per config section, the one home of its defaults.

:class:`Settings` is the mechanism: ``from_dict`` builds the settings from a (YAML) mapping, refusing
unknown keys and converting numbers that PyYAML reads as strings; each subclass checks its values in
``__post_init__``, naming the key. The SSL methods' settings (``methods.<name>.params``) are
:class:`medssl.ssl.config.TrainConfig` and its subclasses; the baselines' are here:
:class:`SupervisedConfig` (``baselines.supervised``, the DL baseline of :mod:`medssl.evaluate.supervised`) and
:class:`LinearLayerConfig` (``baselines.linear_layer``, the "SSL + LL" arm of :mod:`medssl.evaluate.linear_layer`).
The schema (workflow/schemas/config.schema.yaml) gives the baselines' types and no defaults.

This module imports only the standard library: the plan-time checks (:mod:`medssl.checks`) and the
report read it without torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar


@dataclass
class Settings:
    """The typed-settings mechanism; subclasses are dataclasses whose fields are the section's keys."""

    label: ClassVar[str] = "settings"  # names the section in error messages
    #: fields the config cannot set (the arm's fixed choices)
    not_keys: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_dict(cls, d: dict):
        """Build from a (YAML) mapping; unknown keys raise, numbers given as strings are converted.

        PyYAML reads ``5e-4`` as a string, so float fields accept strings; an optional field
        (``int | None``) takes None."""
        fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in cls.not_keys}
        unknown = sorted(set(d) - set(fields))
        if unknown:
            raise ValueError(f"unknown {cls.label} config key(s): {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(fields))})")
        kwargs = {}
        for key, value in d.items():
            kind = str(fields[key].type)
            if kind.endswith(" | None"):
                if value is None:
                    kwargs[key] = value
                    continue
                kind = kind.removesuffix(" | None")
            if kind == "float" and not isinstance(value, bool):
                value = float(value)
            elif kind == "int" and not isinstance(value, bool) and float(value) == int(float(value)):
                value = int(float(value))
            elif kind == "bool" and not isinstance(value, bool):
                raise ValueError(f"{cls.label} config key {key} must be true/false, got {value!r}")
            kwargs[key] = value
        return cls(**kwargs)

    def check_choices(self, choices: dict[str, tuple], key_name=None) -> None:
        """Raise naming the key (``key_name(key)``, default ``<class>.<key>``) of a value not in its choices."""
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                name = key_name(key) if key_name else f"{type(self).__name__}.{key}"
                raise ValueError(f"{name}={getattr(self, key)!r}; expected one of {allowed}")


# clip_mode values of the baselines. `norm` is DINO's per-parameter clip under methods.<name>.params
# (medssl.ssl.optim.clip_gradients); the baselines clip the global norm, `global_norm`.
BASELINE_CLIP_MODES = ("none", "agc", "global_norm")


@dataclass
class FinetuneConfig(Settings):
    """The keys of :func:`medssl.evaluate.supervised.train_model` (both baseline arms) and the workflow's."""

    enabled: bool = False
    budgets: list | None = None  # None: evaluation.budgets (a subset of them)
    seeds: list | None = None  # None: evaluation.seeds (a subset of them)
    epochs: int = 100  # the most; early stopping on the validation part
    lr: float = 1.0e-4  # AdamW
    weight_decay: float = 0.05
    batch_size: int = 64
    patience: int = 10  # epochs without a better validation balanced accuracy
    val_fraction: float = 0.3  # the stratified part of the budget held out for early stopping
    augment: str = "dihedral"  # dihedral | hflip | none | multicrop (the DINO views of `multicrop`)
    multicrop: dict | None = None  # medssl.augment.MultiCropConfig fields, for augment multicrop
    normalize: str = "imagenet"  # imagenet | minus_one_one
    device: str = "auto"  # auto | cuda | cpu
    num_workers: int = 0
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on the CPU) | fp16 (autocast + GradScaler) | bf16 | fp32
    warmup_iterations: int = 0  # linear lr warm-up from 0 (timm PlateauLRScheduler warmup_t)
    lr_plateau: dict | None = None  # decay_rate, patience_iterations, cooldown_iterations; None: no decay
    clip_mode: str = "none"  # none | agc (timm adaptive_clip_grad) | global_norm
    clip_value: float = 0.16
    head: str = "linear"  # linear (timm's classifier) | mlp (SmallDataSSL's 512-BN-LeakyReLU head)
    class_weighted: bool = True  # class-weighted cross-entropy
    lr_step_size: int | None = None  # StepLR step; None: no StepLR
    lr_gamma: float = 0.5
    lr_step_after: int = 0  # StepLR steps after the epochs > this

    label: ClassVar[str] = "baselines.<arm>"

    def __post_init__(self) -> None:
        if self.clip_mode == "norm":
            raise ValueError(f"{self.label}.clip_mode: 'norm' is DINO's per-parameter clipping "
                             "(methods.<name>.params.clip_mode), which the baselines do not have; "
                             "write 'global_norm' to clip the global gradient norm")
        self.check_choices(self.choices(), key_name=lambda key: f"{self.label}.{key}")

    def choices(self) -> dict[str, tuple]:
        return {"augment": ("dihedral", "hflip", "none", "multicrop"), "normalize": ("imagenet", "minus_one_one"),
                "device": ("auto", "cuda", "cpu"), "precision": ("auto", "fp16", "bf16", "fp32"),
                "clip_mode": BASELINE_CLIP_MODES, "head": ("linear", "mlp")}


@dataclass
class SupervisedConfig(FinetuneConfig):
    """``baselines.supervised``: the DL baseline (docs/papers.md#dl-baseline for the paper's values)."""

    imagenet: bool = False  # also train the ImageNet-initialised backbone, as "supervised_imagenet"
    # the DL benchmark of the report: only a baseline that trained (medssl.report.health.dl_baseline_untrained)
    benchmark_min_epochs: int = 10
    benchmark_min_above_chance: float = 0.05

    label: ClassVar[str] = "baselines.supervised"


@dataclass
class LinearLayerConfig(FinetuneConfig):
    """``baselines.linear_layer``: the "SSL + LL" arm, the paper's defaults where they differ from the DL
    baseline's; ``multicrop`` and ``normalize`` default to the method's augmentation
    (:func:`medssl.evaluate.linear_layer.settings_for_method`)."""

    methods: list | None = None  # None: every method but those of kind pretrained
    batch_size: int = 256
    augment: str = "multicrop"
    normalize: str | None = None  # None: the method's

    label: ClassVar[str] = "baselines.linear_layer"
    not_keys: ClassVar[tuple[str, ...]] = ("head", "class_weighted", "lr_step_size", "lr_gamma", "lr_step_after")

    def choices(self) -> dict[str, tuple]:
        choices = super().choices()
        return {**choices, "normalize": (*choices["normalize"], None)}
