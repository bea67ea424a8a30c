"""Adjoints of slices that tile an array: one concatenation instead of a sum of scatters.

Code that cuts an array into slices along one axis (the gates of an LSTM,
`x[:, :h]`, `x[:, h:2 * h]`, ...) gets, as the adjoint of the array, a sum of
scatters: `unindex(a, x, (:, :h)) + unindex(b, x, (:, h:2 * h)) + ...`, each a
fresh array of zeros with one slice filled, then added. When the slices cover the
axis exactly, once each, that sum is `np.concatenate([a, b, ...], axis=1)`: one
write of the result, and `x` itself is no longer read (a loop tape need not keep
it, since unindex read it only for its shape).

Every entry of the sum is one slice's value plus zeros, so the concatenation gives
the same numbers. It needs the shapes and the slices known (specialised code), each
piece shaped like its slice and of the array's dtype (no broadcasting or casting).
"""
import operator

import numpy as np

from ..ir import Block, Builder
from ..ir.nodes import walk_ops
from ..rules.structures import make_list
from .. import runtime
from .dce import eliminate_dead_code
from .patterns import Index, is_call

SUMS = (operator.add, np.add)


def _axis_range(index, shape):
    """(axis, start, stop) when `index` takes a unit-step slice along one axis of an array
    of `shape` and everything along the others; else None."""
    parts = index if isinstance(index, tuple) else (index,)
    if len(parts) > len(shape) or not all(isinstance(p, slice) for p in parts):
        return None
    cut = [(k, p.indices(shape[k])) for k, p in enumerate(parts)
           if p.indices(shape[k]) != (0, shape[k], 1)]
    if len(cut) != 1 or cut[0][1][2] != 1:
        return None
    k, (start, stop, _) = cut[0]
    return k, start, max(start, stop)


class Tiling(Index):
    def __init__(self, fn):
        super().__init__(fn)
        self.fn = fn
        self.summed = set()             # the sums inside a sum already rewritten

    def terms(self, v, block, sums, root=False):
        """The terms of the sum `v` (through the sums in `block` that nothing else reads,
        which join `sums`), in order."""
        op = self.defs.get(v.id)
        if op is None or op not in block.ops or (not root and self.uses.get(v.id) != 1):
            return [v]
        if not is_call(op, SUMS, 2):
            return [v]
        sums.add(id(op))
        return self.terms(op.args[0], block, sums) + self.terms(op.args[1], block, sums)

    def pieces(self, terms, block):
        """[(piece, axis, start, stop, Info of the array)] when every term scatters a piece
        into an array along one axis, nothing else reads it, and the piece fits its slice."""
        found = []
        for term in terms:
            op = self.defs.get(term.id)
            if not is_call(op, (runtime.unindex,), 3) or op not in block.ops or \
                    self.uses.get(term.id) != 1:
                return None
            piece, x, index = op.args
            array = self.info.get(x.id)
            known, cut = self.exact(index)
            if array is None or array.kind != "array" or not known:
                return None
            cut = _axis_range(cut, array.shape)
            piece_info = self.info.get(piece.id)
            if cut is None or piece_info is None or piece_info.kind != "array":
                return None
            k, start, stop = cut
            expected = array.shape[:k] + (stop - start,) + array.shape[k + 1:]
            if piece_info.shape != expected or piece_info.dtype != array.dtype:
                return None
            found.append((piece, k, start, stop, array))
        return found

    def tiles(self, found):
        """The pieces in order along their axis, when they cover it once."""
        if len(found) < 2 or len({(k, a) for _, k, _, _, a in found}) != 1:
            return None
        ordered = sorted(found, key=lambda f: (f[2], f[3]))
        length = ordered[0][4].shape[ordered[0][1]]
        edge = 0
        for _, _, start, stop, _ in ordered:
            if start != edge:
                return None
            edge = stop
        return ordered if edge == length else None

    def rewrite(self, block, op):
        sums = set()
        terms = self.terms(op.result, block, sums, root=True)
        found = self.pieces(terms, block) if len(terms) > 1 else None
        ordered = self.tiles(found) if found else None
        if ordered is None:
            return False
        self.summed |= sums
        builder = Builder(Block(), op.loc)
        pieces = builder.call(make_list, [piece for piece, *_ in ordered], kind="list")
        axis = builder.const(ordered[0][1])
        at = block.ops.index(op)
        block.ops[at:at] = builder.block.ops
        op.attrs = {"fn": np.concatenate, "kwnames": ("axis",)}
        op.args = [pieces, axis]
        return True

    def run(self):
        changed = False
        for block in self.blocks:
            for inner in [block] + [r for o in walk_ops(block) for r in o.regions]:
                for op in reversed(list(inner.ops)):       # the whole sum first
                    if is_call(op, SUMS, 2) and id(op) not in self.summed:
                        changed |= self.rewrite(inner, op)
        if changed:
            eliminate_dead_code(self.fn)
        return self.fn


def concatenate_tiled_adjoints(fn):
    """Needs the shapes of specialised code; leaves general code as it is."""
    if not getattr(fn, "shape_info", None):
        return fn
    return Tiling(fn).run()
