"""The logistic function written out is recognised as one primitive (passes/composites.py):
the same values, gradients from the result alone, nothing else on the tape."""
import re
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import diffsrc as ds
from diffsrc import runtime
from diffsrc.api import transform
from gradcheck import numeric_grad

SETTINGS = settings(max_examples=20, deadline=None)


def spelled(x):
    """x times the logistic function: a SiLU (silu_by_reciprocal) since that is recognised."""
    return np.sum(1.0 / (1.0 + np.exp(-x)) * x)


def logistic_times_cos(x):
    return np.sum(1.0 / (1.0 + np.exp(-x)) * np.cos(x))


def commuted(x):
    return np.sum(np.divide(1, np.add(np.exp(np.negative(x)), 1)) ** 2)


def in_a_loop(W, x):
    h = np.zeros((x.shape[0], W.shape[1]))
    for t in range(x.shape[1]):
        h = h * (1 / (1 + np.exp(-(x[:, t, :] @ W)))) + 0.5
    return np.sum(h ** 2)


def shared_part(x):
    """exp(-x) is read twice: the expression stays as written."""
    e = np.exp(-x)
    return np.sum(1.0 / (1.0 + e) + e)


@pytest.mark.parametrize("fn", [spelled, logistic_times_cos, commuted, shared_part],
                         ids=lambda f: f.__name__)
@SETTINGS
@given(x=hnp.arrays(np.float64, st.integers(1, 6), elements=st.floats(-6, 6)))
def test_gradients_agree_with_unoptimised_code_and_finite_differences(fn, x):
    assert_agrees_with_unoptimised_code_and_finite_differences(fn, x, atol=1e-15)


def assert_agrees_with_unoptimised_code_and_finite_differences(fn, x, atol):
    """The same value bit for bit, the gradient within `atol` of the unoptimised code's and
    close to central differences, which lose about 1e-10 |f| to rounding."""
    value, grad = transform(fn, (x,), (0,), "grad").function(x)
    plain_value, plain_grad = transform(fn, (x,), (0,), "grad", optimize=False).function(x)
    assert value == plain_value
    np.testing.assert_allclose(grad, plain_grad, rtol=1e-12, atol=atol)
    np.testing.assert_allclose(grad, numeric_grad(fn, (x,), 0), rtol=1e-5,
                               atol=max(1e-7, 1e-9 * abs(value)))


@pytest.mark.parametrize("fn", [logistic_times_cos, commuted], ids=lambda f: f.__name__)
def test_the_expression_becomes_one_call(fn):
    source = ds.source(ds.grad(fn), optimize=True)
    assert "sigmoid(" in source and "np.exp" not in source


def test_a_part_read_elsewhere_keeps_the_expression():
    assert "sigmoid(" not in ds.source(ds.grad(shared_part))


def test_only_the_result_is_taped():
    rng = np.random.default_rng(0)
    args = (rng.normal(size=(3, 4)), rng.normal(size=(2, 5, 3)))
    compiled = transform(in_a_loop, args, (0,), "grad", specialize=True)
    tape_line = next(line for line in compiled.source.splitlines() if "_tape.append(" in line)
    assert tape_line.count(",") <= 3           # h, the sigmoid and x_t @ W's operand
    expected = transform(in_a_loop, args, (0,), "grad", optimize=False).function(*args)
    np.testing.assert_allclose(compiled.function(*args)[1], expected[1], rtol=1e-10)
    np.testing.assert_allclose(compiled.function(*args)[1], numeric_grad(in_a_loop, args, 0),
                               rtol=1e-5, atol=1e-7)


@given(x=hnp.arrays(st.sampled_from([np.float32, np.float64, np.int64]),
                    hnp.array_shapes(min_dims=0, max_dims=2, max_side=4),
                    elements=st.integers(-100, 100)))
def test_same_values_as_the_expression_it_replaces(x):
    with np.errstate(over="ignore"):
        expected = 1.0 / (1.0 + np.exp(-x))
        got = runtime.sigmoid(x)
    assert type(got) is type(expected) and got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_a_number_and_the_caller_s_array_untouched():
    assert runtime.sigmoid(0.5) == 1.0 / (1.0 + np.exp(-0.5))
    x = np.array([1.0, -2.0])
    runtime.sigmoid(x)
    np.testing.assert_array_equal(x, [1.0, -2.0])


def test_saturated_entries_get_a_zero_gradient_not_nan():
    x = np.array([-1000.0, 0.0, 1000.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)      # exp(1000) overflows, as written
        grad = ds.grad(spelled)(x)
    np.testing.assert_array_equal(grad, [0.0, 0.5, 1.0])


def test_second_order_and_forward_mode():
    x = np.linspace(-2.0, 2.0, 5)
    v = np.ones_like(x)
    y = 1 / (1 + np.exp(-x))
    d1 = y * (1 - y)
    d2 = d1 * (1 - 2 * y)
    expected = d1 + d1 + x * d2                  # d/dx of (y + x y')
    np.testing.assert_allclose(ds.hvp(spelled)(x, v), expected, rtol=1e-12)
    _, tangent = ds.jvp(lambda x: 1.0 / (1.0 + np.exp(-x)), (x,), (v,))
    np.testing.assert_allclose(tangent, d1, rtol=1e-12)


# ----------------------------------------------------------------------------- SiLU

def silu_spelled(x):
    return np.sum(x / (1.0 + np.exp(-x)) * np.cos(x))


def silu_shared(x):
    """1 + exp(-x) is read twice: the quotient stays as written."""
    t = 1.0 + np.exp(-x)
    return np.sum(x / t + t)


def silu_times_logistic(x):
    return np.sum(x * (1.0 / (1.0 + np.exp(-x))) * np.cos(x))


def logistic_times_x(x):
    """The product in the other order, the sum in the other order."""
    return np.sum((1 / (np.exp(-x) + 1)) * x)


def silu_mlp(W, x):
    a = x @ W
    h = a / (1 + np.exp(-a))
    return np.mean(h * h)


@pytest.mark.parametrize("fn", [silu_spelled, silu_shared, silu_times_logistic, logistic_times_x],
                         ids=lambda f: f.__name__)
@SETTINGS
@given(x=hnp.arrays(np.float64, st.integers(1, 6), elements=st.floats(-12, 12)))
def test_silu_gradients_agree_with_unoptimised_code_and_finite_differences(fn, x):
    assert_agrees_with_unoptimised_code_and_finite_differences(fn, x, atol=1e-13)


@SETTINGS
@given(seed=st.integers(0, 2 ** 32 - 1), dtype=st.sampled_from([np.float32, np.float64]))
def test_silu_layer_specialised_bit_for_bit_values_and_close_gradients(seed, dtype):
    rng = np.random.default_rng(seed)
    args = (rng.normal(size=(5, 4)).astype(dtype), rng.normal(size=(6, 5)).astype(dtype))
    compiled = transform(silu_mlp, args, (0,), "grad", specialize=True)
    assert "silu(" in compiled.source
    value, grad = compiled.function(*args)
    plain_value, plain_grad = transform(silu_mlp, args, (0,), "grad",
                                        optimize=False).function(*args)
    assert value == plain_value and grad.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(grad, plain_grad, rtol=tol, atol=tol)


def test_silu_becomes_one_call_keeping_its_denominator():
    source = ds.source(ds.grad(silu_spelled), optimize=True)
    assert "silu(x, t)" in source and source.count("np.exp") == 1
    assert "silu(" not in ds.source(ds.grad(silu_shared))


@pytest.mark.parametrize("fn", [silu_times_logistic, logistic_times_x], ids=lambda f: f.__name__)
def test_silu_as_x_times_the_logistic_becomes_one_call(fn):
    """Recognised before the logistic alone would be: one call keeping 1 + exp(-x), no
    sigmoid, and the adjoint reads t and the result, not exp(-x)."""
    x = np.linspace(-3.0, 3.0, 7)
    df = ds.grad(fn)
    df(x)
    source = ds.source(df)
    assert re.search(r"silu_by_reciprocal\(x, (\w+)\)", source), source
    assert "sigmoid(" not in source and source.count("np.exp") == 1, source


def test_silu_far_tails_get_finite_gradients():
    """exp(-x) overflows at x = -1000: the derivative, about 0, is not nan; at x = 1000 it is 1."""
    x = np.array([-1000.0, -20.0, 0.0, 20.0, 1000.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        grad = ds.grad(lambda x: np.sum(x / (1.0 + np.exp(-x))))(x)
    s = 1 / (1 + np.exp(-x[1:4]))
    np.testing.assert_allclose(grad[1:4], s * (1 + x[1:4] * (1 - s)), rtol=1e-14)
    assert grad[0] == 0 and grad[4] == 1


def test_silu_second_order_and_forward_mode():
    x = np.linspace(-3.0, 3.0, 7)
    v = np.ones_like(x)
    s = 1 / (1 + np.exp(-x))
    d1 = s * (1 + x * (1 - s))
    d2 = s * (1 - s) * (2 + x * (1 - 2 * s))
    np.testing.assert_allclose(ds.hvp(lambda x: np.sum(x / (1 + np.exp(-x))))(x, v), d2,
                               rtol=1e-12, atol=1e-15)
    _, tangent = ds.jvp(lambda x: x / (1.0 + np.exp(-x)), (x,), (v,))
    np.testing.assert_allclose(tangent, d1, rtol=1e-12)


# ------------------------------------------------------------------- the max shift

def logsumexp_loss(z, Y):
    m = np.max(z, axis=-1, keepdims=True)
    lse = np.log(np.sum(np.exp(z - m), axis=-1, keepdims=True)) + m
    return np.mean(np.sum(Y * (lse - z), axis=-1))


def logsumexp_methods(z, Y):
    m = z.max(axis=0, keepdims=True)
    return np.sum((m + np.log(np.exp(z - m).sum(axis=0, keepdims=True))) * Y[:1])


def log_softmax_loss(z, Y):
    d = z - np.max(z, axis=1, keepdims=True)
    return -np.sum(Y * (d - np.log(np.sum(np.exp(d), axis=1, keepdims=True))))


def softmax_loss(z, Y):
    e = np.exp(z - np.max(z, axis=-1, keepdims=True))
    p = e / np.sum(e, axis=-1, keepdims=True)
    return np.sum(p * p * Y)


def max_also_returned(z, Y):
    """m is read outside the shift-free expression: it keeps its derivative."""
    m = np.max(z, axis=-1, keepdims=True)
    lse = np.log(np.sum(np.exp(z - m), axis=-1, keepdims=True)) + m
    return np.sum(Y * (lse - z)) + np.sum(m * m)


def other_axis(z, Y):
    """The sum runs over another axis than the max: the shift does not cancel."""
    m = np.max(z, axis=1, keepdims=True)
    return np.sum(Y * (np.log(np.sum(np.exp(z - m), axis=0, keepdims=True)) + m))


SHIFTED = [logsumexp_loss, logsumexp_methods, log_softmax_loss, softmax_loss]
KEPT = [max_also_returned, other_axis]


@pytest.mark.parametrize("fn", SHIFTED + KEPT, ids=lambda f: f.__name__)
@SETTINGS
@given(z=hnp.arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 5)),
                    elements=st.integers(-3, 3).map(float) | st.floats(-50, 50)),
       seed=st.integers(0, 100))
def test_shift_gradients_agree_with_unoptimised_code_and_finite_differences(fn, z, seed):
    """Integer entries make ties for the max, where its own adjoint would split: the
    shift-free functions are smooth there all the same (the others are not: no finite
    differences for them)."""
    Y = np.random.default_rng(seed).uniform(size=z.shape)
    value, grad = transform(fn, (z, Y), (0,), "grad").function(z, Y)
    plain_value, plain_grad = transform(fn, (z, Y), (0,), "grad",
                                        optimize=False).function(z, Y)
    assert value == plain_value
    scale = max(1.0, np.abs(plain_grad).max())
    np.testing.assert_allclose(grad, plain_grad, rtol=1e-12, atol=1e-13 * scale)
    if fn in SHIFTED:
        np.testing.assert_allclose(grad, numeric_grad(fn, (z, Y), 0), rtol=1e-5,
                                   atol=1e-6 * scale)


@pytest.mark.parametrize("fn", SHIFTED, ids=lambda f: f.__name__)
def test_the_shift_carries_no_derivative(fn):
    source = ds.source(ds.grad(fn), optimize=True)
    assert "max_shift(z, " in source and "extremum_share" not in source


@pytest.mark.parametrize("fn", KEPT, ids=lambda f: f.__name__)
def test_a_max_read_elsewhere_keeps_its_derivative(fn):
    source = ds.source(ds.grad(fn), optimize=True)
    assert "max_shift" not in source and "extremum_share" in source


def test_shift_specialised_float32_and_verified():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(16, 10)).astype(np.float32)
    Y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 16)]
    compiled = transform(logsumexp_loss, (z, Y), (0,), "grad", specialize=True)
    assert "max_shift(" in compiled.source and "extremum_share" not in compiled.source
    value, grad = compiled.function(z, Y)
    plain_value, plain_grad = transform(logsumexp_loss, (z, Y), (0,), "grad",
                                        optimize=False).function(z, Y)
    assert value == plain_value and grad.dtype == np.float32
    np.testing.assert_allclose(grad, plain_grad, rtol=1e-6, atol=1e-7)
    z64 = z.astype(np.float64)
    expected = np.exp(z64 - z64.max(axis=1, keepdims=True))
    expected = (expected / expected.sum(axis=1, keepdims=True) - Y) / len(z)
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-7)


def test_shift_second_order_and_forward_mode():
    z = np.array([[1.0, 2.0, 2.0], [-1.0, 0.5, 3.0]])
    v = np.array([[0.3, -1.0, 0.5], [1.0, 2.0, -0.5]])

    def lse(z):
        m = np.max(z, axis=1, keepdims=True)
        return np.sum(np.log(np.sum(np.exp(z - m), axis=1, keepdims=True)) + m)

    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    pv = (p * v).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(ds.hvp(lse)(z, v), p * v - p * pv, rtol=1e-12, atol=1e-15)
    _, tangent = ds.jvp(lse, (z,), (v,))
    np.testing.assert_allclose(tangent, pv.sum(), rtol=1e-12)
