"""has_aux: a loss that also returns predictions or statistics, differentiated once."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import diffsrc as ds
from diffsrc.errors import NonScalarOutputError
from gradcheck import check_grad

SETTINGS = settings(max_examples=10, deadline=None)


def regression(w, x, y):
    pred = np.tanh(x @ w)
    r = pred - y
    return np.mean(r * r), {"pred": pred, "norm": np.sum(w * w)}


def regression_loss(w, x, y):
    return regression(w, x, y)[0]


@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(1, 5))
def test_gradient_is_the_loss_gradient_and_aux_the_forward_values(seed, n):
    rng = np.random.default_rng(seed)
    w, x, y = rng.normal(size=(3, 2)), rng.normal(size=(n, 3)), rng.normal(size=(n, 2))
    (loss, aux), g = ds.value_and_grad(regression, has_aux=True)(w, x, y)
    expected_loss, expected_aux = regression(w, x, y)
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    np.testing.assert_allclose(aux["pred"], expected_aux["pred"], rtol=1e-12)
    assert aux["norm"] == pytest.approx(expected_aux["norm"], rel=1e-12)
    np.testing.assert_allclose(g, ds.grad(regression_loss)(w, x, y), rtol=1e-10, atol=1e-12)
    check_grad(regression_loss, (w, x, y))


def test_grad_with_aux_returns_gradient_then_aux():
    def f(a, b):
        return a * a * b, (a + b, 2.0)
    g, aux = ds.grad(f, wrt=(0, 1), has_aux=True)(3.0, 2.0)
    assert g == (12.0, 9.0) and aux == (5.0, 2.0)


def test_aux_must_be_a_pair():
    def three(a):
        return a, a, a
    with pytest.raises(NonScalarOutputError, match="has_aux=True.*pair"):
        ds.grad(three, has_aux=True)(1.0)
