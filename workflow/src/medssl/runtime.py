"""Small helpers shared by the workflow scripts: logging into the rule's log file,
atomic writes, and the provenance stamp (config, code version, package versions)."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

PACKAGES = ["medssl", "torch", "torchvision", "timm", "scikit-learn", "numpy", "scipy", "pandas",
            "matplotlib", "seaborn", "snakemake", "snakemake-executor-plugin-slurm"]


def setup_logging(log_path: str | os.PathLike | None) -> logging.Logger:
    """Send logging, warnings and stderr of a workflow script to its rule's log file."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        stream = open(log_path, "w", buffering=1)
        sys.stderr = stream  # tracebacks, tqdm bars and library warnings land in the log
        handlers = [logging.StreamHandler(stream)]
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
    return logging.getLogger("medssl")


def limit_threads(threads: int) -> None:
    """Keep a job to the cores Snakemake gave it. BLAS/OpenMP pools default to every core, and
    two such jobs side by side on 2 cores spin against each other (measured: 50x slower)."""
    threads = max(1, int(threads))
    for var in ["OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"]:
        os.environ[var] = str(threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def resolve_device(requested: str, key: str, purpose: str = "training",
                   log: logging.Logger | None = None):
    """'auto' | 'cpu' | 'cuda' -> torch.device. Falling back to the CPU is logged; asking for
    'cuda' where there is none fails naming the config key."""
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"{key} asks for device 'cuda' but no CUDA device is available "
                           "(set it to auto or cpu to run on the CPU)")
    if requested == "auto" and not torch.cuda.is_available():
        (log or logging.getLogger("medssl")).warning("CUDA not available: %s on CPU", purpose)
        requested = "cpu"
    if requested == "cpu":
        return torch.device("cpu")
    # Under torchrun the launcher has already selected this rank's GPU with torch.cuda.set_device.
    return torch.device("cuda", torch.cuda.current_device())


PRECISIONS = ("auto", "fp16", "bf16", "fp32")


class MixedPrecision:
    """Autocast and loss scaling for one device, the one rule of every trained arm (SSL trainer, DL
    baseline, linear layer) and the embedding pass: ``fp16`` = float16 autocast + ``GradScaler`` (the
    paper's ``torch.cuda.amp``), ``bf16`` = bfloat16 autocast without scaling, ``fp32`` = off,
    ``auto`` = bf16 on CUDA, fp32 elsewhere. The CPU has no useful float16 autocast: ``fp16`` there
    falls back to fp32 and says so in the log. ``auto`` stays fp32 on a CPU even with native bf16: the
    held-out real-data checks were run in fp32, and a CPU without it runs bf16 several times slower
    (docs/performance.md#precision-on-the-cpu), which ``bf16`` asked for there says in the log."""

    def __init__(self, requested: str, device, key: str, log: logging.Logger | None = None):
        import torch

        if requested not in PRECISIONS:
            raise ValueError(f"{key} must be one of {PRECISIONS}, got {requested!r}")
        cuda = device.type == "cuda"
        if requested == "fp16" and not cuda:
            (log or logging.getLogger("medssl")).warning(
                "%s: fp16 autocast needs CUDA; running in fp32 on %s", key, device)
            requested = "fp32"
        if requested == "auto":
            requested = "bf16" if cuda else "fp32"
        if requested == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
            (log or logging.getLogger("medssl")).warning(
                "%s: bf16 on a CPU without native bf16 (no avx512_bf16 or amx_bf16 flag) runs several times "
                "slower than fp32; fp32 or auto is faster here", key)
        self.name = requested
        self.device_type = device.type
        self.dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(requested)

    def autocast(self):
        import torch

        return torch.autocast(self.device_type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None)

    @property
    def scaled(self) -> bool:
        """Whether the loss is scaled: fp16 only (bf16 has float32's range)."""
        return self.name == "fp16"

    def grad_scaler(self):
        """A ``torch.amp.GradScaler``, enabled only for fp16 (a disabled one passes through)."""
        import torch

        return torch.amp.GradScaler(self.device_type, enabled=self.scaled)


def cpu_has_native_bf16(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes in bf16 natively (the avx512_bf16 or amx_bf16 flag; Linux only)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return bool({"avx512_bf16", "amx_bf16"} & set(flags))


def default_num_workers() -> int:
    """DataLoader workers: the CPUs of this process (shared by the ranks of a node) minus one, at most 8."""
    try:
        n_cpu = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n_cpu = os.cpu_count() or 1
    # the processes of one node share its CPUs (torchrun and srun set LOCAL_WORLD_SIZE)
    n_cpu //= max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return min(8, max(0, n_cpu - 1))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it over `path` only on success,
    so a killed job never leaves a partial file that looks complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(obj: Any, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def code_version(repo: str | os.PathLike = ".") -> str:
    """`git describe` of the workflow checkout, '+dirty' when it has local changes."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty=+dirty", "--abbrev=12"],
                             cwd=repo, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance(config: dict | None = None) -> dict[str, Any]:
    return {
        "code_version": code_version(Path(__file__).resolve().parent),
        "packages": package_versions(),
        "platform": platform.platform(),
        "config": config,
    }


def write_provenance(artifact: str | os.PathLike, config: dict | None = None) -> Path:
    """Write `<artifact>.provenance.json` beside a table or figure."""
    sidecar = Path(f"{artifact}.provenance.json")
    write_json(provenance(config), sidecar)
    return sidecar


# Errors that a retry reproduces: bad data (medssl.data.errors.DatasetError is a ValueError), bad config
# values, a NaN loss (FloatingPointError). A killed process, a lost node or a CUDA error are not in
# this list, so Snakemake's `retries` still re-runs those.
DETERMINISTIC_ERRORS = (ValueError, KeyError, TypeError, ArithmeticError, ImportError, NotImplementedError)


class NotRetried(RuntimeError):
    """A retry of a job whose previous attempt failed with a deterministic error."""


@contextlib.contextmanager
def fail_once(log_path: str | os.PathLike, attempt: int, also: tuple[type, ...] = ()) -> Iterator[None]:
    """Make Snakemake's `retries` re-run only failures a retry can fix.

    Snakemake retries every failed job. Inside this block a deterministic error
    (:data:`DETERMINISTIC_ERRORS`) leaves a marker next to the job's log; a retry of the job
    (``attempt`` > 1) that finds the marker fails at once with the first attempt's message
    instead of loading data and building the model again. A fresh run (attempt 1) starts clean.
    ``also``: further exception types a job knows to be deterministic (e.g. a collapsed SSL run)."""
    marker = Path(f"{log_path}.error")
    if attempt > 1 and marker.exists():
        raise NotRetried(f"not retried (attempt {attempt}): the first attempt failed with an error a retry "
                         f"cannot fix; fix it and run again:\n{marker.read_text()}")
    marker.unlink(missing_ok=True)
    try:
        yield
    except DETERMINISTIC_ERRORS + tuple(also) as err:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{type(err).__name__}: {err}\n")
        raise


def die_with_snakemake(poll_seconds: float = 1.0) -> None:
    """End this job, and every process it started (torchrun and its ranks), when the Snakemake
    process that runs it is gone, even killed with SIGKILL.

    Snakemake runs a script job as ``snakemake -> bash -> python``; a SIGKILL of Snakemake reaches
    neither (``PR_SET_PDEATHSIG`` would only watch bash), and an orphaned trainer would go on writing
    the folder a rerun resumes from. A daemon thread watches the nearest ``snakemake`` ancestor
    (or the parent when there is none) and kills this process tree when it ends."""
    import select
    import signal
    import threading
    import time

    import psutil

    me = psutil.Process()
    parents = me.parents()
    watched = next((p for p in parents if any(Path(a).name == "snakemake" for a in _cmdline(p))),
                   parents[0] if parents else None)
    if watched is None:
        return

    def watch() -> None:
        # A pidfd turns readable the moment the process exits (zombie or not): no polling window in
        # which an orphaned trainer could still finish and write its outputs.
        try:
            fd = os.pidfd_open(watched.pid)
        except (AttributeError, OSError):
            fd = None
        if fd is not None and watched.is_running():
            select.select([fd], [], [])
        while watched.is_running() and watched.status() != psutil.STATUS_ZOMBIE:
            time.sleep(poll_seconds)
        for child in me.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child.kill()
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="die-with-snakemake", daemon=True).start()


def _cmdline(process) -> list[str]:
    import psutil

    try:
        return process.cmdline()
    except psutil.Error:
        return []
