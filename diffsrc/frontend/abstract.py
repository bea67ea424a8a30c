"""Compile-time values the lowering tracks for every Python variable.

A variable holds either an IR `Value` (a number or array known only at run
time) or one of the compile-time values below. Tuples, lists, dicts and user
objects whose layout is known while transforming are kept as structures of
their parts, so `params['W1']` or `p.x` is simply the part's IR value: no
container exists in the generated code unless one has to (partial evaluation
of Python structure, as JAX does by tracing, but done on the source).
"""
from dataclasses import dataclass, field

from ..ir import Value


@dataclass(frozen=True)
class Static:
    """A value known at transform time: a module, function, class, literal."""
    value: object
    name: str = field(default="", compare=False)   # the variable it was read from


@dataclass(frozen=True)
class TupleS:
    items: tuple


@dataclass(frozen=True)
class ListS:
    items: tuple


@dataclass(frozen=True)
class DictS:
    keys: tuple
    values: tuple

    def get(self, key):
        for k, v in zip(self.keys, self.values):
            if k == key and type(k) is type(key):
                return v
        raise KeyError(key)

    def set(self, key, value):
        if key in self.keys:
            return DictS(self.keys, tuple(value if k == key else v
                                          for k, v in zip(self.keys, self.values)))
        return DictS(self.keys + (key,), self.values + (value,))


@dataclass(frozen=True)
class ObjS:
    """An instance of a user class (dataclass or plain) with its fields."""
    cls: type
    names: tuple
    values: tuple

    def get(self, name):
        return self.values[self.names.index(name)]

    def set(self, name, value):
        if name in self.names:
            return ObjS(self.cls, self.names, tuple(value if n == name else v
                                                    for n, v in zip(self.names, self.values)))
        return ObjS(self.cls, self.names + (name,), self.values + (value,))


@dataclass(frozen=True, eq=False)
class FuncS:
    """A function defined inside the code being lowered (nested def or lambda)."""
    parsed: object          # ParsedFunction
    frame: object           # the enclosing frame, read at call time (late binding)
    defaults: tuple
    kw_defaults: tuple


@dataclass(frozen=True, eq=False)
class BoundS:
    """A method bound to a compile-time receiver: `p.norm`, `params.get`."""
    func: object
    receiver: object
    name: str = ""


@dataclass(frozen=True, eq=False)
class MethodRef:
    """`x.sum` on a run-time value, before it is called."""
    receiver: Value
    name: str


@dataclass(frozen=True)
class RangeS:
    start: object
    stop: object
    step: object


@dataclass(frozen=True)
class ZipS:
    parts: tuple


@dataclass(frozen=True)
class EnumerateS:
    part: object
    start: object


class _Undefined:
    def __repr__(self):
        return "UNDEFINED"


UNDEFINED = _Undefined()


def is_structure(a):
    return isinstance(a, (TupleS, ListS, DictS, ObjS))


def children(a):
    if isinstance(a, (TupleS, ListS)):
        return a.items
    if isinstance(a, (DictS, ObjS)):
        return a.values
    return ()


def rebuild(a, parts):
    parts = tuple(parts)
    if isinstance(a, TupleS):
        return TupleS(parts)
    if isinstance(a, ListS):
        return ListS(parts)
    if isinstance(a, DictS):
        return DictS(a.keys, parts)
    if isinstance(a, ObjS):
        return ObjS(a.cls, a.names, parts)
    raise TypeError(a)


def same_shape(a, b):
    """Whether two structures have the same containers (keys, lengths, classes)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, DictS):
        return a.keys == b.keys
    if isinstance(a, ObjS):
        return a.cls is b.cls and a.names == b.names
    return len(a.items) == len(b.items)
