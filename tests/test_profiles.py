"""The execution profiles: well-formed, and the CI profile is profiles/slurm with only cluster values changed.

tests/test_slurm.py runs the workflow through tests/profiles/slurm-ci on a real (single-node) SLURM.
That proves profiles/slurm only as long as the two files agree on everything that is not specific to a
cluster (executor, retries, groups, GPU requests, ...). This test fails as soon as they drift apart.
"""
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SLURM = REPO / "profiles" / "slurm" / "config.v8+.yaml"
CI = REPO / "tests" / "profiles" / "slurm-ci" / "config.v8+.yaml"
LOCAL = REPO / "profiles" / "local" / "config.v8+.yaml"

# Top-level options the CI profile may set differently: the config it runs and how fast it polls.
ALLOWED_TOP = {
    "configfile",
    "jobs",
    "latency-wait",
    "slurm-init-seconds-before-status-checks",
    "seconds-between-status-checks",
}
# Resources (in default-resources / set-resources) that depend on the cluster, not on the workflow.
ALLOWED_RESOURCES = {"slurm_partition", "slurm_account", "runtime", "mem_mb", "cpus_per_task"}  # node sizes
GPU_RULES = ["pretrain_ssl", "train_supervised"]
FORBIDDEN_IN_SLURM_EXTRA = re.compile(r"--(gres|gpus|mem|partition|time|account|cpus)")


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


def allowed(path):
    if len(path) == 1:
        return path[0] in ALLOWED_TOP
    return path[0] in ("default-resources", "set-resources") and path[-1] in ALLOWED_RESOURCES


def test_ci_profile_differs_from_slurm_profile_only_in_cluster_values():
    slurm, ci = flatten(load(SLURM)), flatten(load(CI))
    drift = sorted(
        (".".join(map(str, p)), slurm.get(p, "<absent>"), ci.get(p, "<absent>"))
        for p in set(slurm) | set(ci)
        if slurm.get(p, object()) != ci.get(p, object()) and not allowed(p)
    )
    assert not drift, (
        "tests/profiles/slurm-ci differs from profiles/slurm beyond cluster-specific values "
        "(path, profiles/slurm, slurm-ci):\n" + "\n".join(map(str, drift))
    )


def test_ci_profile_points_at_the_tiny_config():
    ci = load(CI)
    assert (CI.parent / ci["configfile"]).resolve() == REPO / "tests" / "config" / "tiny.yaml"
    assert ci["default-resources"]["slurm_account"] == "ci"  # created by .ci/start_slurm.sh


@pytest.mark.parametrize("path", [SLURM, CI, LOCAL], ids=["slurm", "slurm-ci", "local"])
def test_profile_loads_with_snakemakes_parser(path):
    from snakemake.profiles import ProfileConfigFileParser

    with open(path) as stream:
        parsed = ProfileConfigFileParser().parse(stream)
    assert parsed, path


@pytest.mark.parametrize("path", [SLURM, CI], ids=["slurm", "slurm-ci"])
def test_slurm_profile_resources(path):
    profile = load(path)
    assert profile["executor"] == "slurm"
    assert profile["retries"] >= 1
    defaults = profile["default-resources"]
    for key in ("slurm_account", "slurm_partition", "runtime", "mem_mb", "cpus_per_task"):
        assert key in defaults, f"default-resources.{key} missing"
    for rule in GPU_RULES:
        res = profile["set-resources"][rule]
        assert res.get("gpu", 0) >= 1, f"{rule} must ask for a GPU with the `gpu` resource"
        assert {"slurm_partition", "mem_mb", "runtime"} <= set(res)
    # The plugin rejects sbatch flags it manages itself when they come through slurm_extra.
    for path_, value in flatten(profile).items():
        if path_[-1] == "slurm_extra":
            assert not FORBIDDEN_IN_SLURM_EXTRA.search(str(value)), path_
    # The many small classifier jobs are grouped.
    group = profile["groups"]["fit_classifiers"]
    assert profile["group-components"][group] > 1


def test_slurm_profile_runs_the_paper_config():
    assert load(SLURM)["configfile"] == "config/paper.yaml"


def test_local_profile_counts_gpus_as_a_resource():
    local = load(LOCAL)
    assert "executor" not in local or local["executor"] == "local"
    assert local["resources"]["gpu"] >= 1
    assert load(LOCAL)["configfile"] == load(SLURM)["configfile"]
