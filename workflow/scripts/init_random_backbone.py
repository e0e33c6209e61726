"""The untrained reference: the same backbone with seeded random weights (or ImageNet weights
when backbone.pretrained is true), saved like a pretrained one."""
import torch

from medssl.backbone import backbone_from_spec
from medssl.runtime import atomic_path, limit_threads, setup_logging

log = setup_logging(snakemake.log[0])
limit_threads(snakemake.threads)
spec = snakemake.params.backbone
seed = snakemake.params.method["seed"]
torch.manual_seed(seed)
backbone = backbone_from_spec(spec)
log.info("%s: %d parameters, random init seed %d", spec["name"], sum(p.numel() for p in backbone.parameters()), seed)
with atomic_path(snakemake.output.backbone) as tmp:
    torch.save(backbone.state_dict(), tmp)
