"""In-place updates: `x[i] = v` writes into x when nobody can tell the difference.

The frontend turns `x[i] = v` into a functional `index_update(x, i, v)` (a copy),
which keeps derivatives simple but makes a loop that fills an array
quadratic. This pass marks an update in place when

* `x` was allocated by this function (zeros, arithmetic, a copy, ...) and is
  defined in the same block as the update (never a loop-invariant outer value,
  which the next iteration would see modified);
* neither `x` nor anything that may share its memory (a view, a slice, an
  unbroadcast of it) is read after the update: not later in the block, not in
  a nested or enclosing region, not by the pullback, not kept on a loop tape;
* if `x` is a loop-carried value, its initial value is owned and used only by
  that loop.

Codegen then writes `x[i] = v` instead of copying.

The same reasoning lets an elementwise operation write its result into an
operand's buffer (`h += b`, `np.exp(t, out=t)`) when the code is specialised to
known shapes and the operand has the result's shape and dtype: no fresh
temporary, no allocator traffic.

Last, it plans when arrays can go: values that may share memory form a group (a view
and its base, an in-place result and its buffer, a branch's or a loop's result and
what flows into it). A group that holds a large array this function allocated, none of
it kept in a container or on a tape, is released by codegen (`del`) once all of it is
dead and a large allocation follows: the peak then holds only what is still needed.
"""
import operator

import numpy as np

from ..ir.nodes import walk_ops
from ..rules.registry import Method
from .. import runtime

FRESH = {np.zeros, np.ones, np.empty, np.full, np.zeros_like, np.ones_like, np.empty_like,
         np.full_like, np.array, np.copy, np.eye, np.arange, np.linspace, Method("copy"),
         Method("astype"), operator.add, operator.sub, operator.mul, operator.truediv,
         operator.neg, operator.pow, operator.matmul, np.add, np.subtract, np.multiply,
         np.divide, np.exp, np.log, np.tanh, np.sin, np.cos, np.sqrt, np.maximum, np.minimum,
         np.where, np.concatenate, np.stack, runtime.unreduce, runtime.unindex,
         runtime.zeros_like, runtime.index_update, runtime.winner_share, runtime.masked_share,
         np.square, np.negative, np.abs, np.log1p, np.expm1, np.reciprocal, np.power,
         runtime.matmul_left, runtime.matmul_right, runtime.extremum_share, runtime.sum_leading,
         runtime.clamped_extremum_share}
SHARING = {operator.getitem, np.reshape, np.transpose, np.ravel, np.squeeze, np.expand_dims,
           np.broadcast_to, np.asarray, np.atleast_1d, np.atleast_2d, runtime.unbroadcast,
           runtime.spread, runtime.unstack, runtime.unconcatenate,
           Method("reshape"), Method("T", attribute=True), Method("transpose"),
           Method("ravel"), Method("squeeze"), Method("view"), Method("swapaxes")}


# Below this size a fresh temporary costs about what writing in place does, and
# `t = a + b` reads better than `a += b`.
MIN_INPLACE_BYTES = 1 << 15

# Operators that have a ufunc form, so they can write into an `out=` buffer.
WITH_UFUNC = {operator.add, operator.sub, operator.mul, operator.truediv, operator.pow,
              operator.neg}

# Run-time helpers that take `out=`, and the operand whose buffer it may be.
HELPERS_WITH_OUT = {runtime.winner_share: 0, runtime.masked_share: 0}

# Views that can be written through, each element once (not np.broadcast_to).
WRITABLE_VIEWS = {operator.getitem, np.reshape, np.transpose, np.ravel, np.squeeze,
                  np.expand_dims, Method("reshape"), Method("T", attribute=True),
                  Method("transpose"), Method("ravel"), Method("squeeze"), Method("swapaxes")}

# (callable, argument position) pairs that read only an array's shape and dtype, which an
# in-place update never changes.
SHAPE_ONLY = {(runtime.unbroadcast, 1), (runtime.unindex, 1), (runtime.unreduce, 1),
              (runtime.zeros_like, 0), (np.shape, 0), (len, 0), (np.ndim, 0), (np.size, 0),
              (Method("shape", attribute=True), 0), (Method("ndim", attribute=True), 0),
              (Method("dtype", attribute=True), 0), (runtime.cast_like, 1),
              # like= of a placed share (passes/placed_outputs.py)
              (runtime.extremum_share, 5), (runtime.clamped_extremum_share, 8)}


def _stores(op):
    """Whether `op` puts its operands in a list, tuple or dict (which outlives them)."""
    return op.opname == "call" and any(r.kind in ("list", "tuple", "dict") for r in op.results)


def callee(op):
    """The function `op` calls (None for other ops)."""
    return op.attrs.get("fn") if op is not None and op.opname == "call" else None


def in_table(fn, table):
    """`fn in table`; False for a callable that cannot be hashed."""
    try:
        return fn in table
    except TypeError:
        return False


class InPlace:
    def __init__(self, fn):
        self.fn = fn
        self.blocks = [fn.body] + ([fn.pullback] if getattr(fn, "pullback", None) else [])
        self.defs, self.block_of, self.uses, self.param_of, self.op_block = {}, {}, {}, {}, {}
        for block in self.blocks:
            self.index(block)

    def index(self, block):
        """Where every value is defined and used, and which loop carries each parameter."""
        for p in block.params:
            self.block_of[p.id] = block
        for op in block.ops:
            self.op_block[id(op)] = block
            for a in op.args:
                self.uses.setdefault(a.id, []).append(op)
            for r in op.results:
                self.defs[r.id] = op
                self.block_of[r.id] = block
            if op.opname in ("for", "while"):
                body = op.regions[-1]
                first = 1 if op.opname == "for" else 0
                for k, p in enumerate(body.params[first:]):
                    self.param_of[p.id] = (op, k)
            for region in op.regions:
                self.index(region)

    def owned(self, v, seen=()):
        if v.id in seen:
            return True
        op = self.defs.get(v.id)
        if op is not None:
            if op.opname == "if":            # owned on whichever branch ran
                k = op.results.index(v)
                return all(self.owned(region.ops[-1].args[k], seen + (v.id,))
                           for region in op.regions)
            if op.opname in ("for", "while"):
                body = op.regions[-1]
                first = 1 if op.opname == "for" else 0
                return self.owned(body.params[first + op.results.index(v)], seen + (v.id,))
            if in_table(callee(op), WRITABLE_VIEWS) and len(self.uses.get(op.args[0].id, [])) == 1:
                return self.owned(op.args[0], seen + (v.id,))   # the one view of a fresh array
            return in_table(callee(op), FRESH)
        if v.id in self.param_of:
            loop, k = self.param_of[v.id]
            inits = loop.args[3:] if loop.opname == "for" else loop.args
            body = loop.regions[-1]
            init = inits[k]
            yielded = body.ops[-1].args[k]    # the last trip's value, which it may keep
            return (self.owned(init, seen + (v.id,)) and len(self.uses.get(init.id, [])) == 1
                    and self.owned(yielded, seen + (v.id,)) and not self.kept(yielded))
        return False

    def kept(self, v):
        """Whether `v` or a view of it is pushed on a tape or put in a container: it then
        outlives its block, and nothing may write into it afterwards."""
        return any((use.opname == "push" or _stores(use)) and not self.shape_only(value, use)
                   for value in self.sharing(v) for use in self.uses.get(value.id, []))

    def sharing(self, v):
        """`v` and every value that may share its memory through views."""
        group, work = [v], [v]
        while work:
            current = work.pop()
            for use in self.uses.get(current.id, []):
                if in_table(callee(use), SHARING) and use.args[0] is current and use.result not in group:
                    group.append(use.result)
                    work.append(use.result)
        return group

    def shape_only(self, value, use):
        """Whether `use` reads only the shape/dtype of `value` (directly or from a tape)."""
        fn = callee(use)
        if fn is not None and all(in_table((fn, k), SHAPE_ONLY)
                                  for k, a in enumerate(use.args) if a is value):
            return True
        if use.opname == "push":
            slots = [k for k, a in enumerate(use.args[1:]) if a is value]
            for pop in self.uses.get(use.args[0].id, []):
                if callee(pop) not in (None, len):
                    return False           # a list read whole (loop batching's rows)
                if pop.opname != "pop":
                    continue
                for k in slots:
                    popped = pop.results[k]
                    if not all(self.shape_only(popped, u)
                               for u in self.uses.get(popped.id, [])):
                        return False
            return True
        return False

    def can_update_in_place(self, op, x=None):
        x = op.args[0] if x is None else x
        block = self.op_block[id(op)]
        if self.block_of.get(x.id) is not block or not self.owned(x):
            return False
        position = block.ops.index(op)
        for value in self.sharing(x):
            for use in self.uses.get(value.id, []):
                if use is op or self.shape_only(value, use):
                    continue
                if self.op_block.get(id(use)) is not block or block.ops.index(use) > position \
                        or use.opname in ("push", "yield", "return") or _stores(use):
                    return False
        return True

    def run(self):
        self.buffers = []                      # (operand, result) sharing one buffer
        for block in self.blocks:
            for op in walk_ops(block):
                if callee(op) is runtime.index_update and self.can_update_in_place(op):
                    op.attrs["inplace"] = True
                elif callee(op) is operator.add:
                    self.scatter_in_place(op)
                if callee(op) is not None and not op.attrs.get("inplace"):
                    self.write_into_operand(op)
        for operand, result in reversed(self.buffers):
            if not operand.hint:               # a chain of updates takes its last name
                operand.hint = result.hint
        self.plan_releases()
        return self.fn

    def plan_releases(self):
        """`fn.release_groups` (value id -> group) for the groups codegen may delete once
        dead, and `fn.large_allocations`, the values that allocate a large array."""
        info = getattr(self.fn, "shape_info", {})
        group_of = memory_groups(self.blocks)
        large, kept = set(), set()
        for block in self.blocks:
            for op in walk_ops(block):
                fn = callee(op)
                if not op.attrs.get("inplace") and not in_table(fn, SHARING) and \
                        in_table(fn, FRESH) and _large(info.get(op.result.id)):
                    large.add(op.result.id)
                if op.opname == "push" or (_stores(op) and not in_table(fn, SHARING)):
                    kept.update(a.id for a in op.args)
        members = {}
        for block in self.blocks:
            for op in walk_ops(block):
                for r in op.results:
                    members.setdefault(group_of(r.id), []).append(r.id)
        top = {r.id for block in self.blocks for op in block.ops for r in op.results}
        self.fn.release_groups = {
            v: key for key, vs in members.items()
            if any(v in large for v in vs) and not any(v in kept for v in vs)
            for v in vs if v in top}
        self.fn.large_allocations = large

    def write_into_operand(self, op):
        """r = f(a, b) elementwise -> f(a, b, out=a) when a is a dying temporary like r."""
        info = getattr(self.fn, "shape_info", {})
        result = info.get(op.results[0].id) if len(op.results) == 1 else None
        fn = op.attrs["fn"]
        if result is None or op.attrs.get("fusing") or result.kind != "array" or \
                not result.shape or \
                np.prod(result.shape) * result.dtype.itemsize < MIN_INPLACE_BYTES or \
                op.attrs.get("kwnames") or not (isinstance(fn, np.ufunc) or in_table(fn, WITH_UFUNC)
                                                or in_table(fn, HELPERS_WITH_OUT)):
            return
        for k, a in enumerate(op.args):
            if HELPERS_WITH_OUT.get(fn, k) == k and info.get(a.id) == result and \
                    self.owned(a) and a not in op.args[k + 1:] and self.can_update_in_place(op, a):
                op.attrs["inplace"] = True
                op.attrs["out"] = k
                self.buffers.append((a, op.results[0]))
                return

    def scatter_in_place(self, op):
        """acc + unindex(g, x, index) -> add_into(acc, index, g), when acc may be updated."""
        acc, other = op.args
        scatter = self.defs.get(other.id)
        if callee(scatter) is not runtime.unindex or len(self.uses.get(other.id, [])) != 1 or \
                len(scatter.args) != 3:
            return
        g, x, index = scatter.args
        if self.owned(acc) and self.can_update_in_place(op):
            op.attrs["fn"] = runtime.add_into
            op.args = [acc, index, g]
            op.attrs["inplace"] = True
            self.uses[other.id].remove(op)


def memory_groups(blocks):
    """`group_of(value id)`: values that may share memory get one group. A view and its
    base, an in-place result and its buffer, a branch's or a loop's result and what
    flows into it are joined; anything else is a group of its own."""
    group = {}

    def find(v):
        while group.get(v, v) != v:
            v = group[v]
        return v

    def join(*values):
        for v in values[1:]:
            group[find(v.id)] = find(values[0].id)

    for block in blocks:
        for op in walk_ops(block):
            if op.attrs.get("inplace"):
                join(op.args[op.attrs.get("out", 0)], op.result)
            elif in_table(callee(op), SHARING) and op.args:
                join(op.args[0], op.result)
            if op.opname == "if":              # results alias what flows into them
                for region in op.regions:
                    for result, value in zip(op.results, region.ops[-1].args):
                        join(result, value)
            elif op.opname in ("for", "while"):
                body = op.regions[-1]
                inits = op.args[3:] if op.opname == "for" else op.args
                params = body.params[1:] if op.opname == "for" else body.params
                others = op.regions[0].params if op.opname == "while" else params
                for flow in zip(op.results, inits, params, body.ops[-1].args, others):
                    join(*flow)
    return find


def _large(info):
    return info is not None and info.kind == "array" and bool(info.shape) and \
        np.prod(info.shape) * info.dtype.itemsize >= MIN_INPLACE_BYTES


def update_in_place(fn):
    return InPlace(fn).run()
