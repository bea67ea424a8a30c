"""Peer-style acceptance tests for scalar arithmetic and scalar math.

Modelled on the kinds of checks in autograd's core/scalar-op/binary-op suites:
Python operators on floats (+ - * / ** % // unary minus, comparisons used as
values), every elementary NumPy ufunc applied to a Python float, the `math`
module, powers with constant or differentiated exponents (including the base 0
and exponent 0 special cases), binary operators over every pairing of scalar /
vector / matrix / row-matrix operands with broadcasting, and second derivatives
(grad of grad).  Gradients are compared with central finite differences.
"""
import itertools
import math
import operator

import numpy as np
import pytest
from hypothesis import given, settings

import diffsrc as ds

try:
    from gradcheck import check_grad, floats, nonzero_floats
except ImportError:  # tests/ turned into a package
    from tests.gradcheck import check_grad, floats, nonzero_floats

HYP = settings(max_examples=10, deadline=None)

# ---------------------------------------------------------------------------
# Python operators on two floats, both arguments
# ---------------------------------------------------------------------------


def op_add(x, y):
    return x + y


def op_sub(x, y):
    return x - y


def op_mul(x, y):
    return x * y


def op_div(x, y):
    return x / y


def op_pow(x, y):
    return x ** y


def op_mod(x, y):
    return x % y


def op_floordiv_mix(x, y):
    return (x // y) * y + x * y      # floor division is piecewise constant


def op_neg_pos(x, y):
    return -x + (+y) * -(x - y)


def op_abs_builtin(x, y):
    return abs(x) * abs(y - 3.0)


@pytest.mark.parametrize("f", [op_add, op_sub, op_mul, op_div, op_pow, op_mod, op_floordiv_mix,
                               op_neg_pos, op_abs_builtin], ids=lambda f: f.__name__)
@pytest.mark.parametrize("xy", [(0.7, 1.8), (2.3, 0.6), (1.3, -1.4)])
def test_binary_python_operators(f, xy):
    x, y = xy
    if f is op_pow and x < 0:
        pytest.skip("negative base")
    check_grad(f, (x, y), 0)
    check_grad(f, (x, y), 1)
    check_grad(f, (x, y), (0, 1))


def test_operator_closed_forms():
    assert ds.grad(op_mod, wrt=(0, 1))(0.7, 1.8) == pytest.approx((1.0, 0.0))
    assert ds.grad(op_mod, wrt=(0, 1))(2.3, 0.6) == pytest.approx((1.0, -3.0))
    gx, gy = ds.grad(op_pow, wrt=(0, 1))(1.5, 2.5)
    assert gx == pytest.approx(2.5 * 1.5 ** 1.5, rel=1e-12)
    assert gy == pytest.approx(math.log(1.5) * 1.5 ** 2.5, rel=1e-12)


def cmp_eq(x, y):
    return float(x == y) + x * 0.0


def cmp_values(x, y):
    # comparisons used as numbers carry no gradient; the x*y term does
    return (x < y) * 1.0 + (x <= y) + (x > y) * 2.0 + (x >= y) + (x != y) + x * y


@pytest.mark.parametrize("xy", [(0.7, 1.8), (2.0, -1.0)])
def test_comparisons_have_zero_gradient(xy):
    x, y = xy
    assert ds.grad(cmp_eq, wrt=(0, 1))(x, y) == (0.0, 0.0)
    gx, gy = ds.grad(cmp_values, wrt=(0, 1))(x, y)
    assert gx == pytest.approx(y) and gy == pytest.approx(x)


# ---------------------------------------------------------------------------
# numpy ufuncs applied to Python floats
# ---------------------------------------------------------------------------

# (function, point): a point inside the function's domain and away from kinks
NP_SCALAR = [
    (lambda x: 3.0 * np.abs(x), 1.1),
    (lambda x: 3.0 * np.abs(x), -1.1),
    (lambda x: 3.0 * np.sin(x), 0.4),
    (lambda x: 3.0 * np.cos(x), -0.8),
    (lambda x: 3.0 * np.tan(x), 0.3),
    (lambda x: 3.0 * np.sign(x) + x, 1.1),
    (lambda x: 3.0 * np.exp(x), -0.5),
    (lambda x: 3.0 * np.log(x), 1.7),
    (lambda x: 3.0 * np.log2(x), 0.6),
    (lambda x: 3.0 * np.log10(x), 2.4),
    (lambda x: 3.0 * np.log1p(x), 0.9),
    (lambda x: 3.0 * np.expm1(x), 0.9),
    (lambda x: 3.0 * np.exp2(x), 0.9),
    (lambda x: 3.0 * -x, 0.3),
    (lambda x: 3.0 * np.cosh(x), 0.6),
    (lambda x: 3.0 * np.sinh(x), -0.6),
    (lambda x: 3.0 * np.tanh(x), 0.6),
    (lambda x: 3.0 * np.arccos(x), 0.1),
    (lambda x: 3.0 * np.arcsin(x), 0.2),
    (lambda x: 3.0 * np.arctan(x), 0.2),
    (lambda x: 3.0 * np.arccosh(x), 1.7),
    (lambda x: 3.0 * np.arcsinh(x), -0.7),
    (lambda x: 3.0 * np.arctanh(x), 0.3),
    (lambda x: 3.0 * np.sqrt(x), 4.2),
    (lambda x: np.reciprocal(x), 0.7),
    (lambda x: np.negative(x), 0.7),
    (lambda x: 3.0 * np.rad2deg(x), 2.0),
    (lambda x: 3.0 * np.deg2rad(x), 2.0),
    (lambda x: 3.0 * np.radians(x), 2.0),
    (lambda x: 3.0 * np.degrees(x), 2.0),
    (lambda x: 3.0 * np.sinc(x), 0.7),
    (lambda x: np.square(x), -1.3),
    (lambda x: np.cbrt(x), 2.2),
    (lambda x: np.fabs(x), -1.3),
    (lambda x: np.floor(x) + np.ceil(x) + np.round(x) + x, 1.3),
    (lambda x: np.power(x, 2.7), 1.4),
    (lambda x: np.power(2.7, x), 1.4),
    (lambda x: np.arctan2(x, 1.5) + np.arctan2(0.5, x), 0.8),
    (lambda x: np.hypot(x, 1.5), 0.8),
    (lambda x: np.logaddexp(x, 0.3), 0.8),
    (lambda x: np.logaddexp2(x, 0.3), 0.8),
    (lambda x: np.true_divide(x, 1.5), 0.8),
    (lambda x: np.divide(1.5, x), 0.8),
    (lambda x: np.mod(x, 0.5), 0.8),
    (lambda x: np.maximum(x, 0.3) + np.minimum(x, 0.3), 0.8),
    (lambda x: np.fmax(x, 0.3) + np.fmin(x, 0.3), 0.1),
    (lambda x: np.real(x) * np.sin(x), 0.8),
    (lambda x: np.clip(x, -1.0, 1.0) * x, 0.6),
    (lambda x: np.where(x > 0, x * x, -x), 0.6),
    (lambda x: np.where(x > 0, x * x, -x), -0.6),
]


@pytest.mark.parametrize("idx", range(len(NP_SCALAR)))
def test_numpy_function_on_python_float(idx):
    f, x = NP_SCALAR[idx]
    g = check_grad(f, (x,), 0)
    assert isinstance(g, float)


# two lambdas written on ONE source line: each must be differentiated as itself
PAIR_ON_ONE_LINE = (lambda x: np.sin(x) * 2.0, lambda x: np.cos(x) * 3.0)  # noqa: E731


def test_two_lambdas_on_one_line():
    first, second = PAIR_ON_ONE_LINE
    assert ds.grad(first)(0.4) == pytest.approx(2.0 * np.cos(0.4), rel=1e-12)
    assert ds.grad(second)(0.4) == pytest.approx(-3.0 * np.sin(0.4), rel=1e-12)


def test_lambdas_on_separate_lines():
    first, second = PAIR_ON_ONE_LINE[0], (
        lambda x: np.cos(x) * 3.0)
    assert ds.grad(first)(0.4) == pytest.approx(2.0 * np.cos(0.4), rel=1e-12)
    assert ds.grad(second)(0.4) == pytest.approx(-3.0 * np.sin(0.4), rel=1e-12)


# ---------------------------------------------------------------------------
# the math module
# ---------------------------------------------------------------------------


def math_mix(x):
    return (math.sin(x) * math.cos(x) + math.exp(-x) + math.log(x + 3.0) + math.sqrt(x + 2.0)
            + math.tanh(x) + math.atan(x) + math.pow(x + 2.0, 1.5) + math.hypot(x, 2.0)
            + math.atan2(x, 2.0) + math.log1p(x + 1.5) + math.expm1(x) + math.fabs(x) * x
            + math.log(x + 4.0, 2.0) + math.log10(x + 3.0) + math.log2(x + 3.0)
            + math.cosh(x) * math.sinh(x) + math.asin(x * 0.3) + math.acos(x * 0.3)
            + math.pi * x + math.e)


def math_floor_ceil(x):
    return math.floor(x) * x + math.ceil(x) + math.trunc(x) * x * x


@pytest.mark.parametrize("x", [-0.7, 0.4, 1.3])
def test_math_module(x):
    check_grad(math_mix, (x,), 0)
    check_grad(math_floor_ceil, (x,), 0)


@HYP
@given(x=nonzero_floats(0.2, 2.0), y=floats(-2.0, 2.0))
def test_math_property(x, y):
    def f(a, b):
        return math.sin(a * b) / (1.0 + a * a) + math.exp(0.3 * b) * math.log(abs(a))
    check_grad(f, (x, y), (0, 1))


# ---------------------------------------------------------------------------
# powers: constant / differentiated exponent, special bases and exponents
# ---------------------------------------------------------------------------


def power_const_exponent(x):
    return np.power(x, 2.3)


def power_zero_exponent(x):
    return np.power(x, 0.0)


def power_var_exponent_zero_base(y):
    return np.power(0.0, y)


def pow_int_exponent(x):
    return x ** 2 + x ** -1 + x ** 0


def test_power_closed_forms():
    assert ds.grad(power_const_exponent)(1.3) == pytest.approx(2.3 * 1.3 ** 1.3, rel=1e-12)
    assert ds.grad(power_zero_exponent)(1.7) == 0.0
    g = ds.grad(power_var_exponent_zero_base)(0.8)
    assert g == 0.0 and math.isfinite(g)
    check_grad(pow_int_exponent, (1.4,), 0)
    check_grad(pow_int_exponent, (-0.6,), 0)


def test_zero_exponent_at_zero_base():
    assert ds.grad(power_zero_exponent)(0.0) == 0.0
    assert ds.grad(lambda x: x ** 0.0)(0.0) == 0.0


def test_integer_power_of_negative_base():
    # d/dx x**3 at negative x (log of the base must not poison the result)
    g = check_grad(lambda x: x ** 3, (-1.5,), 0)
    assert g == pytest.approx(3 * 1.5 ** 2)
    assert ds.grad(lambda x: x ** 2)(0.0) == 0.0


# ---------------------------------------------------------------------------
# binary operators over all scalar/vector/matrix/row pairings (broadcasting)
# ---------------------------------------------------------------------------

RS = np.random.default_rng(7)
OPERANDS = {
    "scalar": 2.0,
    "vector": RS.standard_normal(4),
    "matrix": RS.standard_normal((3, 4)),
    "row": RS.standard_normal((1, 4)),
}


def sin_sum(v):
    return np.sum(np.sin(v))


BINARY = {
    "arith": lambda x, y: sin_sum(x * y) + sin_sum(x + y) - sin_sum(x - y) + sin_sum(x / (y * y + 0.5)),
    "pow_mod": lambda x, y: sin_sum((np.abs(x) + 1.1) ** y) + sin_sum(np.mod(x * x + 0.5, y * y + 2.3)),
    "np_named": lambda x, y: (sin_sum(operator.mul(x, y)) + sin_sum(np.add(x, y))
                              + sin_sum(np.subtract(x, y)) * sin_sum(np.multiply(x, y))
                              + sin_sum(np.true_divide(x, y * y + 0.8))),
    "np_special": lambda x, y: (sin_sum(np.logaddexp(x, y)) + sin_sum(np.logaddexp2(x, y))
                                + sin_sum(np.maximum(x, y * 1.01 + 0.013))
                                + sin_sum(np.minimum(x, y * 1.01 + 0.013))
                                + sin_sum(np.arctan2(x, y * y + 0.5)) + sin_sum(np.hypot(x, y))),
}


@pytest.mark.parametrize("pair", list(itertools.product(OPERANDS, OPERANDS)),
                         ids=lambda p: f"{p[0]}-{p[1]}")
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_broadcasting(name, pair):
    f = BINARY[name]
    x, y = OPERANDS[pair[0]], OPERANDS[pair[1]]
    gx, gy = check_grad(f, (x, y), (0, 1))
    assert np.shape(gx) == np.shape(x) and np.shape(gy) == np.shape(y)


def comparisons_as_numbers(x, y):
    return (np.sum(x < y) + np.sum(x <= y) + np.sum(x > y) + np.sum(x >= y)
            + np.sum(x == y) + np.sum(x != y) + 0.0)


@pytest.mark.parametrize("pair", [("scalar", "matrix"), ("vector", "matrix"), ("row", "vector")])
def test_comparison_gradients_are_zero(pair):
    x, y = OPERANDS[pair[0]], OPERANDS[pair[1]]
    value, (gx, gy) = ds.value_and_grad(comparisons_as_numbers, wrt=(0, 1))(x, y)
    assert value == comparisons_as_numbers(x, y)
    assert np.all(np.asarray(gx) == 0) and np.shape(gx) == np.shape(x)
    assert np.all(np.asarray(gy) == 0) and np.shape(gy) == np.shape(y)


# ---------------------------------------------------------------------------
# fan-out, constants, identity
# ---------------------------------------------------------------------------


def fanout(x):
    return np.sin(np.sin(x) + np.sin(x))


def returns_constant(x):
    return 1.0


def returns_int_constant(x):
    return 3


def unused_argument(x, y):
    return y * 2.0


def direct_value(x):
    return (x + np.sin(x ** 2)) * x


def test_fanout_and_closed_form():
    check_grad(fanout, (0.4,), 0)
    assert ds.grad(direct_value)(1.3) == pytest.approx(3.190948746871, abs=1e-9)


def test_constant_functions():
    assert ds.grad(returns_constant)(2.0) == 0.0
    assert ds.grad(returns_int_constant)(2.0) == 0.0
    assert ds.grad(unused_argument)(2.0, 1.0) == 0.0
    g = ds.grad(returns_constant)(np.ones(3))
    assert isinstance(g, np.ndarray) and g.shape == (3,) and not np.any(g)


def test_identity_and_its_second_derivative_value():
    assert ds.grad(lambda x: x)(2.0) == 1.0


def test_identity_second_derivative():
    assert ds.grad(ds.grad(lambda x: x))(2.0) == 0.0


# ---------------------------------------------------------------------------
# higher order: grad of grad (and of grad of grad)
# ---------------------------------------------------------------------------

SECOND = [
    (lambda x: 3.0 * np.sin(x), lambda x: -3.0 * np.sin(x)),
    (lambda x: 3.0 * np.exp(2.0 * x), lambda x: 12.0 * np.exp(2.0 * x)),
    (lambda x: 3.0 * np.log(x), lambda x: -3.0 / x ** 2),
    (lambda x: 3.0 * np.tanh(x), lambda x: -6.0 * np.tanh(x) / np.cosh(x) ** 2),
    (lambda x: 3.0 * np.abs(x), lambda x: 0.0),
    (lambda x: x ** 3.5, lambda x: 3.5 * 2.5 * x ** 1.5),
    (lambda x: np.sqrt(x), lambda x: -0.25 * x ** -1.5),
]


@pytest.mark.parametrize("idx", range(len(SECOND)))
def test_second_derivative_unary(idx):
    f, d2 = SECOND[idx]
    for x in (0.6, 1.7):
        assert ds.grad(ds.grad(f))(x) == pytest.approx(d2(x), rel=1e-8, abs=1e-12)


def test_second_derivative_mixed_partials():
    f = lambda x, y: np.sin(np.sin(x) + np.sin(y))     # noqa: E731
    x, y = 0.3, -0.9
    dfdy = ds.grad(f, wrt=1)
    # d/dx (df/dy) = -sin(sin x + sin y) cos y cos x
    expected = -np.sin(np.sin(x) + np.sin(y)) * np.cos(y) * np.cos(x)
    assert ds.grad(dfdy, wrt=0)(x, y) == pytest.approx(expected, rel=1e-9)


def test_third_derivative():
    f = lambda x: x ** 4            # noqa: E731
    assert ds.grad(ds.grad(ds.grad(f)))(1.5) == pytest.approx(24 * 1.5, rel=1e-10)


# ---------------------------------------------------------------------------
# value_and_grad and wrt forms on scalar functions
# ---------------------------------------------------------------------------


def three_pow(x):
    return 3.0 * x ** 3.2


def test_value_and_grad_scalar():
    value, g = ds.value_and_grad(three_pow)(1.7)
    assert value == three_pow(1.7)
    assert g == ds.grad(three_pow)(1.7)
    assert g == pytest.approx(3.0 * 3.2 * 1.7 ** 2.2, rel=1e-12)


def many_args(a, b, c, d, e, f=1.1, g=9.0):
    return a + np.sin(b) + np.cosh(c) + np.cos(d) + np.tan(e) + f * g


def test_wrt_out_of_order_and_keywords():
    args = (0.5, -0.3, 0.2, -1.1, 0.7)
    gd, gb = ds.grad(many_args, wrt=(3, 1))(*args, f=0.6, g=-0.1)
    assert gd == pytest.approx(-np.sin(-1.1)) and gb == pytest.approx(np.cos(-0.3))
    assert ds.grad(many_args, wrt="f")(*args, 0.6, -0.1) == pytest.approx(-0.1)
    assert ds.grad(many_args, wrt="g")(*args, f=0.6, g=-0.1) == pytest.approx(0.6)
