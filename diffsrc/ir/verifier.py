"""Checks structural invariants of the IR; run after every stage.

SSA: every value is defined exactly once and every use is dominated by its
definition (defined earlier in the same block or in an enclosing block).
Regions end in `yield`; the function body ends in `return`; loop and branch
arities agree.
"""
from .nodes import OPNAMES


class IRVerificationError(AssertionError):
    """The IR broke an invariant: a bug in diffsrc, never in the user's code."""


def verify(fn):
    defined = set()

    def fail(msg, op=None):
        where = f" at {op.loc}" if op is not None and op.loc else ""
        raise IRVerificationError(f"{fn.name}: {msg}{where}")

    def define(v, op=None):
        if v.id in defined:
            fail(f"value {v!r} defined twice", op)
        defined.add(v.id)

    def check_block(block, visible, terminator):
        local = set(visible)
        for p in block.params:
            define(p)
            local.add(p.id)
        for i, op in enumerate(block.ops):
            if op.opname not in OPNAMES:
                fail(f"unknown op {op.opname}", op)
            for a in op.args:
                if a.id not in local:
                    fail(f"{a!r} used by {op.opname} before definition / out of scope", op)
            if op.opname in ("yield", "return") and i != len(block.ops) - 1:
                fail(f"{op.opname} in the middle of a block", op)
            check_regions(op, local)
            for r in op.results:
                define(r, op)
                local.add(r.id)
        last = block.ops[-1] if block.ops else None
        if last is None or last.opname != terminator:
            fail(f"block does not end in {terminator}")
        return last

    def check_regions(op, visible):
        if op.opname == "if":
            if len(op.regions) != 2:
                fail("if needs two regions", op)
            for region in op.regions:
                if region.params:
                    fail("if regions take no parameters", op)
                y = check_block(region, visible, "yield")
                if len(y.args) != len(op.results):
                    fail("if branch yields the wrong number of values", op)
        elif op.opname == "for":
            ninit = len(op.args) - (3 if op.attrs.get("over") == "range" else 1)
            body = op.regions[0]
            if len(body.params) != 1 + ninit or len(op.results) != ninit:
                fail("for carries mismatched values", op)
            y = check_block(body, visible, "yield")
            if len(y.args) != ninit:
                fail("for body yields the wrong number of values", op)
        elif op.opname == "while":
            cond, body = op.regions
            n = len(op.args)
            if len(cond.params) != n or len(body.params) != n or len(op.results) != n:
                fail("while carries mismatched values", op)
            if len(check_block(cond, visible, "yield").args) != 1:
                fail("while condition yields one flag", op)
            if len(check_block(body, visible, "yield").args) != n:
                fail("while body yields the wrong number of values", op)
        elif op.regions:
            fail(f"{op.opname} cannot own regions", op)

    for p in fn.params:
        define(p)
    check_block(fn.body, set(p.id for p in fn.params), "return")
    return fn
