"""Data-parallel training on the CPU (gloo): for every method kind, 2 ranks x batch B must report the same
loss and take the same steps as 1 rank x 2B; the launcher must start one process per requested GPU with
only rank 0 writing; two torchrun nodes on localhost must train as one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
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
from medssl.backbone import load_backbone
from medssl.ssl import Schedules, get_method, training_step
from medssl.ssl.distributed import unwrap
from medssl.ssl.launch import env_from_slurm
from medssl.ssl.optim import build_optimizer

# No BatchNorm, no drop-path: then the per-rank forward is exactly a slice of the full-batch forward.
BACKBONE = {"name": "vit_tiny_patch16_224", "pretrained": False,
            "kwargs": {"img_size": 16, "patch_size": 4, "depth": 2, "embed_dim": 32, "num_heads": 2,
                       "dynamic_img_size": True}}
# BatchNorm in the backbone as well as in the heads: SyncBatchNorm everywhere under DDP.
RESNET = {"name": "resnet18", "pretrained": False,
          "kwargs": {"layers": [1, 1, 1, 1], "channels": [8, 16, 16, 16], "stem_width": 8}}
B = 4  # per-rank batch
STEPS = 3
KINDS = ("dino", "simclr", "dclw", "vicreg", "simsiam")
SMALL_HEADS = {"proj_hidden_dim": 32, "proj_dim": 16, "lr": 0.05}
PARAMS = {
    # lr from the first step (no warm-up), last layer trained, clipping active, centre in use
    "dino": {"lr": 0.05, "warmup_epochs": 0, "out_dim": 64, "hidden_dim": 32, "bottleneck_dim": 16,
             "freeze_last_layer_epochs": 0, "clip_mode": "norm", "clip_value": 0.05, "drop_path_rate": 0.0},
    "simclr": SMALL_HEADS,
    "dclw": {**SMALL_HEADS, "symmetric": True},
    "vicreg": {**SMALL_HEADS, "proj_dim": 32},
    "simsiam": {**SMALL_HEADS, "predictor": True, "predictor_hidden_dim": 8, "proj_output_bn": True},
}


def _views(kind: str, step: int) -> list[torch.Tensor]:
    """Fixed views of the global batch 2B (the augmentation's random streams are per rank)."""
    g = torch.Generator().manual_seed(100 + step)
    views = [torch.randn(2 * B, 3, 16, 16, generator=g) for _ in range(2)]
    return views + [torch.randn(2 * B, 3, 8, 8, generator=g) for _ in range(3)] if kind == "dino" else views


def _build(kind: str):
    method_cls = get_method(kind)
    cfg = method_cls.Config.from_dict({"epochs": 1, "batch_size": 2 * B, "device": "cpu", "num_workers": 0,
                                       **PARAMS[kind]})
    torch.manual_seed(cfg.seed)
    return method_cls.build(cfg, BACKBONE if kind == "dino" else RESNET, len(_views(kind, 0))), cfg


def _train(kind: str, rank: int, world: int) -> dict:
    """STEPS training steps as the trainer takes them; under DDP on this rank's share of every view."""
    method, cfg = _build(kind)
    if world > 1:
        method.convert_sync_batchnorm(torch.device("cpu"))
    optimizer = build_optimizer(method.model, cfg, torch.device("cpu"), method.fixed_lr_prefixes())
    sched = Schedules.from_config(cfg, iters_per_epoch=STEPS, global_batch=cfg.batch_size)
    model = DistributedDataParallel(method.model) if world > 1 else method.model
    method.train_mode()
    stats = []
    for it in range(STEPS):
        views = [v[rank * B:(rank + 1) * B] for v in _views(kind, it)] if world > 1 else _views(kind, it)
        stats.append(training_step(method, model, optimizer, views, it, sched, cfg))
    return {"stats": stats, "state": {name: unwrap(m).state_dict() for name, m in method.modules().items()}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        torch.save({kind: _train(kind, rank, world) for kind in KINDS}, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _max_rel_diff(a: dict, b: dict) -> float:
    """max over tensors of max |a - b| / max(1, max |b|)."""
    assert a.keys() == b.keys()
    return max(((a[k].float() - b[k].float()).abs().max().item() / max(1.0, b[k].float().abs().max().item())
                for k in a), default=0.0)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> list[dict]:
    """Every kind trained by 2 gloo ranks (one spawn for all of them)."""
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]


@pytest.mark.parametrize("kind", KINDS)
def test_two_ranks_match_one_rank_with_double_batch(kind, two_ranks):
    single = _train(kind, 0, 1)
    ranks = [r[kind] for r in two_ranks]
    for step, expected in enumerate(single["stats"]):  # the trainer logs the mean over ranks
        got = {k: sum(r["stats"][step][k] for r in ranks) / 2 for k in expected}
        print(f"{kind} step {step}: 1 process {expected}, mean of 2 ranks {got}")
        assert got == pytest.approx(expected, rel=1e-4, abs=1e-5)
    # Every rank ends with the single-process weights, buffers and loss state. Float32 rounding (the
    # ranks sum in another order) stays under 5e-6 of a tensor's scale; a loss over each rank's share
    # alone, or BatchNorm without SyncBatchNorm, is off by 0.2 to 5 after the same steps.
    for r in ranks:
        for name, state in single["state"].items():
            diff = _max_rel_diff(r["state"][name], state)
            print(f"{kind} DDP vs single: max |diff| / max(1, scale) {name} {diff:.2e}")
            assert diff < 5e-5
    # and the steps really moved the weights (the comparison is not trivially of two initial states)
    init, _ = _build(kind)
    trained = single["state"]["student" if kind == "dino" else "model"]
    assert max((p - trained[k]).abs().max().item() for k, p in init.model.named_parameters()) > 1e-3
    if kind == "dino":
        assert single["state"]["loss"]["center"].abs().max() > 0


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
    env_from_slurm(env)
    assert (env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"], env["LOCAL_WORLD_SIZE"]) == ("5", "8", "1", "4")
    assert env["MASTER_PORT"] == str(20000 + 1234)
    torchrun = {"RANK": "0", "SLURM_PROCID": "3", "SLURM_NTASKS": "8"}
    env_from_slurm(torchrun)  # torchrun's variables win
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
    backbone = load_backbone(BACKBONE, out)
    assert backbone(torch.zeros(1, 3, 16, 16)).shape == (1, 32)
    assert json.loads((work / ssl.RUN_SPEC).read_text())["threads"] == 1


def test_two_ranks_resume_from_the_previous_checkpoint_when_the_newest_is_damaged(tmp_path, monkeypatch):
    """Rank 0 moves the damaged checkpoint.pt aside and puts checkpoint.prev.pt in its place before
    rank 1 loads it (a rank on another epoch than rank 0 would hang or fail the collectives)."""
    spec = _write_job(tmp_path, n_images=16)
    spec["params"].update(epochs=2, checkpoint_every_epochs=1)
    ssl.launch_pretraining(spec, gpus=1, threads=1)  # same run hash as 2 ranks: the global batch is kept
    work, out = Path(spec["work_dir"]), Path(spec["output"])
    data = (work / "checkpoint.pt").read_bytes()
    (work / "checkpoint.pt").write_bytes(data[:len(data) // 2])
    out.unlink()
    log_path = tmp_path / "job.log"
    with open(log_path, "w") as log_file:
        monkeypatch.setattr(sys, "stderr", log_file)
        ssl.launch_pretraining(spec, gpus=2, threads=2)
    text = log_path.read_text()
    assert "checkpoint.pt is damaged or unreadable" in text and "taking back checkpoint.prev.pt (epoch 1)" in text
    assert "resuming from epoch 1" in text and "rank 1/2" in text, text[-3000:]
    assert out.exists() and len(list(work.glob("checkpoint.corrupt-*.pt"))) == 1
    assert torch.load(work / "checkpoint.pt", weights_only=True)["epoch"] == 2


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


# ---------------------------------------------------------------- two nodes
# Views that the per-rank random streams cannot change (full-image crop, fixed blur on view 1, solarised
# view 2), and one global batch per epoch that holds every image: 1 and 2 processes see the same batches.
FIXED_VIEWS = {"global_size": 16, "global_scale": [1, 1], "ratio": [1, 1], "hflip_p": 0, "jitter_p": 0,
               "grayscale_p": 0, "blur_p": [1, 0, 0], "blur_sigma": [1, 1], "blur_kernel": 0,
               "solarize_p": [0, 1, 0]}


def _simclr_job(job: dict, tmp_path: Path, name: str) -> dict:
    return {**job, "kind": "simclr", "backbone": RESNET, "augmentation": FIXED_VIEWS, "collapse": {"action": "warn"},
            "params": {"epochs": 2, "batch_size": 8, "lr": 0.05, "proj_hidden_dim": 32, "proj_dim": 16,
                       "num_workers": 0, "device": "cpu"},
            "work_dir": str(tmp_path / name), "output": str(tmp_path / name / "backbone.pt"), "threads": 1}


def test_two_torchrun_nodes_on_localhost_train_as_one_process(tmp_path):
    job = _write_job(tmp_path, n_images=8)
    single = ssl.launch_pretraining(_simclr_job(job, tmp_path, "single"), gpus=1, threads=1)
    spec = _simclr_job(job, tmp_path, "nodes")
    Path(spec["work_dir"]).mkdir()
    spec_path = Path(spec["work_dir"]) / ssl.RUN_SPEC
    spec_path.write_text(json.dumps(spec))
    port = _free_port()
    logs = [tmp_path / f"node{n}.log" for n in range(2)]
    procs = []
    for node, log in enumerate(logs):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1",
               f"--node-rank={node}", "--master-addr=127.0.0.1", f"--master-port={port}", "--max-restarts=0",
               "-m", "medssl.ssl", "--config", str(spec_path)]
        with open(log, "w") as out:
            procs.append(subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=out,
                                          stderr=subprocess.STDOUT))
    try:
        codes = [p.wait(timeout=240) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    text = [log.read_text() for log in logs]
    assert codes == [0, 0], "\n".join(t[-3000:] for t in text)
    assert "rank 0/2" in text[0] and "rank 1/2" in text[1] and "backend gloo" in text[1]
    assert "2 process(es) x 4" in text[0]
    # the same weights and the same logged losses as one process with the whole batch
    trained = [torch.load(p, weights_only=True) for p in (single, Path(spec["output"]))]
    assert _max_rel_diff(trained[1], trained[0]) < 5e-5
    losses = [pd.read_csv(Path(p).parent / "train_log.csv")["loss"] for p in (single, spec["output"])]
    assert len(losses[1]) == 2 and np.allclose(losses[1], losses[0], rtol=1e-4)
