"""Forward mode: generate the tangent program of an IR function as IR.

Every op stays where it is and is followed by the ops computing its tangent, so
the tangent program is the primal program run once with a second value beside
each active one (`h` and `h_dot`). No tape is needed:

* a primitive call inlines its tangent (rules/registry.py: a template, a
  linear function applied to the tangents, or a diagonal one's adjoint);
* an `if` yields the tangents of its results from each branch;
* a `for`/`while` carries the tangents of its carried values beside them.

Only values that depend on a differentiated input (activity analysis) get a
tangent; a zero tangent is never materialised, except where a branch, a loop or
the output needs a real value (then it is `zeros_like` of the primal).
"""
import operator
from types import SimpleNamespace

from ..errors import NoRuleError
from ..frontend.abstract import ObjS, Static, TupleS
from ..frontend.lower import Lowerer
from ..ir import Builder, Value
from ..ir.printer import callable_name
from ..rules import registry
from ..rules.registry import DIAGONAL, SOURCE, ZERO, Linear, ZeroTangent
from .. import runtime
from .reverse import HARMLESS_OPAQUE, varied_values

CONTAINERS = ("list", "tuple", "dict")


def dot_hint(v):
    return (v.hint or "t") + "_dot"


class ForwardTransform:
    def __init__(self, fn, wrt_values, order):
        self.fn = fn
        self.order = order                  # "forward mode", "second order (hvp)": for errors
        self.varied = varied_values(fn, wrt_values)
        self.dots = {}                      # value id -> its tangent (absent: zero)
        self.consts = {}

    # -------------------------------------------------------------- helpers
    def dot(self, v):
        return self.dots.get(v.id)

    def real_dot(self, b, v):
        """The tangent of `v` as a run-time value: zeros where it is zero (a constant
        where v is one)."""
        d = self.dot(v)
        if d is not None:
            return d
        if v.kind == "int":
            return b.const(None)
        if v.id in self.consts and not hasattr(self.consts[v.id], "shape"):
            return b.const(runtime.zeros_like(self.consts[v.id]))
        return b.call(runtime.zeros_like, [v], hint=dot_hint(v), kind=v.kind)

    def error(self, op, message):
        loc = op.loc
        return NoRuleError(f"{message} ({self.order})", loc.filename if loc else None,
                           loc.lineno if loc else None)

    def add(self, b, total, term, kind):
        if total is None:
            return term
        fn = runtime.accumulate if kind in CONTAINERS else operator.add
        return b.call(fn, [total, term], kind=kind)

    # --------------------------------------------------------------- blocks
    def block(self, block):
        """Rebuild `block` with the tangent ops after each op."""
        ops, block.ops = block.ops, []
        b = Builder(block)
        for op in ops:
            self.step(op, b)

    def step(self, op, b):
        """Append `op` to the block being rebuilt, then its tangent ops."""
        b.block.ops.append(op)
        if op.opname == "const":
            self.consts[op.result.id] = op.attrs["value"]
            return
        if op.opname in ("yield", "return"):
            return
        with b.located(op.loc):
            getattr(self, "forward_" + op.opname)(op, b)

    def forward_unpack(self, op, b):
        param = op.args[0]
        d = self.dot(param)
        if d is None:
            return
        leaves = b.op("unpack", [d], nresults=len(op.results),
                      hints=[dot_hint(r) for r in op.results],
                      kinds=[r.kind for r in op.results], attrs=dict(op.attrs))
        for r, t in zip(op.results, leaves.results):
            if r.kind != "int" and r.id in self.varied:
                self.dots[r.id] = t

    def forward_call(self, op, b):
        if op.result.id not in self.varied or op.result.kind == "int":
            return
        fn = op.attrs["fn"]
        entry = registry.lookup(fn)
        kwnames = op.attrs.get("kwnames", ())
        npos = len(op.args) - len(kwnames)
        positional, keyword = op.args[:npos], op.args[npos:]
        dots = [self.dot(a) for a in positional]
        if all(d is None for d in dots) and all(self.dot(a) is None for a in keyword):
            return
        if entry is None or entry.tangent is None:
            if entry is None and (fn in HARMLESS_OPAQUE or (
                    isinstance(fn, type) and issubclass(fn, BaseException))):
                return
            if entry is None and hasattr(fn, "__code__"):
                raise self.error(op, f"recursive call to {callable_name(fn)} cannot be "
                                 "differentiated in forward mode")
            name = entry.emit if entry is not None and entry.emit else callable_name(fn)
            raise self.error(op, f"no tangent rule for {name}; register one with @ds.tangent")
        active_kw = [k for k, a in zip(kwnames, keyword) if self.dot(a) is not None]
        if active_kw:
            raise self.error(op, f"{callable_name(fn)} receives a differentiated value as "
                             f"keyword argument {active_kw[0]!r}, which its tangent rule does "
                             "not cover; pass it positionally")
        rule = entry.tangent
        if isinstance(rule, Linear):
            result = self.linear(op, b, rule, dots)
        elif rule is SOURCE:
            result = self.from_source(op, b, fn)
        elif rule is DIAGONAL:
            if any(d is not None for d in dots[1:]):
                raise self.error(op, f"no tangent rule for {callable_name(fn)} with respect "
                                 "to its second argument")
            result = self.inline(b, entry.adjoint, [dots[0], op.result] + list(positional), op)
            result = self.first_of(b, result)
        else:
            arg_dots = TupleS(tuple(d if d is not None else Static(ZERO) for d in dots))
            result = self.inline(b, rule, [arg_dots, op.result] + list(positional), op)
        self.set_dot(b, op.result, result)

    def inline(self, b, template, args, op):
        """Read a rule template with the frontend and inline it here."""
        kwnames = op.attrs.get("kwnames", ())
        npos = len(op.args) - len(kwnames)
        low = Lowerer(b)
        low.fixed_loc = True
        extra = len(args) - npos
        args = args[:extra] + [self.abstract(a) for a in args[extra:]]
        kwargs = {k: self.abstract(v) for k, v in zip(kwnames, op.args[npos:])}
        return low.call(Static(template), args, kwargs)

    def from_source(self, op, b, fn):
        """A helper's source, inlined after the call (constant arguments fold) and
        differentiated like user code; it recomputes the helper's value, which the
        tangent needs."""
        kwnames = op.attrs.get("kwnames", ())
        npos = len(op.args) - len(kwnames)
        start = len(b.block.ops)
        low = Lowerer(b)
        low.fixed_loc = True
        result = low.call_python(fn, [self.abstract(a) for a in op.args[:npos]],
                                 {k: self.abstract(v) for k, v in zip(kwnames, op.args[npos:])})
        inlined = b.block.ops[start:]
        del b.block.ops[start:]
        seeds = [SimpleNamespace(id=i) for i in self.varied]
        self.varied |= varied_values(SimpleNamespace(body=SimpleNamespace(ops=inlined)), seeds)
        for inner in inlined:
            self.step(inner, b)
        return self.tangent_of(b, result)

    def tangent_of(self, b, result):
        """The tangent of a lowered result: a Value's, or a structure of them."""
        if isinstance(result, Value):
            return self.dot(result) if result.kind != "int" else None
        if isinstance(result, TupleS):
            dots = [self.tangent_of(b, item) for item in result.items]
            if all(d is None for d in dots):
                return None
            return TupleS(tuple(d if d is not None else self.real_dot(b, Lowerer(b).value(item))
                                for d, item in zip(dots, result.items)))
        return None

    def abstract(self, v):
        """Constants reach templates as constants (so `is_constant(axis)` folds)."""
        if isinstance(v, Value) and v.id in self.consts:
            return Static(self.consts[v.id])
        return v

    def first_of(self, b, result):
        if isinstance(result, TupleS):
            return result.items[0]
        return b.call(operator.getitem, [Lowerer(b).value(result), b.const(0)])

    def set_dot(self, b, y, result):
        if result is None or (isinstance(result, ObjS) and result.cls is ZeroTangent):
            return
        if isinstance(result, Static) and (result.value is None or result.value is ZERO):
            return
        if not isinstance(result, Value):
            result = Lowerer(b).value(result)
        if not result.hint:
            result.hint = dot_hint(y)
        self.dots[y.id] = result

    def linear(self, op, b, rule, dots):
        """A linear function's tangent is the function applied to the tangents."""
        fn = op.attrs["fn"]
        kwnames = op.attrs.get("kwnames", ())
        npos = len(op.args) - len(kwnames)
        which = 0
        if rule.which is not None:
            if rule.which < npos and op.args[rule.which].id not in self.consts:
                raise self.error(op, f"{callable_name(fn)} with a run-time `which`")
            which = self.consts[op.args[rule.which].id] if rule.which < npos else 0
        linear_in = rule.active(npos, which)
        positions = [p for p in linear_in if dots[p] is not None]
        if not positions:
            return None
        kind = op.result.kind
        if rule.joint:
            args = list(op.args)
            for p in linear_in:
                number = self.consts.get(op.args[p].id)
                args[p] = b.const(0.0) if isinstance(number, (int, float)) else \
                    self.real_dot(b, op.args[p])
            return b.call(fn, args, kwnames, kind=kind)
        total = None
        for p in positions:
            args = list(op.args)
            args[p] = dots[p]
            total = self.add(b, total, b.call(fn, args, kwnames, kind=kind), kind)
        return total

    # ------------------------------------------------------------- branches
    def forward_if(self, op, b):
        for region in op.regions:
            self.block(region)
        active = [i for i, r in enumerate(op.results) if r.id in self.varied and
                  r.kind != "int" and any(self.dot(region.ops[-1].args[i]) is not None
                                          for region in op.regions)]
        if not active:
            return
        for region in op.regions:
            yield_op = region.ops.pop()
            rb = Builder(region, yield_op.loc)
            yield_op.args += [self.real_dot(rb, yield_op.args[i]) for i in active]
            region.ops.append(yield_op)
        for i in active:
            r = op.results[i]
            t = Value(dot_hint(r), r.kind)
            op.results.append(t)
            self.dots[r.id] = t

    # ---------------------------------------------------------------- loops
    def forward_for(self, op, b):
        body = op.regions[0]
        self.loop(op, b, body.params[1:], op.args[3:], [body])

    def forward_while(self, op, b):
        cond, body = op.regions
        self.loop(op, b, body.params, op.args, [cond, body])

    def loop(self, op, b, carried, inits, regions):
        body = regions[-1]
        active = [i for i, p in enumerate(carried) if p.id in self.varied and p.kind != "int"]
        offsets = [len(region.params) - len(carried) for region in regions]
        for i in active:
            for region, offset in zip(regions, offsets):
                p = region.params[offset + i]
                t = Value(dot_hint(p), p.kind)
                region.params.append(t)
                self.dots[p.id] = t
        for region in regions:
            self.block(region)
        yield_op = body.ops.pop()
        rb = Builder(body, yield_op.loc)
        yield_op.args += [self.real_dot(rb, yield_op.args[i]) for i in active]
        body.ops.append(yield_op)
        start = len(b.block.ops)
        op.args += [self.real_dot(b, inits[i]) for i in active]
        before = b.block.ops[start:]                 # zero initial tangents: made before
        del b.block.ops[start:]
        position = b.block.ops.index(op)
        b.block.ops[position:position] = before
        for i in active:
            r = op.results[i]
            t = Value(dot_hint(r), r.kind)
            op.results.append(t)
            self.dots[r.id] = t

    # -------------------------------------------------------- never forward
    def forward_vjp(self, op, b):
        raise self.error(op, f"recursive call to {callable_name(op.attrs['fn'])} cannot be "
                         "differentiated in forward mode")

    def forward_pack(self, op, b):
        raise self.error(op, "a pullback cannot be differentiated in forward mode")

    forward_unvjp = forward_stack = forward_push = forward_pop = forward_pack


def forward(fn, wrt_indices, order="forward mode"):
    """The tangent program of `fn`: a tangent parameter after the parameters for each of
    `wrt_indices`, and the output tangents returned after the outputs."""
    wrt_params = [fn.params[i] for i in wrt_indices]
    leaves = [r for op in fn.body.ops if op.opname == "unpack" and op.args[0] in wrt_params
              for r in op.results if r.kind != "int"]
    transform = ForwardTransform(fn, wrt_params + leaves, order)
    tangents = []
    for p in wrt_params:
        t = Value(dot_hint(p), p.kind)
        transform.dots[p.id] = t
        tangents.append(t)
    transform.block(fn.body)
    ret = fn.body.ops.pop()
    b = Builder(fn.body, ret.loc)
    ret.args += [transform.real_dot(b, out) for out in ret.args]
    fn.body.ops.append(ret)
    fn.params += tangents
    fn.wrt = list(wrt_indices)
    fn.origin = fn.name                 # the generated docstring names the user's function
    fn.name = fn.name + "_jvp"
    return fn
