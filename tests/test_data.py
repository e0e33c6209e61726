"""Tests for medssl.data: synthetic generator, indexing, split files, checks, splits, loading."""

from __future__ import annotations

import ast
import hashlib
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from medssl import data as D
from medssl.data import DatasetError, synthetic
from snakemake_runner import REPO

SMALL_COUNTS = {c: 2 for c in D.SYNTHETIC_MARROW_CLASSES}


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def balanced(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """600 labeled images (75 per class) + 24 unlabeled, 32 px."""
    root = tmp_path_factory.mktemp("synth") / "marrow"
    counts = {c: 75 for c in D.SYNTHETIC_MARROW_CLASSES}
    df = D.generate_synthetic_marrow(root, counts, n_unlabeled=24, image_size=32, seed=7)
    return root, df


# ---------------------------------------------------------------- generator


def test_class_constants_long_tailed():
    assert len(D.SYNTHETIC_MARROW_CLASSES) >= 6
    assert len(set(D.SYNTHETIC_MARROW_CLASSES)) == len(D.SYNTHETIC_MARROW_CLASSES)
    assert list(D.SYNTHETIC_MARROW_DEFAULT_COUNTS) == D.SYNTHETIC_MARROW_CLASSES
    counts = D.SYNTHETIC_MARROW_DEFAULT_COUNTS.values()
    assert max(counts) / min(counts) >= 20


def test_generator_deterministic(tmp_path):
    a = D.generate_synthetic_marrow(tmp_path / "a", SMALL_COUNTS, 5, 32, seed=3)
    b = D.generate_synthetic_marrow(tmp_path / "b", SMALL_COUNTS, 5, 32, seed=3)
    pd.testing.assert_frame_equal(a, b)
    da, db = _tree_digest(tmp_path / "a"), _tree_digest(tmp_path / "b")
    assert da == db and len(da) == 16 + 5 + 2  # images + manifest + generator.json
    c = D.generate_synthetic_marrow(tmp_path / "c", SMALL_COUNTS, 5, 32, seed=4)
    assert _tree_digest(tmp_path / "c") != da
    assert list(c["image"]) == list(a["image"])
    # no temp dirs left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]


def test_generator_independent_of_order_and_subset(tmp_path):
    """Per-image seeding: a class's images don't depend on which other classes exist."""
    D.generate_synthetic_marrow(tmp_path / "all", SMALL_COUNTS, 0, 32, seed=1)
    D.generate_synthetic_marrow(tmp_path / "one", {"basophil": 2}, 0, 32, seed=1)
    rel = "images/basophil/basophil_00001.png"
    assert (tmp_path / "all" / rel).read_bytes() == (tmp_path / "one" / rel).read_bytes()


def test_manifest_layout(balanced):
    root, df = balanced
    assert list(df.columns) == ["image", "label"]
    on_disk = D.read_manifest(root / "manifest.csv")
    pd.testing.assert_frame_equal(df, on_disk)
    lab = df[df.label != ""]
    assert sorted(lab.label.unique()) == sorted(D.SYNTHETIC_MARROW_CLASSES)
    assert lab.label.value_counts().eq(75).all()
    assert all(img == f"images/{lb}/{Path(img).name}" for img, lb in zip(lab.image, lab.label))
    assert lab.image.iloc[0].endswith("_00000.png")
    unl = df[df.label == ""]
    assert len(unl) == 24 and unl.image.str.match(r"unlabeled/unlabeled_\d{5}\.png").all()
    raw = pd.read_csv(root / "manifest.csv", keep_default_na=False)
    assert list(raw.columns) == ["image", "label"]


@pytest.mark.parametrize("size", [32, 64, 96])
def test_images_decode_at_size(tmp_path, size):
    df = D.generate_synthetic_marrow(tmp_path / "d", {"lymphocyte": 1, "eosinophil": 1}, 1, size, 0)
    for rel in df.image:
        with Image.open(tmp_path / "d" / rel) as im:
            assert im.size == (size, size) and im.mode == "RGB"
            arr = np.asarray(im)
        # microscopy-like: pale background at the corners, darker stained cell in the middle
        assert arr[:3, :3].mean() > arr[size // 2 - 2 : size // 2 + 2, size // 2 - 2 : size // 2 + 2].mean()
        assert arr.std() > 10


def test_classes_learnable_but_not_trivial(balanced):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    root, df = balanced
    lab = df[df.label != ""]
    X = np.stack(
        [np.asarray(Image.open(root / p).resize((8, 8), Image.Resampling.BILINEAR), np.float32).ravel()
         for p in lab.image]
    ) / 255.0
    y = lab.label.to_numpy()
    xa, xb, ya, yb = train_test_split(X, y, test_size=0.5, stratify=y, random_state=0)
    sc = StandardScaler().fit(xa)
    clf = LogisticRegression(C=0.1, max_iter=1000).fit(sc.transform(xa), ya)
    bacc = balanced_accuracy_score(yb, clf.predict(sc.transform(xb)))
    chance = 1 / len(D.SYNTHETIC_MARROW_CLASSES)
    assert 3 * chance < bacc < 0.98, bacc


def test_generator_bad_config(tmp_path):
    with pytest.raises(DatasetError, match="neutrophils"):
        D.generate_synthetic_marrow(tmp_path / "x", {"neutrophils": 3}, 0, 32, 0)
    with pytest.raises(DatasetError, match="lymphocyte"):
        D.generate_synthetic_marrow(tmp_path / "x", {"lymphocyte": -1}, 0, 32, 0)
    with pytest.raises(DatasetError, match="image_size"):
        D.generate_synthetic_marrow(tmp_path / "x", {"lymphocyte": 1}, 0, 4, 0)
    assert not (tmp_path / "x").exists()


def test_generator_rerun_is_noop_or_atomic_replace(tmp_path):
    """Same params on a complete root: no-op (files untouched). Other params: swapped in
    whole. A non-generated non-empty folder is never clobbered. A run killed mid-way
    leaves no root and no temp dir."""
    root = tmp_path / "m"
    D.generate_synthetic_marrow(root, SMALL_COUNTS, 2, 32, seed=0)
    manifest = root / "manifest.csv"
    mtime = manifest.stat().st_mtime_ns
    img = root / "images/lymphocyte/lymphocyte_00000.png"
    img_ino = img.stat().st_ino
    D.generate_synthetic_marrow(root, SMALL_COUNTS, 2, 32, seed=0)
    assert manifest.stat().st_mtime_ns == mtime and img.stat().st_ino == img_ino

    df = D.generate_synthetic_marrow(root, {"lymphocyte": 3}, 0, 32, seed=0)
    assert list(df.label) == ["lymphocyte"] * 3
    assert sorted(p.name for p in (root / "images").iterdir()) == ["lymphocyte"]
    assert not (root / "unlabeled").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep")
    with pytest.raises(DatasetError, match="refusing"):
        D.generate_synthetic_marrow(foreign, SMALL_COUNTS, 0, 32, 0)
    assert (foreign / "precious.txt").read_text() == "keep"


def test_generator_killed_midway_leaves_nothing(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = synthetic.render_cell

    def dying(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(synthetic, "render_cell", dying)
    with pytest.raises(KeyboardInterrupt):
        D.generate_synthetic_marrow(tmp_path / "m", SMALL_COUNTS, 0, 32, 0)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- index_folder


def _touch_png(path: Path, size: int = 8, value: int = 100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)


@pytest.mark.filterwarnings("ignore:.*are not indexed")  # a/notes.txt
def test_index_folder(tmp_path):
    for rel in ["b/2.png", "b/1.PNG", "a/x.jpg", "a/sub/y.png", "a/notes.txt", "a/.hidden.png"]:
        _touch_png(tmp_path / rel) if not rel.endswith(".txt") else (tmp_path / rel).write_text("x")
    (tmp_path / ".cache").mkdir()
    df = D.index_folder(tmp_path)
    assert list(df.columns) == ["image", "label"]
    assert list(df.image) == ["a/sub/y.png", "a/x.jpg", "b/1.PNG", "b/2.png"]
    assert list(df.label) == ["a", "a", "b", "b"]
    pd.testing.assert_frame_equal(df, D.index_folder(tmp_path, class_names=["a", "b"]))
    # class_names order decides the row order
    assert list(D.index_folder(tmp_path, class_names=["b", "a"]).label) == ["b", "b", "a", "a"]


def test_index_folder_strict(tmp_path):
    _touch_png(tmp_path / "a/1.png")
    _touch_png(tmp_path / "extra_folder/1.png")
    with pytest.raises(DatasetError, match="missing_cls") as e:
        D.index_folder(tmp_path, class_names=["a", "missing_cls", "extra_folder"])
    assert "extra" not in str(e.value).split("missing")[0]
    with pytest.raises(DatasetError, match="extra_folder"):
        D.index_folder(tmp_path, class_names=["a"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty"):
        D.index_folder(tmp_path)
    with pytest.raises(DatasetError, match="nope"):
        D.index_folder(tmp_path / "nope")


def test_index_folder_on_generated(balanced):
    root, df = balanced
    idx = D.index_folder(root / "images", class_names=D.SYNTHETIC_MARROW_CLASSES)
    assert len(idx) == 600
    expect = df[df.label != ""].assign(image=lambda d: d.image.str.removeprefix("images/"))
    assert set(zip(idx.image, idx.label)) == set(zip(expect.image, expect.label))


# ---------------------------------------------------------------- split files


def test_read_split_formats(tmp_path):
    plain = tmp_path / "labeled_train.csv"
    plain.write_text("image,label\nb.png,cat\na.png,dog\n")
    paper = tmp_path / "paper.csv"
    paper.write_text(",image,label\n0,b.png,cat\n1,a.png,dog\n")
    a, b = D.read_split(plain), D.read_split(paper)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == ["image", "label"] and list(a.label) == ["cat", "dog"]

    unl = tmp_path / "unlabeled_train.csv"
    unl.write_text("image\nu1.png\nu2.png\n")
    u = D.read_split(unl, labeled=False)
    assert list(u.columns) == ["image"] and list(u.image) == ["u1.png", "u2.png"]
    # labels in an unlabeled file are dropped, never passed on
    assert list(D.read_split(paper, labeled=False).columns) == ["image"]


def test_read_split_errors(tmp_path):
    f = tmp_path / "test.csv"
    f.write_text("image\na.png\n")
    with pytest.raises(DatasetError, match=r"test\.csv.*'label'"):
        D.read_split(f)
    f.write_text("path,label\na.png,x\n")
    with pytest.raises(DatasetError, match=r"test\.csv.*'image'"):
        D.read_split(f, labeled=False)
    f.write_text("image,label\na.png,x\nb.png,\n")
    with pytest.raises(DatasetError, match="empty 'label'"):
        D.read_split(f)
    f.write_text("image,label\na.png,x\na.png,y\n")
    with pytest.raises(DatasetError, match="duplicate"):
        D.read_split(f)
    with pytest.raises(DatasetError, match="missing.csv"):
        D.read_split(tmp_path / "missing.csv")


def test_read_manifest_custom_columns(tmp_path):
    f = tmp_path / "m.csv"
    f.write_text("file,diagnosis\nx.png,A\ny.png,\n")
    df = D.read_manifest(f, image_col="file", label_col="diagnosis")
    assert list(df.columns) == ["image", "label"] and list(df.label) == ["A", ""]
    with pytest.raises(DatasetError, match="label_col"):
        D.read_manifest(f, image_col="file")


def test_write_split_roundtrip_atomic(tmp_path, monkeypatch):
    df = pd.DataFrame({"image": ["a.png", "b.png"], "label": ["x", "y"]})
    out = tmp_path / "splits" / "ds" / "labeled_train.csv"
    D.write_split(df, out)
    assert out.read_text().splitlines()[0] == "image,label"
    pd.testing.assert_frame_equal(D.read_split(out), df)

    # a failure while writing leaves the old file intact and no temp file
    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", boom)
    with pytest.raises(OSError):
        D.write_split(df.iloc[:1], out)
    assert len(D.read_split(out)) == 2
    assert [p.name for p in out.parent.iterdir()] == ["labeled_train.csv"]


# ---------------------------------------------------------------- check_images


def test_check_images(tmp_path):
    _touch_png(tmp_path / "a/ok.png")
    (tmp_path / "a/corrupt.png").write_bytes(b"this is not a png at all" * 10)
    ok = pd.DataFrame({"image": ["a/ok.png"], "label": ["a"]})
    D.check_images(ok, tmp_path, class_names=["a"])

    bad = pd.DataFrame({"image": ["a/ok.png", "a/gone.png", "a/corrupt.png"], "label": ["a"] * 3})
    with pytest.raises(DatasetError) as e:
        D.check_images(bad, tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "a/gone.png") in msg and str(tmp_path / "a/corrupt.png") in msg
    assert msg.startswith("2 bad")
    assert str(tmp_path / "a/ok.png") + " (" not in msg

    with pytest.raises(DatasetError, match="'zebra'"):
        D.check_images(pd.DataFrame({"image": ["a/ok.png"], "label": ["zebra"]}), tmp_path, ["a"])
    # unlabeled rows (empty label) are fine
    D.check_images(pd.DataFrame({"image": ["a/ok.png"], "label": [""]}), tmp_path, ["a"])


def test_check_images_lists_first_ten(tmp_path):
    df = pd.DataFrame({"image": [f"m{i:02d}.png" for i in range(25)]})
    with pytest.raises(DatasetError) as e:
        D.check_images(df, tmp_path)
    msg = str(e.value)
    assert msg.startswith("25 bad") and "m09.png" in msg and "m10.png" not in msg


def test_check_images_on_generated(balanced):
    root, df = balanced
    D.check_images(df, root, D.SYNTHETIC_MARROW_CLASSES)


# ---------------------------------------------------------------- make_splits / ssl_pool


def _labeled(counts: dict[str, int]) -> pd.DataFrame:
    rows = [(f"{c}/{c}_{i:03d}.png", c) for c, k in counts.items() for i in range(k)]
    return pd.DataFrame(rows, columns=["image", "label"]).sample(frac=1, random_state=1)


def test_make_splits_stratified_deterministic():
    lab = _labeled({"a": 100, "b": 40, "c": 10})
    unl = pd.DataFrame({"image": [f"u/{i}.png" for i in range(30)][::-1]})
    s1 = D.make_splits(lab, unl, 0.2, seed=0)
    s2 = D.make_splits(lab.sample(frac=1, random_state=5), unl, 0.2, seed=0)
    assert set(s1) == {"labeled_train", "unlabeled_train", "test"}
    for k in s1:
        pd.testing.assert_frame_equal(s1[k], s2[k])
        assert list(s1[k].image) == sorted(s1[k].image)
    assert s1["test"].label.value_counts().to_dict() == {"a": 20, "b": 8, "c": 2}
    assert len(s1["labeled_train"]) == 120
    assert list(s1["unlabeled_train"].columns) == ["image"] and len(s1["unlabeled_train"]) == 30
    test = set(s1["test"].image)
    assert not test & set(s1["labeled_train"].image) and not test & set(s1["unlabeled_train"].image)
    assert test | set(s1["labeled_train"].image) == set(lab.image)
    s3 = D.make_splits(lab, unl, 0.2, seed=1)
    assert set(s3["test"].image) != test


def test_make_splits_singleton_and_leak():
    lab = _labeled({"a": 20, "b": 20, "lonely": 1})
    # an unlabeled pool that contains every labeled image (common: "all images")
    unl = pd.DataFrame({"image": list(lab.image) + ["u/extra.png"]})
    with pytest.warns(UserWarning) as rec:
        s = D.make_splits(lab, unl, 0.25, seed=0)
    msgs = [str(w.message) for w in rec]
    assert any("'lonely'" in m for m in msgs)
    assert any("removed from unlabeled_train" in m for m in msgs)
    assert "lonely" in set(s["labeled_train"].label) and "lonely" not in set(s["test"].label)
    assert not set(s["test"].image) & set(s["unlabeled_train"].image)
    assert "u/extra.png" in set(s["unlabeled_train"].image)
    assert s["unlabeled_train"].shape[0] == len(unl) - len(s["test"])


def test_make_splits_errors():
    lab = _labeled({"a": 5, "b": 5})
    with pytest.raises(DatasetError, match="test_fraction"):
        D.make_splits(lab, None, 1.5, 0)
    with pytest.raises(DatasetError, match="a stratified split needs a test image of each"):
        D.make_splits(_labeled({c: 2 for c in "abcdefgh"}), None, 0.1, 0)
    with pytest.raises(DatasetError, match="'label'"):
        D.make_splits(lab[["image"]], None, 0.2, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = D.make_splits(lab, None, 0.2, 0)
    assert len(s["unlabeled_train"]) == 0 and list(s["unlabeled_train"].columns) == ["image"]


def test_ssl_pool_excludes_test():
    lab = _labeled({"a": 30, "b": 30})
    unl = pd.DataFrame({"image": ["u/1.png", "u/0.png"] + list(lab.image[:3])})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = D.make_splits(lab, unl, 0.3, 0)
    pool = D.ssl_pool(s)
    assert list(pool.columns) == ["image"]
    assert list(pool.image) == sorted(set(pool.image)) and pool.image.is_unique
    assert set(pool.image) == set(s["labeled_train"].image) | {"u/0.png", "u/1.png"} | (
        set(lab.image[:3]) - set(s["test"].image)
    )
    assert not set(pool.image) & set(s["test"].image)
    bad = dict(s, test=pd.concat([s["test"], s["labeled_train"].iloc[:1]]))
    with pytest.raises(DatasetError, match="test image"):
        D.ssl_pool(bad)


# ---------------------------------------------------------------- loading


def test_load_image_resize_and_modes(tmp_path):
    arr = np.zeros((40, 60, 3), np.uint8)
    arr[:, 30:] = 255
    Image.fromarray(arr).save(tmp_path / "x.png")
    Image.fromarray(arr[..., 0]).save(tmp_path / "g.png")
    x = D.load_image(tmp_path / "x.png", 20)
    assert x.shape == (20, 20, 3) and x.dtype == np.uint8
    assert x[:, 0].max() == 0 and x[:, -1].min() == 255
    assert 0 < x[0, 9:11].mean() < 255  # bilinear/antialiased edge, not nearest
    g = D.load_image(tmp_path / "g.png", 16)
    assert g.shape == (16, 16, 3) and (g[..., 0] == g[..., 2]).all()
    assert D.load_image(tmp_path / "x.png", 16, channels=1).shape == (16, 16, 1)
    with pytest.raises(DatasetError, match="nothere"):
        D.load_image(tmp_path / "nothere.png", 16)


def test_corrupt_dicom_is_named(tmp_path):
    (tmp_path / "x.dcm").write_bytes(b"\0" * 200)  # pydicom is a dependency; a bad file is named
    with pytest.raises(DatasetError, match=r"x.dcm \(cannot decode"):
        D.check_images(pd.DataFrame({"image": ["x.dcm"]}), tmp_path)


def test_image_dataset(balanced):
    root, df = balanced
    sub = df.groupby("label").head(2)  # includes 2 unlabeled rows (label "")
    ds = D.ImageDataset(list(sub.image), root, 24, labels=list(sub.label),
                        class_names=D.SYNTHETIC_MARROW_CLASSES)
    assert len(ds) == len(sub) == 18
    x, y = ds[0]
    assert x.dtype == torch.uint8 and x.shape == (3, 24, 24)
    assert D.SYNTHETIC_MARROW_CLASSES[y] == sub.label.iloc[0]
    X, Y = D.load_all(ds)
    assert X.shape == (18, 3, 24, 24) and X.dtype == torch.uint8 and Y.dtype == torch.int64
    expect = [D.SYNTHETIC_MARROW_CLASSES.index(lb) if lb else -1 for lb in sub.label]
    assert Y.tolist() == expect and (Y == -1).sum() == 2
    assert torch.equal(X[0], x)

    unl = D.ImageDataset(list(sub.image[:3]), root, 16, channels=1)
    Xu, Yu = D.load_all(unl)
    assert Xu.shape == (3, 1, 16, 16) and Yu.tolist() == [-1, -1, -1]

    with pytest.raises(DatasetError, match="'platypus'"):
        D.ImageDataset(["a.png"], root, 16, labels=["platypus"], class_names=["lymphocyte"])
    derived = D.ImageDataset(["a", "b"], root, 16, labels=["z", "y"])
    assert derived.class_names == ["y", "z"] and derived.targets == [1, 0]
    e0, e1 = D.load_all(D.ImageDataset([], root, 8))
    assert e0.shape == (0, 3, 8, 8) and e1.shape == (0,)


def test_generator_regenerates_incomplete_same_params(tmp_path):
    root = tmp_path / "m"
    D.generate_synthetic_marrow(root, SMALL_COUNTS, 1, 32, seed=0)
    before = _tree_digest(root)
    (root / "images/basophil/basophil_00001.png").unlink()
    D.generate_synthetic_marrow(root, SMALL_COUNTS, 1, 32, seed=0)
    assert _tree_digest(root) == before
    with pytest.raises(DatasetError, match="seed"):
        D.generate_synthetic_marrow(tmp_path / "n", SMALL_COUNTS, 0, 32, seed=-1)


# ---------------------------------------------------------------- the package's layout


SCRIPTS = REPO / "workflow" / "scripts"
DATA = REPO / "workflow" / "src" / "medssl" / "data"
DATA_SCRIPTS = ["make_splits", "check_splits", "index_dataset", "generate_dataset", "check_manual_data"]


def test_data_rules_load_no_torch():
    """The data rules (on the demo's critical path) import neither torch nor, before a split is made, sklearn:
    the imports of their scripts, and the modules medssl.data.checks.check_splits imports when called."""
    imports = [ast.unparse(node) for name in DATA_SCRIPTS
               for node in ast.parse((SCRIPTS / f"{name}.py").read_text()).body
               if isinstance(node, (ast.Import, ast.ImportFrom))]
    code = "\n".join(["import sys", "import medssl.data.splits", *imports,
                      "import medssl.data.images, medssl.data.manifests, medssl.data.sources, medssl.data.synthetic",
                      "from medssl.data import read_split, source_for, DatasetError",
                      "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'torchvision', 'timm', 'sklearn'}))"])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_only_the_dataset_module_imports_torch_and_no_module_is_long():
    for path in sorted(DATA.glob("*.py")):
        text = path.read_text()
        assert len(text.splitlines()) <= 450, path.name
        imported = {alias.name.split(".")[0] for node in ast.walk(ast.parse(text))
                    if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(ast.parse(text))
                     if isinstance(node, ast.ImportFrom) and node.module}
        assert ("torch" in imported) == (path.name == "dataset.py"), path.name


def test_only_sources_branches_on_the_source_kind():
    """The kind of a dataset's source is looked up once, in medssl.data.sources.source_for: the rules, the
    scripts and the rest of medssl ask the source object."""
    pattern = re.compile(r"""source"?\]?\s*(\[\s*["']kind["']\s*\]|\.get\(\s*["']kind["'])""")
    files = [*(REPO / "workflow").rglob("*.py"), *(REPO / "workflow").rglob("*.smk"), *(REPO / "benchmarks").rglob("*.py")]
    assert [f.name for f in files if pattern.search(f.read_text()) and f.name != "sources.py"] == []
    assert pattern.search((DATA / "sources.py").read_text())


def test_sources_know_their_images_files_and_downloads(tmp_path):
    from medssl.data.sources import source_for

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "0.png").write_bytes(b"x")
    url = {"url": "https://example.org/files/x.npz?download=1"}
    kinds = {
        "folder": ({"root": str(tmp_path)}, str(tmp_path), [str(tmp_path / "a" / "0.png")]),
        "manifest": ({"root": str(tmp_path), "manifest": "m.csv"}, str(tmp_path), ["m.csv"]),
        "npz": ({"path": "data/x_64.npz"}, "data/x_64.npz", ["data/x_64.npz"]),
        "generated": ({"generator": "synthetic_marrow"}, "results/data/ds/synthetic", []),
    }
    for kind, (config, root, files) in kinds.items():
        source = source_for({"source": {"kind": kind, **config}, "classes": ["a"]}, "ds")
        assert (source.kind, source.image_root, source.files()) == (kind, root, files)
        assert source.generated == (kind == "generated")
        assert source.download_path({**url, "to": "t/x"}, "dl") == "t/x"
        assert source.download_path({**url, "unpack": {"to": "u"}}, "dl") == "dl/ds/x.npz"
        assert source.download_path(url, "dl") == ("data/x_64.npz" if kind == "npz" else "dl/ds/x.npz")
    with pytest.raises(DatasetError, match=r"datasets.ds.split.group_column: .*source.kind 'folder' has none"):
        source_for({"source": {"kind": "folder", "root": str(tmp_path)}, "classes": ["a"],
                    "split": {"group_column": "lesion"}}, "ds").index()
