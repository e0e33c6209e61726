"""benchmarks/dino_step.py and benchmarks/ssl_step.py time the jobs of the shipped configs: their presets are
config files read as the trainer reads them (benchmarks/shipped.py), and their plain reference loops compute
the same losses as medssl's. No training step is run."""
import argparse
import sys
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import dino_step  # noqa: E402
import ssl_step  # noqa: E402

from medssl.augment import MultiCropAugment  # noqa: E402
from medssl.ssl import parse_spec  # noqa: E402
from medssl.ssl.dino import DINOLoss, koleo_loss  # noqa: E402
from medssl.ssl.schedules import Schedules  # noqa: E402


def load(path):
    return yaml.safe_load((REPO / path).read_text())


def test_the_demo_preset_is_the_demo_config_and_follows_an_edit_of_it(tmp_path):
    args, job = dino_step.parse_args(["--preset", "demo"])
    _, cfg, aug, _ = parse_spec(job)
    config = load("config/config.yaml")
    ds = config["datasets"]["synthetic_marrow"]
    params = {**config["methods"]["dino"]["params"], **ds["method_params"]["dino"]}
    for key in ("batch_size", "out_dim", "hidden_dim", "bottleneck_dim", "head_layers", "centering",
                "koleo_weight", "epochs", "warmup_epochs", "clip_mode"):
        assert getattr(cfg, key) == params[key], key
    assert job["backbone"] == config["backbone"]
    # the views: n_local from the method, the sizes from the dataset's image_size (DINO.view_defaults)
    assert (aug.global_size, aug.local_size, aug.n_local) == (
        ds["image_size"], ds["image_size"] // 2, config["methods"]["dino"]["augmentation"]["n_local"])

    config["methods"]["dino"]["params"]["out_dim"] = 128
    config["backbone"]["kwargs"]["depth"] = 1
    ds["image_size"] = 24
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    _, cfg, aug, _ = parse_spec(dino_step.build_job(args, root=tmp_path))
    assert cfg.out_dim == 128 and (aug.global_size, aug.local_size) == (24, 12)
    assert dino_step.build_job(args, root=tmp_path)["backbone"]["kwargs"]["depth"] == 1


def test_shape_flags_replace_only_their_values():
    _, job = dino_step.parse_args(["--preset", "demo", "--batch", "8", "--n-local", "4", "--out-dim", "64",
                                   "--kwargs", '{"img_size": 32, "depth": 2}'])
    _, cfg, aug, _ = parse_spec(job)
    assert (cfg.batch_size, cfg.out_dim, aug.n_local, cfg.centering) == (8, 64, 4, "sinkhorn")
    assert job["backbone"]["kwargs"] == {"img_size": 32, "depth": 2}
    _, job = dino_step.parse_args(["--backbone", "resnet18", "--image-size", "64"])
    _, cfg, aug, _ = parse_spec(job)
    assert (cfg.out_dim, aug.global_size, aug.local_size) == (65536, 64, 32)  # DINO's defaults
    with pytest.raises(SystemExit):
        dino_step.parse_args(["--configfile", "config/smalldatassl.yaml", "--method", "simclr"])


@pytest.mark.parametrize("method", ssl_step.METHODS)
def test_ssl_step_presets_are_the_shipped_recipes(method):
    _, cfg, aug, _ = parse_spec(ssl_step.preset_job("small", method))
    recipe = load(f"config/presets/small_data_{method}.yaml")["methods"][method]["params"]
    demo = load("config/config.yaml")
    if method == "dino":  # the demo's own DINO, with its dataset's method_params
        recipe = {**recipe, **demo["datasets"]["synthetic_marrow"]["method_params"]["dino"]}
    for key, value in recipe.items():
        assert getattr(cfg, key) == pytest.approx(value), key
    assert aug.global_size == demo["datasets"]["synthetic_marrow"]["image_size"]

    job = ssl_step.preset_job("paper", method)
    _, cfg, aug, _ = parse_spec(job)
    paper = load("config/paper.yaml" if method == "dino" else "config/smalldatassl.yaml")
    first = next(iter(paper["datasets"].values()))
    assert job["backbone"] == paper["backbone"] and job["image_size"] == first["image_size"]
    for key, value in paper["methods"][method]["params"].items():
        assert getattr(cfg, key) == pytest.approx(value), key
    assert aug.n_local == (5 if method == "dino" else 0)


def test_the_timed_steps_come_after_every_warm_up():
    _, cfg, _, _ = parse_spec(ssl_step.preset_job("paper", "dino"))  # teacher temperature warm-up: 10 epochs
    timed, start = ssl_step.timed_window(cfg, 4)
    assert timed.epochs == cfg.epochs and start == 40
    sched = Schedules.from_config(timed, 4, timed.batch_size)
    assert sched.method["teacher_temp"][start] == cfg.teacher_temp and start >= sched.method["freeze_last_layer_iters"]
    _, cfg, _, _ = parse_spec({"kind": "dino", "params": {"epochs": 2, "warmup_epochs": 2}})
    timed, start = ssl_step.timed_window(cfg, 4)
    assert (timed.epochs, start) == (3, 8)  # raised: the config's epochs end with the warm-up


def test_the_reference_views_are_the_configs():
    _, _, aug, _ = parse_spec(ssl_step.preset_job("small", "dino"))
    from PIL import Image
    images = [Image.new("RGB", (32, 32), (i * 60, 90, 30)) for i in range(3)]
    views = ssl_step.reference_views(MultiCropAugment(aug))(images)
    assert [tuple(v.shape) for v in views] == [(3, 3, 32, 32)] * 2 + [(3, 3, 16, 16)] * aug.n_local


@pytest.mark.parametrize("method", ["simclr", "dclw", "simsiam", "vicreg"])
def test_the_plain_two_view_losses_are_medssls(method):
    method_cls, cfg, _, _ = parse_spec(ssl_step.preset_job("small", method))
    torch.manual_seed(0)
    z1, z2 = torch.randn(6, 8), torch.randn(6, 8)
    if method in ("simclr", "dclw"):
        z1, z2 = torch.nn.functional.normalize(z1, dim=-1), torch.nn.functional.normalize(z2, dim=-1)
        theirs = method_cls.criterion_for(cfg)(z1, z2)
        ours = ssl_step.two_view_loss(method, cfg)(z1, z2)
    elif method == "simsiam":
        p1, p2 = torch.randn(6, 8), torch.randn(6, 8)
        from medssl.ssl.simsiam import SimSiamLoss
        theirs = SimSiamLoss()(p1, z1, p2, z2)
        ours = ssl_step.two_view_loss(method, cfg)((z1, p1), (z2, p2))
    else:
        from medssl.ssl.vicreg import VICRegLoss
        theirs = VICRegLoss(cfg.sim_coeff, cfg.std_coeff, cfg.cov_coeff)(z1, z2)
        ours = ssl_step.two_view_loss(method, cfg)(z1, z2)
    assert float(ours) == pytest.approx(float(theirs), rel=1e-5)


@pytest.mark.parametrize("centering", ["ema", "sinkhorn"])
def test_the_plain_dino_loss_is_medssls(centering):
    _, cfg, _, _ = parse_spec({"kind": "dino", "params": {"out_dim": 16, "centering": centering}})
    torch.manual_seed(0)
    student, teacher = torch.randn(4 * 3, 16), torch.nn.functional.normalize(torch.randn(2 * 3, 16), dim=-1)
    theirs = DINOLoss(16, 4, cfg.student_temp, cfg.center_momentum, centering, cfg.sinkhorn_iterations)
    plain = ssl_step.DINOLoss(cfg, 4, torch.device("cpu"))
    for _ in range(2):  # the second call sees the updated centre
        assert float(plain(student, teacher, 0.04)) == pytest.approx(float(theirs(student, teacher, 0.04)), rel=1e-4)
    features = torch.randn(5, 8)
    assert float(ssl_step.koleo(features)) == pytest.approx(float(koleo_loss(features)), rel=1e-5)


def test_ssl_step_passes_the_timing_arguments_to_its_children():
    args = argparse.Namespace(repeat=2, warmup=0, threads=1, device=None)
    cmd = ssl_step.child_command({"kind": "dino"}, "ours", args)
    assert cmd[1].endswith("ssl_step.py") and "--threads=1" in cmd and not any(c.startswith("--device") for c in cmd)
