"""Lowering hooks (`Primitive.meta["lower"]`) for NumPy calls with a special shape.

A rule receives adjoints only for leading *positional* arguments, so a
differentiable input passed by keyword (`np.average(a, weights=w)`,
`np.clip(x, a_min=lo)`) is moved to its positional slot while lowering. Calls
whose result is a sequence of known length (`np.split(x, 3)`,
`np.atleast_2d(a, b)`) become compile-time lists/tuples of their parts, so they
unpack, index and loop like any Python sequence.
"""
import operator

from ..frontend.abstract import ListS, Static, TupleS
from . import registry

_MISSING = object()


def _emit(low, fn, args, kwargs, kind=None):
    entry = registry.lookup(fn)
    values = [low.value(a) for a in args] + [low.value(v) for v in kwargs.values()]
    return low.b.call(fn, values, kwnames=tuple(kwargs),
                      kind=kind or (entry.result_kind if entry is not None else None))


def positional(fn, params, aliases=None):
    """Hook: keyword arguments named in `params` (name -> default, in order) go positional.

    Gaps before a moved argument are filled with the parameter's default. `aliases`
    maps another keyword (NumPy 2's `min=`) to the parameter it stands for.
    """
    names = list(params)
    aliases = aliases or {}

    def lower(low, args, kwargs):
        args, kwargs = list(args), dict(kwargs)
        for alias, target in aliases.items():
            if alias in kwargs and target not in kwargs:
                kwargs[target] = kwargs.pop(alias)
        last = max([names.index(k) for k in kwargs if k in names] + [-1])
        for i in range(len(args), last + 1):
            name = names[i]
            if name in kwargs:
                args.append(kwargs.pop(name))
            else:
                args.append(Static(params[name]))
        return _emit(low, fn, args, kwargs)
    return lower


def sequence_of_parts(fn, count, kind="list"):
    """Hook: a call returning a list/tuple whose length `count(args, kwargs)` knows statically.

    The call stays one call (kind "list"/"tuple", so adjoints accumulate as
    sequences); its parts become separate values of a compile-time ListS/TupleS.
    When the length is not known at transform time it stays a run-time sequence.
    """
    def lower(low, args, kwargs):
        n = count(args, kwargs)
        whole = _emit(low, fn, args, kwargs, kind=kind)
        if n is None:
            return whole
        parts = tuple(low.b.call(operator.getitem, [whole, low.b.const(i)]) for i in range(n))
        return ListS(parts) if kind == "list" else TupleS(parts)
    return lower


def each_argument(fn):
    """Hook: `f(a, b, c)` -> `(f(a), f(b), f(c))` for NumPy's `atleast_*d` family."""
    def lower(low, args, kwargs):
        if len(args) == 1:
            return _emit(low, fn, args, kwargs)
        return TupleS(tuple(_emit(low, fn, [a], kwargs) for a in args))
    return lower


def static_value(a, default=_MISSING):
    """The Python value of a compile-time argument, or `default` when it is a run-time one."""
    if isinstance(a, Static):
        return a.value
    if isinstance(a, (TupleS, ListS)):
        items = [static_value(x, _MISSING) for x in a.items]
        if any(x is _MISSING for x in items):
            return default
        return tuple(items) if isinstance(a, TupleS) else list(items)
    return default


MISSING = _MISSING


def is_none(x):
    """In a rule template: is `x` the constant None? Decided while transforming.

    `x is None` on a run-time value would become a run-time branch in the generated
    code; this folds to True for a None constant and to False for anything else
    (a run-time value, which diffsrc takes to be an actual array or number).
    """
    return x is None


def _is_none_lower(low, args, kwargs):
    a = args[0]
    return Static(isinstance(a, Static) and a.value is None)


registry.register(is_none).meta["lower"] = _is_none_lower


def is_true(x):
    """In a rule template: is `x` the constant True (a default like `where=True`)?
    Decided while transforming; a run-time value counts as not True."""
    return x is True


def _is_true_lower(low, args, kwargs):
    a = args[0]
    return Static(isinstance(a, Static) and a.value is True)


registry.register(is_true).meta["lower"] = _is_true_lower
