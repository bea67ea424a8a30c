"""Placed outputs: a pooling adjoint writes straight into the zeros a scatter would make.

The adjoint of a crop `x[index]` is a scatter, unindex(g, x, index): zeros shaped like x
with g copied in at index. A 2x2 max-pool of an odd-sized array crops its last row and
column first, so its adjoint is scattered:

    w = clamped_extremum_share(...)                 t_bar = clamped_extremum_share(
    t_bar = unindex(w.reshape(s), t, index)   ->        ..., like=t, at=index)

With `like=` and `at=` the helper (extremum_share, clamped_extremum_share) allocates the
zeros itself and writes its result into their slice: no intermediate array and no second
copy of it. x is still read for its shape and dtype only. Where the slice cannot be viewed
with the result's shape at run time the helper scatters it as before (runtime._place).

It needs the shapes and dtypes (specialised code): the result of x's dtype, reshaped (in
C order) to exactly the shape of x[index] (a smaller g would be broadcast), and a basic
index known when the code is made. Nothing else reads the result or its reshapes, and no
sum reads the scatter (the in-place pass adds those into the accumulator's slice).
"""
import operator

import numpy as np

from ..ir import Block, Builder
from ..ir.nodes import walk_ops
from ..rules.registry import Method
from .. import runtime
from .patterns import Index, is_call

# Helpers that take `like=` and `at=`: their count of positional parameters before those
# two, and the defaults of the last of them (a call may leave those out).
PLACEABLE = ((runtime.extremum_share, 5, (None, False)),
             (runtime.clamped_extremum_share, 8, ()))
RESHAPES = (np.reshape, Method("reshape"))
SUMS = (operator.add, np.add)


def _missing(call):
    """The default values of the positional parameters `call` leaves out, before `like=`;
    None when it does not call a placeable helper with a positional argument for each
    parameter without a default."""
    for fn, count, defaults in PLACEABLE:
        if call.attrs["fn"] is fn and count - len(defaults) <= len(call.args) <= count:
            return defaults[len(defaults) - (count - len(call.args)):]
    return None


class PlacedOutputs(Index):
    def __init__(self, fn):
        super().__init__(fn)
        self.fn = fn
        self.readers = {}
        for block in self.blocks:
            for op in walk_ops(block):
                for a in op.args:
                    self.readers.setdefault(a.id, []).append(op)

    def producer(self, g, block):
        """[helper call, reshapes...] when g is a placeable helper's result, reshaped in C
        order, each step read only by the next, all in `block`; else None."""
        chain, v = [], g
        while True:
            op = self.defs.get(v.id)
            if op is None or op.opname != "call" or op not in block.ops or \
                    self.uses.get(v.id) != 1 or op.attrs.get("kwnames"):
                return None
            if _missing(op) is not None:
                return [op] + chain[::-1]
            if not is_call(op, RESHAPES, len(op.args)) or \
                    (op.attrs["fn"] is np.reshape and len(op.args) != 2):
                return None
            chain.append(op)
            v = op.args[0]

    def place(self, block, scatter):
        g, x, index = scatter.args
        known, at = self.exact(index)
        array, piece = self.info.get(x.id), self.info.get(g.id)
        if not known or not runtime.is_basic_index(at) or array is None or \
                array.kind != "array" or piece is None or piece.kind != "array" or \
                any(is_call(use, SUMS, 2) for use in self.readers.get(scatter.result.id, ())):
            return False
        try:
            slot = array.standin()[at].shape
        except (IndexError, TypeError):
            return False
        chain = self.producer(g, block)
        if chain is None or piece.shape != slot or \
                getattr(self.info.get(chain[0].result.id), "dtype", None) != array.dtype:
            return False
        helper = chain[0]
        builder = Builder(Block(), scatter.loc)
        filled = [builder.const(d) for d in _missing(helper)]
        at_op = block.ops.index(scatter)
        block.ops[at_op:at_op] = builder.block.ops
        scatter.attrs = {"fn": helper.attrs["fn"], "kwnames": ("like", "at")}
        scatter.args = helper.args + filled + [x, index]
        for op in chain:
            block.ops.remove(op)
        return True

    def run(self):
        for block in self.blocks:
            for inner in [block] + [r for o in walk_ops(block) for r in o.regions]:
                for op in list(inner.ops):
                    if is_call(op, (runtime.unindex,), 3):
                        self.place(inner, op)
        return self.fn


def place_outputs(fn):
    """Needs the shapes of specialised code; leaves general code as it is."""
    if not getattr(fn, "shape_info", None):
        return fn
    return PlacedOutputs(fn).run()
