"""A config is data, not code: evaluation.classifiers.<x>.estimator may name only a scikit-learn
classifier class of sklearn, medssl or evaluation.estimator_packages (medssl.checks.resolve_estimator),
checked while Snakemake plans and again where the class is instantiated."""
from __future__ import annotations

import sys

import pytest
import yaml

from medssl import checks
from medssl.checks import resolve_estimator
from medssl.evaluate.classify import build_classifier, run_budget
from medssl.evaluate.probes import MLPProbe
from test_bad_inputs import run, tiny_config
from test_classify import CLASSIFIERS, embeddings


@pytest.fixture
def side_effect_package(tmp_path, monkeypatch):
    """An importable package `sidefx` whose import writes a marker file and which holds a classifier."""
    pkg = tmp_path / "sidefx"
    pkg.mkdir()
    marker = tmp_path / "imported"
    (pkg / "__init__.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "from sklearn.base import BaseEstimator, ClassifierMixin\n\n"
        "class Majority(ClassifierMixin, BaseEstimator):\n"
        "    def fit(self, X, y):\n"
        "        self.classes_ = sorted(set(y))\n"
        "        return self\n\n"
        "    def predict(self, X):\n"
        "        return [self.classes_[0]] * len(X)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield marker
    sys.modules.pop("sidefx", None)


@pytest.mark.parametrize("dotted, packages, needle", [
    ("os.system", (), "'os.system' is outside the allowed packages and was not imported"),
    ("subprocess.Popen", (), "'subprocess.Popen' is outside the allowed packages"),
    ("xgboost.XGBClassifier", (), "'xgboost.XGBClassifier' is outside the allowed packages"),
    # even a package the user allows gives only classifier classes
    ("os.system", ("os",), "'os.system' is not a class (it is a builtin_function_or_method)"),
    ("subprocess.Popen", ("subprocess",), "'subprocess.Popen' is not a scikit-learn estimator"),
    ("sklearn.metrics.accuracy_score", (), "'sklearn.metrics.accuracy_score' is not a class (it is a function)"),
    ("sklearn.preprocessing.StandardScaler", (), "has no predict method, so it is not a classifier"),
    ("sklearn.utils.Bunch", (), "is not a scikit-learn estimator"),
    ("medssl.evaluate.budgets.Path", (), "is defined in pathlib, outside the allowed packages"),
    ("medssl.ssl.__main__.main", (), "is not a dotted class name"),
    ("sklearn.svm.SVQ", (), "'sklearn.svm.SVQ' cannot be imported"),
    # a bundled classifier under a wrong module is found by its class name
    ("medssl.classify.LinearProbe", (), "did you mean medssl.evaluate.estimators.LinearProbe?"),
    ("medssl.evaluate.estimators.MLPProbe", (), "did you mean medssl.evaluate.probes.MLPProbe?"),
])
def test_refused_names_say_why_naming_the_key(dotted, packages, needle):
    with pytest.raises(ValueError, match="^evaluation.classifiers.x.estimator: ") as err:
        resolve_estimator(dotted, packages, "evaluation.classifiers.x.estimator")
    assert needle in str(err.value)
    if "outside the allowed" in needle:
        assert "evaluation.estimator_packages adds a package" in str(err.value)


def test_allowed_classifier_classes():
    from sklearn.svm import SVC

    from medssl.evaluate.estimators import ClassScaledKNN

    assert resolve_estimator("sklearn.svm.SVC") is SVC
    assert resolve_estimator("medssl.evaluate.estimators.ClassScaledKNN") is ClassScaledKNN
    assert resolve_estimator("medssl.evaluate.probes.MLPProbe") is MLPProbe


def test_a_package_outside_the_list_is_not_even_imported_until_allowed(side_effect_package):
    with pytest.raises(ValueError, match="outside the allowed packages"):
        resolve_estimator("sidefx.Majority")
    assert not side_effect_package.exists() and "sidefx" not in sys.modules
    assert resolve_estimator("sidefx.Majority", ["sidefx"]).__name__ == "Majority"
    assert side_effect_package.exists()


def test_config_errors_name_the_key_and_honour_estimator_packages(side_effect_package):
    config = tiny_config()
    config["evaluation"]["classifiers"]["svm"] = {"estimator": "os.system", "params": {"command": "true"}}
    config["evaluation"]["classifiers"]["mine"] = {"estimator": "sidefx.Majority"}
    errors = checks.config_errors(config)
    assert any(e.startswith("evaluation.classifiers.svm.estimator: 'os.system' is outside") for e in errors), errors
    assert any(e.startswith("evaluation.classifiers.mine.estimator: 'sidefx.Majority' is outside") for e in errors)
    assert not side_effect_package.exists()
    config["evaluation"]["estimator_packages"] = ["sidefx"]
    assert [e.split(":")[0] for e in checks.config_errors(config)] == ["evaluation.classifiers.svm.estimator"]


def test_instantiation_checks_again_and_calls_nothing(tmp_path):
    """The fit-time check does not rely on the plan-time one: os.system is never called."""
    touched = tmp_path / "touched"
    spec = {"estimator": "os.system", "params": {"command": f"touch {touched}"}}
    with pytest.raises(ValueError, match="evaluation.classifiers.svm.estimator: 'os.system' is outside"):
        build_classifier(spec, 0, key="evaluation.classifiers.svm.estimator")
    with pytest.raises(ValueError, match="'os.system' is not a class"):
        build_classifier(spec, 0, packages=["os"])
    train, test = embeddings(n=60, n_classes=3, n_test=30)
    fits = run_budget(train, test, 5, [0], {"logreg": CLASSIFIERS["logreg"], "svm": spec}, [])
    with pytest.raises(ValueError, match="evaluation.classifiers.svm.estimator"):
        next(fits)  # refused before the first fit, not after logreg's
    assert not touched.exists()


@pytest.mark.slow
def test_dry_run_refuses_os_system_at_plan_time_and_runs_nothing(tmp_path):
    touched = tmp_path / "touched"
    config = tiny_config()
    config["evaluation"]["classifiers"]["svm"] = {"estimator": "os.system",
                                                 "params": {"command": f"touch {touched}"}}
    config["evaluation"]["estimator_packages"] = ["xgboost"]  # the schema takes the key
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    proc = run(tmp_path, "-n")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "evaluation.classifiers.svm.estimator: 'os.system' is outside the allowed packages" in out, out[-3000:]
    assert not touched.exists()
