"""Composite expressions with a cheaper derivative, recognised as one primitive.

The logistic function written out, `1 / (1 + np.exp(-x))`, differentiated op by op
keeps exp(-x) and 1 + exp(-x) for the pullback (two arrays besides the result) and
computes `y_bar * y / t * e`, which is 0 * inf = nan where exp(-x) overflows. As
`sigmoid(x)` (runtime.sigmoid: the same operations in the same order, on one buffer)
its adjoint is `y_bar * y * (1 - y)`, from the result alone.

Runs before differentiation, so the parts never reach a tape. A part that is also used
elsewhere keeps the expression as written: rewriting would compute it twice.
"""
import operator

import numpy as np

from ..ir.nodes import walk_ops
from .. import runtime
from .patterns import Index, is_call

NEGATIONS = (operator.neg, np.negative)
SUMS = (operator.add, np.add)
QUOTIENTS = (operator.truediv, np.divide, np.true_divide)


class Composites(Index):
    def is_one(self, v):
        op = self.defs.get(v.id)
        return op is not None and op.opname == "const" and \
            type(op.attrs["value"]) in (int, float) and op.attrs["value"] == 1

    def part(self, v, fns, arity):
        """The op computing `v` with one of `fns` on `arity` positional operands, when `v`
        is read nowhere else."""
        op = self.defs.get(v.id)
        return op if is_call(op, fns, arity) and self.uses.get(v.id) == 1 else None

    def sigmoid_argument(self, op):
        """x, when `op` computes 1 / (1 + exp(-x)) (the sum in either order)."""
        if not is_call(op, QUOTIENTS, 2) or not self.is_one(op.args[0]):
            return None
        total = self.part(op.args[1], SUMS, 2)
        if total is None:
            return None
        for one, term in (total.args, reversed(total.args)):
            exp = self.part(term, (np.exp,), 1) if self.is_one(one) else None
            negation = self.part(exp.args[0], NEGATIONS, 1) if exp is not None else None
            if negation is not None:
                return negation.args[0]
        return None

    def run(self):
        for block in self.blocks:
            for op in walk_ops(block):
                x = self.sigmoid_argument(op)
                if x is not None:          # the parts are dead now; dce removes them
                    op.attrs = {"fn": runtime.sigmoid, "kwnames": ()}
                    op.args = [x]


def recognize_composites(fn):
    Composites(fn).run()
    return fn
