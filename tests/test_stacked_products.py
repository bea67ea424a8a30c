"""A stack of matrices times a matrix runs as one product (passes/stacked_products.py)."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from diffsrc.api import transform
from gradcheck import numeric_grad


def projection(x, W):
    return np.sum(np.tanh(x @ W + 0.5) ** 2)


def transposed(x, W):
    """x.T of a 3-d array is not C-ordered: reshape copies it, the value is the same."""
    return np.sum(np.sin(x.T @ W))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), lead=st.lists(st.integers(1, 3), min_size=2, max_size=3),
       k=st.integers(1, 4), n=st.integers(1, 4), fn=st.sampled_from([projection, transposed]))
def test_agrees_with_unoptimised_code_and_finite_differences(seed, lead, k, n, fn):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(*lead, k) if fn is projection else (k, *lead))
    args = (x, rng.normal(size=(k, n)) * 0.5)
    compiled = transform(fn, args, (0, 1), "grad", specialize=True)
    assert ".reshape(" in compiled.source
    (value, grads), (plain_value, plain_grads) = compiled.function(*args), \
        transform(fn, args, (0, 1), "grad", optimize=False).function(*args)
    np.testing.assert_allclose(value, plain_value, rtol=1e-12)
    for i, (g, expected) in enumerate(zip(grads, plain_grads)):
        np.testing.assert_allclose(g, expected, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(g, numeric_grad(fn, args, i), rtol=1e-5, atol=1e-6)


def test_matrices_and_mixed_dtypes_stay_as_written():
    rng = np.random.default_rng(0)
    for x, W in ((rng.normal(size=(3, 4)), rng.normal(size=(4, 2))),
                 (rng.normal(size=(2, 3, 4)).astype(np.float32), rng.normal(size=(4, 2)))):
        assert ".reshape(" not in transform(projection, (x, W), (1,), "grad",
                                            specialize=True).source
