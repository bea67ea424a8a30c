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

A loop over range(stop) (a reverse loop over its tape included) writes each trip's
factors straight into buffers allocated before it, `a_rows = np.empty((stop, m, k))`,
`a_rows[t] = a`, and multiplies `a_rows.reshape(-1, k)`: the same matrices without
keeping n arrays and joining them after the loop (a second copy of every row).

It applies to a carried value of a `for` loop that the body reads only to add one matrix
product of two 2-d arrays the body computes, with shapes and dtypes known (specialised
code) and the same on every trip. The lists keep each trip's factors as they were: the
in-place pass never updates a value after it is pushed.
"""
import operator

import numpy as np

from ..ir import Block, Builder
from ..ir.nodes import Value, substitute, walk_ops
from ..rules.registry import Method
from ..rules.structures import make_tuple
from .. import runtime
from .dce import eliminate_dead_code
from .patterns import Index, is_call

SUMS = (operator.add, np.add)
PRODUCTS = (operator.matmul, np.matmul)
TRANSPOSES = (Method("T", attribute=True), np.transpose)
RESHAPE = Method("reshape")


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
        self.joined_shape = {}              # buffer id -> its shape as a joined factor

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
        count = self.trip_count(block, loop) if self.counts_from_zero(loop) else None
        rows = {}        # (value id, slot write or None) -> what collects it (list, buffer)
        for k in sorted(found, reverse=True):
            total, product = found[k]
            parts, transposed = self.factors(product)
            slots = self.slot_layout(loop, parts) if transposed else None
            keys = [(value.id, slots and id(slots[1])) for value, _ in parts]
            at = body.ops.index(total)
            del body.ops[at]
            for (value, axis), key in zip(parts, keys):
                if key in rows:
                    continue
                if slots is not None:
                    ops, rows[key] = self.in_slots(block, loop, value, *slots)
                elif count is not None:
                    ops, rows[key] = self.rows_written(block, loop, value, axis, count)
                else:
                    rows[key] = self.new_list(block, loop, value)
                    ops = [Builder(Block(), total.loc).op("push", [rows[key], value],
                                                          nresults=0)]
                body.ops[at:at] = ops
                at += len(ops)
            init, result = loop.args[len(loop.args) - len(loop.results) + k], loop.results[k]
            _drop_carried(loop, k)
            ops, batched = self.joined(loop, init, [(rows[key], axis) for (_, axis), key
                                                    in zip(parts, keys)],
                                       transposed, total.result, count is not None)
            after = block.ops.index(loop) + 1
            block.ops[after:after] = ops
            for block_ in self.blocks:
                substitute(block_, {result: batched})
        return True

    def counts_from_zero(self, loop):
        """Whether the loop runs over range(0, stop, 1): its trip index is its variable."""
        if loop.attrs.get("over") != "range":
            return False
        bounds = [self.info.get(a.id) for a in (loop.args[0], loop.args[2])]
        return all(b is not None and b.kind == "exact" for b in bounds) and \
            [b.value for b in bounds] == [0, 1]

    def rows_written(self, block, loop, value, axis, count):
        """A buffer (trips, *shape) for every trip's `value` ((rows, trips, columns) for
        the columns of axis 1), allocated before the loop and carried through it, each trip
        writing its value at its index: the joined factor is a view of it, without a join.
        The ops that write it and the loop's final buffer."""
        rows, columns = self.info[value.id].shape
        shape = [count, rows, columns]
        if axis:
            shape[:2] = shape[1::-1]
        inside = Builder(Block(), loop.loc)
        trip = loop.regions[0].params[0]
        place = inside.call(make_tuple, [inside.const(slice(None)), trip]) if axis else trip
        ops, written = self.written_at(block, loop, value, shape, place,
                                       (rows, -1) if axis else (-1, columns))
        return inside.block.ops + ops, written

    def written_at(self, block, loop, value, shape, place, joined):
        """A buffer of `shape` (sizes or values) allocated before the loop and carried
        through it, each trip writing its `value` at `place`; the ops that write it and the
        loop's final buffer, which joins as a `joined`-shaped matrix."""
        before = Builder(Block(), loop.loc)
        shape = [size if isinstance(size, Value) else before.const(size) for size in shape]
        hint = (value.hint or "t") + "_rows"
        empty = before.call(np.empty, [before.call(make_tuple, shape),
                                       before.const(self.info[value.id].dtype.type)],
                            kwnames=("dtype",), hint=hint)
        block.ops[block.ops.index(loop):block.ops.index(loop)] = before.block.ops
        body = loop.regions[0]
        buffer, written = Value(hint), Value(hint)
        loop.args.append(empty)
        body.params.append(buffer)
        loop.results.append(written)
        inside = Builder(Block(), loop.loc)
        body.ops[-1].args.append(inside.call(runtime.index_update, [buffer, place, value],
                                             hint=hint))
        self.joined_shape[written.id] = joined
        return inside.block.ops, written

    def slot_layout(self, loop, parts):
        """(written, write, result) when one factor is `written` into its own slot of a
        carried array on every trip, slots that cover it (passes/slot_writes.py), by
        `write`, the array being the loop's `result`; the factors are rows (axis 0) and
        the slot, a trip's rows, is not along the array's last axis."""
        body = loop.regions[0]
        for value, _ in parts:
            for j, out in enumerate(body.ops[-1].args):
                write = self.defs.get(out.id)
                if write is None or write.attrs.get("slot_axis") is None or \
                        write.args[2] is not value or write.args[0] is not body.params[1 + j]:
                    continue
                shape, axis = self.info[out.id].shape, write.attrs["slot_axis"]
                if axis < len(shape) - 1 and \
                        shape[:axis] + shape[axis + 1:] == self.info[value.id].shape:
                    return value, write, loop.results[j]
        return None

    def in_slots(self, block, loop, value, written, write, result):
        """The rows of `value` laid out as the written factor's slots: that factor's
        array itself (no copy), or a buffer allocated before the loop, shaped like the
        array with `value`'s columns, that each trip writes at its slot. Row r of both
        flattened holds the same trip's row, so their product sums the same terms."""
        columns = self.info[value.id].shape[1]
        if value is written:
            self.joined_shape[result.id] = (-1, columns)
            return [], result
        shape = list(self.info[result.id].shape)
        shape[-1] = columns
        return self.written_at(block, loop, value, shape, write.args[1], (-1, columns))

    def trip_count(self, block, loop):
        """The trips of range(stop): stop itself when it is a length or a known count,
        else max(stop, 0) (computed before the loop in `block`)."""
        stop = loop.args[1]
        known = self.info.get(stop.id)
        if is_call(self.defs.get(stop.id), (len,), 1) or \
                known is not None and known.kind == "exact" and known.value >= 0:
            return stop
        builder = Builder(Block(), loop.loc)
        count = builder.call(max, [stop, builder.const(0)])
        block.ops[block.ops.index(loop):block.ops.index(loop)] = builder.block.ops
        return count

    def new_list(self, block, loop, value):
        builder = Builder(Block(), loop.loc)
        stack = builder.op("stack", hints=[(value.hint or "t") + "_rows"], kinds=["stack"])
        block.ops.insert(block.ops.index(loop), stack)
        return stack.result

    def joined(self, loop, init, lists, transposed, like, written):
        """The ops after the loop that give the accumulator's final value: init plus the
        product of the joined lists or `written` buffers (the product alone over
        zeros_like), guarded by `if rows:` (`if stop > 0:` over buffers) unless the loop
        is known to run."""
        acc = self.info[like.id]
        trips = self.trips(loop)
        start = self.defs.get(init.id)
        from_zeros = is_call(start, (runtime.zeros_like,), 1) and self.uses.get(init.id) == 1
        builder = Builder(Block(), loop.loc)
        factors = []
        for stack, axis in lists:
            if written:
                shape = [builder.const(size) for size in self.joined_shape[stack.id]]
                factors.append(builder.call(RESHAPE, [stack] + shape))
            elif axis:
                axis_value = builder.const(axis)
                factors.append(builder.call(np.concatenate, [stack, axis_value],
                                            kwnames=("axis",)))
            else:
                factors.append(builder.call(np.concatenate, [stack]))
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
        test = Builder(Block(), loop.loc)
        runs = test.call(operator.gt, [loop.args[1], test.const(0)]) if written else lists[0][0]
        guard = test.op("if", [runs], hints=[like.hint], regions=[builder.block, otherwise.block])
        self.info[guard.result.id] = acc
        return test.block.ops, guard.result

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
