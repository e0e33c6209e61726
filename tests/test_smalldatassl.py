"""config/smalldatassl.yaml (Chattopadhyay et al.): plans without data, and carries the paper's protocol."""
import yaml

from medssl.evaluate.classify import build_classifier
from medssl.ssl.launch import parse_spec
from test_dryrun import REPO, dry_run

CONFIG = REPO / "config" / "smalldatassl.yaml"
SSL_KINDS = {"simclr", "dclw", "simsiam", "vicreg"}


def config():
    return yaml.safe_load(CONFIG.read_text())


def test_plans_every_job_without_data():
    counts, total, elapsed = dry_run("--configfile", str(CONFIG))
    print(f"\nsmalldatassl dry run: {total} jobs in {elapsed:.1f} s: {counts}")
    c = config()
    datasets, methods = c["datasets"], c["methods"]
    n_ssl = sum(m["kind"] in SSL_KINDS for m in methods.values())
    pretrain = sum(n for rule, n in counts.items() if rule.startswith("pretrain"))
    assert pretrain == len(datasets) * n_ssl
    assert counts["init_random_backbone"] == len(datasets)
    assert counts["fetch_pretrained_backbone"] == 1  # the frozen ImageNet arm: built once, embedded per dataset
    assert counts["embed"] == len(datasets) * len(methods)
    assert counts["fit_classifiers"] == len(datasets) * len(methods)  # every budget, classifier and seed in one job
    supervised = c["baselines"]["supervised"]
    arms = 1 + bool(supervised.get("imagenet"))
    assert counts["train_supervised"] == len(datasets) * arms * len(supervised["budgets"]) * len(c["evaluation"]["seeds"])
    assert counts["compare_methods"] == counts["plot_method_comparison"] == 1


def test_carries_the_papers_setup():
    c = config()
    overlay = yaml.safe_load((REPO / "config" / "presets" / "smalldatassl_datasets.yaml").read_text())
    assert c["datasets"] == overlay["datasets"]  # one definition of the three datasets, kept in step
    assert set(c["datasets"]) == {"breakhis", "kather2016", "pneumonia"}
    assert all(ds["image_size"] == 224 for ds in c["datasets"].values())
    assert c["backbone"]["name"].split(".")[0] == "resnet50" and c["backbone"]["pretrained"] is False
    kinds = {name: m["kind"] for name, m in c["methods"].items()}
    assert sorted(kinds.values()) == sorted([*SSL_KINDS, "random_init", "pretrained"])
    for name, m in c["methods"].items():
        # docs/papers.md#smalldatassl-optimisation: SGD lr 1e-2, no momentum / weight decay, batch 64, 250 epochs
        if m["kind"] in SSL_KINDS:
            _, p, views, _ = parse_spec({**m, "image_size": 224})
            assert (p.optimizer, p.lr, p.batch_size, p.epochs, p.weight_decay) == ("sgd", 0.01, 64, 250, 0), name
            assert (views.global_size, views.n_local) == (224, 0)
    # the trainer's own parser (unknown keys raise) gives the paper's values
    # (docs/papers.md#chattopadhyay-et-al-2023-smalldatassl)
    cfg = {m["kind"]: parse_spec({**m, "image_size": 224}) for m in c["methods"].values() if m["kind"] in SSL_KINDS}
    assert (cfg["simclr"][1].temperature, cfg["simclr"][1].proj_hidden_dim, cfg["simclr"][1].proj_dim) == (0.5, 512, 128)
    dclw = cfg["dclw"][1]
    assert (dclw.temperature, dclw.sigma, dclw.symmetric) == (0.1, 0.5, False)
    assert cfg["simsiam"][1].predictor is False and cfg["simsiam"][1].proj_dim == 512
    vicreg = cfg["vicreg"][1]
    assert (vicreg.sim_coeff, vicreg.std_coeff, vicreg.cov_coeff, vicreg.proj_dim) == (25, 25, 1, 4096)
    for kind, (_, train, views, collapse) in cfg.items():
        assert (train.sgd_momentum, train.lr_schedule, train.clip_mode) == (0.0, "constant", "none"), kind
        assert tuple(views.global_scale) == (0.08, 1.0) and views.jitter_p == 1.0 and views.blur_kernel == 23
        assert collapse.action == "warn"


def test_paper_overlay_gives_the_code_exact_variants():
    """--configfile smalldatassl.yaml presets/smalldatassl_paper.yaml (Snakemake merges nested keys)."""
    from snakemake.utils import update_config

    c = config()
    update_config(c, yaml.safe_load((REPO / "config" / "presets" / "smalldatassl_paper.yaml").read_text()))
    assert set(c["methods"]) == {"simclr", "dclw", "simsiam", "vicreg", "random_init", "imagenet_frozen"}
    _, vicreg, views, _ = parse_spec({**c["methods"]["vicreg"], "image_size": 224})
    assert vicreg.std_coeff == 50 and tuple(views.global_scale) == (0.08, 0.1)
    assert c["methods"]["vicreg"]["collapse"]["action"] == "warn"  # kept from this config


def test_linear_evaluation_and_supervised_baselines_are_the_papers():
    c = config()
    classifiers = c["evaluation"]["classifiers"]
    probe = build_classifier(classifiers["linear_eval"], random_state=0)  # docs/papers.md#smalldatassl-evaluation
    assert type(probe).__name__ == "MLPProbe" and classifiers["linear_eval"]["preprocess"] is False
    assert (probe.hidden_dim, probe.optimizer, probe.lr, probe.batch_size, probe.max_epochs) == (512, "adam", 1.0, 64, 200)
    assert (probe.lr_step_size, probe.lr_gamma, probe.lr_step_after, probe.val_fraction) == (25, 0.5, 25, 0.1)
    assert type(build_classifier(classifiers["linear"], random_state=0)).__name__ == "LinearProbe"
    assert {"svm", "knn", "logreg", "linear"} <= set(classifiers)
    sup = c["baselines"]["supervised"]
    assert sup["enabled"] and sup["imagenet"] and sup["head"] == "mlp" and "all" in sup["budgets"]
    assert (sup["lr"], sup["weight_decay"], sup["batch_size"], sup["epochs"]) == (1e-3, 0, 32, 100)
    assert (sup["lr_step_size"], sup["lr_gamma"], sup["lr_step_after"]) == (25, 0.5, 25)
    assert c["figures"]["comparison"]["budget"] == "all"
