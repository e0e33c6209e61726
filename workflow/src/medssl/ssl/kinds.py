"""The SSL method kinds: a config's ``methods.<name>.kind`` -> the :class:`base.Method` that trains it.

Torch-free (the classes load on first use), so that planning reads it: rules/common.smk trains every
kind listed here with the pretrain_ssl rule, and medssl.checks refuses any other kind that is not one of
the workflow's own (random_init, published, pretrained). A new method is its own module plus one line here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from medssl.ssl.base import Method

#: kind -> "module:class"
KINDS: dict[str, str] = {
    "dino": "medssl.ssl.dino:DINO",
    "simclr": "medssl.ssl.simclr:SimCLR",
    "dclw": "medssl.ssl.dclw:DCLW",
    "simsiam": "medssl.ssl.simsiam:SimSiam",
    "vicreg": "medssl.ssl.vicreg:VICReg",
}


def get_method(kind: str) -> type[Method]:
    try:
        module, _, name = KINDS[kind].partition(":")
    except KeyError:
        raise ValueError(f"unknown SSL method kind {kind!r}; known: {sorted(KINDS)}") from None
    return getattr(importlib.import_module(module), name)


def pretraining_views(kind: str, augmentation: Mapping[str, Any]) -> dict:
    """The view settings a backbone of ``kind`` was pretrained with: the config's ``augmentation`` over the
    kind's own view defaults (a SimCLR entry without an augmentation block trained on SimCLR's views). An
    untrained kind has no defaults of its own. Loads the method's module (torch) for a trained kind."""
    return {**(get_method(kind).augmentation_defaults if kind in KINDS else {}), **augmentation}


def pretraining_normalize(views: Mapping[str, Any]) -> str:
    """The input normalisation of ``pretraining_views``, which every later stage feeding that backbone must use."""
    from medssl.augment.config import MultiCropConfig

    return views.get("normalize", MultiCropConfig.normalize)
