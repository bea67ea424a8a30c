"""The public transforms: grad, value_and_grad, pullback, source, ir.

Each runs the pipeline once per (function, wrt, argument structure/dtypes/ranks)
and caches the compiled result; later calls go straight to generated code.
"""
import builtins
import functools
import inspect
import itertools
import linecache
import operator

import numpy as np

from . import rules  # noqa: F401  (registers every derivative rule)
from .codegen.python import generate
from .errors import NonDifferentiableError, NonScalarOutputError
from .frontend.lower import lower_function
from .frontend.parse import function_from_source, parse_function
from .frontend.trees import build, leaves_of, tree_of
from .ir import format_function, verify
from .rules import registry
from .passes import optimize as run_passes
from .passes.dce import eliminate_dead_code
from .passes.owned_outputs import copy_shared_outputs
from .transforms.forward import forward
from .transforms.reverse import keep_tapes, reverse
from . import backends
from .backends.cupy import Fusion
from .passes.fusion import find_groups

_file_ids = itertools.count(1)
_global_cache = {}


class Compiled:
    """One generated function with its source and a map back to the user's lines."""

    def __init__(self, function, source, filename, line_locs, ir_function):
        self.plain_floats = False
        self.scalar_output = False            # proved at transform time (grad only)
        self.output_count = 1
        self.backend, self.fusion = backends.NUMPY, None
        self.function = function
        self.source = source
        self.filename = filename
        self.line_locs = line_locs
        self.ir = ir_function

    def annotate(self, exc):
        """Add a note naming the user's line to an exception raised in generated code."""
        tb = exc.__traceback__
        lineno = None
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == self.filename:
                lineno = tb.tb_lineno
            tb = tb.tb_next
        if lineno is None:
            return
        loc = self.line_locs.get(lineno)
        where = f" (from {loc.filename}:{loc.lineno})" if loc else ""
        exc.add_note(f"diffsrc: raised in generated code {self.filename}, line {lineno}{where}")


def _compile(source, fname, namespace, line_locs, ir_function):
    filename = f"<diffsrc-generated {fname} #{next(_file_ids)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)
    function = namespace[fname]
    function.__diffsrc_source__ = source
    return Compiled(function, source, filename, line_locs, ir_function)


def transform(fn, args, wrt, mode, optimize=True, trace=None, order="forward mode",
              specialize=False, backend=None, has_aux=False):
    """The pipeline: lower, optimise, differentiate, optimise, generate, compile.

    `order` names the derivative in forward-mode ("jvp") errors; `specialize` fixes
    the code to the shapes and dtypes of `args`."""
    ir_function = lower_function(fn, args)
    verify(ir_function)
    if optimize:
        run_passes(ir_function, trace, final=mode not in ("grad", "pullback", "jvp"))
    if has_aux:
        _check_aux_output(ir_function)
    elif mode == "grad" and ir_function.out_tree.kind != "leaf":
        raise NonScalarOutputError(
            f"grad needs a function returning one scalar; {ir_function.name} returns a "
            f"{ir_function.out_tree.kind} (use ds.pullback for other outputs)",
            ir_function.filename, ir_function.lineno)
    if mode in ("grad", "pullback"):
        reverse(ir_function, wrt, seeded=1 if has_aux else None)
        verify(ir_function)
        if mode == "grad":
            seed_with_one(ir_function)
    if mode == "jvp":
        forward(ir_function, wrt, order)
        verify(ir_function)
    backend = backend or backends.NUMPY
    if optimize:      # fused code: no in-place updates of ops that join a fusion group
        run_passes(ir_function, trace, args=args if specialize else None,
                   inplace="fused" if backend.fused else
                   "device" if backend.name != "numpy" else True)
    elif mode in ("grad", "pullback", "jvp"):
        eliminate_dead_code(ir_function)
    if mode in ("grad", "pullback", "jvp"):
        copy_shared_outputs(ir_function)
        verify(ir_function)
    if mode == "pullback":
        keep_tapes(ir_function)
    fusion = None
    if backend.fused:
        blocks = [ir_function.body] + ([ir_function.pullback] if mode in ("grad", "pullback")
                                       else [])
        fusion = Fusion(find_groups(ir_function, blocks), backend.module())
    source, fname, namespace, line_locs = generate(ir_function,
                                                   "primal" if mode == "jvp" else mode,
                                                   fusion=fusion)
    compiled = _compile(source, fname, backend.bind(namespace), line_locs, ir_function)
    compiled.backend, compiled.fusion = backend, fusion
    return compiled


def _check_aux_output(fn):
    """has_aux: the function returns (scalar loss, anything)."""
    tree = fn.out_tree
    if tree.kind != "tuple" or len(tree.children) != 2 or tree.children[0].kind != "leaf":
        raise NonScalarOutputError(
            f"has_aux=True needs {fn.name} to return a pair (scalar loss, auxiliary "
            f"values); it returns a {tree.kind}", fn.filename, fn.lineno)


def seed_with_one(fn):
    """`grad` starts the pullback from 1.0: a constant the passes can fold away."""
    from .ir import Builder
    from .ir.nodes import substitute
    builder = Builder(fn.pullback)
    ones = {}
    for seed in fn.pullback.params:
        ones[seed] = builder.op("const", attrs={"value": 1.0}, hints=[seed.hint]).result
        fn.pullback.ops.insert(0, fn.pullback.ops.pop())
    substitute(fn.pullback, ones)


def _resolve(f):
    if isinstance(f, str):
        caller = inspect.currentframe().f_back.f_back
        return function_from_source(f, caller.f_globals if caller else None)
    if not callable(f):
        raise TypeError(f"diffsrc transforms functions, not {type(f).__name__}")
    return f


def _signature_names(fn):
    try:
        return list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return []


def _normalise_wrt(fn, wrt):
    names = _signature_names(fn)
    single = isinstance(wrt, (int, str))
    items = [wrt] if single else list(wrt)
    indices = []
    for item in items:
        if isinstance(item, str):
            if item not in names:
                raise ValueError(f"wrt={item!r}: {getattr(fn, '__name__', fn)} has no argument "
                                 f"named {item!r} (arguments: {', '.join(names)})")
            indices.append(names.index(item))
        elif isinstance(item, int) and not isinstance(item, bool):
            indices.append(item if item >= 0 else len(names) + item)
        else:
            raise TypeError(f"wrt must be an int, a str or a tuple of them, not {item!r}")
    return tuple(indices), single


def _bind(fn, args, kwargs):
    if not kwargs:
        return args
    sig = inspect.signature(fn)
    bound = sig.bind(*args, **kwargs)
    bound.apply_defaults()
    return tuple(bound.arguments.values())


def _check_differentiable(fn, args, wrt):
    names = _signature_names(fn)
    for i in wrt:
        if i >= len(args):
            raise ValueError(f"wrt={i} but only {len(args)} arguments were passed")
        tree = tree_of(args[i])
        if tree.kind == "static" or (tree.kind == "leaf" and not tree.differentiable_leaf()):
            label = names[i] if i < len(names) else f"#{i}"
            code = getattr(fn, "__code__", None)
            raise NonDifferentiableError(
                f"argument {label!r} is of type {type(args[i]).__name__}, which carries no "
                "gradient; "
                "differentiate with respect to float arguments or arrays",
                code.co_filename if code else None, code.co_firstlineno if code else None)


def _as_float_like(grad, arg):
    """Float arguments get float gradients, in containers too (CuPy gives 0-d arrays).
    (Gradient arrays are already the caller's own: passes/owned_outputs.py.)"""
    if isinstance(arg, float) and not isinstance(grad, float) and grad is not None:
        return float(grad)
    if isinstance(grad, (dict, list, tuple)) or hasattr(grad, "__dict__"):
        return _owned(grad, arg)
    return grad


def _owned(tree, like=None):
    """`tree` with its read-only arrays copied; where `like` (the argument) has a float
    leaf, a 0-d array gradient (CuPy's) becomes a float, as at the top level."""
    if isinstance(tree, np.ndarray):
        return tree if tree.flags.writeable else tree.copy()
    if isinstance(like, float) and getattr(tree, "ndim", None) == 0:
        return float(tree)
    if isinstance(tree, dict):
        get = like.get if isinstance(like, dict) else lambda k: None
        return {k: _owned(v, get(k)) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_owned(v, l) for v, l in zip(tree, _items(like, len(tree)))]
    if isinstance(tree, tuple):
        items = [_owned(v, l) for v, l in zip(tree, _items(like, len(tree)))]
        return type(tree)(*items) if hasattr(tree, "_fields") else tuple(items)
    return tree


def _items(like, n):
    return like if isinstance(like, (list, tuple)) and len(like) == n else [None] * n


def _closure_key(fn):
    """Closure cells are read when transforming: their current contents are part of the key."""
    cells = getattr(fn, "__closure__", None)
    if not cells:
        return ()
    key = []
    for cell in cells:
        try:
            value = cell.cell_contents
        except ValueError:
            key.append(None)
            continue
        key.append(value if isinstance(value, (int, float, str, bool, type(None))) else id(value))
    return tuple(key)


_SCALARS = (float, int, bool, np.float64, np.float32, np.float16, np.int64, np.int32)


def _fast_key(args):
    """A cheap cache key for arrays, scalars, and dicts/lists/tuples of them (else None)."""
    try:
        return tuple([(a.dtype, a.shape) if type(a) is np.ndarray else _kind(a)
                      for a in args])
    except _Unkeyed:
        return None


class _Unkeyed(Exception):
    """An argument the fast key does not describe: the full structure key is used."""


def _kind(a):
    t = type(a)
    if t is np.ndarray:
        return (a.dtype.num, a.shape)
    if t in _SCALARS:
        return t
    if t is dict:
        return (dict, tuple(a), tuple([_kind(v) for v in a.values()]))
    if t is list or t is tuple:
        return (t, tuple([_kind(v) for v in a]))
    if t.__module__.startswith("cupy"):
        return ("cupy", a.dtype.num, a.shape)
    raise _Unkeyed


SPECIALISED_SHAPES = 4   # per argument structure; further shapes share one general version


def _shapes_of(trees, args):
    """The shape and dtype of every array leaf: what specialised code is fixed to."""
    return tuple((leaf.shape, leaf.dtype.str) if hasattr(leaf, "shape") else type(leaf)
                 for tree, arg in zip(trees, args) for leaf in leaves_of(tree, arg))


def _known_scalar(fn):
    """Whether shape specialisation proved the (first) output a single number, so calls
    need not check it."""
    info = getattr(fn, "shape_info", {}).get(fn.body.ops[-1].args[0].id)
    return info is not None and (info.kind in ("scalar", "float") or (
        info.kind == "array" and int(np.prod(info.shape)) == 1))


def _returns_python_floats(compiled, args, wrt):
    """Whether the value and every gradient are Python floats by construction, so the
    results need no checking or conversion after the call."""
    fn = compiled.ir
    value = fn.body.ops[-1].args
    grads = fn.pullback.ops[-1].args
    return all(type(args[i]) is float for i in wrt) and \
        all(v.kind == "float" for v in list(value) + list(grads))


class GradientFunction:
    """What `ds.grad` and `ds.value_and_grad` return: a callable with a cache."""

    def __init__(self, fn, wrt=0, with_value=False, backend=None, has_aux=False):
        self.backend = backends.resolve(backend)     # None: follow the arguments
        self.has_aux = has_aux
        self.bound = ()
        if inspect.ismethod(fn):             # wrt counts the arguments after `self`
            self.bound = (fn.__self__,)
            fn = fn.__func__
        self.fn = fn
        self.wrt, self.single = _normalise_wrt(fn, wrt)
        if self.bound:
            self.wrt = tuple(i + 1 if isinstance(w, int) else i
                             for i, w in zip(self.wrt, wrt if not self.single else [wrt]))
        self.with_value = with_value
        self.cache = {}
        self.fast = {}
        self.by_types = {}                   # argument types -> compiled, for numbers only
        self.shapes_seen = {}                # argument structure -> shapes specialised for
        self.has_closure = bool(getattr(fn, "__closure__", None))
        self.last = None
        self.last_args = None
        self.__diffsrc_transform__ = self.compiled_for
        functools.update_wrapper(self, fn, updated=())   # never share the cache dicts

    def lookup(self, args):
        """The compiled gradient for these arguments, through the cheapest cache that fits."""
        key = None if self.has_closure else _fast_key(args)
        compiled = self.fast.get(key) if key is not None else None
        if compiled is None:
            compiled = self.compiled_for(args, specialize=True)
            if key is not None:
                self.fast[key] = compiled
                if all(type(a) in _SCALARS for a in args):
                    self.by_types[tuple(map(type, args))] = compiled
                if type(self) is GradientFunction and not self.bound and \
                        self.backend is None and all(map(_guardable, args)):
                    guarded = _guarded_call_class(self, compiled, args)
                    del self.last                 # the guarded class keeps it from now on
                    self.__class__ = guarded
        return compiled

    def compiled_for(self, args, optimize=True, specialize=False):
        """The compiled gradient for arguments like `args`.

        `specialize` fixes the code to their shapes and dtypes (calls do; transforming
        a gradient inside other code, with stand-in arguments, does not), for the first
        SPECIALISED_SHAPES shapes of each argument structure."""
        trees = tuple(map(tree_of, args))
        backend = self.backend or backends.detect(args, _signature_names(self.fn))
        key = (trees, optimize, _closure_key(self.fn), backend)
        shapes = None
        if specialize and optimize:
            shapes = _shapes_of(trees, args)
            seen = self.shapes_seen.setdefault(key, set())
            if shapes not in seen and len(seen) >= SPECIALISED_SHAPES:
                shapes = None
            elif shapes is not None:
                seen.add(shapes)
        key += (shapes,)
        compiled = self.cache.get(key)
        if compiled is None:
            _check_differentiable(self.fn, args, self.wrt)
            gkey = (self.fn, self.wrt, self.single, self.has_aux, key)
            compiled = _global_cache.get(gkey)
            if compiled is None:
                compiled = transform(self.fn, args, self.wrt, "grad", optimize,
                                     specialize=shapes is not None, backend=backend,
                                     has_aux=self.has_aux)
                compiled.plain_floats = _returns_python_floats(compiled, args, self.wrt) and (
                    self.single or len(self.wrt) > 1) and not self.has_aux
                compiled.output_count = len(compiled.ir.body.ops[-1].args)
                compiled.scalar_output = _known_scalar(compiled.ir)
                _global_cache[gkey] = compiled
            self.cache[key] = compiled
        if optimize and self.last is None:
            self.last, self.last_args = compiled, args
        return compiled

    def __call__(self, *args, **kwargs):
        if kwargs or self.bound:
            args = _bind(self.fn, self.bound + args, kwargs)
        if self.backend is not None:         # an explicit backend moves the arguments
            args = backends.to_device(args, self.backend.name)
        compiled = self.by_types.get(tuple(map(type, args))) if self.by_types else None
        if compiled is None:                 # (numbers: their types say all)
            compiled = self.fast.get(_fast_key(args)) or self.lookup(args)
        self.last, self.last_args = compiled, args
        try:
            value, grads = compiled.function(*args)
        except Exception as exc:
            compiled.annotate(exc)
            raise
        if compiled.plain_floats:
            return (value, grads) if self.with_value else grads
        if self.has_aux:
            loss, *aux = value if compiled.output_count > 1 else (value,)
            value = loss
        if not compiled.scalar_output:
            self.check_scalar(value)
        if self.single:
            if type(grads) is not float:
                grads = _as_float_like(grads, args[self.wrt[0]])
        elif len(self.wrt) == 1:
            grads = (_as_float_like(grads, args[self.wrt[0]]),)
        elif not all(type(g) is float for g in grads):
            grads = tuple(_as_float_like(g, args[i]) for g, i in zip(grads, self.wrt))
        if self.has_aux:
            tree = compiled.ir.out_tree.children[1]
            aux = _owned(aux[0] if tree.kind == "leaf" else build(tree, aux))
            return ((value, aux), grads) if self.with_value else (grads, aux)
        return (value, grads) if self.with_value else grads

    def check_scalar(self, value):
        """A loss must be one number; code that was not specialised cannot prove it."""
        if type(value) is not float and np.size(value) != 1:
            code = getattr(self.fn, "__code__", None) or self.fn.__call__.__code__
            raise NonScalarOutputError(
                f"grad needs a scalar output; {getattr(self.fn, '__name__', 'f')} returned shape "
                f"{np.shape(value)} (use ds.pullback or ds.jacobian)", code.co_filename,
                code.co_firstlineno)

    def __get__(self, obj, owner):
        if obj is None:
            return self
        return functools.partial(self.__call__, obj)


_NOTHING = object()


def _guardable(arg):
    """Whether inline tests of `arg`'s type (and an array's shape and dtype) tell the
    whole cache key: Python numbers, NumPy numbers, plain NumPy arrays, and dicts (with
    string keys), lists and tuples of them, such as a network's parameters."""
    t = type(arg)
    if t is dict:
        return all(type(k) is str for k in arg) and all(map(_guardable, arg.values()))
    if t is list or t is tuple:
        return all(map(_guardable, arg))
    return t in (float, int, bool) or t is np.ndarray or (
        isinstance(arg, (np.number, np.bool_)) and t.__module__ == "numpy")


def _guard(prefix, name, arg, namespace):
    """The inline test that argument `name` has exactly `arg`'s type, shape and dtype,
    and a container its keys or length and each item's (the types and dtypes it is
    compared with go into `namespace` as `prefix`_type...)."""
    t = type(arg)
    if t is dict or t is list or t is tuple:
        items = arg.items() if t is dict else enumerate(arg)
        tests = [f"type({name}) is {t.__name__}",
                 f"tuple({name}) == {tuple(arg)!r}" if t is dict else f"len({name}) == {len(arg)}"]
        return " and ".join(tests + [_guard(f"{prefix}_{i}", f"{name}[{key!r}]", item, namespace)
                                     for i, (key, item) in enumerate(items)])
    if t in (float, int, bool):
        return f"type({name}) is {t.__name__}"
    namespace[f"{prefix}_type"] = t
    if t is not np.ndarray:                  # a NumPy number: its type fixes its dtype
        return f"type({name}) is {prefix}_type"
    namespace[f"{prefix}_dtype"] = arg.dtype
    return (f"type({name}) is {prefix}_type and {name}.shape == {arg.shape!r} and "
            f"{name}.dtype is {prefix}_dtype")


# Operators whose result is a new object (ufuncs too): a returned auxiliary array they
# made is writeable and nobody else's, so it goes back to the caller as it is.
_FRESH_OPERATORS = {operator.add, operator.sub, operator.mul, operator.truediv,
                    operator.floordiv, operator.mod, operator.pow, operator.neg, operator.pos,
                    operator.matmul, abs}


def _made_fresh(block, value):
    op = next((op for op in block.ops if value in op.results), None)
    if op is None or op.opname != "call" or op.attrs.get("kwnames"):     # out=: not fresh
        return False
    return isinstance(op.attrs["fn"], np.ufunc) or op.attrs["fn"] in _FRESH_OPERATORS


def _finishing(gradient, compiled, args, names, namespace):
    """The statements that turn the generated code's results into what the call returns:
    GradientFunction.__call__'s checks and conversions, only those these results need."""
    call = f"_function({', '.join(names)})"
    errors = ["except Exception as _exc:", "    _compiled.annotate(_exc)", "    raise"]
    if compiled.plain_floats:
        return ["try:", f"    return {call}" + ("" if gradient.with_value else "[1]")] + errors
    fn = compiled.ir
    aux = [f"_aux_{k}" for k in range(compiled.output_count - 1)] if gradient.has_aux else []
    grads = [f"_grad_{k}" for k in range(len(gradient.wrt))]
    owned = []
    for grad, i, value in zip(grads, gradient.wrt, fn.pullback.ops[-1].args):
        if isinstance(args[i], float):        # np.float64 too, as in _as_float_like
            owned.append(grad if value.kind == "float" else f"_as_float_like({grad}, {names[i]})")
        elif any(isinstance(leaf, float) for leaf in leaves_of(tree_of(args[i]), args[i])):
            owned.append(f"_as_float_like({grad}, {names[i]})")    # float leaves in a container
        else:                                 # owned already (passes/owned_outputs.py)
            owned.append(grad)
    value_target = f"({', '.join(['_value'] + aux)})" if aux else "_value"
    grads_target = grads[0] if len(grads) == 1 else f"({', '.join(grads)})"
    lines = ["try:", f"    {value_target}, {grads_target} = {call}"] + errors
    if not compiled.scalar_output:
        lines.append("self.check_scalar(_value)")
    result = owned[0] if gradient.single else f"({', '.join(owned)},)"
    if gradient.has_aux:
        tree = fn.out_tree.children[1]
        namespace["_aux_tree"] = tree
        if tree.kind == "leaf":
            aux_value = "_aux_0" if _made_fresh(fn.body, fn.body.ops[-1].args[1]) else \
                "_owned(_aux_0)"
        else:
            aux_value = f"_owned(_build(_aux_tree, ({''.join(f'{a}, ' for a in aux)})))"
        return lines + [f"return (_value, {aux_value}), {result}" if gradient.with_value
                        else f"return {result}, {aux_value}"]
    return lines + [f"return _value, {result}" if gradient.with_value else f"return {result}"]


def _plain_parameters(fn, count):
    """The names of `fn`'s parameters when it takes exactly `count` of them, each by
    position or keyword and without a default (else None): the guarded __call__ then
    takes them by the same names (its own names start with "_"), so keyword calls bind
    as they would on `fn`."""
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    if len(parameters) != count or any(
            p.kind is not p.POSITIONAL_OR_KEYWORD or p.default is not p.empty or
            p.name.startswith("_") or p.name == "self" or hasattr(builtins, p.name)
            for p in parameters):
        return None
    return [p.name for p in parameters]


def _guarded_call_class(gradient, compiled, args):
    """A GradientFunction subclass whose __call__ runs `compiled` straight away for
    arguments with exactly the types, shapes and dtypes of `args` (tested inline), and
    takes the general path for anything else: a loop calling the gradient with the same
    kinds of arguments then pays little more than the maths."""
    names = _plain_parameters(gradient.fn, len(args))
    last = [compiled]                      # `last`, where a call updates it cheaply
    namespace = {"_compiled": compiled, "_function": compiled.function, "_NOTHING": _NOTHING,
                 "_GradientFunction": GradientFunction, "_as_float_like": _as_float_like,
                 "_owned": _owned, "_build": build, "_last": last}
    if names is not None:
        signature, only, general = ", ".join(names), "", ", ".join(names)
    else:                                  # anything else goes to the general path as given
        names = [f"a{i}" for i in range(len(args))]
        signature = ", ".join(f"{n}=_NOTHING" for n in names) + ", /, *rest, **kwargs"
        only = " and not rest and not kwargs"
        general = "*(a for a in (" + "".join(f"{n}, " for n in names) + \
            ") if a is not _NOTHING), *rest, **kwargs"
    guards = " and ".join(_guard(f"_{n}", n, a, namespace) for n, a in zip(names, args))
    body = "".join(f"        {line}\n" for line in _finishing(gradient, compiled, args, names,
                                                                namespace))
    source = (f"def __call__(self, {signature}):\n"
              f"    if {guards}{only}:\n"
              "        _last[0] = _compiled\n"
              f"{body}"
              f"    return _GradientFunction.__call__(self, {general})\n")
    exec(compile(source, "<diffsrc guarded call>", "exec"), namespace)
    return type("GradientFunction", (GradientFunction,), {
        "__call__": namespace["__call__"], "__module__": __name__,
        "last": property(lambda self: last[0], lambda self, used: last.__setitem__(0, used))})


def grad(f=None, wrt=0, backend=None, has_aux=False):
    """The gradient of scalar function `f` with respect to argument(s) `wrt`.

    Usable as `ds.grad(f)`, `@ds.grad`, `@ds.grad(wrt=(0, 1))` or on source text.
    The code runs on the arguments' device (NumPy or CuPy arrays); `backend="numpy"`,
    `"cupy"` or a `diffsrc.backends.Backend` fixes it and moves the arguments there.
    has_aux=True: f returns (loss, aux) and the call returns (gradient, aux).
    Returned gradient arrays are new arrays, never an argument or another result
    (d/da sum(a * b) comes back as a copy of b): updating it in place is safe.
    """
    if f is None:
        return lambda g: GradientFunction(g, wrt, backend=backend, has_aux=has_aux)
    return GradientFunction(_resolve(f), wrt, backend=backend, has_aux=has_aux)


def value_and_grad(f=None, wrt=0, backend=None, has_aux=False):
    """Like grad, but returns (f(*args), gradient).

    has_aux=True: f returns (loss, aux), the gradient is the loss's, and the call
    returns ((loss, aux), gradient): predictions or statistics computed on the way
    come back without a second forward pass."""
    if f is None:
        return lambda g: GradientFunction(g, wrt, with_value=True, backend=backend,
                                          has_aux=has_aux)
    return GradientFunction(_resolve(f), wrt, with_value=True, backend=backend,
                            has_aux=has_aux)


_pullback_cache = {}


def adjoint(fn):
    """Register the reverse rule of `fn` (any callable, with or without Python source).

        @ds.adjoint(scipy.special.erf)
        def _(y_bar, y, x):
            return (y_bar * 2 / np.sqrt(np.pi) * np.exp(-x * x),)

    The rule receives the output adjoint, the output and the call's arguments and
    returns a tuple with one adjoint per leading positional argument (None where an
    argument gets none). It is read and inlined like user code, so it may use NumPy,
    branches and helper functions, and stays differentiable for higher orders.
    """
    def register(template):
        if not callable(template):
            raise TypeError("@ds.adjoint decorates the rule function")
        registry.register(fn, adjoint=template)
        _global_cache.clear()
        _pullback_cache.clear()
        return template
    return register


def pullback(f, *args, **kwargs):
    """(f(*args), back) where back(y_bar) gives the adjoint of every positional argument."""
    f = _resolve(f)
    args = _bind(f, args, kwargs)
    trees = tuple(map(tree_of, args))
    wrt = tuple(i for i, t in enumerate(trees) if t.kind != "static" and not (
        t.kind == "leaf" and not t.differentiable_leaf()))
    backend = backends.detect(args, _signature_names(f))
    key = (f, trees, backend)
    compiled = _pullback_cache.get(key)
    if compiled is None:
        compiled = _pullback_cache[key] = transform(f, args, wrt, "pullback", backend=backend)
    out_tree = compiled.ir.out_tree
    try:
        y, back = compiled.function(*args)
    except Exception as exc:
        compiled.annotate(exc)
        raise
    single = out_tree.kind == "leaf"
    if not single:
        y = build(out_tree, y if len(out_tree.leaf_paths()) != 1 else (y,))

    def back_all(y_bar):
        seeds = (y_bar,) if single else leaves_of(out_tree, y_bar)
        try:
            adjoints = back(*seeds)
        except Exception as exc:
            compiled.annotate(exc)
            raise
        out = [None] * len(args)
        for i, a in zip(wrt, adjoints):
            out[i] = _as_float_like(a, args[i])
        return tuple(out)

    back_all.__diffsrc_source__ = compiled.source
    return y, back_all


def source(df, optimize=True, annotate=False, kernels=False):
    """The generated Python source of a derivative (or of any diffsrc-built function).

    `optimize=False` gives the code generated without the optimisation passes;
    `annotate=True` ends each generated line that comes from a line of the user's
    function with a `# from file.py:LINE` comment. Code compiled for CuPy starts with
    a `# backend:` line; `kernels=True` appends the CUDA source of its fused kernels
    (as comments, so the text stays valid Python).
    """
    if isinstance(df, GradientFunction):
        compiled = df.last if df.last is not None and optimize else \
            df.compiled_for(_example_args(df.fn), optimize)
    elif getattr(df, "__diffsrc_source__", None) is not None:
        text = df.__diffsrc_source__
        compiled = next((c for c in list(_pullback_cache.values()) + list(
            _global_cache.values()) if c.source == text), None)
        if compiled is None:
            return text
    else:
        compiled = transform(_resolve(df), _example_args(df), (), "primal", optimize)
    text = compiled.source
    if annotate:
        from .export import annotate_source
        text = annotate_source(compiled.source, compiled.line_locs)
    if compiled.backend.name != "numpy":
        text = f"# backend: {compiled.backend.describe()}\n" + text
    if kernels:
        text += _kernel_listing(compiled)
    return text


def _kernel_listing(compiled):
    """The CUDA text of a compiled function's fused kernels, as comment lines."""
    functions = list(compiled.fusion.made.values()) if compiled.fusion is not None else []
    if not functions:
        return f"\n# no fused kernels (backend: {compiled.backend.describe()})\n"
    lines = ["", "# ---- fused kernels ----"]
    for function in functions:
        for text in function.sources():
            lines += ["#"] + ["# " + line if line else "#" for line in text.splitlines()]
    return "\n".join(lines) + "\n"


def ir(f, *args):
    """The SSA IR of `f` (or of a derivative) as text, with numbered values."""
    if isinstance(f, GradientFunction):
        compiled = f.last if f.last is not None and not args else f.compiled_for(
            args or _example_args(f.fn))
        return format_function(compiled.ir)
    if hasattr(f, "__diffsrc_compiled__"):       # jvp, hvp, hessian, jacobian
        return format_function(f.__diffsrc_compiled__(*args).ir)
    f = _resolve(f)
    function = lower_function(f, args or _example_args(f))
    verify(function)
    return format_function(function)


class _AnyArray(np.ndarray):
    """Stands for an argument of unknown value when transforming without a call."""


def _example_args(fn):
    names = _signature_names(fn)
    parsed = parse_function(fn)
    count = len(parsed.node.args.args) + len(parsed.node.args.posonlyargs)
    return tuple(np.zeros(()).view(_AnyArray) for _ in range(min(len(names) or count, count)))
