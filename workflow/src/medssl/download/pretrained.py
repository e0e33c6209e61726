"""A frozen off-the-shelf pretrained backbone as a method (kind ``pretrained``): the reference that
in-domain SSL has to beat to be worth its compute.

The method names a timm model with its pretrained tag (``model``, default ``backbone.name``; e.g.
``vit_small_patch14_dinov2.lvd142m``, ``resnet50.tv_in1k``) and optionally a local ``weights`` file
(.pth / .safetensors), loaded by timm itself (``pretrained_cfg_overlay=dict(file=...)``).
:func:`fetch_pretrained_backbone` builds it once and saves its state dict and its timm data config
(input size, interpolation, mean, std: :func:`data_config`); the embedding then resizes every image
to that input size with that interpolation and normalises it with that mean and std
(:func:`preprocessing`), not with the dataset's ``image_size`` and the SSL normalisation.

Weights without a ``weights`` file come from timm's sources (the Hugging Face hub, else the model's
URL) through their caches; :func:`weight_source` says in the log whether they are cached or are
downloaded now. On offline compute nodes fill the cache first on a login node
(``python -c "import timm; timm.create_model('<model>', pretrained=True)"``) and set
``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping

from PIL import Image

if TYPE_CHECKING:  # torch is imported where a model is built: planning imports model_spec
    import torch
    import torch.nn as nn

__all__ = ["model_spec", "build_pretrained", "data_config", "weight_source", "fetch_pretrained_backbone",
           "preprocessing", "mean_std_normalizer", "PIL_INTERPOLATION"]

PIL_INTERPOLATION = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
                     "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS,
                     "box": Image.Resampling.BOX, "hamming": Image.Resampling.HAMMING}


def model_spec(method: Mapping, backbone: Mapping) -> dict:
    """The timm model of a ``pretrained`` method: ``model`` (default ``backbone.name``), ``kwargs``
    (default ``backbone.kwargs`` when the model is the backbone's, else none), ``weights`` and
    ``pretrained_cfg`` (overlay of timm's pretrained config), as {name, kwargs, weights, overlay}."""
    name = method.get("model") or backbone["name"]
    default_kwargs = (backbone.get("kwargs") or {}) if name == backbone["name"] else {}
    kwargs = method.get("kwargs", default_kwargs) or {}
    return {"name": name, "kwargs": dict(kwargs), "weights": method.get("weights"),
            "overlay": dict(method.get("pretrained_cfg") or {})}


def _overlay(spec: Mapping) -> dict:
    overlay = dict(spec.get("overlay") or {})
    if spec.get("weights"):
        weights = Path(spec["weights"])
        if not weights.is_file():
            raise FileNotFoundError(f"pretrained weights {weights}: no such file")
        overlay["file"] = str(weights.resolve())
    return overlay


def weight_source(spec: Mapping) -> str:
    """Where timm takes the weights from, for the log: the file, the cache, or a download now."""
    overlay = _overlay(spec)
    if overlay.get("file"):
        return f"the local file {overlay['file']}"
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(spec["name"])
    if cfg is None:
        return f"nowhere: timm has no pretrained weights for {spec['name']!r}"
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False")
    if cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache

        repo = cfg.hf_hub_id.split("@")[0]
        names = [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin",
                                                                   "open_clip_pytorch_model.bin"]
        for name in names:
            hit = try_to_load_from_cache(repo, name)
            if isinstance(hit, str):
                return f"the Hugging Face cache ({hit})"
        return (f"huggingface.co/{repo}: not in the Hugging Face cache, "
                + ("and HF_HUB_OFFLINE is set, so loading fails" if offline else "DOWNLOADING it now")
                + f" (fill the cache on a login node: python -c \"import timm; timm.create_model("
                  f"'{spec['name']}', pretrained=True)\")")
    if cfg.url:
        import torch

        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(cfg.url.split("?")[0]).name
        if cached.is_file():
            return f"the torch hub cache ({cached})"
        return f"{cfg.url}: not in the torch hub cache ({cached}), DOWNLOADING it now"
    return f"timm's pretrained config of {spec['name']} (no file, hub id or URL)"


def build_pretrained(spec: Mapping, log: logging.Logger | None = None) -> nn.Module:
    """The timm model with its pretrained weights and ``num_classes=0`` (pooled features)."""
    import timm

    log = log or logging.getLogger(__name__)
    log.info("%s: pretrained weights from %s", spec["name"], weight_source(spec))
    return timm.create_model(spec["name"], pretrained=True, num_classes=0,
                             pretrained_cfg_overlay=_overlay(spec) or None, **dict(spec.get("kwargs") or {}))


def data_config(model: nn.Module) -> dict:
    """timm's data config of the model's pretrained weights: input_size [C, H, W], interpolation,
    mean, std (and crop_pct, kept for the record; the embedding does not crop)."""
    import timm.data

    cfg = timm.data.resolve_model_data_config(model)
    return {"input_size": [int(x) for x in cfg["input_size"]], "interpolation": str(cfg["interpolation"]),
            "mean": [float(x) for x in cfg["mean"]], "std": [float(x) for x in cfg["std"]],
            "crop_pct": float(cfg.get("crop_pct", 1.0))}


def fetch_pretrained_backbone(spec: Mapping, output: str | os.PathLike, config_output: str | os.PathLike,
                              log: logging.Logger | None = None) -> dict:
    """Build the pretrained model, save its state dict (``output``) and data config (json); returns it."""
    import torch

    log = log or logging.getLogger(__name__)
    model = build_pretrained(spec, log)
    cfg = data_config(model)
    for path, write in [(Path(output), lambda p: torch.save(model.state_dict(), p)),
                        (Path(config_output), lambda p: p.write_text(json.dumps(cfg, indent=2) + "\n"))]:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        write(tmp)
        os.replace(tmp, path)
    log.info("%s: %d parameters; its data config %s; wrote %s", spec["name"],
             sum(p.numel() for p in model.parameters()), cfg, output)
    return cfg


def mean_std_normalizer(mean, std) -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 ``[B, C, H, W]`` -> (x / 255 - mean) / std, per channel."""
    import torch

    def normalize(images: torch.Tensor) -> torch.Tensor:
        x = images.to(torch.float32).div_(255.0) if images.dtype == torch.uint8 else images.to(torch.float32)
        m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        s = torch.tensor(std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        return (x - m) / s
    return normalize


def preprocessing(cfg: Mapping) -> dict:
    """The embedding's image loading for a data config: ``image_size`` (square input only),
    ``channels``, ``resample`` (PIL) and ``normalize`` (a callable on uint8 batches)."""
    channels, height, width = cfg["input_size"]
    if height != width:
        raise ValueError(f"pretrained input size {cfg['input_size']}: only square inputs are supported")
    if cfg["interpolation"] not in PIL_INTERPOLATION:
        raise ValueError(f"pretrained interpolation {cfg['interpolation']!r}: not one of {sorted(PIL_INTERPOLATION)}")
    return {"image_size": int(height), "channels": int(channels), "resample": PIL_INTERPOLATION[cfg["interpolation"]],
            "normalize": mean_std_normalizer(cfg["mean"], cfg["std"])}
