"""Download stage: resumable, checksummed HTTP downloads, atomic unpacking, manual sources
(medssl.download), against a loopback server started by the tests (tests/local_server.py)."""

from __future__ import annotations

import errno
import hashlib
import io
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medssl import download
from medssl.download import archives, transfer
from medssl.download import ChecksumError, DownloadError
from local_server import Handler, serve


def png_bytes(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((4, 4, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def make_zip(path: Path, files: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return hashlib.sha256(path.read_bytes()).hexdigest()


CLASSES = {"Kather/01_TUMOR/a.tif": png_bytes(1), "Kather/01_TUMOR/b.tif": png_bytes(2),
           "Kather/02_STROMA/c.tif": png_bytes(3), "__MACOSX/Kather/._a.tif": b"junk",
           "Kather/.DS_Store": b"junk"}


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    with serve(root) as base:
        yield root, base


def test_zip_is_downloaded_verified_and_unpacked(site, tmp_path):
    root, base = site
    sha = make_zip(root / "kather.zip", CLASSES)
    md5 = hashlib.md5((root / "kather.zip").read_bytes()).hexdigest()
    archive = download.fetch(f"{base}/files/kather.zip", tmp_path / "dl" / "kather.zip", sha256=sha, md5=md5,
                             backoff=0)
    assert archive.read_bytes() == (root / "kather.zip").read_bytes()
    assert not archive.with_name("kather.zip.part").exists()
    out = download.unpack(archive, tmp_path / "data" / "kather", member="Kather", links=[tmp_path / "data" / "alias"])
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "01_TUMOR/a.tif", "01_TUMOR/b.tif", "02_STROMA/c.tif"]  # __MACOSX and .DS_Store dropped
    assert (tmp_path / "data" / "alias" / "01_TUMOR" / "a.tif").read_bytes() == CLASSES["Kather/01_TUMOR/a.tif"]
    assert [p.name for p in (tmp_path / "data").iterdir() if p.name.startswith(".")] == []
    # a complete earlier download is not fetched again
    Handler.requests.clear()
    download.fetch(f"{base}/files/kather.zip", archive, sha256=sha)
    assert Handler.requests == []


def test_tar_gz_whole_archive(site, tmp_path):
    root, _ = site
    with tarfile.open(root / "x.tar.gz", "w:gz") as tf:
        for name, data in {"NORMAL/a.png": png_bytes(1), "PNEUMONIA/b.png": png_bytes(2)}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    out = download.unpack(root / "x.tar.gz", tmp_path / "cxr")
    assert sorted(p.name for p in out.iterdir()) == ["NORMAL", "PNEUMONIA"]


def test_dropped_connection_is_resumed_with_a_range_request(site, tmp_path):
    root, base = site
    data = np.random.default_rng(0).bytes(300_000)
    (root / "big.bin").write_bytes(data)
    dest = download.fetch(f"{base}/drop/big.bin", tmp_path / "big.bin",
                          sha256=hashlib.sha256(data).hexdigest(), backoff=0)
    assert dest.read_bytes() == data
    assert Handler.requests == [("/drop/big.bin", None), ("/drop/big.bin", f"bytes={len(data) // 2}-")]


def test_partial_file_of_a_killed_job_is_resumed(site, tmp_path):
    root, base = site
    data = b"0123456789" * 1000
    (root / "f.bin").write_bytes(data)
    (tmp_path / "f.bin.part").write_bytes(data[:3000])
    download.fetch(f"{base}/files/f.bin", tmp_path / "f.bin", md5=hashlib.md5(data).hexdigest())
    assert (tmp_path / "f.bin").read_bytes() == data
    assert Handler.requests == [("/files/f.bin", "bytes=3000-")]


def test_server_errors_are_retried_with_back_off(site, tmp_path):
    root, base = site
    (root / "f.bin").write_bytes(b"x" * 100)
    download.fetch(f"{base}/flaky/f.bin", tmp_path / "f.bin", backoff=0)
    assert [r[0] for r in Handler.requests] == ["/flaky/f.bin", "/flaky/f.bin"]


def test_checksum_mismatch_names_both_sums_and_moves_the_file(site, tmp_path):
    root, base = site
    (root / "f.zip").write_bytes(b"not what was published")
    actual = hashlib.sha256(b"not what was published").hexdigest()
    dest = tmp_path / "f.zip"
    with pytest.raises(ChecksumError) as err:
        download.fetch(f"{base}/files/f.zip", dest, sha256="0" * 64)
    message = str(err.value)
    assert actual in message and "0" * 64 in message and str(tmp_path / "f.zip.bad") in message
    assert not dest.exists() and not (tmp_path / "f.zip.part").exists()
    assert (tmp_path / "f.zip.bad").read_bytes() == b"not what was published"


def test_html_page_instead_of_the_file(site, tmp_path):
    _, base = site
    with pytest.raises(DownloadError, match="HTML page.*login wall"):
        download.fetch(f"{base}/html/data.zip", tmp_path / "data.zip", backoff=0)
    assert not (tmp_path / "data.zip").exists()
    assert len(Handler.requests) == 1  # not retried


def test_404_names_the_url_and_is_not_retried(site, tmp_path):
    _, base = site
    with pytest.raises(DownloadError, match=r"files/gone.zip failed: HTTP 404"):
        download.fetch(f"{base}/files/gone.zip", tmp_path / "gone.zip", backoff=0)
    assert len(Handler.requests) == 1


@pytest.mark.parametrize("code, reason", [(errno.ENOSPC, "No space left on device"),
                                          (errno.EACCES, "Permission denied")])
def test_disk_full_or_permission_error_names_the_path(site, tmp_path, monkeypatch, code, reason):
    root, base = site
    (root / "f.bin").write_bytes(b"x" * 100)

    def failing_open(path, mode="r", *args, **kwargs):
        raise OSError(code, reason, str(path))

    monkeypatch.setattr(transfer, "open", failing_open, raising=False)
    with pytest.raises(DownloadError) as err:
        download.fetch(f"{base}/files/f.bin", tmp_path / "f.bin", backoff=0)
    assert str(tmp_path / "f.bin.part") in str(err.value) and reason in str(err.value)
    assert len(Handler.requests) == 1  # not retried: retrying cannot free the disk


def test_failed_unpack_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    make_zip(tmp_path / "a.zip", CLASSES)

    def killed(archive, into, *_):
        (into / "Kather").mkdir()
        (into / "Kather" / "half.tif").write_bytes(b"x")
        raise KeyboardInterrupt

    monkeypatch.setattr(archives, "_extract", killed)
    with pytest.raises(KeyboardInterrupt):
        download.unpack(tmp_path / "a.zip", tmp_path / "data" / "kather", member="Kather")
    assert list((tmp_path / "data").iterdir()) == []


def test_bad_archive_and_missing_member(tmp_path):
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DownloadError, match="not a valid zip archive"):
        download.unpack(tmp_path / "bad.zip", tmp_path / "out")
    make_zip(tmp_path / "a.zip", CLASSES)
    with pytest.raises(DownloadError, match=r"no folder 'Other'.*\['Kather'\]"):
        download.unpack(tmp_path / "a.zip", tmp_path / "out", member="Other")
    assert not (tmp_path / "out").exists()


def test_npz_check(tmp_path):
    np.savez(tmp_path / "ok.npz", **{f"{s}_images": np.zeros((2, 4, 4), np.uint8) for s in ("train", "val", "test")},
             **{f"{s}_labels": np.zeros((2, 1), np.uint8) for s in ("train", "val", "test")})
    assert download.check_npz(tmp_path / "ok.npz") == {"train": 2, "val": 2, "test": 2}
    np.savez(tmp_path / "bad.npz", train_images=np.zeros((2, 4, 4)))
    with pytest.raises(DownloadError, match="missing"):
        download.check_npz(tmp_path / "bad.npz")


def test_manual_source_instructions_and_verification(tmp_path):
    manual = {"what": "the TCIA collection Bone-Marrow-Cytomorphology (Aspera)", "url": "https://example.org/bm",
              "why": "TCIA serves it through the Aspera plugin", "root": str(tmp_path / "bm"),
              "classes": {"ART": 2, "BAS": 1}}
    with pytest.raises(DownloadError) as err:
        download.check_manual("bm", manual)
    message = str(err.value)
    assert "must be downloaded by hand" in message and "https://example.org/bm" in message
    assert str(tmp_path / "bm") in message and "ART, BAS" in message
    (tmp_path / "bm" / "ART" / "0-1000").mkdir(parents=True)
    (tmp_path / "bm" / "ART" / "0-1000" / "ART_1.jpg").write_bytes(b"x")
    (tmp_path / "bm" / "stray").mkdir()
    with pytest.raises(DownloadError) as err:
        download.check_manual("bm", manual)
    message = str(err.value)
    assert f"{tmp_path / 'bm' / 'ART'}: 1 image files, expected 2" in message
    assert f"class folder {tmp_path / 'bm' / 'BAS'} is missing" in message and "['stray']" in message
    (tmp_path / "bm" / "stray").rmdir()
    (tmp_path / "bm" / "ART" / "ART_2.jpg").write_bytes(b"x")
    (tmp_path / "bm" / "BAS").mkdir()
    (tmp_path / "bm" / "BAS" / "BAS_1.jpg").write_bytes(b"x")
    assert download.check_manual("bm", manual) == {"ART": 2, "BAS": 1}


# --------------------------------------------------------------------------------------
# The download rules in the workflow
# --------------------------------------------------------------------------------------


def workflow_config(base: str, npz_md5: str, zip_sha256: str) -> dict:
    import yaml

    from snakemake_runner import REPO

    config = yaml.safe_load((REPO / "tests" / "config" / "tiny.yaml").read_text())
    config["datasets"] = {
        "kather": {"source": {"kind": "folder", "root": "data/kather/tiles", "download": [
            {"url": f"{base}/drop/kather.zip", "sha256": zip_sha256,   # rule download_archive_sha256 (ensure)
             "unpack": {"to": "data/kather/tiles", "member": "Kather"}}]},
            "image_size": 8, "classes": ["01_TUMOR", "02_STROMA"]},
        "blood": {"source": {"kind": "npz", "path": "data/blood/bloodmnist.npz",
                             "download": [{"url": f"{base}/files/bloodmnist.npz", "md5": npz_md5}]},
                  "image_size": 8, "classes": ["basophil", "eosinophil", "erythroblast"]},
        "bm": {"source": {"kind": "folder", "root": "data/bm/BM_cytomorphology_data",
                          "manual": {"what": "the bone-marrow collection", "url": "https://example.org/bm",
                                     "root": "data/bm/BM_cytomorphology_data", "classes": {"ART": 1, "BAS": 1}}},
               "image_size": 8, "classes": ["ART", "BAS"]},
    }
    config["downloads"] = {"keep_archives": False, "retries": 2}
    config["methods"] = {"random_init": {"kind": "random_init"}}
    config["baselines"] = {"supervised": {"enabled": False}}
    config["figures"] = {"confusion": {"method": "random_init", "classifier": "svm", "budget": "all"}}
    return config


@pytest.mark.slow
def test_workflow_downloads_what_it_can_and_stops_with_instructions(site, tmp_path):
    """zip (connection dropped once, resumed) -> unpacked -> indexed; a MedMNIST .npz -> index ->
    official splits -> embeddings; the manual dataset fails with what to download and where."""
    import yaml

    from snakemake_runner import run_snakemake
    from test_npz import write_medmnist

    root, base = site
    zip_sha256 = make_zip(root / "kather.zip", CLASSES)
    npz_md5 = hashlib.md5(write_medmnist(root / "bloodmnist.npz").read_bytes()).hexdigest()
    work = tmp_path / "work"
    work.mkdir()
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(workflow_config(base, npz_md5, zip_sha256)))
    run_snakemake(work, configfile, "--cores", "1", "results/data/kather/manifest.csv",
                  "results/embeddings/blood/random_init/labeled_train.npz",
                  "results/embeddings/blood/random_init/test.npz")
    assert sorted(p.name for p in (work / "data/kather/tiles").iterdir()) == [
        ".snakemake_timestamp", "01_TUMOR", "02_STROMA"]
    assert not (work / "data/downloads/kather/kather.zip").exists()  # downloads.keep_archives: false
    assert ("/drop/kather.zip", None) in Handler.requests and any(r for p, r in Handler.requests if p == "/drop/kather.zip")
    manifest = (work / "results/data/kather/manifest.csv").read_text().splitlines()
    assert manifest[0] == "image,label" and len(manifest) == 4
    with np.load(work / "results/embeddings/blood/random_init/test.npz") as emb:
        assert emb["features"].shape[0] == 3 and list(emb["image"]) == ["test/000000", "test/000001", "test/000002"]
    assert len((work / "splits/blood/labeled_train.csv").read_text().splitlines()) == 7  # official train: 6

    proc = run_snakemake(work, configfile, "--cores", "1", "results/data/bm/manifest.csv", check=False)
    assert proc.returncode != 0
    log = (work / "results/logs/check_manual_data/bm.log").read_text()
    assert "must be downloaded by hand" in log and "https://example.org/bm" in log
    assert "data/bm/BM_cytomorphology_data" in log


@pytest.mark.parametrize("configs, expected", [
    # BM by hand; HyperKvasir (sha256 known); ISIC 2019 zip + 2 CSVs, ISIC 2020 train/test zips
    (["config/paper.yaml"], {"check_manual_data": 1, "download_archive_sha256": 1, "download_archive": 3,
                             "download_file": 2, "unpack_archive": 4, "index_dataset": 3, "make_splits": 1}),
    (["config/medmnist.yaml"], {"download_file": 4, "index_dataset": 4, "make_splits": 4}),
    (["config/medmnist.yaml", "config/presets/medmnist_64.yaml"], {"download_file": 4, "index_dataset": 4}),
    (["config/config.yaml", "config/presets/smalldatassl_datasets.yaml"],
     {"check_manual_data": 2, "download_archive": 1, "unpack_archive": 1, "index_dataset": 3}),
])
def test_shipped_configs_plan_their_downloads_without_data(configs, expected):
    """Every dataset of both papers and MedMNIST has a source: a dry run plans its download jobs."""
    from test_dryrun import dry_run

    counts, _, _ = dry_run("--configfile", *configs)
    assert {rule: counts.get(rule, 0) for rule in expected} == expected


# --------------------------------------------------------------------------------------
# Servers that misbehave, archives that would write where they should not
# --------------------------------------------------------------------------------------


def test_server_that_ignores_range_restarts_the_download(site, tmp_path, caplog):
    root, base = site
    data = np.random.default_rng(1).bytes(200_000)
    (root / "big.bin").write_bytes(data)
    with caplog.at_level("INFO"):
        dest = download.fetch(f"{base}/norange/big.bin", tmp_path / "big.bin",
                              sha256=hashlib.sha256(data).hexdigest(), backoff=0)
    assert dest.read_bytes() == data  # the half kept from the dropped attempt was not glued to a full body
    assert Handler.requests == [("/norange/big.bin", None), ("/norange/big.bin", f"bytes={len(data) // 2}-")]
    assert "does not resume downloads; starting again" in caplog.text


def test_server_that_stalls_mid_body_times_out_and_is_retried(site, tmp_path):
    root, base = site
    data = np.random.default_rng(2).bytes(100_000)
    (root / "f.bin").write_bytes(data)
    dest = download.fetch(f"{base}/stall/f.bin", tmp_path / "f.bin", md5=hashlib.md5(data).hexdigest(),
                          timeout=0.5, backoff=0)
    assert dest.read_bytes() == data and [r[0] for r in Handler.requests] == ["/stall/f.bin"] * 2


def test_redirect_to_a_file_url_is_refused_and_to_another_host_followed(site, tmp_path, caplog):
    root, base = site
    with pytest.raises(DownloadError, match=r"to-file/x.zip failed: HTTP 302 .*file:///etc/passwd' is not allowed"):
        download.fetch(f"{base}/to-file/x.zip", tmp_path / "x.zip", backoff=0)
    assert not (tmp_path / "x.zip").exists() and len(Handler.requests) == 1  # not retried
    (root / "f.bin").write_bytes(b"data" * 100)
    with caplog.at_level("INFO"):
        download.fetch(f"{base}/to-host/f.bin", tmp_path / "f.bin", md5=hashlib.md5(b"data" * 100).hexdigest())
    assert (tmp_path / "f.bin").read_bytes() == b"data" * 100
    assert f"redirected to http://localhost:{base.rsplit(':', 1)[1]}/files/f.bin" in caplog.text


def tar_with(path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    with tarfile.open(path, "w") as tf:
        ok = tarfile.TarInfo("a/ok.png")
        ok.size = len(png_bytes(1))
        tf.addfile(ok, io.BytesIO(png_bytes(1)))
        member.size = len(data)
        tf.addfile(member, io.BytesIO(data))
    return path


def tar_member(name: str, kind: bytes = tarfile.REGTYPE, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize("make", [
    lambda d: make_zip(d / "a.zip", {"a/ok.png": png_bytes(1), "../escaped.png": b"x"}) and d / "a.zip",
    lambda d: make_zip(d / "a.zip", {"a/ok.png": png_bytes(1), "/tmp/absolute.png": b"x"}) and d / "a.zip",
    lambda d: tar_with(d / "a.tar", tar_member("../escaped.png"), b"x"),
    lambda d: tar_with(d / "a.tar", tar_member("/tmp/absolute.png"), b"x"),
    lambda d: tar_with(d / "a.tar", tar_member("a/passwd.png", tarfile.SYMTYPE, "/etc/passwd")),
    lambda d: tar_with(d / "a.tar", tar_member("a/up.png", tarfile.SYMTYPE, "../../../escaped.png")),
    lambda d: tar_with(d / "a.tar", tar_member("a/hard.png", tarfile.LNKTYPE, "../escaped.png")),
], ids=["zip-slip", "zip-absolute", "tar-slip", "tar-absolute", "tar-symlink-out", "tar-symlink-up",
        "tar-hardlink-out"])
def test_unsafe_archive_member_is_refused_before_anything_is_written(tmp_path, make):
    archive = make(tmp_path)
    with pytest.raises(DownloadError, match=r"member '.*' .*: an unsafe archive, not unpacked"):
        download.unpack(archive, tmp_path / "out" / "data")
    assert list((tmp_path / "out").iterdir()) == [] and not (tmp_path / "escaped.png").exists()


def test_zip_symlink_member_is_not_unpacked(tmp_path, caplog):
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        zf.writestr("a/ok.png", png_bytes(1))
        link = zipfile.ZipInfo("a/link.png")
        link.external_attr = (0o120777 << 16)  # a symlink, as `zip -y` stores it
        zf.writestr(link, "/etc/passwd")
    out = download.unpack(tmp_path / "a.zip", tmp_path / "out")
    assert sorted(p.name for p in (out / "a").iterdir()) == ["ok.png"]
    assert "1 symlink member(s) not unpacked" in caplog.text and "a/link.png" in caplog.text


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_archive_bomb_is_refused_from_its_declared_sizes(tmp_path, monkeypatch, fmt):
    zeros = bytes(3_000_000)  # compresses to a few kB
    archive = tmp_path / f"bomb.{fmt}"
    if fmt == "zip":
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("a/zeros.png", zeros)
    else:
        with tarfile.open(archive, "w:gz") as tf:
            info = tarfile.TarInfo("a/zeros.png")
            info.size = len(zeros)
            tf.addfile(info, io.BytesIO(zeros))
    assert archive.stat().st_size < 100_000
    writes = []
    monkeypatch.setattr(zipfile.ZipFile, "extractall", lambda *a, **k: writes.append(a))
    monkeypatch.setattr(tarfile.TarFile, "extractall", lambda *a, **k: writes.append(a))
    with pytest.raises(DownloadError, match=r"add up to 3.0 MB unpacked, more than downloads.max_unpacked_gb = 0.001"):
        download.unpack(archive, tmp_path / "out", max_gb=0.001)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 10**6, 10**6))
    with pytest.raises(DownloadError, match=r"add up to 3.0 MB unpacked, but .* has 1.0 MB free; free disk space"):
        download.unpack(archive, tmp_path / "out")
    assert writes == [] and not (tmp_path / "out").exists()
