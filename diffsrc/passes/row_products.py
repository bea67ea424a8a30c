"""One row times a small matrix runs as `x.dot(W)`: the same BLAS call, less dispatch.

    h @ W2,  h (1, 64), W2 (64, 1)   ->   h.dot(W2)

For two 2-d float arrays `a @ b` and `a.dot(b)` reach the same BLAS routine, but the
matmul ufunc spends about half a microsecond more getting there (0.8 against 0.3 us
for a (1, 10) @ (10, 64) product). A model run on one sample at a time (a steering or
online-learning loop) does little else, so there the overhead is most of the cost.
Batches and larger products keep `@`: the gain is small there, and NumPy runs some
shapes faster through matmul. It needs the shapes (specialised host code) and runs
last, once the passes that look for `@` are done.
"""
import operator

import numpy as np

from ..ir.nodes import walk_ops
from ..rules.registry import Method
from .patterns import function_blocks, is_call

PRODUCTS = (operator.matmul, np.matmul)
DOT = Method("dot")
# k * n of the largest (1, k) @ (k, n) product written as a dot
MAX_MULTIPLY_ADDS = 1 << 15


def _small(info, a, b, y):
    """One row times a 2-d array, of one float dtype, with few multiply-adds."""
    ai, bi, yi = (info.get(v.id) for v in (a, b, y))
    return all(i is not None and i.kind == "array" for i in (ai, bi, yi)) and \
        len(ai.shape) == len(bi.shape) == 2 and ai.dtype == bi.dtype == yi.dtype and \
        ai.dtype in (np.float32, np.float64) and ai.shape[0] == 1 and \
        ai.shape[1] * bi.shape[1] <= MAX_MULTIPLY_ADDS


def write_row_products_as_dot(fn):
    """Needs the shapes of specialised code; leaves general code as it is."""
    info = getattr(fn, "shape_info", None)
    if not info:
        return fn
    for block in function_blocks(fn):
        for op in walk_ops(block):
            if is_call(op, PRODUCTS, 2) and _small(info, *op.args, op.result):
                op.attrs["fn"] = DOT
    return fn
