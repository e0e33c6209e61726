"""Index a dataset on disk (class folders or a CSV manifest) and check every image decodes."""
from pathlib import Path

import pandas as pd

from medssl.checks import check_inside_root
from medssl.data import (DatasetError, check_images, index_folder, index_npz, index_split_folders, index_unlabeled,
                         read_groups, read_manifest)
from medssl.runtime import atomic_path, die_with_snakemake, limit_threads, setup_logging

log = setup_logging(snakemake.log[0])
die_with_snakemake()
limit_threads(snakemake.threads)
ds = snakemake.params.dataset
source = ds["source"]
root = Path(source["path"] if source["kind"] == "npz" else source["root"])
if ds.get("split", {}).get("group_column") and source["kind"] != "manifest":
    raise DatasetError(f"datasets.{snakemake.wildcards.dataset}.split.group_column: group ids come from a "
                       f"manifest CSV column; source.kind {source['kind']!r} has none")
if source["kind"] == "npz":  # MedMNIST format: image ids "<split>/<row>" inside the archive
    manifest = index_npz(root, ds["classes"])
elif source["kind"] == "folder" and source.get("split_folders"):  # root/{train,val,test}/<class>/...
    manifest = index_split_folders(root, ds["classes"])
elif source["kind"] == "folder":
    manifest = index_folder(root, ds["classes"])
    if source.get("unlabeled_root"):
        manifest = pd.concat([manifest, index_unlabeled(source["unlabeled_root"], root)], ignore_index=True)
else:
    manifest = read_manifest(Path(source["manifest"]))
    check_inside_root(manifest["image"].tolist(), root, source["manifest"])
    group_column = ds.get("split", {}).get("group_column")
    if group_column:  # a grouped split keeps e.g. all images of one lesion on one side
        manifest["group"] = read_groups(Path(source["manifest"]), group_column)
check_images(manifest, root, ds["classes"])
log.info("indexed %d images under %s", len(manifest), root)
with atomic_path(snakemake.output.manifest) as tmp:
    manifest.to_csv(tmp, index=False)
