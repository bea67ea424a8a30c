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

from .registry import Method, adjoint_rule, register
from ..runtime import unsort, untake, untake_along_axis

FAMILY = "indexing"

for _name in ("take", "take_along_axis", "sort"):
    register(getattr(np, _name), emit=f"np.{_name}").meta["family"] = FAMILY
register(Method("take")).meta["family"] = FAMILY
for _helper in (unsort, untake, untake_along_axis):
    register(_helper)


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
