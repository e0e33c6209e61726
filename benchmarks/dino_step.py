"""Throughput and peak memory of one DINO training step: medssl's step vs a plain reference loop.

    python benchmarks/dino_step.py --preset demo
    python benchmarks/dino_step.py --preset measured
    python benchmarks/dino_step.py --backbone xcit_small_12_p8_224 --kwargs '{"img_size": 256}' \\
        --image-size 256 --global-size 256 --local-size 96 --n-local 5 --batch 64 --out-dim 65536

Each variant runs in its own process (so the peak memory is its own) on the current device:
  ours       medssl.ssl.training_step (vectorised clipping, foreach EMA, one log-softmax per crop)
             after medssl.augment.MultiCropAugment on the uint8 batch;
  reference  the loop of facebookresearch/dino's train_one_epoch written plainly: per-pair
             log-softmax loss, per-parameter clipping loop, python-loop EMA, after a per-image
             torchvision/PIL DataAugmentationDINO-style pipeline.
Both use the same student/teacher (timm backbone + DINO head), crops, batch and precision
(fp32 on the CPU, bf16 autocast on CUDA). Reported: the best of --repeat timed steps (after
--warmup), images/s for the step alone and with augmentation, and the peak memory (CPU: peak
RSS of the process; CUDA: torch.cuda.max_memory_allocated).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time

PRESETS = {
    # config/config.yaml: the demo's backbone and methods.dino
    "demo": dict(backbone="vit_tiny_patch16_224", kwargs={"img_size": 32, "patch_size": 4, "depth": 6, "dynamic_img_size": True},
                 image_size=32, global_size=32, local_size=16, n_local=4, batch=128, out_dim=2048,
                 hidden_dim=512, bottleneck_dim=128),
    # /work/shared/MEASURED.md, first row: 6-block ViT-tiny, 32 px, patch 8, 2+4 crops, batch 64, 4096 prototypes
    "measured": dict(backbone="vit_tiny_patch16_224", kwargs={"img_size": 32, "patch_size": 8, "depth": 6, "dynamic_img_size": True},
                     image_size=32, global_size=32, local_size=16, n_local=4, batch=64, out_dim=4096,
                     hidden_dim=2048, bottleneck_dim=256),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS))
    p.add_argument("--backbone")
    p.add_argument("--kwargs", type=json.loads, help="timm kwargs as JSON")
    for name in ("image-size", "global-size", "local-size", "n-local", "batch", "out-dim", "hidden-dim",
                 "bottleneck-dim"):
        p.add_argument(f"--{name}", type=int)
    p.add_argument("--repeat", type=int, default=3, help="timed steps; the best is reported")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3, help="alternating runs of each variant (own process each)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--variant", choices=["ours", "reference"], help=argparse.SUPPRESS)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    setup = dict(PRESETS[args.preset]) if args.preset else {}
    for key in ("backbone", "kwargs", "image_size", "global_size", "local_size", "n_local", "batch", "out_dim",
                "hidden_dim", "bottleneck_dim"):
        if getattr(args, key) is not None:
            setup[key] = getattr(args, key)
    missing = {"backbone", "image_size", "global_size", "local_size", "n_local", "batch", "out_dim"} - set(setup)
    if missing:
        p.error(f"give --preset or all of: {sorted(missing)}")
    setup.setdefault("kwargs", {})
    setup.setdefault("hidden_dim", 2048)
    setup.setdefault("bottleneck_dim", 256)
    return args, setup


# --------------------------------------------------------------------------------------------
# The plain reference loop (facebookresearch/dino main_dino.py / utils.py, written out)
# --------------------------------------------------------------------------------------------
class ReferenceDINOLoss:
    def __init__(self, out_dim, ncrops, device, student_temp=0.1, center_momentum=0.9):
        import torch
        self.ncrops, self.student_temp, self.center_momentum = ncrops, student_temp, center_momentum
        self.center = torch.zeros(1, out_dim, device=device)

    def __call__(self, student_output, teacher_output, temp):
        import torch
        import torch.nn.functional as F
        student_out = (student_output.float() / self.student_temp).chunk(self.ncrops)
        teacher_out = F.softmax((teacher_output.float() - self.center) / temp, dim=-1).detach().chunk(2)
        total_loss, n_loss_terms = 0, 0
        for iq, q in enumerate(teacher_out):
            for v in range(len(student_out)):
                if v == iq:
                    continue
                loss = torch.sum(-q * F.log_softmax(student_out[v], dim=-1), dim=-1)
                total_loss += loss.mean()
                n_loss_terms += 1
        total_loss /= n_loss_terms
        with torch.no_grad():
            batch_center = torch.sum(teacher_output.float(), dim=0, keepdim=True) / len(teacher_output)
            self.center = self.center * self.center_momentum + batch_center * (1 - self.center_momentum)
        return total_loss


def reference_step(student, teacher, loss_fn, optimizer, images, lr, wd, temp, momentum, precision,
                   clip_grad=3.0):
    import torch
    for i, param_group in enumerate(optimizer.param_groups):
        param_group["lr"] = lr
        if i == 0:
            param_group["weight_decay"] = wd
    with precision.autocast():
        teacher_output = teacher(images[:2])
        student_output = student(images)
        loss = loss_fn(student_output, teacher_output, temp)
    if not math.isfinite(loss.item()):
        raise RuntimeError("loss is not finite")
    optimizer.zero_grad()
    loss.backward()
    for name, p in student.named_parameters():  # utils.clip_gradients
        if p.grad is not None:
            param_norm = p.grad.data.norm(2)
            clip_coef = clip_grad / (param_norm + 1e-6)
            if clip_coef < 1:
                p.grad.data.mul_(clip_coef)
    # utils.cancel_gradients_last_layer: outside the freeze window here, as in ours
    optimizer.step()
    with torch.no_grad():  # EMA update for the teacher
        for param_q, param_k in zip(student.parameters(), teacher.parameters()):
            param_k.data.mul_(momentum).add_((1 - momentum) * param_q.detach().data)
    return loss.item()


def reference_augment(setup):
    """DataAugmentationDINO (docs/papers.md#dino-views) at the benchmark's sizes: PIL in, tensors out."""
    import random

    from PIL import ImageFilter, ImageOps
    from torchvision import transforms as T

    class GaussianBlur:
        def __init__(self, p):
            self.p = p

        def __call__(self, img):
            if random.random() > self.p:
                return img
            return img.filter(ImageFilter.GaussianBlur(radius=random.uniform(0.1, 2.0)))

    class Solarization:
        def __init__(self, p):
            self.p = p

        def __call__(self, img):
            return ImageOps.solarize(img) if random.random() < self.p else img

    flip_and_color_jitter = T.Compose([
        T.RandomHorizontalFlip(p=0.5),
        T.RandomApply([T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)], p=0.8),
        T.RandomGrayscale(p=0.2),
    ])
    normalize = T.Compose([T.ToTensor(), T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    bicubic = T.InterpolationMode.BICUBIC
    g1 = T.Compose([T.RandomResizedCrop(setup["global_size"], scale=(0.4, 1.0), interpolation=bicubic),
                    flip_and_color_jitter, GaussianBlur(1.0), normalize])
    g2 = T.Compose([T.RandomResizedCrop(setup["global_size"], scale=(0.4, 1.0), interpolation=bicubic),
                    flip_and_color_jitter, GaussianBlur(0.1), Solarization(0.2), normalize])
    local = T.Compose([T.RandomResizedCrop(setup["local_size"], scale=(0.05, 0.4), interpolation=bicubic),
                       flip_and_color_jitter, GaussianBlur(0.5), normalize])

    def augment(pil_images):  # one sample at a time, as a Dataset's __getitem__ does; then collate
        import torch
        views = [[g1(im), g2(im)] + [local(im) for _ in range(setup["n_local"])] for im in pil_images]
        return [torch.stack([v[i] for v in views]) for i in range(len(views[0]))]

    return augment


# --------------------------------------------------------------------------------------------
# One variant, in this process
# --------------------------------------------------------------------------------------------
def run_variant(args, setup) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    from medssl.augment import MultiCropAugment, MultiCropConfig
    from medssl.runtime import MixedPrecision
    from medssl.ssl import Schedules, param_groups, resolve_device, training_step
    from medssl.ssl.dino import DINO, DINOLoss, DinoConfig, build_student_teacher

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    amp = MixedPrecision("auto", device, "precision")  # the trainer's default: bf16 on CUDA, fp32 on the CPU
    cfg = DinoConfig(epochs=1, batch_size=setup["batch"], out_dim=setup["out_dim"], hidden_dim=setup["hidden_dim"],
                     bottleneck_dim=setup["bottleneck_dim"], warmup_epochs=0, freeze_last_layer_epochs=0,
                     clip_mode="norm", clip_value=3.0, drop_path_rate=0.0, device=device.type)
    torch.manual_seed(0)
    student, teacher = build_student_teacher(cfg, {"name": setup["backbone"], "kwargs": setup["kwargs"]})
    student.to(device).train()
    teacher.to(device).train()
    optimizer = torch.optim.AdamW(param_groups(student), fused=device.type == "cuda")
    n_steps = args.warmup + args.repeat
    sched = Schedules.from_config(cfg, n_steps, cfg.batch_size)
    sched.method["momentum"][:] = 0.996  # a realistic EMA (the cosine of a 1-epoch run starts there anyway)
    n_crops = 2 + setup["n_local"]

    s = setup["image_size"]
    images = torch.randint(0, 256, (setup["batch"], 3, s, s), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    if args.variant == "ours":
        augment_cfg = MultiCropConfig.from_dict({"global_size": setup["global_size"], "local_size": setup["local_size"],
                                                 "n_local": setup["n_local"]})
        augmenter = MultiCropAugment(augment_cfg)
        gen = torch.Generator().manual_seed(0)
        dino = DINO(cfg, student, DINOLoss(cfg.out_dim, n_crops, cfg.student_temp, cfg.center_momentum).to(device),
                    teacher)

        def augment():
            return augmenter(images.to(device, non_blocking=True), gen)

        def step(crops, it):
            training_step(dino, student, optimizer, crops, it, sched, cfg, amp)
    else:
        ref_aug = reference_augment(setup)
        pil = [Image.fromarray(np.ascontiguousarray(im.permute(1, 2, 0).numpy())) for im in images]
        loss_fn = ReferenceDINOLoss(cfg.out_dim, n_crops, device)

        def augment():
            return [c.to(device, non_blocking=True) for c in ref_aug(pil)]

        def step(crops, it):
            reference_step(student, teacher, loss_fn, optimizer, crops, float(sched.lr[it]), float(sched.wd[it]),
                           float(sched.method["teacher_temp"][it]), float(sched.method["momentum"][it]), amp)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    aug_s, step_s = [], []
    for it in range(n_steps):
        sync()
        t0 = time.perf_counter()
        crops = augment()
        sync()
        t1 = time.perf_counter()
        step(crops, it)
        sync()
        t2 = time.perf_counter()
        if it >= args.warmup:
            aug_s.append(t1 - t0)
            step_s.append(t2 - t1)
    b = setup["batch"]
    total = min(a + s_ for a, s_ in zip(aug_s, step_s))
    result = {"variant": args.variant, "device": str(device), "threads": torch.get_num_threads(),
              "step_s": step_s, "augment_s": aug_s, "best_step_s": min(step_s), "best_augment_s": min(aug_s),
              "step_img_s": b / min(step_s), "step_plus_aug_img_s": b / total}
    if device.type == "cuda":
        result["peak_mem_mb"] = torch.cuda.max_memory_allocated() / 2**20
        result["peak_mem_kind"] = "cuda max_memory_allocated"
    else:
        result["peak_mem_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        result["peak_mem_kind"] = "peak RSS"
    return result


def main(argv=None):
    args, setup = parse_args(argv)
    if args.variant:
        print("RESULT " + json.dumps(run_variant(args, setup)), flush=True)
        return 0
    passthrough = [a for a in (argv if argv is not None else sys.argv[1:]) if not a.startswith("--json")]
    if args.json:  # drop "--json PATH" if given as two words
        passthrough = [a for a in passthrough if a != args.json]
    # Rounds alternate the variants, so that a machine shared with other work slows both alike.
    runs = {"ours": [], "reference": []}
    for _ in range(args.rounds):
        for variant in runs:
            proc = subprocess.run([sys.executable, __file__, *passthrough, "--variant", variant],
                                  capture_output=True, text=True)
            lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
            if proc.returncode != 0 or not lines:
                sys.stderr.write(proc.stdout + proc.stderr)
                raise SystemExit(f"variant {variant} failed")
            runs[variant].append(json.loads(lines[-1][len("RESULT "):]))
    results = []
    b = setup["batch"]
    for variant, rs in runs.items():
        step_s = [t for r in rs for t in r["step_s"]]
        aug_s = [t for r in rs for t in r["augment_s"]]
        totals = [a + t for r in rs for a, t in zip(r["augment_s"], r["step_s"])]
        results.append({**rs[0], "step_s": step_s, "augment_s": aug_s, "best_step_s": min(step_s),
                         "best_augment_s": min(aug_s), "step_img_s": b / min(step_s),
                         "step_plus_aug_img_s": b / min(totals), "peak_mem_mb": max(r["peak_mem_mb"] for r in rs)})
    print(f"setup: {json.dumps(setup)}; best of {args.rounds} rounds x {args.repeat} steps after "
          f"{args.warmup} warm-up; device {results[0]['device']}, {results[0]['threads']} thread(s)")
    print(f"{'variant':<10} {'step s':>8} {'step img/s':>11} {'aug s':>8} {'step+aug img/s':>15} "
          f"{'peak MB':>9}  ({results[0]['peak_mem_kind']})")
    for r in results:
        print(f"{r['variant']:<10} {r['best_step_s']:>8.3f} {r['step_img_s']:>11.1f} {r['best_augment_s']:>8.3f} "
              f"{r['step_plus_aug_img_s']:>15.1f} {r['peak_mem_mb']:>9.0f}")
    ours, ref = results
    print(f"ours / reference: step {ours['step_img_s'] / ref['step_img_s']:.2f}x, "
          f"step+aug {ours['step_plus_aug_img_s'] / ref['step_plus_aug_img_s']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"setup": setup, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
