"""The execution profiles, the Snakemake 8+ way.

- profiles/default: the workflow profile, loaded by Snakemake by itself from the repository root, holds
  what each rule needs (memory, run time, GPUs).
- profiles/slurm, profiles/local: what a cluster or a machine adds (executor, account, partitions, CPUs).

Snakemake does not merge a key set in both a --profile and the workflow profile (the workflow profile's
value wins), so the two halves must not share a key. tests/test_slurm.py installs profiles/slurm as the
README says and runs `snakemake --profile slurm` on a real single-node cluster.
"""
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "profiles" / "default" / "config.v8+.yaml"
SLURM = REPO / "profiles" / "slurm" / "config.v8+.yaml"
LOCAL = REPO / "profiles" / "local" / "config.v8+.yaml"
TINY = REPO / "tests" / "config" / "tiny.yaml"
FORBIDDEN_IN_SLURM_EXTRA = re.compile(r"--(gres|gpus|mem|partition|time|account|cpus)")
# Rules that declare `gpu=1` in their resources (pretraining, the DL baseline).
GPU_RULES = [m.group(1) for smk in sorted((REPO / "workflow" / "rules").glob("*.smk"))
             for m in re.finditer(r"^rule (\w+):\n(?:(?!^rule ).*\n)*?\s+gpu=1,", smk.read_text(), re.M)]


def load(path):
    return yaml.safe_load(path.read_text())


def flatten(d, prefix=()):
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(flatten(value, prefix + (key,)))
        else:
            out[prefix + (key,)] = value
    return out


@pytest.mark.parametrize("path", [DEFAULT, SLURM, LOCAL], ids=["default", "slurm", "local"])
def test_profile_loads_with_snakemakes_parser(path):
    from snakemake.profiles import ProfileConfigFileParser

    with open(path) as stream:
        parsed = ProfileConfigFileParser().parse(stream)
    assert parsed, path


def test_workflow_profile_sizes_every_heavy_rule():
    assert GPU_RULES, "no rule declares gpu=1"
    res = load(DEFAULT)["set-resources"]
    for rule in [*GPU_RULES, "embed", "fit_classifiers"]:
        assert {"mem_mb", "runtime"} <= set(res[rule]), rule
    assert res["embed"]["gpu"] == 1


def test_profiles_share_no_key():
    default = set(load(DEFAULT))
    for path in (SLURM, LOCAL):
        shared = default & set(load(path))
        assert not shared, f"{path.parent.name} and profiles/default both set {shared}: the workflow profile would win"


def test_slurm_profile_holds_only_cluster_values():
    profile = load(SLURM)
    assert profile["executor"] == "slurm"
    assert profile["retries"] >= 1
    assert profile["configfile"] == "config/paper.yaml"
    assert {"slurm_account", "cpus_per_task"} <= set(profile["default-resources"])
    partitions = load(SLURM.parent / profile["slurm-partition-config"])["partitions"]
    assert any(p.get("max_gpu", 0) > 0 for p in partitions.values()), "no partition for the GPU rules"
    assert any(p.get("max_gpu", 0) == 0 for p in partitions.values()), "no CPU partition"
    # The plugin rejects sbatch flags it manages itself when they come through slurm_extra.
    for path_, value in flatten(profile).items():
        if path_[-1] == "slurm_extra":
            assert not FORBIDDEN_IN_SLURM_EXTRA.search(str(value)), path_


def test_local_profile_counts_gpus_as_a_resource():
    local = load(LOCAL)
    assert "executor" not in local or local["executor"] == "local"
    assert local["resources"]["gpu"] >= 1
    assert local["configfile"] == load(SLURM)["configfile"]


def test_workflow_profile_is_loaded_by_itself_beside_a_user_profile(tmp_path):
    """From the repository root, `--profile profiles/local` plus the workflow profile: both apply."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--profile", "profiles/local", "--configfile",
                           str(TINY), "--directory", str(tmp_path), "--forceall"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "workflow specific profile profiles/default" in out
    mem = load(DEFAULT)["set-resources"]["fit_classifiers"]["mem_mb"]
    job = re.search(r"rule fit_classifiers:\n(?:    .*\n)+", out).group(0)
    assert re.search(rf"resources: .*mem_mb={mem}\b", job), job
