"""passes/scalarize.py: one-element chains on NumPy scalars change no value, dtype or shape.

Random programs mix one-element arrays ((1, 1) products, (1,) and () biases) with
larger ones; their specialised gradient code must give bit for bit what the same
code gives without the pass (the same ufunc loops on the same numbers), agree with
the general code, and match finite differences.
"""
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import diffsrc as ds
import diffsrc.passes
from diffsrc.api import transform
from diffsrc.frontend.parse import function_from_source
from gradcheck import numeric_grad

SETTINGS = settings(max_examples=40, deadline=None)

# Elementwise steps between earlier values p, q; bounded, so that no chain overflows.
STEPS = ["{p} + {q}", "{p} - {q}", "{p} * {q}", "{p} / (1.5 + {q} * {q})", "np.tanh({p})",
         "np.exp(-{p} * {p})", "np.maximum({p}, 0.0)", "3 * {p} - 1", "-{p}", "{p} * c",
         "np.sqrt({p} * {p} + 1.0)", "np.minimum({p}, {q})", "2 / (3 + {p} * {p})",
         "{p} ** 2", "abs({p})"]
LOSSES = ["np.sum({t} * {t})", "np.sum({t})", "np.sum({t} * {t}) + np.sum(w * {t})",
          "np.sum(np.tanh({t}.T @ {t}))"]
BIAS_SHAPES = [(1, 1), (1,), ()]


@st.composite
def programs(draw):
    """(source, arguments, wrt, has_aux): F(w, x, b, c) = a loss of a random chain from
    h = x @ w + b, with b of one element."""
    k = draw(st.integers(1, 4))
    float32 = draw(st.booleans())
    b_dtype = draw(st.sampled_from([np.float32, np.float64])) if float32 else np.float64
    values, lines = ["h", "b", "w"], ["h = x @ w + b"]
    for i in range(draw(st.integers(1, 7))):
        step = draw(st.sampled_from(STEPS))
        p = draw(st.sampled_from(values[:1] + values[3:]))
        q = draw(st.sampled_from(values))
        lines.append(f"t{i} = " + step.format(p=p, q=q))
        values.append(f"t{i}")
    last = values[-1]
    loss = draw(st.sampled_from(LOSSES)).format(t=last)
    aux = draw(st.booleans())
    body = "\n".join(f"    {line}" for line in lines)
    result = f"{loss}, {last}" if aux else loss
    source = f"def F(w, x, b, c):\n{body}\n    return {result}\n"
    rng = np.random.default_rng(draw(st.integers(0, 10_000)))
    dtype = np.float32 if float32 else np.float64
    args = (rng.normal(size=(k, 1)).astype(dtype), rng.normal(size=(1, k)).astype(dtype),
            np.asarray(rng.normal(size=draw(st.sampled_from(BIAS_SHAPES))), dtype=b_dtype),
            float(rng.normal()))
    wrt = draw(st.sampled_from([(0,), (0, 1), (0, 1, 2)]))    # b's adjoint is an array
    return source, args, wrt, aux


def _run(source, args, wrt=(0, 1, 2), aux=False, scalarize=True):
    """The specialised gradient code's results, with or without the pass."""
    fn = function_from_source(source, {"np": np})
    if scalarize:
        compiled = transform(fn, args, wrt, "grad", specialize=True, has_aux=aux)
    else:
        with mock.patch.object(diffsrc.passes, "scalarize", lambda fn: False):
            compiled = transform(fn, args, wrt, "grad", specialize=True, has_aux=aux)
    return compiled.function(*args)


def _leaves(tree):
    if isinstance(tree, tuple):
        return [leaf for item in tree for leaf in _leaves(item)]
    return [tree]


def _identical(got, expected):
    """Same types, shapes, dtypes and bits (NaN where NaN)."""
    assert len(_leaves(got)) == len(_leaves(expected))
    for a, b in zip(_leaves(got), _leaves(expected)):
        assert type(a) is type(b) and np.shape(a) == np.shape(b) and \
            np.result_type(a) == np.result_type(b), (a, b)
        np.testing.assert_array_equal(a, b)


@SETTINGS
@given(program=programs())
def test_scalar_chains_give_the_same_bits_as_array_chains(program):
    source, args, wrt, aux = program
    _identical(_run(source, args, wrt, aux), _run(source, args, wrt, aux, scalarize=False))


@SETTINGS
@given(program=programs())
def test_scalarised_code_agrees_with_general_code_and_finite_differences(program):
    source, args, wrt, aux = program
    value, grads = _run(source, args, wrt, aux)
    fn = function_from_source(source, {"np": np})
    general_value, general_grads = transform(fn, args, wrt, "grad", has_aux=aux).function(*args)
    tolerance = 1e-5 if args[0].dtype == np.float32 else 1e-10
    for a, b in zip(_leaves((value, grads)), _leaves((general_value, general_grads))):
        assert np.shape(a) == np.shape(b) and np.result_type(a) == np.result_type(b)
        np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance)
    if args[0].dtype == np.float64 and args[2].dtype == np.float64:
        loss = fn if not aux else (lambda *a: fn(*a)[0])
        grads = grads if len(wrt) > 1 else (grads,)
        for got, expected in zip(grads, numeric_grad(loss, args, wrt)):
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def steer(W2, W1, b1, b2, window, target):
    h = np.maximum(window @ W1 + b1, 0.0)
    y = np.tanh(h @ W2 + b2)
    r = target - y
    return np.sum(r * r), y


def _steer_args(dtype):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(8, 1)).astype(dtype), rng.normal(size=(5, 8)).astype(dtype),
            rng.normal(size=8).astype(dtype), rng.normal(size=1).astype(dtype),
            rng.normal(size=(1, 5)).astype(dtype), dtype(0.25))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_a_batch_of_one_reads_its_prediction_once_and_keeps_its_dtype(dtype):
    args = _steer_args(dtype)
    df = ds.grad(steer, wrt="W2", has_aux=True)
    g, y = df(*args)
    source = ds.source(df)
    assert "y_0 = y[0, 0]" in source and "h.T * t_bar" in source
    assert "np.sum" not in source                       # the square of one element is itself
    assert "2.0 * r" in source                          # constants of scalar maths are floats
    assert g.shape == (8, 1) and g.dtype == dtype and y.shape == (1, 1) and y.dtype == dtype
    (_, expected_y), expected = _run(_source_of(steer), args, (0,), aux=True, scalarize=False)
    _identical((g, y), (expected, expected_y))


def _source_of(fn):
    import inspect
    return inspect.getsource(fn)


def test_parameters_of_one_element_are_read_once():
    def f(x, y):
        return np.sum(np.tanh(x) * y) + np.sum(x * x)
    args = (np.array([[0.5]]), np.array(0.3))
    got = _run(_source_of(f), args, (0, 1))
    _identical(got, _run(_source_of(f), args, (0, 1), scalarize=False))
    df = ds.grad(f, wrt=(0, 1))
    df(*args)
    assert "x_0 = x[0, 0]" in ds.source(df)
    for a, b in zip(_leaves(got), _leaves(transform(f, args, (0, 1), "grad").function(*args))):
        np.testing.assert_allclose(a, b, rtol=1e-14)


def test_values_that_leave_the_function_stay_arrays():
    def f(a, b, w):
        t = a * b + 1.0                     # (1, 1): returned as aux, and read by a product
        u = w @ t                           # (n, 1) @ (1, 1)
        return np.sum(u * u) + np.sum(t), t
    rng = np.random.default_rng(1)
    args = (rng.normal(size=(1, 1)), rng.normal(size=(1, 1)), rng.normal(size=(3, 1)))
    (value, t), grads = ds.value_and_grad(f, wrt=(0, 1, 2), has_aux=True)(*args)
    assert type(t) is np.ndarray and t.shape == (1, 1)
    assert [g.shape for g in grads] == [(1, 1), (1, 1), (3, 1)]
    assert all(type(g) is np.ndarray and g.flags.writeable for g in grads)
    for got, numeric in zip(grads, numeric_grad(lambda *a: f(*a)[0], args, (0, 1, 2))):
        np.testing.assert_allclose(got, numeric, rtol=1e-6, atol=1e-8)


def test_a_sum_that_may_be_negative_zero_stays_a_sum():
    def f(a, b):
        return np.sum(a * b)                # np.sum of [[-0.0]] is +0.0
    args = (np.zeros((1, 1)), -np.ones((1, 1)))
    value, grads = ds.value_and_grad(f, wrt=(0, 1))(*args)
    assert np.signbit(f(*args)) == np.signbit(value) and not np.signbit(value)
    assert [g.shape for g in grads] == [(1, 1), (1, 1)]


def test_int_constants_keep_their_value_in_every_float_dtype():
    def f(a):
        return np.sum(3 * a * a - 4097 * a + (2 ** 60 + 1) * a)   # no float16; no float
    for dtype in (np.float16, np.float32, np.float64):
        a = np.full((1, 1), 0.5, dtype)
        _identical(_run(_source_of(f), (a,), (0,)), _run(_source_of(f), (a,), (0,), scalarize=False))


def test_single_element_chains_in_a_loop_agree_with_general_code():
    def f(w, x):
        s = x @ w
        for i in range(6):
            s = np.tanh(s * 0.5 + 1.0) - s * s
        return np.sum(s * s)
    rng = np.random.default_rng(2)
    args = (rng.normal(size=(4, 1)), rng.normal(size=(1, 4)))
    got = ds.grad(f)(*args)
    np.testing.assert_allclose(got, numeric_grad(f, args, 0), rtol=1e-6, atol=1e-8)
    expected = transform(f, args, (0,), "grad").function(*args)[1]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
