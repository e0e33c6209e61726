"""Throughput and peak memory of one SSL training step per method of a shipped config: medssl's trainer step
against a plain loop of the papers' step, on the same model, batch, views, optimiser, precision and threads.

    python benchmarks/ssl_step.py --preset small --threads 1      # every method, CPU-sized
    python benchmarks/ssl_step.py --preset paper --methods simclr vicreg   # the papers' settings (a GPU)

The presets are shipped configs, read as the trainer reads them (`benchmarks/shipped.py`), each method on
its config's first dataset:
  small  config/config.yaml with config/presets/small_data_<method>.yaml: the demo's backbone and 32-px
         images, each method's CPU-sized recipe (small_data_dino.yaml is the demo's own DINO, with the demo
         dataset's method_params);
  paper  config/smalldatassl.yaml for simclr, dclw, simsiam and vicreg (ResNet-50, 224 px, batch 64, the
         paper's projectors) and config/paper.yaml for dino (XCiT-S/8, 256 px, batch 256, 2 + 5 views,
         65,536 prototypes).
`benchmarks/dino_step.py` times DINO on any config or custom shapes.

Each (method, variant) runs in its own process (so the peak memory is its own), in alternating rounds, so
that a machine shared with other work slows both alike:
  ours       the trainer's step: medssl.augment.MultiCropAugment (batched, on the device) on the uint8 batch,
             then medssl.ssl.training_step (the method's loss, vectorised clipping, its hooks);
  reference  the papers' loops written plainly, with the config's values: per-image PIL / torchvision views
             collated after (DINO's DataAugmentationDINO, docs/papers.md#dino-views; SmallDataSSL's two
             views, docs/papers.md#smalldatassl-data-and-views; sparsam's perspective and rotation,
             docs/papers.md#sparsam-views), then for simclr, dclw, simsiam and vicreg SmallDataSSL's
             ``util.train_SSL`` (z1 = model(x1), z2 = model(x2), the loss as ``lossfuns.py`` computes it,
             docs/papers.md#smalldatassl-losses), for dino facebookresearch/dino's ``train_one_epoch``
             (per-pair log-softmax loss, per-parameter clipping loop, python-loop EMA; DINOv2's
             ``sinkhorn_knopp_teacher`` and ``KoLeoLoss`` where the config asks for them); the config's
             clipping and loss scaling in the plain form of those codes.
Both variants build the model, optimiser, precision and gradient checkpointing from the job as the trainer
does, with random weights (a pretrained backbone costs the same per step, and needs no download). The
steps timed are steps of the config's own schedules with one epoch as long as the steps run, placed after
every warm-up (lr, DINO's teacher temperature and last-layer freeze) so that they do the work of most of
training; only a config whose epochs end before that gets more epochs. Reported: the best of --repeat
timed steps (after --warmup) over all rounds, images/s of the step alone and with the views, by wall-clock
and by the process's CPU time, and the peak memory (CPU: peak RSS; CUDA: torch.cuda.max_memory_allocated).
On a machine loaded by other work the CPU-time ratios are the steadier ones (with --threads 1 they count
the work done).
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
from shipped import REPO, job_spec, with_overrides  # noqa: E402

METHODS = ["simclr", "dclw", "simsiam", "vicreg", "dino"]
PRESETS = ("paper", "small")


def preset_job(preset: str, method: str, root: Path = REPO) -> dict:
    """The job ``method`` gets in ``preset`` (see the module docstring)."""
    if preset == "small":
        return job_spec(["config/config.yaml", f"config/presets/small_data_{method}.yaml"], method, root=root)
    if preset == "paper":
        return job_spec(["config/paper.yaml" if method == "dino" else "config/smalldatassl.yaml"], method,
                        root=root)
    raise ValueError(f"unknown preset {preset!r}; known: {PRESETS}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=PRESETS, default="small")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=METHODS)
    p.add_argument("--batch", type=int, help="instead of the config's batch_size")
    add_timing_args(p, rounds=2)
    p.add_argument("--job", help=argparse.SUPPRESS)  # a child process: the job as JSON ...
    p.add_argument("--variant", choices=["ours", "reference"], help=argparse.SUPPRESS)  # ... and its variant
    return p.parse_args(argv)


def add_timing_args(p: argparse.ArgumentParser, rounds: int) -> None:
    p.add_argument("--repeat", type=int, default=3, help="timed steps per round; the best is reported")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--rounds", type=int, default=rounds, help="alternating runs of each variant (own process each)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default: the config's params.device")
    p.add_argument("--json", help="also write the results here")


# ------------------------------------------------------------------ the reference loops, written plainly
def reference_views(augmenter):
    """The views of ``augmenter`` (a MultiCropAugment) as the reference codes make them: per image with PIL
    and torchvision, then collated; global view 1, global view 2, the local views."""
    import random

    import torch
    from PIL import ImageFilter
    from torchvision import transforms as T

    aug = augmenter.cfg

    class PILBlur:  # DINO's utils.GaussianBlur: PIL's blur, radius drawn per image
        def __init__(self, p, sigma):
            self.p, self.sigma = p, sigma

        def __call__(self, img):
            if random.random() > self.p:
                return img
            return img.filter(ImageFilter.GaussianBlur(radius=random.uniform(*self.sigma)))

    mean, std = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)) if aug.normalize == "imagenet" else \
        ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))

    def view(kind, size, scale):  # kind: 0, 1 = the global views, 2 = a local view
        persp = [T.RandomPerspective(aug.perspective_distortion, p=aug.perspective_p[kind])] \
            if aug.perspective_p[kind] and aug.perspective_distortion else []
        rotate = [T.RandomRotation(aug.rotation_degrees)] if aug.rotation_degrees else []
        crop = [T.RandomResizedCrop(size, scale=scale, ratio=aug.ratio, interpolation=T.InterpolationMode.BICUBIC),
                T.RandomHorizontalFlip(aug.hflip_p)] + ([T.RandomVerticalFlip(aug.vflip_p)] if aug.vflip_p else [])
        geometry = persp + rotate + crop if aug.geometry_order == "image_first" else crop + rotate + persp
        colour = [T.RandomApply([T.ColorJitter(aug.brightness, aug.contrast, aug.saturation, aug.hue)],
                                p=aug.jitter_p)] if aug.jitter_p else []
        colour += [T.RandomGrayscale(aug.grayscale_p)] if aug.grayscale_p else []
        if aug.blur_p[kind]:  # SmallDataSSL's and sparsam's torchvision blur, or DINO's PIL one
            lo, hi, kernel = augmenter.blur_for(size)
            colour.append(T.RandomApply([T.GaussianBlur(kernel, (lo, hi))], p=aug.blur_p[kind])
                          if aug.blur_kernel else PILBlur(aug.blur_p[kind], (lo, hi)))
        colour += [T.RandomSolarize(128, p=aug.solarize_p[kind])] if aug.solarize_p[kind] else []
        return T.Compose(geometry + colour + [T.ToTensor(), T.Normalize(mean, std)])

    transforms = [view(0, aug.global_size, aug.global_scale), view(1, aug.global_size, aug.global_scale)]
    transforms += [view(2, aug.local_size, aug.local_scale)] * aug.n_local

    def views(pil_images):  # one image at a time, as a Dataset's __getitem__; then the collate
        per_image = [[t(im) for t in transforms] for im in pil_images]
        return [torch.stack([v[i] for v in per_image]) for i in range(len(transforms))]

    return views


def set_schedules(optimizer, sched, it) -> None:
    """The reference loops' ``for param_group in optimizer.param_groups: param_group["lr"] = ...``."""
    for group in optimizer.param_groups:
        group["lr"] = sched.base_lr if group.get("fixed_lr") else float(sched.lr[it])  # SimSiam's fix_lr
        if group["decayed"]:
            group["weight_decay"] = float(sched.wd[it])


def update(loss, model, optimizer, cfg, scaler, it: int = 0, freeze_iters: int = 0) -> None:
    """zero_grad, (scaled) backward, the config's clipping as DINO's ``utils.clip_gradients`` (a loop over
    the parameters) or sparsam's timm AGC, DINO's ``cancel_gradients_last_layer``, (scaled) step."""
    import timm.utils

    optimizer.zero_grad()
    if scaler.is_enabled():
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    if cfg.clip_mode == "norm":
        for p in model.parameters():
            if p.grad is not None:
                param_norm = p.grad.data.norm(2)
                clip_coef = cfg.clip_value / (param_norm + 1e-6)
                if clip_coef < 1:
                    p.grad.data.mul_(clip_coef)
    elif cfg.clip_mode == "agc":
        timm.utils.adaptive_clip_grad([p for p in model.parameters() if p.grad is not None], cfg.clip_value)
    if it < freeze_iters:
        for name, p in model.named_parameters():
            if "last_layer" in name:
                p.grad = None
    if scaler.is_enabled():
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()


def two_view_loss(kind, cfg):
    """SmallDataSSL's ``lossfuns.py`` (VICReg: the official variance term), with the config's values."""
    import torch
    import torch.nn.functional as F

    def simclr(z1, z2):  # SimCLRLoss
        t, b = cfg.temperature, len(z1)
        out = torch.cat([z1, z2])
        sim = torch.exp(out @ out.t() / t)
        mask = ~torch.eye(2 * b, dtype=torch.bool, device=out.device)
        sim = sim.masked_select(mask).view(2 * b, -1)
        pos = torch.exp((z1 * z2).sum(-1) / t)
        pos = torch.cat([pos, pos])
        return (-torch.log(pos / sim.sum(-1))).mean()

    def dclw_one(z1, z2):  # DCLWLoss, z1 anchors
        t, b = cfg.temperature, len(z1)
        cross = z1 @ z2.t()
        pos = cross.diag()
        w = 2 - b * F.softmax(pos / cfg.sigma, dim=0)
        mask = torch.eye(b, device=z1.device) * math.log(1e-45)
        neg = torch.cat([z1 @ z1.t(), cross], dim=1) / t + torch.cat([mask, mask], dim=1)
        return (-w * pos / t + torch.logsumexp(neg, dim=1)).mean()

    def simsiam(out1, out2):  # SimSiamLoss on (z, p); p = z without a predictor, as the paper's code
        (z1, p1), (z2, p2) = out1, out2
        return 0.5 * -F.cosine_similarity(p1, z2.detach()).mean() + 0.5 * -F.cosine_similarity(p2, z1.detach()).mean()

    def vicreg(z1, z2):
        n, d = z1.shape
        sim = F.mse_loss(z1, z2)
        x, y = z1 - z1.mean(0), z2 - z2.mean(0)
        std = (F.relu(1 - torch.sqrt(x.var(0) + 1e-4)).mean() + F.relu(1 - torch.sqrt(y.var(0) + 1e-4)).mean()) / 2
        cx, cy = x.t() @ x / (n - 1), y.t() @ y / (n - 1)
        off = ~torch.eye(d, dtype=torch.bool, device=x.device)
        cov = cx[off].pow(2).sum() / d + cy[off].pow(2).sum() / d
        return cfg.sim_coeff * sim + cfg.std_coeff * std + cfg.cov_coeff * cov

    if kind == "dclw":
        return (lambda z1, z2: dclw_one(z1, z2) + dclw_one(z2, z1)) if cfg.symmetric else dclw_one
    return {"simclr": simclr, "simsiam": simsiam, "vicreg": vicreg}[kind]


def two_view_step(m, cfg, optimizer, sched, amp, scaler):
    """SmallDataSSL's ``util.train_SSL`` step."""
    loss_fn = two_view_loss(m.kind, cfg)
    backbone, head = m.model.backbone, m.model.head

    def model(x):
        features = backbone(x)
        out = head(features[0] if isinstance(features, tuple) else features)
        return tuple(o.float() for o in out) if isinstance(out, tuple) else out.float()

    def step(views, it):
        set_schedules(optimizer, sched, it)
        with amp.autocast():
            z1, z2 = model(views[0]), model(views[1])
            loss = loss_fn(z1, z2)
        update(loss, m.model, optimizer, cfg, scaler)
        if not math.isfinite(loss.item()):
            raise RuntimeError("loss is not finite")

    return step


class DINOLoss:
    """facebookresearch/dino's DINOLoss (a log-softmax per pair); DINOv2's ``sinkhorn_knopp_teacher`` in
    place of the centre with ``centering: sinkhorn``."""

    def __init__(self, cfg, ncrops, device):
        import torch
        self.cfg, self.ncrops = cfg, ncrops
        self.center = torch.zeros(1, cfg.out_dim, device=device)

    @staticmethod
    def sinkhorn_knopp_teacher(teacher_output, teacher_temp, n_iterations):
        import torch
        with torch.no_grad():
            Q = torch.exp(teacher_output.float() / teacher_temp).t()
            B, K = Q.shape[1], Q.shape[0]
            Q /= torch.sum(Q)
            for _ in range(n_iterations):
                Q /= torch.sum(Q, dim=1, keepdim=True)
                Q /= K
                Q /= torch.sum(Q, dim=0, keepdim=True)
                Q /= B
            Q *= B
            return Q.t()

    def __call__(self, student_output, teacher_output, temp):
        import torch
        import torch.nn.functional as F
        student_out = (student_output.float() / self.cfg.student_temp).chunk(self.ncrops)
        if self.cfg.centering == "sinkhorn":
            teacher_out = self.sinkhorn_knopp_teacher(teacher_output, temp, self.cfg.sinkhorn_iterations).chunk(2)
        else:
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
        if self.cfg.centering == "ema":
            with torch.no_grad():
                batch_center = torch.sum(teacher_output.float(), dim=0, keepdim=True) / len(teacher_output)
                m = self.cfg.center_momentum
                self.center = self.center * m + batch_center * (1 - m)
        return total_loss


def koleo(x, eps=1e-8):
    """DINOv2's KoLeoLoss on one global view's student features."""
    import torch
    import torch.nn.functional as F
    with torch.autocast(x.device.type, enabled=False):
        x = F.normalize(x.float(), eps=eps, p=2, dim=-1)
        dots = torch.mm(x, x.t())
        n = x.shape[0]
        dots.view(-1)[:: (n + 1)].fill_(-1)
        _, nearest = torch.max(dots, dim=1)
        return -torch.log(F.pairwise_distance(x, x[nearest], 2, eps) + eps).mean()


def dino_step(m, cfg, optimizer, sched, amp, scaler, n_crops, device):
    """facebookresearch/dino's ``train_one_epoch`` step (KoLeo on the student's global-view features)."""
    import torch
    student, teacher = m.model, m.teacher
    loss_fn = DINOLoss(cfg, n_crops, device)
    freeze_iters = sched.method["freeze_last_layer_iters"]

    def step(images, it):
        set_schedules(optimizer, sched, it)
        with amp.autocast():
            teacher_output = teacher(images[:2])
            student_output, features = student(images, return_features=True)
            loss = loss_fn(student_output, teacher_output, float(sched.method["teacher_temp"][it]))
            if cfg.koleo_weight > 0:
                n = len(images[0])
                loss = loss + cfg.koleo_weight * sum(koleo(features[i * n:(i + 1) * n]) for i in range(2))
        if not math.isfinite(loss.item()):
            raise RuntimeError("loss is not finite")
        update(loss, student, optimizer, cfg, scaler, it, freeze_iters)
        with torch.no_grad():  # EMA update for the teacher
            momentum = float(sched.method["momentum"][it])
            for param_q, param_k in zip(student.parameters(), teacher.parameters()):
                param_k.data.mul_(momentum).add_((1 - momentum) * param_q.detach().data)

    return step


# ------------------------------------------------------------------ one (job, variant), in this process
def timed_window(cfg, n_steps: int):
    """(config, first timed iteration): with one epoch = ``n_steps`` iterations, the first epoch after every
    warm-up of the schedules (``cfg.epoch_keys``); the epochs are raised only if the config's end before."""
    import dataclasses
    warm = math.ceil(max(float(getattr(cfg, key)) for key in cfg.epoch_keys))
    if cfg.epochs < warm + 1:
        cfg = dataclasses.replace(cfg, epochs=warm + 1)
    return cfg, warm * n_steps


def run_variant(job: dict, variant: str, args) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    from medssl.augment import MultiCropAugment
    from medssl.runtime import MixedPrecision
    from medssl.ssl import Schedules, parse_spec, resolve_device, training_step
    from medssl.ssl.distributed import seed_everything
    from medssl.ssl.optim import build_optimizer

    if args.threads:
        torch.set_num_threads(args.threads)
    method_cls, cfg, aug_cfg, _ = parse_spec(job)
    device = resolve_device(args.device or cfg.device)
    amp = MixedPrecision(cfg.precision, device, "precision")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    n_steps = args.warmup + args.repeat
    cfg, start = timed_window(cfg, n_steps)
    sched = Schedules.from_config(cfg, n_steps, cfg.batch_size)
    augmenter = MultiCropAugment(aug_cfg)
    seed_everything(cfg.seed)
    m = method_cls.build(cfg, {**job["backbone"], "pretrained": False}, augmenter.n_views)
    if cfg.grad_checkpointing:
        m.model.backbone.set_grad_checkpointing(True)
    m.to(device)
    optimizer = build_optimizer(m.model, cfg, device, m.fixed_lr_prefixes())
    scaler = amp.grad_scaler()
    if cfg.compile:
        for net in (m.model, m.teacher):
            if net is not None:
                net.backbone.compile()
    m.train_mode()

    b, s = cfg.batch_size, job["image_size"]
    images = torch.randint(0, 256, (b, 3, s, s), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    if variant == "ours":
        gen = torch.Generator().manual_seed(0)

        def augment():
            return augmenter(images.to(device, non_blocking=True), gen)

        def step(views, it):
            training_step(m, m.model, optimizer, views, it, sched, cfg, amp, scaler)
    else:
        ref_views = reference_views(augmenter)
        pil = [Image.fromarray(np.ascontiguousarray(im.permute(1, 2, 0).numpy())) for im in images]

        def augment():
            return [v.to(device, non_blocking=True) for v in ref_views(pil)]

        step = (dino_step(m, cfg, optimizer, sched, amp, scaler, augmenter.n_views, device) if m.kind == "dino"
                else two_view_step(m, cfg, optimizer, sched, amp, scaler))

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = {key: [] for key in ("augment_s", "step_s", "augment_cpu_s", "step_cpu_s")}
    for k in range(n_steps):
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        views = augment()
        sync()
        t1, c1 = time.perf_counter(), time.process_time()
        step(views, start + k)
        sync()
        t2, c2 = time.perf_counter(), time.process_time()
        if k >= args.warmup:
            for key, value in zip(times, (t1 - t0, t2 - t1, c1 - c0, c2 - c1)):
                times[key].append(value)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # KiB on Linux
    views = [aug_cfg.global_size] * 2 + [aug_cfg.local_size] * aug_cfg.n_local
    return {"method": m.kind, "variant": variant, "device": str(device), "threads": torch.get_num_threads(),
            "precision": amp.name, "batch": b, "views_px": views, **times, "peak_mem_mb": peak,
            "peak_mem_kind": "cuda max_memory_allocated" if device.type == "cuda" else "peak RSS"}


# ------------------------------------------------------------------ alternating rounds, summary
def child_command(job: dict, variant: str, args) -> list[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--job", json.dumps(job), "--variant", variant,
           f"--repeat={args.repeat}", f"--warmup={args.warmup}"]
    return cmd + ([f"--threads={args.threads}"] if args.threads else []) + \
        ([f"--device={args.device}"] if args.device else [])


def compare(job: dict, args) -> list[dict]:
    """Both variants of ``job``, ``args.rounds`` alternating runs each: one summary row per variant."""
    runs = {"ours": [], "reference": []}
    for _ in range(args.rounds):
        for variant in runs:
            proc = subprocess.run(child_command(job, variant, args), capture_output=True, text=True)
            lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            if proc.returncode != 0 or not lines:
                sys.stderr.write(proc.stdout + proc.stderr)
                raise SystemExit(f"{job['source']}: {variant} failed")
            runs[variant].append(json.loads(lines[-1][len("RESULT "):]))
    rows = []
    for variant, rs in runs.items():
        b = rs[0]["batch"]

        def best(*keys):
            return b / min(sum(r[k][i] for k in keys) for r in rs for i in range(len(r[keys[0]])))

        rows.append({**{k: rs[0][k] for k in ("method", "variant", "device", "threads", "precision", "batch",
                                              "views_px", "peak_mem_kind")},
                     "source": job["source"], "backbone": job["backbone"]["name"],
                     "step_img_s": best("step_s"), "step_plus_aug_img_s": best("augment_s", "step_s"),
                     "cpu_step_img_s": best("step_cpu_s"),
                     "cpu_step_plus_aug_img_s": best("augment_cpu_s", "step_cpu_s"),
                     "peak_mem_mb": max(r["peak_mem_mb"] for r in rs)})
        print("ROW " + json.dumps(rows[-1]), flush=True)  # partial results survive an interrupted run
    return rows


def report(table: list[dict], args) -> None:
    for ours in table[::2]:
        print(f"{ours['method']}: {ours['source']}; {ours['backbone']}, batch {ours['batch']}, views "
              f"{'+'.join(map(str, ours['views_px']))} px, {ours['precision']}")
    print(f"best of {args.rounds} rounds x {args.repeat} steps after {args.warmup} warm-up; device "
          f"{table[0]['device']}, {table[0]['threads']} thread(s); memory: {table[0]['peak_mem_kind']}")
    print(f"{'method':<8} {'variant':<10} {'step img/s':>11} {'step+aug img/s':>15} {'CPU: step':>10} "
          f"{'step+aug':>9} {'peak MB':>8}")
    for r in table:
        print(f"{r['method']:<8} {r['variant']:<10} {r['step_img_s']:>11.1f} {r['step_plus_aug_img_s']:>15.1f} "
              f"{r['cpu_step_img_s']:>10.1f} {r['cpu_step_plus_aug_img_s']:>9.1f} {r['peak_mem_mb']:>8.0f}")
    for ours, ref in zip(table[::2], table[1::2]):
        ratio = {k: ours[k] / ref[k] for k in ("step_img_s", "step_plus_aug_img_s", "cpu_step_img_s",
                                              "cpu_step_plus_aug_img_s")}
        print(f"{ours['method']}: ours / reference: wall step {ratio['step_img_s']:.2f}x, step+aug "
              f"{ratio['step_plus_aug_img_s']:.2f}x; CPU time step {ratio['cpu_step_img_s']:.2f}x, step+aug "
              f"{ratio['cpu_step_plus_aug_img_s']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": table}, indent=1))


def main(argv=None):
    args = parse_args(argv)
    if args.variant:  # a child process of compare()
        print("RESULT " + json.dumps(run_variant(json.loads(args.job), args.variant, args)), flush=True)
        return 0
    table = []
    for method in args.methods:
        job = preset_job(args.preset, method)
        table += compare(with_overrides(job, params={"batch_size": args.batch}), args)
    report(table, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
