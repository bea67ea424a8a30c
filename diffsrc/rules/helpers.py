"""Rules for the runtime helpers generated derivative code calls.

Generated code is Python in the supported subset, so diffsrc can read it again
and differentiate it (grad of grad, a loss that calls ds.grad). For that, the
helpers that rules emit need rules of their own, given here.

matmul_left(g, a, b) is the gradient of <g, a @ b> with respect to a, so it is
bilinear in (g, b) and <y_bar, matmul_left(g, a, b)> = <g, y_bar @ b>: its
adjoints are a matmul and a matmul_right again (and symmetrically for the
right factor and for np.dot).
"""
import numpy as np

from .registry import adjoint_rule, linear, lookup, register
from .. import runtime
from ..runtime import unbroadcast

register(runtime.zeros_like, nondiff=True)


@adjoint_rule(runtime.matmul_left)
def matmul_left_adjoint(y_bar, y, g, a, b):
    return np.matmul(y_bar, b), None, runtime.matmul_right(g, y_bar, b)


@adjoint_rule(runtime.matmul_right)
def matmul_right_adjoint(y_bar, y, g, a, b):
    return np.matmul(a, y_bar), runtime.matmul_left(g, a, y_bar), None


@adjoint_rule(runtime.dot_left)
def dot_left_adjoint(y_bar, y, g, a, b):
    return np.dot(y_bar, b), None, runtime.dot_right(g, y_bar, b)


@adjoint_rule(runtime.dot_right)
def dot_right_adjoint(y_bar, y, g, a, b):
    return np.dot(a, y_bar), runtime.dot_left(g, a, y_bar), None


@adjoint_rule(runtime.winner_share)
def winner_share_adjoint(y_bar, y, g, x, other):
    """Linear in g; the share is piecewise constant in x and the other argument."""
    return runtime.winner_share(y_bar, x, other), None, None


@adjoint_rule(runtime.unbroadcast)
def unbroadcast_adjoint(y_bar, y, g, x):
    """unbroadcast sums g down to x's shape; its adjoint broadcasts back up."""
    return (np.broadcast_to(y_bar, np.shape(g)), None)


@adjoint_rule(runtime.sum_leading)
def sum_leading_adjoint(y_bar, y, g, n):
    """sum_leading sums g over its leading axes; its adjoint broadcasts back up."""
    return (np.broadcast_to(y_bar, np.shape(g)), None)


@adjoint_rule(runtime.unreduce)
def unreduce_adjoint(y_bar, y, g, x, axis=None, keepdims=False):
    """unreduce broadcasts g up to x's shape; its adjoint sums back down."""
    if axis is None or keepdims:
        return (unbroadcast(y_bar, g), None)
    return (np.sum(y_bar, axis=axis), None)


@adjoint_rule(runtime.spread)
def spread_adjoint(y_bar, y, t, z):
    """spread broadcasts t up to z's shape; its adjoint sums back down."""
    return (unbroadcast(y_bar, t), None)


assert lookup(runtime.unbroadcast).meta.get("lower") is not None

# Tangent rules of these helpers (forward over reverse): linear in the adjoint they move;
# which argument wins is piecewise constant.
linear(runtime.winner_share, runtime.sum_leading, runtime.spread)

# Helpers that helpers differentiated from their source (registry.SOURCE) call: the
# device-placed identity is a constant, the dtype cast is linear.
register(runtime._eye, nondiff=True)
linear(runtime._float_like)
