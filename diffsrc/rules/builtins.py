"""Python builtins on numbers: abs, float, int, round, min/max of two, sum."""
import builtins

from .registry import adjoint_rule, diagonal, linear, nondifferentiable, register, tangent_rule
from ..runtime import item_adjoint, sum_items_adjoint, unbroadcast

register(builtins.abs, emit="abs", foldable=True)
register(float, emit="float", foldable=True)
register(complex, emit="complex", foldable=True)
nondifferentiable(int, bool, round, len, isinstance, hasattr, str, repr, type, divmod, hash,
                  callable, foldable=True)
register(len, result_kind="int")
register(int, result_kind="int")
register(builtins.max, foldable=True)
register(builtins.min, foldable=True)
register(builtins.sum)
register(sum_items_adjoint)
register(list, result_kind="list")
register(tuple, result_kind="tuple")


@adjoint_rule(float)
def float_adjoint(y_bar, y, x):
    """float(x) of a size-1 array: the adjoint has x's shape (a number for a number)."""
    return (item_adjoint(y_bar, x),)


@adjoint_rule(complex)
def complex_adjoint(y_bar, y, x):
    return (y_bar,)


@adjoint_rule(builtins.max)
def max_adjoint(z_bar, z, x, y):
    """Ties go to the first argument, which is the one Python returns."""
    return unbroadcast(z_bar * (x >= y), x), unbroadcast(z_bar * (x < y), y)


@adjoint_rule(builtins.min)
def min_adjoint(z_bar, z, x, y):
    """Ties go to the first argument, which is the one Python returns."""
    return unbroadcast(z_bar * (x <= y), x), unbroadcast(z_bar * (x > y), y)


@adjoint_rule(builtins.sum)
def sum_adjoint(y_bar, y, items, start=0):
    return sum_items_adjoint(y_bar, items), y_bar


# ------------------------------------------------------------------------ tangent rules
diagonal(float, complex)
linear(builtins.sum, positions=(0, 1))
linear(sum_items_adjoint)


@tangent_rule(builtins.max)
def max_tangent(dots, z, x, y):
    """Ties go to the first argument, which is the one Python returns."""
    dx, dy = dots
    return dx * (x >= y) + dy * (x < y)


@tangent_rule(builtins.min)
def min_tangent(dots, z, x, y):
    """Ties go to the first argument, which is the one Python returns."""
    dx, dy = dots
    return dx * (x <= y) + dy * (x > y)
