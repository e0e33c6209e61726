"""SIGKILL of Snakemake while `embed` or `fit_classifiers` runs: the job dies with it, and of its
outputs each is whole or absent (an embedding pair both or neither). The real job scripts run under a
stand-in `snakemake` process, as in test_bad_inputs; a named pipe that nobody writes holds each job at
a known point, so no timing decides the outcome, and a job that outlived Snakemake would stay there."""
from __future__ import annotations

import json
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
from PIL import Image

from snakemake_runner import REPO
from test_bad_inputs import alive

SCRIPTS = REPO / "workflow" / "scripts"

# Runs job scripts as Snakemake does: a module-level `snakemake` object with input, output, params ...
DRIVER = textwrap.dedent("""
    import json, runpy, sys

    class Names(dict):
        def __getattr__(self, key):
            try:
                return self[key]
            except KeyError as err:
                raise AttributeError(key) from err

    for script, fields in json.loads(open(sys.argv[1]).read()):
        job = Names({k: Names(v) if isinstance(v, dict) and k != "config" else v for k, v in fields.items()})
        runpy.run_path(script, init_globals={"snakemake": job}, run_name="__main__")
""")

BLOCKING = textwrap.dedent("""
    import os
    import numpy as np
    from sklearn.base import BaseEstimator, ClassifierMixin

    class Blocking(ClassifierMixin, BaseEstimator):
        '''Fits at once on many images; on few it waits for a named pipe nobody writes.'''
        def fit(self, X, y):
            if len(X) < 4:
                open(os.environ["BLOCK_FIFO"]).read()
            self.classes_ = np.unique(y)
            return self

        def predict(self, X):
            return np.full(len(X), self.classes_[0])
""")


def run_jobs(tmp_path: Path, jobs: list, ready) -> None:
    """Run the jobs under a stand-in `snakemake`, SIGKILL it once ``ready()``, check the job died too."""
    import psutil

    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    (tmp_path / "driver.py").write_text(DRIVER)
    fake = tmp_path / "bin" / "snakemake"
    fake.parent.mkdir()
    fake.write_text(f"import subprocess, sys\nsubprocess.run(['bash', '-c', "
                    f"'{sys.executable} {tmp_path / 'driver.py'} {tmp_path / 'jobs.json'}'])\n")
    env = {**os.environ, "BLOCK_FIFO": str(tmp_path / "never"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO / "workflow" / "src"), str(tmp_path)])}
    parent = subprocess.Popen([sys.executable, str(fake)], env=env)
    deadline = time.monotonic() + 300
    while not ready():
        assert parent.poll() is None and time.monotonic() < deadline, "the job ended or never got ready"
        time.sleep(0.1)
    job = next(p for p in psutil.Process(parent.pid).children(recursive=True) if "driver.py" in " ".join(p.cmdline()))
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 15
    while alive(job.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    outlived = alive(job.pid)
    if outlived:
        job.kill()  # it would wait on the pipe for ever
    assert not outlived, "the job outlived Snakemake"


@pytest.mark.slow
def test_sigkill_of_snakemake_during_embed_leaves_no_embedding(tmp_path):
    os.mkfifo(tmp_path / "never")
    data = tmp_path / "data"
    rows = []
    for k, cls in enumerate(["a", "b"]):
        for i in range(3):
            (data / cls).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (80 * k, 20 * i, 0)).save(data / cls / f"{i}.png")
            rows.append((f"{cls}/{i}.png", cls))
    os.symlink(tmp_path / "never", data / "b" / "never.png")  # a test image that never arrives
    pd.DataFrame(rows[:2] + rows[3:5], columns=["image", "label"]).to_csv(tmp_path / "labeled_train.csv", index=False)
    pd.DataFrame(rows[2:3] + [("b/never.png", "b")], columns=["image", "label"]).to_csv(tmp_path / "test.csv",
                                                                                        index=False)
    backbone = {"name": "vit_tiny_patch16_224", "pretrained": False,
                "kwargs": {"img_size": 8, "patch_size": 4, "depth": 1, "embed_dim": 12, "num_heads": 1}}
    out = tmp_path / "results"
    log = tmp_path / "embed.log"
    run_jobs(tmp_path, [
        [str(SCRIPTS / "init_random_backbone.py"), {
            "log": [str(tmp_path / "init.log")], "threads": 1, "output": {"backbone": str(tmp_path / "backbone.pt")},
            "params": {"backbone": backbone, "method": {"kind": "random_init", "seed": 0}}}],
        [str(SCRIPTS / "embed.py"), {
            "log": [str(log)], "threads": 1,
            "input": {"labeled_train": str(tmp_path / "labeled_train.csv"), "test": str(tmp_path / "test.csv"),
                      "backbone": str(tmp_path / "backbone.pt")},
            "output": {"labeled_train": str(out / "labeled_train.npz"), "test": str(out / "test.npz")},
            "params": {"dataset": {"image_size": 8, "channels": 3, "classes": ["a", "b"]}, "backbone": backbone,
                       "views": {"kind": "random_init", "augmentation": {}}, "image_root": str(data),
                       "precision": "fp32"}}],
    ], ready=lambda: log.is_file() and "labeled_train: (4, 12) features" in log.read_text())
    # labeled_train was embedded, test was not: neither file is there, and no partial one
    assert not out.exists() or [p.name for p in out.iterdir() if not p.name.startswith(".")] == []


@pytest.mark.slow
def test_sigkill_of_snakemake_during_fit_classifiers_leaves_whole_fits_only(tmp_path):
    from medssl.evaluate.budgets import Embeddings

    os.mkfifo(tmp_path / "never")
    (tmp_path / "blocking_clf.py").write_text(BLOCKING)
    rng = np.random.default_rng(0)
    for split, n in [("labeled_train", 12), ("test", 6)]:
        Embeddings(rng.normal(size=(n, 4)).astype(np.float32), np.array([f"{split}/{i}.png" for i in range(n)]),
                   np.arange(n) % 2, ["a", "b"]).save(tmp_path / f"{split}.npz")
    classifiers = {"lr": {"estimator": "sklearn.linear_model.LogisticRegression"},
                   "blocking": {"estimator": "blocking_clf.Blocking"}}
    fits = tmp_path / "results" / "fits"
    metrics = [str(fits / f"budget_{b}" / c / "seed_0.json") for b in ("all", "1") for c in classifiers]
    run_jobs(tmp_path, [[str(SCRIPTS / "fit_classifiers.py"), {
        "log": [str(tmp_path / "fit.log")], "threads": 1,
        "input": {"labeled_train": str(tmp_path / "labeled_train.npz"), "test": str(tmp_path / "test.npz")},
        "output": {"metrics": metrics, "predictions": [m.replace(".json", ".predictions.csv") for m in metrics],
                   "draws": []},
        "params": {"classifiers": classifiers, "preprocessing": [], "budgets": ["all", "1"], "seeds": [0],
                   "min_class_size": None},
        "wildcards": {"dataset": "ds", "variant": "classes_all", "method": "fits"},  # .../{method}/budget_
        "config": {"evaluation": {"estimator_packages": ["blocking_clf"]}}}]],
        ready=lambda: Path(metrics[1]).is_file())  # budget all done; budget 1 waits in Blocking.fit
    left = sorted(p.relative_to(fits).as_posix() for p in fits.rglob("*") if not p.name.startswith("."))
    assert [p for p in left if p.endswith((".json", ".csv"))] == [
        "budget_all/blocking/seed_0.json", "budget_all/blocking/seed_0.predictions.csv",
        "budget_all/lr/seed_0.json", "budget_all/lr/seed_0.predictions.csv"]
    for path in fits.glob("budget_all/*/seed_0.json"):  # what is there is whole
        record = json.loads(path.read_text())
        assert record["budget"] == "all" and len(pd.read_csv(str(path).replace(".json", ".predictions.csv"))) == 6
