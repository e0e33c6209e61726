"""Process-group, seeding and RNG-state helpers of the trainer, and the collectives that make a loss
or a BatchNorm see the global batch under DDP.

Why a per-rank loss built on :func:`gather_rows` gives the 1-process gradient: DDP averages the
ranks' gradients, and the gather's backward sums into each rank's rows the gradients that every
rank's loss sends them. So the averaged gradient is that of (sum of the per-rank losses) / world,
which is the global loss when the per-rank losses sum to world x the global loss as functions of all
ranks' rows: each rank takes the mean of its own rows' terms (against the gathered columns), and a
term of the whole batch (VICReg's variance) is computed from the gathered rows on every rank.
"""

from __future__ import annotations

import random
import warnings

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.distributed.nn.functional import all_gather as all_gather_with_grad
from torch.distributed.nn.functional import all_reduce as all_reduce_with_grad
from torch.nn.parallel import DistributedDataParallel

# Their replacement (torch.distributed._functional_collectives) is private; these are the documented ones.
warnings.filterwarnings("ignore", r"torch\.distributed\.nn\.functional\.all_(gather|reduce) is deprecated",
                        FutureWarning)


def rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_rows(*xs: torch.Tensor) -> tuple[list[torch.Tensor], int]:
    """Every rank's rows of each ``x`` (the same number of rows on every rank), concatenated in rank
    order and differentiable (one collective), and the offset of this rank's rows in them. Without a
    process group of several ranks: ``(list(xs), 0)``, no copy and no collective."""
    rank, world = rank_world()
    if world == 1:
        return list(xs), 0
    n = len(xs[0])
    flat = torch.cat([x.reshape(n, -1) for x in xs], dim=1)
    gathered = torch.cat(all_gather_with_grad(flat))
    parts = gathered.split([x[0].numel() for x in xs], dim=1)
    return [p.reshape(len(gathered), *x.shape[1:]) for p, x in zip(parts, xs)], rank * n


class CPUSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """SyncBatchNorm for the CPU (gloo), where torch's needs CUDA kernels and DDP refuses it: in training
    under a process group the batch mean and variance are those of every rank's samples, all-reduced with
    gradient (two passes, as F.batch_norm), and the running statistics are updated with them."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not (dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        self._check_input_dim(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        local_count = torch.full((1,), x.numel() // x.size(1), dtype=x.dtype, device=x.device)
        sums = all_reduce_with_grad(torch.cat([x.sum(dims), local_count]))
        count = sums[-1].detach()
        mean = sums[:-1] / count
        centred = x - mean.view(shape)
        var = all_reduce_with_grad(centred.square().sum(dims)) / count
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.weight is not None:
            out = out * self.weight.view(shape)
        if self.bias is not None:
            out = out + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / self.num_batches_tracked.item()
                self.running_mean.mul_(1 - m).add_(mean, alpha=m)
                self.running_var.mul_(1 - m).add_(var * count / (count - 1), alpha=m)
        return out


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` with every BatchNorm layer computing its statistics over the global batch: torch's
    nn.SyncBatchNorm on CUDA, :class:`CPUSyncBatchNorm` (same parameters and buffers) on the CPU."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, CPUSyncBatchNorm):
        sync = CPUSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                module.track_running_stats, bias=module.bias is not None)
        sync.weight, sync.bias = module.weight, module.bias
        sync.running_mean, sync.running_var = module.running_mean, module.running_var
        sync.num_batches_tracked = module.num_batches_tracked
        sync.train(module.training)
        return sync
    for name, child in module.named_children():
        module.add_module(name, convert_sync_batchnorm(child, device))
    return module


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from (seed, epoch[, rank]): each epoch's data order and views are
    fixed by the config alone, so a resumed run reproduces them."""
    return int(np.random.SeedSequence(list(parts)).generate_state(2, np.uint64)[0] >> np.uint64(1))


def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             # the key array as a list keeps the checkpoint loadable with weights_only=True
             "numpy": (np_state[0], np_state[1].tolist(), *np_state[2:])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state((state["numpy"][0], np.asarray(state["numpy"][1], dtype=np.uint32), *state["numpy"][2:]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def gather_rng_states(world: int) -> list[dict]:
    """RNG states of all ranks, indexed by rank (a collective: every rank calls it)."""
    if world == 1:
        return [rng_state()]
    states: list = [None] * world
    dist.all_gather_object(states, rng_state())
    return states
