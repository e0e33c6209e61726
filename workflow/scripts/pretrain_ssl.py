"""SSL pretraining of any trainable method kind (medssl.ssl.kinds) on the SSL
pool (unlabeled_train + labeled_train, never test); the method comes from the config entry.

With the `gpu` resource > 1 the job starts one training process per GPU (torchrun on one node;
with `nodes` > 1 the job's `mpi` launcher, e.g. srun, on every node); otherwise it trains here.
The job (and any process it starts) ends when Snakemake is killed; data and config errors are
not retried (medssl.runtime.fail_once).
"""
from medssl.runtime import die_with_snakemake, fail_once, limit_threads, setup_logging

log = setup_logging(snakemake.log[0])
die_with_snakemake()
from medssl.ssl import CollapseError, launch_pretraining  # noqa: E402

# a collapsed run collapses again (it is seeded), so it is not retried either
with fail_once(snakemake.log[0], snakemake.resources.attempt, also=(CollapseError,)):
    from medssl.data.checks import check_disjoint
    from medssl.data.splits import read_split

    limit_threads(snakemake.threads)
    resources = snakemake.resources
    ds = snakemake.params.dataset
    method = snakemake.params.method
    splits = {name: str(path) for name, path in snakemake.input.items()
              if name in ("labeled_train", "unlabeled_train", "test")}
    check_disjoint({path: read_split(path, labeled=False)["image"] for path in splits.values()}, "SSL pool")
    spec = {
        "kind": method["kind"],
        "params": dict(method["params"]),
        "augmentation": dict(method["augmentation"]),
        "collapse": dict(method.get("collapse") or {}),
        "splits": {name: path for name, path in splits.items() if name != "test"},
        "image_root": str(snakemake.params.image_root),
        "image_size": ds["image_size"],
        "channels": ds["channels"],
        "backbone": dict(snakemake.params.backbone),
        "work_dir": str(snakemake.params.work_dir),
        "output": str(snakemake.output.backbone),
    }
    launch_pretraining(spec, gpus=resources.get("gpu", 1), nodes=resources.get("nodes", 1),
                       mpi=resources.get("mpi"), threads=snakemake.threads, log=log)
