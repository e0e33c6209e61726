"""Bad input and interruptions: each case fails early, naming the culprit, with nothing
that looks complete left behind; an interruption is survived. The workflow tests use a 2-class
folder dataset of 8x8 PNGs, so each run costs a few seconds of planning and tiny jobs."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from medssl import checks
from medssl.data import checks as data_checks
from medssl.data import DatasetError
from medssl.data.manifests import check_inside_root
from medssl.data.sources import source_for
from medssl.evaluate.budgets import Embeddings
from medssl.evaluate.classify import run_budget, score
from medssl.runtime import NotRetried, fail_once
from snakemake_runner import REPO, run_snakemake

TINY = REPO / "tests" / "config" / "tiny.yaml"


def write_png(path: Path, value: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)


def tiny_config(**changes) -> dict:
    config = yaml.safe_load(TINY.read_text())
    for key, value in changes.items():
        config[key] = value
    return config


# ------------------------------------------------------------------------------------------------
# 1. test/train overlap, 2. images of shipped splits, 8. paths outside the dataset root
# ------------------------------------------------------------------------------------------------


def shipped(tmp_path: Path, labeled: list[tuple[str, str]], test: list[tuple[str, str]]) -> dict:
    folder = tmp_path / "splits"
    folder.mkdir(exist_ok=True)
    paths = {}
    for name, rows in [("labeled_train", labeled), ("test", test)]:
        paths[name] = folder / f"{name}.csv"
        pd.DataFrame(rows, columns=["image", "label"]).to_csv(paths[name])  # the paper's ",image,label"
    return paths


def folder_dataset(root: Path, per_class: int = 6) -> pd.DataFrame:
    rows = []
    for k, cls in enumerate(["a", "b"]):
        for i in range(per_class):
            write_png(root / cls / f"{i}.png", 40 * k + i)
            rows.append((f"{cls}/{i}.png", cls))
    return pd.DataFrame(rows, columns=["image", "label"])


def test_overlap_of_shipped_splits_is_refused_naming_the_images(tmp_path):
    manifest = folder_dataset(tmp_path / "data")
    rows = list(manifest.itertuples(index=False, name=None))
    paths = shipped(tmp_path, rows[:9], rows[6:])  # 3 images in both
    with pytest.raises(DatasetError) as err:
        data_checks.check_splits(paths, manifest, tmp_path / "data", ["a", "b"])
    message = str(err.value)
    assert "3 of the 6 test images are also in" in message and "'b/0.png'" in message and "test.csv" in message


def test_image_of_a_shipped_split_outside_the_manifest_is_verified(tmp_path):
    manifest = folder_dataset(tmp_path / "data")
    rows = list(manifest.itertuples(index=False, name=None))
    truncated = tmp_path / "data" / "b" / "extra.png"
    write_png(truncated)
    truncated.write_bytes(truncated.read_bytes()[:30])
    paths = shipped(tmp_path, rows[:4] + rows[6:10], rows[4:6] + [("b/extra.png", "b")])
    with pytest.raises(DatasetError, match=r"b/extra.png \(cannot decode"):
        data_checks.check_splits(paths, manifest, tmp_path / "data", ["a", "b"])


def test_paths_outside_the_dataset_root_are_refused_naming_the_row(tmp_path):
    images = ["a/0.png", "../../etc/passwd", "/etc/passwd", "a/../a/1.png"]
    with pytest.raises(DatasetError) as err:
        check_inside_root(images, tmp_path, "manifest.csv")
    assert "2 image path(s) outside the dataset root" in str(err.value)
    assert "line 3: '../../etc/passwd'" in str(err.value) and "line 4: '/etc/passwd'" in str(err.value)
    # a folder dataset's unlabeled_root may lie beside the root (index_dataset writes ../ paths)
    check_inside_root(["../unlabeled/x.png"], tmp_path / "root", "m", allowed=[tmp_path / "unlabeled"])


def test_class_missing_from_a_split_is_warned_and_not_scored(tmp_path):
    manifest = folder_dataset(tmp_path / "data")
    rows = list(manifest.itertuples(index=False, name=None))
    paths = shipped(tmp_path, rows[:4] + rows[6:10], rows[4:6])  # no test image of class b
    with pytest.warns(UserWarning, match=r"\['b'\] have no test image"):
        summary = data_checks.check_splits(paths, manifest, tmp_path / "data", ["a", "b"])
    assert summary["no_test_images"] == ["b"]
    paths = shipped(tmp_path, rows[:4], rows[4:6] + rows[6:])  # class b only in test
    with pytest.warns(UserWarning, match=r"\['b'\] are in the test split but have no labeled training"):
        data_checks.check_splits(paths, manifest, tmp_path / "data", ["a", "b"])


def test_metrics_leave_out_a_class_without_test_images():
    metrics = score(np.array([0, 0, 1, 1]), np.array([0, 0, 1, 2]), 3)
    assert metrics["per_class_recall"] == [1.0, 0.5, None]  # None, not a fake 0
    assert metrics["balanced_accuracy"] == pytest.approx(0.75)
    rng = np.random.default_rng(0)
    train = Embeddings(rng.normal(size=(12, 4)).astype(np.float32), np.array([f"t{i}" for i in range(12)]),
                       np.repeat([0, 1, 2], 4), ["a", "b", "c"])
    test = Embeddings(rng.normal(size=(4, 4)).astype(np.float32), np.array([f"s{i}" for i in range(4)]),
                      np.array([0, 0, 1, 1]), ["a", "b", "c"])
    spec = {"lr": {"estimator": "sklearn.linear_model.LogisticRegression"}}
    _, _, record, _ = next(run_budget(train, test, "all", [0], spec, []))
    assert record["classes_without_test_images"] == ["c"] and record["per_class_recall"][2] is None
    from medssl.report.figures import mean_confusion, per_class_accuracy, plot_confusion_matrix

    mean, _ = mean_confusion([record])
    assert np.isnan(mean[2]).all() and not np.isnan(mean[:2]).any()  # no 0.00 +- 0.00 row
    assert np.isnan(per_class_accuracy([record], ["a", "b", "c"])[2])
    plot_confusion_matrix([record])


def test_truncated_and_zero_byte_images_of_a_folder_dataset_are_named(tmp_path):
    from medssl.data import check_images, index_folder

    folder_dataset(tmp_path, per_class=2)
    (tmp_path / "a" / "0.png").write_bytes(b"")
    (tmp_path / "b" / "1.png").write_bytes((tmp_path / "b" / "1.png").read_bytes()[:30])
    with pytest.raises(DatasetError, match=r"^2 bad image file\(s\).*a/0.png \(cannot decode.*b/1.png \(cannot decode"):
        check_images(index_folder(tmp_path, ["a", "b"]), tmp_path, ["a", "b"])


def test_manifest_missing_files_and_duplicate_rows_are_named(tmp_path):
    from medssl.data import check_images, read_manifest

    folder_dataset(tmp_path, per_class=1)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("image,label\na/0.png,a\nb/0.png,b\na/0.png,a\n")
    with pytest.raises(DatasetError, match=r"manifest.csv: duplicate image entries.*'a/0.png'"):
        read_manifest(manifest)
    manifest.write_text("image,label\na/0.png,a\nb/9.png,b\n")
    with pytest.raises(DatasetError, match=r"1 bad image file\(s\).*b/9.png \(missing\)"):
        check_images(read_manifest(manifest), tmp_path, ["a", "b"])


def test_non_finite_embeddings_are_refused_naming_the_file():
    features = np.ones((3, 2), np.float32)
    features[1, 0] = np.nan
    with pytest.raises(DatasetError, match=r"test.npz: 1 of 3 embedding\(s\) contain NaN.*'img1'"):
        data_checks.check_finite(features, ["img0", "img1", "img2"], "test.npz")


def test_fingerprint_changes_when_a_dataset_file_changes(tmp_path):
    folder_dataset(tmp_path / "data", per_class=2)
    source = source_for({"source": {"kind": "folder", "root": str(tmp_path / "data")}, "classes": ["a", "b"]}, "ds")
    before = data_checks.dataset_fingerprint(source.files())
    write_png(tmp_path / "data" / "a" / "new.png")
    assert data_checks.dataset_fingerprint(source.files()) != before


# ------------------------------------------------------------------------------------------------
# 7. plan-time config checks
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mutate, needle", [
    (lambda c: c["evaluation"]["classifiers"]["svm"].update(estimator="sklearn.svm.SVQ"),
     "evaluation.classifiers.svm.estimator: 'sklearn.svm.SVQ' cannot be imported"),
    (lambda c: c["evaluation"]["classifiers"]["logreg"]["params"].update(max_iters=5),
     "evaluation.classifiers.logreg.params: sklearn.linear_model.LogisticRegression takes no parameter(s) "
     "['max_iters']"),
    (lambda c: c["backbone"].update(name="vit_tinny_patch16_224"), "backbone.name: 'vit_tinny_patch16_224' is not"),
])
def test_config_naming_something_that_does_not_exist_fails_at_plan_time(mutate, needle):
    config = tiny_config()
    assert checks.config_errors(config) == []
    mutate(config)
    assert any(needle in e for e in checks.config_errors(config)), checks.config_errors(config)


@pytest.mark.parametrize("kind", ["dino", "simclr", "dclw", "simsiam", "vicreg"])
@pytest.mark.parametrize("section, typo", [("params", "warmup_epoch"), ("augmentation", "n_locals"),
                                          ("collapse", "min_rank")])
def test_method_key_typos_fail_at_plan_time_naming_the_key(kind, section, typo):
    """Every trained kind's params / augmentation / collapse keys are parsed by the trainer's own
    config classes while Snakemake plans (medssl.checks.method_errors)."""
    config = tiny_config()
    config["methods"]["m"] = {"kind": kind, section: {typo: 1}}
    errors = checks.config_errors(config)
    assert any(f"methods.m.{section}" in e and typo in e for e in errors), errors


@pytest.mark.parametrize("typo, needle", [
    ({"epochs": 1, "warmup_epochs": 5}, "methods.dino.params (dino): DinoConfig.warmup_epochs=5"),
])
def test_invalid_dino_values_fail_at_plan_time(typo, needle):
    config = tiny_config()
    config["methods"]["dino"]["params"].update(typo)
    assert any(needle in e for e in checks.config_errors(config)), checks.config_errors(config)


@pytest.mark.slow
def test_config_errors_stop_planning_naming_the_key(tmp_path):
    config = tiny_config()
    config["evaluation"]["classifiers"]["logreg"]["params"]["max_iters"] = 5
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    proc = run(tmp_path, "-n")
    assert proc.returncode != 0 and "evaluation.classifiers.logreg.params" in proc.stdout + proc.stderr
    config = tiny_config()
    config["evaluation"]["health"] = {"budgets": [7]}  # not an evaluated budget
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    proc = run(tmp_path, "-n")
    assert proc.returncode != 0 and "evaluation.health.budgets: ['7'] not in" in proc.stdout + proc.stderr


# ------------------------------------------------------------------------------------------------
# 6. retries only where a retry can help; 3. a job dies with Snakemake
# ------------------------------------------------------------------------------------------------


def test_a_deterministic_error_is_not_retried_but_a_crash_is(tmp_path):
    log = tmp_path / "job.log"
    with pytest.raises(DatasetError):
        with fail_once(log, attempt=1):
            raise DatasetError("x.png: cannot decode")
    ran = []
    with pytest.raises(NotRetried, match="x.png: cannot decode"):
        with fail_once(log, attempt=2):
            ran.append(True)
    assert not ran
    with pytest.raises(RuntimeError):  # e.g. a lost GPU: the next attempt runs
        with fail_once(log, attempt=1):
            raise RuntimeError("CUDA error")
    with fail_once(log, attempt=2):
        ran.append(True)
    assert ran == [True]

    class Collapsed(RuntimeError):
        pass

    with pytest.raises(Collapsed):  # a type the job declares deterministic
        with fail_once(log, attempt=1, also=(Collapsed,)):
            raise Collapsed("collapsed")
    with pytest.raises(NotRetried, match="Collapsed: collapsed"):
        with fail_once(log, attempt=3, also=(Collapsed,)):
            pass


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_job_and_its_children_die_when_snakemake_is_killed(tmp_path):
    """A stand-in `snakemake` process runs a job through bash (as Snakemake does); the job starts a
    child (as torchrun does). SIGKILL of `snakemake` ends both within seconds."""
    job = tmp_path / "job.py"
    job.write_text(textwrap.dedent(f"""
        import subprocess, sys, time
        sys.path.insert(0, {str(REPO / 'workflow' / 'src')!r})
        from medssl.runtime import die_with_snakemake
        die_with_snakemake(poll_seconds=0.2)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        open({str(tmp_path / 'pids')!r}, "w").write(f"{{__import__('os').getpid()}} {{child.pid}}")
        time.sleep(120)
    """))
    fake = tmp_path / "bin" / "snakemake"
    fake.parent.mkdir()
    fake.write_text(f"import subprocess, sys\nsubprocess.run(['bash', '-c', 'set -e; {sys.executable} {job}'])\n")
    parent = subprocess.Popen([sys.executable, str(fake)])
    for _ in range(200):
        if (tmp_path / "pids").exists() and (tmp_path / "pids").read_text():
            break
        time.sleep(0.1)
    pids = [int(p) for p in (tmp_path / "pids").read_text().split()]
    assert all(alive(p) for p in pids)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in pids)


# ------------------------------------------------------------------------------------------------
# Through Snakemake: the first job that reads the data fails, once, before any model is built
# ------------------------------------------------------------------------------------------------


def folder_workdir(tmp_path: Path, source: dict | None = None) -> Path:
    """A working directory with a 2-class folder dataset and the tiny methods."""
    config = tiny_config(datasets={"ds": {
        "source": source or {"kind": "folder", "root": str(tmp_path / "data")},
        "image_size": 8, "classes": ["a", "b"], "split": {"test_fraction": 0.5, "seed": 0}}})
    config["backbone"]["kwargs"].update(img_size=8, patch_size=4)
    config["methods"]["dino"]["augmentation"].update(global_size=8, local_size=4)
    config["evaluation"].update(budgets=[1], seeds=[0])
    config["baselines"]["supervised"].update(budgets=[1])
    config["baselines"]["linear_layer"].update(budgets=[1])
    config["figures"]["confusion"]["budget"] = 1
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def run(workdir: Path, *targets: str, check: bool = False) -> subprocess.CompletedProcess:
    return run_snakemake(workdir, workdir / "config.yaml", "--cores", "1", *targets, check=check, timeout=300)


@pytest.mark.slow
def test_bad_shipped_splits_fail_in_the_first_job_before_pretraining(tmp_path):
    manifest = folder_dataset(tmp_path / "data")
    workdir = folder_workdir(tmp_path)
    rows = list(manifest.itertuples(index=False, name=None))
    (workdir / "splits" / "ds").mkdir(parents=True)
    for name, part in [("labeled_train", rows[:9]), ("test", rows[6:])]:
        pd.DataFrame(part, columns=["image", "label"]).to_csv(workdir / "splits" / "ds" / f"{name}.csv")
    backbone = "results/ssl/ds/dino/backbone.pt"
    proc = run(workdir, backbone)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Error in rule check_splits" in out
    assert "3 of the 6 test images are also in" in (workdir / "results/logs/check_splits/ds.log").read_text()
    assert out.count("Error in rule") == 1 and not (workdir / "results/logs/pretrain_ssl").exists()

    # disjoint splits, but a truncated image: the indexing job names it; nothing trains
    pd.DataFrame(rows[:6], columns=["image", "label"]).to_csv(workdir / "splits" / "ds" / "labeled_train.csv")
    bad = tmp_path / "data" / "b" / "5.png"
    bad.write_bytes(bad.read_bytes()[:30])
    proc = run(workdir, backbone)
    assert proc.returncode != 0 and "Error in rule index_dataset" in proc.stdout + proc.stderr
    assert "b/5.png (cannot decode" in (workdir / "results/logs/index_dataset/ds.log").read_text()
    assert not (workdir / "results/logs/pretrain_ssl").exists()


@pytest.mark.slow
def test_no_images_at_all_fails_once_in_the_indexing_job(tmp_path):
    (tmp_path / "data").mkdir()
    pd.DataFrame({"image": ["a/0.png", "b/0.png", "../../etc/passwd"], "label": ["a", "b", "a"]}).to_csv(
        tmp_path / "data" / "manifest.csv", index=False)
    workdir = folder_workdir(tmp_path, {"kind": "manifest", "root": str(tmp_path / "data"),
                                        "manifest": str(tmp_path / "data" / "manifest.csv")})
    proc = run(workdir, "results/ssl/ds/dino/backbone.pt")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and out.count("Error in rule") == 1 and "Error in rule index_dataset" in out
    assert "line 4: '../../etc/passwd'" in (workdir / "results/logs/index_dataset/ds.log").read_text()
    # without the bad row: every image is missing, named in the same job
    pd.DataFrame({"image": ["a/0.png", "b/0.png"], "label": ["a", "b"]}).to_csv(
        tmp_path / "data" / "manifest.csv", index=False)
    proc = run(workdir, "results/ssl/ds/dino/backbone.pt")
    assert proc.returncode != 0 and "Error in rule index_dataset" in proc.stdout + proc.stderr
    assert "2 bad image file(s)" in (workdir / "results/logs/index_dataset/ds.log").read_text()


@pytest.mark.slow
def test_editing_the_dataset_after_a_run_reruns_what_depends_on_it(tmp_path):
    folder_dataset(tmp_path / "data")
    workdir = folder_workdir(tmp_path)
    target = "results/data/ds/split_check.json"
    run(workdir, target, check=True)
    proc = run(workdir, target, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr
    write_png(tmp_path / "data" / "a" / "6.png", 99)  # a new image
    out = run(workdir, target, "-n").stdout
    assert "index_dataset" in out and "check_splits" in out


@pytest.mark.slow
def test_data_error_in_the_dl_baseline_is_not_retried(tmp_path):
    """min_class_size above every class: the baseline's first attempt fails, its retry at once."""
    folder_dataset(tmp_path / "data")
    workdir = folder_workdir(tmp_path)
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["datasets"]["ds"]["min_class_size"] = 100
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    proc = run(workdir, "results/fits/ds/classes_min100/supervised/budget_1/finetune/seed_0.json")
    assert proc.returncode != 0
    log = (workdir / "results/logs/train_supervised/ds/classes_min100/supervised/budget_1/seed_0.log").read_text()
    assert "not retried (attempt 2)" in log and "min_class_size=100" in log


# ------------------------------------------------------------------------------------------------
# 3. SIGKILL of the trainer and of Snakemake itself, on real processes, mid-pretraining
# ------------------------------------------------------------------------------------------------

KILL_EPOCHS = 8
BACKBONE = "results/ssl/tiny/dino/backbone.pt"
CHECKPOINT = "results/ssl/tiny/dino/checkpoint.pt"


def kill_workdir(tmp_path: Path) -> Path:
    config = tiny_config()
    config["datasets"]["tiny"]["source"].update(
        class_counts={"segmented_neutrophil": 12, "lymphocyte": 10, "myeloblast": 8, "basophil": 8}, n_unlabeled=0)
    config["methods"]["dino"]["params"].update(epochs=KILL_EPOCHS, batch_size=8, checkpoint_every_epochs=1)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def start(workdir: Path, *args: str) -> subprocess.Popen:
    from snakemake_runner import SNAKEMAKE

    return subprocess.Popen([*SNAKEMAKE, "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"),
                             "--cores", "2", BACKBONE, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "PYTHONHASHSEED": "0"})


def trainer_once_checkpointed(workdir: Path, snakemake: subprocess.Popen) -> int:
    """The pid of the training process (the rule's Python script), once it has written a checkpoint."""
    import psutil

    deadline = time.monotonic() + 600
    while not (workdir / CHECKPOINT).exists():
        assert snakemake.poll() is None, snakemake.stdout.read()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    trainers = [p for p in psutil.Process(snakemake.pid).children(recursive=True)
                if p.name().startswith("python") and any("pretrain_ssl" in a for a in p.cmdline())]
    assert len(trainers) == 1, trainers
    return trainers[0].pid


def finished_log(workdir: Path) -> str:
    assert (workdir / BACKBONE).exists()
    rows = pd.read_csv(workdir / "results/ssl/tiny/dino/train_log.csv")
    assert list(rows["epoch"]) == list(range(KILL_EPOCHS))
    return (workdir / "results/logs/pretrain_ssl/tiny/dino.log").read_text()


@pytest.mark.slow
def test_sigkill_of_the_trainer_or_of_snakemake_mid_pretraining_loses_nothing(tmp_path):
    import torch

    # 1. SIGKILL of the training process: Snakemake retries the job, the retry resumes
    workdir = kill_workdir(tmp_path)
    snakemake = start(workdir)
    os.kill(trainer_once_checkpointed(workdir, snakemake), signal.SIGKILL)
    out = snakemake.communicate(timeout=600)[0]
    assert snakemake.returncode == 0, out[-5000:]
    assert "Trying to restart job" in out
    assert "resuming from epoch" in finished_log(workdir)
    first = torch.load(workdir / BACKBONE, weights_only=True)

    # 2. SIGKILL of Snakemake itself (same data, a fresh training): the trainer dies with it
    (workdir / CHECKPOINT).unlink()
    snakemake = start(workdir, "--forcerun", "pretrain_ssl")
    trainer = trainer_once_checkpointed(workdir, snakemake)
    os.kill(trainer, signal.SIGSTOP)  # hold it mid-training (a quiet machine runs 8 epochs in a second)
    os.kill(snakemake.pid, signal.SIGKILL)
    os.kill(trainer, signal.SIGCONT)
    snakemake.communicate(timeout=60)
    deadline = time.monotonic() + 15
    while alive(trainer) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(trainer), "the trainer outlived Snakemake"
    assert not (workdir / BACKBONE).exists()

    # what the README says to do after a hard kill: unlock, then rerun the incomplete job
    run_snakemake(workdir, workdir / "config.yaml", "--unlock")
    rerun = start(workdir, "--rerun-incomplete")
    out = rerun.communicate(timeout=600)[0]
    assert rerun.returncode == 0, out[-5000:]
    assert "resuming from epoch" in finished_log(workdir)
    # interrupted at different points, both runs end with the same weights
    second = torch.load(workdir / BACKBONE, weights_only=True)
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
