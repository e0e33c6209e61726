"""Optimiser construction, gradient clipping and the EMA teacher update."""

from __future__ import annotations

import timm.utils
import torch
import torch.nn as nn


def param_groups(model: nn.Module, fixed_lr_prefixes: tuple[str, ...] = ()) -> list[dict]:
    """[decayed, not decayed]: biases and 1-D parameters (norms) get no weight decay. Parameters
    whose names start with one of ``fixed_lr_prefixes`` form two more groups in the same order,
    marked ``fixed_lr``. Every group says whether it is ``decayed`` (the trainer schedules its decay)."""
    groups = {(fixed, decayed): [] for fixed in (False, True) for decayed in (True, False)}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decayed = not (name.endswith(".bias") or p.ndim == 1)
        groups[(name.startswith(fixed_lr_prefixes) if fixed_lr_prefixes else False, decayed)].append(p)
    out = [{"params": groups[(False, True)], "decayed": True},
           {"params": groups[(False, False)], "weight_decay": 0.0, "decayed": False}]
    if fixed_lr_prefixes:
        if not groups[(True, True)] and not groups[(True, False)]:
            raise ValueError(f"no parameter name starts with {fixed_lr_prefixes}")
        out += [{"params": groups[(True, True)], "decayed": True, "fixed_lr": True},
                {"params": groups[(True, False)], "weight_decay": 0.0, "decayed": False, "fixed_lr": True}]
    return out


def build_optimizer(model: nn.Module, cfg, device: torch.device,
                    fixed_lr_prefixes: tuple[str, ...] = ()) -> torch.optim.Optimizer:
    """AdamW (DINO) or plain SGD (SmallDataSSL: ``optim.SGD(params, lr)``); lr and weight decay are
    set by the schedules at every step."""
    groups = param_groups(model, fixed_lr_prefixes)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.sgd_momentum)
    return torch.optim.AdamW(groups, fused=bool(cfg.fused_adamw and device.type == "cuda"))


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """``optimizer.load_state_dict(state)``, keeping the group flags that :func:`param_groups` gave
    ``optimizer``: the loaded groups replace its own, and a state saved without the flags would drop them."""
    flags = [{k: g[k] for k in ("decayed", "fixed_lr") if k in g} for g in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, own in zip(optimizer.param_groups, flags):
        group.update(own)


@torch.no_grad()
def clip_gradients(model: nn.Module, mode: str, value: float) -> list[torch.Tensor] | None:
    """"norm": DINO's per-parameter clip, g ← g·min(1, value/(‖g‖+1e-6)); returns the norms.
    "agc": timm adaptive gradient clipping (unit-wise, clip factor ``value``, eps 1e-3), as sparsam.
    "none": nothing."""
    params = [p for p in model.parameters() if p.grad is not None]
    if mode == "none" or not params:
        return None
    if mode == "agc":
        timm.utils.adaptive_clip_grad(params, clip_factor=value, eps=1e-3, norm_type=2.0)
        return None
    if mode != "norm":
        raise ValueError(f"unknown clip mode {mode!r}")
    grads = [p.grad for p in params]
    norms = torch.stack(torch._foreach_norm(grads, 2))
    # Vectorised (no host sync per parameter); multiplying by exactly 1.0 leaves a grad unchanged.
    factors = torch.clamp(value / (norms + 1e-6), max=1.0).to(grads[0].dtype)
    torch._foreach_mul_(grads, list(factors.unbind()))
    return list(norms.unbind())


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, m: float) -> None:
    """teacher ← m·teacher + (1 − m)·student for parameters only (BN running stats are the teacher's own)."""
    t_params = list(teacher.parameters())
    s_params = [p.detach() for p in student.parameters()]
    if len(t_params) != len(s_params):
        raise ValueError("teacher and student have different parameter lists")
    torch._foreach_mul_(t_params, m)
    torch._foreach_add_(t_params, s_params, alpha=1 - m)
