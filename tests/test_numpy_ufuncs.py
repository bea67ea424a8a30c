"""Elementwise NumPy functions: every rule against central finite differences (float64),
hypothesis over shapes (broadcasting and size-1 axes included), values away from kinks,
plus the documented conventions at kinks and ties."""
import math

import numpy as np
import pytest
from hypothesis import assume, given

from numpy_support import (FEW, HYP, arrays, broadcast_pair, check_grad, ds, nonzero_arrays,
                           numeric_grad, out, positive_arrays, random_array, st)

# --------------------------------------------------------------------------- unary
def u_square(x): return out(np.square(x))
def u_sqrt(x): return out(np.sqrt(x))
def u_cbrt(x): return out(np.cbrt(x))
def u_reciprocal(x): return out(np.reciprocal(x))
def u_exp(x): return out(np.exp(x))
def u_exp2(x): return out(np.exp2(x))
def u_expm1(x): return out(np.expm1(x))
def u_log(x): return out(np.log(x))
def u_log2(x): return out(np.log2(x))
def u_log10(x): return out(np.log10(x))
def u_log1p(x): return out(np.log1p(x))
def u_sin(x): return out(np.sin(x))
def u_cos(x): return out(np.cos(x))
def u_tan(x): return out(np.tan(x))
def u_arcsin(x): return out(np.arcsin(x))
def u_arccos(x): return out(np.arccos(x))
def u_arctan(x): return out(np.arctan(x))
def u_sinh(x): return out(np.sinh(x))
def u_cosh(x): return out(np.cosh(x))
def u_tanh(x): return out(np.tanh(x))
def u_arcsinh(x): return out(np.arcsinh(x))
def u_arccosh(x): return out(np.arccosh(x))
def u_arctanh(x): return out(np.arctanh(x))
def u_abs(x): return out(np.abs(x))
def u_absolute(x): return out(np.absolute(x))
def u_fabs(x): return out(np.fabs(x))
def u_builtin_abs(x): return out(abs(x))
def u_negative(x): return out(np.negative(x))
def u_positive(x): return out(np.positive(x))
def u_sinc(x): return out(np.sinc(x))
def u_deg2rad(x): return out(np.deg2rad(x))
def u_rad2deg(x): return out(np.rad2deg(x))
def u_radians(x): return out(np.radians(x))
def u_degrees(x): return out(np.degrees(x))
def u_clip(x): return out(np.clip(x, -0.5, 0.7))
def u_clip_method(x): return out(x.clip(-0.5, 0.7))
def u_clip_low(x): return out(np.clip(x, -0.5, None))
def u_clip_kw(x): return out(np.clip(x, a_min=None, a_max=0.3))
def u_power_const(x): return out(np.power(x, 3.0))
def u_float_power(x): return out(np.float_power(x, 2.5))
def u_op_pow(x): return out(x ** 1.5)
def u_conj(x): return out(np.conj(x) + x.conj() + x.real)


SMOOTH = st.one_of(arrays(lo=-2.0, hi=2.0))
POSITIVE = positive_arrays(lo=0.3, hi=3.0)
UNIT = arrays(lo=-0.9, hi=0.9)
ABOVE_ONE = arrays(lo=1.2, hi=3.0)
AWAY_FROM_0 = nonzero_arrays(lo=0.1, hi=2.0)

UNARY = [
    (u_square, SMOOTH), (u_sqrt, POSITIVE), (u_cbrt, AWAY_FROM_0), (u_reciprocal, AWAY_FROM_0),
    (u_exp, SMOOTH), (u_exp2, SMOOTH), (u_expm1, SMOOTH), (u_log, POSITIVE),
    (u_log2, POSITIVE), (u_log10, POSITIVE), (u_log1p, POSITIVE), (u_sin, SMOOTH),
    (u_cos, SMOOTH), (u_tan, UNIT), (u_arcsin, UNIT), (u_arccos, UNIT), (u_arctan, SMOOTH),
    (u_sinh, SMOOTH), (u_cosh, SMOOTH), (u_tanh, SMOOTH), (u_arcsinh, SMOOTH),
    (u_arccosh, ABOVE_ONE), (u_arctanh, UNIT), (u_abs, AWAY_FROM_0),
    (u_absolute, AWAY_FROM_0), (u_fabs, AWAY_FROM_0), (u_builtin_abs, AWAY_FROM_0),
    (u_negative, SMOOTH), (u_positive, SMOOTH), (u_sinc, AWAY_FROM_0), (u_deg2rad, SMOOTH),
    (u_rad2deg, SMOOTH), (u_radians, SMOOTH), (u_degrees, SMOOTH), (u_power_const, SMOOTH),
    (u_float_power, POSITIVE), (u_op_pow, POSITIVE), (u_conj, SMOOTH),
]


@pytest.mark.parametrize("f, values", UNARY, ids=[f.__name__ for f, _ in UNARY])
@FEW
@given(data=st.data())
def test_unary_matches_finite_differences(f, values, data):
    x = data.draw(values, label="x")
    check_grad(f, (x,), rtol=1e-5, atol=1e-6)


CLIPS = [u_clip, u_clip_method, u_clip_low, u_clip_kw]


@pytest.mark.parametrize("f", CLIPS, ids=[f.__name__ for f in CLIPS])
@FEW
@given(x=arrays(lo=-2.0, hi=2.0))
def test_clip_away_from_the_bounds(f, x):
    assume(np.min(np.abs(x + 0.5)) > 1e-3 and np.min(np.abs(x - 0.7)) > 1e-3
           and np.min(np.abs(x - 0.3)) > 1e-3)
    check_grad(f, (x,))


# ----------------------------------------------------------------- zero derivative
def z_sign(x): return out(np.sign(x) * x)
def z_floor(x): return out(np.floor(x) + x)
def z_ceil(x): return out(np.ceil(x) + x)
def z_round(x): return out(np.round(x) + x)
def z_around(x): return out(np.around(x, 1) + x)
def z_rint(x): return out(np.rint(x) + x)
def z_trunc(x): return out(np.trunc(x) + x)
def z_fix(x): return out(np.fix(x) + x)
def z_round_method(x): return out(x.round() + x)
def z_heaviside(x): return out(np.heaviside(x, 0.5) + x)


ZERO = [z_sign, z_floor, z_ceil, z_round, z_around, z_rint, z_trunc, z_fix, z_round_method,
        z_heaviside]


@pytest.mark.parametrize("f", ZERO, ids=[f.__name__ for f in ZERO])
@FEW
@given(x=nonzero_arrays(lo=0.1, hi=3.0))
def test_piecewise_constant_functions_have_zero_derivative(f, x):
    frac = np.abs(x * 20 - np.round(x * 20))
    assume(np.min(frac) > 2e-2)        # away from the jumps of floor/round (x and 10x at
    #                                    integers and half-integers)
    g = check_grad(f, (x,))
    step = {z_sign: np.sign, z_floor: np.floor, z_ceil: np.ceil, z_round: np.round,
            z_rint: np.rint, z_trunc: np.trunc, z_fix: np.fix, z_round_method: np.round,
            z_around: lambda v: np.around(v, 1), z_heaviside: lambda v: np.heaviside(v, 0.5)}[f]
    if f is z_sign:                      # d(sign(x) x)/dx = sign(x) away from 0
        y = np.sign(x) * x
        np.testing.assert_allclose(g, (2 * y + 1) * np.sign(x), rtol=1e-12)
    else:                                # only the "+ x" term contributes
        y = step(x) + x
        np.testing.assert_allclose(g, 2 * y + 1, rtol=1e-12)


# --------------------------------------------------------------------------- binary
def b_arctan2(a, b): return out(np.arctan2(a, b))
def b_hypot(a, b): return out(np.hypot(a, b))
def b_logaddexp(a, b): return out(np.logaddexp(a, b))
def b_logaddexp2(a, b): return out(np.logaddexp2(a, b))
def b_maximum(a, b): return out(np.maximum(a, b))
def b_minimum(a, b): return out(np.minimum(a, b))
def b_fmax(a, b): return out(np.fmax(a, b))
def b_fmin(a, b): return out(np.fmin(a, b))
def b_add(a, b): return out(np.add(a, b))
def b_subtract(a, b): return out(np.subtract(a, b))
def b_multiply(a, b): return out(np.multiply(a, b))
def b_divide(a, b): return out(np.divide(a, b))
def b_true_divide(a, b): return out(np.true_divide(a, b))
def b_power(a, b): return out(np.power(a, b))
def b_float_power(a, b): return out(np.float_power(a, b))
def b_operators(a, b): return out(a + b - a * b / (b * b + 1.0) + (-a) ** 2 + a % 0.7)
def b_mod(a, b): return out(np.mod(a, b) + np.remainder(a, b))
def b_fmod(a, b): return out(np.fmod(a, b))
def b_copysign(a, b): return out(np.copysign(a, b))
def b_where(a, b): return out(np.where(a > b, a * 2.0, b))
def b_clip_arrays(a, b): return out(np.clip(a, b - 0.5, b + 0.5))
def b_heaviside_x2(a, b): return out(np.heaviside(a, b))


POS_PAIR = broadcast_pair(lo=0.3, hi=2.0)
NZ_PAIR = broadcast_pair(lo=0.3, hi=2.0)
BINARY = [
    (b_arctan2, broadcast_pair(lo=0.2, hi=2.0)), (b_hypot, broadcast_pair(lo=0.2, hi=2.0)),
    (b_logaddexp, broadcast_pair()), (b_logaddexp2, broadcast_pair()),
    (b_maximum, broadcast_pair()), (b_minimum, broadcast_pair()), (b_fmax, broadcast_pair()),
    (b_fmin, broadcast_pair()), (b_add, broadcast_pair()), (b_subtract, broadcast_pair()),
    (b_multiply, broadcast_pair()), (b_divide, POS_PAIR), (b_true_divide, POS_PAIR),
    (b_power, POS_PAIR), (b_float_power, POS_PAIR), (b_operators, POS_PAIR),
    (b_mod, POS_PAIR), (b_fmod, POS_PAIR), (b_copysign, broadcast_pair(lo=0.2, hi=2.0)),
    (b_where, broadcast_pair()), (b_clip_arrays, broadcast_pair()),
]


@pytest.mark.parametrize("f, pairs", BINARY, ids=[f.__name__ for f, _ in BINARY])
@HYP
@given(data=st.data())
def test_binary_with_broadcasting_matches_finite_differences(f, pairs, data):
    a, b = data.draw(pairs, label="a, b")
    if f in (b_maximum, b_minimum, b_fmax, b_fmin, b_where):
        assume(np.min(np.abs(np.subtract(a, b))) > 1e-3)       # away from ties
    if f is b_clip_arrays:
        d = np.subtract(a, b)
        assume(np.min(np.abs(np.abs(d) - 0.5)) > 1e-3)
    if f in (b_mod, b_fmod, b_operators):
        for m in ((b,) if f is not b_operators else (0.7,)):
            q = np.divide(a, m)
            assume(np.min(np.abs(q - np.round(q))) > 1e-3)      # away from the jumps
    if f is b_copysign:
        a = np.where(np.random.default_rng(0).random(np.shape(a)) < 0.5, a, -a)
    check_grad(f, (a, b), wrt=(0, 1))


def test_heaviside_second_argument_gets_adjoint_where_x_is_zero():
    a = np.array([-1.0, 0.0, 2.0, 0.0])
    b = np.array([0.3, 0.6, 0.9, 0.2])
    ga, gb = ds.grad(b_heaviside_x2, wrt=(0, 1))(a, b)
    np.testing.assert_array_equal(ga, np.zeros(4))
    y = np.heaviside(a, b)
    np.testing.assert_allclose(gb, np.where(a == 0, 2 * y + 1, 0.0))


# ------------------------------------------------------------- kinks and ties
def relu_sum(x): return np.sum(np.maximum(x, 0.0))
def relu_left(x): return np.sum(np.maximum(0.0, x))
def min_sum(x): return np.sum(np.minimum(x, 1.0))
def max_same(x): return np.sum(np.maximum(x, x))
def fmax_nan(x, y): return np.sum(np.fmax(x, y))
def abs_sum(x): return np.sum(np.abs(x))
def clip_sum(x): return np.sum(np.clip(x, 0.0, 1.0))
def sinc_sum(x): return np.sum(np.sinc(x))
def hypot_sum(x, y): return np.sum(np.hypot(x, y))


def test_maximum_minimum_ties_split_the_adjoint():
    x = np.array([-1.0, 0.0, 2.0])
    np.testing.assert_array_equal(ds.grad(relu_sum)(x), [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(ds.grad(relu_left)(x), [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(ds.grad(min_sum)(np.array([0.0, 1.0, 2.0])), [1.0, 0.5, 0.0])
    np.testing.assert_array_equal(ds.grad(max_same)(x), [1.0, 1.0, 1.0])


def test_tie_convention_agrees_with_central_differences():
    x = np.array([0.0, 0.0])
    check_grad(relu_sum, (x,))


def test_fmax_nan_loses():
    x = np.array([1.0, np.nan, 3.0])
    y = np.array([np.nan, 2.0, 1.0])
    gx, gy = ds.grad(fmax_nan, wrt=(0, 1))(x, y)
    np.testing.assert_array_equal(gx, [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(gy, [0.0, 1.0, 0.0])


def test_abs_kink_clip_bounds_sinc_and_hypot_at_zero():
    np.testing.assert_array_equal(ds.grad(abs_sum)(np.array([-2.0, 0.0, 3.0])), [-1, 0, 1])
    np.testing.assert_array_equal(ds.grad(clip_sum)(np.array([-1.0, 0.0, 0.5, 1.0, 2.0])),
                                  [0, 1, 1, 1, 0])
    np.testing.assert_array_equal(ds.grad(sinc_sum)(np.array([0.0])), [0.0])
    gx, gy = ds.grad(hypot_sum, wrt=(0, 1))(np.array([0.0, 3.0]), np.array([0.0, 4.0]))
    np.testing.assert_allclose(gx, [0.0, 0.6])
    np.testing.assert_allclose(gy, [0.0, 0.8])


# -------------------------------------------------------------------- scalars and floats
def scalar_mix(x, y):
    return np.exp(x) * np.arctan2(y, x) + np.logaddexp(x, y) + np.hypot(x, y) ** 2


def test_python_float_arguments_get_float_gradients():
    gx, gy = check_grad(scalar_mix, (0.7, -1.3), wrt=(0, 1))
    assert isinstance(gx, float) and isinstance(gy, float)


def test_closed_forms():
    x = np.array([0.5, 1.5])
    np.testing.assert_allclose(ds.grad(lambda_exp2)(x), np.exp2(x) * math.log(2), rtol=1e-14)
    np.testing.assert_allclose(ds.grad(lambda_log10)(x), 1 / (x * math.log(10)), rtol=1e-14)
    np.testing.assert_allclose(ds.grad(lambda_arccosh)(x + 1), 1 / np.sqrt((x + 1) ** 2 - 1),
                               rtol=1e-14)


def lambda_exp2(x): return np.sum(np.exp2(x))
def lambda_log10(x): return np.sum(np.log10(x))
def lambda_arccosh(x): return np.sum(np.arccosh(x))


# ------------------------------------------------------------------------- extras
def e_nan_to_num(x): return out(np.nan_to_num(x * 2.0))
def e_ldexp(x): return out(np.ldexp(x, np.array([1, -2, 3])))
def e_real_if_close(x): return out(np.real_if_close(x))
def e_angle_imag(x): return out(np.angle(x) + np.imag(x) + x)


@pytest.mark.parametrize("f", [e_nan_to_num, e_ldexp, e_real_if_close, e_angle_imag],
                         ids=lambda f: f.__name__)
def test_more_elementwise_functions(f):
    check_grad(f, (np.array([0.7, -1.3, 0.4]),))


def nan_to_num_sum(x): return np.sum(np.nan_to_num(x) * 3.0)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_nan_to_num_replaced_entries_get_no_adjoint():
    g = ds.grad(nan_to_num_sum)(np.array([1.0, np.nan, np.inf, -2.0]))
    np.testing.assert_array_equal(g, [3.0, 0.0, 0.0, 3.0])


# --------------------------------------------- a bias broadcast over a big batch: sum_leading
def bias_loss(x, b):
    return out(x * b + b)


@pytest.mark.parametrize("batch, width", [((1500,), 4), ((9, 7, 40), 3), ((300,), 2)])
def test_bias_over_a_big_batch_matches_finite_differences(batch, width):
    x = random_array(batch + (width,), 3)
    check_grad(bias_loss, (x, random_array((width,), 4)), wrt=1)


@HYP
@given(data=st.data())
def test_sum_leading_is_the_sum_over_leading_axes(data):
    from diffsrc.runtime import sum_leading
    lead = data.draw(st.sampled_from([(0,), (5,), (700,), (3, 700), (2, 3, 500), (4097,)]))
    tail = data.draw(st.sampled_from([(), (1,), (3,), (2, 4), (300,), (0,)]))
    g = np.random.default_rng(data.draw(st.integers(0, 9))).standard_normal(lead + tail)
    expected = g.sum(axis=tuple(range(len(lead))))
    np.testing.assert_allclose(sum_leading(g, len(lead)), expected, rtol=1e-12, atol=1e-9)
    assert sum_leading(g, len(lead)).shape == expected.shape


def through_sum_leading(x):
    from diffsrc.runtime import sum_leading
    return out(sum_leading(x * x, 1) * 0.01 * x[0])


def test_sum_leading_has_first_and_second_order_rules():
    x = random_array((1500, 3), 6, -0.5, 0.5)
    check_grad(through_sum_leading, (x,))
    df = ds.grad(through_sum_leading)
    w = random_array((5, 3), 7)

    def hvp(x):
        return np.sum(df(x) * w)
    small = random_array((5, 3), 8)
    np.testing.assert_allclose(ds.grad(hvp)(small), numeric_grad(hvp, (small,), 0, eps=1e-5),
                               rtol=1e-4, atol=1e-5)
    v = random_array((1500, 3), 9)
    y, y_dot = ds.jvp(through_sum_leading, (x,), (v,))
    np.testing.assert_allclose(y_dot, np.sum(ds.grad(through_sum_leading)(x) * v), rtol=1e-9)
