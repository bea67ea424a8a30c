"""The NumPy core of small models: elementwise maths, reductions, shapes, matmul.

Each rule states the maths of one function; `unbroadcast`/`unreduce` undo
broadcasting and reductions, and the transform does the rest.
"""
import numpy as np

from .registry import Method, adjoint_rule, nondifferentiable, register
from ..runtime import (array_adjoint, cast_like, clip_mask, dot_left, dot_right, matmul_left,
                       matmul_right, unbroadcast, unconcatenate, unreduce, unstack)

DIFFERENTIABLE = ("add subtract multiply divide true_divide negative positive power square "
                  "sqrt exp log log1p expm1 tanh sin cos tan sinh cosh arcsin arccos arctan abs "
                  "absolute maximum minimum where clip sum mean max min amax amin var std prod "
                  "reshape transpose ravel squeeze expand_dims concatenate stack dot matmul outer "
                  "array asarray float32 float64 copy").split()
CONSTANT = ("zeros ones zeros_like ones_like full full_like empty empty_like eye identity arange "
            "linspace argmax argmin argsort shape ndim size sign floor ceil round rint trunc "
            "isnan isfinite isinf logical_and logical_or logical_not logical_xor equal not_equal "
            "less less_equal greater greater_equal any all nonzero count_nonzero "
            "allclose array_equal").split()
for _name in DIFFERENTIABLE:
    register(getattr(np, _name), emit=f"np.{_name}")
for _name in CONSTANT:
    register(getattr(np, _name), emit=f"np.{_name}", nondiff=True)
register(np.argsort, foldable=True)
register(np.shape, foldable=True, result_kind="tuple")
register(np.ndim, foldable=True, result_kind="int")
register(np.size, foldable=True, result_kind="int")

METHODS = "sum mean max min var std prod reshape transpose ravel flatten squeeze dot astype copy clip"
for _name in METHODS.split():
    register(Method(_name))
register(Method("T", attribute=True))
for _name in ("shape", "ndim", "size", "dtype"):
    register(Method(_name, attribute=True), nondiff=True,
             result_kind="tuple" if _name == "shape" else "int" if _name != "dtype" else None)
for _name in ("argmax", "argmin", "argsort", "any", "all", "nonzero", "tolist"):
    register(Method(_name), nondiff=True)


# ------------------------------------------------------------------ elementwise
@adjoint_rule(np.square)
def square_adjoint(y_bar, y, x):
    return (2 * x * y_bar,)


@adjoint_rule(np.sqrt)
def sqrt_adjoint(y_bar, y, x):
    return (y_bar / (2 * y),)


@adjoint_rule(np.exp)
def exp_adjoint(y_bar, y, x):
    return (y_bar * y,)


@adjoint_rule(np.log)
def log_adjoint(y_bar, y, x):
    return (y_bar / x,)


@adjoint_rule(np.log1p)
def log1p_adjoint(y_bar, y, x):
    return (y_bar / (1 + x),)


@adjoint_rule(np.expm1)
def expm1_adjoint(y_bar, y, x):
    return (y_bar * (y + 1),)


@adjoint_rule(np.tanh)
def tanh_adjoint(y_bar, y, x):
    return (y_bar * (1 - y * y),)


@adjoint_rule(np.sin)
def sin_adjoint(y_bar, y, x):
    return (y_bar * np.cos(x),)


@adjoint_rule(np.cos)
def cos_adjoint(y_bar, y, x):
    return (-y_bar * np.sin(x),)


@adjoint_rule(np.tan)
def tan_adjoint(y_bar, y, x):
    return (y_bar * (1 + y * y),)


@adjoint_rule(np.sinh)
def sinh_adjoint(y_bar, y, x):
    return (y_bar * np.cosh(x),)


@adjoint_rule(np.cosh)
def cosh_adjoint(y_bar, y, x):
    return (y_bar * np.sinh(x),)


@adjoint_rule(np.arcsin)
def arcsin_adjoint(y_bar, y, x):
    return (y_bar / np.sqrt(1 - x * x),)


@adjoint_rule(np.arccos)
def arccos_adjoint(y_bar, y, x):
    return (-y_bar / np.sqrt(1 - x * x),)


@adjoint_rule(np.arctan)
def arctan_adjoint(y_bar, y, x):
    return (y_bar / (1 + x * x),)


@adjoint_rule(np.abs, np.absolute, abs)
def abs_adjoint(y_bar, y, x):
    """Subgradient 0 at the kink x == 0."""
    return (y_bar * np.sign(x),)


@adjoint_rule(np.maximum)
def maximum_adjoint(z_bar, z, x, y):
    """Ties send the whole adjoint to the first argument (relu'(0) = 1 for maximum(x, 0))."""
    return unbroadcast(z_bar * (x >= y), x), unbroadcast(z_bar * (x < y), y)


@adjoint_rule(np.minimum)
def minimum_adjoint(z_bar, z, x, y):
    """Ties send the whole adjoint to the first argument."""
    return unbroadcast(z_bar * (x <= y), x), unbroadcast(z_bar * (x > y), y)


@adjoint_rule(np.where)
def where_adjoint(z_bar, z, condition, x, y):
    return (None, unbroadcast(np.where(condition, z_bar, 0), x),
            unbroadcast(np.where(condition, 0, z_bar), y))


@adjoint_rule(np.clip, Method("clip"))
def clip_adjoint(y_bar, y, x, a_min=None, a_max=None):
    return (y_bar * clip_mask(x, a_min, a_max), None, None)


# ------------------------------------------------------------------- reductions
@adjoint_rule(np.sum, Method("sum"))
def sum_adjoint(y_bar, y, x, axis=None, dtype=None, out=None, keepdims=False):
    return (unreduce(y_bar, x, axis, keepdims),)


@adjoint_rule(np.mean, Method("mean"))
def mean_adjoint(y_bar, y, x, axis=None, dtype=None, out=None, keepdims=False):
    return (unreduce(y_bar, x, axis, keepdims) / (np.size(x) / np.size(y)),)


@adjoint_rule(np.max, np.amax, np.min, np.amin, Method("max"), Method("min"))
def extremum_adjoint(y_bar, y, x, axis=None, out=None, keepdims=False):
    """Ties share the adjoint equally."""
    chosen = x == unreduce(y, x, axis, keepdims)
    count = unreduce(np.sum(chosen, axis=axis, keepdims=keepdims), x, axis, keepdims)
    return (unreduce(y_bar, x, axis, keepdims) * chosen / count,)


@adjoint_rule(np.var, Method("var"))
def var_adjoint(y_bar, y, x, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
    centered = x - np.mean(x, axis=axis, keepdims=True)
    count = np.size(x) / np.size(y)
    return (unreduce(y_bar, x, axis, keepdims) * 2 * centered / (count - ddof),)


@adjoint_rule(np.std, Method("std"))
def std_adjoint(y_bar, y, x, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
    centered = x - np.mean(x, axis=axis, keepdims=True)
    count = np.size(x) / np.size(y)
    return (unreduce(y_bar / y, x, axis, keepdims) * centered / (count - ddof),)


@adjoint_rule(np.prod, Method("prod"))
def prod_adjoint(y_bar, y, x, axis=None, dtype=None, out=None, keepdims=False):
    return (unreduce(y_bar * y, x, axis, keepdims) / x,)


# ------------------------------------------------------------------------ shape
@adjoint_rule(np.reshape)
def reshape_adjoint(y_bar, y, x, *args, **kwargs):
    return (np.reshape(y_bar, np.shape(x)),)


@adjoint_rule(Method("reshape"), Method("ravel"), Method("flatten"), np.ravel, np.squeeze,
              Method("squeeze"), np.expand_dims)
def reshape_method_adjoint(y_bar, y, x, *args, **kwargs):
    return (y_bar.reshape(np.shape(x)),)


@adjoint_rule(np.transpose)
def transpose_adjoint(y_bar, y, x, axes=None):
    if axes is None:
        return (np.transpose(y_bar),)
    return (np.transpose(y_bar, np.argsort(axes)),)


@adjoint_rule(Method("transpose"))
def transpose_method_adjoint(y_bar, y, x, *axes):
    if len(axes) == 0:
        return (y_bar.transpose(),)
    if len(axes) == 1:
        return (y_bar.transpose(np.argsort(axes[0])),)
    return (y_bar.transpose(np.argsort(axes)),)


@adjoint_rule(Method("T", attribute=True))
def transposed_adjoint(y_bar, y, x):
    return (y_bar.T,)


@adjoint_rule(np.concatenate)
def concatenate_adjoint(y_bar, y, arrays, axis=0):
    return (unconcatenate(y_bar, arrays, axis),)


@adjoint_rule(np.stack)
def stack_adjoint(y_bar, y, arrays, axis=0):
    return (unstack(y_bar, len(arrays), axis),)


@adjoint_rule(np.array, np.asarray)
def array_adjoint_rule(y_bar, y, x, dtype=None, *args, **kwargs):
    return (array_adjoint(y_bar, x),)


@adjoint_rule(Method("astype"), np.float32, np.float64)
def astype_adjoint(y_bar, y, x, *args, **kwargs):
    return (cast_like(y_bar, x),)


@adjoint_rule(Method("copy"), np.copy)
def copy_adjoint(y_bar, y, x, *args, **kwargs):
    return (y_bar,)


# ----------------------------------------------------------------------- linalg
@adjoint_rule(np.matmul, __import__("operator").matmul)
def matmul_adjoint(z_bar, z, x, y):
    return matmul_left(z_bar, x, y), matmul_right(z_bar, x, y)


@adjoint_rule(np.dot, Method("dot"))
def dot_adjoint(z_bar, z, x, y):
    return dot_left(z_bar, x, y), dot_right(z_bar, x, y)


@adjoint_rule(np.outer)
def outer_adjoint(z_bar, z, x, y):
    return (np.reshape(z_bar @ np.ravel(y), np.shape(x)),
            np.reshape(np.ravel(x) @ z_bar, np.shape(y)))


for _helper in (unreduce, matmul_left, matmul_right, dot_left, dot_right, array_adjoint,
                unstack, unconcatenate, cast_like):
    register(_helper)
nondifferentiable(clip_mask)
