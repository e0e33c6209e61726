"""What a careful user may put in a dataset, each case run through the real code path: odd image files
(medssl.data.images), odd folders and links (medssl.data.files), odd class names, tiny classes and the config
values the schema lets through (medssl.checks, medssl.data.checks). Each is read as documented, or refused naming the
file, the class or the config key. All unit tests: 8x8 images, no workflow run."""
from __future__ import annotations

import copy
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from medssl import checks
from medssl.data import checks as data_checks
from medssl.data import DatasetError, check_images, index_folder, load_image, make_splits, read_split, write_split
from medssl.data.manifests import check_inside_root
from medssl.data.sources import source_for
from snakemake_runner import REPO

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
TINY = yaml.safe_load((REPO / "tests" / "config" / "tiny.yaml").read_text())


def folder_files(root: Path) -> list[str]:
    """The files a folder source's fingerprint reads while Snakemake plans."""
    return source_for({"source": {"kind": "folder", "root": str(root)}, "classes": []}, "ds").files()


def save(path: Path, image: Image.Image, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)
    return path


def rgb(value, size=(8, 8)) -> Image.Image:
    return Image.new("RGB", size, value)


def bad(root: Path, *images: str) -> str:
    """check_images' message for ``images`` (relative to ``root``)."""
    with pytest.raises(DatasetError) as err:
        check_images(pd.DataFrame({"image": list(images)}), root)
    return str(err.value)


# ------------------------------------------------------------------------------------------------
# Image files
# ------------------------------------------------------------------------------------------------


def test_cmyk_palette_and_misnamed_images_are_read_as_the_datasets_channels(tmp_path):
    save(tmp_path / "cmyk.jpg", rgb((200, 40, 40)).convert("CMYK"), quality=95)
    save(tmp_path / "jpeg.png", rgb((40, 200, 40)), format="JPEG", quality=95)  # a JPEG named .png
    palette = Image.new("P", (8, 8), 1)
    palette.putpalette([0, 0, 0, 40, 40, 200] + [0] * 762)
    save(tmp_path / "palette.png", palette)
    check_images(pd.DataFrame({"image": ["cmyk.jpg", "jpeg.png", "palette.png"]}), tmp_path)
    for name, colour in [("cmyk.jpg", (200, 40, 40)), ("jpeg.png", (40, 200, 40)), ("palette.png", (40, 40, 200))]:
        image = load_image(tmp_path / name, 8)
        assert image.shape == (8, 8, 3) and np.abs(image.reshape(-1, 3).mean(0) - colour).max() < 6, name
        grey = load_image(tmp_path / name, 8, channels=1)
        assert grey.shape == (8, 8, 1) and abs(grey.mean() - np.dot(colour, [0.299, 0.587, 0.114])) < 6, name


@pytest.mark.parametrize("kind", ["palette", "rgba", "la"])
def test_transparent_pixels_are_black(tmp_path, kind):
    """The colour under a transparent pixel is whatever the encoder left there: red here, read as black."""
    alpha = np.full((8, 8), 255, np.uint8)
    alpha[:4] = 0  # the top half transparent
    rgba = Image.fromarray(np.dstack([np.full((8, 8, 3), (200, 0, 0), np.uint8), alpha]))
    image = {"rgba": rgba, "la": rgba.convert("LA"), "palette": rgba.quantize(4)}[kind]
    save(tmp_path / "t.png", image)
    with Image.open(tmp_path / "t.png") as im:
        assert im.mode == {"rgba": "RGBA", "la": "LA", "palette": "P"}[kind]
    check_images(pd.DataFrame({"image": ["t.png"]}), tmp_path)
    for channels in (3, 1):
        loaded = load_image(tmp_path / "t.png", 8, channels)
        assert (loaded[:4] == 0).all() and (loaded[4:].max(axis=-1) > 50).all(), (kind, channels)


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((8, 16, 3), np.uint8)
    stored[:, :8] = 255  # stored 16 wide: left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise: the stored left half is the top
    save(tmp_path / "phone.jpg", Image.fromarray(stored), exif=exif, quality=95)
    image = load_image(tmp_path / "phone.jpg", 8)[..., 0]
    assert image[:3].min() > 200 and image[-3:].max() < 50


def test_a_jpeg_with_extra_mpf_pictures_is_read_as_its_first(tmp_path):
    """A phone's JPEG may carry a depth map or a preview as MPF pictures; they are not frames."""
    save(tmp_path / "photo.jpg", rgb((250, 250, 250)), format="MPO", save_all=True, append_images=[rgb((0, 0, 0))])
    with Image.open(tmp_path / "photo.jpg") as im:
        assert im.format == "MPO" and im.n_frames == 2
    check_images(pd.DataFrame({"image": ["photo.jpg"]}), tmp_path)
    assert load_image(tmp_path / "photo.jpg", 8).min() > 240


def test_multi_frame_images_are_refused_naming_the_file(tmp_path):
    from test_npz import write_dicom

    frames = [Image.new("L", (8, 8), v) for v in (10, 200)]
    save(tmp_path / "stack.tif", frames[0], save_all=True, append_images=frames[1:])
    save(tmp_path / "anim.gif", frames[0], save_all=True, append_images=frames[1:])
    save(tmp_path / "anim.png", frames[0], save_all=True, append_images=frames[1:])
    write_dicom(tmp_path / "cine.dcm", np.zeros((2, 8, 8, 3), np.uint8))
    message = bad(tmp_path, "stack.tif", "anim.gif", "anim.png", "cine.dcm")
    assert message.startswith("4 bad image file(s)")
    for name in ["stack.tif", "anim.gif", "anim.png", "cine.dcm"]:
        assert f"{tmp_path / name} (2 frames (a multi-page TIFF, an animation or a stack)" in message
    assert "save the frame you mean as its own file" in message
    with pytest.raises(DatasetError, match=r"stack.tif: 2 frames"):
        load_image(tmp_path / "stack.tif", 8)


def test_truncated_images_are_refused_not_padded(tmp_path):
    """PIL's verify() passes a JPEG, TIFF or BMP cut in half; loading it padded the rest with grey."""
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8))
    names = ["cut.jpg", "cut.tif", "cut.bmp"]
    for name in names:
        data = save(tmp_path / name, noise).read_bytes()
        (tmp_path / name).write_bytes(data[: len(data) // 2])
    message = bad(tmp_path, *names)
    assert message.startswith("3 bad image file(s)")
    assert all(f"{tmp_path / name} (cannot decode (OSError: " in message for name in names), message
    with pytest.raises(DatasetError, match="cut.jpg: cannot decode"):
        load_image(tmp_path / "cut.jpg", 8)


def test_one_pixel_image_is_refused(tmp_path):
    save(tmp_path / "pixel.png", rgb(0, (1, 1)))
    save(tmp_path / "line.png", rgb(0, (30, 1)))
    save(tmp_path / "small.png", rgb(0, (2, 2)))
    message = bad(tmp_path, "pixel.png", "line.png", "small.png")
    assert message.startswith("2 bad") and "pixel.png (1x1 px, too small to be an image" in message
    assert "line.png (30x1 px" in message and "small.png" not in message


def test_decompression_bomb_is_an_error_naming_the_file(tmp_path, monkeypatch):
    """Above Image.MAX_IMAGE_PIXELS PIL only warns (an error from twice that): both are errors here."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    save(tmp_path / "warned.png", rgb(0, (40, 40)))  # 1,600 px: PIL's warning
    save(tmp_path / "refused.png", rgb(0, (50, 50)))  # 2,500 px: PIL's error
    message = bad(tmp_path, "warned.png", "refused.png")
    assert message.startswith("2 bad") and "Image.MAX_IMAGE_PIXELS = 1000: a decompression bomb" in message
    assert f"{tmp_path / 'warned.png'} (Image size (1600 pixels) exceeds limit" in message
    with pytest.raises(DatasetError, match=r"warned.png: Image size \(1600 pixels\)"):
        load_image(tmp_path / "warned.png", 8)


# ------------------------------------------------------------------------------------------------
# Folders: hidden files, links, class folders
# ------------------------------------------------------------------------------------------------


def test_hidden_files_and_macos_debris_are_not_images(tmp_path):
    for rel in ["a/0.png", "b/0.png", "b/sub/1.png"]:
        save(tmp_path / rel, rgb(0))
    for rel in ["a/.DS_Store", "a/._0.png", "b/.hidden/2.png", "__MACOSX/a/._0.png", ".Trashes/x.png"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    manifest = index_folder(tmp_path, ["a", "b"])
    assert list(manifest["image"]) == ["a/0.png", "b/0.png", "b/sub/1.png"]
    check_images(manifest, tmp_path, ["a", "b"])
    assert sorted(folder_files(tmp_path)) == sorted(
        str(tmp_path / p) for p in manifest["image"])
    # files that are not images by their name are not indexed, and the log says so
    save(tmp_path / "a" / "scan.webp", rgb(0), format="WEBP")
    (tmp_path / "b" / "README").write_text("x")
    with pytest.warns(UserWarning, match=r"2 file\(s\) in the class folders are not indexed.*\{'.webp': 1, 'README': 1\}"):
        assert index_folder(tmp_path, ["a", "b"]).equals(manifest)


def test_folder_not_in_classes_is_refused_saying_what_to_do(tmp_path):
    for rel in ["a/0.png", "b/0.png", "c/0.png"]:
        save(tmp_path / rel, rgb(0))
    with pytest.raises(DatasetError, match=r"unexpected folder\(s\) not in class_names \['c'\]\. The class folders "
                                           r"must be the dataset's `classes`: .*add the class to `classes`, or move"):
        index_folder(tmp_path, ["a", "b"])


def test_class_names_with_spaces_and_unicode_go_through_indexing_and_splits(tmp_path):
    classes = ["band neutrophil", "Ödem", "細胞"]
    for k, cls in enumerate(classes):
        for i in range(4):
            # a macOS archive spells folder names decomposed (NFD); the config spells them composed
            save(tmp_path / unicodedata.normalize("NFD", cls) / f"{i} a.png", rgb(40 * k + i))
    manifest = index_folder(tmp_path, classes)
    assert list(manifest["label"]) == [c for c in classes for _ in range(4)]
    check_images(manifest, tmp_path, classes)
    splits = make_splits(manifest, None, 0.5, 0)
    write_split(splits["test"], tmp_path / "test.csv")
    assert read_split(tmp_path / "test.csv").equals(splits["test"])
    assert sorted(set(splits["test"]["label"])) == sorted(classes)
    assert load_image(tmp_path / manifest["image"][4], 8).shape == (8, 8, 3)


def links(tmp_path: Path) -> Path:
    """A dataset whose class b is partly a link into shared storage outside the root."""
    root = tmp_path / "root"
    for rel in ["root/a/0.png", "root/b/0.png", "shared/b/1.png", "shared/b/2.png", "shared/3.png"]:
        save(tmp_path / rel, rgb(0))
    (root / "b" / "more").symlink_to(tmp_path / "shared" / "b")
    (root / "b" / "3.png").symlink_to(tmp_path / "shared" / "3.png")
    return root


def test_symlinks_out_of_the_root_are_followed(tmp_path):
    root = links(tmp_path)
    manifest = index_folder(root, ["a", "b"])
    assert list(manifest["image"]) == ["a/0.png", "b/0.png", "b/3.png", "b/more/1.png", "b/more/2.png"]
    check_images(manifest, root, ["a", "b"])
    files = folder_files(root)
    assert sorted(files) == sorted(str(root / p) for p in manifest["image"])


@pytest.mark.parametrize("link, target, why", [
    ("a/loop", "..", "a symlink loop"),
    ("b/same", "../a", "the same images under two names"),
    ("b/0b.png", "../a/0.png", "the same images under two names"),
])
def test_symlink_loop_or_a_folder_reached_twice_is_refused_naming_both(tmp_path, link, target, why):
    root = links(tmp_path)
    (root / link).symlink_to(target)
    for call in [lambda: index_folder(root, ["a", "b"]), lambda: folder_files(root)]:
        with pytest.raises(DatasetError, match=r"reached twice through a symlink or a hard link: .*remove the link"):
            call()
    with pytest.raises(DatasetError) as err:
        folder_files(root)
    assert str(root / link) in str(err.value) and why.split()[-1] in str(err.value)


def test_dangling_symlink_is_named(tmp_path):
    root = links(tmp_path)
    (root / "a" / "gone.png").symlink_to(tmp_path / "unmounted" / "gone.png")
    manifest = index_folder(root, ["a", "b"])
    message = str(pytest.raises(DatasetError, check_images, manifest, root, ["a", "b"]).value)
    assert f"{root / 'a' / 'gone.png'} (broken symlink to {tmp_path / 'unmounted' / 'gone.png'})" in message


# ------------------------------------------------------------------------------------------------
# Tiny classes
# ------------------------------------------------------------------------------------------------


def labeled(counts: dict[str, int]) -> pd.DataFrame:
    return pd.DataFrame([(f"{c}/{i}.png", c) for c, n in counts.items() for i in range(n)], columns=["image", "label"])


def test_classes_of_one_or_two_images(recwarn):
    splits = make_splits(labeled({"a": 10, "b": 2, "c": 1}), None, 0.3, 0)
    counts = {k: splits[k]["label"].value_counts().to_dict() for k in ("labeled_train", "test")}
    assert counts == {"labeled_train": {"a": 7, "b": 1, "c": 1}, "test": {"a": 3, "b": 1}}
    assert "class(es) ['c'] have fewer than 2 images" in str(recwarn.pop(UserWarning).message)
    with pytest.raises(DatasetError, match=r"test_fraction=0.3 puts 2 of the 6 images in the test split, fewer than "
                                           r"the 3 classes.*set split.test_fraction to at least 0.5"):
        make_splits(labeled({"a": 2, "b": 2, "c": 2}), None, 0.3, 0)
    with pytest.raises(DatasetError, match=r"no class has 2 or more labeled images \(\['a', 'b'\] have 1\): the test "
                                           r"split would be empty"):
        make_splits(labeled({"a": 1, "b": 1}), None, 0.3, 0)


def test_an_empty_shipped_split_is_refused(tmp_path):
    for name in ("labeled_train", "test"):
        (tmp_path / f"{name}.csv").write_text("image,label\n" + ("a/0.png,a\n" if name == "labeled_train" else ""))
    save(tmp_path / "data" / "a" / "0.png", rgb(0))
    manifest = pd.DataFrame({"image": ["a/0.png"], "label": ["a"]})
    paths = {name: tmp_path / f"{name}.csv" for name in ("labeled_train", "test")}
    with pytest.raises(DatasetError, match=r"test.csv: no images; a split without images"):
        data_checks.check_splits(paths, manifest, tmp_path / "data", ["a"])


# ------------------------------------------------------------------------------------------------
# Config values: the schema at plan time, and what it cannot check (medssl.checks)
# ------------------------------------------------------------------------------------------------


def schema_error(config: dict) -> str:
    from snakemake.utils import validate

    with pytest.raises(Exception) as err:
        validate(config, str(SCHEMA))
    return str(err.value)


@pytest.mark.parametrize("where, value, needle", [
    ("split", {"test_fraction": 0}, "0 is less than or equal to the minimum of 0"),
    ("split", {"test_fraction": 1}, "1 is greater than or equal to the maximum of 1"),
    ("split", {"test_fraction": -0.2}, "-0.2 is less than or equal to the minimum of 0"),
    ("budgets", [0, 5], "0 is not valid under any of the given schemas"),
    ("budgets", [-1], "-1 is not valid under any of the given schemas"),
    ("budgets", [5, 5], "has non-unique elements"),
    ("budgets", ["ten"], "'ten' is not valid under any of the given schemas"),
    ("seeds", [], "[] should be non-empty"),
    ("seeds", [0, 0], "has non-unique elements"),
])
def test_out_of_range_values_fail_schema_validation_naming_the_key(where, value, needle):
    config = copy.deepcopy(TINY)
    if where == "split":
        next(iter(config["datasets"].values()))["split"] = value
        key = "['split']['test_fraction']"
    else:
        config["evaluation"][where] = value
        key = f"['evaluation']['{where}']"
    message = schema_error(config)
    assert needle in message and key in message, message


def test_budgets_and_seeds_written_as_floats_are_refused():
    config = copy.deepcopy(TINY)
    assert checks.integer_errors(config) == []
    config["evaluation"].update(budgets=[1, 10.0], seeds=[0.0])
    config["figures"]["confusion"]["budget"] = 10.0
    assert checks.integer_errors(config) == [
        "evaluation.budgets: 10.0 is not an integer as written; write 10",
        "evaluation.seeds: 0.0 is not an integer as written; write 0",
        "figures.confusion.budget: 10.0 is not an integer as written; write 10"]


@pytest.mark.parametrize("root, needle", [
    ("/", "'/' is the whole file system"),
    ("", "'' is empty"),
    ("..", "'..' holds the working directory"),
    (".", "'.' holds the working directory"),
])
def test_a_dataset_root_of_the_file_system_or_above_the_working_directory_is_refused(tmp_path, monkeypatch, root,
                                                                                      needle):
    monkeypatch.chdir(tmp_path)
    config = copy.deepcopy(TINY)
    for source in [{"kind": "folder", "root": root}, {"kind": "folder", "root": "data/ds", "unlabeled_root": root}]:
        config["datasets"] = {"ds": {"source": source, "image_size": 8, "classes": ["a", "b"]}}
        errors = checks.dataset_errors(config)
        key = "unlabeled_root" if "unlabeled_root" in source else "root"
        assert len(errors) == 1 and errors[0].startswith(f"datasets.ds.source.{key}: {needle}"), errors
        assert errors[0].endswith("give the folder of the dataset itself")
    # a manifest names its images: only the file system root and an empty root are refused
    config["datasets"]["ds"]["source"] = {"kind": "manifest", "root": root, "manifest": "m.csv"}
    assert len(checks.dataset_errors(config)) == (root in ("/", ""))


@pytest.mark.parametrize("kind, cls, needle", [
    ("folder", "a/b", "is not a folder name indexing reads"),
    ("folder", ".a", "is not a folder name indexing reads"),
    ("folder", "__MACOSX", "is not a folder name indexing reads"),
    ("manifest", "a ", "starts or ends with a space"),
    ("manifest", "", "is empty"),
])
def test_class_names_the_readers_would_not_find_are_refused(kind, cls, needle):
    source = {"kind": kind, "root": "data/ds", **({"manifest": "data/ds/m.csv"} if kind == "manifest" else {})}
    config = {"datasets": {"ds": {"source": source, "classes": [cls, "other class", "Ödem"]}}}
    errors = checks.dataset_errors(config)
    assert len(errors) == 1 and errors[0].startswith(f"datasets.ds.classes: {cls!r}") and needle in errors[0], errors
    if kind == "folder":  # the same names are fine in a manifest
        config["datasets"]["ds"]["source"] = {"kind": "manifest", "root": "data/ds", "manifest": "m.csv"}
        assert checks.dataset_errors(config) == []


def test_shipped_configs_pass_the_dataset_checks():
    for path in sorted((REPO / "config").glob("*.yaml")):
        config = yaml.safe_load(path.read_text())
        if "datasets" in config and "evaluation" in config:
            assert checks.dataset_errors(config) == [] and checks.integer_errors(config) == [], path


def test_unlabeled_root_beside_the_dataset_root(tmp_path):
    from medssl.data import index_unlabeled

    for rel in ["ds/a/0.png", "ds/b/0.png", "ds_unlabeled/x.png", "ds_unlabeled/sub/y.png"]:
        save(tmp_path / rel, rgb(0))
    (tmp_path / "ds_unlabeled" / ".DS_Store").write_bytes(b"junk")
    root = tmp_path / "ds"
    manifest = pd.concat([index_folder(root, ["a", "b"]), index_unlabeled(tmp_path / "ds_unlabeled", root)])
    assert list(manifest["image"])[2:] == ["../ds_unlabeled/sub/y.png", "../ds_unlabeled/x.png"]
    assert list(manifest["label"]) == ["a", "b", "", ""]
    check_images(manifest, root, ["a", "b"])
    check_inside_root(manifest["image"].tolist(), root, "manifest.csv", [tmp_path / "ds_unlabeled"])
