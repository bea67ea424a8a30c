"""Rewrite early `return`, `break` and `continue` into flags, before lowering.

Structured SSA has no jumps, so a jump becomes an assignment to a flag and the
statements after it run under `if not flag:`. A loop with a `break` (or a
`return` inside it) stops once its flag is set: `for` loops carry the flag name
in `node.exit_flag`; `while` loops test it in their condition.
"""
import itertools

import gast

RESULT, RETURNED = "_result", "_returned"


def _name(id_, store=False):
    return gast.Name(id=id_, ctx=gast.Store() if store else gast.Load(), annotation=None,
                     type_comment=None)


def _assign(id_, value, like):
    node = gast.Assign(targets=[_name(id_, store=True)], value=value, type_comment=None)
    return gast.copy_location(node, like)


def _const(value):
    return gast.Constant(value=value, kind=None)


def _not_any(flags, like):
    test = _name(flags[0]) if len(flags) == 1 else gast.BoolOp(op=gast.Or(),
                                                                 values=[_name(f) for f in flags])
    return gast.copy_location(gast.UnaryOp(op=gast.Not(), operand=test), like)


def _walk_local(node, stop_at_loops):
    """Nodes inside `node`, not entering nested functions (nor loops, if asked)."""
    for child in gast.iter_child_nodes(node):
        if isinstance(child, (gast.FunctionDef, gast.Lambda, gast.AsyncFunctionDef)):
            continue
        yield child
        if stop_at_loops and isinstance(child, (gast.For, gast.While)):
            yield from _walk_local_no_jumps(child)
            continue
        yield from _walk_local(child, stop_at_loops)


def _walk_local_no_jumps(loop):
    """Inside a nested loop only `return` still concerns the outer loop."""
    for node in _walk_local(loop, stop_at_loops=False):
        if isinstance(node, gast.Return):
            yield node


def _contains(node, types, stop_at_loops=True):
    return any(isinstance(n, types) for n in _walk_local(node, stop_at_loops))


class _Desugarer:
    def __init__(self, use_return_flag):
        self.use_return_flag = use_return_flag
        self.ids = itertools.count()

    def block(self, stmts, loops):
        out = []
        for k, stmt in enumerate(stmts):
            flags = self.flags_set_by(stmt, loops)
            out.extend(self.stmt(stmt, loops))
            rest = stmts[k + 1:]
            if flags and rest:
                body = self.block(rest, loops)
                out.append(gast.copy_location(gast.If(test=_not_any(flags, rest[0]), body=body,
                                                      orelse=[]), rest[0]))
                break
        return out

    def flags_set_by(self, stmt, loops):
        wrapper = gast.Module(body=[stmt], type_ignores=[])
        flags = []
        if self.use_return_flag and _contains(wrapper, gast.Return, stop_at_loops=False):
            flags.append(RETURNED)
        if loops:
            if loops[-1]["break"] and _contains(wrapper, gast.Break):
                flags.append(loops[-1]["break"])
            if loops[-1]["continue"] and _contains(wrapper, gast.Continue):
                flags.append(loops[-1]["continue"])
        return flags

    def stmt(self, stmt, loops):
        if isinstance(stmt, gast.Return) and self.use_return_flag:
            value = stmt.value if stmt.value is not None else _const(None)
            out = [_assign(RESULT, value, stmt), _assign(RETURNED, _const(True), stmt)]
            out += [_assign(loop["break"], _const(True), stmt) for loop in loops]
            return out
        if isinstance(stmt, gast.Break):
            return [_assign(loops[-1]["break"], _const(True), stmt)]
        if isinstance(stmt, gast.Continue):
            return [_assign(loops[-1]["continue"], _const(True), stmt)]
        if isinstance(stmt, gast.If):
            stmt.body = self.block(stmt.body, loops) or [gast.Pass()]
            stmt.orelse = self.block(stmt.orelse, loops)
            return [stmt]
        if isinstance(stmt, (gast.For, gast.While)):
            return self.loop(stmt, loops)
        return [stmt]

    def loop(self, stmt, loops):
        n = next(self.ids)
        holder = gast.Module(body=stmt.body, type_ignores=[])
        needs_break = (_contains(holder, gast.Break)
                       or (self.use_return_flag and _contains(holder, gast.Return, False)))
        record = {"break": f"_break{n}" if needs_break else None,
                  "continue": f"_continue{n}" if _contains(holder, gast.Continue) else None}
        body = self.block(stmt.body, loops + [record])
        if record["continue"]:
            body = [_assign(record["continue"], _const(False), stmt)] + body
        stmt.body = body
        before, after = [], []
        if record["break"]:
            before.append(_assign(record["break"], _const(False), stmt))
            if isinstance(stmt, gast.While):
                stmt.test = gast.copy_location(gast.BoolOp(op=gast.And(), values=[
                    _not_any([record["break"]], stmt), stmt.test]), stmt.test)
            else:
                stmt.exit_flag = record["break"]
        if stmt.orelse:
            orelse = self.block(stmt.orelse, loops)
            if record["break"]:
                after.append(gast.copy_location(gast.If(test=_not_any([record["break"]], stmt),
                                                        body=orelse, orelse=[]), stmt))
            else:
                after.extend(orelse)
            stmt.orelse = []
        return before + [stmt] + after


def desugar_function(node):
    """Rewrite `node` (a gast.FunctionDef, modified in place) into jump-free form."""
    body = node.body
    if body and isinstance(body[0], gast.Expr) and isinstance(body[0].value, gast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]                       # the docstring has no adjoint
    returns = [n for n in _walk_local(gast.Module(body=body, type_ignores=[]), False)
               if isinstance(n, gast.Return)]
    tail_only = all(r is body[-1] for r in returns)
    desugarer = _Desugarer(use_return_flag=not tail_only)
    new_body = desugarer.block(body, [])
    if not tail_only:
        first = body[0]
        new_body = ([_assign(RETURNED, _const(False), first), _assign(RESULT, _const(None), first)]
                    + new_body
                    + [gast.copy_location(gast.Return(value=_name(RESULT)), body[-1])])
    node.body = new_body or [gast.Pass()]
    return node
