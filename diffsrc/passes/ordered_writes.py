"""Index writes on a backend that leaves repeated-index writes unordered (CuPy).

NumPy keeps the last of repeated writes in `x[idx] = v`; CuPy leaves open which one
wins, so a plain write there could disagree with the adjoint, which gives the
gradient to the last write only. The in-place pass turns `index_update(x, idx, v)`
into such a write; on CuPy an update whose index may hold an integer array goes
back to `runtime.index_update`, which keeps NumPy's rule on every backend.
"""
import numpy as np

from ..ir.nodes import walk_ops
from .. import runtime
from ..rules.structures import make_tuple


def keep_repeated_writes_ordered(fn):
    """Undo the in-place form of index updates that could race: those whose index is not
    provably basic (ints, slices, None, Ellipsis) and whose value is not one scalar (the
    same value everywhere, as the adjoint's zeroing writes). An update not done in place
    writes nothing shared, so undoing it is always safe."""
    ops = [op for block in _blocks(fn) for op in walk_ops(block)]
    defs = {r.id: op for op in ops for r in op.results}
    counters = {op.regions[0].params[0].id for op in ops
                if op.opname == "for" and op.attrs.get("over") == "range"}
    info = getattr(fn, "shape_info", {})

    def scalar(value):
        op = defs.get(value.id)
        if op is not None and op.opname == "const":
            return np.ndim(op.attrs["value"]) == 0
        known = info.get(value.id)
        return known is not None and known.kind in ("float", "int", "bool", "scalar")

    def basic(value):
        op = defs.get(value.id)
        if value.id in counters:
            return True
        if op is not None and op.opname == "const":
            return runtime.is_basic_index(op.attrs["value"])
        if op is not None and op.opname == "call" and op.attrs["fn"] is make_tuple:
            return all(basic(part) for part in op.args)
        if op is not None and op.opname == "call" and op.attrs["fn"] is slice:
            return True
        known = info.get(value.id)
        return known is not None and (known.kind == "int" or known.kind == "exact"
                                      and runtime.is_basic_index(known.value))

    for op in ops:
        if op.opname == "call" and op.attrs["fn"] is runtime.index_update and \
                op.attrs.get("inplace") and not basic(op.args[1]) and not scalar(op.args[2]):
            del op.attrs["inplace"]
    return fn


def _blocks(fn):
    return [fn.body] + ([fn.pullback] if getattr(fn, "pullback", None) is not None else [])
