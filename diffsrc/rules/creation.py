"""Array creation and casting inside differentiated functions, and the NumPy functions
that pass through without a derivative.

* zeros/ones/empty(_like), eye, identity, arange, tri: outputs that do not depend on
  any input's values (no adjoint). full/full_like: the fill value is differentiable.
  linspace: start and stop are differentiable.
* array/asarray of (nested) lists of differentiable values; astype and the dtype
  constructors keep the dtype NumPy gives: a float32 array stays float32, and each
  adjoint is cast back to its input's dtype. Casting to an integer or bool dtype
  cuts the derivative (zero adjoint).
* Non-differentiable pass-through: argmax/argmin/argsort/argwhere/nonzero/
  searchsorted/..., shape/ndim/size/dtype, comparisons, logical functions,
  isnan/isfinite/..., and random draws (np.random.* and Generator methods), which
  are constants of the derivative.
"""
import numpy as np

from .lowering_hooks import positional
from .registry import Method, adjoint_rule, linear, register, tangent_rule
from ..runtime import (array_adjoint, cast_adjoint, cast_like, copied, item_adjoint,
                       linspace_adjoint, unbroadcast, _float_like)

FAMILY = "creation"

# ----------------------------------------------------------------------- registration
CONSTANT = ("zeros ones zeros_like ones_like empty empty_like eye identity arange tri "
            "argmax argmin argsort argwhere nonzero flatnonzero searchsorted digitize "
            "bincount count_nonzero shape ndim size isnan isfinite isinf isneginf isposinf "
            "isclose allclose array_equal array_equiv logical_and logical_or logical_not "
            "logical_xor equal not_equal less less_equal greater greater_equal any all "
            "iscomplexobj isrealobj isscalar result_type "
            "tril_indices triu_indices diag_indices indices unravel_index "
            "ravel_multi_index").split()
for _name in CONSTANT:
    register(getattr(np, _name), emit=f"np.{_name}", nondiff=True).meta["family"] = FAMILY
register(np.argsort, foldable=True)
register(np.shape, foldable=True, result_kind="tuple")
register(np.ndim, foldable=True, result_kind="int")
register(np.size, foldable=True, result_kind="int")
for _type in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.intp, np.bool_):
    register(_type, emit=f"np.{_type.__name__}", nondiff=True).meta["family"] = FAMILY

DIFFERENTIABLE = ("array asarray asanyarray ascontiguousarray copy full full_like linspace "
                  "float16 float32 float64").split()
for _name in DIFFERENTIABLE:
    register(getattr(np, _name), emit=f"np.{_name}").meta["family"] = FAMILY
for _name in ("astype", "copy", "item"):
    register(Method(_name)).meta["family"] = FAMILY
for _name in ("shape", "ndim", "size", "dtype", "nbytes", "itemsize", "strides"):
    register(Method(_name, attribute=True), nondiff=True,
             result_kind={"shape": "tuple", "strides": "tuple", "dtype": None}.get(
                 _name, "int")).meta["family"] = FAMILY
for _name in ("argmax", "argmin", "argsort", "any", "all", "nonzero", "tolist"):
    register(Method(_name), nondiff=True).meta["family"] = FAMILY

register(np.full).meta["lower"] = positional(np.full, {"shape": None, "fill_value": None})
register(np.full_like).meta["lower"] = positional(np.full_like, {"a": None, "fill_value": None})
register(np.linspace).meta["lower"] = positional(np.linspace, {"start": None, "stop": None})

# random draws: constants of the derivative, never folded, moved or removed
for _name in dir(np.random):
    _fn = getattr(np.random, _name)
    if _name.startswith("_") or isinstance(_fn, type) or not callable(_fn):
        continue
    register(_fn, emit=f"np.random.{_name}", nondiff=True, effect=True).meta["family"] = FAMILY
GENERATOR_METHODS = [n for n in dir(np.random.Generator) if not n.startswith("_")
                     and callable(getattr(np.random.Generator, n))
                     and n not in ("bit_generator", "spawn")]
for _name in GENERATOR_METHODS:
    if hasattr(np.ndarray, _name):
        continue
    register(Method(_name), nondiff=True, effect=True).meta["family"] = FAMILY


for _helper in (cast_adjoint, item_adjoint, linspace_adjoint, _float_like, cast_like, copied):
    register(_helper)
register(array_adjoint, result_kind="list")     # a list for a list input: adds up as one


# ------------------------------------------------------------------------------ rules
@adjoint_rule(np.array, np.asarray, np.asanyarray)
def array_adjoint_rule(y_bar, y, x, dtype=None, *args, **kwargs):
    """A (nested) list of values gets a (nested) list of adjoints."""
    return (array_adjoint(y_bar, x),)


@adjoint_rule(Method("astype"), np.float16, np.float32, np.float64)
def astype_adjoint(y_bar, y, x, *args, **kwargs):
    return (cast_adjoint(y_bar, y, x),)


@adjoint_rule(Method("copy"), np.copy, np.ascontiguousarray, copied)
def copy_adjoint(y_bar, y, x, *args, **kwargs):
    return (y_bar,)


@adjoint_rule(Method("item"))
def item_rule(y_bar, y, x, *args):
    """`x.item()` of a one-element array: the adjoint shaped like x."""
    return (item_adjoint(y_bar, x),)


@adjoint_rule(np.full)
def full_adjoint(y_bar, y, shape, fill_value, dtype=None, **kwargs):
    """The fill value (a scalar or an array broadcast to `shape`) gets the summed adjoint."""
    return None, unbroadcast(y_bar, fill_value)


@adjoint_rule(np.full_like)
def full_like_adjoint(y_bar, y, a, fill_value, dtype=None, **kwargs):
    return None, unbroadcast(y_bar, fill_value)


@adjoint_rule(np.linspace)
def linspace_rule(y_bar, y, start, stop, num=50, endpoint=True, retstep=False, dtype=None,
                  axis=0):
    """y = start + (stop - start) t with t = i / (num - 1) (or i / num without endpoint)."""
    return (linspace_adjoint(y_bar, start, stop, num, endpoint, axis, 0),
            linspace_adjoint(y_bar, start, stop, num, endpoint, axis, 1))



@adjoint_rule(cast_adjoint)
def cast_adjoint_adjoint(c, r, g, y, x):
    """A cast back: linear in g, its adjoint casts the cotangent to g's dtype."""
    return (cast_adjoint(c, y, g), None, None)


@adjoint_rule(cast_like)
def cast_like_adjoint(c, r, g, x):
    return (cast_like(c, g), None)


@adjoint_rule(array_adjoint)
def array_adjoint_adjoint(c, r, g, x):
    """array_adjoint splits an array adjoint into a nested list; its adjoint re-joins it."""
    return (np.reshape(np.array(c), np.shape(g)), None)



@adjoint_rule(item_adjoint)
def item_adjoint_adjoint(c, r, g, x):
    """item_adjoint spreads a number over a one-element array: its adjoint sums back."""
    return (np.sum(c), None)


# ------------------------------------------------------------------------ tangent rules
linear(np.array, np.asarray, np.asanyarray, Method("copy"), np.copy, np.ascontiguousarray,
       copied, Method("item"), cast_adjoint, cast_like, array_adjoint, item_adjoint,
       linspace_adjoint, _float_like)
linear(np.full, np.full_like, positions=(1,))
linear(np.linspace, positions=(0, 1))


@tangent_rule(Method("astype"), np.float16, np.float32, np.float64)
def astype_tangent(dots, y, x, *args, **kwargs):
    """The tangent in y's dtype; zero for a cast to an integer or bool dtype."""
    return _float_like(cast_adjoint(dots[0], y, x), y)
