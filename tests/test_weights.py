"""Published-weights path: a small checkpoint with sparsam's key layout (backbone.* + projection_head.*,
docs/papers.md#released-weights), served over HTTP from a local thread (no internet needed)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from local_server import Handler, serve
from medssl.backbone import build_backbone, load_backbone
from medssl.download import weights
from medssl.ssl.dino import DINOHead

# The code path of the real XCiT-S/8 (xcit_small_12_p8_224), on its smallest sibling.
XCIT = {"name": "xcit_nano_12_p8_224", "pretrained": False, "kwargs": {"img_size": 16, "depth": 2}}


def sparsam_checkpoint(spec: dict = XCIT) -> tuple[dict, dict]:
    """(wrapper state dict, backbone state dict) in the layout of sparsam's MultiCropModelWrapper."""
    torch.manual_seed(0)
    backbone = build_backbone(spec["name"], **spec["kwargs"])
    head = DINOHead(backbone.num_features, 32, hidden_dim=16, bottleneck_dim=8, n_layers=3)
    state = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    for k, v in head.state_dict().items():  # old nn.utils.weight_norm names, as in the released files
        k = k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1",
                                                                               "weight_v")
        state[f"projection_head.{k}"] = v
    return state, backbone.state_dict()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    with serve(root) as base:
        yield root, f"{base}/files"


def ranges() -> list:
    return [r for _, r in Handler.requests]


def write_checkpoint(path: Path, state: dict) -> str:
    torch.save(state, path)
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_fetch_over_http_strips_prefix_and_loads_strictly(server, tmp_path):
    root, base = server
    state, expected = sparsam_checkpoint()
    md5 = write_checkpoint(root / "pretrained_bm.pt", state)
    out = tmp_path / "ssl" / "backbone.pt"
    dl = tmp_path / "dl" / "published.pt"
    weights.fetch_published_weights(f"{base}/pretrained_bm.pt", md5, dl, XCIT, out)
    saved = torch.load(out, weights_only=True)
    assert saved.keys() == expected.keys() and all(torch.equal(saved[k], expected[k]) for k in saved)
    assert not any(k.startswith(("backbone.", "projection_head.")) for k in saved)
    model = load_backbone(XCIT, out)  # exactly what the embedding rule does
    assert model(torch.zeros(1, 3, 16, 16)).shape == (1, model.num_features)
    assert dl.exists() and not dl.with_name(dl.name + ".part").exists()
    # a second run uses the verified download instead of fetching again
    Handler.requests.clear()
    weights.fetch_published_weights(f"{base}/pretrained_bm.pt", md5, dl, XCIT, out)
    assert ranges() == []


def test_interrupted_download_is_resumed(server, tmp_path):
    root, base = server
    md5 = write_checkpoint(root / "w.pt", sparsam_checkpoint()[0])
    data = (root / "w.pt").read_bytes()
    dl = tmp_path / "w.pt"
    dl.with_name("w.pt.part").write_bytes(data[: len(data) // 3])  # a cut-off earlier attempt
    assert weights.download(f"{base}/w.pt", dl, md5) == dl
    assert dl.read_bytes() == data
    assert ranges() == [f"bytes={len(data) // 3}-"]


def test_wrong_md5_fails_names_both_sums_and_deletes_the_file(server, tmp_path):
    root, base = server
    actual = write_checkpoint(root / "pretrained_isic.pt", sparsam_checkpoint()[0])
    wrong = "0" * 32
    out = tmp_path / "backbone.pt"
    dl = tmp_path / "dl.pt"
    with pytest.raises(weights.ChecksumError) as err:
        weights.fetch_published_weights(f"{base}/pretrained_isic.pt", wrong, dl, XCIT, out)
    message = str(err.value)
    assert "pretrained_isic.pt" in message and actual in message and wrong in message
    assert not dl.exists() and not dl.with_name(dl.name + ".part").exists() and not out.exists()


def test_missing_backbone_key_fails_strictly(server, tmp_path):
    root, base = server
    state, _ = sparsam_checkpoint()
    del state["backbone.cls_token"]
    md5 = write_checkpoint(root / "bad.pt", state)
    out = tmp_path / "backbone.pt"
    with pytest.raises(ValueError, match="cls_token"):
        weights.fetch_published_weights(f"{base}/bad.pt", md5, tmp_path / "dl.pt", XCIT, out)
    assert not out.exists()


def test_other_backbone_fails_with_a_hint(tmp_path):
    path = tmp_path / "w.pt"
    write_checkpoint(path, sparsam_checkpoint()[0])
    vit = {"name": "vit_tiny_patch16_224", "pretrained": False, "kwargs": {"img_size": 16, "patch_size": 4}}
    with pytest.raises(ValueError, match="xcit_small_12_p8_224"):
        weights.load_published_backbone(path, vit)


def test_local_file_url_is_used_in_place(tmp_path):
    path = tmp_path / "my weights" / "pretrained_endo.pt"
    path.parent.mkdir()
    state, expected = sparsam_checkpoint()
    md5 = write_checkpoint(path, state)
    out = tmp_path / "backbone.pt"
    dl = tmp_path / "never.pt"
    weights.fetch_published_weights(path.as_uri(), md5, dl, XCIT, out)
    assert not dl.exists()
    saved = torch.load(out, weights_only=True)
    assert all(torch.equal(saved[k], expected[k]) for k in expected)
    with pytest.raises(weights.ChecksumError):  # a local file with the wrong sum is an error, never deleted
        weights.download(path.as_uri(), dl, "f" * 32)
    assert path.exists()


def test_backbone_state_variants():
    t = torch.zeros(1)
    assert weights.backbone_state({"module.backbone.a": t, "module.head.b": t}) == {"a": t}
    assert weights.backbone_state({"teacher": {"backbone.a": t, "head.x": t}, "epoch": 3}) == {"a": t}
    with pytest.raises(ValueError, match="no 'backbone.' keys"):
        weights.backbone_state({"encoder.a": t})
