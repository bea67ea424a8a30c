"""A bias of one column (a single output unit) sums its adjoint as one contiguous run:
runtime.sum_leading gives NumPy's own sum there, the same shape and dtype as elsewhere."""
import numpy as np
import pytest

from diffsrc import runtime
from diffsrc.api import transform
from gradcheck import numeric_grad


@pytest.mark.parametrize("shape, n", [((990, 1), 1), ((5, 3, 1), 2), ((7, 1, 1), 1),
                                      ((6,), 1), ((4, 1), 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_column_sums_like_numpy(shape, n, dtype):
    g = np.random.default_rng(0).normal(size=shape).astype(dtype)
    got = runtime.sum_leading(g, n)
    expected = g.sum(axis=tuple(range(n)))
    assert type(got) is np.ndarray and got.shape == shape[n:] and got.dtype == dtype
    np.testing.assert_allclose(got, expected, rtol=1e-6 if dtype == np.float32 else 1e-12)


def one_unit(W, b, x, y):
    r = np.tanh(x @ W + b) - y
    return np.mean(r * r)


def test_one_unit_bias_gradient():
    rng = np.random.default_rng(1)
    args = (rng.normal(size=(4, 1)), rng.normal(size=(1,)), rng.normal(size=(300, 4)),
            rng.normal(size=(300, 1)))
    special = transform(one_unit, args, (0, 1), "grad", specialize=True)
    value, grads = special.function(*args)
    plain_value, plain_grads = transform(one_unit, args, (0, 1), "grad",
                                         optimize=False).function(*args)
    assert np.isclose(value, plain_value, rtol=1e-14)
    for got, plain, numeric in zip(grads, plain_grads, numeric_grad(one_unit, args, (0, 1))):
        np.testing.assert_allclose(got, plain, rtol=1e-12)
        np.testing.assert_allclose(got, numeric, rtol=1e-5, atol=1e-8)
