"""Embeddings of labeled_train and test with the frozen backbone. A frozen pretrained model (method
kind `pretrained`, input data_config) gets its own input size, interpolation and mean / std."""
import json
from pathlib import Path

from medssl.backbone import load_backbone
from medssl.data.checks import check_disjoint, check_finite
from medssl.data.splits import read_split
from medssl.download.pretrained import preprocessing
from medssl.embed import embed_split
from medssl.runtime import default_num_workers, die_with_snakemake, limit_threads, resolve_device, setup_logging
from medssl.ssl.kinds import pretraining_normalize, pretraining_views

log = setup_logging(snakemake.log[0])
die_with_snakemake()
limit_threads(snakemake.threads)
ds = snakemake.params.dataset
device = resolve_device("auto", "embedding device", "extracting embeddings", log)
log.info("extracting on %s", device)
backbone = load_backbone(snakemake.params.backbone, Path(snakemake.input.backbone))
if "data_config" in snakemake.input.keys():
    images = preprocessing(json.loads(Path(snakemake.input.data_config).read_text()))
    log.info("pretrained model's own preprocessing: %s", Path(snakemake.input.data_config).read_text())
else:
    images = {"image_size": ds["image_size"], "channels": ds["channels"], "resample": None,
              "normalize": pretraining_normalize(pretraining_views(**snakemake.params.views))}
frames = {split: read_split(snakemake.input[split]) for split in ["labeled_train", "test"]}
check_disjoint({snakemake.input[split]: frame["image"] for split, frame in frames.items()})
embeddings = {}
for split, frame in frames.items():
    emb = embed_split(backbone, frame, snakemake.params.image_root, ds["classes"], images["image_size"],
                      images["channels"], images["normalize"], resample=images["resample"], device=device,
                      num_workers=min(default_num_workers(), snakemake.threads),
                      precision=snakemake.params.precision)
    check_finite(emb.features, emb.images, f"{split} embeddings of {snakemake.input.backbone}")
    embeddings[split] = emb
    log.info("%s: %s features", split, emb.features.shape)
for split, emb in embeddings.items():  # both or neither: an interrupted job leaves no half pair
    emb.save(snakemake.output[split])
