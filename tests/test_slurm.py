"""The SLURM profile on a real (single-node) SLURM cluster.

Start one with `bash .ci/start_slurm.sh` (as root; FAKE_GPU=1 so that the GPU rule is scheduled,
WITH_DBD=1, the default, so that `sacct` works, NODE_MEM_MB=262144 so that the memory profiles/default
asks for fits the node). Every run is the README's command, `snakemake --profile slurm` from the
repository root, with profiles/slurm installed as the README says (copied to the user's Snakemake
config folder, here a scratch $XDG_CONFIG_HOME, and its "YOUR CLUSTER" values set for the test
cluster); it runs in a scratch working directory (never the repository's results/ or splits/) and is
wrapped in a timeout.

- test_retry_*: a toy workflow whose job is killed on its first attempt completes thanks to `retries`.
- the tiny workflow (tests/config/tiny.yaml) is started, SIGKILLed after its first jobs completed,
  and resumed with --rerun-incomplete; the tests then check that the finished work was not redone,
  that sacct lists the jobs COMPLETED, that the table and figures exist, and that pretrain_ssl
  was allocated the (fake) GPU and said in its log that it trains on the CPU.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / "workflow" / "Snakefile"
RETRY = REPO / "tests" / "workflows" / "retry.smk"
TINY = REPO / "tests" / "config" / "slurm.yaml"  # tiny.yaml cut to the cluster-relevant jobs
SUBMITTED = re.compile(r"Job (\S+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")


def _cluster_problem():
    for exe in ("sbatch", "sacct", "scontrol", "squeue", "scancel"):
        if shutil.which(exe) is None:
            return f"`{exe}` not found: no SLURM here (start one with `bash .ci/start_slurm.sh`)"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return "`scontrol ping` timed out: slurmctld not reachable"
    if ping.returncode != 0 or "UP" not in ping.stdout:
        return f"`scontrol ping` failed: slurmctld not running ({(ping.stdout + ping.stderr).strip()})"
    acct = subprocess.run(["sacct", "-n", "-X", "-j", "1"], capture_output=True, text=True, timeout=30)
    if acct.returncode != 0:
        return ("`sacct` fails: no accounting (start the cluster with WITH_DBD=1): "
                + acct.stderr.strip()[:200])
    return None


def install_profile(config_home: Path) -> dict:
    """profiles/slurm installed as the README says, with the test cluster's values in its "YOUR
    CLUSTER" block; returns the environment under which `snakemake --profile slurm` finds it."""
    target = config_home / "snakemake" / "slurm"
    if not target.exists():
        shutil.copytree(REPO / "profiles" / "slurm", target)
        config = target / "config.v8+.yaml"
        text = config.read_text()
        for old, new in [('slurm_account: "your_account"', 'slurm_account: "ci"'),  # .ci/start_slurm.sh
                         ("min(threads, 32)", "min(threads, 2)"),                 # a 2-CPU node
                         ("slurm-init-seconds-before-status-checks: 40", "slurm-init-seconds-before-status-checks: 2"),
                         ("latency-wait: 60", "latency-wait: 5"), ("jobs: 50", "jobs: 8")]:
            assert old in text, f"profiles/slurm no longer has {old!r}: update the README and this test"
            text = text.replace(old, new)
        config.write_text(text)
        (target / "partitions.yaml").write_text("partitions:\n  debug:\n    max_gpu: 1\n")
    return {**os.environ, "XDG_CONFIG_HOME": str(config_home)}


CONFIG_HOME = Path(tempfile.gettempdir()) / f"medssl-slurm-profile-{os.getpid()}"  # a scratch ~/.config


def _has_gpu():
    out = subprocess.run(["scontrol", "show", "node"], capture_output=True, text=True, timeout=15).stdout
    return re.search(r"Gres=\S*gpu", out) is not None


PROBLEM = _cluster_problem()
pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(PROBLEM is not None, reason=f"no usable SLURM cluster: {PROBLEM}"),
]
needs_gpu = pytest.mark.skipif(
    PROBLEM is None and not _has_gpu(),
    reason="the cluster advertises no GPU and pretrain_ssl asks for one: "
    "start it with `FAKE_GPU=1 bash .ci/start_slurm.sh`",
)


class Run:
    """A snakemake process through the CI profile, output in a file so it can be watched while it runs."""

    def __init__(self, workdir, *args, snakefile=WORKFLOW, configfile=TINY, name="run"):
        self.workdir = Path(workdir)
        self.logfile = self.workdir.parent / f"{self.workdir.name}.{name}.out"
        cmd = [sys.executable, "-m", "snakemake", "--profile", "slurm",
               "--snakefile", str(snakefile), "--directory", str(self.workdir),
               "--configfile", str(configfile), *args]
        self.cmd = " ".join(cmd)
        self._out = open(self.logfile, "w")
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=self._out, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True, env=install_profile(CONFIG_HOME))
        self.start = time.monotonic()

    @property
    def output(self):
        return self.logfile.read_text()

    def jobs(self):
        """(SLURM job id, path of its SLURM log) of every submission, in order."""
        return [(m.group(2), m.group(3)) for m in SUBMITTED.finditer(self.output)]

    def kill(self):
        """SIGKILL snakemake's whole process group (an interrupted run) and cancel its SLURM jobs."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._out.close()
        ids = [job for job, _ in self.jobs()]
        if ids:
            subprocess.run(["scancel", *ids], capture_output=True, timeout=30)

    def wait(self, timeout):
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"timed out after {timeout} s: {self.cmd}\n{self.output[-6000:]}")
        self._out.close()
        self.elapsed = time.monotonic() - self.start
        return self.proc.returncode

    def wait_for(self, pattern, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.output):
                return
            if self.proc.poll() is not None:
                pytest.fail(f"snakemake ended before {pattern!r}:\n{self.output[-6000:]}")
            time.sleep(0.5)
        self.kill()
        pytest.fail(f"no {pattern!r} within {timeout} s:\n{self.output[-6000:]}")

    def check(self, timeout):
        rc = self.wait(timeout)
        assert rc == 0, f"{self.cmd} failed ({rc}):\n{self.output[-8000:]}"
        print(f"\n{self.cmd}\n  took {self.elapsed:.0f} s, {len(self.jobs())} SLURM jobs")
        return self


def sacct(ids, fields=("JobID", "State", "AllocTRES")):
    """{job id: {field: value}} for the allocations of the given jobs (waits for the database)."""
    if not ids:
        return {}
    for _ in range(30):
        out = subprocess.run(["sacct", "-X", "-n", "-P", "-j", ",".join(ids), "-o", ",".join(fields)],
                             capture_output=True, text=True, timeout=30, check=True).stdout
        rows = {line.split("|")[0]: dict(zip(fields, line.split("|"))) for line in out.splitlines() if line}
        if set(ids) <= set(rows) and not any(r["State"] in ("PENDING", "RUNNING", "COMPLETING")
                                             for r in rows.values()):
            return rows
        time.sleep(1)
    return rows


# --------------------------------------------------------------------------------------------
# retries: a job killed on its first attempt is resubmitted, and the run completes
# --------------------------------------------------------------------------------------------
def test_retry_after_a_killed_job(tmp_path):
    workdir = tmp_path / "retry"
    run = Run(workdir, snakefile=RETRY).check(timeout=240)
    assert (workdir / "flaky.txt").read_text().strip() == "second attempt"
    flaky = [job for job, log in run.jobs() if "/rule_flaky/" in log]
    assert len(flaky) == 2, run.output[-4000:]
    states = sacct(flaky)
    assert states[flaky[0]]["State"] != "COMPLETED", states  # the killed first attempt
    assert states[flaky[1]]["State"] == "COMPLETED", states


# --------------------------------------------------------------------------------------------
# the tiny workflow: interrupted, resumed with --rerun-incomplete, then checked
# --------------------------------------------------------------------------------------------
FINISHED_FIRST = ["results/data/tiny/manifest.csv", "splits/tiny/labeled_train.csv",
                  "splits/tiny/unlabeled_train.csv", "splits/tiny/test.csv"]
FINAL = ["results/tables/metrics.csv", "results/tables/summary.csv",
         *(f"results/figures/tiny/{fig}.{ext}" for fig in ("balanced_accuracy", "confusion_matrix")
           for ext in ("png", "pdf"))]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    if not _has_gpu():
        pytest.skip(needs_gpu.kwargs["reason"])
    workdir = tmp_path_factory.mktemp("slurm") / "tiny"
    first = Run(workdir, name="interrupted")
    # generate_dataset, then make_splits: kill the run once both went through SLURM.
    first.wait_for(r"Finished jobid: \d+ \(Rule: make_splits\)", timeout=300)
    first.kill()
    before = {p: (workdir / p).stat().st_mtime_ns for p in FINISHED_FIRST}
    unlock = subprocess.run([sys.executable, "-m", "snakemake", "--profile", "slurm",
                             "--snakefile", str(WORKFLOW), "--directory", str(workdir),
                             "--configfile", str(TINY), "--unlock"],
                            cwd=REPO, capture_output=True, text=True, timeout=120, env=install_profile(CONFIG_HOME))
    assert unlock.returncode == 0, unlock.stderr[-3000:]
    second = Run(workdir, "--rerun-incomplete", name="resumed").check(timeout=900)
    return {"workdir": workdir, "first": first, "second": second, "before": before}


@needs_gpu
def test_resume_does_not_redo_finished_jobs(tiny):
    workdir, second = tiny["workdir"], tiny["second"]
    after = {p: (workdir / p).stat().st_mtime_ns for p in FINISHED_FIRST}
    assert after == tiny["before"], "outputs finished before the interruption were recreated"
    resubmitted = {m.group(1) for _, log in second.jobs() if (m := re.search(r"/((?:rule|group)_\w+)/", log))}
    assert not {"rule_generate_dataset", "rule_make_splits"} & resubmitted, resubmitted


@needs_gpu
def test_jobs_went_through_slurm_and_completed(tiny):
    first_done = re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: \S+/rule_"
                            r"(?:generate_dataset|make_splits)/", tiny["first"].output)
    ids = [job for job, _ in tiny["second"].jobs()]
    assert ids, "no job was submitted to SLURM"
    states = sacct(ids + first_done)
    bad = {job: row["State"] for job, row in states.items() if row["State"] != "COMPLETED"}
    assert not bad and set(states) == set(ids + first_done), (bad, states)


@needs_gpu
def test_table_and_figures_are_produced(tiny):
    for path in FINAL:
        assert (tiny["workdir"] / path).stat().st_size > 0, path


@needs_gpu
def test_fits_are_one_job_per_embedding_pair_with_the_workflow_profiles_resources(tiny):
    fits = [job for job, log in tiny["second"].jobs() if "/rule_fit_classifiers/" in log]
    methods = yaml.safe_load(TINY.read_text())["methods"]
    assert len(fits) == len(methods), tiny["second"].output[-4000:]  # one per method (one dataset, one variant)
    mem = yaml.safe_load((REPO / "profiles/default/config.v8+.yaml").read_text())["set-resources"]["fit_classifiers"]["mem_mb"]
    for job, row in sacct(fits).items():  # the workflow profile's memory reached sbatch
        assert re.search(rf"(^|,)mem={mem}M(,|$)", row["AllocTRES"]), (job, row)


@needs_gpu
def test_gpu_request_reaches_slurm_and_training_falls_back_to_cpu(tiny):
    pretrain = [job for job, log in tiny["second"].jobs() if "/rule_pretrain_ssl/" in log]
    assert pretrain, "pretrain_ssl was not submitted"
    states = sacct(pretrain)
    assert any("gres/gpu=1" in row["AllocTRES"] for row in states.values()), states
    log = (tiny["workdir"] / "results" / "logs" / "pretrain_ssl" / "tiny" / "dino.log").read_text()
    assert re.search(r"CUDA not available.*CPU", log), log[-3000:]
