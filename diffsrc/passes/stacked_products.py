"""A stack of matrices times one matrix is one matrix product.

    x @ w,  x (32, 50, 64), w (64, 1024)   ->   (x.reshape(1600, 64) @ w).reshape(32, 50, 1024)

NumPy's matmul runs a stacked operand as a loop of small products (here 32 of 50 rows
each); BLAS runs the one product of all 1600 rows about a quarter faster. Every entry is
the same dot product over the same axis. It needs the shapes (specialised code).
"""
import operator

import numpy as np

from ..ir import Block, Builder
from ..ir.nodes import walk_ops
from ..rules.registry import Method
from .patterns import function_blocks, is_call
from .shapes import Info

PRODUCTS = (operator.matmul, np.matmul)
RESHAPE = Method("reshape")


def _stacked(info, x, w, y):
    """x of three or more dimensions times a matrix w, all of one dtype."""
    xi, wi, yi = (info.get(v.id) for v in (x, w, y))
    return all(i is not None and i.kind == "array" for i in (xi, wi, yi)) and \
        len(xi.shape) >= 3 and len(wi.shape) == 2 and xi.dtype == wi.dtype == yi.dtype


def _flatten(block, op, info):
    x, w = op.args
    xi, wi, yi = info[x.id], info[w.id], info[op.result.id]
    rows, depth = int(np.prod(xi.shape[:-1])), xi.shape[-1]
    builder = Builder(Block(), op.loc)
    flat = builder.call(RESHAPE, [x, builder.const(rows), builder.const(depth)])
    product = builder.call(operator.matmul, [flat, w])
    shape = [builder.const(n) for n in yi.shape]
    at = block.ops.index(op)
    block.ops[at:at] = builder.block.ops
    info[flat.id] = Info("array", (rows, depth), xi.dtype)
    info[product.id] = Info("array", (rows, wi.shape[1]), yi.dtype)
    op.attrs = {"fn": RESHAPE, "kwnames": ()}
    op.args = [product] + shape


def flatten_stacked_products(fn):
    """Needs the shapes of specialised code; leaves general code as it is."""
    info = getattr(fn, "shape_info", None)
    if not info:
        return fn
    for block in function_blocks(fn):
        for inner in [block] + [r for op in walk_ops(block) for r in op.regions]:
            for op in list(inner.ops):
                if is_call(op, PRODUCTS, 2) and _stacked(info, *op.args, op.result):
                    _flatten(inner, op, info)
    return fn
