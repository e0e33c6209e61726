"""Build the real image datasets of the SSL robustness check (benchmarks/robustness.md) as PNG folders.

Each dataset becomes ``<out>/<name>/<class>/<index>.png`` (one sub-folder per class, the README's
``source: {kind: folder}``), RGB at 32 px, subsampled reproducibly (``--seed``) to at most
``--max-images`` images. The data stays outside the repository.

Sources (all real images, none made by this project; no internet needed beyond the stored copies):

* ``digits``: scikit-learn's bundled UCI handwritten digits (``load_digits``: 1,797 images, 8 x 8,
  10 classes), upscaled to 32 px.
* ``fashion``: Fashion-MNIST (Xiao et al. 2017; 28 px, 10 clothing classes), the training images of
  the stored GitHub copy of ``Felix301/AFL`` (``data/fashion/train-images-idx3-ubyte.gz``): that copy is
  truncated after 3,615 images, which we read with a streaming decompressor; labels are complete.
* ``pneumonia``: PneumoniaMNIST (MedMNIST v2, Yang et al. 2023; paediatric chest X-rays, 28 px,
  normal vs pneumonia, CC BY 4.0), ``data/pneumoniamnist.npz`` of ``varun19424/pneumonia_mnist``.

Get the stored copies with the workspace's ``fetch`` tool (``github:Felix301/AFL``,
``github:varun19424/pneumonia_mnist``); they land in ``/work/.mirror/<owner>+<name>/repo`` (bare git).
Then::

    python benchmarks/real_datasets.py          # from the repository root: benchmarks/out/data/<name>
"""

from __future__ import annotations

import argparse
import gzip
import subprocess
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

MIRROR = Path("/work/.mirror")
FASHION_CLASSES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                   "ankle_boot"]


def _git_blob(repo: str, path: str, mirror: Path) -> bytes:
    git_dir = mirror / repo.replace("/", "+") / "repo"
    if not git_dir.exists():
        raise SystemExit(f"{git_dir} missing: fetch github:{repo} first (see this script's docstring)")
    return subprocess.run(["git", "-C", str(git_dir), "cat-file", "-p", f"HEAD:{path}"], check=True,
                          capture_output=True).stdout


def load_digits_images() -> tuple[np.ndarray, np.ndarray, list[str]]:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.clip(d.images * (255.0 / 16.0), 0, 255).astype(np.uint8)
    return images, d.target, [f"digit_{i}" for i in range(10)]


def load_fashion(mirror: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    raw = _git_blob("Felix301/AFL", "data/fashion/train-images-idx3-ubyte.gz", mirror)
    data = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw)  # the stored file is truncated
    n = (len(data) - 16) // 784
    images = np.frombuffer(data[16:16 + n * 784], np.uint8).reshape(n, 28, 28)
    labels_raw = gzip.decompress(_git_blob("Felix301/AFL", "data/fashion/train-labels-idx1-ubyte.gz", mirror))
    labels = np.frombuffer(labels_raw[8:], np.uint8)[:n]
    return images, labels.astype(int), FASHION_CLASSES


def load_pneumonia(mirror: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    import io

    npz = np.load(io.BytesIO(_git_blob("varun19424/pneumonia_mnist", "data/pneumoniamnist.npz", mirror)))
    images = np.concatenate([npz[f"{s}_images"] for s in ("train", "val", "test")])
    labels = np.concatenate([npz[f"{s}_labels"].ravel() for s in ("train", "val", "test")])
    return images, labels.astype(int), ["normal", "pneumonia"]


LOADERS = {"digits": lambda m: load_digits_images(), "fashion": load_fashion, "pneumonia": load_pneumonia}


def write_folder(images: np.ndarray, labels: np.ndarray, classes: list[str], out: Path, size: int,
                 max_images: int, seed: int) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.permutation(len(images))[:max_images])
    counts: dict[str, int] = {}
    for i in keep:
        cls = classes[labels[i]]
        (out / cls).mkdir(parents=True, exist_ok=True)
        img = Image.fromarray(images[i]).convert("RGB").resize((size, size), Image.BILINEAR)
        img.save(out / cls / f"{i:05d}.png")
        counts[cls] = counts.get(cls, 0) + 1
    return counts


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("benchmarks/out/data"))  # ignored by git
    p.add_argument("--mirror", type=Path, default=MIRROR)
    p.add_argument("--names", nargs="+", default=sorted(LOADERS), choices=sorted(LOADERS))
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--max-images", type=int, default=1500)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for name in args.names:
        out = args.out / name
        if out.exists():
            raise SystemExit(f"{out} exists; remove it to rebuild")
        images, labels, classes = LOADERS[name](args.mirror)
        counts = write_folder(images, labels, classes, out, args.size, args.max_images, args.seed)
        print(f"{name}: {sum(counts.values())} images -> {out} {counts}")


if __name__ == "__main__":
    main()
