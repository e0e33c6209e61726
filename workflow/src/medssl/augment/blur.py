"""Gaussian blur with a per-sample sigma.

With probability ``blur_p`` per view kind, sigma ``U(blur_sigma)`` per
sample, separable with reflect padding, same weights as torchvision ``GaussianBlur``
(sparsam used kernel 11); views up to 64 px apply it as two batched matmuls with the
reflect-padded 1-D blur folded into a per-sample [S, S] matrix, larger views as two depthwise
convolutions with per-sample kernels. With ``blur_kernel == 0`` the kernel is
``2 * ceil(3 * sigma_max) + 1`` (DINO used PIL's ``GaussianBlur(radius=sigma)``, whose
support is not truncated the same way). The kernel is capped so the padding stays smaller
than the view. ``blur_reference_size`` N > 0 gives sigma and kernel for an N-px view and scales
both to each view's size (``size / N``), so a 224-px recipe blurs a 32-px view to the same share
of the view; 0 (default) takes them in pixels of every view, as torchvision.

Against the libraries, same sigma per sample, kernel 13, in benchmarks/augment_ops.py's CPU ms per batch of
views (demo / paper scale, as in colour.py): 1.45 / 166 ms here; torchvision v2 ``gaussian_blur`` per image
(one 2-D kernel) 36 / 956 ms, values within 9e-7; kornia's ``gaussian_blur2d`` with per-sample sigma
4.4 / 254 ms, within 4e-7.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_REFLECT_INDEX: dict = {}


def _gaussian_kernels(sigma: torch.Tensor, kernel: int, dtype, device) -> torch.Tensor:
    r = kernel // 2
    t = torch.arange(-r, r + 1, dtype=dtype, device=device)
    k1 = torch.exp(-0.5 * (t.view(1, -1) / sigma.view(-1, 1)) ** 2)
    return k1 / k1.sum(dim=1, keepdim=True)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel: int) -> torch.Tensor:
    """Per-sample separable Gaussian blur of square [N, C, S, S], reflect padding (torchvision GaussianBlur).

    Small views: the 1-D blur with reflect padding folded in is an [S, S] matrix per sample,
    applied as ``M @ x @ M^T`` (two batched matmuls). Larger views: reflect pad then two
    depthwise convolutions with per-sample kernels (groups = N * C).
    """
    n, c, h, w = x.shape
    kernel = min(kernel, 2 * (min(h, w) - 1) + 1)
    if kernel <= 1 or n == 0:
        return x
    r = kernel // 2
    k1 = _gaussian_kernels(sigma.to(x.device, x.dtype), kernel, x.dtype, x.device)  # [N, k]
    if h == w and h <= 64:
        key = (h, kernel, str(x.device))
        idx = _REFLECT_INDEX.get(key)
        if idx is None:
            idx = torch.arange(h, device=x.device).view(-1, 1) + torch.arange(-r, r + 1, device=x.device).view(1, -1)
            idx = torch.where(idx < 0, -idx, idx)
            idx = torch.where(idx > h - 1, 2 * (h - 1) - idx, idx)
            _REFLECT_INDEX[key] = idx
        m = torch.zeros(n, h, h, dtype=x.dtype, device=x.device)
        m.scatter_add_(2, idx.expand(n, h, kernel), k1.view(n, 1, kernel).expand(n, h, kernel))
        m = m.unsqueeze(1)
        return torch.matmul(torch.matmul(m, x), m.transpose(-1, -2))
    wts = k1.repeat_interleave(c, dim=0)  # [N*C, k]
    y = F.pad(x.reshape(1, n * c, h, w), (r, r, r, r), mode="reflect")
    y = F.conv2d(y, wts.view(n * c, 1, kernel, 1), groups=n * c)
    y = F.conv2d(y, wts.view(n * c, 1, 1, kernel), groups=n * c)
    return y.view(n, c, h, w)
