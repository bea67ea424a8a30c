"""Shape manipulation: reshape, transpose, joins and splits, tiling, padding, diagonals,
sliding windows.

These functions only move entries around, so each adjoint moves the adjoint back:
a reshape to the input's shape, the inverse permutation, a split for a join, a
scatter-add where entries were copied (tile, repeat, pad's copying modes,
overlapping sliding windows).
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .lowering_hooks import each_argument, sequence_of_parts, static_value
from .registry import Method, adjoint_rule, linear, register, tangent_rule
from ..runtime import (inverse_axes, meshgrid_adjoint, ndtuple, restack, rollaxis_adjoint,
                       split_like, split_parts, stack_parts, unbroadcast, unconcatenate, undiag,
                       undiagonal, unpad, unrepeat, unslide, unstack, untile, untrace)

FAMILY = "shape"

FUNCTIONS = ("reshape ravel squeeze expand_dims transpose swapaxes moveaxis broadcast_to "
             "atleast_1d atleast_2d atleast_3d concatenate stack hstack vstack dstack "
             "column_stack split array_split hsplit vsplit dsplit tile repeat flip fliplr "
             "flipud roll rot90 pad diag diagonal triu tril trace append rollaxis "
             "matrix_transpose").split()
for _name in FUNCTIONS:
    register(getattr(np, _name), emit=f"np.{_name}").meta["family"] = FAMILY
for _name in ("matrix_transpose", "trace", "diagonal"):
    register(getattr(np.linalg, _name), emit=f"np.linalg.{_name}").meta["family"] = FAMILY
if hasattr(np, "row_stack"):
    register(np.row_stack, emit="np.vstack").meta["family"] = FAMILY
register(sliding_window_view,
         emit="np.lib.stride_tricks.sliding_window_view").meta["family"] = FAMILY
for _name in "reshape ravel flatten squeeze transpose swapaxes repeat diagonal trace".split():
    register(Method(_name)).meta["family"] = FAMILY
register(Method("T", attribute=True)).meta["family"] = FAMILY
for _helper in (meshgrid_adjoint, rollaxis_adjoint, split_parts, undiag, undiagonal, unpad,
                unrepeat, unslide, untile, untrace, restack):
    register(_helper)
for _helper in (stack_parts, unconcatenate, unstack, split_like):
    register(_helper, result_kind="list")
register(ndtuple, foldable=True)


# -------------------------------------------------------------------- split: static parts
def _split_count(args, kwargs):
    sections = args[1] if len(args) > 1 else kwargs.get("indices_or_sections")
    value = static_value(sections, None) if sections is not None else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, (tuple, list)):
        return len(value) + 1
    return None


for _fn in (np.split, np.array_split, np.hsplit, np.vsplit, np.dsplit):
    register(_fn, result_kind="list").meta["lower"] = sequence_of_parts(_fn, _split_count)
for _fn in (np.atleast_1d, np.atleast_2d, np.atleast_3d):
    register(_fn).meta["lower"] = each_argument(_fn)


# ----------------------------------------------------------------------------- reshaping
@adjoint_rule(np.reshape, np.ravel, np.squeeze, np.expand_dims, np.atleast_1d, np.atleast_2d,
              np.atleast_3d, Method("reshape"), Method("ravel"), Method("flatten"),
              Method("squeeze"))
def reshape_adjoint(y_bar, y, x, *args, **kwargs):
    return (np.reshape(y_bar, np.shape(x)),)


register(inverse_axes, nondiff=True, foldable=True)


@adjoint_rule(np.transpose)
def transpose_adjoint(y_bar, y, x, axes=None):
    if axes is None:
        return (np.transpose(y_bar),)
    return (np.transpose(y_bar, inverse_axes(axes)),)


@adjoint_rule(Method("transpose"))
def transpose_method_adjoint(y_bar, y, x, *axes):
    if len(axes) == 0:
        return (y_bar.transpose(),)
    if len(axes) == 1:
        if axes[0] is None:
            return (y_bar.transpose(),)
        return (y_bar.transpose(inverse_axes(axes[0])),)
    return (y_bar.transpose(inverse_axes(axes)),)


@adjoint_rule(Method("T", attribute=True))
def transposed_adjoint(y_bar, y, x):
    return (y_bar.T,)


@adjoint_rule(np.swapaxes, Method("swapaxes"))
def swapaxes_adjoint(y_bar, y, x, axis1, axis2):
    return (np.swapaxes(y_bar, axis1, axis2),)


@adjoint_rule(np.moveaxis)
def moveaxis_adjoint(y_bar, y, x, source, destination):
    return (np.moveaxis(y_bar, destination, source),)


@adjoint_rule(np.broadcast_to)
def broadcast_to_adjoint(y_bar, y, x, shape, **kwargs):
    return (unbroadcast(y_bar, x),)


# --------------------------------------------------------------------- joins and splits
@adjoint_rule(np.concatenate)
def concatenate_adjoint(y_bar, y, arrays, axis=0, **kwargs):
    """axis=None joins the flattened arrays."""
    if axis is None:
        return (stack_parts(y_bar, arrays, "flat"),)
    return (unconcatenate(y_bar, arrays, axis),)


@adjoint_rule(np.stack)
def stack_adjoint(y_bar, y, arrays, axis=0, **kwargs):
    return (unstack(y_bar, len(arrays), axis),)


@adjoint_rule(np.hstack)
def hstack_adjoint(y_bar, y, tup, **kwargs):
    return (stack_parts(y_bar, tup, "h"),)


@adjoint_rule(np.vstack, *([np.row_stack] if hasattr(np, "row_stack") else []))
def vstack_adjoint(y_bar, y, tup, **kwargs):
    return (stack_parts(y_bar, tup, "v"),)


@adjoint_rule(np.dstack)
def dstack_adjoint(y_bar, y, tup, **kwargs):
    return (stack_parts(y_bar, tup, "d"),)


@adjoint_rule(np.column_stack)
def column_stack_adjoint(y_bar, y, tup):
    return (stack_parts(y_bar, tup, "column"),)


@adjoint_rule(np.append)
def append_adjoint(y_bar, y, arr, values, axis=None):
    if axis is None:
        parts = stack_parts(y_bar, [arr, values], "flat")
    else:
        parts = unconcatenate(y_bar, [arr, values], axis)
    return parts[0], parts[1]


@adjoint_rule(np.split, np.array_split)
def split_adjoint(y_bar, y, x, indices_or_sections, axis=0):
    """The parts' adjoints joined back (parts nobody used contribute zeros)."""
    return (split_parts(y_bar, x, axis),)


@adjoint_rule(np.hsplit)
def hsplit_adjoint(y_bar, y, x, indices_or_sections):
    return (split_parts(y_bar, x, "h"),)


@adjoint_rule(np.vsplit)
def vsplit_adjoint(y_bar, y, x, indices_or_sections):
    return (split_parts(y_bar, x, "v"),)


@adjoint_rule(np.dsplit)
def dsplit_adjoint(y_bar, y, x, indices_or_sections):
    return (split_parts(y_bar, x, "d"),)


# ------------------------------------------------------------------ copies: tile, repeat
@adjoint_rule(np.tile)
def tile_adjoint(y_bar, y, x, reps):
    """Every tile's adjoint summed back onto the one input."""
    return (untile(y_bar, x, reps),)


@adjoint_rule(np.repeat, Method("repeat"))
def repeat_adjoint(y_bar, y, x, repeats, axis=None):
    """Each run of copies summed (per-entry repeat counts supported)."""
    return (unrepeat(y_bar, x, repeats, axis),)


# ---------------------------------------------------------------------- reordering
@adjoint_rule(np.flip)
def flip_adjoint(y_bar, y, x, axis=None):
    return (np.flip(y_bar, axis),)


@adjoint_rule(np.fliplr)
def fliplr_adjoint(y_bar, y, x):
    return (np.fliplr(y_bar),)


@adjoint_rule(np.flipud)
def flipud_adjoint(y_bar, y, x):
    return (np.flipud(y_bar),)


@adjoint_rule(np.roll)
def roll_adjoint(y_bar, y, x, shift, axis=None):
    return (np.roll(y_bar, ndtuple(shift), axis),)


@adjoint_rule(np.rot90)
def rot90_adjoint(y_bar, y, m, k=1, axes=(0, 1)):
    return (np.rot90(y_bar, -k, axes),)


# --------------------------------------------------------------------------- padding
@adjoint_rule(np.pad)
def pad_adjoint(y_bar, y, x, pad_width, mode="constant", **kwargs):
    """Constant mode: the padding is cut off (constant_values get no adjoint).

    edge/reflect/symmetric/wrap: every padded copy's adjoint is added to the entry it
    copies.
    """
    return (unpad(y_bar, x, pad_width, mode),)


# ------------------------------------------------------------------------- diagonals
@adjoint_rule(np.diag)
def diag_adjoint(y_bar, y, v, k=0):
    """Vector -> matrix: the k-th diagonal of the adjoint; matrix -> vector: scattered back."""
    return (undiag(y_bar, v, k),)


@adjoint_rule(np.diagonal, Method("diagonal"))
def diagonal_adjoint(y_bar, y, x, offset=0, axis1=0, axis2=1):
    return (undiagonal(y_bar, x, offset, axis1, axis2),)


@adjoint_rule(np.trace, Method("trace"))
def trace_adjoint(y_bar, y, x, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    return (untrace(y_bar, x, offset, axis1, axis2),)


@adjoint_rule(np.triu)
def triu_adjoint(y_bar, y, x, k=0):
    return (np.triu(y_bar, k),)


@adjoint_rule(np.tril)
def tril_adjoint(y_bar, y, x, k=0):
    return (np.tril(y_bar, k),)


# ------------------------------------------------------------------- sliding windows
@adjoint_rule(sliding_window_view)
def sliding_window_view_adjoint(y_bar, y, x, window_shape, axis=None, **kwargs):
    """Overlapping windows: each entry collects the adjoints of every window it is in."""
    return (unslide(y_bar, x, window_shape, axis),)


@adjoint_rule(np.rollaxis)
def rollaxis_rule(y_bar, y, x, axis, start=0):
    return (rollaxis_adjoint(y_bar, x, axis, start),)


@adjoint_rule(np.matrix_transpose, np.linalg.matrix_transpose)
def matrix_transpose_adjoint(y_bar, y, x):
    return (np.matrix_transpose(y_bar),)


@adjoint_rule(np.linalg.trace)
def linalg_trace_adjoint(y_bar, y, x, offset=0, dtype=None):
    """The trace over the last two axes (the array API's np.linalg.trace)."""
    return (untrace(y_bar, x, offset, -2, -1),)


@adjoint_rule(np.linalg.diagonal)
def linalg_diagonal_adjoint(y_bar, y, x, offset=0):
    """The diagonal of the last two axes (the array API's np.linalg.diagonal)."""
    return (undiagonal(y_bar, x, offset, -2, -1),)


# np.meshgrid: a list of one output per input, whose length the call shows
register(np.meshgrid, emit="np.meshgrid", result_kind="list").meta["family"] = FAMILY
register(np.meshgrid).meta["lower"] = sequence_of_parts(np.meshgrid,
                                                        lambda args, kwargs: len(args))


@adjoint_rule(np.meshgrid)
def meshgrid_rule(y_bar, y, *xi, indexing="xy", **kwargs):
    """Each input collects its output's adjoint summed over the other axes."""
    adjoints = []
    for i, x in enumerate(xi):
        adjoints.append(meshgrid_adjoint(y_bar[i], x, indexing, i, len(xi)))
    return tuple(adjoints)


# ------------------------------------------------------------------------------------------
# Second order: the adjoint helpers above are linear in the adjoint they move, so their own
# adjoint is the forward operation applied to the cotangent (a gather for a scatter-add).
@adjoint_rule(unconcatenate)
def unconcatenate_adjoint(c, r, g, parts, axis=0):
    return (np.concatenate(c, axis=axis), None, None)


@adjoint_rule(unstack)
def unstack_adjoint(c, r, g, count, axis=0):
    return (np.stack(c, axis=axis), None, None)


@adjoint_rule(split_parts)
def split_parts_adjoint(c, r, g_parts, x, axis=0):
    return (split_like(c, g_parts, x, axis), None, None)


@adjoint_rule(stack_parts)
def stack_parts_adjoint(c, r, g, parts, how):
    return (restack(c, parts, how), None, None)


@adjoint_rule(split_like)
def split_like_adjoint(c, r, g, parts, x, axis=0):
    return (split_parts(c, x, axis), None, None, None)


@adjoint_rule(restack)
def restack_adjoint(c, r, pieces, parts, how):
    return (stack_parts(c, parts, how), None, None)


@adjoint_rule(untile)
def untile_adjoint(c, r, g, x, reps):
    return (np.reshape(np.tile(c, reps), np.shape(g)), None, None)


@adjoint_rule(unrepeat)
def unrepeat_adjoint(c, r, g, x, repeats, axis=None):
    return (np.reshape(np.repeat(c, repeats, axis), np.shape(g)), None, None, None)


@adjoint_rule(unpad)
def unpad_adjoint(c, r, g, x, pad_width, mode="constant"):
    """Padding with zeros (constant mode) or with copies (the other modes) gathers back."""
    return (np.pad(c, pad_width, mode=mode), None, None, None)


@adjoint_rule(undiag)
def undiag_adjoint(c, r, g, x, k=0):
    return (np.diag(c, k), None, None)


@adjoint_rule(undiagonal)
def undiagonal_adjoint(c, r, g, x, offset=0, axis1=0, axis2=1):
    return (np.diagonal(c, offset, axis1, axis2), None)


@adjoint_rule(untrace)
def untrace_adjoint(c, r, g, x, offset=0, axis1=0, axis2=1):
    return (np.trace(c, offset, axis1, axis2), None)


@adjoint_rule(unslide)
def unslide_adjoint(c, r, g, x, window_shape, axis=None):
    return (sliding_window_view(c, window_shape, axis), None)



@adjoint_rule(rollaxis_adjoint)
def rollaxis_adjoint_adjoint(c, r, g, x, axis, start=0):
    return (np.rollaxis(c, axis, start), None)


# ------------------------------------------------------------------------ tangent rules
# Moving entries around is linear: each function (and each adjoint helper above) is its
# own tangent, applied to the tangents of the arrays it moves.
linear(np.reshape, np.ravel, np.squeeze, np.expand_dims, np.atleast_1d, np.atleast_2d,
       np.atleast_3d, Method("reshape"), Method("ravel"), Method("flatten"), Method("squeeze"),
       np.transpose, Method("transpose"), Method("T", attribute=True), np.swapaxes,
       Method("swapaxes"), np.moveaxis, np.broadcast_to, np.concatenate, np.stack, np.hstack,
       np.vstack, np.dstack, np.column_stack, np.split, np.array_split, np.hsplit, np.vsplit,
       np.dsplit, np.tile, np.repeat, Method("repeat"), np.flip, np.fliplr, np.flipud, np.roll,
       np.rot90, np.diag, np.diagonal, Method("diagonal"), np.trace, Method("trace"), np.triu,
       np.tril, sliding_window_view, np.rollaxis, np.matrix_transpose,
       np.linalg.matrix_transpose, np.linalg.trace, np.linalg.diagonal,
       *([np.row_stack] if hasattr(np, "row_stack") else []),
       meshgrid_adjoint, rollaxis_adjoint, split_parts, undiag, undiagonal, unpad, unrepeat,
       unslide, untile, untrace, restack, stack_parts, unconcatenate, unstack, split_like)
linear(np.append, positions=(0, 1))
linear(np.meshgrid, positions=None)


@tangent_rule(np.pad)
def pad_tangent(dots, y, x, pad_width, mode="constant", **kwargs):
    """Constant padding has a zero tangent; the copying modes copy the tangent."""
    if mode == "constant":
        return np.pad(dots[0], pad_width)
    return np.pad(dots[0], pad_width, mode, **kwargs)
