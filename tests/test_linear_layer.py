"""The paper's "SSL + LL" arm (rule linear_layer): a linear layer on images through the frozen SSL backbone."""
import torch
from test_supervised import BACKBONE, CLASSES, SETTINGS
from test_supervised import image_set  # noqa: F401 (a fixture)

from medssl.backbone import build_backbone
from medssl.evaluate.linear_layer import CLASSIFIER, frozen_backbone_classifier, settings_for_method
from medssl.evaluate.supervised import run_supervised
from medssl.settings import LinearLayerConfig
from medssl.ssl.simclr import SimCLR


def test_linear_layer_trains_only_norm_and_head_on_the_ssl_weights(image_set, tmp_path):
    """The paper's SSL + LL: the SSL backbone loaded strictly, frozen except its final norm and a new head."""
    torch.manual_seed(1)
    bb = {**BACKBONE, "kwargs": {**BACKBONE["kwargs"], "dynamic_img_size": True}}  # 8 px local views
    ssl = build_backbone(bb["name"], **bb["kwargs"])
    torch.save(ssl.state_dict(), tmp_path / "backbone.pt")
    models = []

    def factory(n):
        models.append(frozen_backbone_classifier(bb, tmp_path / "backbone.pt", n))
        return models[-1]

    settings = settings_for_method(LinearLayerConfig.from_dict({**SETTINGS, "epochs": 2}),
                                   {"global_size": 16, "local_size": 8, "n_local": 2, "normalize": "minus_one_one"})
    assert settings.augment == "multicrop" and settings.normalize == "minus_one_one"
    root, labeled, test = image_set
    record, _, _ = run_supervised(labeled, test, root, CLASSES, 16, 3, "all", 0, None, bb, settings,
                                  torch.device("cpu"), model_factory=factory, classifier=CLASSIFIER)
    assert record["classifier"] == "linear_layer" and 0 <= record["balanced_accuracy"] <= 1
    trained = models[0].state_dict()
    changed = {k for k, v in ssl.state_dict().items() if not torch.equal(v, trained[k])}
    assert changed == {"norm.weight", "norm.bias"}  # the rest is the SSL backbone, untouched
    assert {n for n, p in models[0].named_parameters() if p.requires_grad} == {
        "norm.weight", "norm.bias", "head.weight", "head.bias"}


def test_linear_layer_views_are_those_the_method_was_pretrained_with():
    """A SimCLR entry without an augmentation block pretrained on SimCLR's own views; the arm trains on
    them too (its config's keys over the kind's defaults), not on DINO-style multi-crop defaults."""
    base = LinearLayerConfig.from_dict({})
    assert settings_for_method(base, {}, "simclr").multicrop == SimCLR.augmentation_defaults
    own = settings_for_method(base, {"hflip_p": 0.0, "normalize": "minus_one_one"}, "simclr")
    assert own.multicrop == {**SimCLR.augmentation_defaults, "hflip_p": 0.0, "normalize": "minus_one_one"}
    assert own.normalize == "minus_one_one"
    published = settings_for_method(base, {"normalize": "minus_one_one"}, "published")  # untrained kinds: as given
    assert published.multicrop == {"normalize": "minus_one_one"} and published.normalize == "minus_one_one"
