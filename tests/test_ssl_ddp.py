"""Data-parallel DINO on the CPU (gloo): 2 ranks x batch B must take the same step as 1 rank x 2B,
and the launcher must start one process per requested GPU with only rank 0 writing."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from PIL import Image
from torch.nn.parallel import DistributedDataParallel

from medssl import ssl
from medssl.ssl import DINOLoss, DinoConfig, Schedules, build_student_teacher, param_groups, train_step

# No BatchNorm, no drop-path: then the per-rank forward is exactly a slice of the full-batch forward.
BACKBONE = {"name": "vit_tiny_patch16_224", "pretrained": False,
            "kwargs": {"img_size": 16, "patch_size": 4, "depth": 2, "embed_dim": 32, "num_heads": 2,
                       "dynamic_img_size": True}}
B = 4  # per-rank batch


def _cfg() -> DinoConfig:
    # lr from the first step (no warm-up), last layer trained, clipping active, centre in use
    return DinoConfig(epochs=1, batch_size=2 * B, lr=0.05, warmup_epochs=0, out_dim=64, hidden_dim=32,
                      bottleneck_dim=16, freeze_last_layer_epochs=0, clip_mode="norm", clip_value=0.05,
                      drop_path_rate=0.0, device="cpu", num_workers=0, seed=0)


def _crops() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(123)
    return [torch.randn(2 * B, 3, 16, 16, generator=g) for _ in range(2)] + \
           [torch.randn(2 * B, 3, 8, 8, generator=g) for _ in range(3)]


def _one_step(rank: int, world: int) -> dict:
    cfg = _cfg()
    torch.manual_seed(cfg.seed)
    student, teacher = build_student_teacher(cfg, BACKBONE)
    crops = _crops()
    loss_fn = DINOLoss(cfg.out_dim, len(crops), cfg.student_temp, cfg.center_momentum)
    optimizer = torch.optim.AdamW(param_groups(student))
    sched = Schedules.from_config(cfg, iters_per_epoch=1, global_batch=cfg.batch_size)
    if world > 1:
        student = DistributedDataParallel(student)
        crops = [c[rank * B:(rank + 1) * B] for c in crops]  # this rank's share of every view
    train_step(student, teacher, loss_fn, optimizer, crops, 0, sched, cfg)
    return {"student": ssl._unwrap(student).state_dict(), "teacher": teacher.state_dict(),
            "center": loss_fn.center.clone()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        torch.save(_one_step(rank, world), Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _max_abs_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def test_two_ranks_match_one_rank_with_double_batch(tmp_path):
    single = _one_step(0, 1)
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for r in ranks:  # every rank ends with the single-process weights and centre
        d_student = _max_abs_diff(r["student"], single["student"])
        d_teacher = _max_abs_diff(r["teacher"], single["teacher"])
        d_center = (r["center"] - single["center"]).abs().max().item()
        print(f"DDP vs single: max |diff| student {d_student:.2e}, teacher {d_teacher:.2e}, "
              f"centre {d_center:.2e}")
        assert d_student < 2e-6 and d_teacher < 2e-6 and d_center < 1e-6
    # and the step really moved the weights (the comparison is not trivially of two initial states)
    torch.manual_seed(0)
    init, _ = build_student_teacher(_cfg(), BACKBONE)
    assert _max_abs_diff(init.state_dict(), single["student"]) > 1e-3  # lr 0.05·8/256 ≈ 1.6e-3
    assert single["center"].abs().max() > 0


# ---------------------------------------------------------------- launcher
def test_distributed_command_shapes(tmp_path):
    spec = tmp_path / "run.json"
    one = ssl.distributed_command(spec, 4)
    assert one[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--nproc-per-node=4" in one and one[-3:] == ["medssl.ssl", "--config", str(spec)]
    multi = ssl.distributed_command(spec, 4, nodes=2, mpi="srun")
    assert multi[:4] == ["srun", "--nodes=2", "--ntasks-per-node=4", "--kill-on-bad-exit=1"]
    with pytest.raises(ValueError, match="mpi"):
        ssl.distributed_command(spec, 4, nodes=2)


def test_env_from_slurm():
    env = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_NTASKS_PER_NODE": "4(x2)",
           "MASTER_ADDR": "node1", "SLURM_JOB_ID": "1234"}
    ssl._env_from_slurm(env)
    assert (env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"], env["LOCAL_WORLD_SIZE"]) == ("5", "8", "1", "4")
    assert env["MASTER_PORT"] == str(20000 + 1234)
    torchrun = {"RANK": "0", "SLURM_PROCID": "3", "SLURM_NTASKS": "8"}
    ssl._env_from_slurm(torchrun)  # torchrun's variables win
    assert torchrun["RANK"] == "0"


def _write_job(tmp_path: Path, n_images: int = 24) -> dict:
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    root.mkdir()
    names = []
    for i in range(n_images):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / f"{i}.png")
        names.append(f"{i}.png")
    half = n_images // 2
    pd.DataFrame({"image": names[:half], "label": ["a", "b"] * (half // 2)}).to_csv(tmp_path / "labeled.csv",
                                                                                   index=False)
    pd.DataFrame({"image": names[half:]}).to_csv(tmp_path / "unlabeled.csv", index=False)
    return {
        "splits": {"labeled_train": str(tmp_path / "labeled.csv"), "unlabeled_train": str(tmp_path / "unlabeled.csv")},
        "image_root": str(root), "image_size": 16, "channels": 3,
        "kind": "dino", "params": {"epochs": 1, "batch_size": 8, "warmup_epochs": 0, "out_dim": 32, "hidden_dim": 16,
                 "bottleneck_dim": 8, "drop_path_rate": 0.0, "num_workers": 0, "device": "cpu"},
        "augmentation": {"global_size": 16, "local_size": 8, "n_local": 2, "blur_sigma": [0.1, 1.0]},
        "backbone": BACKBONE, "work_dir": str(tmp_path / "work"), "output": str(tmp_path / "out" / "backbone.pt"),
    }


def test_launcher_starts_two_processes_and_only_rank0_writes(tmp_path, monkeypatch):
    spec = _write_job(tmp_path)
    log_path = tmp_path / "job.log"
    with open(log_path, "w") as log_file:
        monkeypatch.setattr(sys, "stderr", log_file)  # the children inherit it, like the rule's log
        out = ssl.launch_pretraining(spec, gpus=2, threads=2)
    text = log_path.read_text()
    assert out == Path(spec["output"]) and out.exists()
    assert "rank 0/2" in text and "rank 1/2" in text and "backend gloo" in text, text[-3000:]
    assert "2 process(es) x 4" in text
    work = Path(spec["work_dir"])
    # rank 0 wrote the files once: the CSV has one row per epoch, the checkpoint holds both ranks' RNG
    assert sorted(p.name for p in work.iterdir()) == ["checkpoint.pt", "health.json", ssl.RUN_SPEC, "train_log.csv"]
    assert len(pd.read_csv(work / "train_log.csv")) == 1
    ckpt = torch.load(work / "checkpoint.pt", weights_only=True)
    assert len(ckpt["rng"]) == 2
    backbone = ssl.load_backbone(BACKBONE, out)
    assert backbone(torch.zeros(1, 3, 16, 16)).shape == (1, 32)
    assert json.loads((work / ssl.RUN_SPEC).read_text())["threads"] == 1


def test_single_gpu_trains_in_process(tmp_path, monkeypatch):
    spec = _write_job(tmp_path, n_images=16)
    monkeypatch.setattr(ssl.launch.subprocess, "run", lambda *a, **k: pytest.fail("must not start a process"))
    out = ssl.launch_pretraining(spec, gpus=1, threads=1)
    assert out.exists() and not (Path(spec["work_dir"]) / ssl.RUN_SPEC).exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_launcher_refuses_cuda_without_cuda(tmp_path):
    spec = _write_job(tmp_path, n_images=8)
    spec["params"]["device"] = "cuda"
    with pytest.raises(RuntimeError, match="no CUDA device"):
        ssl.launch_pretraining(spec, gpus=2)
