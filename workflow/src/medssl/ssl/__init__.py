"""Self-supervised pretraining: one shared trainer (trainer.py) and one module per method.

kinds.py names each method kind (the config's ``methods.<name>.kind``) and its :class:`base.Method`:
the method's module holds its config keys and defaults, schedules, views, heads, loss, hooks and the
backbone it exports (heads.py has the heads several methods share). The trainer holds the epoch loop,
mixed precision, DDP, the lr and weight-decay schedules, checkpoints, logs and collapse signals.
``python -m medssl.ssl --config run.json`` is one training process (launch.py).

The names below load their module on first use, so that importing the package loads no torch.
"""

import importlib

_EXPORTS = {
    "medssl.ssl.base": ("Method",),
    "medssl.ssl.collapse": ("CollapseConfig", "CollapseError"),
    "medssl.ssl.config": ("SmallDataConfig", "TrainConfig"),
    "medssl.ssl.heads": ("MultiCropWrapper", "PerViewWrapper"),
    "medssl.ssl.kinds": ("KINDS", "get_method"),
    "medssl.ssl.launch": ("RUN_SPEC", "distributed_command", "launch_pretraining", "main", "parse_spec",
                          "run_pretraining"),
    "medssl.ssl.optim": ("clip_gradients", "ema_update", "param_groups"),
    "medssl.ssl.schedules": ("Schedules", "cosine_schedule"),
    "medssl.ssl.trainer": ("CHECKPOINT", "HEALTH", "TRAIN_LOG", "log_columns", "resolve_device", "save_checkpoint",
                           "train", "training_step"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name.startswith("_"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name in _MODULE_OF:
        value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    else:  # a submodule not imported yet (medssl.ssl.launch, ...)
        try:
            value = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
