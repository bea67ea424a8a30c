"""Elementwise fusion groups: which ops of a block can run as one kernel.

This pass only *finds* groups; it never changes the program. A backend that fuses
(the CuPy backend) turns each group into one kernel call, and the NumPy backend
can use the same groups for buffer reuse.

A group is a connected set of elementwise calls (`+`, `*`, `np.exp`, `np.where`,
comparisons, ...) in one block, optionally ending in a sum. It is described by a
`FusionGroup`:

* `ops`       the member ops, in program order;
* `inputs`    the values the members read that no member defines (constants too),
              in first-use order;
* `outputs`   the member results used outside the group (later in the block, in
              another block, or by the terminator), in program order;
* `reduction` the final `np.sum` op when the group ends in one (then `outputs` is
              that op's single result), else None.

Validity: a group is emitted as one call at the position of its last op, so every
use of a member's result outside the group must come after that op; this also
rules out a path that leaves the group and re-enters it. No in-place update may
sit between a group's first and last op (the call reads its inputs at the end).
"""
import builtins
import operator

import numpy as np

from ..ir.nodes import walk_ops

# Elementwise functions the backends can fuse, by arity: one output element reads
# only the same element of every (broadcast) operand.
UNARY = {operator.neg, operator.pos, builtins.abs, np.negative, np.positive, np.abs,
         np.absolute, np.exp, np.log, np.log1p, np.expm1, np.tanh, np.sin, np.cos, np.sqrt,
         np.square, np.reciprocal, np.sign}
BINARY = {operator.add, operator.sub, operator.mul, operator.truediv, operator.pow,
          operator.lt, operator.le, operator.gt, operator.ge, operator.eq, operator.ne,
          np.add, np.subtract, np.multiply, np.divide, np.true_divide, np.power,
          np.maximum, np.minimum, np.less, np.less_equal, np.greater, np.greater_equal,
          np.equal, np.not_equal}
TERNARY = {np.where}
ELEMENTWISE = UNARY | BINARY | TERNARY
REDUCTIONS = {np.sum}


class FusionGroup:
    """One fusion group (see the module docstring for the fields)."""

    def __init__(self, ops, inputs, outputs, reduction=None):
        self.ops, self.inputs, self.outputs, self.reduction = ops, inputs, outputs, reduction

    @property
    def last(self):
        return self.ops[-1]


def is_elementwise(op):
    """A call of a fusable elementwise function with positional operands only."""
    if op.opname != "call" or op.attrs.get("kwnames") or op.attrs.get("inplace"):
        return False
    fn = op.attrs["fn"]
    try:
        if fn not in ELEMENTWISE:
            return False
    except TypeError:                      # unhashable callables are never elementwise
        return False
    arity = 1 if fn in UNARY else 2 if fn in BINARY else 3
    return len(op.args) == arity and all(a.kind in (None, "float", "int") for a in op.args)


def _is_reduction(op):
    """`np.sum(x)` or `np.sum(x, axis=<const>, keepdims=<const>)`."""
    if op.opname != "call" or op.attrs.get("inplace") or op.attrs["fn"] not in REDUCTIONS:
        return False
    kwnames = op.attrs.get("kwnames", ())
    return len(op.args) - len(kwnames) == 1 and set(kwnames) <= {"axis", "keepdims"}


def find_groups(fn, blocks):
    """The fusion groups of every block in `blocks` and the regions nested in them."""
    groups = []
    counts = {}                         # value id -> uses in all blocks
    for block in blocks:
        for op in walk_ops(block):
            for a in op.args:
                counts[a.id] = counts.get(a.id, 0) + 1
    for block in blocks:
        _groups_in(block, groups, counts)
        for op in walk_ops(block):
            for region in op.regions:
                _groups_in(region, groups, counts)
    return groups


def _uses(block):
    """value id -> positions (op index in `block`) of its uses; nested uses count at
    the op that holds the region."""
    uses = {}
    for i, op in enumerate(block.ops):
        for a in op.args:
            uses.setdefault(a.id, []).append(i)
        for region in op.regions:
            for inner in walk_ops(region):
                for a in inner.args:
                    uses.setdefault(a.id, []).append(i)
    return uses


def _groups_in(block, out, counts):
    uses = _uses(block)
    producer = {}                       # value id -> op index of its definer
    for i, op in enumerate(block.ops):
        for r in op.results:
            producer[r.id] = i
    inplace = [i for i, op in enumerate(block.ops) if op.attrs.get("inplace")]
    group_of = {}                       # op index -> member list (shared by members)

    def valid(members, last):
        member_ids = {r.id for i in members for r in block.ops[i].results}
        inner = {i for i in members}
        for i in members:
            for r in block.ops[i].results:
                for u in uses.get(r.id, ()):
                    if u not in inner and u <= last:
                        return False
        first = min(members)
        if any(first < k < last for k in inplace):
            return False
        return bool(member_ids)

    for i, op in enumerate(block.ops):
        if not is_elementwise(op):
            continue
        members = [i]
        for a in op.args:
            j = producer.get(a.id)
            if j is None or j not in group_of or j in members:
                continue
            candidate = sorted(set(members) | set(group_of[j]))
            if valid(candidate, i):
                members = candidate
        for j in members:
            group_of[j] = members

    seen = set()
    for i in sorted(group_of):
        members = group_of[i]
        if id(members) in seen or len(members) < 2:
            continue
        seen.add(id(members))
        out.append(_describe(block, members, counts))
    _attach_reductions(block, out, uses, inplace, counts)


def _describe(block, members, counts):
    ops = [block.ops[i] for i in members]
    defined = {r.id for op in ops for r in op.results}
    inputs, seen, inner = [], set(), {}
    for op in ops:
        for a in op.args:
            inner[a.id] = inner.get(a.id, 0) + 1
            if a.id not in defined and a.id not in seen:
                seen.add(a.id)
                inputs.append(a)
    outputs = [r for op in ops for r in op.results
               if counts.get(r.id, 0) > inner.get(r.id, 0)]   # read outside the group
    return FusionGroup(ops, inputs, outputs)


def _attach_reductions(block, groups, uses, inplace, counts):
    """A group whose one output is summed (and used nowhere else) takes the sum in."""
    index = {id(op): i for i, op in enumerate(block.ops)}
    for group in groups:
        if group.reduction is not None or len(group.outputs) != 1 or \
                index.get(id(group.last)) is None:
            continue
        value = group.outputs[0]
        sites = uses.get(value.id, ())
        if len(sites) != 1 or counts.get(value.id) != 1:
            continue
        k = sites[0]
        op = block.ops[k]
        first = index[id(group.ops[0])]
        if not _is_reduction(op) or op.args[0] is not value or \
                any(first < j < k for j in inplace) or \
                not all(_is_constant_arg(block, a) for a in op.args[1:]):
            continue
        group.ops.append(op)
        group.reduction = op
        group.outputs = [op.result]


def _is_constant_arg(block, value):
    return any(op.opname == "const" and op.results[0] is value for op in block.ops)


def update_in_place_outside_groups(fn):
    """The in-place pass for fused code: every in-place update, except that an op that
    would join a fusion group keeps its fresh result (`np.add(t, b, out=t)` would take
    it out of its kernel). Scatters (`x[i] = v`, `add_into`) stay in place: they never
    join a group. Groups are found again on the result, and they respect the in-place
    updates (no group spans one; see `valid` in `_groups_in`)."""
    from .inplace import update_in_place
    blocks = [fn.body] + ([fn.pullback] if getattr(fn, "pullback", None) is not None else [])
    members = [op for group in find_groups(fn, blocks) for op in group.ops]
    for op in members:
        op.attrs["fusing"] = True
    try:
        update_in_place(fn)
    finally:
        for op in members:
            op.attrs.pop("fusing", None)
    return fn


def format_groups(groups):
    """The groups as text: one line per group with its ops, inputs and outputs."""
    from ..ir.printer import _op_text, _value
    lines = []
    for n, group in enumerate(groups):
        lines.append(f"group {n}: in ({', '.join(map(repr, group.inputs))}) -> out "
                     f"({', '.join(map(repr, group.outputs))})"
                     + (" + sum" if group.reduction is not None else ""))
        for op in group.ops:
            lines.append(f"    {', '.join(map(_value, op.results))} = {_op_text(op)}")
    return "\n".join(lines)


def verify_groups(groups):
    """Check the invariants the backends rely on (raises AssertionError)."""
    for group in groups:
        body = group.ops[:-1] if group.reduction is not None else group.ops
        assert all(is_elementwise(op) for op in body), "a non-elementwise op in a group"
        defined = {r.id for op in group.ops for r in op.results}
        assert all(v.id in defined for v in group.outputs), "an output no member defines"
        assert all(v.id not in defined for v in group.inputs), "an input a member defines"
        if group.reduction is not None:
            assert group.outputs == [group.reduction.result]
