"""The SSL rules through Snakemake on the tiny config: CPU fallback is logged, `device: cuda` without
CUDA fails clearly, `gpu=2` starts 2 training processes, and `published` weights feed the embedding."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch
import yaml

from medssl.backbone import build_backbone
from snakemake_runner import REPO, run_snakemake

pytestmark = pytest.mark.slow


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run_snakemake(workdir, workdir / "config.yaml", "--cores", "2", *args, check=check)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    wd = tmp_path_factory.mktemp("ssl_rule")
    config = yaml.safe_load((REPO / "tests" / "config" / "tiny.yaml").read_text())
    dino = config["methods"]["dino"]
    dino["params"]["epochs"] = 1
    config["methods"]["dino_cuda"] = {**dino, "params": {**dino["params"], "device": "cuda"}}
    config["methods"]["dino_cpu"] = {**dino, "params": {**dino["params"], "device": "cpu"}}
    # A "released" checkpoint of the configured backbone in sparsam's layout, as a local file.
    torch.manual_seed(0)
    spec = config["backbone"]
    backbone = build_backbone(spec["name"], **spec["kwargs"])
    state = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    state["projection_head.mlp.0.weight"] = torch.zeros(4, backbone.num_features)
    torch.save(state, wd / "released.pt")
    config["methods"]["pub"] = {"kind": "published", "urls": {"tiny": (wd / "released.pt").as_uri()},
                                "augmentation": {"normalize": "minus_one_one"}}
    # this dataset's DINO pretraining takes a floor on the steps that the method entry does not have
    config["datasets"]["tiny"]["method_params"] = {"dino": {"min_steps": 8}}
    (wd / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return wd


def test_cpu_fallback_is_logged_and_published_weights_feed_the_embedding(workdir):
    snakemake(workdir, "results/ssl/tiny/dino/backbone.pt", "results/embeddings/tiny/pub/test.npz")
    log = (workdir / "results/logs/pretrain_ssl/tiny/dino.log").read_text()
    if not torch.cuda.is_available():
        assert "CUDA not available: training on CPU" in log
    assert "1 process(es)" in log
    # datasets.tiny.method_params.dino: the floor raises the 1 epoch of methods.dino.params (dino_cpu keeps it)
    assert "epochs raised from 1 to reach min_steps 8" in log
    pub_log = (workdir / "results/logs/fetch_published_weights/tiny/pub.log").read_text()
    assert "no checksum configured" in pub_log and "strictly" in pub_log
    assert (workdir / "results/benchmarks/fetch_published_weights/tiny/pub.tsv").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_cuda_fails_clearly(workdir):
    proc = snakemake(workdir, "results/ssl/tiny/dino_cuda/backbone.pt", "--retries", "0", check=False)
    assert proc.returncode != 0
    log = (workdir / "results/logs/pretrain_ssl/tiny/dino_cuda.log").read_text()
    assert "asks for device 'cuda' but no CUDA device is available" in log
    assert not (workdir / "results/ssl/tiny/dino_cuda/backbone.pt").exists()


def test_two_gpus_start_two_processes(workdir):
    snakemake(workdir, "results/ssl/tiny/dino_cpu/backbone.pt", "--resources", "gpu=2",
              "--set-resources", "pretrain_ssl:gpu=2")
    log = (workdir / "results/logs/pretrain_ssl/tiny/dino_cpu.log").read_text()
    assert "1 node(s) x 2 process(es)" in log and "torch.distributed.run" in log
    assert "rank 0/2" in log and "rank 1/2" in log
    assert "2 process(es) x 16" in log
    ckpt = torch.load(workdir / "results/ssl/tiny/dino_cpu/checkpoint.pt", weights_only=True)
    assert len(ckpt["rng"]) == 2
