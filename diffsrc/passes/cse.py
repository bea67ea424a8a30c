"""Common-subexpression elimination: a pure call computed twice is computed once.

Scoped like the IR: an op may reuse an identical op of its own block or of an
enclosing block (which dominates it), never one inside a sibling region.
"""
from ..ir.nodes import substitute
from ..rules import registry


def _key(op, canonical):
    if op.opname == "const":
        value = op.attrs["value"]
        if isinstance(value, (int, float, str, bool, type(None))):
            return ("const", type(value), value)
        return None
    if op.opname != "call":
        return None
    entry = registry.lookup(op.attrs["fn"])
    if entry is None or entry.effect:
        return None
    try:
        hash(op.attrs["fn"])
    except TypeError:
        return None
    return ("call", op.attrs["fn"], op.attrs.get("kwnames", ()),
            tuple(canonical.get(a, a).id for a in op.args))


def eliminate_common_subexpressions(fn):
    mapping = {}

    def visit(block, seen):
        table = dict(seen)
        for op in block.ops:
            op.args = [mapping.get(a, a) for a in op.args]
            for region in op.regions:
                visit(region, table)
            key = _key(op, mapping)
            if key is None:
                continue
            earlier = table.get(key)
            if earlier is not None:
                mapping[op.result] = earlier
            else:
                table[key] = op.result

    blocks = [fn.body] + ([fn.pullback] if getattr(fn, "pullback", None) is not None else [])
    seen = {}
    visit(fn.body, seen)
    if len(blocks) > 1:
        forward_table = {}
        for op in fn.body.ops:             # the pullback may reuse top-level forward values
            key = _key(op, mapping)
            if key is not None and key not in forward_table:
                forward_table[key] = mapping.get(op.results[0], op.results[0])
        visit(fn.pullback, forward_table)
    for block in blocks:
        substitute(block, mapping)
    return fn
