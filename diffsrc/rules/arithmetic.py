"""Python operators (+ - * / // % ** @, unary -, comparisons) on numbers and arrays.

The NumPy ufunc names of the same operations share these rules. Broadcasting
is undone by `unbroadcast`, the one place that knows about it.
"""
import operator

import numpy as np

from .registry import (adjoint_rule, is_constant, is_scalar, is_zero, linear,
                       nondifferentiable, register, tangent_rule)
from ..runtime import spread, unbroadcast

for _op in (operator.add, operator.sub, operator.mul, operator.truediv, operator.floordiv,
            operator.mod, operator.pow, operator.neg, operator.pos, operator.matmul, pow):
    register(_op, foldable=True)
nondifferentiable(operator.lt, operator.le, operator.gt, operator.ge, operator.eq, operator.ne,
                  operator.not_, operator.is_, operator.is_not, operator.contains,
                  operator.and_, operator.or_, operator.xor, operator.invert,
                  operator.lshift, operator.rshift, foldable=True)


@adjoint_rule(operator.add, np.add)
def add_adjoint(z_bar, z, x, y):
    return unbroadcast(z_bar, x), unbroadcast(z_bar, y)


@adjoint_rule(operator.sub, np.subtract)
def sub_adjoint(z_bar, z, x, y):
    return unbroadcast(z_bar, x), unbroadcast(-z_bar, y)


@adjoint_rule(operator.mul, np.multiply)
def mul_adjoint(z_bar, z, x, y):
    return unbroadcast(z_bar * y, x), unbroadcast(z_bar * x, y)


@adjoint_rule(operator.truediv, np.divide, np.true_divide)
def truediv_adjoint(z_bar, z, x, y):
    return unbroadcast(z_bar / y, x), unbroadcast(-z_bar * z / y, y)


@adjoint_rule(operator.floordiv, np.floor_divide)
def floordiv_adjoint(z_bar, z, x, y):
    return None, None


@adjoint_rule(operator.mod, np.mod, np.remainder)
def mod_adjoint(z_bar, z, x, y):
    return unbroadcast(z_bar, x), unbroadcast(-z_bar * ((x - z) / y), y)


@adjoint_rule(operator.pow, np.power, pow)
def pow_adjoint(z_bar, z, x, y):
    """Constant exponents 0, 1 and 2 get the simple forms (x ** -1 fails at x == 0)."""
    if is_constant(y) and y == 0:
        dx = None
    elif is_constant(y) and y == 1:
        dx = unbroadcast(z_bar, x)
    elif is_constant(y) and y == 2:
        dx = unbroadcast(2 * x * z_bar, x)
    else:
        dx = unbroadcast(z_bar * y * x ** (y - 1), x)
    return dx, unbroadcast(z_bar * z * np.log(np.where(x > 0, x, 1)), y)


@adjoint_rule(operator.neg, np.negative)
def neg_adjoint(y_bar, y, x):
    return (-y_bar,)


@adjoint_rule(operator.pos, np.positive)
def pos_adjoint(y_bar, y, x):
    return (y_bar,)


# ------------------------------------------------------------------------ tangent rules
# (forward mode; `dots` holds the argument tangents, a zero one vanishing from the maths)
linear(operator.neg, np.negative, operator.pos, np.positive)
linear(operator.mul, np.multiply, operator.matmul, positions=(0, 1), joint=False)


def full_shape(t, z, other):
    """The tangent of one operand alone, given z's shape where the `other` operand may
    have broadcast it (a Python number never does): no copy, a broadcast view at most."""
    if is_scalar(z) or is_scalar(other) or is_zero(t):
        return t
    return spread(t, z)


@tangent_rule(operator.add, np.add)
def add_tangent(dots, z, x, y):
    dx, dy = dots
    if is_zero(dy):
        return full_shape(dx, z, y)
    if is_zero(dx):
        return full_shape(dy, z, x)
    return dx + dy


@tangent_rule(operator.sub, np.subtract)
def sub_tangent(dots, z, x, y):
    dx, dy = dots
    if is_zero(dy):
        return full_shape(dx, z, y)
    if is_zero(dx):
        return -full_shape(dy, z, x)
    return dx - dy


@tangent_rule(operator.truediv, np.divide, np.true_divide)
def truediv_tangent(dots, z, x, y):
    dx, dy = dots
    return dx / y - dy * z / y


@tangent_rule(operator.mod, np.mod, np.remainder)
def mod_tangent(dots, z, x, y):
    dx, dy = dots
    return full_shape(dx, z, y) - dy * ((x - z) / y)


@tangent_rule(operator.pow, np.power, pow)
def pow_tangent(dots, z, x, y):
    """Constant exponents 0, 1 and 2 get the simple forms (as the adjoint does)."""
    dx, dy = dots
    if is_constant(y) and y == 0:
        return dy * z * np.log(np.where(x > 0, x, 1))
    if is_constant(y) and y == 1:
        return dx
    if is_constant(y) and y == 2:
        return 2 * x * dx
    return dx * (y * x ** (y - 1)) + dy * (z * np.log(np.where(x > 0, x, 1)))


@tangent_rule(operator.floordiv, np.floor_divide)
def floordiv_tangent(dots, z, x, y):
    """Piecewise constant: a zero tangent."""
    return None
