"""Loop batching: products summed over a loop's trips become one product after it.

Each case runs the specialised, optimised gradient (where the pass applies) against the
unoptimised code and central finite differences, over random loop lengths (zero trips
included) and shapes; the rows written into buffers give the bits of the joined lists."""
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import diffsrc as ds
from diffsrc.api import seed_with_one, transform
from diffsrc.frontend.lower import lower_function
from diffsrc.ir import verify
from diffsrc.passes import optimize
from diffsrc.passes.loop_batching import LoopBatching
from diffsrc.transforms.reverse import reverse
from gradcheck import numeric_grad
from test_passes import in_place_at_any_size

SETTINGS = settings(max_examples=12, deadline=None)


def rnn(W, U, x):
    """The reverse loop accumulates W_bar += h.T @ g and U_bar += x_t.T @ g."""
    h = np.zeros((x.shape[0], W.shape[0]))
    hs = []
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t, :] @ U + h @ W)
        hs.append(h)
    return np.sum(np.stack(hs + [h], axis=1) ** 2)


def outer_products(W, x):
    """A forward loop of known length: acc carries a.T @ b itself."""
    acc = W * 0.5
    for t in range(x.shape[0]):
        a = np.sin(x[t])
        acc = acc + a.T @ (a @ W)
    return np.sum(acc * acc)


def plain_products(W, x):
    """The left factor is no transpose: its columns are joined."""
    acc = np.zeros(W.shape)
    for xt in x:
        acc = acc + np.cos(W @ xt.T) @ np.tanh(xt @ W)
    return np.sum(acc ** 2)


def counted_by_an_argument(W, x, k):
    """range(k) with k from the caller, negative for no trips: max(k, 0) rows."""
    acc = W * 0.5
    for t in range(k):
        a = np.sin(x[t])
        acc = acc + a.T @ (a @ W)
    return np.sum(acc * acc)


CASES = {
    "rnn": (rnn, (0, 1), lambda rng, steps, n, d: (
        rng.normal(size=(d, d)) * 0.5, rng.normal(size=(d + 1, d)) * 0.5,
        rng.normal(size=(n, steps, d + 1)))),
    "outer_products": (outer_products, (0,), lambda rng, steps, n, d: (
        rng.normal(size=(d, d)) * 0.5, rng.normal(size=(steps, n, d)))),
    "plain_products": (plain_products, (0,), lambda rng, steps, n, d: (
        rng.normal(size=(d, d)) * 0.5, rng.normal(size=(steps, n, d)))),
    "counted_by_an_argument": (counted_by_an_argument, (0,), lambda rng, steps, n, d: (
        rng.normal(size=(d, d)) * 0.5, rng.normal(size=(steps, n, d)), steps - 2)),
}


def _close(got, expected):
    if isinstance(got, tuple):
        return all(_close(a, b) for a, b in zip(got, expected))
    return np.allclose(got, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("case", sorted(CASES))
@SETTINGS
@given(seed=st.integers(0, 10_000), steps=st.integers(0, 5), n=st.integers(1, 4),
       d=st.integers(1, 4))
def test_batched_products_agree_with_unoptimised_code_and_finite_differences(
        case, seed, steps, n, d):
    fn, wrt, make = CASES[case]
    args = make(np.random.default_rng(seed), steps, n, d)
    with in_place_at_any_size():
        batched = transform(fn, args, wrt, "grad", specialize=True)
    plain = transform(fn, args, wrt, "grad", optimize=False)
    got, expected = batched.function(*args), plain.function(*args)
    assert _close(got, expected)
    grads = got[1] if len(wrt) > 1 else (got[1],)
    for k, g in zip(wrt, grads):
        np.testing.assert_allclose(g, numeric_grad(fn, args, k), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_pass_applies_where_the_shapes_are_known(case):
    fn, wrt, make = CASES[case]
    args = make(np.random.default_rng(0), 3, 2, 3)
    source = transform(fn, args, wrt, "grad", specialize=True).source
    assert "_rows = np.empty(" in source and "_rows[" in source      # written in place
    assert "np.concatenate(" not in source and "_rows.append(" not in source
    assert "_rows" not in transform(fn, args, wrt, "grad").source     # general code: as is


@pytest.mark.parametrize("case", sorted(CASES))
@SETTINGS
@given(seed=st.integers(0, 10_000), steps=st.integers(0, 5), n=st.integers(1, 4),
       d=st.integers(1, 4))
def test_rows_written_into_buffers_give_the_bits_of_joined_lists(case, seed, steps, n, d):
    fn, wrt, make = CASES[case]
    args = make(np.random.default_rng(seed), steps, n, d)
    written = transform(fn, args, wrt, "grad", specialize=True)
    with mock.patch.object(LoopBatching, "counts_from_zero", lambda self, loop: False):
        joined = transform(fn, args, wrt, "grad", specialize=True)
    assert ("np.concatenate(" in joined.source) == ("_rows = np.empty(" in written.source)
    np.testing.assert_equal(written.function(*args), joined.function(*args))  # bit for bit


def grow(W, x):
    """A loop that runs until h is large: the batched product is guarded."""
    h = x
    while np.sum(h * h) < 4.0:
        h = np.tanh(h @ W) + h
    return np.sum(h ** 3)


def test_a_loop_that_does_not_run_keeps_its_start_value():
    rng = np.random.default_rng(1)
    W, x = np.abs(rng.normal(size=(3, 3))), np.abs(rng.normal(size=(2, 3))) * 0.1
    compiled = transform(grow, (W, x), (0,), "grad", specialize=True)
    assert "if t > 0:" in compiled.source                # the reverse loop's trips
    plain = transform(grow, (W, x), (0,), "grad", optimize=False)
    for start in (x, 30 * x):                        # several trips, none
        assert _close(compiled.function(W, start), plain.function(W, start))
    assert not compiled.function(W, 30 * x)[1].any()


def test_a_pushed_value_is_never_updated_in_place_afterwards():
    """rnn's adjoint of h is both pushed (its rows) and carried into the next trip."""
    args = CASES["rnn"][2](np.random.default_rng(2), 4, 3, 3)
    with in_place_at_any_size():
        compiled = transform(rnn, args, (0, 1), "grad", specialize=True)
    expected = transform(rnn, args, (0, 1), "grad", optimize=False).function(*args)
    assert _close(compiled.function(*args), expected)


def test_float32_and_value_and_grad_through_the_api():
    rng = np.random.default_rng(3)
    args = tuple(a.astype(np.float32) for a in CASES["rnn"][2](rng, 6, 4, 5))
    value, (W_bar, U_bar) = ds.value_and_grad(rnn, wrt=(0, 1))(*args)
    reference = transform(rnn, args, (0, 1), "grad", optimize=False).function(*args)
    assert W_bar.dtype == np.float32 and U_bar.dtype == np.float32
    np.testing.assert_allclose(value, reference[0], rtol=1e-5)
    np.testing.assert_allclose(W_bar, reference[1][0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(U_bar, reference[1][1], rtol=1e-4, atol=1e-5)


def test_second_order_through_batched_code():
    args = CASES["rnn"][2](np.random.default_rng(4), 3, 2, 2)
    v = np.random.default_rng(5).normal(size=args[0].shape)
    hv = ds.hvp(rnn)(*args, v)
    eps = 1e-5
    grad = ds.grad(rnn)
    numeric = (grad(args[0] + eps * v, *args[1:]) - grad(args[0] - eps * v, *args[1:])) / (2 * eps)
    np.testing.assert_allclose(hv, numeric, rtol=1e-5, atol=1e-6)


def test_loop_batching_is_a_printable_verified_pass():
    args = CASES["rnn"][2](np.random.default_rng(6), 3, 2, 3)
    function = lower_function(rnn, args)
    optimize(function, final=False)
    reverse(function, (0, 1))
    seed_with_one(function)
    seen = {}
    optimize(function, trace=lambda name, text: seen.setdefault(name, text), args=args)
    assert "loop batching" in seen and "np.empty(" in seen["loop batching"]
    verify(function)
