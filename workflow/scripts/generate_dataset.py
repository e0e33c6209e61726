"""Generate the embedded synthetic dataset (images + manifest) deterministically from the config seed."""
from pathlib import Path

from medssl.data import SYNTHETIC_MARROW_DEFAULT_COUNTS, DatasetError, generate_synthetic_marrow
from medssl.runtime import atomic_path, limit_threads, setup_logging

log = setup_logging(snakemake.log[0])
limit_threads(snakemake.threads)
ds = snakemake.params.dataset
source = ds["source"]
counts = source.get("class_counts") or {
    name: SYNTHETIC_MARROW_DEFAULT_COUNTS.get(name) for name in ds["classes"]
}
unknown = [name for name, n in counts.items() if n is None or name not in SYNTHETIC_MARROW_DEFAULT_COUNTS]
if unknown or set(counts) != set(ds["classes"]):
    raise DatasetError(
        f"datasets.{snakemake.wildcards.dataset}.classes: the synthetic_marrow generator knows "
        f"{sorted(SYNTHETIC_MARROW_DEFAULT_COUNTS)}; unknown or mismatched: {unknown or sorted(set(counts) ^ set(ds['classes']))}"
    )
root = Path(snakemake.output.manifest).parent / "synthetic"
manifest = generate_synthetic_marrow(root, counts, source.get("n_unlabeled", 0), ds["image_size"], snakemake.params.seed)
log.info("generated %d images (%d unlabeled) in %s", len(manifest), (manifest["label"] == "").sum(), root)
with atomic_path(snakemake.output.manifest) as tmp:
    manifest.to_csv(tmp, index=False)
