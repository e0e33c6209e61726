"""Index a dataset on disk (class folders or a CSV manifest) and check every image decodes."""
from pathlib import Path

import pandas as pd

from medssl.checks import check_inside_root
from medssl.data import check_images, index_folder, read_manifest
from medssl.runtime import atomic_path, limit_threads, setup_logging

log = setup_logging(snakemake.log[0])
limit_threads(snakemake.threads)
ds = snakemake.params.dataset
source = ds["source"]
root = Path(source["root"])
if source["kind"] == "folder":
    manifest = index_folder(root, ds["classes"])
    if source.get("unlabeled_root"):
        unlabeled = index_folder(Path(source["unlabeled_root"]).parent, [Path(source["unlabeled_root"]).name])
        unlabeled["image"] = [str(Path(source["unlabeled_root"]).parent.joinpath(p).relative_to(root, walk_up=True))
                              for p in unlabeled["image"]]
        unlabeled["label"] = pd.NA
        manifest = pd.concat([manifest, unlabeled], ignore_index=True)
else:
    manifest = read_manifest(Path(source["manifest"]))
    check_inside_root(manifest["image"].tolist(), root, source["manifest"])
check_images(manifest, root, ds["classes"])
log.info("indexed %d images under %s", len(manifest), root)
with atomic_path(snakemake.output.manifest) as tmp:
    manifest.to_csv(tmp, index=False)
