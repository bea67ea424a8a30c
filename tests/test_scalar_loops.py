"""Arithmetic with a number on a large float array stays NumPy's own (its scalar loops are
fast); only maximum and minimum, whose scalar loops are slow, run over long rows."""
import numpy as np

from diffsrc.api import transform
from gradcheck import numeric_grad


def shifted_relu(W, x):
    a = x @ W
    return np.sum(np.maximum(1.0 + np.exp(-a) * 2.0, 1.5) / (a * a + 1.0))


def test_numbers_go_to_long_rows_only_for_maximum_and_minimum():
    rng = np.random.default_rng(0)
    args = (rng.normal(size=(8, 32)), rng.normal(size=(1024, 8)))
    special = transform(shifted_relu, args, (0,), "grad", specialize=True)
    calls = [line for line in special.source.splitlines() if "long_rows(" in line]
    assert calls and all("long_rows(np.maximum" in line for line in calls), special.source
    value, grad = special.function(*args)
    plain_value, plain_grad = transform(shifted_relu, args, (0,), "grad",
                                        optimize=False).function(*args)
    assert value == plain_value
    np.testing.assert_allclose(grad, plain_grad, rtol=1e-12)
    small = (args[0], args[1][:6])
    np.testing.assert_allclose(transform(shifted_relu, small, (0,), "grad",
                                         specialize=True).function(*small)[1],
                               numeric_grad(shifted_relu, small, 0), rtol=1e-5, atol=1e-7)
