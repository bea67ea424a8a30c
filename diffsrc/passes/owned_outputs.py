"""Returned derivatives are the caller's own arrays: none is an array they already hold.

Simplification can leave a derivative that is an input itself (d/da sum(a * b) is b),
a view of one, a constant the function closed over, an adjoint seed or tangent the
caller passed in (the tangent of the identity is its input's), or the same array as
another returned value. A caller who then updates that
gradient in place (`g *= lr`) would change their data, or another gradient. This pass
copies exactly those returned leaves; a leaf this code allocated, which nothing else
returned shares, goes back as it is.

It runs last, after the optimisation passes (which may fold a product with 1 into the
operand itself), on optimised and unoptimised code alike.
"""
import operator

import numpy as np

from ..ir import Builder
from ..ir.nodes import walk_ops
from ..rules.registry import Method
from .. import runtime
from .inplace import FRESH, SHARING, memory_groups, callee, in_table

# Calls whose result is an array (or number) they allocated, besides inplace.FRESH and
# NumPy's ufuncs: reductions and products.
ALLOCATING = {operator.floordiv, operator.mod, operator.pos, abs, np.sum, np.mean, np.prod,
              np.max, np.min, np.amax, np.amin, np.dot, np.outer, np.tensordot, np.einsum,
              np.cumsum, np.clip, np.var, np.std} | {
    Method(name) for name in ("sum", "mean", "prod", "max", "min", "dot", "cumsum", "clip",
                              "var", "std")}

# Views nobody may write through: a returned one is copied even when its base is fresh.
READ_ONLY_VIEWS = {np.broadcast_to, runtime.spread}

IMMUTABLE_KINDS = ("float", "int", "bool", "scalar")


class OwnedOutputs:
    def __init__(self, fn):
        self.fn = fn
        self.pullback = getattr(fn, "pullback", None)
        self.blocks = [fn.body] + ([self.pullback] if self.pullback is not None else [])
        self.group_of = memory_groups(self.blocks)
        self.defs = {r.id: op for block in self.blocks for op in walk_ops(block)
                     for r in op.results}
        self.info = getattr(fn, "shape_info", {})
        self.foreign = {self.group_of(v.id) for v in self.outside_values()}

    def outside_values(self):
        """Values whose memory this code did not allocate: the arguments and adjoint seeds,
        a structured argument's leaves, tapes' contents, array constants, the results of
        calls not known to allocate (and the groups they share memory with)."""
        yield from self.fn.params
        for block in self.blocks:
            yield from block.params
        for block in self.blocks:
            for op in walk_ops(block):
                if op.opname in ("unpack", "pop", "vjp", "unvjp") or (
                        op.opname == "const" and isinstance(op.attrs["value"], np.ndarray)):
                    yield from op.results
                elif op.opname == "call" and not op.attrs.get("inplace") and \
                        not in_table(callee(op), SHARING) and not self.allocates(op):
                    yield from op.results

    def allocates(self, op):
        fn = op.attrs["fn"]
        if "out" in op.attrs.get("kwnames", ()) or any(r.kind in ("list", "tuple", "dict")
                                                       for r in op.results):
            return False                   # a container holds whatever was put in it
        return isinstance(fn, np.ufunc) or in_table(fn, FRESH) or in_table(fn, ALLOCATING)

    def immutable(self, v):
        op = self.defs.get(v.id)
        if op is not None and op.opname == "const":
            return not isinstance(op.attrs["value"], np.ndarray)
        info = self.info.get(v.id)
        return v.kind == "int" or (info is not None and (
            info.kind in IMMUTABLE_KINDS or (info.kind == "exact" and
                                             not isinstance(info.value, np.ndarray))))

    def needs_copy(self, v, returned):
        if self.immutable(v):
            return False
        group = self.group_of(v.id)
        shared = group in self.foreign or group in returned or \
            in_table(callee(self.defs.get(v.id)), READ_ONLY_VIEWS)
        returned.add(group)
        return shared

    def copy(self, v, before, block):
        """`v.copy()` (or runtime.copied where `v` may be a Python number), placed
        before op `before`."""
        builder = Builder(loc=before.loc)
        info = self.info.get(v.id)
        if info is not None and info.kind == "array":
            copy = builder.call(Method("copy"), [v], hint=f"{v.hint or 'value'}_copy")
        else:
            copy = builder.call(runtime.copied, [v], hint=f"{v.hint or 'value'}_copy")
        block.ops.insert(block.ops.index(before), builder.block.ops[0])
        return copy

    def run(self):
        """The pullback returns the derivatives, the forward code the outputs; a tangent
        program returns the outputs, then their tangents."""
        outputs = self.fn.body.ops[-1].args
        if self.pullback is not None:
            block, first, primal = self.pullback, 0, outputs
        else:
            block, first = self.fn.body, len(outputs) // 2
            primal = outputs[:first]
        returned = {self.group_of(v.id) for v in primal}
        ret = block.ops[-1]
        for k, v in enumerate(ret.args[first:], first):
            op = self.defs.get(v.id)
            if op in block.ops and op.opname == "pack":    # a structured argument's adjoint
                op.args[1:] = [self.copy(leaf, op, block) if self.needs_copy(leaf, returned)
                               else leaf for leaf in op.args[1:]]
            elif self.needs_copy(v, returned):
                ret.args[k] = self.copy(v, ret, block)
        return self.fn


def copy_shared_outputs(fn):
    """Copy every returned derivative (a pullback's adjoints, a tangent program's output
    tangents) that may share memory with an array the caller holds: see the module
    docstring."""
    return OwnedOutputs(fn).run()
