"""One row times a small matrix written as `x.dot(W)` (passes/row_products.py).

Random shapes, one row or more, plain and transposed operands, float32 and float64:
the specialised code writes exactly the one-row products as dots, and its values and
gradients are the unoptimised code's and match finite differences.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from diffsrc.api import transform
from gradcheck import numeric_grad


def layer(x, w, v):
    return np.sum(np.tanh(x @ w) * v)


def layer_transposed(x, w, v):
    return np.sum(np.tanh(x.T.T @ w.T.T) * v)


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 3), k=st.integers(2, 40), n=st.integers(1, 40),
       dtype=st.sampled_from([np.float32, np.float64]), transposed=st.booleans(),
       seed=st.integers(0, 10_000))
def test_row_products_agree_with_unoptimised_code(m, k, n, dtype, transposed, seed):
    rng = np.random.default_rng(seed)
    args = tuple(rng.normal(size=s).astype(dtype) for s in ((m, k), (k, n), (m, n)))
    fn = layer_transposed if transposed else layer
    specialised = transform(fn, args, (0, 1), "grad", specialize=True)
    plain = transform(fn, args, (0, 1), "grad", optimize=False)
    assert (".dot(" in specialised.source) == (m == 1)
    (value, grads), (plain_value, plain_grads) = specialised.function(*args), \
        plain.function(*args)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(value, plain_value, rtol=tolerance)
    for g, expected in zip(grads, plain_grads):
        assert g.dtype == dtype and g.shape == expected.shape
        np.testing.assert_allclose(g, expected, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("shapes", [((1, 10), (10, 64), (1, 64)), ((1, 4), (4, 1), (1, 1))])
def test_dot_gradients_match_finite_differences(shapes):
    rng = np.random.default_rng(0)
    args = tuple(rng.normal(size=s) for s in shapes)
    compiled = transform(layer, args, (0, 1), "grad", specialize=True)
    assert ".dot(" in compiled.source
    grads = compiled.function(*args)[1]
    for k, g in enumerate(grads):
        np.testing.assert_allclose(g, numeric_grad(layer, args, k), rtol=1e-6, atol=1e-8)


def test_general_code_and_large_products_keep_the_operator():
    rng = np.random.default_rng(0)
    row = tuple(rng.normal(size=s) for s in ((1, 3), (3, 4), (1, 4)))
    assert ".dot(" not in transform(layer, row, (0, 1), "grad").source     # no shapes
    large = tuple(rng.normal(size=s) for s in ((1, 256), (256, 256), (1, 256)))
    source = transform(layer, large, (0, 1), "grad", specialize=True).source
    assert ".dot(" not in source and "@" in source
