"""Slot writes: each reverse trip writes its adjoint into its own slot (passes/slot_writes.py).

Loops that read `x[:, t]`, `x[t]`, `x[:, :, t]` or `x[:, t, 1:2]` once per trip, over all
of an axis, part of it or a count from the caller, run as specialised, optimised code
against the unoptimised code and central finite differences over random shapes and trip
counts (none included); loops whose trips may share a slot (a negative start, two reads a
trip) keep adding."""
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffsrc.api import transform
from diffsrc.passes import slot_writes
from gradcheck import numeric_grad
from test_passes import in_place_at_any_size

SETTINGS = settings(max_examples=12, deadline=None)


def recurrence(W, x):
    """Reads x[:, t, :] on every step over the whole axis; the reverse loop also sums
    h.T @ g into W's adjoint, which loop batching reads from x's adjoint."""
    h = np.zeros((x.shape[0], W.shape[0]))
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t, :] + h @ W)
    return np.sum(h ** 2)


def leading(W, x):
    """x[t]: the trip variable is the whole index."""
    h = np.zeros(x.shape[1:])
    for t in range(x.shape[0]):
        h = np.sin(x[t] + h @ W)
    return np.sum(h * h)


def last_axis(W, x):
    """x[:, :, t]: slots across the rows' columns, which loop batching cannot read as rows."""
    h = np.zeros((x.shape[0], W.shape[0]))
    for t in range(x.shape[2]):
        h = np.tanh(x[:, :, t] + h @ W)
    return np.sum(h ** 2)


def part_of_the_axis(W, x):
    """range(1, n, 2) of n: the slots of other trips stay zero."""
    h = np.zeros((x.shape[0], W.shape[0]))
    for t in range(1, x.shape[1], 2):
        h = np.tanh(x[:, t, :] + h @ W)
    return np.sum(h ** 2)


def one_column(W, x):
    """x[:, t, 1:2]: part of the columns next to the trip variable: slots short of x."""
    h = np.zeros((x.shape[0], W.shape[0]))
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t, 1:2] + h @ W)
    return np.sum(h ** 2)


def counted_by_the_caller(W, x, k):
    """range(k), k from the caller (negative for no trips): slots of their own, none known
    to cover x."""
    h = np.zeros((x.shape[0], W.shape[0]))
    for t in range(k):
        h = np.tanh(x[:, t, :] + h @ W)
    return np.sum(h ** 2)


def from_the_end(W, x):
    """range(-n, n): t and t - n name one slot, so their adjoints must add."""
    h = np.zeros((x.shape[0], W.shape[0]))
    for t in range(-x.shape[1], x.shape[1]):
        h = np.tanh(x[:, t, :] + h @ W)
    return np.sum(h ** 2)


def twice_a_trip(W, x):
    """Two reads of one slot on each trip."""
    h = np.zeros((x.shape[0], W.shape[0]))
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t, :] + h @ W) * x[:, t, :]
    return np.sum(h ** 2)


def _recurrent(rng, n, steps, d):
    return rng.normal(size=(d, d)) * 0.5, rng.normal(size=(n, steps, d))


# name -> (fn, arguments, whether the slots are written, whether they cover x, whether loop
# batching reads x's adjoint as the rows of W's)
CASES = {
    "recurrence": (recurrence, _recurrent, True, True, True),
    "leading": (leading, lambda rng, n, steps, d: (
        rng.normal(size=(d, d)) * 0.5, rng.normal(size=(steps, n, d))), True, True, True),
    "last_axis": (last_axis, lambda rng, n, steps, d: (
        rng.normal(size=(d, d)) * 0.5, rng.normal(size=(n, d, steps))), True, True, False),
    "part_of_the_axis": (part_of_the_axis, _recurrent, True, False, False),
    "one_column": (one_column, lambda rng, n, steps, d: (
        rng.normal(size=(1, 1)) * 0.5, rng.normal(size=(n, steps, d + 1))), True, False, False),
    "counted_by_the_caller": (counted_by_the_caller, lambda rng, n, steps, d: (
        *_recurrent(rng, n, steps, d), steps - 1), True, False, False),
    "from_the_end": (from_the_end, _recurrent, False, False, False),
    "twice_a_trip": (twice_a_trip, _recurrent, False, False, False),
}


@pytest.mark.parametrize("case", sorted(CASES))
@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(1, 4), steps=st.integers(0, 5),
       d=st.integers(1, 4), float32=st.booleans())
def test_slot_writes_agree_with_unoptimised_code_and_finite_differences(
        case, seed, n, steps, d, float32):
    fn, make = CASES[case][:2]
    args = make(np.random.default_rng(seed), n, steps, d)
    if float32:
        args = tuple(a.astype(np.float32) for a in args[:2]) + args[2:]
    with in_place_at_any_size():
        compiled = transform(fn, args, (0, 1), "grad", specialize=True)
    value, grads = compiled.function(*args)
    assert_agrees_with_unoptimised_code(fn, args, value, grads, float32)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_pass_applies_where_trips_have_slots_of_their_own(case):
    fn, make, written, covered, rows = CASES[case]
    args = make(np.random.default_rng(0), 3, 4, 2)
    with in_place_at_any_size():
        source = transform(fn, args, (0, 1), "grad", specialize=True).source
    assert ("add_into(x_bar" not in source) == written
    assert ("x_bar = np.empty_like(x)" in source) == covered
    assert ("x_bar.reshape(" in source) == rows
    assert "x_bar = np.empty_like" not in transform(fn, args, (0, 1), "grad").source


@pytest.mark.parametrize("case", ["recurrence", "one_column", "counted_by_the_caller"])
@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(1, 4), steps=st.integers(0, 5),
       d=st.integers(1, 4))
def test_written_slots_give_the_bits_of_added_ones_but_for_signed_zeros(case, seed, n, steps,
                                                                        d):
    """Where nothing is left to zero first, nothing is read before it is written."""
    fn, make = CASES[case][:2]
    args = make(np.random.default_rng(seed), n, steps, d)
    with mock.patch.object(slot_writes.SlotWrites, "covers", lambda *a: False):
        added = transform(fn, args, (1,), "grad", specialize=True).function(*args)
    with mock.patch.object(slot_writes.SlotWrites, "slot_sum", lambda *a: None):
        assert "add_into(" in transform(fn, args, (1,), "grad", specialize=True).source
    written = transform(fn, args, (1,), "grad", specialize=True).function(*args)
    np.testing.assert_equal(written[0], added[0])
    np.testing.assert_array_equal(written[1], added[1])


def test_every_slot_is_written_when_the_buffer_starts_empty():
    """NaNs left in reused memory never reach the gradient."""
    rng = np.random.default_rng(3)
    args = _recurrent(rng, 3, 5, 2)
    compiled = transform(recurrence, args, (1,), "grad", specialize=True)
    expected = transform(recurrence, args, (1,), "grad", optimize=False).function(*args)
    with mock.patch.object(np, "empty_like", lambda x: np.full_like(x, np.nan)):
        assert "np.empty_like(" in compiled.source
        got = compiled.function(*args)
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-10, atol=1e-12)


def assert_agrees_with_unoptimised_code(fn, args, value, grads, float32):
    """Value and gradients (w.r.t. args 0 and 1) of the optimised code against the
    unoptimised code's, and against finite differences in float64."""
    plain_value, plain_grads = transform(fn, args, (0, 1), "grad",
                                         optimize=False).function(*args)
    rtol, atol = (1e-5, 1e-6) if float32 else (1e-10, 1e-12)
    np.testing.assert_allclose(value, plain_value, rtol=rtol)
    for k, (g, expected) in enumerate(zip(grads, plain_grads)):
        assert g.dtype == args[k].dtype
        np.testing.assert_allclose(g, expected, rtol=rtol, atol=atol)
        if not float32:
            np.testing.assert_allclose(g, numeric_grad(fn, args, k), rtol=1e-5, atol=1e-6)
