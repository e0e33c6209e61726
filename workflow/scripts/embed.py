"""Embeddings of labeled_train and test with the frozen backbone."""
from pathlib import Path

from medssl.checks import check_disjoint, check_finite
from medssl.data import read_split
from medssl.embed import embed_split
from medssl.runtime import default_num_workers, limit_threads, resolve_device, setup_logging
from medssl.ssl import load_backbone

log = setup_logging(snakemake.log[0])
limit_threads(snakemake.threads)
ds = snakemake.params.dataset
device = resolve_device("auto", "embedding device", "extracting embeddings", log)
log.info("extracting on %s", device)
backbone = load_backbone(snakemake.params.backbone, Path(snakemake.input.backbone))
frames = {split: read_split(snakemake.input[split]) for split in ["labeled_train", "test"]}
check_disjoint({snakemake.input[split]: frame["image"] for split, frame in frames.items()})
for split, frame in frames.items():
    emb = embed_split(backbone, frame, snakemake.params.image_root, ds["classes"], ds["image_size"],
                      ds.get("channels", 3), snakemake.params.normalize, device=device,
                      num_workers=min(default_num_workers(), snakemake.threads),
                      precision=snakemake.params.precision)
    check_finite(emb.features, emb.images, f"{split} embeddings of {snakemake.input.backbone}")
    emb.save(snakemake.output[split])
    log.info("%s: %s features", split, emb.features.shape)
