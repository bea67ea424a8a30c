"""Slot writes: a reverse loop that adds each trip's adjoint into its own slot writes it.

A loop that reads `x[:, t]` on every trip t gives x an adjoint accumulated in the reverse
loop, one scatter per trip into an array of zeros:

    x_bar = zeros_like(x)                      x_bar = np.empty_like(x)
    for ...:                          ->       for ...:
        x_bar = x_bar + unindex(g, x, idx)         x_bar = index_update(x_bar, idx, g)

Each trip's index comes off the tape, pushed by one trip of the forward loop: constants
and that loop's trip variable, which takes a different value on every trip. Distinct
trips then select disjoint slots, so every slot is still zero when its trip adds to it,
and adding to zero is writing: the same numbers, but that -0.0 stays -0.0 (the in-place
pass then writes the slot, `x_bar[idx] = g`: one write, not a read and a write of
x_bar). When the slots cover x_bar (the forward loop runs over the whole axis, every
other index is `:`) and the reverse loop pops them all, nothing is left to zero first;
the write's `slot_axis` attribute says so (loop batching then reads x_bar as the stacked
rows of g, passes/loop_batching.py).

It needs the shapes and dtypes (specialised code): the accumulator, x and the sum alike,
g of their dtype. Trip values start at zero or above and grow (the stop may be a count
from the caller), so no two name one slot through a negative index.
"""
import operator

import numpy as np

from ..ir.nodes import walk_ops
from ..rules.structures import make_tuple
from .. import runtime
from .patterns import Index, is_call

SUMS = (operator.add, np.add)
PLAIN_PARTS = (slice, int, type(None), type(Ellipsis))
TRIP = object()                             # where the trip variable is in an index


class SlotWrites(Index):
    def __init__(self, fn):
        super().__init__(fn)
        self.pushes, self.pops = {}, {}      # tape id -> [push ops], [pop ops]
        self.top_level = set(map(id, fn.body.ops))
        for block in self.blocks:
            for op in walk_ops(block):
                if op.opname in ("push", "pop"):
                    table = self.pushes if op.opname == "push" else self.pops
                    table.setdefault(op.args[0].id, []).append(op)

    def trip_slots(self, tape, position):
        """For the index pushed at `position` of `tape` by one forward loop (at the top
        of the function, once per trip): (index parts with TRIP at the trip variable, range
        bounds of the loop, stop None where not known); None when trips may not name
        disjoint slots."""
        pushes = self.pushes.get(tape.id, [])
        if len(pushes) != 1:
            return None
        push = pushes[0]
        loop = next((op for block in self.blocks for op in walk_ops(block)
                     if op.opname == "for" and op.regions and push in op.regions[0].ops), None)
        if loop is None or loop.attrs.get("over") != "range" or loop.attrs.get("exit") \
                is not None or id(loop) not in self.top_level:
            return None
        (_, start), (known_stop, stop), (_, step) = map(self.exact, loop.args[:3])
        if type(start) is not int or type(step) is not int or start < 0 or step <= 0:
            return None
        stop = stop if known_stop and type(stop) is int else None   # a count from the caller
        trip, index = loop.regions[0].params[0], push.args[1 + position]
        if index is trip:
            return (TRIP,), (start, stop, step)
        built = self.defs.get(index.id)
        if built is None or built.opname != "call" or built.attrs["fn"] is not make_tuple or \
                [a is trip for a in built.args].count(True) != 1:
            return None
        parts = []
        for a in built.args:
            if a is trip:
                parts.append(TRIP)
                continue
            known, value = self.exact(a)
            if not known or not isinstance(value, PLAIN_PARTS) or type(value) is bool:
                return None
            parts.append(value)
        return tuple(parts), (start, stop, step)

    def slot_sum(self, loop, k):
        """(sum, unindex, zeros op, index parts, trip bounds) when carried value k of
        `loop` starts as zeros and each trip adds g into the slot its popped index names."""
        body = loop.regions[0]
        param, init = body.params[1 + k], loop.args[3 + k]
        total = self.defs.get(body.ops[-1].args[k].id)
        if not is_call(total, SUMS, 2) or total not in body.ops or param not in total.args:
            return None
        term = total.args[1] if total.args[0] is param else total.args[0]
        scatter = self.defs.get(term.id)
        start = self.defs.get(init.id)
        if not is_call(scatter, (runtime.unindex,), 3) or scatter not in body.ops or \
                self.uses.get(term.id) != 1 or not is_call(start, (runtime.zeros_like,), 1):
            return None
        g, x, index = scatter.args
        pop = self.defs.get(index.id)
        if pop is None or pop.opname != "pop" or pop not in body.ops or \
                len(self.pops.get(pop.args[0].id, [])) != 1:
            return None
        acc = self.info.get(param.id)
        if acc is None or acc.kind != "array" or any(
                self.info.get(v.id) != acc for v in (init, x, total.result)) or \
                getattr(self.info.get(g.id), "dtype", None) != acc.dtype:
            return None
        slots = self.trip_slots(pop.args[0], pop.results.index(index))
        return None if slots is None else (total, scatter, start) + slots

    def covers(self, loop, pop, parts, bounds, shape):
        """Whether the trips' slots are all of the array and the reverse loop pops them
        all: the trip variable runs over its whole axis, every other part is `:`."""
        stop = self.defs.get(loop.args[1].id)
        counts_tape = is_call(stop, (len,), 1) and stop.args[0] is pop.args[0] and \
            [self.exact(a) for a in (loop.args[0], loop.args[2])] == [(True, 0), (True, 1)]
        axis = parts.index(TRIP)
        whole = slice(None)
        return counts_tape and len(parts) <= len(shape) and \
            all(p == whole for k, p in enumerate(parts) if k != axis) and \
            bounds == (0, shape[axis], 1)

    def rewrite(self, loop):
        body = loop.regions[0]
        for k in range(len(loop.results)):
            found = self.slot_sum(loop, k)
            if found is None:
                continue
            total, scatter, start, parts, bounds = found
            g, x, index = scatter.args
            total.attrs = {"fn": runtime.index_update, "kwnames": ()}
            total.args = [body.params[1 + k], index, g]
            body.ops.remove(scatter)
            pop = self.defs[index.id]
            if self.uses.get(start.result.id) == 1 and \
                    self.covers(loop, pop, parts, bounds, self.info[x.id].shape):
                start.attrs = {"fn": np.empty_like, "kwnames": ()}
                total.attrs["slot_axis"] = parts.index(TRIP)    # loop batching reads it

    def run(self):
        for block in self.blocks:
            for op in list(walk_ops(block)):
                if op.opname == "for" and op.attrs.get("over") == "range":
                    self.rewrite(op)


def write_slots(fn):
    """Needs the shapes of specialised code; leaves general code as it is."""
    if getattr(fn, "shape_info", None):
        SlotWrites(fn).run()
    return fn
