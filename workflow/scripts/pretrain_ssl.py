"""SSL pretraining of any trainable method kind (dino, simclr, dclw, simsiam, vicreg) on the SSL
pool (unlabeled_train + labeled_train, never test); the method comes from the config entry.

With the `gpu` resource > 1 the job starts one training process per GPU (torchrun on one node;
with `nodes` > 1 the job's `mpi` launcher, e.g. srun, on every node); otherwise it trains here.
"""
from medssl.runtime import limit_threads, setup_logging
from medssl.ssl import launch_pretraining

log = setup_logging(snakemake.log[0])
limit_threads(snakemake.threads)
resources = snakemake.resources
ds = snakemake.params.dataset
method = snakemake.params.method
spec = {
    "kind": method["kind"],
    "params": dict(method.get("params") or {}),
    "augmentation": dict(method.get("augmentation") or {}),
    "collapse": dict(method.get("collapse") or {}),
    "splits": {name: str(path) for name, path in snakemake.input.items()
               if name in ("labeled_train", "unlabeled_train")},
    "image_root": str(snakemake.params.image_root),
    "image_size": ds["image_size"],
    "channels": ds.get("channels", 3),
    "backbone": dict(snakemake.params.backbone),
    "work_dir": str(snakemake.params.work_dir),
    "output": str(snakemake.output.backbone),
}
launch_pretraining(spec, gpus=resources.get("gpu", 1), nodes=resources.get("nodes", 1),
                   mpi=resources.get("mpi"), threads=snakemake.threads, log=log)
