"""Composite expressions with a cheaper derivative, recognised as one primitive.

The logistic function written out, `1 / (1 + np.exp(-x))`, differentiated op by op
keeps exp(-x) and 1 + exp(-x) for the pullback (two arrays besides the result) and
computes `y_bar * y / t * e`, which is 0 * inf = nan where exp(-x) overflows. As
`sigmoid(x)` (runtime.sigmoid: the same operations in the same order, on one buffer)
its adjoint is `y_bar * y * (1 - y)`, from the result alone.

SiLU written `x / (1 + np.exp(-x))` becomes `silu(x, t)` with t = 1 + exp(-x) left as
written (runtime.silu: the same division): its adjoint `y_bar * (x - y + 1) / t` divides
once, where op by op it divides twice and also keeps exp(-x). Written as x times the
logistic function, `x * (1 / (1 + np.exp(-x)))` (either order), it becomes
`silu_by_reciprocal(x, t)`: the same product of x and 1 / t, and the same adjoint.

The max shift of a logsumexp, softmax or log-softmax (`m = np.max(z, axis, keepdims=True)`,
then `np.log(np.sum(np.exp(z - m), axis, keepdims=True)) + m`, ...) becomes
`max_shift(z, axis)`, which carries no derivative, where every reader of m is part of an
expression whose value does not depend on m (`ShiftTags`). In exact arithmetic m's
adjoint is then zero; op by op it is a rounding leftover sent back through the max.

Runs before differentiation, so the parts never reach a tape. A part that is also used
elsewhere keeps the expression as written: rewriting would compute it twice.
"""
import operator

import numpy as np

from ..ir.nodes import walk_ops
from ..rules.registry import Method
from .. import runtime
from .patterns import Index, is_call

NEGATIONS = (operator.neg, np.negative)
SUMS = (operator.add, np.add)
DIFFERENCES = (operator.sub, np.subtract)
PRODUCTS = (operator.mul, np.multiply)
QUOTIENTS = (operator.truediv, np.divide, np.true_divide)
MAXIMA = (np.max, np.amax, Method("max"))
TOTALS = (np.sum, Method("sum"))
REDUCTION_KEYWORDS = ("axis", "keepdims")
UNSET = object()


class ShiftTags:
    """How values depend on a shift m = max(z, axis, keepdims=True) (constant along axis):
    ("add", k) for u + k*m, ("mul", k) for u * exp(k*m), u not depending on m. The ops
    that keep that form: z - m, exp, log, a sum over the same axis (keepdims) of a "mul",
    and sums, differences, products and quotients of two tagged values of one kind; a
    result with k == 0 does not depend on m at all."""

    def __init__(self, composites, z, axis):
        self.composites, self.z, self.axis = composites, z, axis

    def of(self, op, tags):
        """The tag of op's result, given the tags of its arguments; None where the op
        does not keep the form (or reads an untagged value other than z in z - m)."""
        if op.opname != "call":
            return None
        fn, args = op.attrs["fn"], op.args
        total = self.composites.reduction(op, TOTALS)
        if total is not None:
            tag = tags.get(args[0].id)
            same_axis = total[1:] == (self.axis, True)
            return tag if same_axis and tag is not None and tag[0] == "mul" else None
        if op.attrs.get("kwnames"):
            return None
        given = [tags.get(a.id) for a in args]
        if len(args) == 1 and given[0] is not None:
            kind, k = given[0]
            if fn is np.exp and kind == "add":
                return ("mul", k)
            if fn is np.log and kind == "mul":
                return ("add", k)
            return None
        if len(args) != 2:
            return None
        if fn in DIFFERENCES and given[0] is None and args[0] is self.z and \
                given[1] is not None and given[1][0] == "add":
            return ("add", -given[1][1])
        if None in given or given[0][0] != given[1][0]:
            return None
        kind, (_, k1), (_, k2) = given[0][0], given[0], given[1]
        sign = {"add": (SUMS, DIFFERENCES), "mul": (PRODUCTS, QUOTIENTS)}[kind]
        if fn in sign[0]:
            return (kind, k1 + k2)
        if fn in sign[1]:
            return (kind, k1 - k2)
        return None


class Composites(Index):
    def is_one(self, v):
        value = self.constant(v)
        return type(value) in (int, float) and value == 1

    def constant(self, v):
        """The value of `v` where a const op defines it, else UNSET."""
        op = self.defs.get(v.id)
        return op.attrs["value"] if op is not None and op.opname == "const" else UNSET

    def part(self, v, fns, arity):
        """The op computing `v` with one of `fns` on `arity` positional operands, when `v`
        is read nowhere else."""
        op = self.defs.get(v.id)
        return op if is_call(op, fns, arity) and self.uses.get(v.id) == 1 else None

    def logistic_argument(self, t):
        """x, when `t` is 1 + exp(-x) (the sum in either order), its parts read only there."""
        total = self.part(t, SUMS, 2)
        if total is None:
            return None
        for one, term in (total.args, reversed(total.args)):
            exp = self.part(term, (np.exp,), 1) if self.is_one(one) else None
            negation = self.part(exp.args[0], NEGATIONS, 1) if exp is not None else None
            if negation is not None:
                return negation.args[0]
        return None

    def logistic(self, op):
        """1 / (1 + exp(-x)) -> sigmoid(x); x / (1 + exp(-x)) -> silu(x, 1 + exp(-x))."""
        if not is_call(op, QUOTIENTS, 2):
            return
        numerator, t = op.args
        x = self.logistic_argument(t)
        if x is None:
            return
        if self.is_one(numerator):       # the parts are dead now; dce removes them
            op.attrs = {"fn": runtime.sigmoid, "kwnames": ()}
            op.args = [x]
        elif numerator is x:
            op.attrs = {"fn": runtime.silu, "kwnames": ()}

    def silu_product(self, op):
        """x * (1 / (1 + exp(-x))), either order -> silu_by_reciprocal(x, 1 + exp(-x)).
        Runs before `logistic`, which would make the quotient a sigmoid without t."""
        if not is_call(op, PRODUCTS, 2):
            return
        for x, factor in (op.args, op.args[::-1]):
            quotient = self.part(factor, QUOTIENTS, 2)
            if quotient is not None and self.is_one(quotient.args[0]) and \
                    self.logistic_argument(quotient.args[1]) is x:
                op.attrs = {"fn": runtime.silu_by_reciprocal, "kwnames": ()}
                op.args = [x, quotient.args[1]]
                return

    def reduction(self, op, fns):
        """(operands by name, axis, keepdims) of `op`, a call of one of `fns` given x,
        (x, axis) or those and the keywords axis and keepdims, both constants; else None."""
        if op is None or op.opname != "call" or op.attrs["fn"] not in fns:
            return None
        kwnames = tuple(op.attrs.get("kwnames", ()))
        names = ("x",) + REDUCTION_KEYWORDS[:len(op.args) - len(kwnames) - 1] + kwnames
        if len(names) != len(op.args) or len(set(names)) != len(names) or \
                not set(names) <= {"x"} | set(REDUCTION_KEYWORDS):
            return None
        given = dict(zip(names, op.args))
        axis = self.constant(given["axis"]) if "axis" in given else None
        keepdims = self.constant(given["keepdims"]) if "keepdims" in given else False
        if axis is UNSET or keepdims is UNSET:
            return None
        return given, axis, keepdims is True

    def max_shift(self, op):
        """m = max(z, axis, keepdims=True) -> max_shift(z, axis) where every reader of m,
        and of each value tagged from it, keeps ShiftTags' form: the readers end in
        results that do not depend on m."""
        found = self.reduction(op, MAXIMA)
        if found is None or "axis" not in found[0] or not found[2]:
            return
        given, axis, _ = found
        rules, tags = ShiftTags(self, given["x"], axis), {op.result.id: ("add", 1)}
        for block in self.blocks:
            for reader in walk_ops(block):
                if any(a.id in tags for a in reader.args):
                    tag = rules.of(reader, tags)
                    if tag is None:
                        return
                    if tag[1] != 0:
                        tags[reader.result.id] = tag
        op.attrs = {"fn": runtime.max_shift, "kwnames": ()}
        op.args = [given["x"], given["axis"]]

    def run(self):
        for block in self.blocks:
            for op in walk_ops(block):
                self.silu_product(op)
        for block in self.blocks:
            for op in walk_ops(block):
                self.logistic(op)
                self.max_shift(op)


def recognize_composites(fn):
    Composites(fn).run()
    return fn
