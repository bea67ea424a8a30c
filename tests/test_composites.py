"""The logistic function written out is recognised as one primitive (passes/composites.py):
the same values, gradients from the result alone, nothing else on the tape."""
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
    return np.sum(1.0 / (1.0 + np.exp(-x)) * x)


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


@pytest.mark.parametrize("fn", [spelled, commuted, shared_part], ids=lambda f: f.__name__)
@SETTINGS
@given(x=hnp.arrays(np.float64, st.integers(1, 6), elements=st.floats(-6, 6)))
def test_gradients_agree_with_unoptimised_code_and_finite_differences(fn, x):
    value, grad = transform(fn, (x,), (0,), "grad").function(x)
    plain_value, plain_grad = transform(fn, (x,), (0,), "grad", optimize=False).function(x)
    assert value == plain_value
    np.testing.assert_allclose(grad, plain_grad, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(grad, numeric_grad(fn, (x,), 0), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("fn", [spelled, commuted], ids=lambda f: f.__name__)
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
