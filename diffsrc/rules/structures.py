"""Containers built at run time: tuples, lists and dicts, item access and update."""
import operator

import numpy as np

from .registry import adjoint_rule, linear, register
from .. import runtime


def make_tuple(*items):
    return items


def make_list(*items):
    return list(items)


def make_dict(keys, *values):
    return dict(zip(keys, values))


def list_append(items, item):
    """`items.append(item)` as a value: a new list (the old one may still be read)."""
    return items + [item]


def concatenate_sequences(first, second):
    """`first + second` for lists or tuples known only at run time."""
    return first + second


register(concatenate_sequences)
register(make_tuple, result_kind="tuple")
register(make_list, result_kind="list")
register(make_dict, result_kind="dict")
register(list_append, result_kind="list")
register(runtime.index_update)
register(runtime.unindex)
register(runtime.zeros_like)
register(runtime.accumulate)
def _lower_with_fields(low, args, kwargs):
    """`with_fields(obj, w=...)` in generated code read again (ds.hvp, grad of grad of a
    dataclass or namedtuple argument): the structure with those fields replaced."""
    from ..frontend.abstract import ObjS
    obj = args[0]
    if isinstance(obj, ObjS):
        for name, value in kwargs.items():
            obj = obj.set(name, value)
        return obj
    values = [low.value(a) for a in args] + [low.value(v) for v in kwargs.values()]
    return low.b.call(runtime.with_fields, values, kwnames=tuple(kwargs))


register(runtime.with_fields, meta={"lower": _lower_with_fields})


def _lower_unbroadcast(low, args, kwargs):
    """Python floats never broadcast: for them `unbroadcast(g, x)` is just `g`."""
    g, x = args
    if _is_python_float(x) and (_is_python_float(g) or _is_number(g)):
        return g
    return low.b.call(runtime.unbroadcast, [low.value(g), low.value(x)])


def _is_python_float(a):
    return getattr(a, "kind", None) in ("float", "int") or _is_number(a)


def _is_number(a):
    return isinstance(getattr(a, "value", None), (int, float)) and not hasattr(a, "id")


register(runtime.unbroadcast, meta={"lower": _lower_unbroadcast})
register(runtime.raise_error, effect=True)
register(runtime.fresh_tape, nondiff=True)
register(slice, foldable=True, nondiff=True)


@adjoint_rule(make_tuple, make_list)
def make_sequence_adjoint(y_bar, y, *items):
    return y_bar


@adjoint_rule(make_dict)
def make_dict_adjoint(y_bar, y, keys, *values):
    return (None,) + tuple(y_bar[k] for k in keys)


@adjoint_rule(list_append)
def list_append_adjoint(y_bar, y, items, item):
    return y_bar[:-1], y_bar[-1]


@adjoint_rule(concatenate_sequences)
def concatenate_sequences_adjoint(y_bar, y, first, second):
    return y_bar[:len(first)], y_bar[len(first):]


@adjoint_rule(operator.getitem)
def getitem_adjoint(y_bar, y, x, index):
    return (runtime.unindex(y_bar, x, index),)


@adjoint_rule(runtime.index_update)
def index_update_adjoint(y_bar, y, x, index, v):
    """v's adjoint is read (as a copy) before the slot is zeroed, so both may share y_bar;
    with a repeated integer index only the write NumPy keeps (the last) gets it."""
    v_bar = runtime.unbroadcast(np.copy(y_bar[index]) * runtime.last_write_mask(y_bar, index), v)
    return (runtime.index_update(y_bar, index, 0.0), None, v_bar)


register(runtime.add_into)
register(runtime.last_write_mask, nondiff=True)


@adjoint_rule(runtime.add_into)
def add_into_adjoint(y_bar, y, acc, index, g):
    """add_into(acc, index, g) is acc + unindex(g, acc, index), read back from generated code."""
    return y_bar, None, runtime.unbroadcast(y_bar[index], g)


@adjoint_rule(runtime.accumulate)
def accumulate_adjoint(y_bar, y, a, b):
    return y_bar, y_bar


# ------------------------------------------------------------------------ tangent rules
# Building, reading and updating containers is linear in the values they hold.
linear(make_tuple, make_list, positions=None)
linear(make_dict, positions=None, first=1)
linear(list_append, runtime.accumulate, concatenate_sequences, positions=(0, 1))
linear(runtime.index_update, runtime.add_into, positions=(0, 2))
linear(runtime.unbroadcast)
