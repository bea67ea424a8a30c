"""What the pattern-matching passes ask of the IR: who defines a value, how often it is
read, which block holds an op, and whether an op is a plain call of given functions."""
from ..ir.nodes import walk_ops


def function_blocks(fn):
    """The function's body and, once differentiated, its pullback."""
    return [fn.body] + ([fn.pullback] if getattr(fn, "pullback", None) is not None else [])


class Index:
    """defs: value id -> defining op; uses: value id -> number of reads; block_of: op id ->
    the block that holds it; info: what specialisation knows of each value (`shape_info`,
    empty in general code). Taken once: a pass that rewrites keeps it current itself."""

    def __init__(self, fn):
        self.info = getattr(fn, "shape_info", None) or {}
        self.blocks = function_blocks(fn)
        self.defs, self.uses, self.block_of = {}, {}, {}
        for block in self.blocks:
            for inner in [block] + [r for op in walk_ops(block) for r in op.regions]:
                self.block_of.update((id(op), inner) for op in inner.ops)
            for op in walk_ops(block):
                for r in op.results:
                    self.defs[r.id] = op
                for a in op.args:
                    self.uses[a.id] = self.uses.get(a.id, 0) + 1

    def exact(self, v):
        """(True, value) for a constant or a value specialisation knows exactly (constants
        made after specialisation have no Info), else (False, None)."""
        op = self.defs.get(v.id)
        if op is not None and op.opname == "const":
            return True, op.attrs["value"]
        info = self.info.get(v.id)
        return (True, info.value) if info is not None and info.kind == "exact" else (False, None)


def is_call(op, fns, arity):
    """Whether `op` calls one of `fns` on `arity` positional arguments."""
    return op is not None and op.opname == "call" and op.attrs["fn"] in fns and \
        not op.attrs.get("kwnames") and len(op.args) == arity

