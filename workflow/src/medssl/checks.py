"""Plan-time config checks (:func:`config_errors`), run by ``rules/common.smk`` while Snakemake plans, each
naming the config key at fault.

They import only what they check (sklearn for an estimator, timm for a model name, the trainer's config
classes for a method's keys), so this module keeps its top-level imports to the standard library. A config
is data: the only code it can name is a classifier class of an allowed package (:func:`resolve_estimator`),
checked here and again where it is instantiated. The checks of the data themselves are
:mod:`medssl.data.checks`.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path


def dataset_errors(config: Mapping) -> list[str]:
    """Dataset keys the schema cannot check, naming the key: a root that is the whole file system
    (or, for a folder source, holds the working directory, whose results/ indexing would walk and
    every run would change), and class names the readers would not find (surrounding spaces, which
    CSV readers strip; for a folder source, a name that is no single visible folder name). What a
    kind refuses is its source's (:class:`medssl.data.sources.Source`)."""
    from medssl.data.sources import source_for  # lazy: pandas

    errors = []
    for name, ds in config["datasets"].items():
        source, key = source_for(ds, name), f"datasets.{name}"
        for field in ("root", "unlabeled_root"):
            value = ds["source"].get(field)
            if value is None:
                continue
            real = os.path.realpath(value) if value.strip() else ""
            if not real or real == os.path.realpath(os.sep):
                errors.append(f"{key}.source.{field}: {value!r} is {'empty' if not real else 'the whole file system'}; "
                              "give the folder of the dataset itself")
            elif error := source.root_error(f"{key}.source.{field}", value, real):
                errors.append(error)
        for cls in ds["classes"]:
            if not cls.strip() or cls != cls.strip():
                errors.append(f"{key}.classes: {cls!r} is empty or starts or ends with a space, which the CSV readers "
                              "strip; write the class name without them")
            elif error := source.class_error(f"{key}.classes", cls):
                errors.append(error)
    return errors


def integer_errors(config: Mapping) -> list[str]:
    """Budgets and seeds written as floats (``10.0``): the schema takes them for integers, but they
    would name output paths (``budget_10.0``) that no rule makes."""
    lists = {"evaluation.budgets": config["evaluation"]["budgets"], "evaluation.seeds": config["evaluation"]["seeds"],
             "evaluation.health.budgets": (config["evaluation"].get("health") or {}).get("budgets") or []}
    for arm in ("supervised", "linear_layer"):
        for field in ("budgets", "seeds"):
            lists[f"baselines.{arm}.{field}"] = (config.get("baselines") or {}).get(arm, {}).get(field) or []
    for figure in ("confusion", "comparison"):
        lists[f"figures.{figure}.budget"] = [(config.get("figures") or {}).get(figure, {}).get("budget")]
    return [f"{key}: {value!r} is not an integer as written; write {int(value)}"
            for key, values in lists.items() for value in values if isinstance(value, float)]


ESTIMATOR_PACKAGES = ("sklearn", "medssl")
_NAME = r"(?!__)[A-Za-z_][A-Za-z0-9_]*"  # no dunder part: importing medssl.ssl.__main__ would run it
_DOTTED = re.compile(rf"{_NAME}(\.{_NAME})+")


BUNDLED_ESTIMATOR_MODULES = ("medssl.evaluate.estimators", "medssl.evaluate.probes")


def _defines(module: str, attr: str) -> bool:
    return inspect.isclass(getattr(importlib.import_module(module), attr, None))


def resolve_estimator(dotted: str, packages: Iterable[str] = (), key: str = "estimator") -> type:
    """The classifier class a config names: a class derived from sklearn.base.BaseEstimator, with
    ``fit`` and ``predict``, defined in an allowed top-level package (sklearn, medssl and
    ``packages``, the config's ``evaluation.estimator_packages``). A name outside those packages is
    refused before anything is imported; nothing is called. Raises ValueError naming ``key``."""
    allowed = [*ESTIMATOR_PACKAGES, *(p for p in packages if p not in ESTIMATOR_PACKAGES)]
    rule = (f"a config may name only scikit-learn classifier classes of the packages {allowed} "
            "(evaluation.estimator_packages adds a package)")
    if not isinstance(dotted, str) or not _DOTTED.fullmatch(dotted):
        raise ValueError(f"{key}: {dotted!r} is not a dotted class name (package.module.Class)")
    if dotted.split(".")[0] not in allowed:
        raise ValueError(f"{key}: {dotted!r} is outside the allowed packages and was not imported; {rule}")
    module, _, attr = dotted.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        hint = "".join(f"; did you mean {where}.{attr}?" for where in BUNDLED_ESTIMATOR_MODULES
                       if where != module and dotted.startswith("medssl.") and _defines(where, attr))
        raise ValueError(f"{key}: {dotted!r} cannot be imported ({err}){hint}") from err
    from sklearn.base import BaseEstimator  # lazy: planning imports sklearn only for this check

    if not inspect.isclass(cls):
        problem = f"is not a class (it is a {type(cls).__name__})"
    elif cls.__module__.split(".")[0] not in allowed:
        problem = f"is defined in {cls.__module__}, outside the allowed packages"
    elif not issubclass(cls, BaseEstimator):
        problem = "is not a scikit-learn estimator (not a subclass of sklearn.base.BaseEstimator)"
    elif missing := [m for m in ("fit", "predict") if not callable(getattr(cls, m, None))]:
        problem = f"has no {' or '.join(missing)} method, so it is not a classifier"
    else:
        return cls
    raise ValueError(f"{key}: {dotted!r} {problem}; {rule}")


def estimator_errors(name: str, spec: Mapping, packages: Iterable[str] = ()) -> list[str]:
    """An estimator that is not an allowed classifier class (:func:`resolve_estimator`) or a
    parameter it does not take, naming the config key."""
    key = f"evaluation.classifiers.{name}"
    try:
        cls = resolve_estimator(spec["estimator"], packages, f"{key}.estimator")
    except ValueError as err:
        return [str(err)]
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return []
    if any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
        return []
    known = set(signature.parameters)
    unknown = sorted(set(spec.get("params") or {}) - known)
    if unknown:
        return [f"{key}.params: {spec['estimator']} takes no parameter(s) {unknown}; it takes {sorted(known)}"]
    return []


def timm_model_errors(key: str, name: str) -> list[str]:
    import timm  # only imported for this check

    if timm.is_model(name):
        return []
    close = timm.list_models(f"*{name.split('_')[0]}*")[:5] if name else []
    return [f"{key}: {name!r} is not a timm model" + (f" (similar: {close})" if close else "")]


# Method kinds the workflow makes without training (rules/ssl.smk); the trained ones are medssl.ssl.kinds.
UNTRAINED_KINDS = ("random_init", "published", "pretrained")


def method_errors(name: str, method: Mapping, image_size: int | None = None) -> list[str]:
    """An unknown ``kind``, and unknown or invalid keys of a trained method's ``params``, ``augmentation``
    and ``collapse``, by parsing them as the trainer does (medssl.ssl.parse_spec refuses unknown keys and
    bad values)."""
    from medssl.ssl.kinds import KINDS

    if method["kind"] not in KINDS:
        if method["kind"] in UNTRAINED_KINDS:
            return []
        return [f"methods.{name}.kind: {method['kind']!r} is not a method kind (trained: {', '.join(KINDS)}; "
                f"not trained: {', '.join(UNTRAINED_KINDS)})"]
    from medssl.ssl.launch import parse_spec

    try:
        parse_spec({**method, "image_size": image_size})
    except (ValueError, TypeError) as err:
        return [str(err).replace("methods.<name>", f"methods.{name}")]
    return []


def view_size_errors(config: Mapping) -> list[str]:
    """Views a ViT cannot cut into patches: with ``backbone.kwargs.patch_size`` set (and no
    ``dynamic_img_pad``), every trained method's global and local view size, as each dataset resolves
    it, must be a multiple of the patch size (timm refuses the first batch otherwise)."""
    from medssl.ssl.kinds import KINDS
    from medssl.ssl.launch import parse_spec

    kwargs = config["backbone"].get("kwargs") or {}
    patch = kwargs.get("patch_size")
    if not isinstance(patch, int) or kwargs.get("dynamic_img_pad"):
        return []
    errors = []
    for d, ds in config["datasets"].items():
        for name, method in config["methods"].items():
            if method["kind"] not in KINDS:
                continue
            try:
                aug = parse_spec({**with_dataset_params(method, ds, name), "image_size": ds.get("image_size")})[2]
            except (ValueError, TypeError):
                continue  # reported by method_errors
            sizes = {"global_size": aug.global_size, "local_size": aug.local_size if aug.n_local else None}
            for key, size in sizes.items():
                if size and size % patch:
                    errors.append(f"methods.{name}.augmentation.{key}: {size}-px views of datasets.{d} (image_size "
                                  f"{ds.get('image_size')}) are not a multiple of backbone.kwargs.patch_size "
                                  f"{patch}; set {key} to a multiple of {patch}")
    return errors


def baseline_errors(config: Mapping) -> list[str]:
    """Invalid values of ``baselines.supervised`` and ``baselines.linear_layer``, naming the key, by parsing
    each section as its training script does (:class:`medssl.settings.SupervisedConfig`,
    :class:`medssl.settings.LinearLayerConfig`), and its ``multicrop`` views as
    :class:`medssl.augment.MultiCropConfig`."""
    from medssl.settings import LinearLayerConfig, SupervisedConfig

    errors = []
    for arm, settings_class in (("supervised", SupervisedConfig), ("linear_layer", LinearLayerConfig)):
        section = (config.get("baselines") or {}).get(arm)
        if not section:
            continue
        try:
            settings = settings_class.from_dict(section)
        except (TypeError, ValueError) as err:
            errors.append(str(err))
            continue
        if settings.multicrop is not None:
            from medssl.augment import MultiCropConfig  # lazy: torch

            views = {**settings.multicrop, **({"normalize": settings.normalize} if settings.normalize else {})}
            try:
                MultiCropConfig.from_dict(views)
            except (TypeError, ValueError) as err:
                errors.append(f"baselines.{arm}.multicrop: {err}")
    return errors


def with_dataset_params(method: Mapping, dataset: Mapping, name: str) -> dict:
    """The method entry ``name`` as ``dataset`` pretrains it: its ``params`` updated with the dataset's
    ``method_params.<name>`` (or those of its ``family``, the entry its pretrain_seeds came from); an
    instance's pretraining seed stays its own."""
    override = (dataset.get("method_params") or {}).get(method.get("family", name))
    if not override:
        return dict(method)
    params = {**(method.get("params") or {}), **override}
    if "pretrain_seed" in method:
        params["seed"] = method["pretrain_seed"]
    return {**method, "params": params}


def dataset_params_errors(config: Mapping) -> list[str]:
    """``datasets.<d>.method_params``: each key a trained method of ``methods`` (or a family of them);
    the merged params are checked by :func:`method_errors` under that key."""
    from medssl.ssl.kinds import KINDS

    families = {m.get("family", n): m for n, m in config["methods"].items()}
    errors = []
    for ds_name, ds in config["datasets"].items():
        for name in ds.get("method_params") or {}:
            key = f"datasets.{ds_name}.method_params.{name}"
            if name not in families or families[name]["kind"] not in KINDS:
                errors.append(f"{key}: {name!r} is not a trained method of methods "
                              f"({sorted(n for n, m in families.items() if m['kind'] in KINDS)})")
                continue
            merged = with_dataset_params(families[name], ds, name)
            errors += [e.replace(f"methods.{name}", key) for e in method_errors(name, merged, ds.get("image_size"))]
    return errors


def config_errors(config: Mapping, cache: str | Path | None = None) -> list[str]:
    """Every config error found by importing what the config names (the schema checks the rest).

    Importing timm (and torch) costs seconds; with ``cache`` (a file) a config section that passed
    once with the same package versions is not checked again, so re-planning stays fast."""
    import importlib.metadata
    import json

    checked = {"classifiers": config["evaluation"]["classifiers"], "backbone": config["backbone"]["name"],
               "methods": config["methods"], "estimator_packages": config["evaluation"].get("estimator_packages", []),
               "method_params": {d: ds.get("method_params") for d, ds in config["datasets"].items()},
               "image_sizes": {d: ds.get("image_size") for d, ds in config["datasets"].items()},
               "backbone_kwargs": config["backbone"].get("kwargs"), "baselines": config.get("baselines")}
    versions = {}
    for package in ("scikit-learn", "timm", "medssl"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    key = hashlib.sha1(json.dumps([checked, versions], sort_keys=True, default=str).encode()).hexdigest()
    if cache is not None and Path(cache).is_file() and key in Path(cache).read_text().split():
        return []
    errors = []
    for name, spec in checked["classifiers"].items():
        errors += estimator_errors(name, spec, checked["estimator_packages"])
    errors += timm_model_errors("backbone.name", checked["backbone"])
    sizes = {ds.get("image_size") for ds in config["datasets"].values()}
    for name, method in checked["methods"].items():
        errors += method_errors(name, method, max(sizes) if sizes else None)
        if method["kind"] == "pretrained" and method.get("model"):
            errors += timm_model_errors(f"methods.{name}.model", method["model"])
    errors += dataset_params_errors(config)
    errors += view_size_errors(config)
    errors += baseline_errors(config)
    if cache is not None and not errors:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        with open(cache, "a") as fh:
            fh.write(key + "\n")
    return errors
