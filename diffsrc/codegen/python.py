"""IR -> Python source that reads as if a careful person wrote it.

Three decisions make the text readable:
* names come from the user's variables (`h`, `h_bar`); a value reuses its
  variable's name once the previous holder is dead, and a loop-carried value
  keeps one name through init, body and result, so loops look like loops;
* single-use temporaries are written inline as sub-expressions, with only the
  parentheses Python's precedence needs;
* constants are literals; only objects with no literal form get a name.

In specialised code, a large array is deleted (`del h1`) once it and every value that
may share its memory are dead, where a large allocation follows: a careful person frees
what the next big array would otherwise be allocated beside.
"""
import builtins
import itertools
import keyword
import math
import operator

import numpy as np

from ..ir.nodes import walk_ops
from ..ir.printer import BINARY_SYMBOLS, UNARY_SYMBOLS
from ..rules import registry
from ..rules.registry import Method
from ..rules.structures import list_append, make_dict, make_list, make_tuple
from .. import runtime

# Python operator precedence, loosest to tightest.
PREC = {"ifexp": 1, "or": 2, "and": 3, "not": 4, "cmp": 5, "|": 6, "^": 7, "&": 8, "<<": 9,
        ">>": 9, "+": 10, "-": 10, "*": 11, "@": 11, "/": 11, "//": 11, "%": 11, "unary": 12,
        "**": 13, "primary": 15, "atom": 16}
# Operators an in-place update writes as augmented assignment, and the ufunc behind each.
AUGMENTED = {operator.add: "+", operator.sub: "-", operator.mul: "*", operator.truediv: "/",
             operator.pow: "**", np.add: "+", np.subtract: "-", np.multiply: "*",
             np.divide: "/"}
COMMUTATIVE = {operator.add, operator.mul, np.add, np.multiply}     # exactly, in floating point
UFUNC_OF = {operator.add: np.add, operator.sub: np.subtract, operator.mul: np.multiply,
            operator.truediv: np.divide, operator.pow: np.power, operator.neg: np.negative}
COMPARISONS = {"<", "<=", ">", ">=", "==", "!=", "is", "is not", "in"}
# NumPy functions written as the method of an argument known to be an array (specialised
# code): `t.sum(axis=0)` calls the same reduction without np.sum's Python layer (about
# 1 us a call), with the keywords the method takes alike.
METHOD_FORMS = {np.sum: ("sum", {"axis", "dtype", "keepdims"}),
                np.mean: ("mean", {"axis", "dtype", "keepdims"}),
                np.max: ("max", {"axis", "keepdims"}), np.amax: ("max", {"axis", "keepdims"}),
                np.min: ("min", {"axis", "keepdims"}), np.amin: ("min", {"axis", "keepdims"}),
                np.reshape: ("reshape", set()), np.transpose: ("transpose", set())}
POSITIONAL_LIMIT = {"reshape": 2, "transpose": 2}    # their further arguments are keywords
# Elementwise operations written `long_rows(np.add, t, c)` in specialised code where t is a
# large float array and c a number or a short array repeating along t's leading axes (a
# bias, a relu's 0): runtime.long_rows runs NumPy's vector loop over long rows instead.
# With a number from 64 KiB, for maximum and minimum only (NumPy's loop with a scalar is
# 2-4x slower than its vector loop there; add, subtract, multiply and divide have fast
# scalar loops, 3-4x faster than tiling: W7's 1 + exp(-x)); with an array from 256 KiB and
# 1024 rows (NumPy's cost per row, tens of ns, must outweigh the tiling's few us: (128, 512)
# and (512, 128) go 1.2-1.4x slower tiled).
SLOW_SCALAR_UFUNCS = {np.maximum, np.minimum}
LONG_ROW_UFUNCS = {operator.add: np.add, np.add: np.add, operator.sub: np.subtract,
                   np.subtract: np.subtract, operator.mul: np.multiply,
                   np.multiply: np.multiply, operator.truediv: np.divide, np.divide: np.divide,
                   np.maximum: np.maximum, np.minimum: np.minimum}
LONG_ROWS_MIN_BYTES = {"number": 1 << 16, "array": 1 << 18}
LONG_ROWS_MIN_REPEATS = 1024
ATOM = PREC["atom"]


class Expr:
    __slots__ = ("text", "prec")

    def __init__(self, text, prec=ATOM):
        self.text, self.prec = text, prec

    def at(self, prec):
        return self.text if self.prec >= prec else f"({self.text})"


def literal(value):
    """An Expr for a constant with a literal form, else None."""
    if value is None or isinstance(value, (bool, str, bytes)) or value is Ellipsis:
        return Expr(repr(value) if value is not Ellipsis else "...")
    if isinstance(value, int) and not isinstance(value, bool):
        return Expr(repr(value), ATOM if value >= 0 else PREC["unary"])
    if isinstance(value, float):
        if math.isfinite(value):
            text = repr(value)
            return Expr(text, ATOM if value >= 0 and not text.startswith("-") else PREC["unary"])
        return Expr(f"float({str(value)!r})", PREC["primary"])
    if isinstance(value, complex):
        return Expr(repr(value))
    if isinstance(value, slice):
        return Expr(f"slice({value.start!r}, {value.stop!r}, {value.step!r})", PREC["primary"]) \
            if all(literal(p) for p in (value.start, value.stop, value.step)) else None
    if isinstance(value, tuple):
        parts = [literal(v) for v in value]
        if all(parts):
            inner = ", ".join(p.text for p in parts)
            return Expr(f"({inner},)" if len(parts) == 1 else f"({inner})")
    if isinstance(value, list):
        parts = [literal(v) for v in value]
        if all(parts):
            return Expr("[" + ", ".join(p.text for p in parts) + "]")
    if isinstance(value, dict):
        items = [(literal(k), literal(v)) for k, v in value.items()]
        if all(k and v for k, v in items):
            return Expr("{" + ", ".join(f"{k.text}: {v.text}" for k, v in items) + "}")
    if isinstance(value, np.dtype):
        return Expr(f"np.dtype({value.str!r})", PREC["primary"])
    if isinstance(value, (type, np.ufunc)) and getattr(np, value.__name__, None) is value:
        return Expr(f"np.{value.__name__}", PREC["primary"])
    if isinstance(value, type) and getattr(builtins, value.__name__, None) is value:
        return Expr(value.__name__)
    return None


def index_text(value):
    """Subscript syntax for a constant index: `:, 1:3, None`."""
    parts = value if isinstance(value, tuple) else (value,)
    out = []
    for p in parts:
        if isinstance(p, slice):
            text = "" if p.start is None else repr(p.start)
            text += ":" + ("" if p.stop is None else repr(p.stop))
            if p.step is not None:
                text += ":" + repr(p.step)
            out.append(text)
        elif p is Ellipsis:
            out.append("...")
        else:
            lit = literal(p)
            if lit is None:
                return None
            out.append(lit.text)
    if isinstance(value, tuple) and len(value) == 1:
        return out[0] + ","
    return ", ".join(out)


class Namer:
    """Chooses a Python name per IR value: the user's name whenever it is free."""

    def __init__(self, reserved):
        self.names = {}
        self.holders = {}          # name -> [(def, last_use)]
        self.reserved = set(reserved)

    def free(self, name, interval):
        if name in self.reserved or keyword.iskeyword(name):
            return False
        start, end = interval
        return all(e <= start or end <= s for s, e in self.holders.get(name, []))

    def assign(self, value, interval, preferred=()):
        base = value.hint or "t"
        base = "".join(c if c.isalnum() or c == "_" else "_" for c in base)
        if not base[0].isalpha() and base[0] != "_":
            base = "v" + base
        candidates = itertools.chain(preferred, [base], (f"{base}_{i}" for i in itertools.count(1)))
        for name in candidates:
            if name and self.free(name, interval):
                self.names[value.id] = name
                self.holders.setdefault(name, []).append(interval)
                return name


class Codegen:
    def __init__(self, fn, mode, name):
        self.fn = fn
        self.mode = mode               # "grad" | "pullback" | "primal"
        self.title = name
        self.namespace = {"np": np, "math": math}
        self.lines = []
        self.line_locs = {}
        self.bound = {}                # id(object) -> namespace name
        self.inline = {}               # value id -> Expr, for values written inline
        self.uses = {}
        self.defs = {}
        self.seeds = {}
        self.fusion = None             # a backend's fused-kernel plan (backends/cupy.py)

    # ---------------------------------------------------------------- analysis
    def blocks(self):
        blocks = [self.fn.body]
        if self.mode in ("grad", "pullback"):
            blocks.append(self.fn.pullback)
        return blocks

    def analyse(self):
        """Positions of ops, and every use of every value (with its enclosing loops)."""
        self.pos, self.end, self.def_pos = {}, {}, {}
        self.use_sites = []                      # (value, using op, loops around the use)
        counter = [0]
        loops = []

        def walk(block):
            for p in block.params:
                self.def_pos[p.id] = counter[0]
            for op in block.ops:
                counter[0] += 1
                self.pos[id(op)] = counter[0]
                for a in op.args:
                    self.uses[a.id] = self.uses.get(a.id, 0) + 1
                    self.use_sites.append((a, op, list(loops)))
                for r in op.results:
                    self.defs[r.id] = op
                if op.regions:
                    is_loop = op.opname in ("for", "while")
                    if is_loop:
                        loops.insert(0, (op, counter[0]))
                    for region in op.regions:
                        counter[0] += 1
                        walk(region)
                    if is_loop:
                        loops.pop(0)
                counter[0] += 1
                self.end[id(op)] = counter[0]
                for r in op.results:
                    self.def_pos[r.id] = counter[0] if op.regions else self.pos[id(op)]

        for p in self.fn.params:
            self.def_pos[p.id] = 0
        self.forward_ids = set()
        walk(self.fn.body)
        self.forward_ids = set(self.def_pos)
        if self.mode in ("grad", "pullback"):
            walk(self.fn.pullback)
        self.final = counter[0] + 1
        if self.mode == "grad":       # the value is returned after the pullback has run
            self.pos[id(self.fn.body.ops[-1])] = self.final

    def live_ranges(self):
        """Last use of each value, where an inlined expression counts at its consumer."""
        consumer = {}
        for a, op, _ in self.use_sites:
            consumer[a.id] = op

        def effective(op):
            while op.results and op.results[0].id in self.inline and \
                    op.results[0].id in consumer:
                op = consumer[op.results[0].id]
            return self.pos[id(op)]

        self.last_use = {}
        for a, op, loops in self.use_sites:
            position = effective(op)
            for loop_op, start in reversed(loops):
                if self.def_pos.get(a.id, -1) < start:
                    position = max(position, self.end[id(loop_op)])
                    break
            if self.mode == "pullback" and a.id in self.forward_ids and \
                    self.pos[id(op)] > self.pos[id(self.fn.body.ops[-1])]:
                position = self.final     # read by the closure: its name stays reserved
            self.last_use[a.id] = max(self.last_use.get(a.id, 0), position)

    def interval(self, v):
        start = self.def_pos.get(v.id, 0)
        return (start, max(self.last_use.get(v.id, start), start))

    # ----------------------------------------------------------------- inlining
    def choose_inline(self):
        """Single-use temporaries and literals are written where they are used."""
        uses_in = {}
        for block in self.blocks():
            self._collect_user_blocks(block, uses_in)
        for block in self.blocks():
            for op in walk_ops(block):
                if op.opname == "const":
                    self.inline[op.result.id] = None       # a literal, or a bound name
                elif op.opname == "call" and self.inlinable(op, uses_in):
                    self.inline[op.result.id] = None

    def _collect_user_blocks(self, block, out):
        for i, op in enumerate(block.ops):
            for a in op.args:
                out.setdefault(a.id, []).append((id(block), i, op))
            for region in op.regions:
                self._collect_user_blocks(region, out)

    def inlinable(self, op, uses_in):
        v = op.result
        if (v.hint and not v.hint.startswith("_")) or op.attrs.get("inplace"):
            return False
        entry = registry.lookup(op.attrs["fn"])
        if entry is None or entry.effect:
            return False
        users = uses_in.get(v.id, [])
        if len(users) != 1:
            return False
        user = users[0][2]
        if user.opname not in ("call", "yield", "return", "push", "pack", "if", "for") or (
                user.attrs.get("inplace") and user.args[user.attrs.get("out", 0)] is v):
            return False
        return self._same_block(op, users[0])

    def _same_block(self, op, user_entry):
        for block in self.blocks():
            for b in [block] + [r for o in walk_ops(block) for r in o.regions]:
                if op in b.ops:
                    return id(b) == user_entry[0] and b.ops.index(op) < user_entry[1] and \
                        not any(o.opname in ("push", "pop", "vjp", "unvjp") or (
                            o.opname == "call" and (o.attrs.get("inplace") or getattr(
                                registry.lookup(o.attrs["fn"]), "effect", True)))
                            for o in b.ops[b.ops.index(op) + 1:user_entry[1]])
        return False

    # ------------------------------------------------------------------ naming
    def name_values(self):
        reserved = {"np", "math", "pullback", "with_fields"} | set(dir(builtins)) | {
            self.title + suffix for suffix in ("", "_grad", "_back", "_pullback")}
        self.namer = Namer(reserved)
        self.preferred = {}
        self.pushes = {}
        for block in self.blocks():
            for op in walk_ops(block):
                if op.opname == "push":
                    self.pushes.setdefault(op.args[0].id, []).append(op)
        for block in self.blocks():
            for op in walk_ops(block):
                self._preferences(op)
        params = list(self.fn.params)
        if self.mode == "pullback":         # every seed is a parameter of `_back`, used or not
            params += self.fn.pullback.params
        for p in params:        # an argument's name is never reused for another value
            self.namer.assign(p, (0, max(self.interval(p)[1], self.final)))
        order = []
        for block in self.blocks():
            order.extend(self._defined_values(block))
        for v in sorted(order, key=lambda v: self.def_pos.get(v.id, 0)):
            if v.id in self.inline or v.id in self.namer.names:
                continue
            preferred = [self.namer.names[p.id] for p in self.preferred.get(v.id, ())
                         if p.id in self.namer.names]
            self.namer.assign(v, self.interval(v), preferred)

    def _defined_values(self, block):
        out = list(block.params)
        for op in block.ops:
            for region in op.regions:
                out.extend(self._defined_values(region))
            out.extend(op.results)
        return out

    def _preferences(self, op):
        def link(a, b):
            self.preferred.setdefault(a.id, []).append(b)
            self.preferred.setdefault(b.id, []).append(a)
        if op.opname in ("for", "while"):
            body = op.regions[-1]
            inits = op.args[3:] if op.opname == "for" else op.args
            params = body.params[1:] if op.opname == "for" else body.params
            for k, p in enumerate(params):
                link(p, inits[k])
                link(op.results[k], p)
                link(body.ops[-1].args[k], p)
                if op.opname == "while":
                    link(op.regions[0].params[k], inits[k])
        elif op.opname == "if":
            for region in op.regions:
                for k, y in enumerate(region.ops[-1].args):
                    link(y, op.results[k])
        elif op.opname == "call" and op.attrs.get("inplace"):
            buffer = op.args[op.attrs.get("out", 0)]
            if "out" not in op.attrs or op.result.hint in ("", buffer.hint):
                link(op.result, buffer)        # else `b_bar = t_bar; b_bar *= a` reads better
        elif op.opname == "pop":               # a popped value keeps its pushed name
            for push in self.pushes.get(op.args[0].id, ()):
                for popped, pushed in zip(op.results, push.args[1:]):
                    link(popped, pushed)

    def plan_deletes(self):
        """Names to delete after each top-level op: those of the groups of values sharing
        memory (`fn.release_groups`, from the in-place pass) whose last use it is, when a
        large allocation (`fn.large_allocations`) comes after it."""
        self.deletes = {}
        groups = getattr(self.fn, "release_groups", None)
        if not groups or self.mode == "pullback":      # (the closure keeps its values)
            return
        top = [op for block in self.blocks() for op in block.ops[:-1]]
        defined = {r.id for op in top for r in op.results}
        members, holders = {}, {}
        for vid, key in groups.items():
            members.setdefault(key, []).append(vid)
        for vid, name in self.namer.names.items():
            holders.setdefault(name, []).append(vid)
        allocations = [self.def_pos[v] for v in self.fn.large_allocations if v in self.def_pos]
        for vids in members.values():
            vids = [v for v in vids if v in defined and self.uses.get(v)]
            if not vids:
                continue
            death = max(self.last_use.get(v, 0) for v in vids)
            at = next((op for op in top if self.pos[id(op)] <= death <= self.end[id(op)]), None)
            if at is None or not any(p > self.end[id(at)] for p in allocations):
                continue
            names = {self.namer.names[v] for v in vids if v in self.namer.names and not any(
                self.def_pos[v] < self.def_pos.get(w, 0) <= self.end[id(at)]
                for w in holders[self.namer.names[v]] if w != v)}
            if names:
                self.deletes.setdefault(id(at), []).extend(names)
        for names in self.deletes.values():
            names.sort()

    def name(self, v):
        return self.namer.names[v.id]

    # -------------------------------------------------------------- expressions
    def const_expr(self, value):
        lit = literal(value)
        if lit is not None:
            return lit
        return None

    def bind(self, obj, hint):
        key = id(obj)
        if key not in self.bound:
            base = "".join(c if c.isalnum() else "_" for c in (hint or "constant")) or "constant"
            name, i = base, 1
            while name in self.namespace or name in self.namer.holders or keyword.iskeyword(name):
                i += 1
                name = f"{base}_{i}"
            self.namespace[name] = obj
            self.bound[key] = name
        return self.bound[key]

    def ref(self, v):
        """The expression that reads value `v`."""
        if v.id in self.seeds:
            return self.seeds[v.id]
        if v.id in self.inline:
            op = self.defs[v.id]
            if op.opname == "const":
                value = op.attrs["value"]
                return self.const_expr(value) or Expr(self.bind(value, v.hint or "constant"))
            return self.call_expr(op)
        if v.id not in self.namer.names:
            op = self.defs.get(v.id)
            if op is not None and op.opname == "const":
                return Expr(self.bind(op.attrs["value"], v.hint), ATOM)
        return Expr(self.name(v))

    def const_value(self, v):
        op = self.defs.get(v.id)
        return op.attrs["value"] if op is not None and op.opname == "const" else None

    def is_const(self, v):
        op = self.defs.get(v.id)
        return op is not None and op.opname == "const"

    def callable_text(self, fn):
        entry = registry.lookup(fn)
        if entry is not None and entry.emit:
            return entry.emit
        module = getattr(fn, "__module__", None) or ""
        name = getattr(fn, "__name__", None)
        if name and module in ("diffsrc.runtime", "diffsrc.rules.structures"):
            self.namespace[name] = fn
            return name
        if name and getattr(np, name, None) is fn:
            return f"np.{name}"
        if name and getattr(np.random, name, None) is fn:
            return f"np.random.{name}"
        if name and getattr(math, name, None) is fn:
            return f"math.{name}"
        if name and getattr(builtins, name, None) is fn:
            return name
        return self.bind(fn, name)

    def call_expr(self, op):
        fn = op.attrs["fn"]
        kwnames = op.attrs.get("kwnames", ())
        npos = len(op.args) - len(kwnames)
        pos, kw = op.args[:npos], list(zip(kwnames, op.args[npos:]))
        ufunc = self.long_rows_ufunc(op)
        if ufunc is not None:
            self.namespace["long_rows"] = runtime.long_rows
            left, right = (self.ref(a).text for a in pos)
            return Expr(f"long_rows({self.callable_text(ufunc)}, {left}, {right})",
                        PREC["primary"])
        if fn in BINARY_SYMBOLS and npos == 2 and not kw:
            symbol = BINARY_SYMBOLS[fn]
            prec = PREC["cmp"] if symbol in COMPARISONS else PREC[symbol]
            left, right = self.ref(pos[0]), self.ref(pos[1])
            if symbol == "**":
                return Expr(f"{left.at(PREC['**'] + 1)} ** {right.at(PREC['unary'])}", prec)
            if symbol in COMPARISONS:
                return Expr(f"{left.at(prec + 1)} {symbol} {right.at(prec + 1)}", prec)
            return Expr(f"{left.at(prec)} {symbol} {right.at(prec + 1)}", prec)
        if fn is operator.is_ or fn is operator.is_not:
            word = "is" if fn is operator.is_ else "is not"
            return Expr(f"{self.ref(pos[0]).at(6)} {word} {self.ref(pos[1]).at(6)}", PREC["cmp"])
        if fn is operator.contains:
            return Expr(f"{self.ref(pos[1]).at(6)} in {self.ref(pos[0]).at(6)}", PREC["cmp"])
        if fn in UNARY_SYMBOLS and npos == 1 and not kw:
            symbol = UNARY_SYMBOLS[fn]
            if symbol == "not ":
                return Expr(f"not {self.ref(pos[0]).at(PREC['not'])}", PREC["not"])
            return Expr(f"{symbol}{self.ref(pos[0]).at(PREC['unary'])}", PREC["unary"])
        if fn is operator.getitem:
            return Expr(f"{self.ref(pos[0]).at(PREC['primary'])}[{self.index(pos[1])}]",
                        PREC["primary"])
        if fn is make_tuple:
            parts = [self.ref(a).text for a in pos]
            return Expr(f"({parts[0]},)" if len(parts) == 1 else f"({', '.join(parts)})")
        if fn is make_list:
            return Expr("[" + ", ".join(self.ref(a).text for a in pos) + "]")
        if fn is make_dict:
            keys = self.const_value(pos[0])
            items = ", ".join(f"{k!r}: {self.ref(v).text}" for k, v in zip(keys, pos[1:]))
            return Expr("{" + items + "}")
        if fn is list_append:
            return Expr(f"{self.ref(pos[0]).at(PREC['+'])} + [{self.ref(pos[1]).text}]", PREC["+"])
        args = [self.ref(a).text for a in pos] + [f"{k}={self.ref(v).text}" for k, v in kw]
        method = self.method_form(fn, pos, kwnames)
        if method is not None:
            fn = Method(method)
        if isinstance(fn, Method):
            receiver = self.ref(pos[0])
            text = receiver.at(PREC["primary"])
            if receiver.prec == ATOM and text[:1].isdigit():
                text = f"({text})"
            if fn.attribute:
                return Expr(f"{text}.{fn.name}", PREC["primary"])
            return Expr(f"{text}.{fn.name}({', '.join(args[1:])})", PREC["primary"])
        return Expr(f"{self.callable_text(fn)}({', '.join(args)})", PREC["primary"])

    def method_form(self, fn, pos, kwnames):
        """The method name for `np.f(x, ...)` where x is known to be an array, else None."""
        try:
            name, keywords = METHOD_FORMS.get(fn, (None, None))
        except TypeError:                         # an unhashable callable
            return None
        info = getattr(self.fn, "shape_info", {}).get(pos[0].id) if pos else None
        if name is None or info is None or info.kind != "array" or \
                not set(kwnames) <= keywords or len(pos) > POSITIONAL_LIMIT.get(name, 1):
            return None
        return name

    def long_rows_ufunc(self, op):
        """The ufunc of a binary elementwise `op` that runtime.long_rows should run, else
        None: a float result of LONG_ROWS_MIN_BYTES or more, one operand shaped like it,
        the other a number or a short array of its dtype repeating along its leading axes
        LONG_ROWS_MIN_REPEATS times or more."""
        try:
            ufunc = LONG_ROW_UFUNCS.get(op.attrs["fn"])
        except TypeError:                         # an unhashable callable
            return None
        info = getattr(self.fn, "shape_info", {})
        result = info.get(op.results[0].id) if len(op.results) == 1 else None
        if ufunc is None or self.fusion is not None or op.attrs.get("kwnames") or \
                len(op.args) != 2 or result is None or result.kind != "array" or \
                result.dtype.kind != "f":
            return None
        a, b = (info.get(v.id) for v in op.args)
        short = b if a == result else a if b == result else None
        kind = _repeating(short, result)
        size = np.prod(result.shape)
        if kind is None or size * result.dtype.itemsize < LONG_ROWS_MIN_BYTES[kind] or \
                kind == "number" and ufunc not in SLOW_SCALAR_UFUNCS or \
                kind == "array" and size < LONG_ROWS_MIN_REPEATS * np.prod(short.shape):
            return None
        return ufunc

    def index(self, v):
        if self.is_const(v):
            text = index_text(self.const_value(v))
            if text is not None:
                return text
        op = self.defs.get(v.id)
        if op is not None and op.opname == "call" and op.attrs["fn"] is make_tuple and \
                v.id in self.inline:
            parts = [self.index_part(a) for a in op.args]
            return ", ".join(parts) + ("," if len(parts) == 1 else "")
        return self.index_part(v)

    def index_part(self, v):
        """One entry of a subscript: slices as `lo:hi:step`, everything else as itself."""
        if self.is_const(v) and not isinstance(self.const_value(v), tuple):
            text = index_text(self.const_value(v))
            if text is not None:
                return text
        op = self.defs.get(v.id)
        if op is not None and op.opname == "call" and op.attrs["fn"] is slice and \
                v.id in self.inline and len(op.args) == 3:
            lo, hi, step = ("" if self.is_const(a) and self.const_value(a) is None
                            else self.ref(a).text for a in op.args)
            return f"{lo}:{hi}" + (f":{step}" if step else "")
        return self.ref(v).text

    # --------------------------------------------------------------- statements
    def emit(self, text, depth, loc=None):
        self.lines.append("    " * depth + text)
        if loc is not None:
            self.line_locs[len(self.lines)] = loc

    def assign_text(self, targets, expr):
        return f"{', '.join(targets)} = {expr}"

    def emit_block(self, block, depth):
        start = len(self.lines)
        for op in block.ops:
            self.emit_op(op, depth)
        return len(self.lines) > start

    def emit_op(self, op, depth):
        name = op.opname
        loc = op.loc
        if self.fusion is not None and self.fusion.emit(self, op, depth):
            return
        if name == "const" or (op.results and all(r.id in self.inline for r in op.results)):
            return
        if name == "call" and op.attrs.get("inplace"):
            self.emit_in_place(op, depth, loc)
        elif name == "call":
            expr = self.call_expr(op)
            if self.uses.get(op.result.id):
                self.emit(f"{self.name(op.result)} = {expr.text}", depth, loc)
            else:
                entry = registry.lookup(op.attrs["fn"])
                if entry is None or entry.effect:
                    self.emit(expr.text, depth, loc)
        elif name == "unpack":
            tree = op.attrs["tree"]
            base = self.ref(op.args[0]).at(PREC["primary"])
            for leaf, path in zip(op.results, tree.leaf_paths()):
                if self.uses.get(leaf.id):
                    self.emit(f"{self.name(leaf)} = {base}{path_text(path)}", depth, loc)
        elif name == "pack":
            tree = op.attrs["tree"]
            parts = iter(op.args[1:])
            expr = self.pack_expr(tree, self.ref(op.args[0]).at(PREC["primary"]), parts)
            self.emit(f"{self.name(op.result)} = {expr}", depth, loc)
        elif name == "if":
            self.emit(f"if {self.ref(op.args[0]).text}:", depth, loc)
            then, other = op.regions
            self.emit_region(then, op.results, depth + 1)
            if self.region_has_code(other, op.results):
                self.emit("else:", depth)
                self.emit_region(other, op.results, depth + 1)
        elif name == "for":
            self.emit_for(op, depth)
        elif name == "while":
            self.emit_while(op, depth)
        elif name == "stack":
            self.emit(f"{self.name(op.result)} = []", depth, loc)
        elif name == "push":
            values = [self.ref(a).text for a in op.args[1:]]
            item = values[0] if len(values) == 1 else f"({', '.join(values)})" if values else \
                "None"
            if len(values) == 1 and self.ref(op.args[1]).prec < PREC["atom"]:
                item = values[0]
            self.emit(f"{self.ref(op.args[0]).text}.append({item})", depth, loc)
        elif name == "pop":
            targets = [self.name(r) if self.uses.get(r.id) else "_" for r in op.results]
            stack = self.ref(op.args[0]).text
            if not targets:
                self.emit(f"{stack}.pop()", depth, loc)
            elif len(targets) == 1:
                self.emit(f"{targets[0]} = {stack}.pop()", depth, loc)
            else:
                self.emit(f"{', '.join(targets)} = {stack}.pop()", depth, loc)
        elif name == "vjp":
            self.namespace["pullback"] = _pullback_entry()
            fn_text = self.callable_text(op.attrs["fn"])
            args = ", ".join(self.ref(a).text for a in op.args)
            self.emit(f"{self.name(op.results[0])}, {self.name(op.results[1])} = "
                      f"pullback({fn_text}, {args})", depth, loc)
        elif name == "unvjp":
            self.emit(f"{self.name(op.result)} = {self.ref(op.args[0]).text}"
                      f"({self.ref(op.args[1]).text})", depth, loc)
        elif name in ("yield", "return"):
            pass
        else:
            raise AssertionError(f"codegen cannot emit {name}")

    def emit_in_place(self, op, depth, loc):
        """`x[index] = v` (or a scatter-add) for an update the in-place pass proved
        unobservable: the result is the same array, under the same name when possible."""
        if "out" in op.attrs:
            return self.emit_into_operand(op, depth, loc)
        x, index, value = op.args
        target = self.name(op.result) if op.result.id in self.namer.names else None
        source = self.ref(x).text
        if target is not None and target != source:
            self.emit(f"{target} = {source}", depth, loc)
            source = target
        if op.attrs["fn"] is runtime.add_into:     # rebinding keeps it readable as a value
            self.namespace["add_into"] = runtime.add_into
            self.emit(f"{source} = add_into({source}, {self.ref(index).text}, "
                      f"{self.ref(value).text})", depth, loc)
        elif not self.made_in_slot(x, index, value):
            self.emit(f"{source}[{self.index(index)}] = {self.ref(value).text}", depth, loc)

    def made_in_slot(self, x, index, value):
        """Whether `value` was made with `out=x[index]` (passes/slot_outputs.py): writing
        it there again would copy it onto itself."""
        made = self.defs.get(value.id)
        if made is None or made.opname != "call" or made.attrs.get("kwnames", ())[-1:] != \
                ("out",):
            return False
        view = self.defs.get(made.args[-1].id)
        return view is not None and view.opname == "call" and \
            view.attrs["fn"] is operator.getitem and view.args == [x, index]

    def emit_into_operand(self, op, depth, loc):
        """`a += b` or `np.exp(a, out=a)`: an elementwise result written over a dying operand."""
        k = op.attrs["out"]
        buffer = self.ref(op.args[k]).text
        fn = op.attrs["fn"]
        long_rows = self.long_rows_ufunc(op)
        if long_rows is not None:
            self.namespace["long_rows"] = runtime.long_rows
            fn = runtime.long_rows
            args = ", ".join([self.callable_text(long_rows)] +
                             [self.ref(a).text for a in op.args])
            target = self.name(op.result)
            assign = "" if target == buffer else f"{target} = "
            self.emit(f"{assign}long_rows({args}, out={buffer})", depth, loc)
            return
        if fn in AUGMENTED and (k == 0 or fn in COMMUTATIVE):
            other = self.ref(op.args[1 - k]).text
            self.emit(f"{buffer} {AUGMENTED[fn]}= {other}", depth, loc)
        else:                            # `t_bar = f(h_bar, out=h_bar)` where names differ
            ufunc = UFUNC_OF.get(fn, fn)
            args = ", ".join(self.ref(a).text for a in op.args)
            target = self.name(op.result)
            assign = "" if target == buffer else f"{target} = "
            self.emit(f"{assign}{self.callable_text(ufunc)}({args}, out={buffer})", depth, loc)
            return
        target = self.name(op.result)    # named after the operands are read: the result's
        if target != buffer:             # name may be one an operand held until now
            self.emit(f"{target} = {buffer}", depth, loc)

    def pack_expr(self, tree, source, parts):
        """A gradient with the structure of the argument `source` (an access expression)."""
        if tree.kind == "leaf":
            return self.ref(next(parts)).text
        if tree.kind == "static":
            return "None"
        step = "attr" if tree.kind == "object" else "index"
        children = [self.pack_expr(child, source + path_text(((step, key),)), parts)
                    for key, child in zip(tree.keys, tree.children)]
        if tree.kind == "tuple":
            return f"({children[0]},)" if len(children) == 1 else f"({', '.join(children)})"
        if tree.kind == "list":
            return "[" + ", ".join(children) + "]"
        if tree.kind == "dict":
            return "{" + ", ".join(f"{k!r}: {c}" for k, c in zip(tree.keys, children)) + "}"
        self.namespace["with_fields"] = runtime.with_fields
        fields = ", ".join(f"{k}={c}" for k, c in zip(tree.keys, children))
        return f"with_fields({source}, {fields})"

    def region_has_code(self, region, results):
        saved = len(self.lines)
        self.emit_region(region, results, 0)
        has = len(self.lines) > saved and any(line.strip() != "pass"
                                              for line in self.lines[saved:])
        del self.lines[saved:]
        for k in [k for k in self.line_locs if k > saved]:
            del self.line_locs[k]
        return has

    def emit_region(self, region, results, depth):
        wrote = self.emit_block(region, depth)
        copies = self.copies(results, region.ops[-1].args)
        if copies:
            self.emit(copies, depth)
        elif not wrote:
            self.emit("pass", depth)

    def copies(self, targets, sources):
        """One parallel assignment for the values whose names differ."""
        pairs = [(self.name(t), self.ref(s).text) for t, s in zip(targets, sources)
                 if t.id in self.namer.names and self.ref(s).text != self.name(t)]
        if not pairs:
            return None
        return f"{', '.join(t for t, _ in pairs)} = {', '.join(s for _, s in pairs)}"

    def emit_for(self, op, depth):
        body = op.regions[0]
        start, stop, step = op.args[:3]
        inits = op.args[3:]
        carried = body.params[1:]
        before = self.copies(carried, inits)
        if before:
            self.emit(before, depth)
        index = body.params[0]
        index_name = self.name(index) if self.uses.get(index.id) else "_"
        bounds = [self.ref(a).text for a in (start, stop, step)]
        if self.const_value(step) == 1 and self.is_const(step):
            bounds = bounds[:2]
            if self.const_value(start) == 0 and self.is_const(start):
                bounds = bounds[1:]
        self.emit(f"for {index_name} in range({', '.join(bounds)}):", depth + 0, op.loc)
        wrote = self.emit_block(body, depth + 1)
        after = self.copies(carried, body.ops[-1].args)
        if after:
            self.emit(after, depth + 1)
        exit_index = op.attrs.get("exit")
        if exit_index is not None:
            self.emit(f"if {self.name(carried[exit_index])}:", depth + 1)
            self.emit("break", depth + 2)
        if not wrote and not after and exit_index is None:
            self.emit("pass", depth + 1)
        final = self.copies(op.results, carried)
        if final:
            self.emit(final, depth)

    def emit_while(self, op, depth):
        cond, body = op.regions
        before = self.copies(cond.params, op.args)
        if before:
            self.emit(before, depth)
        flag = cond.ops[-1].args[0]
        simple = all(o.opname in ("const", "yield") or (o.results and o.result.id in self.inline)
                     for o in cond.ops)
        same_names = all(self.name(c) == self.name(b) for c, b in zip(cond.params, body.params))
        if simple and same_names:
            self.emit(f"while {self.ref(flag).text}:", depth, op.loc)
        else:
            self.emit("while True:", depth, op.loc)
            self.emit_block(cond, depth + 1)
            self.emit(f"if not {self.ref(flag).at(PREC['not'])}:", depth + 1)
            self.emit("break", depth + 2)
            to_body = self.copies(body.params, cond.params)
            if to_body:
                self.emit(to_body, depth + 1)
        wrote = self.emit_block(body, depth + 1)
        after = self.copies(cond.params, body.ops[-1].args)
        if after:
            self.emit(after, depth + 1)
        if not wrote and not after:
            self.emit("pass", depth + 1)
        final = self.copies(op.results, cond.params)
        if final:
            self.emit(final, depth)

    # ---------------------------------------------------------------- function
    def generate(self):
        if self.mode == "grad":
            for seed in self.fn.pullback.params:
                self.seeds[seed.id] = Expr("1.0")
        self.analyse()
        self.choose_inline()
        if self.fusion is not None:
            self.fusion.prepare(self)
        self.live_ranges()
        self.name_values()
        self.plan_deletes()
        params = ", ".join(self.name(p) for p in self.fn.params)
        suffix = {"grad": "_grad", "pullback": "_pullback", "primal": ""}[self.mode]
        fname = self.title + suffix
        self.emit(f"def {fname}({params}):", 0)
        origin = getattr(self.fn, "origin", self.title)     # a jvp's: f, not f_jvp
        self.emit(f'"""Generated by diffsrc from {origin} ({self.fn.filename}:'
                  f'{self.fn.lineno})."""', 1)
        body = self.fn.body
        for op in body.ops[:-1]:
            self.emit_statement(op, 1)
        outputs = [self.ref(a).text for a in body.ops[-1].args]
        out_text = outputs[0] if len(outputs) == 1 else f"({', '.join(outputs)})"
        ret_loc = body.ops[-1].loc
        if self.mode == "primal":
            self.emit(f"return {out_text}", 1, ret_loc)
        elif self.mode == "grad":
            self.emit_block_body(self.fn.pullback, 1)
            grads = [self.ref(a).text for a in self.fn.pullback.ops[-1].args]
            grad_text = grads[0] if len(grads) == 1 else f"({', '.join(grads)})"
            self.emit(f"return {out_text}, {grad_text}", 1, ret_loc)
        else:
            seeds = ", ".join(self.name(p) for p in self.fn.pullback.params)
            self.emit(f"def {self.title}_back({seeds}):", 1)
            self.emit_block_body(self.fn.pullback, 2)
            grads = [self.ref(a).text for a in self.fn.pullback.ops[-1].args]
            self.emit(f"return ({', '.join(grads)}{',' if len(grads) == 1 else ''})", 2)
            self.emit(f"return {out_text}, {self.title}_back", 1)
        return "\n".join(self.lines) + "\n", fname

    def emit_block_body(self, block, depth):
        for op in block.ops[:-1]:
            self.emit_statement(op, depth)

    def emit_statement(self, op, depth):
        """A top-level op, then the deletion of the arrays that die with it."""
        self.emit_op(op, depth)
        if id(op) in self.deletes:
            self.emit(f"del {', '.join(self.deletes[id(op)])}", depth)


def _repeating(short, result):
    """"number" or "array" where `short` is a number or a small array of `result`'s dtype
    whose entries repeat along result's leading axes (its shape, leading 1s aside, is
    result's last), else None."""
    if short is None:
        return None
    if short.kind in ("float", "int") or (short.kind == "exact" and isinstance(
            short.value, (int, float)) and not isinstance(short.value, bool)):
        return "number"
    size = np.prod(short.shape) if short.kind == "array" else 0
    if short.kind != "array" or short.dtype != result.dtype or \
            len(short.shape) > len(result.shape) or size > runtime.LONG_ROW // 4 or \
            size >= np.prod(result.shape):
        return None
    trailing = tuple(short.shape)
    while trailing and trailing[0] == 1:
        trailing = trailing[1:]
    return "array" if trailing == tuple(result.shape[len(result.shape) - len(trailing):]) \
        else None


def path_text(path):
    out = []
    for step, key in path:
        if step == "attr":
            out.append(f".{key}")
        else:
            out.append(f"[{key!r}]")
    return "".join(out)


def _pullback_entry():
    from ..api import pullback
    return pullback


def generate(fn, mode, name=None, fusion=None):
    """Python source for `fn`: returns (source, function name, namespace, line map)."""
    title = name or fn.name
    if not title.isidentifier():
        title = "anonymous" if title != "<lambda>" else "lambda_"
    gen = Codegen(fn, mode, title)
    gen.fusion = fusion
    source, fname = gen.generate()
    return source, fname, gen.namespace, gen.line_locs
