"""Slot outputs: a concatenation written into a slot is made in the slot.

    g = np.concatenate(parts, axis=1)              g = np.concatenate(parts, axis=1,
    ...                                     ->                        out=x_bar[t])
    x_bar[t] = g                                   ...

The reverse loop of a recurrent layer joins each step's gate adjoints and writes them into
that step's slot of the input's adjoint (passes/slot_writes.py): a fresh array, then a copy
of it. Made in the slot, it is one write, and g reads the slot from then on. The write
stays in the IR (it keeps g and the slot's value live), but finds g already in place:
codegen leaves it out.

It runs after the in-place pass, on a slot write it made in place (`x_bar[t] = g`, whose
slots cover x_bar, so g has the slot's shape and dtype), where nothing but that write
reads x_bar in the loop (nobody can see the slot filled early) and g goes to plain calls
of its own block that neither write into it nor keep it (the slot holds g only until the
loop is over).
"""
import operator

import numpy as np

from ..ir import Block, Builder
from ..ir.nodes import walk_ops
from .. import runtime
from .patterns import Index
from .shapes import Info


class SlotOutputs(Index):
    def __init__(self, fn):
        super().__init__(fn)
        self.readers = {}                   # value id -> the ops that read it
        for block in self.blocks:
            for op in walk_ops(block):
                for a in op.args:
                    self.readers.setdefault(a.id, []).append(op)

    def concatenation(self, block, write):
        """The np.concatenate of `write`'s value, when it may be made in the slot."""
        acc, index, g = write.args
        made = self.defs.get(g.id)
        if made is None or made.opname != "call" or made.attrs["fn"] is not np.concatenate \
                or made.attrs.get("inplace") or made not in block.ops or \
                made.attrs.get("kwnames") not in ((), ("axis",)) or \
                self.readers.get(acc.id) != [write]:
            return None
        axis = write.attrs["slot_axis"]
        shape = self.info[acc.id].shape
        slot = Info("array", shape[:axis] + shape[axis + 1:], self.info[acc.id].dtype)
        if self.info.get(g.id) != slot or self.defs.get(index.id) in block.ops[
                block.ops.index(made):]:
            return None
        others = [op for op in self.readers.get(g.id, []) if op is not write]
        if any(op.opname != "call" or op not in block.ops or op.attrs.get("inplace") or
               any(r.kind in ("list", "tuple", "dict") for r in op.results) for op in others):
            return None
        return made, slot

    def run(self):
        for block in self.blocks:
            for inner in [block] + [r for op in walk_ops(block) for r in op.regions]:
                for write in list(inner.ops):
                    if write.opname == "call" and write.attrs["fn"] is runtime.index_update \
                            and write.attrs.get("inplace") and "out" not in write.attrs and \
                            write.attrs.get("slot_axis") is not None:
                        self.make_in_slot(inner, write)
        return self

    def make_in_slot(self, block, write):
        found = self.concatenation(block, write)
        if found is None:
            return
        made, slot = found
        acc, index, _ = write.args
        builder = Builder(Block(), made.loc)
        view = builder.call(operator.getitem, [acc, index])
        self.info[view.id] = slot
        block.ops[block.ops.index(made):block.ops.index(made)] = builder.block.ops
        made.args.append(view)
        made.attrs["kwnames"] = made.attrs["kwnames"] + ("out",)


def concatenate_in_slots(fn):
    """Needs the shapes of specialised code and the in-place pass's decisions."""
    if getattr(fn, "shape_info", None):
        SlotOutputs(fn).run()
    return fn
