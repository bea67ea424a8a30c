"""Lower Python syntax trees to SSA IR by abstract interpretation.

The lowering walks the (desugared) syntax tree once, keeping for every Python
variable a compile-time description (see abstract.py): an IR value, a constant,
or a structure of those. Calls to the user's own Python functions, methods and
operator overloads are inlined; a call back into a function that is already
being inlined (recursion) stays a call. Conditions known at transform time pick
their branch; everything else becomes structured `if` / `for` / `while` ops.
"""
import ast
import builtins
import dataclasses
import functools
import inspect
import itertools
import operator
import re
import types

import gast
import numpy as np

from ..errors import (DiffsrcError, NoRuleError, SourceUnavailableError, TransformError,
                      UnsupportedSyntaxError)
from ..ir import Block, Builder, Function, Location, Value
from ..rules import registry
from ..rules.registry import Method
from ..rules.structures import (concatenate_sequences, list_append, make_dict, make_list,
                                make_tuple)
from .. import runtime
from .abstract import (UNDEFINED, BoundS, DictS, EnumerateS, FuncS, ListS, MethodRef, ObjS,
                       RangeS, Static, TupleS, ZipS, children, is_structure, rebuild,
                       same_shape)
from .parse import ParsedFunction, parse_function, remember_parsed
from .trees import Tree, tree_of

BINOPS = {gast.Add: operator.add, gast.Sub: operator.sub, gast.Mult: operator.mul,
          gast.Div: operator.truediv, gast.FloorDiv: operator.floordiv, gast.Mod: operator.mod,
          gast.Pow: operator.pow, gast.MatMult: operator.matmul, gast.BitAnd: operator.and_,
          gast.BitOr: operator.or_, gast.BitXor: operator.xor, gast.LShift: operator.lshift,
          gast.RShift: operator.rshift}
DUNDERS = {operator.add: "add", operator.sub: "sub", operator.mul: "mul",
           operator.truediv: "truediv", operator.floordiv: "floordiv", operator.mod: "mod",
           operator.pow: "pow", operator.matmul: "matmul", operator.and_: "and",
           operator.or_: "or", operator.xor: "xor"}
UNARYOPS = {gast.USub: operator.neg, gast.UAdd: operator.pos, gast.Not: operator.not_,
            gast.Invert: operator.invert}
UNARY_DUNDERS = {operator.neg: "__neg__", operator.pos: "__pos__", operator.invert: "__invert__"}
CMPOPS = {gast.Lt: operator.lt, gast.LtE: operator.le, gast.Gt: operator.gt,
          gast.GtE: operator.ge, gast.Eq: operator.eq, gast.NotEq: operator.ne,
          gast.Is: operator.is_, gast.IsNot: operator.is_not}
CMP_DUNDERS = {operator.lt: "__lt__", operator.le: "__le__", operator.gt: "__gt__",
               operator.ge: "__ge__", operator.eq: "__eq__", operator.ne: "__ne__"}
UNSUPPORTED_STATEMENTS = {gast.Try: "try statement", gast.With: "with statement",
                          gast.AsyncWith: "async with", gast.AsyncFor: "async for",
                          gast.ClassDef: "class definition inside a differentiated function",
                          gast.Global: "global statement", gast.Nonlocal: "nonlocal statement",
                          gast.AsyncFunctionDef: "async function"}
if hasattr(gast, "TryStar"):
    UNSUPPORTED_STATEMENTS[gast.TryStar] = "try statement"
if hasattr(gast, "Match"):
    UNSUPPORTED_STATEMENTS[gast.Match] = "match statement"
UNSUPPORTED_EXPRESSIONS = {gast.Yield: "yield", gast.YieldFrom: "yield from",
                           gast.Await: "await", gast.SetComp: "set comprehension"}
LIST_MUTATORS = ("append", "extend", "insert")
TEMPORARY = re.compile(r"t(_\d+)*$")     # codegen's names for temporaries, read back
SCALAR_STATIC = (int, float, complex, bool, str, bytes, type(None))


class SLOT:
    """Marks a run-time value in the template of a control-flow merge."""


class LISTSLOT(SLOT):
    """A list whose length changes across iterations: carried as a run-time list."""


class Frame:
    """The variables of one function being lowered (one inlined call)."""

    def __init__(self, parsed, parent=None):
        self.parsed = parsed
        self.parent = parent
        self.env = {}

    def lookup(self, name):
        frame = self
        while frame is not None:
            if name in frame.env:
                value = frame.env[name]
                if value is UNDEFINED:
                    break
                return value
            frame = frame.parent
        parsed = self._outermost().parsed
        for scope in (self.parsed.closure, parsed.closure, self.parsed.globals,
                      builtins.__dict__):
            if scope is not None and name in scope:
                return Static(scope[name])
        raise KeyError(name)

    def _outermost(self):
        frame = self
        while frame.parent is not None:
            frame = frame.parent
        return frame


class Lowerer:
    """Lowers statements and expressions into IR through one Builder."""

    def __init__(self, builder):
        self.b = builder
        self.frame = None
        self.inlining = []          # code being inlined, for recursion detection
        self.node = None            # the statement being lowered (for error locations)
        self.fresh = itertools.count()
        self.fixed_loc = False      # rule templates keep the location of the primal statement
        self.frames = []            # callers' frames, whose variables are still alive
        self.return_loc = None      # where the last `return` lowered was written
        self.view_base = {}         # value id -> the array it is a view of

    # ------------------------------------------------------------------ errors
    def where(self, node=None):
        node = node if node is not None else self.node
        parsed = self.frame.parsed if self.frame else None
        if parsed is None:
            return None, None
        return parsed.filename, parsed.lineno(node) if node is not None else None

    def error(self, cls, message, node=None):
        filename, lineno = self.where(node)
        return cls(message, filename, lineno)

    # ------------------------------------------------------- materialisation
    def value(self, a, hint=""):
        """The IR value of a compile-time description (emitting ops if needed)."""
        if isinstance(a, Value):
            return a
        if isinstance(a, Static):
            return self.b.const(a.value, hint or a.name)
        if a is UNDEFINED:
            return self.b.const(None, hint)
        if is_structure(a) and all_static(a):
            return self.b.const(to_python(a), hint)
        if isinstance(a, TupleS):
            return self.b.call(make_tuple, [self.value(x) for x in a.items], hint=hint,
                               kind="tuple")
        if isinstance(a, ListS):
            return self.b.call(make_list, [self.value(x) for x in a.items], hint=hint,
                               kind="list")
        if isinstance(a, DictS):
            keys = self.b.const(tuple(a.keys))
            return self.b.call(make_dict, [keys] + [self.value(x) for x in a.values],
                               hint=hint, kind="dict")
        if isinstance(a, RangeS):
            return self.b.call(range, [self.value(a.start), self.value(a.stop),
                                       self.value(a.step)], hint=hint)
        if isinstance(a, MethodRef):
            return self.b.call(Method(a.name, attribute=True), [a.receiver], hint=hint)
        raise self.error(TransformError, f"{describe(a)} cannot be used as a run-time value "
                         "here (diffsrc keeps it as a compile-time structure)")

    # ------------------------------------------------------------ functions
    def inline(self, parsed, args, kwargs, defaults=(), kw_defaults=(), parent=None,
               want_first=False):
        """Lower the body of `parsed` with its parameters bound; returns the result."""
        node = parsed.node
        saved_frame, saved_node, saved_loc = self.frame, self.node, self.b.loc
        frame = Frame(parsed, parent)
        if saved_frame is not None:
            self.frames.append(saved_frame)
        self.frame = frame
        try:
            self.bind(node.args, args, kwargs, defaults, kw_defaults)
            first = node.args.args[0].id if node.args.args else None
            if isinstance(node, gast.Lambda):
                self.node = node
                if not self.fixed_loc:
                    self.b.loc = Location(parsed.filename, parsed.lineno(node))
                result = self.expr(node.body)
            else:
                result = self.block(node.body)
            if result is None:
                result = Static(None)
            if want_first:
                return result, frame.env.get(first)
            return result
        finally:
            if saved_frame is not None:
                self.frames.pop()
            self.frame, self.node, self.b.loc = saved_frame, saved_node, saved_loc

    def bind(self, arguments, args, kwargs, defaults, kw_defaults):
        env = self.frame.env
        params = [p.id for p in list(arguments.posonlyargs) + list(arguments.args)]
        if len(args) > len(params) and arguments.vararg is None:
            raise self.error(TransformError, f"{self.frame.parsed.name}() takes {len(params)} "
                             f"positional arguments but {len(args)} were given")
        for name, a in zip(params, args):
            env[name] = a
        if arguments.vararg is not None:
            env[arguments.vararg.id] = TupleS(tuple(args[len(params):]))
        extra = {}
        for key, a in kwargs.items():
            if key in params or key in [k.id for k in arguments.kwonlyargs]:
                if key in env:
                    raise self.error(TransformError, f"got multiple values for argument {key!r}")
                env[key] = a
            elif arguments.kwarg is not None:
                extra[key] = a
            else:
                raise self.error(TransformError, f"unexpected keyword argument {key!r}")
        if arguments.kwarg is not None:
            env[arguments.kwarg.id] = DictS(tuple(extra), tuple(extra.values()))
        missing = [p for p in params if p not in env]
        for name, default in zip(params[len(params) - len(defaults):], defaults):
            env.setdefault(name, default)
        for param, default in zip(arguments.kwonlyargs, kw_defaults):
            if param.id not in env and default is not None:
                env[param.id] = default
        missing = [p for p in params + [k.id for k in arguments.kwonlyargs] if p not in env]
        if missing:
            raise self.error(TransformError, f"{self.frame.parsed.name}() missing argument(s) "
                             f"{', '.join(missing)}")

    def call_python(self, fn, args, kwargs, want_first=False):
        """Inline a call to a Python function (or keep it a call when it recurses)."""
        code = fn.__code__
        if code in self.inlining:
            return self.recursive_call(fn, args, kwargs)
        parsed = parse_function(fn)
        defaults = tuple(Static(d) for d in (fn.__defaults__ or ()))
        kwd = fn.__kwdefaults__ or {}
        kw_defaults = tuple(Static(kwd[k.id]) if k.id in kwd else None
                            for k in parsed.node.args.kwonlyargs)
        self.inlining.append(code)
        try:
            return self.inline(parsed, args, kwargs, defaults, kw_defaults,
                               want_first=want_first)
        finally:
            self.inlining.pop()

    def recursive_call(self, fn, args, kwargs):
        if kwargs:
            raise self.error(TransformError, f"recursive call to {fn.__name__} with keyword "
                             "arguments is not supported")
        values = [self.value(a) for a in args]
        return self.b.call(fn, values, hint=fn.__name__)

    def call_funcs(self, f, args, kwargs, want_first=False):
        """Inline a nested function or lambda. One that calls itself is expanded while
        its compile-time arguments change (a depth fixed at transform time); it has no
        function object of its own to keep a run-time recursive call to."""
        key = (f.parsed.node, static_signature(list(args) + list(kwargs.items())))
        active = [k for k in self.inlining if isinstance(k, tuple) and k[0] is key[0]]
        if key in active or len(active) >= MAX_NESTED_RECURSION:
            reason = "with the same compile-time arguments (its depth depends on run-time " \
                "values)" if key in active else f"more than {MAX_NESTED_RECURSION} levels deep"
            raise self.error(TransformError, f"nested function {f.parsed.name} calls itself "
                             f"{reason}; define it at module level (a recursive call stays a "
                             "call there)")
        self.inlining.append(key)
        try:
            return self.inline(f.parsed, args, kwargs, f.defaults, f.kw_defaults, f.frame,
                               want_first=want_first)
        finally:
            self.inlining.pop()

    # ------------------------------------------------------------ statements
    def block(self, stmts):
        """Lower statements in order; returns the value of a final `return`, if any."""
        for stmt in stmts:
            self.node = stmt
            if not self.fixed_loc:
                self.b.loc = Location(self.frame.parsed.filename, self.frame.parsed.lineno(stmt))
            if isinstance(stmt, gast.Return):
                self.return_loc = self.b.loc
                return self.expr(stmt.value) if stmt.value is not None else Static(None)
            self.stmt(stmt)
        return None

    def stmt(self, s):
        kind = type(s)
        if kind in UNSUPPORTED_STATEMENTS:
            raise self.error(UnsupportedSyntaxError,
                             f"{UNSUPPORTED_STATEMENTS[kind]} is not supported by diffsrc")
        if isinstance(s, gast.Expr):
            if isinstance(s.value, gast.Constant):
                return                                    # docstring or bare literal
            self.expr(s.value)
        elif isinstance(s, gast.Assign):
            value = self.expr(s.value)
            for target in s.targets:
                self.assign(target, value)
        elif isinstance(s, gast.AugAssign):
            op = BINOPS[type(s.op)]
            current = self.expr(load_of(s.target))
            if isinstance(s.target, gast.Name) and isinstance(current, Value) and \
                    current.kind not in ("float", "int"):
                self.check_unaliased(current, s.target.id)
            self.assign(s.target, self.binop(op, current, self.expr(s.value)))
        elif isinstance(s, gast.AnnAssign):
            if s.value is not None:
                self.assign(s.target, self.expr(s.value))
        elif isinstance(s, gast.If):
            self.branch(self.expr(s.test), lambda: self.block(s.body),
                        lambda: self.block(s.orelse))
        elif isinstance(s, gast.For):
            self.lower_for(s)
        elif isinstance(s, gast.While):
            self.lower_while(s)
        elif isinstance(s, gast.FunctionDef):
            if s.decorator_list:
                raise self.error(UnsupportedSyntaxError,
                                 "decorated nested functions are not supported")
            self.frame.env[s.name] = self.make_funcs(s)
        elif isinstance(s, gast.Pass):
            pass
        elif isinstance(s, gast.Assert):
            self.lower_assert(s)
        elif isinstance(s, gast.Delete):
            for target in s.targets:
                if isinstance(target, gast.Name):
                    self.frame.env[target.id] = UNDEFINED
                else:
                    raise self.error(UnsupportedSyntaxError, "del of a subscript or attribute")
        elif isinstance(s, gast.Import):
            for alias in s.names:
                module = __import__(alias.name)
                if alias.asname:
                    for part in alias.name.split(".")[1:]:
                        module = getattr(module, part)
                self.frame.env[alias.asname or alias.name.split(".")[0]] = Static(module)
        elif isinstance(s, gast.ImportFrom):
            module = __import__(s.module, fromlist=[a.name for a in s.names])
            for alias in s.names:
                self.frame.env[alias.asname or alias.name] = Static(getattr(module, alias.name))
        elif isinstance(s, gast.Raise):
            exc = self.expr(s.exc) if s.exc is not None else Static(RuntimeError("re-raise"))
            self.b.op("call", [self.value(exc)],
                      attrs={"fn": runtime.raise_error, "kwnames": ()}, hints=[""])
        else:
            raise self.error(UnsupportedSyntaxError,
                             f"{kind.__name__} statement is not supported by diffsrc")

    def lower_assert(self, s):
        """An assert still checks at run time; it has no adjoint."""
        def fail():
            message = [self.expr(s.msg)] if s.msg is not None else []
            exc = self.opaque(AssertionError, message, {})
            self.b.op("call", [exc], attrs={"fn": runtime.raise_error, "kwnames": ()},
                      hints=[""])
        self.branch(self.expr_not(self.expr(s.test)), fail, lambda: None)

    def make_funcs(self, node):
        args = node.args
        defaults = tuple(self.expr(d) for d in args.defaults)
        kw_defaults = tuple(self.expr(d) if d is not None else None for d in args.kw_defaults)
        parsed = self.frame.parsed
        if isinstance(node, gast.FunctionDef):
            from .desugar import desugar_function
            import copy
            node = desugar_function(copy.deepcopy(node))
        inner = ParsedFunction(node, parsed.filename, parsed.line_offset, parsed.globals,
                               parsed.closure)
        return FuncS(inner, self.frame, defaults, kw_defaults)

    # ---------------------------------------------------------- assignment
    def assign(self, target, value):
        if isinstance(target, gast.Name):
            if isinstance(value, Value) and not value.hint and not TEMPORARY.match(target.id):
                value.hint = target.id
            self.frame.env[target.id] = value
        elif isinstance(target, (gast.Tuple, gast.List)):
            self.unpack(target.elts, value)
        elif isinstance(target, gast.Subscript):
            container = self.expr(target.value)
            if isinstance(container, Value) and isinstance(target.value, gast.Name):
                self.check_unaliased(container, target.value.id)
            index = self.index_expr(target.slice)
            self.assign(target.value, self.set_item(container, index, value))
        elif isinstance(target, gast.Attribute):
            obj = self.expr(target.value)
            if not isinstance(obj, ObjS):
                raise self.error(UnsupportedSyntaxError,
                                 f"assigning attribute {target.attr!r} of {describe(obj)}")
            self.assign(target.value, obj.set(target.attr, value))
        elif isinstance(target, gast.Starred):
            self.assign(target.value, value)
        else:
            raise self.error(UnsupportedSyntaxError,
                             f"assignment to {type(target).__name__}")

    def check_unaliased(self, value, name):
        """NumPy updates in place; diffsrc updates functionally. The two agree only when
        no other variable sees the array (another name for it, or a view of it)."""
        related = set()
        v = value
        while v is not None:
            related.add(v.id)
            v = self.view_base.get(v.id)
        for frame in self.frames + [self.frame]:
            for other, held in frame.env.items():
                if (frame is self.frame and other == name) or held is UNDEFINED:
                    continue
                if any(leaf.id in related for leaf in leaves_in(held)):
                    raise self.error(UnsupportedSyntaxError,
                                     f"in-place update of {name!r}, which shares its data with "
                                     f"{other!r}; NumPy would change both. Write "
                                     f"`{name} = {name}.copy()` first, or build a new array")

    def unpack(self, targets, value):
        starred = [i for i, t in enumerate(targets) if isinstance(t, gast.Starred)]
        items = self.iterate_static(value, len(targets) if not starred else None)
        if starred:
            k = starred[0]
            n_after = len(targets) - k - 1
            middle = ListS(tuple(items[k:len(items) - n_after]))
            items = items[:k] + [middle] + items[len(items) - n_after:]
        if len(items) != len(targets):
            raise self.error(TransformError, f"cannot unpack {len(items)} values into "
                             f"{len(targets)} targets")
        for target, item in zip(targets, items):
            self.assign(target, item)

    def iterate_static(self, value, count):
        """Split a value into its parts for tuple unpacking."""
        if isinstance(value, (TupleS, ListS)):
            return list(value.items)
        if isinstance(value, Static) and isinstance(value.value, (tuple, list, str)):
            return [Static(v) for v in value.value]
        if isinstance(value, DictS):
            return [Static(k) for k in value.keys]
        if isinstance(value, Value):
            if count is None:
                raise self.error(TransformError, "starred unpacking of a run-time value")
            return [self.b.call(operator.getitem, [value, self.b.const(i)], kind=None)
                    for i in range(count)]
        if isinstance(value, ObjS) and issubclass(value.cls, tuple):
            return list(value.values)                                # a namedtuple
        if isinstance(value, ObjS) and dataclasses.is_dataclass(value.cls):
            return self.iterate_static(self.call(Static(getattr(value.cls, "__iter__")),
                                                 [value], {}), count)
        raise self.error(TransformError, f"cannot unpack {describe(value)}")

    def set_item(self, container, index, value):
        if isinstance(container, (ListS, DictS)) and isinstance(index, Static):
            if isinstance(container, DictS):
                return container.set(index.value, value)
            items = list(container.items)
            items[index.value] = value
            return ListS(tuple(items))
        if isinstance(container, Value):
            idx = self.value(index)
            return self.b.call(runtime.index_update, [container, idx, self.value(value)],
                               hint=container.hint, kind=container.kind)
        if isinstance(container, ListS):
            return self.set_item(self.value(container), index, value)
        raise self.error(UnsupportedSyntaxError, f"item assignment on {describe(container)}")

    # ------------------------------------------------------------ branches
    def branch(self, cond, then_fn, else_fn, want_result=False):
        """Lower a two-way branch; returns the merged result of the thunks if asked."""
        cond = self.truth(cond)
        if isinstance(cond, Static):
            return then_fn() if cond.value else else_fn()
        cond_value = self.value(cond)
        before = self.frame.env
        outcomes = []
        for thunk in (then_fn, else_fn):
            block = Block()
            self.frame.env = dict(before)
            with self.b.at(block):
                result = thunk()
            outcomes.append((block, self.frame.env, result))
        self.frame.env = dict(before)
        (tb, tenv, tres), (eb, eenv, eres) = outcomes
        names = [n for n in dict.fromkeys(list(tenv) + list(eenv))
                 if tenv.get(n, UNDEFINED) is not eenv.get(n, UNDEFINED)]
        then_items = [tenv.get(n, UNDEFINED) for n in names]
        else_items = [eenv.get(n, UNDEFINED) for n in names]
        hints = list(names)
        if want_result:
            then_items.append(tres if tres is not None else Static(None))
            else_items.append(eres if eres is not None else Static(None))
            hints.append("")
        templates = [self.join(a, b) for a, b in zip(then_items, else_items)]
        yields = []
        for block, items in ((tb, then_items), (eb, else_items)):
            with self.b.at(block):
                values = [v for t, a, h in zip(templates, items, hints)
                          for v in self.slot_values(t, a, h)]
                self.b.op("yield", values, nresults=0)
            yields.append(values)
        hint_list = [h for t, h in zip(templates, hints) for _ in range(count_slots(t))]
        kinds = [v.kind for v in yields[0]]
        op = self.b.op("if", [cond_value], nresults=len(yields[0]), hints=hint_list,
                       kinds=kinds, regions=[tb, eb])
        results = iter(op.results)
        merged = [fill(t, results) for t in templates]
        for name, a in zip(names, merged):
            self.frame.env[name] = a
        return merged[-1] if want_result else None

    def truth(self, cond):
        if isinstance(cond, Static):
            return Static(bool(cond.value))
        if is_structure(cond):
            return Static(len(children(cond)) > 0)
        if isinstance(cond, ObjS):
            return Static(True)
        return cond

    def join(self, a, b):
        """The common template of two descriptions met at a merge point."""
        if a is b:
            if isinstance(a, Value):
                return LISTSLOT if a.kind == "list" else SLOT
            return a
        if a is UNDEFINED:
            return self.join(b, b)
        if b is UNDEFINED:
            return self.join(a, a)
        if isinstance(a, Value) or isinstance(b, Value):
            if isinstance(a, (ListS, Value)) and isinstance(b, (ListS, Value)) and (
                    "list" in (getattr(a, "kind", None), getattr(b, "kind", None))
                    or isinstance(a, ListS) or isinstance(b, ListS)):
                return LISTSLOT
            return SLOT
        if isinstance(a, Static) and isinstance(b, Static):
            if same_static(a, b):
                return a
            return SLOT
        if isinstance(a, ListS) and isinstance(b, ListS) and len(a.items) != len(b.items):
            return LISTSLOT
        if isinstance(a, TupleS) and isinstance(b, TupleS) and len(a.items) != len(b.items):
            return SLOT                       # tuples of different lengths: a run-time tuple
        if is_structure(a) and is_structure(b) and same_shape(a, b):
            return rebuild(a, [self.join(x, y) for x, y in zip(children(a), children(b))])
        if a is SLOT or b is SLOT:
            return SLOT
        if isinstance(a, (FuncS, BoundS)) and isinstance(b, (FuncS, BoundS)) and \
                getattr(a, "parsed", None) is getattr(b, "parsed", None):
            return a
        if isinstance(a, RangeS) or isinstance(b, RangeS):
            raise self.error(TransformError, "a range object that differs between branches")
        raise self.error(TransformError, f"a variable holds {describe(a)} on one path and "
                         f"{describe(b)} on another; diffsrc needs the same structure")

    def slot_values(self, template, a, hint=""):
        """The run-time values `a` contributes to the slots of `template`."""
        if template is SLOT:
            return [self.value(a, hint)]
        if template is LISTSLOT:
            v = self.value(a, hint)
            v.kind = "list"
            return [v]
        if is_structure(template):
            if a is UNDEFINED:
                return [self.b.const(None) for _ in range(count_slots(template))]
            return [v for t, x in zip(children(template), children(a))
                    for v in self.slot_values(t, x, hint)]
        return []

    # --------------------------------------------------------------- loops
    def lower_for(self, node):
        iterable = self.expr(node.iter)
        if isinstance(iterable, Static) and isinstance(iterable.value, range):
            r = iterable.value
            iterable = RangeS(Static(r.start), Static(r.stop), Static(r.step))
        if isinstance(iterable, (TupleS, ListS, DictS)) or (
                isinstance(iterable, Static) and isinstance(iterable.value, (tuple, list, str,
                                                                             dict))) or (
                isinstance(iterable, (ZipS, EnumerateS)) and self.static_parts(iterable)):
            return self.unroll(node, self.static_items(iterable))
        if isinstance(iterable, RangeS):
            bounds = [iterable.start, iterable.stop, iterable.step]
            return self.loop_over_range(node, bounds, lambda i: self.assign(node.target, i))
        if isinstance(iterable, ZipS):
            lengths = [self.len_of(p) for p in iterable.parts]
            stop = lengths[0]
            for n in lengths[1:]:
                stop = self.b.call(builtins.min, [self.value(stop), self.value(n)], kind="int")

            def bind(i):
                self.unpack_items(node.target, [self.index(p, i) for p in iterable.parts])
            return self.loop_over_range(node, [Static(0), stop, Static(1)], bind)
        if isinstance(iterable, EnumerateS):
            part = iterable.part

            def bind(i):
                counter = self.binop(operator.add, i, iterable.start)
                self.unpack_items(node.target, [counter, self.index(part, i)])
            return self.loop_over_range(node, [Static(0), self.len_of(part), Static(1)], bind)
        if isinstance(iterable, Value):
            return self.loop_over_range(node, [Static(0), self.len_of(iterable), Static(1)],
                                        lambda i: self.assign(node.target,
                                                              self.index(iterable, i)))
        raise self.error(UnsupportedSyntaxError, f"for loop over {describe(iterable)}")

    def unpack_items(self, target, items):
        if isinstance(target, (gast.Tuple, gast.List)):
            self.unpack(target.elts, TupleS(tuple(items)))
        else:
            self.assign(target, TupleS(tuple(items)))

    def static_parts(self, it):
        parts = it.parts if isinstance(it, ZipS) else (it.part,)
        return all(is_structure(p) or (isinstance(p, Static) and not isinstance(p.value, range))
                   or (isinstance(p, (ZipS, EnumerateS)) and self.static_parts(p))
                   for p in parts)

    def static_items(self, it):
        if isinstance(it, ZipS):
            columns = [self.static_items(p) for p in it.parts]
            return [TupleS(tuple(row)) for row in zip(*columns)]
        if isinstance(it, EnumerateS):
            start = it.start.value if isinstance(it.start, Static) else 0
            return [TupleS((Static(start + i), x)) for i, x in
                    enumerate(self.static_items(it.part))]
        return self.iterate_static(it, None)

    def unroll(self, node, items, k=0):
        """A loop over a structure fixed at transform time runs once per element."""
        flag = getattr(node, "exit_flag", None)
        for i in range(k, len(items)):
            self.node = node
            self.assign(node.target, items[i])
            self.block(node.body)
            if flag is None:
                continue
            state = self.truth(self.frame.env.get(flag, Static(False)))
            if isinstance(state, Static):
                if state.value:
                    return
                continue
            self.branch(state, lambda: None, lambda: self.unroll(node, items, i + 1))
            return

    def len_of(self, a):
        if isinstance(a, ZipS):
            lengths = [self.len_of(p) for p in a.parts]
            shortest = lengths[0]
            for n in lengths[1:]:
                shortest = self.primitive(builtins.min, [shortest, n], {})
            return shortest
        if isinstance(a, Value):
            return self.b.call(len, [a], hint="n", kind="int")
        return Static(len(children(a)) if is_structure(a) else len(a.value))

    def carried_names(self, node):
        names = list(getattr(node, "carried", ())) + assigned_names(node.body)
        if isinstance(node, gast.For):
            names = assigned_names([gast.Assign(targets=[node.target], value=None,
                                                type_comment=None)]) + names
        return list(dict.fromkeys(names))

    def loop_over_range(self, node, bounds, bind_target):
        bound_values = [self.value(b) for b in bounds]
        for v in bound_values:
            v.kind = v.kind or "int"
        index_hint = node.target.id if isinstance(node.target, gast.Name) else "i"

        def build_body(env_entry, params):
            index = Value(index_hint, "int")
            block = Block([index] + params)
            with self.b.at(block):
                bind_target(index)
                self.block(node.body)
            return block

        op = self.lower_loop(node, build_body, "for", bound_values)
        return op

    def lower_while(self, node):
        def build_cond(params):
            block = Block(params)
            with self.b.at(block):
                flag = self.truth(self.expr(node.test))
                if isinstance(flag, Static) and flag.value and not params:
                    raise self.error(TransformError, "a `while True` loop with no run-time exit")
                self.b.op("yield", [self.value(flag)], nresults=0)
            return block

        def build_body(env_entry, params):
            block = Block(params)
            with self.b.at(block):
                self.block(node.body)
            return block

        test = self.truth(self.expr(node.test))
        if isinstance(test, Static) and not test.value:
            return None
        return self.lower_loop(node, build_body, "while", [], build_cond)

    def lower_loop(self, node, build_body, kind, head_args, build_cond=None):
        """Lower a loop body to a fixed point of its carried variables' templates."""
        names = self.carried_names(node)
        before = self.frame.env
        entry = {n: before.get(n, UNDEFINED) for n in names}
        templates = {n: self.join(entry[n], entry[n]) for n in names}
        for _ in range(8):
            params = [Value(n, "list" if t is LISTSLOT else None)
                      for n in names for t in [templates[n]] for _ in range(count_slots(t))]
            param_iter = iter(params)
            inside = dict(before)
            for n in names:
                inside[n] = fill(templates[n], param_iter)
            cond_block = None
            if build_cond is not None:
                cond_params = [Value(p.hint, p.kind) for p in params]
                cond_iter = iter(cond_params)
                self.frame.env = dict(before)
                for n in names:
                    self.frame.env[n] = fill(templates[n], cond_iter)
                cond_block = build_cond(cond_params)
            self.frame.env = inside
            body = build_body(inside, params)
            after = self.frame.env
            widened = {n: merge_templates(templates[n], self.join(after.get(n, UNDEFINED),
                                                                  after.get(n, UNDEFINED)))
                       for n in names}
            if all(templates_equal(widened[n], templates[n]) for n in names):
                break
            templates = widened
        else:
            raise self.error(TransformError, "loop variables do not settle to a fixed structure")
        self.frame.env = dict(before)
        with self.b.at(body):
            yields = [v for n in names
                      for v in self.slot_values(templates[n], after.get(n, UNDEFINED), n)]
            self.b.op("yield", yields, nresults=0)
        inits = [v for n in names for v in self.slot_values(templates[n], entry[n], n)]
        attrs = {}
        if kind == "for":
            attrs["over"] = "range"
            flag = getattr(node, "exit_flag", None)
            if flag is not None and flag in names:
                position = slot_position(names, templates, flag)
                if position is not None:
                    attrs["exit"] = position
        regions = [cond_block, body] if kind == "while" else [body]
        op = self.b.op(kind, list(head_args) + inits, nresults=len(inits),
                       hints=[p.hint for p in params], kinds=[p.kind for p in params],
                       attrs=attrs, regions=regions)
        results = iter(op.results)
        for n in names:
            self.frame.env[n] = fill(templates[n], results)
        return op

    # ----------------------------------------------------------- expressions
    def expr(self, e):
        kind = type(e)
        if kind in UNSUPPORTED_EXPRESSIONS:
            raise self.error(UnsupportedSyntaxError,
                             f"{UNSUPPORTED_EXPRESSIONS[kind]} is not supported by diffsrc", e)
        method = getattr(self, "expr_" + kind.__name__, None)
        if method is None:
            raise self.error(UnsupportedSyntaxError,
                             f"{kind.__name__} expression is not supported by diffsrc", e)
        return method(e)

    def expr_Constant(self, e):
        return Static(e.value)

    def expr_Name(self, e):
        try:
            found = self.frame.lookup(e.id)
            if isinstance(found, Static) and not found.name:
                return Static(found.value, e.id)
            return found
        except KeyError:
            raise self.error(TransformError, f"name {e.id!r} is not defined", e) from None

    def expr_Tuple(self, e):
        return TupleS(tuple(self.elements(e.elts)))

    def expr_List(self, e):
        return ListS(tuple(self.elements(e.elts)))

    def elements(self, elts):
        out = []
        for elt in elts:
            if isinstance(elt, gast.Starred):
                out.extend(self.iterate_static(self.expr(elt.value), None))
            else:
                out.append(self.expr(elt))
        return out

    def expr_Set(self, e):
        items = self.elements(e.elts)
        if all(isinstance(i, Static) for i in items):
            return Static({i.value for i in items})
        raise self.error(UnsupportedSyntaxError, "a set of run-time values", e)

    def expr_Dict(self, e):
        keys, values = [], []
        for k, v in zip(e.keys, e.values):
            if k is None:
                merged = self.expr(v)
                if not isinstance(merged, DictS):
                    raise self.error(UnsupportedSyntaxError, "** of a run-time dict", e)
                keys.extend(merged.keys)
                values.extend(merged.values)
                continue
            key = self.expr(k)
            if not isinstance(key, Static):
                raise self.error(UnsupportedSyntaxError,
                                 "a dict key computed at run time (keys must be constants)", e)
            keys.append(key.value)
            values.append(self.expr(v))
        d = DictS((), ())
        for k, v in zip(keys, values):
            d = d.set(k, v)
        return d

    def expr_BinOp(self, e):
        return self.binop(BINOPS[type(e.op)], self.expr(e.left), self.expr(e.right))

    def expr_UnaryOp(self, e):
        op = UNARYOPS[type(e.op)]
        operand = objectify(self.expr(e.operand))
        if op is operator.not_:
            t = self.truth(operand)
            if isinstance(t, Static):
                return Static(not t.value)
            return self.primitive(operator.not_, [t], {})
        if isinstance(operand, ObjS):
            return self.call_dunder(operand, UNARY_DUNDERS[op], [])
        return self.primitive(op, [operand], {})

    def expr_BoolOp(self, e):
        is_and = isinstance(e.op, gast.And)

        def chain(values):
            first = self.expr(values[0])
            if len(values) == 1:
                return first
            t = self.truth(first)
            if isinstance(t, Static):
                if t.value == is_and:
                    return chain(values[1:])
                return first
            rest = lambda: chain(values[1:])
            keep = lambda: first
            return self.branch(t, rest if is_and else keep, keep if is_and else rest,
                               want_result=True)
        return chain(e.values)

    def expr_Compare(self, e):
        def chain(left, ops, rights):
            right = self.expr(rights[0])
            result = self.compare(ops[0], left, right)
            if len(ops) == 1:
                return result
            t = self.truth(result)
            if isinstance(t, Static):
                return chain(right, ops[1:], rights[1:]) if t.value else result
            return self.branch(t, lambda: chain(right, ops[1:], rights[1:]), lambda: result,
                               want_result=True)
        return chain(self.expr(e.left), e.ops, e.comparators)

    def compare(self, op, left, right):
        if isinstance(op, (gast.In, gast.NotIn)):
            result = self.contains(right, left)
            return self.expr_not(result) if isinstance(op, gast.NotIn) else result
        fn = CMPOPS[type(op)]
        if fn in (operator.is_, operator.is_not):
            if not isinstance(left, Value) and not isinstance(right, Value):
                same = (left.value is right.value) if isinstance(left, Static) and isinstance(
                    right, Static) else left is right
                return Static(same if fn is operator.is_ else not same)
            if isinstance(left, Value) and isinstance(right, Static) and right.value is None \
                    and left.kind != "any":
                pass
        if isinstance(left, ObjS):
            return self.call_dunder(left, CMP_DUNDERS[fn], [right])
        return self.primitive(fn, [left, right], {})

    def expr_not(self, a):
        t = self.truth(a)
        if isinstance(t, Static):
            return Static(not t.value)
        return self.primitive(operator.not_, [t], {})

    def contains(self, container, item):
        if isinstance(container, DictS) and isinstance(item, Static):
            return Static(item.value in container.keys)
        if isinstance(container, (TupleS, ListS)) and isinstance(item, Static) and \
                all_static(container):
            return Static(item.value in to_python(container))
        if isinstance(container, Static) and isinstance(item, Static):
            return Static(item.value in container.value)
        return self.primitive(operator.contains, [container, item], {})

    def expr_IfExp(self, e):
        return self.branch(self.expr(e.test), lambda: self.expr(e.body),
                           lambda: self.expr(e.orelse), want_result=True)

    def expr_NamedExpr(self, e):
        value = self.expr(e.value)
        self.assign(e.target, value)
        return value

    def expr_Attribute(self, e):
        return self.attribute(self.expr(e.value), e.attr, e)

    def expr_Subscript(self, e):
        return self.index(self.expr(e.value), self.index_expr(e.slice))

    def expr_Slice(self, e):
        parts = [self.expr(p) if p is not None else Static(None)
                 for p in (e.lower, e.upper, e.step)]
        if all(isinstance(p, Static) for p in parts):
            return Static(slice(*(p.value for p in parts)))
        return self.primitive(slice, parts, {})

    def index_expr(self, e):
        index = self.expr(e)
        if isinstance(index, TupleS) and all_static(index):
            return Static(to_python(index))
        return index

    def expr_Lambda(self, e):
        return self.make_funcs(e)

    def expr_Starred(self, e):
        raise self.error(UnsupportedSyntaxError, "starred expression here", e)

    def expr_JoinedStr(self, e):
        parts = [self.expr(v.value) if isinstance(v, gast.FormattedValue) else self.expr(v)
                 for v in e.values]
        if all(isinstance(p, Static) for p in parts):
            return Static("".join(str(p.value) for p in parts))
        return self.opaque(runtime_format, parts, {})

    def expr_ListComp(self, e):
        return self.comprehension(e, ListS(()), lambda acc: self.list_add(acc, self.expr(e.elt)))

    expr_GeneratorExp = expr_ListComp

    def expr_DictComp(self, e):
        def add(acc):
            key = self.expr(e.key)
            if not isinstance(key, Static):
                raise self.error(UnsupportedSyntaxError, "dict comprehension with run-time keys")
            return acc.set(key.value, self.expr(e.value))
        return self.comprehension(e, DictS((), ()), add)

    def comprehension(self, e, empty, add):
        """Lower a comprehension as the loop it abbreviates, into a hidden variable."""
        acc = f"_comprehension{next(self.fresh)}"
        self.frame.env[acc] = empty

        def generate(level):
            if level == len(e.generators):
                self.frame.env[acc] = add(self.frame.env[acc])
                return
            gen = e.generators[level]

            def body():
                def guarded(k):
                    if k == len(gen.ifs):
                        return generate(level + 1)
                    self.branch(self.expr(gen.ifs[k]), lambda: guarded(k + 1), lambda: None)
                guarded(0)
            loop = gast.For(target=gen.target, iter=gen.iter, body=[], orelse=[],
                            type_comment=None)
            gast.copy_location(loop, e)
            loop.body = _Thunk(body)
            loop.carried = [acc] + assigned_names([gast.Assign(targets=[
                g.target for g in e.generators[level + 1:]], value=None, type_comment=None)])
            self.lower_for(loop)
        generate(0)
        return self.frame.env.pop(acc)

    def list_add(self, acc, item):
        if isinstance(acc, ListS):
            return ListS(acc.items + (item,))
        return self.b.call(list_append, [acc, self.value(item)], hint=acc.hint, kind="list")

    def expr_Call(self, e):
        func = e.func
        args = self.elements(e.args)
        kwargs = {}
        for kw in e.keywords:
            if kw.arg is None:
                extra = self.expr(kw.value)
                if isinstance(extra, Static) and isinstance(extra.value, dict):
                    extra = DictS(tuple(extra.value), tuple(Static(v) for v in extra.value.values()))
                if not isinstance(extra, DictS):
                    raise self.error(UnsupportedSyntaxError, "** of a run-time dict", e)
                kwargs.update(zip(extra.keys, extra.values))
            else:
                kwargs[kw.arg] = self.expr(kw.value)
        if isinstance(func, gast.Attribute) and func.attr in LIST_MUTATORS + ("update", "pop"):
            receiver = self.expr(func.value)
            if isinstance(receiver, (ListS, DictS)) or (
                    isinstance(receiver, Value) and receiver.kind == "list"):
                return self.mutate(func, receiver, args, kwargs)
        return self.call(self.expr(func), args, kwargs)

    def mutate(self, func, receiver, args, kwargs):
        """`xs.append(v)` and friends: rebind the receiver to its updated value."""
        name = func.attr
        result = Static(None)
        if name == "append":
            new = self.list_add(receiver, args[0])
        elif name == "extend":
            new = receiver
            for item in self.iterate_static(args[0], None):
                new = self.list_add(new, item)
        elif name == "insert" and isinstance(receiver, ListS) and isinstance(args[0], Static):
            items = list(receiver.items)
            items.insert(args[0].value, args[1])
            new = ListS(tuple(items))
        elif name == "update" and isinstance(receiver, DictS):
            new = receiver
            other = args[0] if args else DictS(tuple(kwargs), tuple(kwargs.values()))
            for k, v in zip(other.keys, other.values):
                new = new.set(k, v)
        elif name == "pop" and isinstance(receiver, ListS):
            position = args[0].value if args else -1
            items = list(receiver.items)
            result = items.pop(position)
            new = ListS(tuple(items))
        elif name == "pop" and isinstance(receiver, Value) and not args:
            # a run-time list (a loop tape, read back from generated code): split it
            result = self.primitive(operator.getitem, [receiver, Static(-1)], {})
            new = self.primitive(operator.getitem, [receiver, Static(slice(None, -1))], {},
                                 kind="any")
            new.kind = "list"
        elif name == "pop" and isinstance(receiver, DictS) and isinstance(args[0], Static):
            result = receiver.get(args[0].value)
            keep = [(k, v) for k, v in zip(receiver.keys, receiver.values) if k != args[0].value]
            new = DictS(tuple(k for k, _ in keep), tuple(v for _, v in keep))
        else:
            raise self.error(UnsupportedSyntaxError, f"list/dict method {name}() here")
        self.assign(func.value, new)
        return result

    # ------------------------------------------------------------- semantics
    def binop(self, op, left, right):
        left, right = objectify(left), objectify(right)
        if isinstance(left, ObjS) or isinstance(right, ObjS):
            name = DUNDERS[op]
            if isinstance(left, ObjS) and hasattr(left.cls, f"__{name}__"):
                return self.call_dunder(left, f"__{name}__", [right])
            if isinstance(right, ObjS) and hasattr(right.cls, f"__r{name}__"):
                return self.call_dunder(right, f"__r{name}__", [left])
            raise self.error(TransformError, f"unsupported operand types for {name}: "
                             f"{describe(left)} and {describe(right)}")
        if op is operator.add and isinstance(left, (TupleS, ListS)) and \
                type(left) is type(right):
            return type(left)(left.items + right.items)
        if op is operator.add and isinstance(left, (TupleS, ListS)) and \
                isinstance(right, Static) and isinstance(right.value, (tuple, list)):
            return type(left)(left.items + tuple(Static(v) for v in right.value))
        if op is operator.mul and isinstance(left, (TupleS, ListS)) and \
                isinstance(right, Static):
            return type(left)(left.items * right.value)
        if op is operator.add and _is_list(left) and _is_list(right) and (
                isinstance(left, Value) or isinstance(right, Value)):
            if isinstance(right, ListS):              # hs = hs + [h]: appends
                for item in right.items:
                    left = self.b.call(list_append, [left, self.value(item)], hint=left.hint,
                                       kind="list")
                return left                           # else a concatenation, not arithmetic
            return self.b.call(concatenate_sequences, [self.value(left), self.value(right)],
                               kind="list")
        if op is operator.mul and not self.fixed_loc and any(
                isinstance(a, Value) and a.kind == "list" for a in (left, right)):
            raise self.error(TransformError, "repeating a list whose length is known only at "
                             "run time (list * n) is not supported")
        return self.primitive(op, [left, right], {})

    def call_dunder(self, obj, name, args):
        method = getattr(obj.cls, name, None)
        if method is None:
            raise self.error(TransformError, f"{obj.cls.__name__} has no {name}")
        return self.call(Static(method), [obj] + list(args), {})

    def attribute(self, obj, name, node=None):
        obj = objectify(obj)
        if isinstance(obj, Static):
            try:
                return Static(getattr(obj.value, name))
            except AttributeError:
                raise self.error(TransformError, f"{describe(obj)} has no attribute {name!r}",
                                 node) from None
        if isinstance(obj, ObjS):
            if name in obj.names:
                return obj.get(name)
            try:
                attr = inspect.getattr_static(obj.cls, name)
            except AttributeError:
                raise self.error(TransformError, f"{obj.cls.__name__} object has no attribute "
                                 f"{name!r}", node) from None
            if isinstance(attr, staticmethod):
                return Static(attr.__func__)
            if isinstance(attr, classmethod):
                return BoundS(attr.__func__, Static(obj.cls))
            if isinstance(attr, property):
                return self.call(Static(attr.fget), [obj], {})
            if isinstance(attr, types.FunctionType):
                return BoundS(attr, obj, name)
            return Static(getattr(obj.cls, name))
        if isinstance(obj, (DictS, ListS, TupleS)):
            return BoundS(None, obj, name)
        if isinstance(obj, Value):
            entry = registry.lookup(Method(name, attribute=True))
            if entry is not None:
                return self.primitive(Method(name, attribute=True), [obj], {})
            return MethodRef(obj, name)
        raise self.error(TransformError, f"attribute {name!r} of {describe(obj)}", node)

    def index(self, container, index):
        container = objectify(container)
        if isinstance(container, ZipS):
            return TupleS(tuple(self.index(p, index) for p in container.parts))
        if isinstance(container, (TupleS, ListS)):
            if isinstance(index, Static) and isinstance(index.value, (int, np.integer)):
                try:
                    return container.items[index.value]
                except IndexError:
                    raise self.error(TransformError, "index out of range") from None
            if isinstance(index, Static) and isinstance(index.value, slice):
                return type(container)(container.items[index.value])
            return self.primitive(operator.getitem, [container, index], {})
        if isinstance(container, DictS):
            if isinstance(index, Static):
                try:
                    return container.get(index.value)
                except KeyError:
                    raise self.error(TransformError, f"key {index.value!r} not in dict") from None
            return self.primitive(operator.getitem, [container, index], {})
        if isinstance(container, ObjS) and issubclass(container.cls, tuple):
            return self.index(TupleS(container.values), index)      # a namedtuple
        if isinstance(container, ObjS):
            return self.call_dunder(container, "__getitem__", [index])
        if isinstance(container, Static) and isinstance(index, Static):
            try:
                return Static(container.value[index.value])
            except Exception:
                pass
        if isinstance(container, RangeS):
            return self.binop(operator.add, container.start,
                              self.binop(operator.mul, index, container.step))
        kind = container.kind if isinstance(container, Value) and container.kind in (
            "list",) else None
        return self.primitive(operator.getitem, [container, index], {},
                              kind="any" if kind else None)

    def call(self, f, args, kwargs, want_first=False):
        f = objectify(f)
        if isinstance(f, FuncS):
            return self.call_funcs(f, args, kwargs, want_first)
        if isinstance(f, BoundS):
            if f.func is None:
                return self.container_method(f.receiver, f.name, args, kwargs)
            return self.call(Static(f.func), [f.receiver] + list(args), kwargs)
        if isinstance(f, MethodRef):
            if f.name in ("sum", "prod", "max", "min", "mean") and {"where", "initial"} & set(
                    kwargs):    # as np.sum(x, ...): CuPy's methods take no where=/initial=
                return self.call(Static(getattr(np, f.name)), [f.receiver] + list(args), kwargs)
            method = Method(f.name)
            if registry.lookup(method) is not None:
                return self.primitive(method, [f.receiver] + list(args), kwargs)
            return self.opaque(method, [f.receiver] + list(args), kwargs)
        if isinstance(f, ObjS):
            return self.call_dunder(f, "__call__", list(args)) if not kwargs else \
                self.call(self.attribute(f, "__call__"), args, kwargs)
        if not isinstance(f, Static):
            raise self.error(UnsupportedSyntaxError,
                             f"calling {describe(f)}, a value computed at run time")
        fn = f.value
        method = bound_method_rule(fn)
        if method is not None:
            return self.primitive(method, [Static(fn.__self__)] + list(args), kwargs)
        special = SPECIAL_CALLS.get(_hashable(fn))
        if special is not None:
            return special(self, args, kwargs)
        if registry.lookup(fn) is not None:
            return self.primitive(fn, args, kwargs)
        if isinstance(fn, type):
            return self.construct(fn, args, kwargs)
        if isinstance(fn, types.MethodType) and isinstance(fn.__func__, types.FunctionType):
            return self.call(Static(fn.__func__), [Static(fn.__self__)] + list(args), kwargs)
        if getattr(fn, "__diffsrc_inline__", None) is not None:
            return fn.__diffsrc_inline__(self, args, kwargs)      # jvp, hvp (diffsrc/higher.py)
        if getattr(fn, "__diffsrc_transform__", None) is not None:
            return self.call_transformed(fn, args, kwargs)
        if isinstance(fn, types.FunctionType):
            if getattr(fn, "__module__", "") in ("diffsrc.api", "diffsrc.higher"):
                return self.nested_transform(fn, args, kwargs)
            try:
                return self.call_python(fn, args, kwargs, want_first)
            except SourceUnavailableError:
                if any(self.might_be_active(a) for a in list(args) + list(kwargs.values())):
                    raise self.error(NoRuleError, f"{getattr(fn, '__qualname__', fn)} has no "
                                     "derivative rule and no readable source; register one "
                                     "with @ds.adjoint") from None
                return self.opaque(fn, args, kwargs)
        return self.opaque(fn, args, kwargs)

    def nested_transform(self, fn, args, kwargs):
        """`ds.grad(f, wrt=...)` inside code being transformed: built at transform time."""
        if fn.__name__ == "jvp" and len(args) == 3 and not kwargs and is_constant(args[0]):
            return self.call(Static(fn(to_python(args[0]))), list(args[1:]), {})
        if fn.__name__ not in ("grad", "value_and_grad", "jvp", "hvp"):
            raise self.error(UnsupportedSyntaxError, f"ds.{fn.__name__} inside differentiated "
                             "code is not supported")
        if fn.__name__ != "jvp" and args and isinstance(args[0], FuncS) and \
                all(is_constant(a) for a in list(args[1:]) + list(kwargs.values())):
            lifted, captured = self.lift(args[0])
            options = {k: to_python(v) for k, v in kwargs.items()}
            if len(args) > 1:
                options["wrt"] = to_python(args[1])
            wrt = options.get("wrt", 0)
            shift = lambda w: w + 1 if isinstance(w, int) and w >= 0 else w   # noqa: E731
            options["wrt"] = tuple(map(shift, wrt)) if isinstance(wrt, tuple) else shift(wrt)
            return BoundS(fn(lifted, **options), captured)
        if not all(is_constant(a) for a in list(args) + list(kwargs.values())):
            raise self.error(UnsupportedSyntaxError,
                             f"ds.{fn.__name__} of a nested function or lambda inside "
                             "differentiated code; define the function at module level and "
                             "pass the values it needs as arguments")
        return Static(fn(*[to_python(a) for a in args],
                         **{k: to_python(v) for k, v in kwargs.items()}))

    def lift(self, f):
        """A nested function or lambda as a function of its own, with the run-time values it
        captures passed first as one tuple: ds.grad can then transform it like any other,
        and calling its gradient here inlines the generated code (the closure property)."""
        node = f.parsed.node
        arguments = node.args
        params = {p.id for p in list(arguments.posonlyargs) + list(arguments.args) +
                  list(arguments.kwonlyargs) + [arguments.vararg, arguments.kwarg] if p}
        body = node.body if isinstance(node, gast.FunctionDef) else [
            gast.Return(value=node.body)]
        local = set(assigned_names(body))
        namespace, captured = dict(f.parsed.globals), []
        for name in dict.fromkeys(n.id for n in gast.walk(node) if isinstance(n, gast.Name)
                                  and isinstance(n.ctx, gast.Load)):
            if name in params or name in local:
                continue
            try:
                held = f.frame.lookup(name)
            except KeyError:
                continue
            if isinstance(held, Static):
                namespace[name] = held.value
            elif isinstance(held, Value) or is_structure(held):
                captured.append((name, held))
            else:
                raise self.error(UnsupportedSyntaxError, f"ds.grad of {describe(f)}, which "
                                 f"uses {describe(held)} from the enclosing function")
        if not all(isinstance(d, Static) for d in f.defaults) or not all(
                d is None or isinstance(d, Static) for d in f.kw_defaults):
            raise self.error(UnsupportedSyntaxError, f"ds.grad of {describe(f)} whose default "
                             "values are computed at run time")
        pack = f"_captured{next(self.fresh)}"
        unpack = [gast.Assign(targets=[gast.Tuple(elts=[
            gast.Name(id=n, ctx=gast.Store(), annotation=None, type_comment=None)
            for n, _ in captured], ctx=gast.Store())], value=gast.Name(
                id=pack, ctx=gast.Load(), annotation=None, type_comment=None),
            type_comment=None)] if captured else []
        first = gast.Name(id=pack, ctx=gast.Param(), annotation=None, type_comment=None)
        lifted_args = gast.arguments(args=[first] + list(arguments.args),
                                     posonlyargs=list(arguments.posonlyargs),
                                     vararg=arguments.vararg, kwonlyargs=arguments.kwonlyargs,
                                     kw_defaults=[None] * len(arguments.kwonlyargs),
                                     kwarg=arguments.kwarg,
                                     defaults=[gast.Constant(value=None, kind=None)
                                               for _ in arguments.defaults])
        name = "lambda_" if isinstance(node, gast.Lambda) else node.name
        lifted = gast.FunctionDef(name=name, args=lifted_args, body=unpack + list(body),
                                  decorator_list=[], returns=None, type_comment=None,
                                  type_params=[])
        for part in gast.walk(lifted):
            if not hasattr(part, "lineno"):
                gast.copy_location(part, node)
        stub = gast.FunctionDef(name=name, args=lifted_args, body=[gast.Pass()],
                                decorator_list=[], returns=None, type_comment=None,
                                type_params=[])
        module = ast.fix_missing_locations(gast.gast_to_ast(gast.Module(body=[stub],
                                                                        type_ignores=[])))
        exec(compile(module, f.parsed.filename, "exec"), namespace)
        function = namespace.pop(name)
        function.__defaults__ = tuple(d.value for d in f.defaults) or None
        function.__kwdefaults__ = {k.id: d.value for k, d in zip(arguments.kwonlyargs,
                                                                 f.kw_defaults)
                                   if d is not None} or None
        remember_parsed(function, ParsedFunction(lifted, f.parsed.filename,
                                                 f.parsed.line_offset, namespace, {}))
        return function, TupleS(tuple(held for _, held in captured))

    def call_transformed(self, gradient, args, kwargs):
        """Calling a gradient function: its generated source is read and inlined like any
        Python function (the closure property), so it can be differentiated again."""
        if kwargs:
            raise self.error(UnsupportedSyntaxError, "keyword arguments to a gradient "
                             "function inside differentiated code")
        examples = tuple(placeholder(a) for a in args)
        compiled = gradient.__diffsrc_transform__(examples)
        result = self.call_python(compiled.function, list(args), {})
        value, grads = self.iterate_static(result, 2)
        if not gradient.single and len(gradient.wrt) == 1:
            grads = TupleS((grads,))
        return TupleS((value, grads)) if gradient.with_value else grads

    def might_be_active(self, a):
        return isinstance(a, Value) or any(self.might_be_active(c) for c in children(a))

    def container_method(self, receiver, name, args, kwargs):
        if isinstance(receiver, DictS):
            if name == "keys":
                return ListS(tuple(Static(k) for k in receiver.keys))
            if name == "values":
                return ListS(receiver.values)
            if name == "items":
                return ListS(tuple(TupleS((Static(k), v))
                                   for k, v in zip(receiver.keys, receiver.values)))
            if name == "get":
                key = args[0].value
                return receiver.get(key) if key in receiver.keys else (
                    args[1] if len(args) > 1 else Static(None))
            if name == "copy":
                return receiver
        if isinstance(receiver, (ListS, TupleS)):
            if name == "copy":
                return receiver
            if name == "index" and all_static(receiver):
                return Static(to_python(receiver).index(args[0].value))
            if name == "count" and all_static(receiver):
                return Static(to_python(receiver).count(args[0].value))
        raise self.error(UnsupportedSyntaxError, f"method {name}() of {describe(receiver)}")

    def construct(self, cls, args, kwargs):
        """Instances of the user's classes are structures of their fields."""
        if dataclasses.is_dataclass(cls):
            fields = [f for f in dataclasses.fields(cls)]
            init_fields = [f for f in fields if f.init]
            values = {}
            for f, a in zip(init_fields, args):
                values[f.name] = a
            for key, a in kwargs.items():
                values[key] = a
            for f in fields:
                if f.name not in values:
                    if f.default is not dataclasses.MISSING:
                        values[f.name] = Static(f.default)
                    elif f.default_factory is not dataclasses.MISSING:
                        values[f.name] = Static(f.default_factory())
                    else:
                        raise self.error(TransformError, f"{cls.__name__}() missing {f.name}")
            obj = ObjS(cls, tuple(f.name for f in fields), tuple(values[f.name] for f in fields))
            post = getattr(cls, "__post_init__", None)
            if post is not None:
                _, obj = self.call(Static(post), [obj], {}, want_first=True)
            return obj
        init = cls.__dict__.get("__init__") if "__init__" in cls.__dict__ else None
        if init is None:
            for base in cls.__mro__[1:]:
                if "__init__" in base.__dict__:
                    init = base.__dict__["__init__"]
                    break
        if isinstance(init, types.FunctionType) and cls.__module__ not in ("builtins",) \
                and not cls.__module__.startswith("numpy"):
            _, obj = self.call_python(init, [ObjS(cls, (), ())] + list(args), kwargs,
                                      want_first=True)
            return obj
        return self.opaque(cls, args, kwargs)

    def primitive(self, fn, args, kwargs, kind=None):
        entry = registry.lookup(fn)
        everything = list(args) + list(kwargs.values())
        if entry is not None and entry.foldable and all(is_constant(a) for a in everything):
            try:
                return Static(fn(*[to_python(a) for a in args],
                                 **{k: to_python(v) for k, v in kwargs.items()}))
            except Exception:
                pass
        if entry is not None and entry.meta.get("lower") is not None:
            result = entry.meta["lower"](self, args, kwargs)
            if isinstance(result, Value) and args and isinstance(args[0], Value) and \
                    is_view_op(fn, ()):
                self.view_base.setdefault(result.id, args[0])
            return result
        if entry is not None and entry.meta.get("expand") and not self.fixed_loc:
            return self.call_python(fn, args, kwargs)
        values = [self.value(a) for a in args] + [self.value(v) for v in kwargs.values()]
        kind = kind if kind != "any" else None
        kind = (entry.result_kind if entry is not None else None) or kind or scalar_kind(
            fn, list(args) + list(kwargs.values()))
        result = self.b.call(fn, values, kwnames=tuple(kwargs), kind=kind)
        if is_view_op(fn, values) and values:
            self.view_base[result.id] = values[0]
        return result

    def opaque(self, fn, args, kwargs):
        """A call diffsrc does not look into: kept as is; an error if it must be differentiated."""
        values = [self.value(a) for a in args] + [self.value(v) for v in kwargs.values()]
        return self.b.call(fn, values, kwnames=tuple(kwargs))


class _Thunk(list):
    """A statement list that runs Python code when lowered (comprehension bodies)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn


_original_block = Lowerer.block


def _block(self, stmts):
    if isinstance(stmts, _Thunk):
        stmts.fn()
        return None
    return _original_block(self, stmts)


Lowerer.block = _block


# --------------------------------------------------------------------- helpers
def objectify(a):
    """A constant instance of a user class becomes a structure of its (constant) fields."""
    if not isinstance(a, Static):
        return a
    value = a.value
    cls = type(value)
    if getattr(value, "__diffsrc_transform__", None) is not None or \
            getattr(value, "__diffsrc_inline__", None) is not None:
        return a
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = tuple(f.name for f in dataclasses.fields(value))
        return ObjS(cls, names, tuple(Static(getattr(value, n)) for n in names))
    if hasattr(value, "__dict__") and not isinstance(value, (
            type, types.ModuleType, types.FunctionType, types.MethodType,
            types.BuiltinFunctionType)) and \
            cls.__module__ not in ("builtins",) and not cls.__module__.startswith("numpy") \
            and not callable(getattr(value, "__array__", None)) and _user_class(cls):
        names = tuple(vars(value))
        return ObjS(cls, names, tuple(Static(getattr(value, n)) for n in names))
    return a


VIEW_METHODS = {"reshape", "T", "transpose", "ravel", "squeeze", "swapaxes", "view", "real",
                "imag", "flat", "diagonal"}
VIEW_FUNCTIONS = {"reshape", "transpose", "ravel", "squeeze", "expand_dims", "swapaxes",
                  "moveaxis", "broadcast_to", "asarray", "atleast_1d", "atleast_2d", "diagonal",
                  "sliding_window_view", "flip", "rollaxis"}


INT_CLOSED = (operator.add, operator.sub, operator.mul, operator.floordiv, operator.mod,
              operator.neg, operator.pos, abs, builtins.max, builtins.min)
FLOAT_CLOSED = INT_CLOSED + (operator.truediv, operator.pow, float)


def scalar_kind(fn, args):
    """'int' or 'float' when Python scalar arithmetic keeps the result a Python scalar."""
    if not (fn in FLOAT_CLOSED or getattr(fn, "__module__", None) == "math"):
        return None
    kinds = set()
    for a in args:
        if isinstance(a, Static) and isinstance(a.value, (bool, int)):
            kinds.add("int")
        elif isinstance(a, Static) and isinstance(a.value, float):
            kinds.add("float")
        else:
            kinds.add(getattr(a, "kind", "?"))
    if kinds <= {"int"} and fn in INT_CLOSED:
        return "int"
    if kinds <= {"int", "float"}:
        return "float"
    return None


def is_view_op(fn, values):
    """Whether the result of this call may share memory with its first argument."""
    if fn is operator.getitem:
        return True
    if isinstance(fn, Method):
        return fn.name in VIEW_METHODS
    return getattr(fn, "__name__", None) in VIEW_FUNCTIONS and (
        getattr(np, fn.__name__, None) is fn or "stride_tricks" in getattr(fn, "__module__", ""))


MAX_NESTED_RECURSION = 64


def static_signature(a):
    """What a call's arguments fix at transform time (run-time values all look alike)."""
    if isinstance(a, (list, tuple)):
        return tuple(static_signature(x) for x in a)
    if isinstance(a, Static):
        value = a.value
        return (type(value), value) if isinstance(value, SCALAR_STATIC) else id(value)
    if isinstance(a, Value):
        return Value
    if is_structure(a):
        keys = a.keys if isinstance(a, DictS) else a.names if isinstance(a, ObjS) else ()
        return (type(a), keys, static_signature(children(a)))
    return id(a)


METHOD_RECEIVERS = (np.ndarray, np.generic, np.random.Generator)


def bound_method_rule(fn):
    """`C.dot` or `rng.normal` of a constant array or Generator: the rule registered for
    the method (as for a run-time receiver), so a differentiated argument is seen."""
    receiver = getattr(fn, "__self__", None)
    name = getattr(fn, "__name__", None)
    if not isinstance(receiver, METHOD_RECEIVERS) or not isinstance(name, str):
        return None
    method = Method(name)
    return method if registry.lookup(method) is not None else None


def leaves_in(a):
    if isinstance(a, Value):
        return [a]
    return [leaf for c in children(a) for leaf in leaves_in(c)]


def placeholder(a):
    """An example value with the structure of description `a`, to transform a callee."""
    if isinstance(a, Static):
        return a.value
    if isinstance(a, Value):
        if a.kind == "float":
            return 0.0
        if a.kind == "int":
            return 0
        return np.zeros(()).view(_ArrayPlaceholder)
    if isinstance(a, TupleS):
        return tuple(placeholder(x) for x in a.items)
    if isinstance(a, ListS):
        return [placeholder(x) for x in a.items]
    if isinstance(a, DictS):
        return {k: placeholder(v) for k, v in zip(a.keys, a.values)}
    if isinstance(a, ObjS) and issubclass(a.cls, tuple):                 # a namedtuple
        return a.cls(*[placeholder(v) for v in a.values])
    if isinstance(a, ObjS):
        obj = a.cls.__new__(a.cls)
        for name, v in zip(a.names, a.values):
            object.__setattr__(obj, name, placeholder(v))
        return obj
    raise TransformError(f"cannot pass {describe(a)} to a gradient function here")


class _ArrayPlaceholder(np.ndarray):
    """Stands for a run-time array argument of unknown shape."""


def _user_class(cls):
    """Classes defined in user code (their methods have Python source)."""
    return any(isinstance(v, types.FunctionType) for v in vars(cls).values())


def runtime_format(*parts):
    return "".join(str(p) for p in parts)


def _hashable(fn):
    try:
        hash(fn)
        return fn
    except TypeError:
        return None


def describe(a):
    if isinstance(a, Static):
        return f"the constant {a.value!r}" if isinstance(a.value, SCALAR_STATIC) else \
            f"{type(a.value).__name__} {getattr(a.value, '__name__', '')}".strip()
    if isinstance(a, Value):
        return "a run-time value" + (f" ({a.hint})" if a.hint else "")
    if isinstance(a, ObjS):
        return f"a {a.cls.__name__} object"
    if isinstance(a, FuncS):
        return f"function {a.parsed.name}"
    return {TupleS: "a tuple", ListS: "a list", DictS: "a dict", RangeS: "a range",
            ZipS: "a zip", EnumerateS: "an enumerate"}.get(type(a), type(a).__name__)


def all_static(a):
    if isinstance(a, Static):
        return True
    if is_structure(a) and not isinstance(a, ObjS):
        return all(all_static(c) for c in children(a))
    return False


def is_constant(a):
    return isinstance(a, Static) or (is_structure(a) and all_static(a))


def to_python(a):
    if isinstance(a, Static):
        return a.value
    if isinstance(a, TupleS):
        return tuple(to_python(x) for x in a.items)
    if isinstance(a, ListS):
        return [to_python(x) for x in a.items]
    if isinstance(a, DictS):
        return {k: to_python(v) for k, v in zip(a.keys, a.values)}
    raise TypeError(a)


def same_static(a, b):
    x, y = a.value, b.value
    if x is y:
        return True
    if type(x) is not type(y) or not isinstance(x, SCALAR_STATIC + (tuple, slice)):
        return False
    try:
        return bool(x == y)
    except Exception:
        return False


def count_slots(t):
    if isinstance(t, type) and issubclass(t, SLOT):
        return 1
    return sum(count_slots(c) for c in children(t)) if is_structure(t) else 0


def fill(t, values):
    if isinstance(t, type) and issubclass(t, SLOT):
        return next(values)
    if is_structure(t):
        return rebuild(t, [fill(c, values) for c in children(t)])
    return t


def templates_equal(a, b):
    if a is b:
        return True
    if isinstance(a, Static) and isinstance(b, Static):
        return same_static(a, b)
    if is_structure(a) and is_structure(b) and same_shape(a, b):
        return all(templates_equal(x, y) for x, y in zip(children(a), children(b)))
    return False


def merge_templates(entry, exit_template):
    """Widen the entry template of a loop with what one pass of the body produced."""
    if entry is UNDEFINED:
        return exit_template
    if exit_template is UNDEFINED:
        return entry
    if isinstance(entry, type) and issubclass(entry, SLOT):
        return LISTSLOT if (entry is LISTSLOT or exit_template is LISTSLOT or
                            isinstance(exit_template, ListS)) else entry
    if isinstance(exit_template, type) and issubclass(exit_template, SLOT):
        return LISTSLOT if (exit_template is LISTSLOT or isinstance(entry, ListS)) else SLOT
    if isinstance(entry, Static) and isinstance(exit_template, Static):
        return entry if same_static(entry, exit_template) else SLOT
    if isinstance(entry, ListS) and isinstance(exit_template, ListS) and \
            len(entry.items) != len(exit_template.items):
        return LISTSLOT
    if is_structure(entry) and is_structure(exit_template) and same_shape(entry, exit_template):
        return rebuild(entry, [merge_templates(x, y) for x, y in
                               zip(children(entry), children(exit_template))])
    if isinstance(entry, (FuncS, BoundS)) and type(entry) is type(exit_template):
        return entry
    return SLOT


def slot_position(names, templates, flag):
    position = 0
    for n in names:
        t = templates[n]
        if n == flag:
            return position if (isinstance(t, type) and issubclass(t, SLOT)) else None
        position += count_slots(t)
    return None


def assigned_names(stmts):
    """Names a statement list assigns (not looking into nested functions)."""
    names = []

    def target(t):
        if isinstance(t, gast.Name):
            names.append(t.id)
        elif isinstance(t, (gast.Tuple, gast.List)):
            for e in t.elts:
                target(e)
        elif isinstance(t, gast.Starred):
            target(t.value)
        elif isinstance(t, (gast.Subscript, gast.Attribute)):
            base = t
            while isinstance(base, (gast.Subscript, gast.Attribute)):
                base = base.value
            target(base)

    def visit(node):
        if isinstance(node, (gast.Assign,)):
            for t in node.targets:
                target(t)
        elif isinstance(node, (gast.AugAssign, gast.AnnAssign)):
            target(node.target)
        elif isinstance(node, gast.For):
            target(node.target)
        elif isinstance(node, gast.NamedExpr):
            target(node.target)
        elif isinstance(node, gast.FunctionDef):
            names.append(node.name)
            return
        elif isinstance(node, gast.Lambda):
            return
        elif isinstance(node, gast.Expr) and isinstance(node.value, gast.Call) and \
                isinstance(node.value.func, gast.Attribute) and \
                node.value.func.attr in LIST_MUTATORS + ("update", "pop"):
            target(node.value.func.value)
        elif isinstance(node, gast.Call) and isinstance(node.func, gast.Attribute) and \
                node.func.attr in LIST_MUTATORS + ("update", "pop"):
            target(node.func.value)
        elif isinstance(node, (gast.ListComp, gast.DictComp, gast.GeneratorExp)):
            return
        for child in gast.iter_child_nodes(node):
            visit(child)

    for s in stmts if not isinstance(stmts, _Thunk) else []:
        visit(s)
    return names


def load_of(target):
    """The expression that reads what `target` writes (for augmented assignment)."""
    import copy
    node = copy.deepcopy(target)
    for n in gast.walk(node):
        if hasattr(n, "ctx"):
            n.ctx = gast.Load()
    return node


# ------------------------------------------------------ builtins with meaning
def _range(low, args, kwargs):
    if len(args) == 1:
        return RangeS(Static(0), args[0], Static(1))
    if len(args) == 2:
        return RangeS(args[0], args[1], Static(1))
    return RangeS(*args)


def _len(low, args, kwargs):
    a = args[0]
    if isinstance(a, RangeS) and all(isinstance(p, Static) for p in (a.start, a.stop, a.step)):
        return Static(len(range(a.start.value, a.stop.value, a.step.value)))
    if isinstance(a, RangeS):
        a = low.value(a)
    if isinstance(a, Value):
        return low.b.call(len, [a], kind="int")
    if is_structure(a) or isinstance(a, Static):
        return low.len_of(a)
    raise low.error(TransformError, f"len() of {describe(a)}")


def _sum(low, args, kwargs):
    total = args[1] if len(args) > 1 else kwargs.get("start", Static(0))
    items = args[0]
    if isinstance(items, Value):
        return low.primitive(builtins.sum, args, kwargs)
    for item in low.iterate_static(items, None):
        total = low.binop(operator.add, total, item)
    return total


def _minmax(which):
    def lower(low, args, kwargs):
        if kwargs:
            raise low.error(UnsupportedSyntaxError, f"{which.__name__}() with keyword arguments")
        items = args if len(args) > 1 else low.iterate_static(args[0], None)
        if len(args) == 1 and isinstance(args[0], Value):
            return low.primitive(which, args, {})
        best = items[0]
        for item in items[1:]:
            best = low.primitive(which, [best, item], {})
        return best
    return lower


def _isinstance(low, args, kwargs):
    obj, cls = args
    if isinstance(obj, Value):
        return low.primitive(isinstance, args, {})
    if isinstance(cls, TupleS) and all_static(cls):
        cls = Static(to_python(cls))                 # isinstance(axis, (int, np.integer))
    python_type = {TupleS: tuple, ListS: list, DictS: dict}.get(type(obj))
    if isinstance(obj, ObjS):
        python_type = obj.cls
    if python_type is not None:
        return Static(issubclass(python_type, cls.value))
    return Static(isinstance(obj.value, cls.value))


def _sequence(kind):
    def lower(low, args, kwargs):
        if not args:
            return kind(())
        a = args[0]
        if isinstance(a, RangeS) and all(isinstance(p, Static) for p in (a.start, a.stop, a.step)):
            return kind(tuple(Static(i) for i in range(a.start.value, a.stop.value, a.step.value)))
        if isinstance(a, RangeS):
            a = low.opaque(range, [a.start, a.stop, a.step], {})     # tuple(range(x.ndim))
        if isinstance(a, Value) and a.kind == "list" and kind is ListS:
            return a                           # lists are values here: list(xs) is xs
        if isinstance(a, Value):
            return low.primitive(list if kind is ListS else tuple, [a], {},
                                 kind="list" if kind is ListS else None)
        return kind(tuple(low.iterate_static(a, None)))
    return lower


def _dict(low, args, kwargs):
    d = DictS((), ())
    if args:
        base = args[0]
        if isinstance(base, DictS):
            d = base
        else:
            for pair in low.iterate_static(base, None):
                key, value = low.iterate_static(pair, 2)
                d = d.set(key.value, value)
    for k, v in kwargs.items():
        d = d.set(k, v)
    return d


def _getattr(low, args, kwargs):
    obj, name = args[0], args[1].value
    try:
        return low.attribute(obj, name)
    except DiffsrcError:
        if len(args) > 2:
            return args[2]
        raise


def _hasattr(low, args, kwargs):
    obj, name = args[0], args[1].value
    if isinstance(obj, ObjS):
        return Static(name in obj.names or hasattr(obj.cls, name))
    if isinstance(obj, Static):
        return Static(hasattr(obj.value, name))
    return low.primitive(hasattr, args, {})


def _zip(low, args, kwargs):
    return ZipS(tuple(args))


def _enumerate(low, args, kwargs):
    return EnumerateS(args[0], args[1] if len(args) > 1 else kwargs.get("start", Static(0)))


def _reversed(low, args, kwargs):
    a = args[0]
    if isinstance(a, RangeS):
        start, stop, step = a.start, a.stop, a.step
        last = low.binop(operator.sub, stop, step)
        return RangeS(last, low.binop(operator.sub, start, step),
                      low.primitive(operator.neg, [step], {}))
    return ListS(tuple(reversed(low.iterate_static(a, None))))


def _map(low, args, kwargs):
    """map(f, xs, ys) is lowered as the comprehension [f(x, y) for x, y in zip(xs, ys)]:
    a lambda or nested def is inlined per item, over a structure or a run-time array."""
    if kwargs or len(args) < 2:
        raise low.error(TransformError, "map() takes a function and at least one iterable")
    names = [f"_map{next(low.fresh)}" for _ in range(2 * len(args))]
    fn, iterables, items = names[0], names[1:len(args)], names[len(args) + 1:]
    bound = dict(zip([fn] + iterables, args))
    if len(iterables) == 1:
        source = f"[{fn}({items[0]}) for {items[0]} in {iterables[0]}]"
    else:
        bound[names[len(args)]] = Static(zip)
        source = (f"[{fn}({', '.join(items)}) for ({', '.join(items)}) in "
                  f"{names[len(args)]}({', '.join(iterables)})]")
    node = gast.parse(source).body[0].value
    for part in gast.walk(node):
        gast.copy_location(part, low.node)
    low.frame.env.update(bound)
    try:
        return low.expr(node)
    finally:
        for name in names:
            low.frame.env.pop(name, None)


def _sorted(low, args, kwargs):
    """sorted() of dict keys or other constants is known at transform time."""
    items = args[0]
    if (is_structure(items) or isinstance(items, Static)) and all(
            is_constant(a) for a in kwargs.values()):
        parts = low.iterate_static(items, None)
        if all(isinstance(p, Static) for p in parts):
            ordered = sorted((p.value for p in parts),
                             **{k: to_python(v) for k, v in kwargs.items()})
            return ListS(tuple(Static(v) for v in ordered))
    return low.opaque(sorted, args, kwargs)


def _print(low, args, kwargs):
    return low.opaque(print, args, kwargs)


SPECIAL_CALLS = {registry.is_constant: lambda low, args, kwargs: Static(isinstance(args[0],
                                                                                  Static)),
                 range: _range, len: _len, builtins.sum: _sum, builtins.min: _minmax(min),
                 builtins.max: _minmax(max), isinstance: _isinstance, list: _sequence(ListS),
                 tuple: _sequence(TupleS), dict: _dict, getattr: _getattr, hasattr: _hasattr,
                 zip: _zip, enumerate: _enumerate, reversed: _reversed, map: _map, sorted: _sorted,
                 print: _print}


# ------------------------------------------------------------------ entry point
def abstract_argument(value, tree, hint, params, leaves_out):
    """The compile-time description of an argument; its leaves become IR values."""
    if tree.kind == "leaf":
        v = Value(hint, {"int": "int", "float": "float"}.get(tree.leaf[0]))
        leaves_out.append(v)
        return v
    if tree.kind == "static":
        return Static(value)
    parts = []
    for key, child in zip(tree.keys, tree.children):
        part = getattr(value, key) if tree.kind == "object" else value[key]
        child_hint = key if isinstance(key, str) and key.isidentifier() else f"{hint}_{key}"
        parts.append(abstract_argument(part, child, child_hint, params, leaves_out))
    if tree.kind == "tuple":
        return TupleS(tuple(parts))
    if tree.kind == "list":
        return ListS(tuple(parts))
    if tree.kind == "dict":
        return DictS(tuple(tree.keys), tuple(parts))
    return ObjS(tree.cls, tuple(tree.keys), tuple(parts))


def result_tree(a, leaves, low):
    """Flatten the returned description into a Tree and its run-time leaves."""
    if isinstance(a, Value):
        leaves.append(a)
        return Tree("leaf", leaf=("?", "", -1))
    if isinstance(a, Static) and not isinstance(a.value, (int, float, complex, np.ndarray,
                                                          np.generic)):
        return Tree("static", static=a.value)
    if isinstance(a, (TupleS, ListS)):
        kids = tuple(result_tree(x, leaves, low) for x in a.items)
        return Tree("tuple" if isinstance(a, TupleS) else "list", kids, tuple(range(len(kids))))
    if isinstance(a, DictS):
        return Tree("dict", tuple(result_tree(x, leaves, low) for x in a.values), a.keys)
    if isinstance(a, ObjS):
        return Tree("object", tuple(result_tree(x, leaves, low) for x in a.values), a.names,
                    cls=a.cls)
    leaves.append(low.value(a))
    return Tree("leaf", leaf=("?", "", -1))


def lower_function(fn, args, name=None):
    """Lower Python function `fn` for arguments shaped like `args` into an IR Function."""
    if getattr(fn, "__diffsrc_transform__", None) is not None:
        return _lower_transformed(fn, args)
    if getattr(fn, "__diffsrc_inline__", None) is not None:
        raise TransformError(f"{type(fn).__name__} cannot be transformed directly; transform a "
                             "function that calls it")
    prefix, keywords = (), {}
    if isinstance(fn, functools.partial):          # partial(f, a)(x): a is a constant
        prefix, keywords, fn = fn.args, dict(fn.keywords), fn.func
    elif not isinstance(fn, (types.FunctionType, types.MethodType)) and \
            isinstance(getattr(type(fn), "__call__", None), types.FunctionType):
        prefix, fn = (fn,), type(fn).__call__      # an object with __call__
    parsed = parse_function(fn)
    node = parsed.node
    arg_names = [a.id for a in list(node.args.posonlyargs) + list(node.args.args)]
    arg_names = [n for n in arg_names[len(prefix):] if n not in keywords]
    if len(args) > len(arg_names):
        if node.args.vararg is None:
            raise TransformError(f"{parsed.name}() takes {len(arg_names)} positional arguments "
                                 f"but {len(args)} were given", parsed.filename,
                                 parsed.lineno(node))
        star = node.args.vararg.id
        arg_names += [f"{star}{i}" for i in range(len(args) - len(arg_names))]
    params = [Value(n, None) for n in arg_names[:len(args)]]
    body = Block()
    builder = Builder(body, Location(parsed.filename, parsed.lineno(node)))
    low = Lowerer(builder)
    abstract_args, trees = [], []
    for param, value in zip(params, args):
        tree = tree_of(value)
        trees.append(tree)
        if tree.kind == "leaf":
            param.kind = {"int": "int", "float": "float"}.get(tree.leaf[0])
            abstract_args.append(param)
            continue
        leaves = []
        a = abstract_argument(value, tree, param.hint, params, leaves)
        if leaves:
            unpack = builder.op("unpack", [param], nresults=len(leaves),
                                hints=[v.hint for v in leaves], kinds=[v.kind for v in leaves],
                                attrs={"tree": tree})
            mapping = dict(zip([id(v) for v in leaves], unpack.results))
            a = _replace_leaves(a, mapping)
        abstract_args.append(a)
    low.inlining.append(fn.__code__ if hasattr(fn, "__code__") else None)
    bound = [objectify(Static(p)) for p in prefix] + abstract_args
    result = low.inline(parsed, bound, {k: Static(v) for k, v in keywords.items()},
                        tuple(Static(d) for d in (getattr(fn, "__defaults__", None) or ())))
    leaves = []
    with builder.located(low.return_loc or builder.loc):
        out_tree = result_tree(result, leaves, low)
        builder.op("return", leaves, nresults=0)
    function = Function(name or parsed.name, params, body, arg_names[:len(args)],
                        parsed.filename, parsed.lineno(node))
    function.in_trees = trees
    function.out_tree = out_tree
    function.pyfunc = fn
    return function


def _lower_transformed(gradient, args):
    """A gradient function, itself differentiated: lower a call to its generated code."""
    compiled = gradient.__diffsrc_transform__(tuple(args))
    inner = lower_function(compiled.function, args)
    low = Lowerer(Builder(inner.body, inner.body.ops[-1].loc))
    ret = inner.body.ops.pop()
    value_and_grads = build_abstract(inner.out_tree, iter(ret.args))
    value, grads = low.iterate_static(value_and_grads, 2)
    if not gradient.single and len(gradient.wrt) == 1:
        grads = TupleS((grads,))
    result = TupleS((value, grads)) if gradient.with_value else grads
    leaves = []
    out_tree = result_tree(result, leaves, low)
    low.b.op("return", leaves, nresults=0)
    inner.out_tree = out_tree
    inner.name = gradient.fn.__name__ + "_grad"
    inner.pyfunc = gradient
    return inner


def _is_list(a):
    """A list: built while transforming, or a list value of the running program."""
    return isinstance(a, ListS) or (isinstance(a, Value) and a.kind == "list") or (
        isinstance(a, Static) and isinstance(a.value, list))


def build_abstract(tree, leaves):
    """The compile-time description of a result with structure `tree`."""
    if tree.kind == "leaf":
        return next(leaves)
    if tree.kind == "static":
        return Static(tree.static)
    parts = tuple(build_abstract(c, leaves) for c in tree.children)
    if tree.kind == "tuple":
        return TupleS(parts)
    if tree.kind == "list":
        return ListS(parts)
    if tree.kind == "dict":
        return DictS(tuple(tree.keys), parts)
    return ObjS(tree.cls, tuple(tree.keys), parts)


def _replace_leaves(a, mapping):
    if isinstance(a, Value):
        return mapping.get(id(a), a)
    if is_structure(a):
        return rebuild(a, [_replace_leaves(c, mapping) for c in children(a)])
    return a
