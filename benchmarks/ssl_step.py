"""Throughput and peak memory of one SSL training step per method: medssl's trainer step vs a plain loop
of the paper's step, on the same model, batch, crops, precision and threads.

    python benchmarks/ssl_step.py --preset small                 # every method, CPU-sized
    python benchmarks/ssl_step.py --preset paper --methods simclr vicreg   # ResNet-50, 224 px, batch 64
    python benchmarks/ssl_step.py --preset small --methods dino  # DINO: the plain loop of benchmarks/dino_step.py

Each (method, variant) runs in its own process (so the peak memory is its own), in alternating rounds:
  ours       medssl.augment.MultiCropAugment (batched, on the device) + medssl.ssl.training_step
             (the method's registered loss, clipping, hooks; one forward call per step);
  reference  SmallDataSSL's ``util.train_SSL`` written plainly: per-image torchvision views
             (docs/papers.md#smalldatassl-data-and-views), z1 = model(x1), z2 = model(x2), the loss as
             ``lossfuns.py`` computes it (docs/papers.md#smalldatassl-losses), zero_grad / backward / SGD
             step. For dino: dino_step.py's reference.
Reported: the best of --repeat timed steps (after --warmup), images/s of the step alone and with the
augmentation, and the peak memory (CPU: peak RSS; CUDA: torch.cuda.max_memory_allocated).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

METHODS = ["simclr", "dclw", "simsiam", "vicreg", "dino"]
PRESETS = {
    "small": dict(backbone="resnet18", kwargs={}, image_size=64, global_size=64, local_size=32, n_local=2,
                  batch=32, proj_hidden_dim=512, proj_dim=128, out_dim=4096),
    "paper": dict(backbone="resnet50", kwargs={"zero_init_last": True}, image_size=224, global_size=224,
                  local_size=96, n_local=8, batch=64, proj_hidden_dim=None, proj_dim=None, out_dim=65536),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="small")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=METHODS)
    p.add_argument("--batch", type=int)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--variant", choices=["ours", "reference"], help=argparse.SUPPRESS)
    p.add_argument("--json")
    args = p.parse_args(argv)
    setup = dict(PRESETS[args.preset])
    if args.batch:
        setup["batch"] = args.batch
    return args, setup


# ------------------------------------------------------------------ SmallDataSSL's step, written plainly
def paper_loss(kind, z1, z2, vicreg_std_coeff=25.0):
    import torch
    import torch.nn.functional as F
    if kind == "simclr":  # lossfuns.SimCLRLoss(0.5)
        t, b = 0.5, len(z1)
        out = torch.cat([z1, z2])
        sim = torch.exp(out @ out.t() / t)
        mask = ~torch.eye(2 * b, dtype=torch.bool, device=out.device)
        sim = sim.masked_select(mask).view(2 * b, -1)
        pos = torch.exp((z1 * z2).sum(-1) / t)
        pos = torch.cat([pos, pos])
        return (-torch.log(pos / sim.sum(-1))).mean()
    if kind == "dclw":  # lossfuns.DCLWLoss(0.1, 0.5), z1 anchors
        t, s, b = 0.1, 0.5, len(z1)
        cross = z1 @ z2.t()
        pos = cross.diag()
        w = 2 - b * F.softmax(pos / s, dim=0)
        mask = torch.eye(b, device=z1.device) * math.log(1e-45)
        neg = torch.cat([z1 @ z1.t(), cross], dim=1) / t + torch.cat([mask, mask], dim=1)
        return (-w * pos / t + torch.logsumexp(neg, dim=1)).mean()
    if kind == "simsiam":  # lossfuns.SimSiamLoss, on the projector outputs
        return 0.5 * -F.cosine_similarity(z1, z2.detach()).mean() + 0.5 * -F.cosine_similarity(z2, z1.detach()).mean()
    if kind == "vicreg":  # official VICReg (the paper's code with the variance term halved)
        n, d = z1.shape
        sim = F.mse_loss(z1, z2)
        x, y = z1 - z1.mean(0), z2 - z2.mean(0)
        std = (F.relu(1 - torch.sqrt(x.var(0) + 1e-4)).mean() + F.relu(1 - torch.sqrt(y.var(0) + 1e-4)).mean()) / 2
        cx, cy = x.t() @ x / (n - 1), y.t() @ y / (n - 1)
        off = ~torch.eye(d, dtype=torch.bool, device=x.device)
        cov = cx[off].pow(2).sum() / d + cy[off].pow(2).sum() / d
        return 25 * sim + vicreg_std_coeff * std + cov
    raise ValueError(kind)


def paper_augment(size):
    from torchvision import transforms as T
    view = T.Compose([
        T.RandomResizedCrop(size, scale=(0.08, 1.0)), T.RandomHorizontalFlip(0.5),
        T.ColorJitter(0.4, 0.4, 0.2, 0.1), T.RandomGrayscale(0.2), T.RandomApply([T.GaussianBlur(23)], p=0.5),
        T.RandomSolarize(128, p=0.1), T.ToTensor(), T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])

    def augment(pil_images):  # per image, as the Dataset's __getitem__, then collated
        import torch
        pairs = [(view(im), view(im)) for im in pil_images]
        return [torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])]

    return augment


# ------------------------------------------------------------------ one (method, variant), in this process
def run_variant(args, setup, kind) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    from medssl.augment import MultiCropAugment, MultiCropConfig
    from medssl.runtime import MixedPrecision
    from medssl.ssl import Schedules, get_method, resolve_device, training_step
    from medssl.ssl.optim import build_optimizer

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    amp = MixedPrecision("auto", device, "precision")  # the trainer's default: bf16 on CUDA, fp32 on the CPU
    method = get_method(kind)
    params = {"epochs": 1, "batch_size": setup["batch"], "device": device.type, "warmup_epochs": 0}
    if kind == "dino":
        params.update(out_dim=setup["out_dim"], freeze_last_layer_epochs=0, drop_path_rate=0.0)
    elif setup["proj_dim"] and kind != "vicreg":
        params.update(proj_hidden_dim=setup["proj_hidden_dim"], proj_dim=setup["proj_dim"])
    cfg = method.Config.from_dict(params)
    aug = {**method.augmentation_defaults, "global_size": setup["global_size"]}
    if kind == "dino":
        aug.update(local_size=setup["local_size"], n_local=setup["n_local"])
    augmenter = MultiCropAugment(MultiCropConfig.from_dict(aug))
    torch.manual_seed(0)
    m = method.build(cfg, {"name": setup["backbone"], "kwargs": setup["kwargs"]}, augmenter.n_views).to(device)
    m.train_mode()
    optimizer = build_optimizer(m.model, cfg, device)
    n_steps = args.warmup + args.repeat
    sched = Schedules.from_config(cfg, n_steps, cfg.batch_size)
    s = setup["image_size"]
    images = torch.randint(0, 256, (setup["batch"], 3, s, s), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))

    if args.variant == "ours":
        gen = torch.Generator().manual_seed(0)

        def augment():
            return augmenter(images.to(device, non_blocking=True), gen)

        def step(views, it):
            training_step(m, m.model, optimizer, views, it, sched, cfg, amp)
    elif kind == "dino":
        from dino_step import ReferenceDINOLoss, reference_augment, reference_step
        ref_aug = reference_augment(setup)
        pil = [Image.fromarray(np.ascontiguousarray(im.permute(1, 2, 0).numpy())) for im in images]
        loss_fn = ReferenceDINOLoss(cfg.out_dim, augmenter.n_views, device)

        def augment():
            return [c.to(device, non_blocking=True) for c in ref_aug(pil)]

        def step(crops, it):
            reference_step(m.model, m.teacher, loss_fn, optimizer, crops, float(sched.lr[it]), float(sched.wd[it]),
                           float(sched.method["teacher_temp"][it]), float(sched.method["momentum"][it]), amp)
    else:
        ref_aug = paper_augment(setup["global_size"])
        pil = [Image.fromarray(np.ascontiguousarray(im.permute(1, 2, 0).numpy())) for im in images]
        backbone, head = m.model.backbone, m.model.head

        def model(x):
            out = head(backbone(x))
            return out[1] if isinstance(out, tuple) else out  # SimSiam head: (z, p)

        def augment():
            return [c.to(device, non_blocking=True) for c in ref_aug(pil)]

        def step(views, it):
            with amp.autocast():
                z1, z2 = model(views[0]), model(views[1])
                loss = paper_loss(kind, z1.float(), z2.float())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if not math.isfinite(loss.item()):
                raise RuntimeError("loss is not finite")

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    aug_s, step_s = [], []
    for it in range(n_steps):
        sync()
        t0 = time.perf_counter()
        views = augment()
        sync()
        t1 = time.perf_counter()
        step(views, it)
        sync()
        t2 = time.perf_counter()
        if it >= args.warmup:
            aug_s.append(t1 - t0)
            step_s.append(t2 - t1)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"method": kind, "variant": args.variant, "device": str(device), "threads": torch.get_num_threads(),
            "step_s": step_s, "augment_s": aug_s, "peak_mem_mb": peak,
            "peak_mem_kind": "cuda max_memory_allocated" if device.type == "cuda" else "peak RSS"}


def main(argv=None):
    args, setup = parse_args(argv)
    if args.variant:
        print("RESULT " + json.dumps(run_variant(args, setup, args.methods[0])), flush=True)
        return 0
    base = [f"--preset={args.preset}", f"--repeat={args.repeat}", f"--warmup={args.warmup}",
            f"--device={args.device}"] + ([f"--batch={args.batch}"] if args.batch else []) + \
        ([f"--threads={args.threads}"] if args.threads else [])
    b = setup["batch"]
    table = []
    for kind in args.methods:
        runs = {"ours": [], "reference": []}
        for _ in range(args.rounds):  # alternating: a shared machine slows both alike
            for variant in runs:
                proc = subprocess.run([sys.executable, __file__, *base, "--methods", kind, "--variant", variant],
                                      capture_output=True, text=True)
                lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
                if proc.returncode != 0 or not lines:
                    sys.stderr.write(proc.stdout + proc.stderr)
                    raise SystemExit(f"{kind} {variant} failed")
                runs[variant].append(json.loads(lines[-1][len("RESULT "):]))
        for variant, rs in runs.items():
            step = min(t for r in rs for t in r["step_s"])
            total = min(a + t for r in rs for a, t in zip(r["augment_s"], r["step_s"]))
            table.append({"method": kind, "variant": variant, "step_img_s": b / step, "step_plus_aug_img_s": b / total,
                          "peak_mem_mb": max(r["peak_mem_mb"] for r in rs), "device": rs[0]["device"],
                          "threads": rs[0]["threads"], "peak_mem_kind": rs[0]["peak_mem_kind"]})
            print("ROW " + json.dumps(table[-1]), flush=True)  # partial results survive an interrupted run
    print(f"setup: {json.dumps(setup)}; best of {args.rounds} rounds x {args.repeat} steps after {args.warmup} "
          f"warm-up; device {table[0]['device']}, {table[0]['threads']} thread(s); memory: {table[0]['peak_mem_kind']}")
    print(f"{'method':<8} {'variant':<10} {'step img/s':>11} {'step+aug img/s':>15} {'peak MB':>9}")
    for r in table:
        print(f"{r['method']:<8} {r['variant']:<10} {r['step_img_s']:>11.1f} {r['step_plus_aug_img_s']:>15.1f} "
              f"{r['peak_mem_mb']:>9.0f}")
    for ours, ref in zip(table[::2], table[1::2]):
        print(f"{ours['method']}: ours / reference: step {ours['step_img_s'] / ref['step_img_s']:.2f}x, "
              f"step+aug {ours['step_plus_aug_img_s'] / ref['step_plus_aug_img_s']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"setup": setup, "results": table}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
