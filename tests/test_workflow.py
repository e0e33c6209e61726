"""The whole DAG on the tiny config (.test/config/config.yaml, the workflow catalog's test case), for
real, in a scratch working directory; then again as a Snakemake module of another workflow."""
import json
import os
import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from snakemake_runner import REPO, run_snakemake

TINY = REPO / ".test" / "config" / "config.yaml"  # a link to tests/config/tiny.yaml


def snakemake(workdir, *args, configfile=TINY, check=True, timeout=900):
    return run_snakemake(workdir, configfile, *args, check=check, timeout=timeout)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tiny")
    snakemake(workdir, "--cores", "2")
    return workdir


@pytest.mark.slow
def test_tiny_workflow_produces_table_and_figures(tiny_run):
    metrics = pd.read_csv(tiny_run / "results/tables/metrics.csv", dtype={"budget": str})
    config = yaml.safe_load(TINY.read_text())
    ev = config["evaluation"]
    sup = config["baselines"]["supervised"]
    ll = config["baselines"]["linear_layer"]
    further = ev["draws"]["n"] - len(ev["seeds"])  # label draws beyond the seeds at budget 1, two classifiers
    per_variant = (len(config["methods"]) * len(ev["budgets"]) * len(ev["classifiers"]) * len(ev["seeds"])
                   + len(config["methods"]) * len(ev["draws"]["classifiers"]) * further
                   + len(sup["budgets"]) * len(sup["seeds"]) + len(ll["budgets"]) * len(ll["seeds"]))
    assert len(metrics) == 2 * per_variant  # every class, and the min_class_size variant
    drawn = metrics[(metrics.seed >= len(ev["seeds"]))]
    assert set(drawn["budget"]) == {"1"} and set(drawn["classifier"]) == set(ev["draws"]["classifiers"])
    assert (tiny_run / "results/fits/tiny/classes_all/dino/budget_1/knn/draws_4.json").exists()
    assert set(metrics["method"]) == set(config["methods"]) | {"supervised"}
    assert set(metrics.loc[metrics.classifier == "linear_layer", "method"]) == {"dino"}  # the paper's SSL + LL
    assert set(metrics["variant"]) == {"classes_all", "classes_min30"}
    assert set(metrics.loc[metrics.variant == "classes_min30", "min_class_size"]) == {30}
    assert (metrics.loc[metrics.variant == "classes_min30", "n_classes"] < 4).all()
    assert metrics["balanced_accuracy"].between(0, 1).all()
    svm_all = metrics[(metrics.classifier == "svm") & (metrics.budget == "all") & (metrics.variant == "classes_all")]
    # 4 classes: chance is 0.25
    assert svm_all["balanced_accuracy"].min() > 0.4, svm_all
    for dataset in config["datasets"]:
        for figure in ["balanced_accuracy", "confusion_matrix"]:
            for ext, magic in [("png", b"\x89PNG"), ("pdf", b"%PDF")]:
                path = tiny_run / f"results/figures/{dataset}/{figure}.{ext}"
                assert path.read_bytes()[:4] == magic
    summary = pd.read_csv(tiny_run / "results/tables/summary.csv", dtype={"budget": str})
    dl, ll = summary["method"] == "supervised", summary["classifier"] == "linear_layer"
    many = (summary["budget"] == "1") & summary["classifier"].isin(ev["draws"]["classifiers"])
    assert (summary.loc[~dl & ~ll & ~many, "n_seeds"] == len(ev["seeds"])).all()
    assert (summary.loc[many, "n_seeds"] == ev["draws"]["n"]).all()
    assert (summary.loc[dl, "n_seeds"] == len(sup["seeds"])).all()
    assert (summary.loc[ll, "n_seeds"] == len(config["baselines"]["linear_layer"]["seeds"])).all()
    for figure in ["fig1_balanced_accuracy", "fig2_balanced_accuracy_min_class_size"]:
        for ext, magic in [("png", b"\x89PNG"), ("pdf", b"%PDF")]:
            path = tiny_run / f"results/figures/{figure}.{ext}"
            assert path.read_bytes()[:4] == magic
            assert path.with_name(path.name + ".provenance.json").exists()
    for table in ["metrics", "summary", "label_efficiency", "paired_comparison"]:
        assert (tiny_run / f"results/tables/{table}.csv.provenance.json").exists()
    paired = pd.read_csv(tiny_run / "results/tables/paired_comparison.csv", dtype={"budget": str})
    assert set(paired["budget"]) == {"5", "all", "pooled"}
    written = yaml.safe_load((tiny_run / "results/config.yaml").read_text())  # the config, for the report
    assert written["evaluation"]["classifiers"] == config["evaluation"]["classifiers"] | {
        name: written["evaluation"]["classifiers"][name] for name in config["evaluation"]["classifiers"]}
    assert written["baselines"]["supervised"]["budgets"] == sup["budgets"]


@pytest.mark.slow
def test_every_rule_wrote_a_log_and_a_benchmark(tiny_run):
    logs = {p.parts[len((tiny_run / "results/logs").parts)] for p in (tiny_run / "results/logs").rglob("*.log")}
    benches = {p.parts[len((tiny_run / "results/benchmarks").parts)]
               for p in (tiny_run / "results/benchmarks").rglob("*.tsv")}
    rules = {"generate_dataset", "make_splits", "pretrain_ssl", "init_random_backbone", "embed",
             "fit_classifiers", "train_supervised", "train_linear_layer", "aggregate_metrics", "plot_balanced_accuracy",
             "plot_confusion_matrix", "plot_label_efficiency", "write_config", "ssl_health"}
    assert rules <= logs and rules <= benches


@pytest.mark.slow
def test_ssl_health_table_and_an_untrained_dl_baseline_is_no_benchmark(tiny_run):
    config = yaml.safe_load(TINY.read_text())
    health = pd.read_csv(tiny_run / "results/tables/ssl_health.csv")
    assert set(health["method"]) == set(config["methods"]) and set(health["dataset"]) == set(config["datasets"])
    assert set(health["verdict"]) <= {"learned", "no better than untrained", "collapsed", "untrained reference"}
    assert (health.loc[health.method == "random_init", "verdict"] == "untrained reference").all()
    trained = health[health.method != "random_init"]
    assert trained["effective_rank"].notna().all() and trained["svm_worst_gap"].notna().all()
    eff = pd.read_csv(tiny_run / "results/tables/label_efficiency.csv")
    dl = eff[eff["benchmark"] == "dl_benchmark_this_run"]  # the tiny DL baseline trains 1 epoch
    assert len(dl) and dl["budget_reached"].isna().all()
    assert dl["note"].str.contains("trained only 1 epoch(s)", regex=False).all()
    assert not eff.duplicated(["dataset", "variant", "arm", "benchmark"]).any()


@pytest.mark.slow
def test_intermediate_artifacts_are_inspectable(tiny_run):
    import numpy as np

    with np.load(tiny_run / "results/embeddings/tiny/dino/test.npz") as npz:
        assert npz["features"].shape[0] == len(npz["image"]) == len(npz["label"])
    split = pd.read_csv(tiny_run / "splits/tiny/test.csv")
    assert list(split.columns) == ["image", "label"]
    fit = tiny_run / "results/fits/tiny/classes_all/dino/budget_5/svm/seed_0.predictions.csv"
    assert len(pd.read_csv(fit)) == len(split)
    # the DL baseline and the classifiers were fit on the very same labeled images
    fits = tiny_run / "results/fits/tiny"
    for variant in ["classes_all", "classes_min30"]:
        dl = json.loads((fits / f"{variant}/supervised/budget_5/finetune/seed_0.json").read_text())
        svm = json.loads((fits / f"{variant}/dino/budget_5/svm/seed_0.json").read_text())
        lin = json.loads((fits / f"{variant}/random_init/budget_5/linear/seed_0.json").read_text())
        assert dl["train_images"] == svm["train_images"] == lin["train_images"]
        assert dl["classes"] == svm["classes"]
    small = pd.read_csv(fits / "classes_min30/supervised/budget_5/finetune/seed_0.predictions.csv")
    assert set(small["label"]) == set(json.loads((fits / "classes_min30/dino/budget_5/svm/seed_0.json").read_text())["classes"])
    train_log = pd.read_csv(tiny_run / "results/ssl/tiny/dino/train_log.csv")
    assert len(train_log) == 2 and train_log["loss"].notna().all()
    for method in ["dino", "simclr", "dclw", "simsiam", "vicreg"]:  # every SSL method trained, with its verdict
        health = json.loads((tiny_run / f"results/ssl/tiny/{method}/health.json").read_text())
        assert health["kind"] == method and health["verdict"] in ("ok", "collapsed"), health
        log = pd.read_csv(tiny_run / f"results/ssl/tiny/{method}/train_log.csv")
        assert log[["loss", "embedding_std_ratio", "effective_rank"]].notna().all().all()


CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)
PROBE = REPO / "tests" / "browser" / "report_probe.js"


def open_in_chromium(html_path, tmp_path):
    """What a reader sees: the report opened in headless Chromium, clicked through by
    tests/browser/report_probe.js ({result path: what its eye button showed})."""
    page = tmp_path / "report_probed.html"
    html = html_path.read_text()
    end = html.rindex("</body>")
    page.write_text(html[:end] + "<script>" + PROBE.read_text() + "</script>" + html[end:])
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=60000", "--dump-dom",
           page.as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=300).stdout
    found = re.search(r'<pre id="medssl-probe">(.*?)</pre>', dom[dom.rfind('<pre id="medssl-probe">'):], re.S)
    assert found, f"the report's page never finished rendering:\n{dom[-2000:]}"
    import html as html_module
    return json.loads(html_module.unescape(found.group(1)))


@pytest.mark.slow
def test_report_renders_figures_tables_and_config_in_a_browser(tiny_run, tmp_path):
    """`snakemake --report results/report.html` as the README says, then opened in a real browser."""
    snakemake(tiny_run, "--report", "results/report.html", timeout=300)
    if CHROMIUM is None:
        pytest.skip("no Chromium (.ci/run installs Debian's `chromium` with apt where it runs as root)")
    probe = open_in_chromium(tiny_run / "results/report.html", tmp_path)
    assert probe.get("done"), probe
    assert probe["ruleGraph"], "the start page drew no rule graph"
    shown = probe["shown"]
    for figure in ["results/figures/fig1_balanced_accuracy.png", "results/figures/fig2_balanced_accuracy_min_class_size.png",
                   "results/figures/tiny/balanced_accuracy.png", "results/figures/tiny/confusion_matrix.png"]:
        img = shown[figure].get("img") or {}
        assert img.get("width", 0) > 200 and img.get("height", 0) > 200, (figure, shown[figure])  # decoded
    for table, column in [("metrics", "balanced_accuracy"), ("summary", "balanced_accuracy_mean"),
                          ("paired_comparison", "budget")]:
        head = shown[f"results/tables/{table}.csv"].get("head") or [""]
        assert column in head[0].split(","), (table, head)  # the table's content, as a reader downloads it
    assert "head" in shown["results/tables/label_efficiency.csv"], shown["results/tables/label_efficiency.csv"]
    assert any(shown["results/config.yaml"].get("head") or []), shown["results/config.yaml"]


# What a user writes to use medssl inside a larger analysis: its own config passed to the module,
# every rule imported under a prefix.
HOST_SNAKEFILE = """\
configfile: "config/medssl.yaml"


module medssl:
    snakefile:
        "{snakefile}"
    config:
        config


use rule * from medssl as medssl_*


rule all:
    input:
        rules.medssl_all.input,
    default_target: True
"""


@pytest.mark.slow
def test_as_a_module_of_another_workflow_gives_identical_tables(tiny_run, tmp_path):
    """The same config through a host workflow in another folder: the same table, bit for bit (fit
    timings aside), so the module finds its schema, scripts and package wherever it is used from."""
    host = tmp_path / "host"
    (host / "config").mkdir(parents=True)
    shutil.copy(TINY, host / "config" / "medssl.yaml")
    (host / "Snakefile").write_text(HOST_SNAKEFILE.format(snakefile=REPO / "workflow" / "Snakefile"))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2"], cwd=host, capture_output=True,
                          text=True, timeout=900, env={**os.environ, "PYTHONHASHSEED": "0"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert re.search(r"rule medssl_fit_classifiers:", proc.stdout + proc.stderr)
    drop = ["fit_seconds"]
    a = pd.read_csv(tiny_run / "results/tables/metrics.csv").drop(columns=drop)
    b = pd.read_csv(host / "results/tables/metrics.csv").drop(columns=drop)
    pd.testing.assert_frame_equal(a, b)
    assert (host / "results/figures/fig1_balanced_accuracy.png").stat().st_size > 0


def _bad_config(tmp_path, mutate):
    config = yaml.safe_load(TINY.read_text())
    mutate(config)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("mutate, needle", [
    (lambda c: c["datasets"]["tiny"].update(image_size="big"), "image_size"),
    (lambda c: c["evaluation"].update(budgetz=[1]), "budgetz"),
    (lambda c: c["datasets"]["tiny"]["source"].update(kind="ftp"), "kind"),
    (lambda c: c["figures"]["confusion"].update(classifier="forest"), "figures.confusion.classifier"),
    (lambda c: c["figures"]["confusion"].update(budget=7), "figures.confusion.budget: 7 is not one of"),
    (lambda c: c["figures"]["confusion"].update(method="byol"), "figures.confusion.method: 'byol' is not one of"),
    (lambda c: c["baselines"]["linear_layer"].update(methods=["byol"]), "baselines.linear_layer.methods"),
    (lambda c: c["methods"]["random_init"].update(pretrain_seeds=[0, 0]), "pretrain_seeds"),
    (lambda c: (c["methods"].update(frozen={"kind": "pretrained", "model": "resnet18.a1_in1k"}),
                c["baselines"]["linear_layer"].update(methods=["dino", "frozen"])), "of kind pretrained"),
    (lambda c: c["methods"].update(frozen={"kind": "pretrained", "model": "resnet_nine"}), "methods.frozen.model"),
    (lambda c: c["methods"].update(frozen={"kind": "pretrained", "weights": "w.ckpt"}), "weights"),
    (lambda c: c["datasets"]["tiny"].update(method_params={"dino": {"min_stepz": 10}}),
     "datasets.tiny.method_params.dino"),
    (lambda c: c["datasets"]["tiny"].update(method_params={"random_init": {"min_steps": 10}}),
     "datasets.tiny.method_params.random_init: 'random_init' is not a trained method"),
    (lambda c: c["evaluation"]["draws"].update(n=1), "evaluation.draws.n"),
    (lambda c: c["evaluation"]["draws"].update(classifiers=["forest"]), "evaluation.draws.classifiers"),
])
def test_bad_config_fails_naming_the_key(tmp_path, mutate, needle):
    proc = snakemake(tmp_path, "-n", configfile=_bad_config(tmp_path, mutate), check=False, timeout=120)
    assert proc.returncode != 0
    assert needle in proc.stdout + proc.stderr


def test_paper_config_plans_the_whole_dag_without_data(tmp_path):
    proc = snakemake(tmp_path, "-n", configfile=REPO / "config/paper.yaml", timeout=120)
    config = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    n_variants = sum(1 + bool(d.get("min_class_size")) for d in config["datasets"].values())
    n_fit_jobs = n_variants * len(config["methods"])  # one job does every budget, classifier and seed
    planned = re.search(r"^fit_classifiers\s+(\d+)$", proc.stdout, re.M)
    assert planned and int(planned.group(1)) == n_fit_jobs
    n_supervised = n_variants * len(config["evaluation"]["budgets"]) * len(config["evaluation"]["seeds"])
    planned = re.search(r"^train_supervised\s+(\d+)$", proc.stdout, re.M)
    assert planned and int(planned.group(1)) == n_supervised
    planned = re.search(r"^train_linear_layer\s+(\d+)$", proc.stdout, re.M)  # the paper's SSL + LL, per method
    assert planned and int(planned.group(1)) == n_supervised * len(config["baselines"]["linear_layer"]["methods"])
    for rule in ["plot_label_efficiency", "plot_confusion_matrix", "write_config"]:
        assert re.search(rf"^{rule}\s+\d+$", proc.stdout, re.M), rule


def test_pretrain_seeds_plan_one_pretraining_per_seed(tmp_path):
    """methods.<m>.pretrain_seeds: separate pretrainings <m>_seed<s>, each with its embeddings and
    fits (and SSL + LL), pooled under <m> in the tables; the confusion figure reads every instance."""
    def mutate(c):
        c["methods"]["dino"]["pretrain_seeds"] = [3, 4]

    proc = snakemake(tmp_path, "-n", "--forceall", configfile=_bad_config(tmp_path, mutate), timeout=120)
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout, re.M))
    others = len(yaml.safe_load(TINY.read_text())["methods"]) - 1  # every method but dino: one each
    # dino_seed3, dino_seed4 and the other trained methods; their embeddings and random_init's
    assert counts["pretrain_ssl"] == str(2 + others - 1) and counts["embed"] == str(2 + others)
    assert counts["train_linear_layer"] == "4"  # 2 instances x 2 variants x budget 5 x seed 0
    for name in ["dino_seed3", "dino_seed4"]:
        assert f"results/ssl/tiny/{name}/backbone.pt" in proc.stdout
