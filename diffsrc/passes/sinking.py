"""Sinking: a value is made just before the first op that reads it.

The pullback of a product writes both adjoints at once, the one read next and the one read
much later:

    patches_bar = t_bar @ kernel.T          kernel_bar = patches.T @ t_bar
    kernel_bar = patches.T @ t_bar    ->    K_bar = kernel_bar.reshape(...).transpose(...)
    K_bar = ...                             patches_bar = t_bar @ kernel.T
    ... = unstack(patches_bar, ...)         ... = unstack(patches_bar, ...)

A large result made early is out of the cache by the time it is read (W5's im2col
adjoint: 4 MiB, read after another product of 4 MiB). Made just before its first reader,
it is read while still in the cache, and it is alive for less time.

A call (a registered primitive without effects: the same value anywhere after its
operands) moves down within its block when the operands it keeps alive longer, those not
read again at or after the new place, are no larger than its result, which is then not
alive over that stretch: the peak never grows. That needs their sizes (specialised code)
and that they are whole arrays or reshapes of them, not slices of larger ones; without
shapes only calls whose operands live on anyway move. Calls whose first reader is in
another block (the pullback, a loop body) stay where they are.
"""
import numpy as np

from ..ir.nodes import walk_ops
from ..rules import registry
from ..rules.registry import Method
from .inplace import SHARING, in_table
from .patterns import function_blocks

# Views with their input's entries, all of them: an array kept alive through one is kept
# whole, and its size is the view's.
RESHAPES = (np.reshape, np.transpose, np.ravel, np.squeeze, np.expand_dims, Method("reshape"),
            Method("T", attribute=True), Method("transpose"), Method("ravel"),
            Method("squeeze"), Method("swapaxes"))


def _reads(op):
    """The ids of the values `op` reads, its nested regions' included."""
    ids = {a.id for a in op.args}
    for region in op.regions:
        for inner in walk_ops(region):
            ids.update(a.id for a in inner.args)
    return ids


def _movable(op):
    """A call of a registered primitive without effects, one result and no regions."""
    entry = registry.lookup(op.attrs.get("fn")) if op.opname == "call" else None
    return entry is not None and not entry.effect and len(op.results) == 1 and \
        not op.regions


def _bytes(v, info, defs):
    """The size of the memory `v` keeps alive, None where unknown: another view than a
    reshape of a whole array (a slice keeps all of its base)."""
    known = info.get(v.id)
    if known is None or known.kind not in ("array", "scalar"):
        return None
    op = defs.get(v.id)
    while op is not None and op.opname == "call" and op.attrs["fn"] in RESHAPES:
        op = defs.get(op.args[0].id)
    if op is not None and op.opname == "call" and in_table(op.attrs["fn"], SHARING):
        return None
    return int(np.prod(known.shape)) * known.dtype.itemsize


def _sink(block, info, defs):
    """From the last op up: each movable call goes to just before its first reader."""
    ops = block.ops
    reads = [_reads(op) for op in ops]
    constants = {op.result.id for op in ops if op.opname == "const"}
    for at in range(len(ops) - 1, -1, -1):
        op = ops[at]
        if not _movable(op):
            continue
        first = next((k for k in range(at + 1, len(ops)) if op.result.id in reads[k]), None)
        if first is None or first == at + 1:
            continue
        kept = [a for a in op.args if a.id not in constants and
                not any(a.id in reads[k] for k in range(first, len(ops)))]
        if kept:
            sizes = [_bytes(v, info, defs) for v in kept + [op.result]]
            if None in sizes or sum(sizes[:-1]) > sizes[-1]:
                continue
        ops.insert(first - 1, ops.pop(at))
        reads.insert(first - 1, reads.pop(at))


def sink_to_first_use(fn):
    info = getattr(fn, "shape_info", None) or {}
    defs = {r.id: op for block in function_blocks(fn) for op in walk_ops(block)
            for r in op.results}
    for block in function_blocks(fn):
        for inner in [block] + [r for op in walk_ops(block) for r in op.regions]:
            _sink(inner, info, defs)
    return fn
