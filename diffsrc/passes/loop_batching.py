"""Loop batching: a sum of matrix products over the trips of a loop becomes one product.

    for ...:                          a_rows = []
        acc = acc + a.T @ b    ->     b_rows = []
                                      for ...:
                                          a_rows.append(a)
                                          b_rows.append(b)
                                      if a_rows:
                                          A, B = np.concatenate(a_rows), np.concatenate(b_rows)
                                          acc = acc + A.T @ B

since sum_k a_k.T @ b_k = [a_1; ...; a_n].T @ [b_1; ...; b_n], and sum_k x_k @ y_k =
[x_1 ... x_n] @ [y_1; ...; y_n] for a left factor that is no transpose. BLAS runs one
product with an n times longer inner dimension at a much higher rate than n small ones:
this is the weight adjoint of a recurrent layer, `W_bar += h.T @ g` on every step of
the reverse loop. An accumulator that starts as zeros_like(...) becomes the product.

It applies to a carried value of a `for` loop that the body reads only to add one matrix
product of two 2-d arrays the body computes, with shapes and dtypes known (specialised
code) and the same on every trip. The lists keep each trip's factors as they were: the
in-place pass never updates a value after it is pushed.
"""
import operator

import numpy as np

from ..ir import Block, Builder
from ..ir.nodes import substitute, walk_ops
from ..rules.registry import Method
from .. import runtime
from .dce import eliminate_dead_code
from .patterns import Index, is_call

SUMS = (operator.add, np.add)
PRODUCTS = (operator.matmul, np.matmul)
TRANSPOSES = (Method("T", attribute=True), np.transpose)


def _drop_carried(loop, k):
    """Remove carried value k from a `for` loop that no longer carries anything in it."""
    body = loop.regions[0]
    del loop.args[len(loop.args) - len(loop.results) + k]
    del body.params[1 + k]
    del body.ops[-1].args[k]
    del loop.results[k]


class LoopBatching(Index):
    def __init__(self, fn):
        super().__init__(fn)
        self.fn = fn
        self.info = fn.shape_info

    def matrix(self, v):
        info = self.info.get(v.id)
        return info if info is not None and info.kind == "array" and len(info.shape) == 2 \
            and info.dtype.kind in "fc" else None

    def accumulated_product(self, body, k):
        """(sum, product) when the body reads carried value k only in `acc + x @ y`, which
        it yields as the next value, with x and y 2-d arrays computed in the body."""
        param = body.params[1 + k]
        total = self.defs.get(body.ops[-1].args[k].id)
        if not is_call(total, SUMS, 2) or total not in body.ops or param not in total.args \
                or self.uses.get(param.id) != 1 or self.uses.get(total.result.id) != 1:
            return None
        term = total.args[1] if total.args[0] is param else total.args[0]
        product = self.defs.get(term.id)
        if not is_call(product, PRODUCTS, 2) or product not in body.ops or \
                self.uses.get(term.id) != 1:
            return None
        local = {v.id for v in body.params[1:]} | {r.id for op in body.ops for r in op.results}
        acc = self.matrix(param)
        if acc is None or self.info.get(term.id) != acc or \
                self.info.get(total.result.id) != acc:
            return None
        for v in product.args:
            if v.id not in local or self.matrix(v) is None or self.matrix(v).dtype != acc.dtype:
                return None
        return total, product

    def factors(self, product):
        """What to collect on each trip and the axis to join it along: the rows of the
        right factor; of the left one, the rows of what it transposes, else its columns."""
        x, y = product.args
        transpose = self.defs.get(x.id)
        if is_call(transpose, TRANSPOSES, 1) and self.matrix(transpose.args[0]) is not None:
            return [(transpose.args[0], 0), (y, 0)], True
        return [(x, 1), (y, 0)], False

    def trips(self, loop):
        """The trip count, when the loop runs over a range of known bounds."""
        if loop.attrs.get("over") != "range":
            return None
        bounds = [self.info.get(a.id) for a in loop.args[:3]]
        if not all(b is not None and b.kind == "exact" for b in bounds):
            return None
        return len(range(*(b.value for b in bounds)))

    def batch(self, block, loop):
        """Batch every accumulated product of `loop` (in `block`); whether any was."""
        body = loop.regions[0]
        found = {k: self.accumulated_product(body, k) for k in range(len(loop.results))}
        found = {k: f for k, f in found.items() if f is not None}
        if not found:
            return False
        rows = {}                           # value id -> the list collecting it
        for k in sorted(found, reverse=True):
            total, product = found[k]
            parts, transposed = self.factors(product)
            at = body.ops.index(total)
            del body.ops[at]
            for value, _ in parts:
                if value.id not in rows:
                    rows[value.id] = self.new_list(block, loop, value)
                    body.ops.insert(at, Builder(Block(), total.loc).op(
                        "push", [rows[value.id], value], nresults=0))
                    at += 1
            init, result = loop.args[len(loop.args) - len(loop.results) + k], loop.results[k]
            _drop_carried(loop, k)
            ops, batched = self.joined(loop, init, [(rows[v.id], axis) for v, axis in parts],
                                       transposed, total.result)
            after = block.ops.index(loop) + 1
            block.ops[after:after] = ops
            for block_ in self.blocks:
                substitute(block_, {result: batched})
        return True

    def new_list(self, block, loop, value):
        builder = Builder(Block(), loop.loc)
        stack = builder.op("stack", hints=[(value.hint or "t") + "_rows"], kinds=["stack"])
        block.ops.insert(block.ops.index(loop), stack)
        return stack.result

    def joined(self, loop, init, lists, transposed, like):
        """The ops after the loop that give the accumulator's final value: init plus the
        product of the joined lists (the product alone over zeros_like), guarded by
        `if rows:` unless the loop is known to run."""
        acc = self.info[like.id]
        trips = self.trips(loop)
        start = self.defs.get(init.id)
        from_zeros = is_call(start, (runtime.zeros_like,), 1) and self.uses.get(init.id) == 1
        builder = Builder(Block(), loop.loc)
        factors = []
        for stack, axis in lists:
            if axis:
                axis_value = builder.const(axis)
                joined = builder.call(np.concatenate, [stack, axis_value], kwnames=("axis",))
            else:
                joined = builder.call(np.concatenate, [stack])
            factors.append(joined)
        if transposed:
            factors[0] = builder.call(TRANSPOSES[0], [factors[0]])
        value = builder.call(operator.matmul, factors, hint=like.hint)
        self.info[value.id] = acc
        if not from_zeros:
            value = builder.call(operator.add, [init, value], hint=like.hint)
            self.info[value.id] = acc
        if trips:
            return builder.block.ops, value
        builder.op("yield", [value], nresults=0)
        otherwise = Builder(Block(), loop.loc)
        if from_zeros:                     # zeros only where the loop did not run
            otherwise.block.ops.append(start)
            self.block_of[id(start)].ops.remove(start)
        otherwise.op("yield", [init], nresults=0)
        guard = Builder(Block(), loop.loc).op("if", [lists[0][0]], hints=[like.hint],
                                              regions=[builder.block, otherwise.block])
        self.info[guard.result.id] = acc
        return [guard], guard.result

    def run(self):
        loops = [op for block in self.blocks for op in walk_ops(block)
                 if op.opname == "for" and op.attrs.get("exit") is None]
        changed = False
        for loop in loops:
            changed |= self.batch(self.block_of[id(loop)], loop)
        if changed:
            eliminate_dead_code(self.fn)
        return self.fn


def batch_loop_products(fn):
    """Needs the shapes of specialised code; leaves general code as it is."""
    if not getattr(fn, "shape_info", None):
        return fn
    return LoopBatching(fn).run()
