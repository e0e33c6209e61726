"""Source kind ``npz``: MedMNIST-format archives read in place (official splits, images decoded
from the arrays), and the DICOM images of sparsam's ISIC 2020 pool."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medssl.data import DatasetError, ImageDataset, check_images, index_npz, load_image, official_splits, ssl_pool

CLASSES = ["basophil", "eosinophil", "erythroblast"]


def write_medmnist(path: Path, sizes=(("train", 6), ("val", 2), ("test", 3)), rgb=True, side=8) -> Path:
    """A MedMNIST-format .npz (keys <split>_images uint8 [N, H, W(, 3)], <split>_labels [N, 1])."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in sizes:
        shape = (n, side, side, 3) if rgb else (n, side, side)
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % len(CLASSES)).reshape(-1, 1).astype(np.uint8)
    np.savez_compressed(path, **arrays)
    return path


def test_index_and_official_splits(tmp_path):
    npz = write_medmnist(tmp_path / "bloodmnist.npz")
    manifest = index_npz(npz, CLASSES)
    assert len(manifest) == 11 and list(manifest.columns) == ["image", "label"]
    assert manifest["image"].iloc[0] == "train/000000" and manifest["label"].iloc[1] == "eosinophil"
    check_images(manifest, npz, CLASSES)
    splits = official_splits(manifest)
    assert [len(splits[k]) for k in ("labeled_train", "unlabeled_train", "test")] == [6, 2, 3]
    assert list(splits["unlabeled_train"].columns) == ["image"]
    assert len(ssl_pool(splits)) == 8  # val images join the SSL pool, test never
    assert len(official_splits(manifest, "labeled_train")["labeled_train"]) == 8
    assert len(official_splits(manifest, "drop")["unlabeled_train"]) == 0


def test_images_decode_from_the_arrays(tmp_path):
    npz = write_medmnist(tmp_path / "x.npz")
    with np.load(npz) as data:
        expected = data["test_images"][2]
    assert np.array_equal(load_image(npz / "test/000002", 8), expected)
    assert load_image(npz / "test/000002", 16).shape == (16, 16, 3)
    grey = write_medmnist(tmp_path / "pneumoniamnist.npz", rgb=False)
    ds = ImageDataset(["train/000001"], grey, 8, labels=["eosinophil"], class_names=CLASSES, channels=3)
    image, label = ds[0]
    assert image.shape == (3, 8, 8) and label == 1
    assert np.array_equal(image[0].numpy(), image[2].numpy())  # grey replicated to RGB


def test_bad_npz_inputs_name_the_file(tmp_path):
    npz = write_medmnist(tmp_path / "x.npz")
    with pytest.raises(DatasetError, match="test has 3 images, no row 7"):
        check_images(pd.DataFrame({"image": ["test/000007"]}), npz)
    with pytest.raises(DatasetError, match="no row 7"):
        load_image(npz / "test/000007", 8)
    with pytest.raises(DatasetError, match=r"label\(s\) \[2\] have no class name"):
        index_npz(npz, CLASSES[:2])
    multi = tmp_path / "chestmnist.npz"
    np.savez(multi, **{f"{s}_images": np.zeros((2, 4, 4), np.uint8) for s in ("train", "val", "test")},
             **{f"{s}_labels": np.zeros((2, 14), np.uint8) for s in ("train", "val", "test")})
    with pytest.raises(DatasetError, match="multi-label"):
        index_npz(multi, CLASSES)
    with pytest.raises(DatasetError, match="not found"):
        load_image(tmp_path / "missing.npz" / "train/000000", 8)


def write_dicom(path: Path, frames: np.ndarray) -> Path:
    """An 8-bit RGB DICOM of ``frames`` ([H, W, 3], or [N, H, W, 3] for a multi-frame one)."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = *frames.shape[-3:-1], 3, "RGB"
    ds.PlanarConfiguration, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 0, 8, 8, 7, 0
    if frames.ndim == 4:
        ds.NumberOfFrames = len(frames)
    ds.PixelData = frames.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_dicom_of_the_isic_2020_pool_loads(tmp_path):
    """sparsam's unlabeled ISIC pool is DICOM (RGB, 8 bit); pydicom is a dependency."""
    rgb = np.random.default_rng(0).integers(0, 256, (12, 12, 3), dtype=np.uint8)
    path = write_dicom(tmp_path / "ISIC_2020_Train_DICOM_corrected" / "train" / "ISIC_0000001.dcm", rgb)
    pool = pd.DataFrame({"image": ["ISIC_2020_Train_DICOM_corrected/train/ISIC_0000001.dcm"]})
    check_images(pool, tmp_path)
    assert np.array_equal(load_image(path, 12), rgb)
    image, label = ImageDataset(pool["image"], tmp_path, 16)[0]
    assert image.shape == (3, 16, 16) and label == -1


def test_split_folders_give_the_official_splits(tmp_path):
    """source.split_folders: root/{train,val,test}/<class>/ (the pneumonia CXRs, BreaKHis 400X)."""
    from PIL import Image

    from medssl.data import index_split_folders

    for rel in ["train/NORMAL/a.jpeg", "train/PNEUMONIA/b.jpeg", "val/NORMAL/c.jpeg", "val/PNEUMONIA/d.jpeg",
                "test/NORMAL/e.jpeg", "test/PNEUMONIA/f.jpeg"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (4, 4)).save(tmp_path / rel)
    manifest = index_split_folders(tmp_path, ["NORMAL", "PNEUMONIA"])
    splits = official_splits(manifest, "labeled_train")
    assert sorted(splits["labeled_train"]["image"]) == ["train/NORMAL/a.jpeg", "train/PNEUMONIA/b.jpeg",
                                                        "val/NORMAL/c.jpeg", "val/PNEUMONIA/d.jpeg"]
    assert list(splits["test"]["label"]) == ["NORMAL", "PNEUMONIA"]
    check_images(manifest, tmp_path, ["NORMAL", "PNEUMONIA"])
    with pytest.raises(DatasetError, match="needs train/ and test/"):
        index_split_folders(tmp_path / "train", ["NORMAL", "PNEUMONIA"])
