"""medssl.evaluate.power_transform.YeoJohnson gives scikit-learn's PowerTransformer's numbers bit for bit."""
import time

import numpy as np
import pytest
from sklearn.preprocessing import PowerTransformer

from medssl.evaluate.power_transform import YeoJohnson


def columns(n, rng):
    """Embedding-like features (signed, heavy-tailed), float32 as stored and float64, one-signed and
    constant columns, at label-budget sizes."""
    x = (rng.standard_t(3, size=(n, 24)) * rng.uniform(0.05, 5, size=24)).astype(np.float32)
    x[:, 3] = np.abs(x[:, 3])
    x[:, 4] = -np.abs(x[:, 4])
    x[:, 5] = 0.0
    x[:, 6] = 2.5
    return x


@pytest.mark.parametrize("n", [4, 8, 40, 300])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lambdas_and_features_equal_power_transformer_bit_for_bit(n, dtype):
    x = columns(n, np.random.default_rng(n)).astype(dtype)
    ours, theirs = YeoJohnson().fit(x), PowerTransformer().fit(x)
    np.testing.assert_array_equal(ours.lambdas_, theirs.lambdas_)
    test = columns(50, np.random.default_rng(99)).astype(dtype)
    np.testing.assert_array_equal(ours.transform(test), theirs.transform(test))
    np.testing.assert_array_equal(YeoJohnson().fit_transform(x), PowerTransformer().fit_transform(x))


def test_faster_than_power_transformer():
    x = columns(40, np.random.default_rng(0))
    timings = {}
    for cls in (YeoJohnson, PowerTransformer):
        start = time.process_time()
        for _ in range(3):
            cls().fit(x)
        timings[cls.__name__] = time.process_time() - start
    assert timings["YeoJohnson"] < timings["PowerTransformer"] / 2, timings
