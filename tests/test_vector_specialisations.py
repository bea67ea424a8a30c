"""Specialised code for one sample at a time: a vector times a matrix, one-entry arrays.

`x @ W` with a vector x (k,) has the adjoints `W @ g` and `np.outer(x, g)`; the adjoint
of `y[0]` of a one-element y is `np.full(y.shape, g)`; a number's adjoint sent back to
a number of its type is itself. Random sizes and dtypes: the specialised code uses these
forms, and its values and gradients are the unoptimised code's and finite differences'.
"""
import numpy as np
from hypothesis import given, settings, strategies as st

from diffsrc.api import transform
from gradcheck import numeric_grad


def one_sample(W2, W1, b1, window, target):
    h = np.maximum(window @ W1 + b1, 0.0)
    y = np.tanh(h @ W2)
    return (target - y[0]) ** 2


def vector_times_matrix(x, W, v):
    return np.sum(np.sin(x @ W) * v)


def _args(rng, dtype, k, n):
    return (rng.normal(size=(n, 1)).astype(dtype), rng.normal(size=(k, n)).astype(dtype),
            rng.normal(size=n).astype(dtype), rng.normal(size=k).astype(dtype),
            dtype(rng.normal()))


def _agree(fn, args, wrt, dtype):
    specialised = transform(fn, args, wrt, "grad", specialize=True)
    plain = transform(fn, args, wrt, "grad", optimize=False)
    (value, grads), (plain_value, plain_grads) = specialised.function(*args), \
        plain.function(*args)
    grads = grads if len(wrt) > 1 else (grads,)
    plain_grads = plain_grads if len(wrt) > 1 else (plain_grads,)
    tolerance = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(value, plain_value, rtol=tolerance)
    for g, expected in zip(grads, plain_grads):
        assert g.dtype == expected.dtype and g.shape == expected.shape
        np.testing.assert_allclose(g, expected, rtol=tolerance, atol=tolerance)
    return specialised.source, grads


@settings(max_examples=30, deadline=None)
@given(k=st.integers(1, 12), n=st.integers(1, 12), seed=st.integers(0, 10_000),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_one_sample_gradients_agree_with_unoptimised_code(k, n, seed, dtype):
    args = _args(np.random.default_rng(seed), dtype, k, n)
    source, _ = _agree(one_sample, args, (0, 1), dtype)
    for general in ("matmul_left(", "matmul_right(", "unindex(", "unbroadcast("):
        assert general not in source, source
    assert "np.outer(" in source and "np.full((1,)" in source


@settings(max_examples=30, deadline=None)
@given(k=st.integers(1, 12), n=st.integers(1, 12), seed=st.integers(0, 10_000),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_vector_times_matrix_gradients_agree_with_unoptimised_code(k, n, seed, dtype):
    rng = np.random.default_rng(seed)
    args = (rng.normal(size=k).astype(dtype), rng.normal(size=(k, n)).astype(dtype),
            rng.normal(size=n).astype(dtype))
    source, _ = _agree(vector_times_matrix, args, (0, 1), dtype)
    assert "matmul_left(" not in source and "matmul_right(" not in source


def test_gradients_match_finite_differences():
    rng = np.random.default_rng(3)
    args = _args(rng, np.float64, 4, 5)
    compiled = transform(one_sample, args, (0, 1), "grad", specialize=True)
    for k, g in enumerate(compiled.function(*args)[1]):
        np.testing.assert_allclose(g, numeric_grad(one_sample, args, k), rtol=1e-6,
                                   atol=1e-9)
    args = (rng.normal(size=3), rng.normal(size=(3, 4)), rng.normal(size=4))
    compiled = transform(vector_times_matrix, args, (0, 1), "grad", specialize=True)
    for k, g in enumerate(compiled.function(*args)[1]):
        np.testing.assert_allclose(g, numeric_grad(vector_times_matrix, args, k),
                                   rtol=1e-6, atol=1e-9)
