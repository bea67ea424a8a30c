"""Shipping derivative code: standalone modules (`ds.export`) and line annotations.

`export` writes the derivative diffsrc generated into a Python module that
needs nothing but NumPy: the generated function, verbatim, next to the source of
every runtime helper it calls (copied from `diffsrc.runtime`), and a small
wrapper with the calling convention of `ds.grad` (or `ds.value_and_grad`).
Anything the generated code reads that has no source form (an array captured
from a global or a closure, a function of the user's that runs at run time)
makes export fail with an `ExportError` that names the value and the user's
line, rather than writing a module that would not run.
"""
import builtins
import dis
import importlib
import inspect
import math
import os
import re
import types

import numpy as np

from .errors import DiffsrcError

__all__ = ["export", "ExportError", "annotate_source", "compiled_of", "module_source"]

#: modules whose functions generated code calls by name; their source is copied on export
HELPER_MODULES = ("diffsrc.runtime", "diffsrc.rules.structures")


class ExportError(DiffsrcError):
    """The generated derivative reads something that a standalone module cannot contain."""


# --------------------------------------------------------------------- annotations
def annotate_source(source, line_locs, column=None):
    """`source` with `# from file.py:LINE` after each line that came from a user line.

    `line_locs` maps 1-based generated line numbers to the user's Location
    (`Compiled.line_locs`). The comments are aligned one column past the longest
    annotated line (at most column 80 unless `column` says otherwise).
    """
    lines = source.splitlines()
    marked = {i for i in line_locs if 1 <= i <= len(lines)}
    if not marked:
        return source
    if column is None:
        column = min(max(len(lines[i - 1]) for i in marked) + 2, 80)
    out = []
    for i, line in enumerate(lines, 1):
        loc = line_locs.get(i)
        if loc is not None and loc.filename:
            note = f"# from {os.path.basename(loc.filename)}:{loc.lineno}"
            line = f"{line.ljust(column - 1)} {note}" if len(line) < column - 1 else \
                f"{line}  {note}"
        out.append(line)
    return "\n".join(out) + ("\n" if source.endswith("\n") else "")


# ------------------------------------------------------------------------- export
def compiled_of(df, args=None, optimize=True):
    """The `Compiled` derivative behind `df` (what `ds.grad` returned).

    With `args`, the derivative specialised for those arguments; without, the
    one of the last call, or (never called) one made for placeholder arrays,
    like `ds.source` does.
    """
    from . import api
    if isinstance(df, api.Compiled):
        return df
    if not isinstance(df, api.GradientFunction):
        raise TypeError("ds.export takes a derivative made by ds.grad or ds.value_and_grad, "
                        f"not {type(df).__name__}")
    if args is not None:
        args = tuple(args) if isinstance(args, (tuple, list)) else (args,)
        return df.compiled_for(df.bound + args, optimize)
    if df.last_args is not None:        # the general code for those arguments: an exported
        return df.compiled_for(df.last_args, optimize)   # module may meet any shape
    return df.compiled_for(api._example_args(df.fn), optimize)


def export(df, path=None, *, args=None, name=None, annotate=False):
    """Write the derivative `df` as a standalone Python module; return its text.

        df = ds.grad(loss, wrt=("W", "b"))
        df(W, b, x, y)                    # (optional) specialise for real arguments
        ds.export(df, "dloss.py")         # then: from dloss import loss_grad

    The module imports only NumPy (and `math` where the code uses it). It holds
    the generated function verbatim (as `_<name>`), the source of every runtime
    helper it calls, and `<name>` (default: the generated name, `loss_grad`),
    which returns what `df` returns: the gradient(s), or `(value, gradient)`
    for `ds.value_and_grad`.

    The code is specialised, like every diffsrc derivative, for the kinds of
    arguments it was made for (floats or arrays, containers, dtypes, ranks):
    those of `args` if given, else of `df`'s last call, else placeholder arrays
    (the header records which). `annotate=True` adds `# from file.py:LINE`
    comments. Raises ExportError when the code reads a value that has no source
    form (an array captured from a global or closure: pass it as an argument).
    """
    from . import api
    compiled = compiled_of(df, args)
    gradient = df if isinstance(df, api.GradientFunction) else None
    text = module_source(compiled, gradient, name=name, annotate=annotate)
    if path is not None:
        with open(os.fspath(path), "w", encoding="utf-8") as out:
            out.write(text)
    return text


def module_source(compiled, gradient=None, name=None, annotate=False):
    """The text of the standalone module for one `Compiled` derivative."""
    fname = compiled.function.__name__
    raw = "_" + fname
    public = name or (fname if gradient is None or not gradient.with_value
                      else fname[:-len("_grad")] + "_value_and_grad"
                      if fname.endswith("_grad") else fname + "_value_and_grad")
    if not public.isidentifier():
        raise ValueError(f"name={public!r} is not a Python identifier")
    body = compiled.source
    if annotate:
        body = annotate_source(body, compiled.line_locs)
    first, rest = body.split("\n", 1)
    if not first.startswith(f"def {fname}("):
        raise ExportError(f"unexpected generated code: {first!r}")
    body = f"def {raw}(" + first[len(f"def {fname}("):] + "\n" + rest

    namespace = compiled.function.__globals__
    used = _global_names(compile(compiled.source, "<export>", "exec"))
    helpers, aliases = [], []
    for gname in sorted(used):
        if gname in (fname, "np", "math") or gname not in namespace:
            continue
        obj = namespace[gname]
        kind = _classify(gname, obj)
        if kind == "helper":
            helpers.append(obj)
        elif kind is not None:
            aliases.append(f"{gname} = {kind}")
        else:
            raise _constant_error(compiled, gname, obj)
    helper_sources = _helper_sources(helpers)

    wrapper = _wrapper(compiled, gradient, raw, public)
    uses_math = "math." in body or any("math." in s for s in helper_sources)
    header = _header(compiled, gradient, public)
    imports = ("import math\n" if uses_math else "") + "import numpy as np\n"
    preamble = "\n".join([header, imports + "".join(a + "\n" for a in aliases),
                          f'__all__ = ["{public}"]\n'])
    parts = [preamble]
    parts.extend(helper_sources)
    parts.append(body)
    parts.append(wrapper)
    text = "\n\n".join(p.rstrip("\n") + "\n" for p in parts)
    _check_standalone(text, compiled)
    return text


def _wrapper(compiled, gradient, raw, public):
    """The public function: the conventions of ds.grad applied to the raw result."""
    params = _raw_params(compiled)
    wrt = list(gradient.wrt) if gradient is not None else list(compiled.ir.wrt or ())
    single = gradient.single if gradient is not None else len(wrt) == 1
    with_value = gradient.with_value if gradient is not None else False
    trees = compiled.ir.in_trees
    names = params.split(", ") if params else []

    def convert(expr, i):
        tree = trees[i] if i < len(trees) else None
        if tree is not None and tree.kind == "leaf" and tree.leaf[0] == "float":
            return f"_as_float({expr})"
        return f"_owned({expr})"

    lines = [f"def {public}({params}):"]
    what = "(value, gradient)" if with_value else "the gradient"
    wrt_names = ", ".join(names[i] if i < len(names) else f"#{i}" for i in wrt)
    lines.append(f'    """{what.capitalize() if not with_value else what} of '
                 f'{compiled.ir.name} with respect to {wrt_names}, as diffsrc returns it."""')
    lines.append(f"    value, grads = {raw}({params})")
    lines.append("    if np.ndim(value) != 0:")
    lines.append(f'        raise ValueError("{compiled.ir.name} must return a scalar, not shape "'
                 ' + str(np.shape(value)))')
    if single or len(wrt) == 1:
        out = convert("grads", wrt[0]) if wrt else "grads"
        if not single:
            out = f"({out},)"
    else:
        out = "(" + ", ".join(convert(f"grads[{k}]", i) for k, i in enumerate(wrt)) + ")"
    lines.append(f"    return {'value, ' if with_value else ''}{out}")
    support = '''def _as_float(g):
    return float(g) if g is not None and not isinstance(g, float) else g


def _owned(g):
    """Gradients are the caller's own arrays: read-only views are copied."""
    if isinstance(g, np.ndarray):
        return g if g.flags.writeable else g.copy()
    if isinstance(g, dict):
        return {k: _owned(v) for k, v in g.items()}
    if isinstance(g, (list, tuple)) and not hasattr(g, "_fields"):
        return type(g)(_owned(v) for v in g)
    return g
'''
    return support + "\n\n" + "\n".join(lines) + "\n"


def _raw_params(compiled):
    first = compiled.source.split("\n", 1)[0]
    return first[first.index("(") + 1:first.rindex(")")]


def _header(compiled, gradient, public):
    from . import __version__
    ir = compiled.ir
    where = _display_path(ir.filename)
    names = _raw_params(compiled).split(", ")
    wrt = list(gradient.wrt) if gradient is not None else list(ir.wrt or ())
    wrt_text = ", ".join(names[i] if i < len(names) else f"#{i}" for i in wrt)
    kinds = [f"#   {n}: {_describe_tree(t)}" for n, t in zip(names, ir.in_trees)]
    lines = [
        f"# Generated by diffsrc {__version__} from `{ir.name}` in {where}, line {ir.lineno}.",
        f"# `{public}` returns the {'value and ' if gradient is not None and gradient.with_value else ''}"
        f"gradient of {ir.name} with respect to {wrt_text}.",
        "# Specialised, like every diffsrc derivative, for these kinds of arguments:",
        *kinds,
        "# Standalone: needs only NumPy. Regenerate it (ds.export or `diffsrc export`)",
        "# rather than editing it.",
    ]
    doc = (f'"""Derivative of {ir.name} ({os.path.basename(ir.filename)}:{ir.lineno}), '
           f'generated by diffsrc {__version__}."""')
    return "\n".join(lines) + "\n" + doc + "\n"


def _display_path(filename):
    if not filename or filename.startswith("<"):
        return filename or "<unknown>"
    try:
        rel = os.path.relpath(filename)
    except ValueError:
        return filename
    return rel if not rel.startswith("..") else filename


def _describe_tree(tree):
    if tree.kind == "leaf":
        kind, dtype = tree.leaf[0], tree.leaf[1]
        if kind == "float":
            return "float"
        if kind == "int" and dtype in ("int", "bool"):
            return dtype
        placeholder = len(tree.leaf) > 3 and tree.leaf[3] == "diffsrc.api"
        if placeholder:
            return f"{np.dtype(dtype).name} array (any shape)"
        return f"{np.dtype(dtype).name} array, {tree.leaf[2]}-d"
    if tree.kind == "static":
        return "static " + type(tree.static).__name__
    inner = ", ".join(f"{k!r}: {_describe_tree(c)}" if tree.kind == "dict" else
                      f"{k}={_describe_tree(c)}" if tree.kind == "object" else
                      _describe_tree(c) for k, c in zip(tree.keys, tree.children))
    if tree.kind == "tuple":
        return f"({inner})"
    if tree.kind == "list":
        return f"[{inner}]"
    if tree.kind == "dict":
        return "{" + inner + "}"
    return f"{getattr(tree.cls, '__name__', 'object')}({inner})"


def _global_names(code):
    """Names that `code` (and the functions nested in it) read as globals."""
    names = set()
    for instr in dis.get_instructions(code):
        if instr.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
            names.add(instr.argval)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def _classify(name, obj):
    """'helper', a source expression naming `obj`, or None (no source form)."""
    module = getattr(obj, "__module__", None)
    if inspect.isfunction(obj) and module in HELPER_MODULES and \
            getattr(importlib.import_module(module), obj.__name__, None) is obj:
        return "helper"
    if obj is np:
        return "np"
    if obj is math:
        return "math"
    if inspect.ismodule(obj):
        if obj.__name__.startswith("numpy."):
            return "np." + obj.__name__[len("numpy."):]
        return None
    path = _numpy_path(obj)
    if path is not None:
        return path
    if getattr(math, getattr(obj, "__name__", ""), None) is obj:
        return f"math.{obj.__name__}"
    if getattr(builtins, getattr(obj, "__name__", ""), None) is obj:
        return obj.__name__
    if isinstance(obj, np.generic) and obj.dtype.kind in "biufc":
        text = repr(obj)
        try:
            if eval(text, {"np": np}) == obj:       # noqa: S307 (our own repr)
                return text
        except Exception:
            return None
    return None


def _numpy_path(obj):
    """`np.linalg.norm` for numpy.linalg.norm, if that is where `obj` lives."""
    name = getattr(obj, "__name__", None)
    if not name or isinstance(obj, (np.ndarray, np.generic)):
        return None
    candidates = [getattr(obj, "__module__", None) or "", "numpy", "numpy.linalg", "numpy.fft",
                  "numpy.random", "numpy.lib.stride_tricks"]
    for module_name in candidates:
        if not module_name.startswith("numpy"):
            continue
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if getattr(module, name, None) is obj:
            public = module_name.replace("numpy._core", "numpy").replace("numpy.core", "numpy")
            try:
                target = importlib.import_module(public)
            except ImportError:
                continue
            if getattr(target, name, None) is obj:
                return "np" + public[len("numpy"):] + "." + name
    return None


def _helper_sources(helpers):
    """Source of the helpers and of every helper they call, in their module's order."""
    wanted, todo = {}, list(helpers)
    while todo:
        fn = todo.pop()
        key = (fn.__module__, fn.__name__)
        if key in wanted:
            continue
        wanted[key] = fn
        module = importlib.import_module(fn.__module__)
        for gname in _global_names(fn.__code__):
            dep = vars(module).get(gname)
            if dep is None or dep is np or hasattr(builtins, gname) and \
                    getattr(builtins, gname) is dep:
                continue
            if inspect.isfunction(dep) and dep.__module__ == fn.__module__:
                todo.append(dep)
            elif not inspect.ismodule(dep) or dep.__name__ not in ("numpy", "math"):
                raise ExportError(f"runtime helper {fn.__name__} reads {gname}, which "
                                  "diffsrc cannot copy into a standalone module")

    def order(fn):
        return (fn.__module__, fn.__code__.co_firstlineno)
    return [inspect.getsource(fn) for fn in sorted(wanted.values(), key=order)]


def _uses(compiled, name):
    """User locations of the generated lines that read `name`."""
    pattern = re.compile(rf"(?<![\w.]){re.escape(name)}\b")
    locs = []
    for i, line in enumerate(compiled.source.splitlines(), 1):
        if pattern.search(line):
            loc = compiled.line_locs.get(i)
            if loc is not None and loc not in locs:
                locs.append(loc)
    return locs


def _constant_error(compiled, name, obj):
    from . import api
    fn = compiled.ir.name
    if obj is getattr(api, "pullback", None):
        what = ("ds.pullback, to differentiate a call diffsrc could not inline (a recursive "
                "function), which a standalone module cannot do")
    elif isinstance(obj, np.ndarray):
        what = (f"`{name}`, an array of shape {obj.shape} and dtype {obj.dtype} that {fn} "
                "reads from a global or a closure")
    elif callable(obj):
        qual = getattr(obj, "__qualname__", None) or type(obj).__name__
        what = (f"`{name}`, the callable {getattr(obj, '__module__', '?')}.{qual}, which "
                "only its own module can provide")
    else:
        what = (f"`{name}`, a {type(obj).__name__} that {fn} reads from a global or a "
                "closure")
    locs = _uses(compiled, name)
    loc = locs[0] if locs else None
    return ExportError(
        f"cannot export the derivative of {fn}: the generated code uses {what}; it has no "
        "source form. Pass it to the function as an argument (or make it a literal "
        "constant) and export again",
        loc.filename if loc else compiled.ir.filename, loc.lineno if loc else compiled.ir.lineno)


def _check_standalone(text, compiled):
    """Every name the module reads must be defined in it or be a builtin."""
    code = compile(text, "<exported>", "exec")
    defined = set(dir(builtins))
    for instr in dis.get_instructions(code):
        if instr.opname in ("STORE_NAME", "IMPORT_NAME"):
            defined.add(instr.argval.split(".")[0])
    missing = sorted(_global_names(code) - defined)
    if missing:
        raise ExportError(f"internal error: the exported derivative of {compiled.ir.name} "
                          f"would read undefined names {missing}", compiled.ir.filename,
                          compiled.ir.lineno)
