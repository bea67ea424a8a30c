"""Dead-code elimination: mark what the results and effects need, drop the rest.

Works through structured regions: unused branch results, loop-carried values
nobody reads, and tape entries the pullback never pops into a live value all
go (a tape push keeps a value alive only if its pop does; a stack read whole,
as loop batching's rows are, keeps every value pushed on it).
"""
from ..ir import Builder
from ..ir.nodes import substitute, walk_ops
from ..rules import registry

ALWAYS_LIVE = ("push", "pop", "return", "stack", "unpack")  # unpack: the pullback packs its leaves


def _blocks(fn):
    blocks = [fn.body]
    if getattr(fn, "pullback", None) is not None:
        blocks.append(fn.pullback)
    return blocks


def has_effect(op):
    if op.opname == "call":
        entry = registry.lookup(op.attrs["fn"])
        return entry is None or entry.effect
    return op.opname in ("push", "pop", "return", "vjp", "unvjp")


def carried_values(op):
    """(inits, body params, yields, results[, cond params]) of a loop."""
    if op.opname == "for":
        body = op.regions[0]
        return op.args[3:], body.params[1:], body.ops[-1].args, op.results, []
    cond, body = op.regions
    return op.args, body.params, body.ops[-1].args, op.results, cond.params


def eliminate_dead_code(fn):
    _untape_constants(fn)
    while True:
        live, live_ops = _mark(fn)
        changed = _sweep(fn, live, live_ops)
        if not changed:
            return fn


def _mark(fn):
    live, live_ops = set(), set()
    defs, owner_loop = {}, {}
    for block in _blocks(fn):
        for op in walk_ops(block):
            for r in op.results:
                defs[r.id] = op
            if op.opname in ("for", "while"):
                inits, params, yields, results, cond_params = carried_values(op)
                for k, p in enumerate(params):
                    owner_loop[p.id] = (op, k)
                for k, p in enumerate(cond_params):
                    owner_loop[p.id] = (op, k)
    read_whole = {a.id for block in _blocks(fn) for op in walk_ops(block)
                  if op.opname == "call" and op.attrs["fn"] is not len
                  for a in op.args if a.kind == "stack"}
    work = []

    def need(v):
        if v.id not in live:
            live.add(v.id)
            work.append(v)

    def need_op(op):
        if id(op) in live_ops:
            return
        live_ops.add(id(op))
        if op.opname in ("if",):
            need(op.args[0])
        elif op.opname == "for":
            for a in op.args[:3]:
                need(a)
            if op.attrs.get("exit") is not None:
                k = op.attrs["exit"]
                need(op.regions[0].params[1 + k])
        elif op.opname == "while":
            need(op.regions[0].ops[-1].args[0])
        elif op.opname == "push":
            for a in op.args if op.args[0].id in read_whole else op.args[:1]:
                need(a)
        elif op.opname not in ("yield",):
            for a in op.args:
                need(a)
        for region in op.regions:
            for inner in region.ops:
                if has_effect(inner) or _contains_effect(inner):
                    need_op(inner)

    for block in _blocks(fn):
        for op in walk_ops(block):
            if op.opname in ALWAYS_LIVE or has_effect(op):
                need_op(op)
    for block in _blocks(fn):
        for op in block.ops:
            if _contains_effect(op):
                need_op(op)
    while work:
        v = work.pop()
        op = defs.get(v.id)
        if op is not None:
            need_op(op)
            if op.opname == "if":
                k = op.results.index(v)
                for region in op.regions:
                    need(region.ops[-1].args[k])
            elif op.opname in ("for", "while"):
                k = op.results.index(v)
                need(carried_values(op)[1][k])
            elif op.opname == "pop":
                k = op.results.index(v)
                for push in _pushes(fn, op.args[0]):
                    need(push.args[1 + k])
        if v.id in owner_loop:
            loop, k = owner_loop[v.id]
            need_op(loop)
            inits, params, yields, results, cond_params = carried_values(loop)
            need(inits[k])
            need(yields[k])
            need(params[k])
            if cond_params:
                need(cond_params[k])
    return live, live_ops


def _untape_constants(fn):
    """A constant pushed on a loop tape (an index like `[:, :256]` written in the loop body)
    is the same on every trip: the pullback writes it again instead of popping it."""
    defs = {r.id: op for block in _blocks(fn) for op in walk_ops(block) for r in op.results}
    for block in _blocks(fn):
        for inner in [block] + [r for op in walk_ops(block) for r in op.regions]:
            for pop in [op for op in inner.ops if op.opname == "pop"]:
                pushes = _pushes(fn, pop.args[0])
                for k, popped in enumerate(pop.results):
                    values = [defs.get(push.args[1 + k].id) for push in pushes]
                    if not pushes or not all(d is not None and d.opname == "const" and
                                             d.attrs["value"] is values[0].attrs["value"]
                                             for d in values):
                        continue
                    const = Builder(inner, pop.loc).op("const", attrs=dict(values[0].attrs),
                                                       hints=[popped.hint])
                    inner.ops.insert(inner.ops.index(pop), inner.ops.pop())
                    for block_ in _blocks(fn):
                        substitute(block_, {popped: const.result})


def _contains_effect(op):
    return any(has_effect(inner) for region in op.regions for inner in walk_ops(region))


def _pushes(fn, stack):
    """The pushes whose values a pop from `stack` gets back. An inner loop's tape is
    itself popped from the outer tape in the pullback: its pushes are those onto the
    forward tapes that the outer pushes saved."""
    ops = [op for block in _blocks(fn) for op in walk_ops(block)]
    made_by = {r.id: op for op in ops for r in op.results}

    def pushes(tape):
        found = [op for op in ops if op.opname == "push" and op.args[0] is tape]
        source = made_by.get(tape.id)
        if source is not None and source.opname == "pop":
            k = source.results.index(tape)
            for outer in pushes(source.args[0]):
                found += pushes(outer.args[1 + k])
        return found
    return pushes(stack)


def _sweep(fn, live, live_ops):
    changed = False

    def sweep_block(block):
        nonlocal changed
        kept = []
        for op in block.ops:
            if op.opname == "yield" or id(op) in live_ops:
                kept.append(op)
                for region in op.regions:
                    sweep_block(region)
                changed |= _prune_op(op, live, fn)
            else:
                changed = True
        block.ops = kept

    for block in _blocks(fn):
        sweep_block(block)
    return changed


def _prune_op(op, live, fn):
    if op.opname == "if":
        keep = [k for k, r in enumerate(op.results) if r.id in live]
        if len(keep) == len(op.results):
            return False
        op.results = [op.results[k] for k in keep]
        for region in op.regions:
            y = region.ops[-1]
            y.args = [y.args[k] for k in keep]
        return True
    if op.opname in ("for", "while"):
        inits, params, yields, results, cond_params = carried_values(op)
        exit_k = op.attrs.get("exit")
        keep = [k for k, p in enumerate(params)
                if p.id in live or results[k].id in live or k == exit_k
                or (cond_params and cond_params[k].id in live)]
        if len(keep) == len(params):
            return False
        head = op.args[:3] if op.opname == "for" else []
        op.args = head + [inits[k] for k in keep]
        body = op.regions[-1]
        first = body.params[:1] if op.opname == "for" else []
        body.params = first + [params[k] for k in keep]
        body.ops[-1].args = [yields[k] for k in keep]
        op.results = [results[k] for k in keep]
        if cond_params:
            op.regions[0].params = [cond_params[k] for k in keep]
        if exit_k is not None:
            op.attrs["exit"] = keep.index(exit_k)
        return True
    if op.opname == "pop":
        keep = [k for k, r in enumerate(op.results) if r.id in live]
        if len(keep) == len(op.results):
            return False
        op.results = [op.results[k] for k in keep]
        for push in _pushes(fn, op.args[0]):
            values = push.args[1:]
            push.args = [push.args[0]] + [values[k] for k in keep]
        return True
    return False
