"""A pretraining job: in this process, or one process per GPU (torchrun on one node, srun on several).

``python -m medssl.ssl --config run.json`` is one training process (started by torchrun or srun).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shlex
import subprocess
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from medssl.ssl.collapse import CollapseConfig, CollapseError, failure_message
from medssl.ssl.config import TrainConfig
from medssl.ssl.distributed import rank_world
from medssl.ssl.kinds import get_method
from medssl.ssl.trainer import HEALTH, resolve_device, train

RUN_SPEC = "run.json"


def parse_spec(spec: dict):
    """(method class, its config, augmentation config, collapse config) of a job; bad keys raise here,
    naming the config section, before any data is read or model built."""
    from medssl.augment import MultiCropConfig

    method = get_method(spec.get("kind"))
    try:
        cfg = method.Config.from_dict(spec.get("params") or {})
    except (TypeError, ValueError) as exc:
        raise ValueError(f"methods.<name>.params ({method.kind}): {exc}") from None
    aug = {**method.augmentation_defaults, **(spec.get("augmentation") or {})}
    if spec.get("image_size"):  # unless set, views follow the dataset's size (the embedding stage's)
        for key, value in method.view_defaults(int(spec["image_size"])).items():
            aug.setdefault(key, value)
    try:
        aug_cfg = MultiCropConfig.from_dict(aug)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"methods.<name>.augmentation ({method.kind}): {exc}") from None
    if not method.local_views and aug_cfg.n_local:
        raise ValueError(f"methods.<name>.augmentation.n_local: {method.kind} uses the 2 global views only, "
                         f"got n_local={aug_cfg.n_local}")
    try:
        collapse = CollapseConfig.from_dict(spec.get("collapse"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"methods.<name>.collapse: {exc}") from None
    return method, cfg, aug_cfg, collapse


def run_pretraining(spec: dict, log: logging.Logger | None = None) -> Path:
    """Train from a JSON-able job description, as resolved by the Snakemake rule:

    ``{"kind": method kind, "params": {its config keys}, "augmentation": {MultiCropConfig keys},
    "collapse": {CollapseConfig keys}, "splits": {"labeled_train": csv, "unlabeled_train": csv},
    "image_root", "image_size", "channels", "backbone": {name, pretrained, kwargs}, "work_dir", "output"}``.

    Every rank builds the same pool (the split files are read, not shipped); rank 0 moves the
    backbone to ``output``. health.json is written to ``work_dir``.
    """
    from medssl.augment import MultiCropAugment  # keep `import medssl.ssl` light
    from medssl.data.dataset import ImageDataset
    from medssl.data.splits import read_split, ssl_pool
    import pandas as pd

    log = log or logging.getLogger(__name__)
    method, cfg, aug_cfg, collapse_cfg = parse_spec(spec)
    rank, _ = rank_world()
    paths = spec["splits"]
    splits = {name: read_split(Path(paths[name]), labeled=name != "unlabeled_train")
              for name in ("labeled_train", "unlabeled_train") if paths.get(name)}
    # Datasets without unlabeled images (e.g. bone marrow) pretrain on labeled_train alone.
    splits.setdefault("unlabeled_train", pd.DataFrame({"image": pd.Series([], dtype=str)}))
    pool = ssl_pool(splits)
    if rank == 0:
        log.info("SSL pool: %d images (labeled_train %d + unlabeled_train %d)", len(pool),
                 len(splits["labeled_train"]), len(splits["unlabeled_train"]))
    images = pool["image"].tolist()
    dataset = ImageDataset(images, Path(spec["image_root"]), int(spec["image_size"]),
                           channels=int(spec["channels"]))
    identity = {"pool": hashlib.sha256("\n".join(images).encode()).hexdigest(),
                "image_size": int(spec["image_size"]), "channels": int(spec["channels"])}
    trained = train(method, cfg, spec["backbone"], dataset, MultiCropAugment(aug_cfg), Path(spec["work_dir"]),
                    log, collapse_cfg, identity)
    output = Path(spec["output"]) if spec.get("output") else trained
    if rank == 0 and output != trained:
        output.parent.mkdir(parents=True, exist_ok=True)
        os.replace(trained, output)
    return output


def distributed_command(spec_path: Path, procs_per_node: int, nodes: int = 1, mpi: str | None = None) -> list[str]:
    """The command that starts ``procs_per_node x nodes`` training processes.

    One node: ``python -m torch.distributed.run --standalone`` (torchrun). Several nodes: the
    job's ``mpi`` launcher (``srun``) starts one task per GPU on every node; each task derives
    its rank from SLURM's variables (see :func:`env_from_slurm`).
    """
    entry = [sys.executable, "-m", "medssl.ssl", "--config", str(spec_path)]
    if nodes <= 1 and not mpi:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
                f"--nproc-per-node={procs_per_node}", "--max-restarts=0", "-m", "medssl.ssl",
                "--config", str(spec_path)]
    if not mpi:
        raise ValueError(f"{nodes} nodes need a task launcher: give the rule the resources "
                         f"mpi='srun' and tasks_per_node=<GPUs per node> (see profiles/slurm)")
    return [*shlex.split(mpi), f"--nodes={nodes}", f"--ntasks-per-node={procs_per_node}",
            "--kill-on-bad-exit=1", *entry]


def launch_pretraining(spec: dict, gpus: int = 1, nodes: int = 1, mpi: str | None = None,
                       threads: int | None = None, log: logging.Logger | None = None) -> Path:
    """Run :func:`run_pretraining` in this process (``gpus`` <= 1), else one process per GPU.

    ``gpus`` counts the GPUs of the whole job (Snakemake's ``gpu`` resource, sbatch ``--gpus``),
    spread evenly over ``nodes``. Without CUDA the processes train on the CPU (gloo), which is
    how the distributed path is tested. The child processes' output goes to this process's
    stderr (the rule's log file). Only rank 0 writes files.
    """
    log = log or logging.getLogger(__name__)
    gpus, nodes = max(1, int(gpus or 1)), max(1, int(nodes or 1))
    if gpus % nodes:
        raise ValueError(f"{gpus} GPUs cannot be spread evenly over {nodes} nodes")
    per_node = gpus // nodes
    method, cfg, _, _ = parse_spec(spec)  # config errors surface before any process is started
    if cfg.device == "cuda":
        resolve_device(cfg.device, log)  # fails here, before any process is started, if CUDA is absent
    if per_node * nodes == 1:
        if threads:
            torch.set_num_threads(max(1, int(threads)))
        return run_pretraining(spec, log)

    use_cuda = cfg.device != "cpu" and torch.cuda.is_available()
    if use_cuda and torch.cuda.device_count() < per_node:
        raise RuntimeError(f"{per_node} training processes per node need as many GPUs, but only "
                           f"{torch.cuda.device_count()} are visible (CUDA_VISIBLE_DEVICES="
                           f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})")
    work_dir = Path(spec["work_dir"])
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / HEALTH).unlink(missing_ok=True)  # the children's verdict, read back below
    spec = {**spec, "threads": max(1, int(threads or os.cpu_count() or 1) // per_node)}
    spec_path = work_dir / RUN_SPEC
    tmp = spec_path.with_name(f".{spec_path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(spec, indent=1))
    os.replace(tmp, spec_path)
    cmd = distributed_command(spec_path, per_node, nodes, mpi)
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"])}
    if nodes > 1 or mpi:
        env.setdefault("MASTER_PORT", str(20000 + int(os.environ.get("SLURM_JOB_ID", "0")) % 20000))
    log.info("distributed %s: %d node(s) x %d process(es) on %s (%s), %d CPU thread(s) each: %s",
             cfg.label, nodes, per_node, "CUDA" if use_cuda else "the CPU", "nccl" if use_cuda else "gloo",
             spec["threads"], shlex.join(cmd))
    out = _child_stream()
    proc = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT if out is not None else None)
    if proc.returncode != 0:
        health = work_dir / HEALTH
        if health.exists() and (h := json.loads(health.read_text()))["verdict"] == "collapsed":
            raise CollapseError(failure_message(cfg.label, h["failed"], f"epoch {h['epoch']}"))
        raise RuntimeError(f"distributed {cfg.label} training failed (exit status {proc.returncode}); "
                           f"each rank's error is in the log above")
    output = Path(spec["output"]) if spec.get("output") else work_dir / method.export_file
    if not output.exists():
        raise RuntimeError(f"distributed {cfg.label} training ended without writing {output}")
    return output


def _child_stream():
    """This process's stderr as a file the children can inherit (the rule's log), flushed."""
    for handler in logging.getLogger().handlers + logging.getLogger("medssl").handlers:
        handler.flush()
    try:
        sys.stderr.flush()
        sys.stderr.fileno()
        return sys.stderr
    except (AttributeError, OSError, ValueError):  # e.g. pytest's capture
        return None


def env_from_slurm(env: dict | None = None) -> None:
    """Under ``srun`` (one task per GPU) derive torch.distributed's variables from SLURM's."""
    env = os.environ if env is None else env
    if "RANK" in env or int(env.get("SLURM_NTASKS", "1")) <= 1 or "SLURM_PROCID" not in env:
        return
    env["RANK"] = env["SLURM_PROCID"]
    env["WORLD_SIZE"] = env["SLURM_NTASKS"]
    env["LOCAL_RANK"] = env.get("SLURM_LOCALID", "0")
    per_node = env.get("SLURM_NTASKS_PER_NODE", "").split("(")[0].split(",")[0]
    env["LOCAL_WORLD_SIZE"] = per_node or "1"
    if "MASTER_ADDR" not in env:
        nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST", "")
        hosts = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True,
                               text=True, check=True).stdout.split()
        env["MASTER_ADDR"] = hosts[0]
    env.setdefault("MASTER_PORT", str(20000 + int(env.get("SLURM_JOB_ID", "0")) % 20000))


def main(argv: list[str] | None = None) -> int:
    """``python -m medssl.ssl --config run.json``: one training process (started by torchrun or srun)."""
    parser = argparse.ArgumentParser(prog="python -m medssl.ssl", description=main.__doc__)
    parser.add_argument("--config", required=True, type=Path, help="job description written by the rule")
    args = parser.parse_args(argv)
    spec = json.loads(args.config.read_text())
    env_from_slurm()
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, force=True,
                        format=f"%(asctime)s rank {rank}/{world} %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
    log = logging.getLogger("medssl")
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    device = (spec.get("params") or {}).get("device", TrainConfig.device)
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if world > 1:
        dist.init_process_group("nccl" if use_cuda else "gloo")
        log.info("joined the process group (backend %s, local rank %d, %s); rank 0 writes all files",
                 dist.get_backend(), local_rank, f"cuda:{local_rank}" if use_cuda else "cpu")
    try:
        run_pretraining(spec, log)
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return 0
