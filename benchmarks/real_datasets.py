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
* ``blood``: the PBC peripheral blood cell images (Acevedo et al. 2020, Data in Brief 30:105474,
  Mendeley Data, CC BY 4.0; the source of BloodMNIST): 17,092 colour JPEGs, 360 x 363, 8 classes
  (basophil, eosinophil, erythroblast, immature granulocyte, lymphocyte, monocyte, neutrophil, platelet),
  ``PBC_dataset_normal_DIB/<class>/*.jpg`` of ``AuralinACC/Blood-Cell-Classification``.
* ``lung``: the lung half of LC25000 (Borkowski et al. 2019, arXiv:1912.12142; H&E histology, released
  free to use): 15,000 colour JPEGs, 3 classes of 5,000 (adenocarcinoma, benign, squamous cell
  carcinoma), augmented by its authors from 750 originals (so near-duplicates), stored at 224 x 224,
  ``lung_image_sets/lung_{aca,n,scc}/*.jpeg`` of ``loser564/Lung-Cancer-Prediction-Model``.
* ``derma``: HAM10000 dermatoscopic images (Tschandl et al. 2018, Sci. Data 5:180161, CC BY-NC 4.0):
  ``images/ISIC_*.jpg`` in commit ``a8ba08a`` of ``congtran19/XLA`` (resized there from 600 x 450 to
  224 x 224; later commits removed them), labelled with the 7 diagnoses (``dx``) of the original
  ``HAM10000_metadata.csv`` of ``rafid0004/Capstone_Skinlyze_ML-Model``: the 5,984 of its 7,496 images
  that the CSV lists (the others are ISIC 2018 test images, without diagnoses there).
* ``brain``: brain tumour MRI (Nickparvar 2021, Kaggle "Brain Tumor MRI Dataset", compiled from
  figshare, SARTAJ and Br35H; listed there as CC0, not checked): 7,019 greyscale slices stored as
  224 x 224 JPEGs, 4 classes (glioma, meningioma, no tumour, pituitary), ``{Training,Testing}/<class>/*.jpg`` of
  ``KomalChaudhari8/BRAIN_TUMOR_APP``.
* ``malaria``: the NIH malaria cell images (Rajaraman et al. 2018, PeerJ 6:e4568; public, U.S. NLM):
  27,558 thin-smear cell crops, parasitized vs uninfected, stored there as 50 x 50 greyscale PNGs,
  ``cell_images/{train,valid}/<class>/*.png`` of ``vishxlshxrma/Malaria_Classification``.

Get the stored copies with the workspace's ``fetch`` tool (``github:Felix301/AFL``,
``github:varun19424/pneumonia_mnist`` and the repositories named above); they land in
``/work/.mirror/<owner>+<name>/repo`` (bare git). The image-folder sets are decoded one image at a time
(``_GitImages``), only for the images kept. Then::

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


def _git_dir(repo: str, mirror: Path) -> Path:
    git_dir = mirror / repo.replace("/", "+") / "repo"
    if not git_dir.exists():
        raise SystemExit(f"{git_dir} missing: fetch github:{repo} first (see this script's docstring)")
    return git_dir


def _git_blob(repo: str, path: str, mirror: Path) -> bytes:
    return subprocess.run(["git", "-C", str(_git_dir(repo, mirror)), "cat-file", "-p", f"HEAD:{path}"],
                          check=True, capture_output=True).stdout


class _GitImages:
    """Image files of a bare mirror, decoded on demand (as ``images[i]``) through one ``git cat-file --batch``."""

    def __init__(self, git_dir: Path, shas: list[str], mode: str):
        self.git_dir, self.shas, self.mode, self._proc = git_dir, shas, mode, None

    def __len__(self) -> int:
        return len(self.shas)

    def __getitem__(self, i: int) -> np.ndarray:
        import io

        if self._proc is None:
            self._proc = subprocess.Popen(["git", "-C", str(self.git_dir), "cat-file", "--batch"],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._proc.stdin.write(f"{self.shas[i]}\n".encode())
        self._proc.stdin.flush()
        size = int(self._proc.stdout.readline().split()[2])
        data = self._proc.stdout.read(size + 1)[:-1]
        return np.asarray(Image.open(io.BytesIO(data)).convert(self.mode))


Folder = tuple[_GitImages, np.ndarray, list[str]]


def _image_folder(repo: str, prefixes: list[str], classes: dict[str, str], mirror: Path, mode: str = "RGB") -> Folder:
    """The images under ``<prefix>/<folder>/`` labelled by folder; ``classes`` maps folder -> class name."""
    git_dir = _git_dir(repo, mirror)
    listing = subprocess.run(["git", "-C", str(git_dir), "ls-tree", "-r", "-z", "HEAD", "--", *prefixes],
                             check=True, capture_output=True).stdout.decode().split("\0")
    names, shas, labels = list(classes.values()), [], []
    for entry in sorted(filter(None, listing), key=lambda e: e.split("\t", 1)[1]):
        meta, path = entry.split("\t", 1)
        folder, file = path.split("/")[-2:]
        if folder in classes and not file.startswith(".") and meta.split()[1] == "blob":
            shas.append(meta.split()[2])
            labels.append(names.index(classes[folder]))
    return _GitImages(git_dir, shas, mode), np.array(labels), names


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


def load_blood(mirror: Path) -> Folder:
    folders = ["basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte", "neutrophil", "platelet"]
    classes = {f: ("immature_granulocyte" if f == "ig" else f) for f in folders}
    return _image_folder("AuralinACC/Blood-Cell-Classification", ["PBC_dataset_normal_DIB"], classes, mirror)


def load_lung(mirror: Path) -> Folder:
    classes = {"lung_aca": "adenocarcinoma", "lung_n": "benign", "lung_scc": "squamous_cell_carcinoma"}
    return _image_folder("loser564/Lung-Cancer-Prediction-Model", ["lung_image_sets"], classes, mirror)


HAM_DX = {"akiec": "actinic_keratosis", "bcc": "basal_cell_carcinoma", "bkl": "benign_keratosis",
          "df": "dermatofibroma", "mel": "melanoma", "nv": "melanocytic_nevus", "vasc": "vascular_lesion"}


def load_derma(mirror: Path) -> Folder:
    import csv

    meta = _git_blob("rafid0004/Capstone_Skinlyze_ML-Model", "HAM10000_metadata.csv", mirror).decode()
    dx = {row["image_id"]: row["dx"] for row in csv.DictReader(meta.splitlines())}
    git_dir, rev = _git_dir("congtran19/XLA", mirror), "a8ba08aca1f0d9ee7524079182654870bc6420cc"
    listing = subprocess.run(["git", "-C", str(git_dir), "ls-tree", rev, "images/"], check=True,
                             capture_output=True, text=True).stdout.splitlines()
    names, shas, labels = list(HAM_DX.values()), [], []
    for line in sorted(listing, key=lambda e: e.split("\t")[1]):
        meta_, path = line.split("\t")
        if Path(path).stem in dx:  # the rest are ISIC 2018 test images, whose diagnoses the CSV lacks
            shas.append(meta_.split()[2])
            labels.append(names.index(HAM_DX[dx[Path(path).stem]]))
    return _GitImages(git_dir, shas, "RGB"), np.array(labels), names


def load_brain(mirror: Path) -> Folder:
    classes = {"glioma": "glioma", "meningioma": "meningioma", "notumor": "no_tumor", "pituitary": "pituitary"}
    return _image_folder("KomalChaudhari8/BRAIN_TUMOR_APP", ["Training", "Testing"], classes, mirror, mode="L")


def load_malaria(mirror: Path) -> Folder:
    classes = {"Parasitized": "parasitized", "Uninfected": "uninfected"}
    return _image_folder("vishxlshxrma/Malaria_Classification", ["cell_images"], classes, mirror, mode="L")


LOADERS = {"digits": lambda m: load_digits_images(), "fashion": load_fashion, "pneumonia": load_pneumonia,
           "blood": load_blood, "lung": load_lung, "derma": load_derma, "brain": load_brain, "malaria": load_malaria}


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
