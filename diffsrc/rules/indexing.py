"""Gathers: take, take_along_axis and sort (a gather through argsort).

Subscripts `x[...]` and subscript assignment `x[idx] = v` are lowered by the
frontend to `operator.getitem` and `runtime.index_update`, whose rules live in
rules/structures.py: basic slicing (negative steps, None, Ellipsis) and
integer-array / boolean-mask gathers, with a scatter-add adjoint
(`runtime.unindex`, np.add.at semantics) that is correct for repeated indices.
The adjoints here are scatter-adds too: an index that appears k times sends k
adjoints to its entry.
"""
import numpy as np

import operator

from .lowering_hooks import _emit, positional
from ..errors import UnsupportedSyntaxError
from .registry import Method, adjoint_rule, is_zero, linear, register, tangent_rule
from ..frontend.abstract import ListS, Static, TupleS
from .. import runtime
from ..runtime import (interp_adjoint, select_adjoint, unpermute, unsort, untake,
                       untake_along_axis)

FAMILY = "indexing"

for _name in ("take", "take_along_axis", "sort", "partition", "select", "interp"):
    register(getattr(np, _name), emit=f"np.{_name}").meta["family"] = FAMILY
register(Method("take")).meta["family"] = FAMILY
register(np.select).meta["lower"] = positional(
    np.select, {"condlist": None, "choicelist": None, "default": 0})
for _helper in (interp_adjoint, unpermute, unsort, untake, untake_along_axis):
    register(_helper)
register(select_adjoint)      # a list of choice adjoints, or the default's array


@adjoint_rule(np.take, Method("take"))
def take_adjoint(y_bar, y, x, indices, axis=None, out=None, mode="raise"):
    """Scatter-add: repeated indices accumulate; 'wrap'/'clip' modes map indices first."""
    return (untake(y_bar, x, indices, axis, mode), None)


@adjoint_rule(np.take_along_axis)
def take_along_axis_adjoint(y_bar, y, x, indices, axis=-1):
    """Scatter-add along `axis` (repeated indices accumulate)."""
    return (untake_along_axis(y_bar, x, indices, axis), None)


@adjoint_rule(np.sort)
def sort_adjoint(y_bar, y, x, axis=-1, kind=None, order=None, **kwargs):
    """The adjoint goes back through the sorting permutation (a stable argsort).

    Tied values: each output position's adjoint goes to exactly one of the tied
    inputs, in stable order.
    """
    return (unsort(y_bar, x, axis),)


@adjoint_rule(np.partition)
def partition_adjoint(y_bar, y, x, kth, axis=-1, **kwargs):
    """The adjoint goes back through the rearrangement (tied values in stable order)."""
    return (unpermute(y_bar, x, y, axis), None)


@adjoint_rule(np.select)
def select_rule(y_bar, y, condlist, choicelist, default=0):
    """Each choice gets the adjoint where its condition is the first true one; `default`
    where none is."""
    return (None, select_adjoint(y_bar, condlist, choicelist, default, 0),
            select_adjoint(y_bar, condlist, choicelist, default, -1))


@adjoint_rule(np.interp)
def interp_rule(y_bar, y, x, xp, fp, *args, **kwargs):
    """Piecewise linear: x gets the segment's slope (0 outside the sample range), fp the
    interpolation weights; the sample points xp get none."""
    return (interp_adjoint(y_bar, x, xp, fp, 0), None, interp_adjoint(y_bar, x, xp, fp, 2))


# ------------------------------------------------------- np.r_[...] and np.c_[...]
def _getitem_lower(low, args, kwargs):
    """`np.r_[a, b, 1:4]` / `np.c_[a, b]` are subscripts of constant objects: lowered to
    np.concatenate / np.column_stack of the items (slices become constant ranges), so the
    items get their adjoints.
    Every other subscript is emitted as is (rules/structures.py has its rule)."""
    container, index = args[0], args[1]
    if isinstance(container, Static) and (container.value is np.r_ or container.value is np.c_):
        items = index.items if isinstance(index, TupleS) else (index,)
        if any(isinstance(i, Static) and isinstance(i.value, str) for i in items):
            raise low.error(UnsupportedSyntaxError, "np.r_/np.c_ with a directive string in a "
                            "differentiated function")
        items = [Static(container.value[i.value]) if isinstance(i, Static) and
                 isinstance(i.value, slice) else i for i in items]     # 1:4 -> arange, a constant
        parts = ListS(tuple(low.primitive(np.atleast_1d, [i], {}) for i in items))
        if container.value is np.r_:
            return low.primitive(np.concatenate, [parts], {})
        return low.primitive(np.column_stack, [parts], {})
    return _emit(low, operator.getitem, args, kwargs)


register(operator.getitem).meta["lower"] = _getitem_lower



# ------------------------------------------------------------------------------------------
# Second order: the scatter-adds above are linear in the adjoint; their adjoint is a gather.
@adjoint_rule(untake)
def untake_adjoint(c, r, g, x, indices, axis=None, mode="raise"):
    return (np.take(c, indices, axis, mode=mode if mode != "raise" else "wrap"), None)


@adjoint_rule(untake_along_axis)
def untake_along_axis_adjoint(c, r, g, x, indices, axis):
    return (np.take_along_axis(c, indices, axis), None)


@adjoint_rule(unsort)
def unsort_adjoint(c, r, g, x, axis=-1):
    """The sorting permutation applied to the cotangent."""
    if axis is None:
        return (np.take_along_axis(np.ravel(c), np.argsort(np.ravel(x), kind="stable"), 0),
                None)
    return (np.take_along_axis(c, np.argsort(x, axis=axis, kind="stable"), axis), None)


@adjoint_rule(runtime.unindex)
def unindex_adjoint(c, r, g, x, index):
    """runtime.unindex (the adjoint of x[index], rules/structures.py) scatters; the
    cotangent is gathered back with the same index."""
    return (c[index], None, None)


# ------------------------------------------------------------------------ tangent rules
linear(np.take, Method("take"), np.take_along_axis, operator.getitem, runtime.unindex, untake,
       untake_along_axis, unsort, unpermute)
linear(np.select, positions=(1, 2))
linear(select_adjoint)


@tangent_rule(np.sort)
def sort_tangent(dots, y, x, axis=-1, kind=None, order=None, **kwargs):
    """The tangent goes through the sorting permutation (a stable argsort, as the adjoint)."""
    if axis is None:
        return np.take_along_axis(np.ravel(dots[0]), np.argsort(np.ravel(x), kind="stable"), 0)
    return np.take_along_axis(dots[0], np.argsort(x, axis=axis, kind="stable"), axis)


@tangent_rule(np.partition)
def partition_tangent(dots, y, x, kth, axis=-1, **kwargs):
    """The tangent goes through the rearrangement, tied values matched in stable order
    (as the adjoint): y's r-th smallest entry is x's r-th smallest."""
    x_dot = dots[0]
    if axis is None:
        x, x_dot, axis = np.ravel(x), np.ravel(x_dot), 0
    order_x = np.argsort(x, axis=axis, kind="stable")
    rank_y = np.argsort(np.argsort(y, axis=axis, kind="stable"), axis=axis)
    return np.take_along_axis(x_dot, np.take_along_axis(order_x, rank_y, axis), axis)


@tangent_rule(np.interp)
def interp_tangent(dots, y, x, xp, fp, *args, **kwargs):
    """The segment's slope times x_dot, plus fp_dot interpolated; xp gets none."""
    dx, dxp, dfp = dots[0], dots[1], dots[2]
    if not is_zero(dxp):
        raise NotImplementedError("np.interp with differentiated sample points xp")
    total = dots[0] * 0 if is_zero(dx) else interp_adjoint(dx, x, xp, fp, 0)
    if is_zero(dfp):
        return total
    return total + np.interp(x, xp, dfp, *args, **kwargs)
