"""Adjoints of slices that tile an array become one concatenation (passes/tiling.py)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffsrc.api import transform
from gradcheck import numeric_grad
from test_passes import in_place_at_any_size

SETTINGS = settings(max_examples=15, deadline=None)


def gates(x, W, a, b):
    """Three slices of y along axis 1, widths from the shapes of a and b."""
    y = x @ W
    p, q = a.shape[0], a.shape[0] + b.shape[0]
    return np.sum(np.tanh(y[:, :p])) + np.sum(y[:, p:q] ** 2) + np.sum(np.cos(y[:, q:]))


def rows(x, W, a, b):
    """Slices along axis 0, in the opposite order."""
    y = x @ W
    p = a.shape[0]
    return np.sum(np.exp(y[p:, :] * 0.1)) + np.sum(y[:p] ** 3)


def overlapping(x, W, a, b):
    y = x @ W
    p = a.shape[0]
    return np.sum(np.tanh(y[:, :p + 1])) + np.sum(y[:, p:] ** 2)


def with_gap(x, W, a, b):
    y = x @ W
    p = a.shape[0]
    return np.sum(np.tanh(y[:, :p])) + np.sum(y[:, p + 1:] ** 2)


def recurrent(W, x, a, b):
    """An LSTM-like cell: the gates' adjoint in the reverse loop."""
    n = W.shape[1] // 2
    h = np.zeros((x.shape[0], n))
    for t in range(x.shape[1]):
        g = x[:, t, :] @ W[:n] + h @ W[n:]
        h = np.tanh(g[:, :n]) * (1 / (1 + np.exp(-g[:, n:])))
    return np.sum(h ** 2)


def _args(fn, rng, n, p, q, r):
    width = p + q + r
    if fn is recurrent:
        return (rng.normal(size=(2 * n, 2 * n)) * 0.5, rng.normal(size=(p, q + 1, n)),
                np.zeros(p), np.zeros(q))
    if fn is rows:
        return rng.normal(size=(width, 3)), rng.normal(size=(3, n)), np.zeros(p), np.zeros(q)
    return rng.normal(size=(n, 3)), rng.normal(size=(3, width)) * 0.5, np.zeros(p), \
        np.zeros(q)


TILED = [gates, rows, recurrent]
NOT_TILED = [overlapping, with_gap]


@pytest.mark.parametrize("fn", TILED + NOT_TILED, ids=lambda f: f.__name__)
@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(1, 3), p=st.integers(1, 3),
       q=st.integers(1, 3), r=st.integers(1, 3))
def test_gradients_agree_with_unoptimised_code_and_finite_differences(fn, seed, n, p, q, r):
    args = _args(fn, np.random.default_rng(seed), n, p, q, r)
    with in_place_at_any_size():
        special = transform(fn, args, (0, 1), "grad", specialize=True)
    plain = transform(fn, args, (0, 1), "grad", optimize=False)
    (value, grads), (plain_value, plain_grads) = special.function(*args), plain.function(*args)
    np.testing.assert_allclose(value, plain_value, rtol=1e-12)
    for k, (g, expected) in enumerate(zip(grads, plain_grads)):
        np.testing.assert_allclose(g, expected, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(g, numeric_grad(fn, args, k), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fn", TILED + NOT_TILED, ids=lambda f: f.__name__)
def test_only_exact_tilings_become_concatenations(fn):
    args = _args(fn, np.random.default_rng(0), 2, 2, 3, 2)
    source = transform(fn, args, (0, 1), "grad", specialize=True).source
    assert ("np.concatenate([" in source) == (fn in TILED)
    if fn in (gates, rows):                  # y's adjoint was all scatters
        assert "unindex(" not in source and "add_into(" not in source


def test_the_sliced_array_leaves_the_tape():
    args = _args(recurrent, np.random.default_rng(1), 2, 2, 3, 2)
    source = transform(recurrent, args, (0,), "grad", specialize=True).source
    general = transform(recurrent, args, (0,), "grad").source

    def taped(text):
        line = next(line for line in text.splitlines() if "_tape.append(" in line)
        return line.count(",") + 1
    assert taped(source) < taped(general)
