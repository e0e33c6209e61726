"""The baselines' typed settings (medssl.settings): one home per default, one meaning per key, plan-time
errors naming the key."""
import dataclasses
from pathlib import Path

import pytest
import yaml

from medssl import checks
from medssl.settings import LinearLayerConfig, SupervisedConfig

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
ARMS = {"supervised": SupervisedConfig, "linear_layer": LinearLayerConfig}


def keys(settings_class):
    return {f.name for f in dataclasses.fields(settings_class)} - set(settings_class.not_keys)


@pytest.mark.parametrize("arm", ARMS)
def test_the_schema_has_the_keys_and_the_dataclass_the_defaults(arm):
    section = SCHEMA["properties"]["baselines"]["properties"][arm]
    assert set(section["properties"]) == keys(ARMS[arm])
    with_default = sorted(k for k, v in section["properties"].items() if "default" in v)
    assert not with_default and "default" not in SCHEMA["$defs"]["lr_plateau"], with_default


def test_from_dict_converts_numbers_and_names_the_section():
    cfg = SupervisedConfig.from_dict({"enabled": True, "lr": "1e-3", "epochs": 3.0, "lr_step_size": None})
    assert (cfg.lr, cfg.epochs, cfg.lr_step_size, cfg.clip_mode) == (1e-3, 3, None, "none")
    assert LinearLayerConfig.from_dict({"enabled": True}).batch_size == 256
    with pytest.raises(ValueError, match="unknown baselines.linear_layer config key.*head"):
        LinearLayerConfig.from_dict({"enabled": True, "head": "mlp"})
    with pytest.raises(ValueError, match=r"baselines.supervised.augment='flip'"):
        SupervisedConfig.from_dict({"augment": "flip"})


@pytest.mark.parametrize("arm", ARMS)
def test_clip_mode_norm_is_refused_naming_the_key_and_global_norm(arm):
    """`norm` is DINO's per-parameter clip under methods.*; the baselines' global norm is `global_norm`."""
    config = {"baselines": {arm: {"enabled": True, "clip_mode": "norm"}}}
    (error,) = checks.baseline_errors(config)
    assert f"baselines.{arm}.clip_mode" in error and "'global_norm'" in error
    config["baselines"][arm]["clip_mode"] = "global_norm"
    assert checks.baseline_errors(config) == []


def test_baseline_errors_name_the_multicrop_key():
    config = {"baselines": {"supervised": {"enabled": True, "augment": "multicrop", "multicrop": {"n_locals": 2}},
                            "linear_layer": {"enabled": False, "warmup_iterations": 2}}}
    (error,) = checks.baseline_errors(config)
    assert error.startswith("baselines.supervised.multicrop:") and "n_locals" in error


def test_config_errors_run_the_baseline_check():
    """The plan-time checks of rules/common.smk (medssl.checks.config_errors) include baseline_errors."""
    config = yaml.safe_load((REPO / "tests" / "config" / "tiny.yaml").read_text())
    assert checks.config_errors(config) == []
    config["baselines"]["linear_layer"]["clip_mode"] = "norm"
    assert [e.split(":")[0] for e in checks.config_errors(config)] == ["baselines.linear_layer.clip_mode"]
