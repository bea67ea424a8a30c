"""Slot outputs: a concatenation written into a slot is made there (passes/slot_outputs.py).

A gated recurrence reads x[:, t, :] on every step and cuts its pre-activation into parts:
the reverse loop joins the parts' adjoints and writes them into x's adjoint, one slot a
step. Over random shapes and trip counts (none included), float32 and float64, the code
that joins them in the slot agrees with the unoptimised code, with central finite
differences and with the code that joins them first and copies (the same numbers, but
that BLAS may round a product reading the strided slot its own way)."""
from unittest import mock

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from diffsrc.api import transform
from diffsrc.passes import slot_outputs
from test_passes import in_place_at_any_size
from test_slot_writes import assert_agrees_with_unoptimised_code

SETTINGS = settings(max_examples=12, deadline=None)


def gated(W, x):
    """x (n, steps, 2d), W (d, 2d): h = tanh(a) * sigmoid(b) for [a, b] = x_t + h @ W."""
    d = W.shape[0]
    h = np.zeros((x.shape[0], d), dtype=W.dtype)
    for t in range(x.shape[1]):
        z = x[:, t, :] + h @ W
        h = np.tanh(z[:, :d]) * (1.0 / (1.0 + np.exp(-z[:, d:])))
    return np.sum(h * h)


def _args(seed, n, steps, d, dtype):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(d, 2 * d)).astype(dtype) * 0.5,
            rng.normal(size=(n, steps, 2 * d)).astype(dtype))


@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(1, 4), steps=st.integers(0, 5),
       d=st.integers(1, 4), float32=st.booleans())
def test_made_in_the_slot_agrees_with_unoptimised_code_and_finite_differences(
        seed, n, steps, d, float32):
    args = _args(seed, n, steps, d, np.float32 if float32 else np.float64)
    with in_place_at_any_size():
        compiled = transform(gated, args, (0, 1), "grad", specialize=True)
        with mock.patch.object(slot_outputs.SlotOutputs, "concatenation", lambda *a: None):
            copied = transform(gated, args, (0, 1), "grad", specialize=True)
    assert "out=x_bar[" not in copied.source
    value, grads = compiled.function(*args)
    rtol, atol = (1e-5, 1e-6) if float32 else (1e-10, 1e-12)
    # a product that reads the strided slot may round its own way
    for g, expected in zip(grads, copied.function(*args)[1]):
        np.testing.assert_allclose(g, expected, rtol=rtol / 10, atol=atol / 10)
    assert_agrees_with_unoptimised_code(gated, args, value, grads, float32)


def test_the_slot_is_not_written_twice():
    args = _args(0, 3, 4, 2, np.float64)
    with in_place_at_any_size():
        source = transform(gated, args, (0, 1), "grad", specialize=True).source
    lines = [line.strip() for line in source.splitlines()]
    assert any("= np.concatenate(" in line and "out=x_bar[" in line for line in lines)
    assert not any(line.startswith("x_bar[") for line in lines)


def test_general_code_joins_and_adds_as_before():
    args = _args(0, 3, 4, 2, np.float64)
    assert "out=x_bar[" not in transform(gated, args, (0, 1), "grad").source
