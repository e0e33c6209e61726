"""The shared SSL training loop: every method (base.Method) runs through :func:`train`.

Epoch loop with per-epoch train_log.csv and tqdm progress, mixed precision (bf16, or fp16 with a
GradScaler), DDP (one process per GPU; gloo on the CPU), schedules, atomic checkpoints with exact
resume, the collapse signals and health.json, and the CPU fallback.

A checkpoint belongs to one run identity (method, its config without operational keys, backbone,
augmentation, data): when the identity changes, the old ``checkpoint.pt`` is moved aside as
``checkpoint.<its hash>.pt`` and a new training starts; a later run with that identity again resumes
from it. A finished checkpoint is resumed too: the backbone, train_log.csv and health.json are
written again from it, with no training. How checkpoints are written, and what happens to one that
cannot be read: checkpoint.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import math
import os
import time
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from medssl import runtime
from medssl.ssl import collapse
from medssl.ssl.base import Method
from medssl.ssl.checkpoint import CHECKPOINT, atomic_torch_save, save_checkpoint, take_checkpoint, write_log_csv
from medssl.ssl.config import TrainConfig, config_hash
from medssl.ssl.distributed import epoch_seed, gather_rng_states, rank_world, seed_everything, set_rng_state, unwrap
from medssl.ssl.optim import build_optimizer, clip_gradients, load_optimizer_state
from medssl.ssl.schedules import Schedules

TRAIN_LOG = "train_log.csv"
HEALTH = "health.json"
BASE_COLUMNS = ("epoch", "loss", "lr", "wd")
TIMING_COLUMNS = ("seconds", "images_per_s")


def log_columns(method: type[Method]) -> list[str]:
    return [*BASE_COLUMNS, *method.log_columns, *collapse.COLLAPSE_COLUMNS, *TIMING_COLUMNS]


def resolve_device(device: str, log: logging.Logger | None = None) -> torch.device:
    return runtime.resolve_device(device, "methods.<name>.params.device", "training", log)


def training_step(method: Method, model: nn.Module, optimizer: torch.optim.Optimizer, views: list[torch.Tensor],
                  it: int, sched: Schedules, cfg: TrainConfig, precision: runtime.MixedPrecision | None = None,
                  scaler: torch.amp.GradScaler | None = None) -> dict[str, float]:
    """One iteration at global iteration ``it``: the loss and the method's per-step signals.
    ``precision``: the autocast (none: fp32); ``scaler``: its GradScaler (``precision.grad_scaler()``)."""
    for group in optimizer.param_groups:  # schedules apply from the very first step
        group["lr"] = sched.base_lr if group.get("fixed_lr") else float(sched.lr[it])
        if group["decayed"]:  # optim.param_groups
            group["weight_decay"] = float(sched.wd[it])

    with precision.autocast() if precision is not None else contextlib.nullcontext():
        loss, stats = method.loss(model, views, it, sched)

    # One host sync per step: the loss (checked before it can reach the weights) and the signals.
    values = torch.stack([loss.detach().float(), *(stats[k].float() for k in method.stat_names)]).tolist()
    if not math.isfinite(values[0]):
        epoch, step = divmod(it, sched.iters_per_epoch)
        raise FloatingPointError(f"{cfg.label} loss is {values[0]} at epoch {epoch}, step {step} "
                                 f"(global step {it}); stopping training")

    optimizer.zero_grad(set_to_none=True)
    if scaler is not None and scaler.is_enabled():
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    module = unwrap(model)
    clip_gradients(module, cfg.clip_mode, cfg.clip_value)
    method.edit_gradients(module, it, sched)
    if scaler is not None and scaler.is_enabled():
        scaler.step(optimizer)  # skipped when the fp16 gradients overflowed
        scaler.update()
    else:
        optimizer.step()
    method.after_step(module, it, sched)
    return dict(zip(("loss", *method.stat_names), values))


def _make_loader(cfg: TrainConfig, dataset: Dataset, device: torch.device, log: logging.Logger,
                 rank: int, world: int) -> tuple[DataLoader, torch.Generator, int]:
    global_batch = cfg.batch_size
    if len(dataset) < global_batch:
        log.warning("dataset has %d images, fewer than batch_size %d: using batch size %d",
                    len(dataset), global_batch, len(dataset))
        global_batch = len(dataset)
    per_rank = global_batch // world
    if per_rank < 1:
        raise ValueError(f"global batch {global_batch} cannot be split over {world} ranks")
    num_workers = runtime.default_num_workers() if cfg.num_workers < 0 else cfg.num_workers
    generator = torch.Generator()
    sampler = None
    if world > 1:
        sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True,
                                     seed=cfg.seed, drop_last=True)
    loader = DataLoader(dataset, batch_size=per_rank, shuffle=sampler is None, sampler=sampler,
                        generator=generator, drop_last=True, num_workers=num_workers,
                        pin_memory=device.type == "cuda", persistent_workers=num_workers > 0)
    if len(loader) == 0:
        raise ValueError(f"the {cfg.label} data loader yields no batch")
    return loader, generator, per_rank * world


def _train_one_epoch(method: Method, model: nn.Module, optimizer, scaler, loader, loader_gen, augment,
                     epoch: int, sched: Schedules, cfg: TrainConfig, precision, device: torch.device,
                     rank: int, world: int, global_batch: int, is_main: bool) -> dict:
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)
    loader_gen.manual_seed(epoch_seed(cfg.seed, epoch))
    # Views are drawn with a CPU generator seeded from (seed, epoch, rank): reproducible on any device.
    aug_gen = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch, rank))
    names = ("loss", *method.stat_names)
    sums = torch.zeros(len(names), dtype=torch.float64)
    start = time.perf_counter()
    bar = tqdm(loader, total=sched.iters_per_epoch, desc=f"{cfg.label} epoch {epoch}", disable=not is_main)
    for i, (images, _) in enumerate(bar):
        it = epoch * sched.iters_per_epoch + i
        images = images.to(device, non_blocking=True)
        views = augment(images, aug_gen)
        stats = training_step(method, model, optimizer, views, it, sched, cfg, precision, scaler)
        sums += torch.tensor([stats[k] for k in names], dtype=torch.float64)
        bar.set_postfix(loss=f"{stats['loss']:.4f}", lr=f"{sched.lr[it]:.2e}", refresh=False)
    bar.close()
    if world > 1:
        sums = sums.to(device)
        dist.all_reduce(sums)
        sums = sums.cpu() / world
    seconds = time.perf_counter() - start
    means = dict(zip(names, (sums / sched.iters_per_epoch).tolist()))
    last = (epoch + 1) * sched.iters_per_epoch - 1
    return {"epoch": epoch, "loss": means.pop("loss"), "lr": float(sched.lr[last]), "wd": float(sched.wd[last]),
            **method.epoch_row(sched, last, means), "seconds": seconds,
            "images_per_s": sched.iters_per_epoch * global_batch / seconds}


@contextlib.contextmanager
def _exclusive(out_dir: Path, log: logging.Logger):
    """Hold an exclusive lock on the run folder: a trainer orphaned by a killed Snakemake may still be
    writing it; then this one waits for it to finish and resumes from its checkpoint."""
    fd = os.open(out_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("another trainer is writing %s (e.g. one left running by a killed Snakemake): "
                        "waiting for it to finish, then resuming from its checkpoint", out_dir)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def train(method_cls: type[Method], cfg: TrainConfig, backbone_spec: dict, dataset: Dataset,
          augment: Callable[[torch.Tensor, torch.Generator], list[torch.Tensor]], out_dir: Path,
          log: logging.Logger | None = None, collapse_cfg: collapse.CollapseConfig | None = None,
          identity: dict | None = None) -> Path:
    """Pretrain ``method_cls`` on ``dataset``; returns the path of the exported backbone state_dict,
    ``out_dir/<method_cls.export_file>``.

    ``dataset`` yields (uint8 image [C,S,S], label). ``augment(images, generator)`` receives the
    uint8 batch [B,C,S,S] on the training device and a CPU generator and returns the views (the
    2 global views first). Resumes from ``out_dir/checkpoint.pt`` when it belongs to this run
    (``identity``: anything else that defines the run, e.g. the image list). Writes train_log.csv
    and health.json; raises :class:`collapse.CollapseError` at the end of a collapsed run unless
    ``collapse_cfg.action`` is "warn".
    """
    log = log or logging.getLogger(__name__)
    collapse_cfg = collapse_cfg or collapse.CollapseConfig()
    out_dir = Path(out_dir)
    rank, world = rank_world()
    is_main = rank == 0
    if not is_main:
        return _train(method_cls, cfg, backbone_spec, dataset, augment, out_dir, log, collapse_cfg, identity)
    out_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(out_dir, log):
        return _train(method_cls, cfg, backbone_spec, dataset, augment, out_dir, log, collapse_cfg, identity)


def _train(method_cls, cfg, backbone_spec, dataset, augment, out_dir, log, collapse_cfg, identity) -> Path:
    rank, world = rank_world()
    is_main = rank == 0
    device = resolve_device(cfg.device, log if is_main else None)
    precision = runtime.MixedPrecision(cfg.precision, device, "methods.<name>.params.precision", log)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # few distinct crop shapes: autotuning pays off

    loader, loader_gen, global_batch = _make_loader(cfg, dataset, device, log, rank, world)
    configured_epochs = cfg.epochs
    cfg = cfg.sized_to(len(loader))
    sched = Schedules.from_config(cfg, len(loader), global_batch)
    if is_main:
        raised = (f"; epochs raised from {configured_epochs} to reach min_steps {cfg.min_steps}, every "
                  f"schedule in epochs stretched x{cfg.epochs / configured_epochs:.3g}"
                  if cfg.epochs != configured_epochs else "")
        log.info("%s schedule: %d optimiser steps = %d epochs x %d iterations (%d images/epoch)%s", cfg.label,
                 cfg.epochs * len(loader), cfg.epochs, len(loader), len(loader) * global_batch, raised)

    # The number of views the augmentation makes sizes the loss; probe it with a throwaway generator.
    probe_gen = torch.Generator().manual_seed(0)
    probe = torch.stack([dataset[i][0] for i in range(min(2, len(dataset)))]).to(device)
    n_views = len(augment(probe, probe_gen))
    if n_views < method_cls.min_views:
        raise ValueError(f"augment returned {n_views} view(s); {cfg.label} needs at least {method_cls.min_views}")

    aug_cfg = getattr(augment, "cfg", None)
    run_hash = config_hash(method_cls.kind, cfg.identity(), backbone_spec,
                           dataclasses.asdict(aug_cfg) if dataclasses.is_dataclass(aug_cfg) else None,
                           len(dataset), global_batch, identity)

    seed_everything(cfg.seed)  # identical initial weights on every rank
    method = method_cls.build(cfg, backbone_spec, n_views)
    if cfg.grad_checkpointing:
        method.model.backbone.set_grad_checkpointing(True)
    if world > 1 and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in method.model.modules()):
        method.convert_sync_batchnorm(device)
    method.to(device)
    optimizer = build_optimizer(method.model, cfg, device, method.fixed_lr_prefixes())
    scaler = precision.grad_scaler()
    seed_everything(cfg.seed + rank)  # ranks draw different drop-path masks

    start_epoch, history = 0, []
    ckpt = take_checkpoint(out_dir, run_hash, log) if is_main else None
    ckpt_path = out_dir / CHECKPOINT
    if world > 1:
        dist.barrier()  # rank 0 has left checkpoint.pt readable and of this run, or removed it
        if not is_main and ckpt_path.exists():
            ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    if ckpt is not None:
        if ckpt.get("run_hash") != run_hash:  # another rank's view of the folder changed under us
            raise RuntimeError(f"{ckpt_path} does not belong to this run")
        for name, module in method.modules().items():
            module.load_state_dict(ckpt[name])
        load_optimizer_state(optimizer, ckpt["optimizer"])
        if "scaler" in ckpt:
            scaler.load_state_dict(ckpt["scaler"])
        start_epoch, history = ckpt["epoch"], ckpt["history"]
        if rank < len(ckpt["rng"]):
            set_rng_state(ckpt["rng"][rank])
        else:
            log.warning("checkpoint has no RNG state for rank %d (world size changed)", rank)
        if is_main:
            log.info("resuming from epoch %d (%d of %d epochs done, global step %d) from %s",
                     start_epoch, start_epoch, cfg.epochs, ckpt["global_step"], ckpt_path)
        del ckpt

    if cfg.compile:  # in place, so state_dict keys stay those of the timm model
        method.model.backbone.compile()
        if method.teacher is not None:
            method.teacher.backbone.compile()
    model = method.model
    if world > 1:
        # static_graph: gradient checkpointing re-runs forwards inside backward
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                        static_graph=cfg.grad_checkpointing)
    method.train_mode()
    columns = log_columns(method_cls)
    normalize_mode = getattr(aug_cfg, "normalize", "imagenet")
    sample = collapse.sample_images(dataset, collapse_cfg) if is_main else None
    if is_main:
        n_params = sum(p.numel() for p in method.model.parameters())
        log.info("%s: %s (%.3gM params incl. heads), %d views, global batch %d (%d process(es) x %d) "
                 "x %d iterations/epoch, %d epochs, device %s, precision %s, run hash %s", cfg.label,
                 backbone_spec["name"], n_params / 1e6, n_views, global_batch, world, global_batch // world,
                 sched.iters_per_epoch, cfg.epochs, device, precision.name, run_hash)

    for epoch in range(start_epoch, cfg.epochs):
        row = _train_one_epoch(method, model, optimizer, scaler, loader, loader_gen, augment, epoch, sched, cfg,
                               precision, device, rank, world, global_batch, is_main)
        done = epoch + 1
        every = cfg.checkpoint_every_epochs
        checkpoint_now = done == cfg.epochs or (every > 0 and done % every == 0)
        rng = gather_rng_states(world) if checkpoint_now else None  # a collective: all ranks call it
        if not is_main:
            continue
        row.update(collapse.embedding_signals(method.export_backbone(), sample, normalize_mode, device,
                                              collapse_cfg.batch_size))
        history.append(row)
        described = method.describe(row)
        log.info("epoch %d/%d: loss %.4f, %sembedding std x sqrt(d) %.3f, effective rank %.2f, lr %.3g, "
                 "%.0f img/s", epoch, cfg.epochs, row["loss"], f"{described}, " if described else "",
                 row["embedding_std_ratio"], row["effective_rank"], row["lr"], row["images_per_s"])
        write_log_csv(history, out_dir / TRAIN_LOG, columns)
        if checkpoint_now:
            save_checkpoint(ckpt_path, {
                **{name: unwrap(m).state_dict() for name, m in method.modules().items()},
                "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                "epoch": done, "global_step": done * sched.iters_per_epoch, "rng": rng,
                "cfg": dataclasses.asdict(cfg), "kind": method_cls.kind, "backbone_spec": backbone_spec,
                "run_hash": run_hash, "history": history,
            })

    out_path = out_dir / method_cls.export_file
    failures: list[dict] = []
    if is_main:
        # Written again on every call, also when resuming a finished run (nothing left to train).
        write_log_csv(history, out_dir / TRAIN_LOG, columns)
        atomic_torch_save(method.export_backbone().state_dict(), out_path)
        log.info("wrote the %s backbone to %s", cfg.label, out_path)
        failures = _write_health(method, history, collapse_cfg, out_dir / HEALTH, log)
    if world > 1:
        dist.barrier()
    if failures and collapse_cfg.action == "fail":
        raise collapse.CollapseError(collapse.failure_message(cfg.label, failures, f"epoch {history[-1]['epoch']}"))
    return out_path


def _write_health(method: Method, history: list[dict], cfg: collapse.CollapseConfig, path: Path,
                  log: logging.Logger) -> list[dict]:
    last = history[-1]
    signals = {k: last[k] for k in collapse.COLLAPSE_COLUMNS} | method.signals(last)
    failures = collapse.verdict(signals, cfg)
    health = {"kind": method.kind, "epoch": last["epoch"], "epochs": method.cfg.epochs, "signals": signals,
              "thresholds": {k: v for k, v in dataclasses.asdict(cfg).items()
                             if k.startswith(("min_", "max_"))},
              "failed": failures, "verdict": "collapsed" if failures else "ok",
              "action": cfg.action, "warned": bool(failures) and cfg.action == "warn"}
    runtime.write_json(health, path)
    if failures and cfg.action == "warn":
        log.warning(collapse.failure_message(method.cfg.label, failures, f"epoch {last['epoch']}") +
                    "\n  (collapse.action is warn: continuing)")
    return failures
