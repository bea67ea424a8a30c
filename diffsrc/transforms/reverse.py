"""Reverse mode: generate the pullback of an IR function as IR.

The forward ops stay as they are, with two additions the pullback needs:
loops push, once per iteration, the values of that iteration the reverse loop
reads (the loop's *tape*), and branches export the branch-local values the
reversed branch reads. The pullback block then walks the forward ops backwards:

* a primitive call inlines its rule template (rules/), fed the output adjoint,
  the output and the call's own arguments;
* an `if` becomes an `if` on the same condition, each branch reversed;
* a `for`/`while` becomes a `for` that pops the tape, carrying the adjoints of
  the loop-carried values and of the outer values the body reads;
* a recursive call keeps a call: to the callee's own generated pullback.

Adjoints of fan-out accumulate; only values that depend on a differentiated
input (activity analysis) ever get one.
"""
import operator

from ..errors import NoRuleError
from ..ir import Block, Builder, Value
from ..ir.nodes import walk_ops, substitute
from ..ir.printer import callable_name
from ..rules import registry
from .. import runtime
from ..frontend.abstract import Static, TupleS, ListS
from ..frontend.lower import Lowerer

ACCUMULATE_KINDS = ("list", "tuple", "dict")


def varied_values(fn, wrt):
    """Ids of the values that depend on a differentiated input (forward activity)."""
    varied = {v.id for v in wrt}

    def visit(block):
        changed = False
        for op in block.ops:
            before = len(varied)
            if op.opname in ("call", "unpack"):
                entry = registry.lookup(op.attrs.get("fn")) if op.opname == "call" else None
                if entry is not None and entry.nondiff:
                    continue
                if any(a.id in varied for a in op.args):
                    varied.update(r.id for r in op.results if r.kind != "int")
            elif op.opname == "if":
                for region in op.regions:
                    visit(region)
                for i, r in enumerate(op.results):
                    if any(region.ops[-1].args[i].id in varied for region in op.regions):
                        varied.add(r.id)
            elif op.opname in ("for", "while"):
                body = op.regions[-1]
                first = 1 if op.opname == "for" else 0
                inits = op.args[3:] if op.opname == "for" else op.args
                carried = body.params[first:]
                cond_params = op.regions[0].params if op.opname == "while" else []
                while True:
                    for i, p in enumerate(carried):
                        if inits[i].id in varied or body.ops[-1].args[i].id in varied:
                            varied.add(p.id)
                            if cond_params:
                                varied.add(cond_params[i].id)
                    n = len(varied)
                    visit(body)
                    for i, p in enumerate(carried):
                        if body.ops[-1].args[i].id in varied:
                            varied.add(p.id)
                    if len(varied) == n:
                        break
                for i, r in enumerate(op.results):
                    if carried[i].id in varied:
                        varied.add(r.id)
            changed |= len(varied) != before
        return changed

    while visit(fn.body):
        pass
    return varied


class Adjoints:
    """The current adjoint of each value, for one reverse block.

    Values defined outside the forward block this reverse block mirrors are
    *threaded*: their adjoint enters the block (as a loop parameter, or as
    the adjoint current outside a branch) and leaves it updated.
    """

    def __init__(self, transform, builder, parent=None, local=None, loop=False):
        self.t = transform
        self.b = builder
        self.parent = parent
        self.local = local            # ids defined in the mirrored forward block (None: all)
        self.loop = loop
        self.current = {}
        self.threaded = {}            # id -> [value, incoming adjoint or None, loop parameter]

    def is_local(self, v):
        return self.local is None or v.id in self.local

    def get(self, v):
        if self.is_local(v):
            return self.current.get(v.id)
        return self.thread(v)[3]

    def thread(self, v):
        entry = self.threaded.get(v.id)
        if entry is None:
            if self.loop:
                param = Value(self.t.bar_hint(v), v.kind)
                entry = [v, None, param, param]
            else:
                start = self.parent.get(v)
                entry = [v, start, None, start]
            self.threaded[v.id] = entry
        return entry

    def set(self, v, adjoint):
        if self.is_local(v):
            self.current[v.id] = adjoint
        else:
            self.thread(v)[3] = adjoint

    def accumulate(self, v, contribution):
        if contribution is None or v.id not in self.t.varied:
            return
        previous = self.get(v)
        if previous is None:
            if isinstance(contribution, Value) and not contribution.hint:
                contribution.hint = self.t.bar_hint(v)
            self.set(v, contribution)
            return
        fn = runtime.accumulate if v.kind in ACCUMULATE_KINDS else operator.add
        self.set(v, self.b.call(fn, [previous, contribution], hint=self.t.bar_hint(v),
                                kind=v.kind))

    def zeros(self, v):
        return self.b.call(runtime.zeros_like, [v], hint=self.t.bar_hint(v), kind=v.kind)


HARMLESS_OPAQUE = (print, repr, str, format)


class ReverseTransform:
    def __init__(self, fn, wrt):
        self.fn = fn
        self.wrt = wrt
        self.varied = varied_values(fn, wrt)
        self.defs = {}
        for op in walk_ops(fn.body):
            for r in op.results:
                self.defs[r.id] = op
            self.fence_opaque(op)

    def fence_opaque(self, op):
        """A call diffsrc cannot see into may update a differentiated array in place;
        it is an error as soon as it receives one, whether or not its result is used."""
        if op.opname != "call" or not any(a.id in self.varied for a in op.args):
            return
        fn = op.attrs["fn"]
        entry = registry.lookup(fn)
        if entry is not None or fn in HARMLESS_OPAQUE or hasattr(fn, "__code__") or (
                isinstance(fn, type) and issubclass(fn, BaseException)):
            return
        raise NoRuleError(f"{callable_name(fn)} receives a differentiated value but has no "
                          "derivative rule (and may modify it in place); register one with "
                          "@ds.adjoint", op.loc.filename if op.loc else None,
                          op.loc.lineno if op.loc else None)

    def bar_hint(self, v):
        return (v.hint or "t") + "_bar"

    # --------------------------------------------------------------- blocks
    def reverse_block(self, fwd, adj):
        """Emit (through adj.b) the reverse of forward block `fwd`, last op first."""
        for op in reversed(list(fwd.ops)):
            if op.opname in ("yield", "return", "const", "stack", "push", "pop"):
                continue
            with adj.b.located(op.loc):
                getattr(self, "reverse_" + op.opname)(op, fwd, adj)

    def reverse_call(self, op, fwd, adj):
        y = op.result
        y_bar = adj.get(y) if y.id in self.varied else None
        if y_bar is None:
            return
        fn = op.attrs["fn"]
        entry = registry.lookup(fn)
        kwnames = op.attrs.get("kwnames", ())
        npos = len(op.args) - len(kwnames)
        positional, keyword = op.args[:npos], dict(zip(kwnames, op.args[npos:]))
        active = [a for a in op.args if a.id in self.varied]
        if not active:
            return
        if entry is None or entry.adjoint is None:
            if callable(fn) and hasattr(fn, "__code__") and entry is None:
                return self.reverse_recursive_call(op, fwd, adj, y_bar)
            raise NoRuleError(f"no derivative rule for {callable_name(fn)}; register one with "
                              "@ds.adjoint", op.loc.filename if op.loc else None,
                              op.loc.lineno if op.loc else None)
        lowerer = Lowerer(adj.b)
        lowerer.fixed_loc = True
        args = [self.abstract(a) for a in positional]
        kwargs = {k: self.abstract(v) for k, v in keyword.items()}
        first_new = Value().id
        result = lowerer.call(Static(entry.adjoint), [y_bar, y] + args, kwargs)
        self.distribute(result, positional, adj, first_new)

    def abstract(self, v):
        """Forward values reach rule templates as constants where they are constants."""
        op = self.defs.get(v.id)
        if op is not None and op.opname == "const":
            return Static(op.attrs["value"])
        return v

    def distribute(self, result, args, adj, first_new=None):
        """Adjoints a rule returned, accumulated into its arguments'. One the rule made
        itself is named after the argument (`b_bar`), not after the rule's local (`dx`)."""
        if isinstance(result, Value):
            parts = [adj.b.call(operator.getitem, [result, adj.b.const(i)])
                     for i in range(len(args))]
        elif isinstance(result, (TupleS, ListS)):
            parts = list(result.items)
        else:
            raise TypeError(f"a rule template must return a tuple, got {result!r}")
        for arg, part in zip(args, parts):
            if arg.id not in self.varied or part is None:
                continue
            if isinstance(part, Static):
                if part.value is None:
                    continue
                part = adj.b.const(part.value)
            elif not isinstance(part, Value):
                part = Lowerer(adj.b).value(part)
            elif first_new is not None and part.id > first_new:
                part.hint = ""
            adj.accumulate(arg, part)

    def reverse_recursive_call(self, op, fwd, adj, y_bar):
        """A call that recursion kept: its pullback comes from the callee's own transform."""
        fn = op.attrs["fn"]
        back = Value(f"{fn.__name__}_back")
        position = fwd.ops.index(op)
        from ..ir.nodes import Op
        vjp = Op("vjp", op.args, [op.result, back], {"fn": fn}, loc=op.loc)
        fwd.ops[position] = vjp
        adjoints = adj.b.op("unvjp", [back, y_bar], hints=["adjoints"]).result
        for i, a in enumerate(op.args):
            if a.id in self.varied:
                adj.accumulate(a, adj.b.call(operator.getitem, [adjoints, adj.b.const(i)]))

    def reverse_unpack(self, op, fwd, adj):
        """Leaves of a structured argument: their adjoints are gathered at the very end."""

    # ------------------------------------------------------------- branches
    def reverse_if(self, op, fwd, adj):
        bars = [adj.get(r) if r.id in self.varied else None for r in op.results]
        regions = []
        for region in op.regions:
            block = Block()
            builder = Builder(block, adj.b.loc)
            local = {v.id for o in region.ops for v in o.results}
            inner = Adjoints(self, builder, adj, local)
            for value, bar in zip(region.ops[-1].args, bars):
                if bar is not None:
                    inner.accumulate(value, bar)
            self.reverse_block(region, inner)
            regions.append((region, block, inner))
        threaded = {}
        for _, _, inner in regions:
            for vid, entry in inner.threaded.items():
                threaded.setdefault(vid, entry[0])
        if not threaded and not any(b.ops for _, b, _ in regions):
            return
        order = list(threaded.values())
        for region, block, inner in regions:
            builder = Builder(block, adj.b.loc)
            outs = []
            for v in order:
                entry = inner.threaded.get(v.id)
                value = entry[3] if entry is not None else adj.get(v)
                if value is None:
                    value = Adjoints(self, builder).zeros(v)
                outs.append(value)
            builder.op("yield", outs, nresults=0)
            self.export_branch_values(op, region, block)
        rev = adj.b.op("if", [op.args[0]], nresults=len(order),
                       hints=[self.bar_hint(v) for v in order], kinds=[v.kind for v in order],
                       regions=[block for _, block, _ in regions])
        for v, result in zip(order, rev.results):
            adj.set(v, result)

    def export_branch_values(self, op, region, reverse_block):
        """Branch-local forward values the reversed branch reads leave the forward `if`."""
        local = {r.id: r for o in region.ops for r in o.results}
        needed = []
        for rop in walk_ops(reverse_block):
            for a in rop.args:
                if a.id in local and a not in needed:
                    needed.append(a)
        if not needed:
            return
        mapping = {}
        for v in needed:
            exported = Value(v.hint, v.kind)
            op.results.append(exported)
            for other in op.regions:
                yield_op = other.ops[-1]
                if other is region:
                    yield_op.args.append(v)
                else:
                    placeholder = Builder(Block()).op("const", attrs={"value": None},
                                                      hints=[v.hint])
                    other.ops.insert(len(other.ops) - 1, placeholder)
                    yield_op.args.append(placeholder.result)
            mapping[v] = exported
        substitute(reverse_block, mapping)

    # ---------------------------------------------------------------- loops
    def reverse_for(self, op, fwd, adj):
        self.reverse_loop(op, fwd, adj, op.regions[0], op.regions[0].params[1:], op.args[3:])

    def reverse_while(self, op, fwd, adj):
        self.reverse_loop(op, fwd, adj, op.regions[1], op.regions[1].params, op.args)

    def reverse_loop(self, op, fwd, adj, body, carried, inits):
        active = [i for i, p in enumerate(carried) if p.id in self.varied]
        result_bars = {i: adj.get(op.results[i]) for i in active}
        if not any(v is not None for v in result_bars.values()) and not self.reads_varied(body):
            return
        block = Block()
        builder = Builder(block, adj.b.loc)
        local = {p.id for p in body.params} | {r.id for o in body.ops for r in o.results}
        inner = Adjoints(self, builder, adj, local, loop=True)
        carried_params = []
        for i in active:
            param = Value(self.bar_hint(carried[i]), carried[i].kind)
            carried_params.append(param)
            inner.accumulate(body.ops[-1].args[i], param)
        self.reverse_block(body, inner)
        outs = []
        for i in active:
            bar = inner.get(carried[i])
            outs.append(bar if bar is not None else inner.zeros(carried[i]))
        threaded = list(inner.threaded.values())
        outs += [entry[3] if entry[3] is not None else entry[2] for entry in threaded]
        builder.op("yield", outs, nresults=0)
        block.params = [Value("_", "int")] + carried_params + [entry[2] for entry in threaded]

        # the tape: values of each forward iteration that the reverse body reads
        body_values = {p.id: p for p in body.params}
        body_values.update({r.id: r for o in body.ops for r in o.results})
        saved = []
        for rop in walk_ops(block):
            for a in rop.args:
                if a.id in body_values and a not in saved:
                    saved.append(a)
        tape_builder = Builder(Block(), op.loc)
        tape = tape_builder.op("stack", hints=[(carried[0].hint if carried else "loop") +
                                               "_tape"], kinds=["stack"]).result
        fwd.ops.insert(fwd.ops.index(op), tape_builder.block.ops[0])
        push = Builder(Block(), op.loc).op("push", [tape] + saved, nresults=0)
        # push right after the last saved value is computed, so that names can be reused
        defined_at = {r.id: i for i, o in enumerate(body.ops) for r in o.results}
        body.ops.insert(max([defined_at.get(v.id, -1) for v in saved] + [-1]) + 1, push)
        pop = Builder(Block(), op.loc).op("pop", [tape], nresults=len(saved),
                                          hints=[v.hint for v in saved],
                                          kinds=[v.kind for v in saved])
        block.ops.insert(0, pop)
        substitute(block, dict(zip(saved, pop.results)))

        b = adj.b
        count = b.call(len, [tape], kind="int")
        loop_inits = []
        for i in active:
            bar = result_bars[i]
            loop_inits.append(bar if bar is not None else adj.zeros(op.results[i]))
        for entry in threaded:
            current = adj.get(entry[0])
            loop_inits.append(current if current is not None else adj.zeros(entry[0]))
        zero, one = b.const(0), b.const(1)
        rev = b.op("for", [zero, count, one] + loop_inits, nresults=len(loop_inits),
                   hints=[p.hint for p in block.params[1:]],
                   kinds=[p.kind for p in block.params[1:]],
                   attrs={"over": "range", "reverse_of": op.opname}, regions=[block])
        carried_bars, threaded_bars = rev.results[:len(active)], rev.results[len(active):]
        for entry, bar in zip(threaded, threaded_bars):
            adj.set(entry[0], bar)
        for i, bar in zip(active, carried_bars):
            adj.accumulate(inits[i], bar)

    def reads_varied(self, body):
        return any(a.id in self.varied for o in walk_ops(body) for a in o.args)


def reverse(fn, wrt_indices, seeded=None):
    """The pullback of `fn`; sets fn.pullback (a Block) and fn.gradient_leaves.

    `seeded`: how many leading outputs the pullback takes adjoints for (all by
    default); the rest (a loss's auxiliary results) are values only."""
    wrt_params = [fn.params[i] for i in wrt_indices]
    leaves = {i: [] for i in wrt_indices}
    for op in fn.body.ops:
        if op.opname == "unpack" and op.args[0] in wrt_params:
            leaves[fn.params.index(op.args[0])] = op.results
    wrt_values = [fn.params[i] for i in wrt_indices]
    wrt_values += [r for i in wrt_indices for r in leaves[i] if r.kind != "int"]
    transform = ReverseTransform(fn, wrt_values)
    ret = fn.body.ops[-1]
    outputs = ret.args[:seeded]
    block = Block([Value(((o.hint + "_bar") if o.hint else "y_bar"), o.kind) for o in outputs])
    builder = Builder(block, ret.loc)
    adj = Adjoints(transform, builder)
    for out, seed in zip(outputs, block.params):
        adj.accumulate(out, seed)
    transform.reverse_block(fn.body, adj)
    grads = []
    for i in wrt_indices:
        param = fn.params[i]
        if leaves[i] or fn.in_trees[i].kind != "leaf":
            parts = []
            for leaf in leaves[i]:
                bar = adj.get(leaf) if leaf.kind != "int" else None
                if bar is None:
                    bar = adj.zeros(leaf) if leaf.kind != "int" else builder.const(None)
                parts.append(bar)
            grads.append(builder.op("pack", [param] + parts, attrs={"tree": fn.in_trees[i]},
                                    hints=[transform.bar_hint(param)]).result)
        else:
            bar = adj.get(param)
            grads.append(bar if bar is not None else adj.zeros(param))
    builder.op("return", grads, nresults=0)
    fn.pullback = block
    fn.wrt = list(wrt_indices)
    return fn


def keep_tapes(fn):
    """A pullback returned to the caller may run more than once: each run pops a fresh
    copy of the tapes the forward loops filled. Runs after the passes, which pair every
    pop with its pushes through the tape value."""
    stacks = [op.result for op in fn.body.ops if op.opname == "stack"]
    if not stacks:
        return fn
    builder = Builder(fn.pullback, fn.pullback.ops[0].loc if fn.pullback.ops else None)
    copies = {}
    for stack in stacks:
        copies[stack] = builder.call(runtime.fresh_tape, [stack], hint=stack.hint)
    fresh = fn.pullback.ops[-len(stacks):]
    del fn.pullback.ops[-len(stacks):]
    fn.pullback.ops[:0] = fresh
    substitute(Block(ops=fn.pullback.ops[len(stacks):]), copies)
    return fn
