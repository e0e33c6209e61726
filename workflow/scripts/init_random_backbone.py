"""The untrained reference: the same backbone with seeded random weights (or ImageNet weights
when backbone.pretrained is true), saved like a pretrained one."""
import torch

from medssl.runtime import atomic_path, limit_threads, setup_logging
from medssl.backbone import build_backbone

log = setup_logging(snakemake.log[0])
limit_threads(snakemake.threads)
spec = snakemake.params.backbone
torch.manual_seed(snakemake.params.method.get("seed", 0))
backbone = build_backbone(spec["name"], pretrained=spec.get("pretrained", False), **spec.get("kwargs", {}))
log.info("%s: %d parameters, random init seed %d", spec["name"], sum(p.numel() for p in backbone.parameters()),
         snakemake.params.method.get("seed", 0))
with atomic_path(snakemake.output.backbone) as tmp:
    torch.save(backbone.state_dict(), tmp)
