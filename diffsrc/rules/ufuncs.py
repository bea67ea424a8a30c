"""Elementwise NumPy functions (ufuncs): their derivatives, one short rule each.

Binary rules undo broadcasting with `unbroadcast`, the one shared place that knows
about it. Constants are Python floats (never NumPy float64 scalars) so float32
inputs keep float32 adjoints. The operator forms (+ - * / // % **) and their ufunc
names add/subtract/multiply/divide/... live in rules/arithmetic.py.

Subgradient conventions (kinks and ties):
  abs/absolute/fabs   sign(x): 0 at x == 0
  maximum/minimum     ties (x == y) split the adjoint 1/2 : 1/2, as central
  fmax/fmin           differences, JAX, PyTorch and autograd do; NaN loses to a number
  clip                derivative 1 on the closed interval [a_min, a_max] (PyTorch's)
  sign, floor, ceil, round, around, rint, trunc, fix
                      zero derivative everywhere (registered non-differentiable)
  angle, imag         zero derivative on real inputs (constants 0 or pi, and 0)
  nan_to_num          1 where x is finite, 0 where NaN/inf were replaced
  heaviside(x1, x2)   zero in x1 (a step); x2, the value at x1 == 0, gets the
                      adjoint of those entries
  sinc                derivative 0 at x == 0 (the exact value)
"""
import math

import numpy as np

from .lowering_hooks import positional
from .registry import (Method, adjoint_rule, diagonal, is_zero, linear, nondifferentiable,
                       register, tangent_rule)
from .. import runtime
from ..runtime import clip_bound_adjoint, clip_mask, unbroadcast, winner_share

FAMILY = "elementwise"

DIFFERENTIABLE = ("square sqrt cbrt reciprocal exp exp2 expm1 log log2 log10 log1p logaddexp "
                  "logaddexp2 sin cos tan arcsin arccos arctan arctan2 hypot sinh cosh tanh "
                  "arcsinh arccosh arctanh abs absolute fabs maximum minimum fmax fmin clip "
                  "where sinc deg2rad rad2deg degrees radians float_power copysign fmod "
                  "conj conjugate real heaviside nan_to_num ldexp real_if_close").split()
ZERO_DERIVATIVE = ("sign floor ceil round around rint trunc fix signbit angle imag").split()
for _name in DIFFERENTIABLE:
    register(getattr(np, _name), emit=f"np.{_name}").meta["family"] = FAMILY
for _name in ZERO_DERIVATIVE:
    register(getattr(np, _name), emit=f"np.{_name}", nondiff=True).meta["family"] = FAMILY
for _name in ("clip", "conj", "conjugate"):
    register(Method(_name)).meta["family"] = FAMILY
register(Method("real", attribute=True)).meta["family"] = FAMILY
register(Method("round"), nondiff=True).meta["family"] = FAMILY
register(runtime.sigmoid).meta["family"] = FAMILY
register(runtime.silu).meta["family"] = FAMILY
register(runtime.silu_by_reciprocal).meta["family"] = FAMILY
nondifferentiable(clip_mask)
register(clip_bound_adjoint)
register(np.clip).meta["lower"] = positional(
    np.clip, {"a": None, "a_min": None, "a_max": None}, aliases={"min": "a_min", "max": "a_max"})
register(Method("clip")).meta["lower"] = positional(Method("clip"),
                                                    {"self": None, "min": None, "max": None})


# ------------------------------------------------------------------- powers and roots
@adjoint_rule(np.square)
def square_adjoint(y_bar, y, x):
    return (2 * x * y_bar,)


@adjoint_rule(np.sqrt)
def sqrt_adjoint(y_bar, y, x):
    """Infinite at x == 0, as the derivative is."""
    return (y_bar / (2 * y),)


@adjoint_rule(np.cbrt)
def cbrt_adjoint(y_bar, y, x):
    return (y_bar / (3 * y * y),)


@adjoint_rule(np.reciprocal)
def reciprocal_adjoint(y_bar, y, x):
    return (-y_bar * y * y,)


@adjoint_rule(np.float_power)
def float_power_adjoint(z_bar, z, x, y):
    """Like power; the x > 0 guard keeps log finite where the y-derivative is unused."""
    return (unbroadcast(z_bar * y * np.float_power(x, y - 1), x),
            unbroadcast(z_bar * z * np.log(np.where(x > 0, x, 1)), y))


# ------------------------------------------------------------------ exponentials, logs
@adjoint_rule(np.exp)
def exp_adjoint(y_bar, y, x):
    return (y_bar * y,)


@adjoint_rule(np.exp2)
def exp2_adjoint(y_bar, y, x):
    return (y_bar * y * math.log(2.0),)


@adjoint_rule(np.expm1)
def expm1_adjoint(y_bar, y, x):
    return (y_bar * (y + 1),)


@adjoint_rule(np.log)
def log_adjoint(y_bar, y, x):
    return (y_bar / x,)


@adjoint_rule(np.log2)
def log2_adjoint(y_bar, y, x):
    return (y_bar / (x * math.log(2.0)),)


@adjoint_rule(np.log10)
def log10_adjoint(y_bar, y, x):
    return (y_bar / (x * math.log(10.0)),)


@adjoint_rule(np.log1p)
def log1p_adjoint(y_bar, y, x):
    return (y_bar / (1 + x),)


@adjoint_rule(np.logaddexp)
def logaddexp_adjoint(z_bar, z, x, y):
    """Softmax weights exp(x - z), exp(y - z): stable for large inputs."""
    return unbroadcast(z_bar * np.exp(x - z), x), unbroadcast(z_bar * np.exp(y - z), y)


@adjoint_rule(np.logaddexp2)
def logaddexp2_adjoint(z_bar, z, x, y):
    return unbroadcast(z_bar * np.exp2(x - z), x), unbroadcast(z_bar * np.exp2(y - z), y)


# ------------------------------------------------------------------------ trigonometry
@adjoint_rule(np.sin)
def sin_adjoint(y_bar, y, x):
    return (y_bar * np.cos(x),)


@adjoint_rule(np.cos)
def cos_adjoint(y_bar, y, x):
    return (-y_bar * np.sin(x),)


@adjoint_rule(np.tan)
def tan_adjoint(y_bar, y, x):
    return (y_bar * (1 + y * y),)


@adjoint_rule(np.arcsin)
def arcsin_adjoint(y_bar, y, x):
    return (y_bar / np.sqrt(1 - x * x),)


@adjoint_rule(np.arccos)
def arccos_adjoint(y_bar, y, x):
    return (-y_bar / np.sqrt(1 - x * x),)


@adjoint_rule(np.arctan)
def arctan_adjoint(y_bar, y, x):
    return (y_bar / (1 + x * x),)


@adjoint_rule(np.arctan2)
def arctan2_adjoint(z_bar, z, y, x):
    """d atan2(y, x) = (x dy - y dx) / (x^2 + y^2); undefined at the origin."""
    r2 = x * x + y * y
    return unbroadcast(z_bar * x / r2, y), unbroadcast(-z_bar * y / r2, x)


@adjoint_rule(np.hypot)
def hypot_adjoint(z_bar, z, x, y):
    """x / hypot and y / hypot; at the origin (a kink) both are taken as 0."""
    safe = z + (z == 0)
    return unbroadcast(z_bar * x / safe, x), unbroadcast(z_bar * y / safe, y)


@adjoint_rule(np.deg2rad, np.radians)
def deg2rad_adjoint(y_bar, y, x):
    return (y_bar * (math.pi / 180.0),)


@adjoint_rule(np.rad2deg, np.degrees)
def rad2deg_adjoint(y_bar, y, x):
    return (y_bar * (180.0 / math.pi),)


@adjoint_rule(np.sinc)
def sinc_adjoint(y_bar, y, x):
    """(cos(pi x) - sinc(x)) / x, and exactly 0 at x == 0."""
    nonzero = x != 0
    safe = np.where(nonzero, x, 1)
    return (y_bar * np.where(nonzero, (np.cos(math.pi * x) - y) / safe, 0),)


# -------------------------------------------------------------------------- hyperbolic
@adjoint_rule(np.tanh)
def tanh_adjoint(y_bar, y, x):
    return (y_bar * (1 - y * y),)


@adjoint_rule(runtime.sigmoid)
def sigmoid_adjoint(y_bar, y, x):
    """The logistic function (passes/composites.py): from the result alone."""
    return (y_bar * (y * (1 - y)),)


@adjoint_rule(runtime.silu, runtime.silu_by_reciprocal)
def silu_adjoint(y_bar, y, x, t):
    """SiLU x / t (or x * (1 / t)), t = 1 + exp(-x) (passes/composites.py): its derivative (x - y + 1) / t
    (x - y first: exact for x >= 0). t, a function of x, gets none of its own: x's is the
    whole derivative."""
    return (y_bar * (x - y + 1) / t, None)


@adjoint_rule(np.sinh)
def sinh_adjoint(y_bar, y, x):
    return (y_bar * np.cosh(x),)


@adjoint_rule(np.cosh)
def cosh_adjoint(y_bar, y, x):
    return (y_bar * np.sinh(x),)


@adjoint_rule(np.arcsinh)
def arcsinh_adjoint(y_bar, y, x):
    return (y_bar / np.sqrt(x * x + 1),)


@adjoint_rule(np.arccosh)
def arccosh_adjoint(y_bar, y, x):
    return (y_bar / np.sqrt(x * x - 1),)


@adjoint_rule(np.arctanh)
def arctanh_adjoint(y_bar, y, x):
    return (y_bar / (1 - x * x),)


# ---------------------------------------------------------------- kinks, ties and signs
@adjoint_rule(np.abs, np.absolute, np.fabs, abs)
def abs_adjoint(y_bar, y, x):
    """sign(x): the subgradient 0 is taken at the kink x == 0."""
    return (y_bar * np.sign(x),)


@adjoint_rule(np.maximum)
def maximum_adjoint(z_bar, z, x, y):
    """The larger argument gets the adjoint; ties (x == y) give each half of it.

    Half-and-half is what central differences measure at a tie and what JAX,
    PyTorch and autograd do; it makes the stable softplus
    `maximum(x, 0) + log1p(exp(-abs(x)))` exact at 0. relu = maximum(x, 0) has
    derivative 1/2 at x == 0.
    """
    return unbroadcast(winner_share(z_bar, x, y), x), unbroadcast(winner_share(z_bar, y, x), y)


@adjoint_rule(np.minimum)
def minimum_adjoint(z_bar, z, x, y):
    """The smaller argument gets the adjoint; ties give each half of it (see maximum)."""
    return unbroadcast(winner_share(z_bar, y, x), x), unbroadcast(winner_share(z_bar, x, y), y)


@adjoint_rule(np.fmax)
def fmax_adjoint(z_bar, z, x, y):
    """As maximum, except that a NaN argument loses: the number gets the whole adjoint."""
    tie = x == y
    half = 0.5 * z_bar
    x_wins = (x > y) | np.isnan(y)
    y_wins = (y > x) | (np.isnan(x) & ~np.isnan(y))
    return (unbroadcast(np.where(tie, half, z_bar * x_wins), x),
            unbroadcast(np.where(tie, half, z_bar * y_wins), y))


@adjoint_rule(np.fmin)
def fmin_adjoint(z_bar, z, x, y):
    """As minimum, except that a NaN argument loses: the number gets the whole adjoint."""
    tie = x == y
    half = 0.5 * z_bar
    x_wins = (x < y) | np.isnan(y)
    y_wins = (y < x) | (np.isnan(x) & ~np.isnan(y))
    return (unbroadcast(np.where(tie, half, z_bar * x_wins), x),
            unbroadcast(np.where(tie, half, z_bar * y_wins), y))


@adjoint_rule(np.clip, Method("clip"))
def clip_adjoint(y_bar, y, x, a_min=None, a_max=None, *args, **kwargs):
    """1 on the closed interval [a_min, a_max] (boundaries included), 0 outside.

    Array bounds are differentiable too: a_min gets the adjoint where x < a_min,
    a_max where x > a_max (where both apply, NumPy returns a_max). NumPy 2's
    `min=`/`max=` keywords are moved to these positions while lowering.
    """
    return (unbroadcast(y_bar * clip_mask(x, a_min, a_max), x),
            clip_bound_adjoint(y_bar, x, a_min, a_max, 0),
            clip_bound_adjoint(y_bar, x, a_min, a_max, 1))


@adjoint_rule(np.where)
def where_adjoint(z_bar, z, condition, x, y):
    return (None, unbroadcast(np.where(condition, z_bar, 0), x),
            unbroadcast(np.where(condition, 0, z_bar), y))


@adjoint_rule(np.copysign)
def copysign_adjoint(z_bar, z, x, y):
    """+-1 on x (the sign it ends up with); the sign source y gets none."""
    same = np.signbit(x) == np.signbit(y)
    return unbroadcast(np.where(same, z_bar, -z_bar), x), None


@adjoint_rule(np.fmod)
def fmod_adjoint(z_bar, z, x, y):
    """fmod(x, y) = x - trunc(x / y) y, piecewise: 1 for x, -trunc(x / y) for y."""
    return unbroadcast(z_bar, x), unbroadcast(-z_bar * np.trunc(x / y), y)


@adjoint_rule(np.conj, np.conjugate, np.real, np.real_if_close, Method("conj"),
              Method("conjugate"),
              Method("real", attribute=True))
def conj_adjoint(y_bar, y, x):
    """The identity on real inputs (diffsrc differentiates real functions)."""
    return (y_bar,)


@adjoint_rule(np.heaviside)
def heaviside_adjoint(z_bar, z, x1, x2):
    """A step in x1 (zero derivative, the jump at 0 ignored); x2 is the value at x1 == 0."""
    return None, unbroadcast(z_bar * (x1 == 0), x2)


@adjoint_rule(np.nan_to_num)
def nan_to_num_adjoint(y_bar, y, x, *args, **kwargs):
    """1 where x is finite; replaced NaN/inf entries (constants) get none."""
    return (y_bar * np.isfinite(x),)


@adjoint_rule(np.ldexp)
def ldexp_adjoint(z_bar, z, x1, x2):
    """x1 * 2**x2 with integer x2 (no adjoint): exact scaling of the adjoint."""
    return unbroadcast(np.ldexp(z_bar, x2), x1), None


# ------------------------------------------------------------------------ tangent rules
# One-argument functions: the adjoint applied to the tangent (registry.DIAGONAL).
diagonal(np.square, np.sqrt, np.cbrt, np.reciprocal, np.exp, np.exp2, np.expm1, np.log,
         np.log2, np.log10, np.log1p, np.sin, np.cos, np.tan, np.arcsin, np.arccos, np.arctan,
         np.tanh, runtime.sigmoid, np.sinh, np.cosh, np.arcsinh, np.arccosh, np.arctanh, np.abs, np.absolute,
         np.fabs, abs, np.deg2rad, np.radians, np.rad2deg, np.degrees, np.sinc, np.conj,
         np.conjugate, np.real, np.real_if_close, Method("conj"), Method("conjugate"),
         Method("real", attribute=True), np.nan_to_num)
linear(np.ldexp)
linear(np.where, positions=(1, 2))


@tangent_rule(runtime.silu, runtime.silu_by_reciprocal)
def silu_tangent(dots, y, x, t):
    """As the adjoint: t's tangent is already in x's."""
    return dots[0] * (x - y + 1) / t


@tangent_rule(np.float_power)
def float_power_tangent(dots, z, x, y):
    dx, dy = dots
    return dx * (y * np.float_power(x, y - 1)) + dy * (z * np.log(np.where(x > 0, x, 1)))


@tangent_rule(np.logaddexp)
def logaddexp_tangent(dots, z, x, y):
    dx, dy = dots
    return dx * np.exp(x - z) + dy * np.exp(y - z)


@tangent_rule(np.logaddexp2)
def logaddexp2_tangent(dots, z, x, y):
    dx, dy = dots
    return dx * np.exp2(x - z) + dy * np.exp2(y - z)


@tangent_rule(np.arctan2)
def arctan2_tangent(dots, z, y, x):
    dy, dx = dots
    return (dy * x - dx * y) / (x * x + y * y)


@tangent_rule(np.hypot)
def hypot_tangent(dots, z, x, y):
    """0 at the origin, as the adjoint."""
    dx, dy = dots
    return (dx * x + dy * y) / (z + (z == 0))


@tangent_rule(np.maximum)
def maximum_tangent(dots, z, x, y):
    """Ties take the mean of the two tangents (the adjoint's half-and-half)."""
    dx, dy = dots
    return dx * (x > y) + dy * (x < y) + (dx + dy) * (0.5 * (x == y))


@tangent_rule(np.minimum)
def minimum_tangent(dots, z, x, y):
    """Ties take the mean of the two tangents (the adjoint's half-and-half)."""
    dx, dy = dots
    return dx * (x < y) + dy * (x > y) + (dx + dy) * (0.5 * (x == y))


@tangent_rule(np.fmax)
def fmax_tangent(dots, z, x, y):
    """As maximum; a NaN argument loses."""
    dx, dy = dots
    return (dx * ((x > y) | np.isnan(y)) + dy * ((y > x) | (np.isnan(x) & ~np.isnan(y)))
            + (dx + dy) * (0.5 * (x == y)))


@tangent_rule(np.fmin)
def fmin_tangent(dots, z, x, y):
    """As minimum; a NaN argument loses."""
    dx, dy = dots
    return (dx * ((x < y) | np.isnan(y)) + dy * ((y < x) | (np.isnan(x) & ~np.isnan(y)))
            + (dx + dy) * (0.5 * (x == y)))


@tangent_rule(np.clip, Method("clip"))
def clip_tangent(dots, y, x, a_min=None, a_max=None, *args, **kwargs):
    """1 on the closed interval; outside it, the tangent of the bound that wins."""
    dx, dlow, dhigh = (tuple(dots) + (None, None))[:3]
    inside = clip_mask(x, a_min, a_max)
    total = dx * inside
    if not is_zero(dlow) and dlow is not None:
        total = total + dlow * ((x < a_min) & ~(x > a_max))
    if not is_zero(dhigh) and dhigh is not None:
        total = total + dhigh * (x > a_max)
    return total


@tangent_rule(np.copysign)
def copysign_tangent(dots, z, x, y):
    dx, dy = dots
    return dx * np.where(np.signbit(x) == np.signbit(y), 1.0, -1.0)


@tangent_rule(np.fmod)
def fmod_tangent(dots, z, x, y):
    dx, dy = dots
    return dx * np.ones_like(z) - dy * np.trunc(x / y)


@tangent_rule(np.heaviside)
def heaviside_tangent(dots, z, x1, x2):
    dx1, dx2 = dots
    return dx2 * (x1 == 0)
