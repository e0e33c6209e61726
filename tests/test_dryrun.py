"""`snakemake -n --profile profiles/slurm` plans the whole paper DAG (config/paper.yaml) without any data."""
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "config" / "paper.yaml"


def dry_run(*args):
    """(per-rule job counts, total, seconds) of a dry run from the repository root."""
    # --forceall: plan every job even if results/ already holds some.
    cmd = [sys.executable, "-m", "snakemake", "-n", "--forceall", "--quiet", "rules", *args]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    elapsed = time.monotonic() - start
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    stats = out.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", stats, re.M)}
    return counts, counts.pop("total"), elapsed


def test_paper_dry_run_through_slurm_profile():
    counts, total, elapsed = dry_run("--profile", "profiles/slurm")
    print(f"\npaper dry run via profiles/slurm: {total} jobs planned in {elapsed:.1f} s: {counts}")

    # The jobs that scale with the paper's design, computed from config/paper.yaml.
    config = yaml.safe_load(PAPER.read_text())
    datasets, methods = config["datasets"], config["methods"]
    n_dino = sum(m["kind"] == "dino" for m in methods.values())
    n_variants = sum(1 + bool(ds.get("min_class_size")) for ds in datasets.values())
    assert counts["pretrain_ssl"] == len(datasets) * n_dino
    assert counts["embed"] == len(datasets) * len(methods)
    assert counts["fit_classifiers"] == n_variants * len(methods)  # every budget, classifier and seed in one job
    # the ImageNet backbone without SSL (kind pretrained): built once, embedded per dataset (counted above)
    assert counts["fetch_pretrained_backbone"] == sum(m["kind"] == "pretrained" for m in methods.values()) == 1
    assert counts["all"] == 1

    # The profile only changes where jobs run, never which: same DAG as a plain dry run.
    plain_counts, plain_total, _ = dry_run("--configfile", "config/paper.yaml")
    assert (counts, total) == (plain_counts, plain_total)
    assert elapsed < 120, f"dry run took {elapsed:.0f} s (goal: < 15 s)"


def embed_threads(*args):
    cmd = [sys.executable, "-m", "snakemake", "-n", "--forceall", "--cores", "8", *args]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300).stdout
    jobs = re.findall(r"^(?:local)?rule embed:\n((?:    .*\n)+)", out, re.M)
    assert len(jobs) == 2, out[-3000:]  # the demo's DINO and random_init
    return [int(m.group(1)) if (m := re.search(r"threads: (\d+)", job)) else 1 for job in jobs]


def test_embedding_threads_come_from_the_config(tmp_path):
    """The demo's embedding jobs take 1 thread each, so its two run side by side on 2 cores; the key
    sets it (default 4) for machines where a job that size uses more."""
    assert embed_threads() == [1, 1]
    overlay = tmp_path / "threads.yaml"
    overlay.write_text("evaluation:\n  embedding_threads: 3\n")
    assert embed_threads("--configfile", "config/config.yaml", str(overlay)) == [3, 3]


def pretrain_threads(cores):
    cmd = [sys.executable, "-m", "snakemake", "-n", "--forceall", "--cores", str(cores),
           "results/ssl/synthetic_marrow/dino/backbone.pt"]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300).stdout
    job = re.search(r"^(?:local)?rule pretrain_ssl:\n((?:    .*\n)+)", out, re.M)
    assert job, out[-3000:]
    return int(m.group(1)) if (m := re.search(r"threads: (\d+)", job.group(1))) else 1


def test_pretraining_takes_half_the_cores_at_most_8():
    """On the demo's 2 cores pretraining trains on one, and the jobs that do not need its weights run on
    the other; on a big machine it stops at 8 (a cluster profile's set-threads decides there)."""
    assert [pretrain_threads(c) for c in (1, 2, 6, 32)] == [1, 1, 3, 8]
