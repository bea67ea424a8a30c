"""Algebraic simplification and constant folding.

The rule set, each applied only where it cannot change a value or a dtype:

    x * 1 -> x      1 * x -> x      x / 1 -> x      x + 0 -> x   0 + x -> x   x - 0 -> x
    x ** 1 -> x     -(-x) -> x      -1 * x -> -x    x * -1 -> -x   0 - x -> -x
    x * 0 -> zeros_like(x)-free 0 (only for Python floats)
    exp(log(x)) -> x                log(exp(x)) -> x
    x.T.T -> x      transpose(transpose(x)) -> x
    (a + a*b) / (1 + b) -> a       (and the commuted forms)
    x + x -> 2 * x                  c1 * (c2 * x) -> (c1*c2) * x   (c1 or c2 a power of two)
    (-a) * b -> -(a * b)            (-a) / b -> -(a / b)   a * (-b) -> -(a * b)
                                    (a negation used once moves out, to cancel another)
    -(c * x) -> (-c) * x            (also through a chain of products)
    f(constants) -> constant        for foldable primitives

Every rule is exact in floating point: negation and scaling by a power of two
round nothing.

"Cannot change a dtype" means: the other operand is a Python float or int
constant and `x` is known to be floating point (a Python float, or an adjoint,
which is always floating), since `bool_mask * 1.0` is not `bool_mask`.
"""
import math
import operator

import numpy as np

from ..ir import Builder
from ..ir.nodes import substitute_chains, walk_ops
from ..rules import registry
from ..rules.registry import Method
from .dce import eliminate_dead_code

ARITHMETIC = {operator.add, operator.sub, operator.mul, operator.truediv, operator.neg,
              operator.pos, operator.pow, np.add, np.subtract, np.multiply, np.divide,
              np.negative, np.true_divide}


class Simplifier:
    def __init__(self, fn):
        self.fn = fn
        self.defs = {}
        self.floating = set()
        self.mapping = {}
        blocks = [fn.body] + ([fn.pullback] if getattr(fn, "pullback", None) else [])
        for block in blocks:
            for op in walk_ops(block):
                for r in op.results:
                    self.defs[r.id] = op
        self.shapes = getattr(fn, "shape_info", {})
        self.use_count = {}
        for block in blocks:
            for op in walk_ops(block):
                for a in op.args:
                    self.use_count[a.id] = self.use_count.get(a.id, 0) + 1
        for p in fn.params:
            if p.kind == "float":
                self.floating.add(p.id)
        if getattr(fn, "pullback", None) is not None:
            self.floating.update(p.id for p in fn.pullback.params)
            self.adjoint_block = fn.pullback
        self.changed = False

    # ---------------------------------------------------------------- queries
    def const(self, v):
        op = self.defs.get(v.id)
        if op is not None and op.opname == "const":
            value = op.attrs["value"]
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return value
        return None

    def is_floating(self, v):
        if v.id in self.floating or v.kind == "float" or isinstance(self.const(v), float):
            return True
        info = self.shapes.get(v.id)            # known once the code is specialised
        return info is not None and info.dtype is not None and info.dtype.kind in "fc"

    def producer(self, v, fns):
        op = self.defs.get(v.id)
        if op is not None and op.opname == "call" and op.attrs["fn"] in fns and \
                not op.attrs.get("kwnames"):
            return op
        return None

    # ------------------------------------------------------------------ rules
    def rewrite(self, op):
        """The value `op`'s result simplifies to, or None."""
        fn = op.attrs["fn"]
        args = op.args
        if op.attrs.get("kwnames"):
            return None
        c = [self.const(a) for a in args]
        if fn in (operator.mul, np.multiply) and len(args) == 2:
            for k in (0, 1):
                other = args[1 - k]
                if c[k] == 1 and self.is_floating(other):
                    return other
                if c[k] == -1 and self.is_floating(other):
                    return self.emit(op, operator.neg, [other])
        lifted = self.lift_negation(op, fn, args)
        if lifted is not None:
            return lifted
        if fn in (operator.add, np.add) and len(args) == 2 and args[0] is args[1] and \
                self.is_floating(args[0]):
            return self.emit(op, operator.mul, [self.constant(op, 2), args[0]])
        if fn in (operator.mul, np.multiply) and len(args) == 2:
            scaled = self.combine_scales(op, c, args)
            if scaled is not None:
                return scaled
        if fn in (operator.truediv, np.divide, np.true_divide) and c[1] == 1 and \
                self.is_floating(args[0]):
            return args[0]
        if fn in (operator.truediv, np.divide, np.true_divide):
            return self.cancel_factor(args[0], args[1])
        if fn in (operator.add, np.add) and len(args) == 2:
            for k in (0, 1):
                if c[k] == 0 and self.is_floating(args[1 - k]):
                    return args[1 - k]
        if fn in (operator.sub, np.subtract):
            if c[1] == 0 and self.is_floating(args[0]):
                return args[0]
            if c[0] == 0 and self.is_floating(args[1]):
                return self.emit(op, operator.neg, [args[1]])
        if fn in (operator.pow, np.power) and c[1] == 1 and self.is_floating(args[0]):
            return args[0]
        if fn in (operator.neg, np.negative):
            inner = self.producer(args[0], (operator.neg, np.negative))
            if inner is not None:
                return inner.args[0]
            return self.negate_constant_factor(op, args[0])
        if fn is np.exp:
            inner = self.producer(args[0], (np.log,))
            if inner is not None:
                return inner.args[0]
        if fn is np.log:
            inner = self.producer(args[0], (np.exp,))
            if inner is not None:
                return inner.args[0]
        if fn is Method("T", attribute=True):
            inner = self.producer(args[0], (Method("T", attribute=True),))
            if inner is not None:
                return inner.args[0]
        if fn is np.transpose and len(args) == 1:
            inner = self.producer(args[0], (np.transpose,))
            if inner is not None and len(inner.args) == 1:
                return inner.args[0]
        return self.fold(op, c)

    def lift_negation(self, op, fn, args):
        """(-a) * b -> -(a * b): negations move outwards, where two of them cancel."""
        if fn not in (operator.mul, np.multiply, operator.truediv, np.divide, np.true_divide) \
                or len(args) != 2:
            return None
        for k in (0, 1) if fn in (operator.mul, np.multiply) else (0,):
            negation = self.producer(args[k], (operator.neg, np.negative))
            if negation is not None and self.use_count.get(args[k].id) == 1:
                inner = list(args)
                inner[k] = negation.args[0]
                product = self.emit(op, fn, inner, part=True)
                return self.emit(op, operator.neg, [product])
        return None

    def negate_constant_factor(self, op, v, depth=0):
        """-(2 * b * t) -> -2 * b * t: the sign joins a constant factor, one operation less."""
        part = depth > 0
        product = self.producer(v, (operator.mul, np.multiply))
        if product is None or self.use_count.get(v.id) != 1 or depth > 4:
            return None
        for k in (0, 1):
            factor = product.args[k]
            c = self.const(factor)
            negated = self.constant(op, -c) if c is not None else \
                self.negate_constant_factor(op, factor, depth + 1)
            if negated is not None:
                args = list(product.args)
                args[k] = negated
                return self.emit(op, product.attrs["fn"], args, part=part)
        return None

    def combine_scales(self, op, c, args):
        """c1 * (c2 * x) -> (c1 * c2) * x, when the product of constants is exact."""
        for k in (0, 1):
            inner = self.producer(args[1 - k], (operator.mul, np.multiply))
            if c[k] is None or inner is None or self.use_count.get(args[1 - k].id) != 1:
                continue
            inner_c = [self.const(a) for a in inner.args]
            for j in (0, 1):
                x = inner.args[1 - j]
                if inner_c[j] is not None and self.is_floating(x) and (
                        _power_of_two(c[k]) or _power_of_two(inner_c[j])):
                    return self.emit(op, operator.mul, [self.constant(op, c[k] * inner_c[j]), x])
        return None

    def constant(self, op, value):
        return self.emit(op, None, [], const=value, part=True)

    def cancel_factor(self, numerator, denominator):
        """(a + a*b) / (1 + b) -> a: the numerator is a times the denominator."""
        total = self.producer(numerator, (operator.add, np.add))
        ratio = self.producer(denominator, (operator.add, np.add))
        if total is None or ratio is None:
            return None
        one = [self.const(x) for x in ratio.args]
        if one[0] == 1:
            b = ratio.args[1]
        elif one[1] == 1:
            b = ratio.args[0]
        else:
            return None
        for a, product in (total.args, reversed(total.args)):
            mul = self.producer(product, (operator.mul, np.multiply))
            if mul is not None and set(map(id, mul.args)) == {id(a), id(b)} and a is not b:
                return a
        return None

    def fold(self, op, c):
        entry = registry.lookup(op.attrs["fn"])
        if entry is None or not entry.foldable or entry.effect or entry.nondiff:
            return None
        values = []
        for a in op.args:
            d = self.defs.get(a.id)
            if d is None or d.opname != "const":
                return None
            values.append(d.attrs["value"])
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            return None
        try:
            result = op.attrs["fn"](*values)
        except Exception:
            return None
        if not isinstance(result, (int, float)) or (isinstance(result, float) and
                                                     not math.isfinite(result)):
            return None
        return self.emit(op, None, [], const=result)

    def emit(self, op, fn, args, const=None, part=False):
        """A new op just before `op`, in `op`'s block (found lazily); a `part` of the
        replacement stays unnamed, so codegen writes it inside the final expression."""
        block = self.block_of[id(op)]
        builder = Builder(block, op.loc)
        hint = "" if part else op.result.hint
        if fn is None:
            new = builder.op("const", attrs={"value": const}, hints=[hint])
        else:
            new = builder.op("call", args, attrs={"fn": fn, "kwnames": ()},
                             hints=[hint], kinds=[op.result.kind])
        block.ops.pop()
        block.ops.insert(block.ops.index(op), new)
        self.defs[new.result.id] = new
        if fn is not None and op.result.id in self.shapes:   # every rule keeps the value,
            self.shapes[new.result.id] = self.shapes[op.result.id]   # so shape and dtype
        if self.is_floating(op.result) or any(self.is_floating(a) for a in args):
            self.floating.add(new.result.id)
        return new.result

    # -------------------------------------------------------------------- run
    def run(self):
        self.block_of = {}
        blocks = [self.fn.body] + ([self.fn.pullback] if getattr(self.fn, "pullback", None)
                                   else [])
        for block in blocks:
            self.visit(block, block is not self.fn.body)
        substitute_chains(blocks, self.mapping)
        return self.changed

    def visit(self, block, in_pullback):
        for op in list(block.ops):
            self.block_of[id(op)] = block
        for op in list(block.ops):
            op.args = [self.mapping.get(a, a) for a in op.args]
            for region in op.regions:
                self.visit(region, in_pullback)
            if op.opname != "call":
                continue
            fn = op.attrs["fn"]
            if in_pullback and op.result.kind != "int" and (fn in PULLBACK_FLOATING or (
                    fn in ARITHMETIC and any(self.is_floating(a) for a in op.args))):
                self.floating.add(op.result.id)
            replacement = self.rewrite(op)
            if replacement is not None and replacement is not op.result:
                if not replacement.hint and (in_pullback or not op.result.hint.endswith("_bar")):
                    replacement.hint = op.result.hint
                self.mapping[op.result] = replacement
                self.changed = True


def _power_of_two(c):
    return isinstance(c, (int, float)) and c != 0 and math.isfinite(c) and \
        math.frexp(abs(c))[0] == 0.5


def _pullback_helpers():
    from .. import runtime
    return {runtime.unbroadcast, runtime.unreduce, runtime.unindex, runtime.zeros_like,
            runtime.matmul_left, runtime.matmul_right}


PULLBACK_FLOATING = _pullback_helpers()


def simplify(fn):
    """Apply the rule set until nothing changes; returns the function."""
    for _ in range(10):
        eliminate_dead_code(fn)        # rules that need a value used once count live uses
        if not Simplifier(fn).run():
            break
    return fn
