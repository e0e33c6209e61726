"""Reading one image the way the workflow uses it (:func:`load_image`: a file, or a row of a
MedMNIST-format .npz), and the check every image of a dataset passes when the dataset is indexed
(:func:`check_images`).

What is read, and what is refused (README, "When something goes wrong"):

* the file is decoded by its content, not its name (a JPEG saved as ``.png`` is read as a JPEG);
* the EXIF orientation is applied: a camera stores a portrait photo sideways and says so in EXIF;
* CMYK, palette, bilevel, 16-bit and float images become the dataset's ``channels`` (RGB or L);
  16-bit and float ones are scaled from their own minimum and maximum;
* transparent pixels become black: the colour stored under a transparent pixel is whatever the
  encoder left there, not image content;
* an image of several frames (a multi-page TIFF, an animated GIF or PNG, a multi-frame DICOM) is
  refused: which frame is the image cannot be guessed. A JPEG's extra MPF pictures (a phone's depth
  map or preview) are not frames of the photo: its first picture is read;
* a truncated file is refused, never padded with grey;
* an image 1 px wide or high is refused (a placeholder or a tracking pixel, not an image);
* an image of more pixels than PIL's ``Image.MAX_IMAGE_PIXELS`` is refused (PIL only warns below
  twice that): a decompression bomb, or a scan to tile or downscale first.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps, UnidentifiedImageError

from medssl.data.errors import DatasetError
from medssl.data.manifests import clean_str

MIN_SIDE = 2
_HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I", "F")


def _import_pydicom(path: Path):
    try:
        import pydicom  # type: ignore[import-not-found]
    except ImportError as e:
        raise DatasetError(f"{path}: reading DICOM (.dcm) files needs pydicom (pip install pydicom)") from e
    return pydicom


def _several_frames(path: Path, frames: int) -> DatasetError:
    return DatasetError(f"{path}: {frames} frames (a multi-page TIFF, an animation or a stack): which one is "
                        "the image is ambiguous; save the frame you mean as its own file")


def _dicom_to_uint8(path: Path) -> np.ndarray:
    pydicom = _import_pydicom(path)
    ds = pydicom.dcmread(str(path))
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frames > 1:
        raise _several_frames(path, frames)
    arr = np.asarray(ds.pixel_array)
    photometric = str(getattr(ds, "PhotometricInterpretation", "")).upper()
    slope = float(getattr(ds, "RescaleSlope", 1) or 1)
    intercept = float(getattr(ds, "RescaleIntercept", 0) or 0)
    already_8bit = arr.dtype == np.uint8 and slope == 1.0 and intercept == 0.0
    arr = arr.astype(np.float64) * slope + intercept
    if not already_8bit:  # scale the stored range to 0..255
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
    if photometric == "MONOCHROME1":
        arr = 255.0 - arr
    arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    return arr[..., :3] if arr.ndim == 3 and arr.shape[-1] == 4 else arr


def _check_shape(path: Path, im: Image.Image) -> None:
    frames = getattr(im, "n_frames", 1)
    if frames > 1 and im.format != "MPO":
        raise _several_frames(path, frames)
    if min(im.size) < MIN_SIDE:
        raise DatasetError(f"{path}: {im.width}x{im.height} px, too small to be an image (a placeholder or a "
                           "tracking pixel?); remove it")


def _decode_error(path: Path, err: Exception) -> DatasetError:
    if isinstance(err, UnidentifiedImageError):
        why = "not an image format PIL reads"
    else:
        why = f"{type(err).__name__}: {str(err).replace(str(path), 'the file')}"
    return DatasetError(f"{path}: cannot decode ({why[:200]})")


def read(path: str | os.PathLike, check: bool = False) -> Image.Image:
    """The decoded, upright image of a file (any format PIL reads, or DICOM); :class:`DatasetError`
    naming the file otherwise. ``check``: decode a JPEG at 1/8 scale, which still reads all of its
    data (truncation shows) several times faster, for the check of every file at indexing."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".dcm":
            return Image.fromarray(_dicom_to_uint8(path))
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                _check_shape(path, im)
                if check and im.format in ("JPEG", "MPO"):
                    im.draft(im.mode, (max(1, im.width // 8), max(1, im.height // 8)))
                im.load()
                return ImageOps.exif_transpose(im)
    except FileNotFoundError as err:
        raise DatasetError(f"{path}: image file not found") from err
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise DatasetError(f"{path}: {err} The limit is PIL's Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS}: "
                           "a decompression bomb, or a scan to tile or downscale before use") from err
    except DatasetError:
        raise
    except Exception as err:  # noqa: BLE001 - any decoder failure means a bad file
        raise _decode_error(path, err) from err


def convert(im: Image.Image, mode: str) -> Image.Image:
    """``im`` as ``mode`` ('RGB' or 'L'): high-bit images scaled from their own range, transparency
    on black."""
    if im.mode in _HIGH_BIT_MODES:
        a = np.asarray(im, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(a)
        im = Image.fromarray(np.rint(a).astype(np.uint8), mode="L")
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info:
        im = Image.alpha_composite(Image.new("RGBA", im.size, (0, 0, 0, 255)), im.convert("RGBA"))
    return im.convert(mode)


def problem(path: str | os.PathLike) -> str | None:
    """None if the file is an image the workflow can read, else a short reason (missing, a broken
    symlink, cannot decode, several frames, too small, too many pixels)."""
    path = Path(path)
    if not path.is_file():
        return f"broken symlink to {os.readlink(path)}" if path.is_symlink() else "missing"
    try:
        convert(read(path, check=True), "RGB")
    except DatasetError as err:
        return str(err).removeprefix(f"{path}: ")
    return None


# --------------------------------------------------------------------------------------
# MedMNIST-format .npz sources (source kind ``npz``)
# --------------------------------------------------------------------------------------
# An image id is "<split>/<row>" inside the archive, and the image root is the .npz file itself,
# so ``root / image`` reads e.g. ``data/medmnist/bloodmnist_64.npz/train/000012``.

NPZ_SPLITS = ("train", "val", "test")
_NPZ_ARRAYS: dict[tuple[str, str], np.ndarray] = {}  # decompressed once per process


def _npz_member(path: Path) -> tuple[Path, str, int] | None:
    text = Path(path).as_posix()
    i = text.rfind(".npz/")
    if i < 0:
        return None
    split, _, row = text[i + 5:].partition("/")
    if split not in NPZ_SPLITS or not row.isdigit():
        raise DatasetError(f"{path}: not an image of the .npz (expected <file>.npz/<{'|'.join(NPZ_SPLITS)}>/<row>)")
    return Path(text[: i + 4]), split, int(row)


def npz_array(npz: Path, key: str) -> np.ndarray:
    if (str(npz), key) not in _NPZ_ARRAYS:
        if not npz.is_file():
            raise DatasetError(f"{npz}: .npz file not found")
        with np.load(npz) as data:
            if key not in data.files:
                raise DatasetError(f"{npz}: no array {key!r} (it has {sorted(data.files)}); not MedMNIST format")
            _NPZ_ARRAYS[(str(npz), key)] = data[key]
    return _NPZ_ARRAYS[(str(npz), key)]


def _npz_image(npz: Path, split: str, row: int) -> np.ndarray:
    images = npz_array(npz, f"{split}_images")
    if not 0 <= row < len(images):
        raise DatasetError(f"{npz}: {split} has {len(images)} images, no row {row}")
    arr = np.asarray(images[row])
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3):
        raise DatasetError(f"{npz}: {split}_images must be uint8 [N, H, W] or [N, H, W, 3], got "
                           f"{images.dtype} {images.shape}")
    return arr


# --------------------------------------------------------------------------------------
# Image checks and loading
# --------------------------------------------------------------------------------------


def _verify(path: Path) -> str | None:
    """None if the file exists and decodes, else a short reason."""
    member = _npz_member(path)
    if member is not None:
        try:
            _npz_image(*member)
        except DatasetError as e:
            return str(e)
        return None
    return problem(path)


def check_images(df: pd.DataFrame, root: Path, class_names: Sequence[str] | None = None) -> None:
    """Check every ``image`` under ``root`` exists and decodes, and labels are known.

    Raises :class:`DatasetError` listing the first 10 bad files (full paths)
    and the total count, or the unknown classes.
    """
    root = Path(root)
    if "image" not in df.columns:
        raise DatasetError("check_images: table has no 'image' column")
    if class_names is not None and "label" in df.columns:
        labels = set(clean_str(df["label"])) - {""}
        unknown = sorted(labels - set(class_names))
        if unknown:
            raise DatasetError(
                f"{root}: unknown class(es) {unknown} not in class_names {list(class_names)}"
            )
    bad = []
    for rel in df["image"]:
        path = root / str(rel)
        why = _verify(path)
        if why is not None:
            bad.append(f"{path} ({why})")
    if bad:
        raise DatasetError(
            f"{len(bad)} bad image file(s) of {len(df)} under {root}; first {min(10, len(bad))}: "
            + "; ".join(bad[:10])
        )


def load_image(path: Path, image_size: int, channels: int = 3,
               resample: Image.Resampling = Image.Resampling.BILINEAR) -> np.ndarray:
    """Load an image as uint8 ``[S, S, C]`` (C = 3 RGB or 1 grayscale).

    Resizing uses ``resample`` (BILINEAR; a pretrained model's own interpolation for its frozen
    embedding), which PIL antialiases when downscaling.  The original paper's code used NEAREST
    here -- aliasing that we deliberately do not repeat.
    """
    if channels not in (1, 3):
        raise DatasetError(f"channels must be 1 or 3, got {channels!r}")
    member = _npz_member(Path(path))
    im = Image.fromarray(_npz_image(*member)) if member is not None else read(path)
    im = convert(im, "L" if channels == 1 else "RGB")
    if im.size != (image_size, image_size):
        im = im.resize((image_size, image_size), resample)
    arr = np.array(im, dtype=np.uint8)  # writable copy (torch.from_numpy needs one)
    if arr.ndim == 2:
        arr = arr[..., None]
    return np.ascontiguousarray(arr)
