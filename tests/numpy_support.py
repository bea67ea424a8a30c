"""Shared pieces of the tests/test_numpy_*.py files (NumPy coverage).

Gradient checks themselves come from tests/gradcheck.py (`check_grad`, central
finite differences in float64, structure/shape/dtype of every gradient).
"""
import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

try:
    from gradcheck import (arrays, broadcast_pair, check_grad, floats, nonzero_arrays,
                           numeric_grad, positive_arrays, shapes)
except ImportError:  # tests/ used as a package
    from tests.gradcheck import (arrays, broadcast_pair, check_grad, floats,  # noqa: F401
                                 nonzero_arrays, numeric_grad, positive_arrays, shapes)

import diffsrc as ds

# small and quick: the whole NumPy suite stays well under a minute and a half
# derandomize: the examples are the same on every run, so a shared suite is never flaky
HYP = settings(max_examples=12, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                      HealthCheck.data_too_large])
FEW = settings(max_examples=6, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                      HealthCheck.data_too_large])
TOL = dict(rtol=1e-5, atol=1e-6)


def out(y):
    """A scalar with a non-uniform adjoint (2y + 1), so rules that ignore y_bar fail."""
    return np.sum(y * (y + 1.0))


def distinct_arrays(shape, lo=-2.0, hi=2.0, gap=1e-2):
    """Arrays whose entries are pairwise at least `gap` apart (no ties for max/sort)."""
    def spread(a):
        flat = a.reshape(-1)
        order = np.argsort(flat, kind="stable")
        bumped = flat.copy()
        bumped[order] = flat[order] + gap * np.arange(flat.size)
        return bumped.reshape(a.shape)
    return arrays(shape, lo, hi).map(spread)


def axis_and_keepdims(ndim):
    """(axis, keepdims) with axis None, an int (negatives too) or a tuple of distinct axes."""
    if ndim == 0:
        return st.tuples(st.just(None), st.booleans())
    ints = st.integers(-ndim, ndim - 1)
    tuples = st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim,
                      unique=True).map(tuple)
    return st.tuples(st.one_of(st.just(None), ints, tuples), st.booleans())


def random_array(shape, seed=0, lo=-2.0, hi=2.0, dtype=np.float64):
    return np.random.default_rng(seed).uniform(lo, hi, size=shape).astype(dtype)


def spd(n, seed=0, batch=()):
    """A well-conditioned symmetric positive-definite matrix (or a batch of them)."""
    a = random_array(batch + (n, n), seed)
    return a @ np.swapaxes(a, -1, -2) + n * np.eye(n)


def grad_float32(f, args, wrt=0):
    """The gradient of f at float32 arguments, asserting float32 all the way."""
    g = ds.grad(f, wrt=wrt)(*args)
    gs = g if isinstance(wrt, tuple) else (g,)
    for gi, i in zip(gs, wrt if isinstance(wrt, tuple) else (wrt,)):
        assert isinstance(gi, np.ndarray) or (args[i].ndim == 0 and isinstance(gi, np.generic)), \
            type(gi)
        assert gi.dtype == np.float32, f"gradient of a float32 argument is {gi.dtype}"
        assert np.shape(gi) == args[i].shape
    return g


__all__ = ["HYP", "FEW", "TOL", "out", "distinct_arrays", "axis_and_keepdims", "random_array",
           "spd", "grad_float32", "arrays", "broadcast_pair", "check_grad", "floats",
           "nonzero_arrays", "numeric_grad", "positive_arrays", "shapes", "hnp", "st", "ds"]
