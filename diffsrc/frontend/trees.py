"""Structure of arguments and results: which parts are arrays, which are containers.

A Tree describes one Python value: containers (tuple, list, dict, dataclass or
plain object) become nodes, numbers and arrays become leaves (runtime values
in the IR), and everything else (None, strings, functions, modules) is a
static part that the transform may fold. Trees are hashable: they are part of
the cache key of a transformed function.
"""
import dataclasses
import types
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tree:
    kind: str                       # leaf | static | tuple | list | dict | object
    children: tuple = ()
    keys: tuple = ()                # dict keys or attribute names
    cls: object = None              # class of an object node
    static: object = None           # the value of a static node (or its id if unhashable)
    leaf: tuple = ()                # (kind, dtype, ndim) of a leaf: kind in float|int|array|other

    @property
    def is_leaf(self):
        return self.kind == "leaf"

    def leaf_paths(self, prefix=()):
        """Access paths of the runtime leaves, in order: [(("key", "W1"),), ...]."""
        if self.kind == "leaf":
            return [prefix]
        step = {"tuple": "index", "list": "index", "dict": "key", "object": "attr"}.get(self.kind)
        paths = []
        for key, child in zip(self.keys, self.children):
            paths.extend(child.leaf_paths(prefix + ((step, key),)))
        return paths

    def differentiable_leaf(self):
        return self.kind == "leaf" and self.leaf[0] in ("float", "array", "complex") and (
            self.leaf[0] != "array" or np.dtype(self.leaf[1]).kind in "fc")


STATIC_TYPES = (type(None), str, bytes, types.FunctionType, types.BuiltinFunctionType,
                types.ModuleType, type, types.MethodType, np.dtype, slice, type(Ellipsis))


def _static(value):
    try:
        hash(value)
        return Tree("static", static=value)
    except TypeError:
        return Tree("static", static=("id", id(value)))


def tree_of(value):
    """The Tree of a runtime value."""
    if isinstance(value, bool):
        return Tree("leaf", leaf=("int", "bool", 0))
    if isinstance(value, int):
        return Tree("leaf", leaf=("int", "int", 0))
    if isinstance(value, float):
        return Tree("leaf", leaf=("float", "float64", 0))
    if isinstance(value, complex):
        return Tree("leaf", leaf=("complex", "complex128", 0))
    if hasattr(value, "shape") and hasattr(value, "dtype"):   # numpy / cupy arrays and scalars
        kind = "array"
        if value.dtype.kind in "iub":
            return Tree("leaf", leaf=("int", value.dtype.str, value.ndim))
        return Tree("leaf", leaf=(kind, value.dtype.str, value.ndim, type(value).__module__))
    if isinstance(value, tuple) and hasattr(value, "_fields"):       # a namedtuple
        return Tree("object", tuple(tree_of(v) for v in value), tuple(value._fields),
                    cls=type(value))
    if isinstance(value, tuple):
        return Tree("tuple", tuple(tree_of(v) for v in value), tuple(range(len(value))))
    if isinstance(value, list):
        return Tree("list", tuple(tree_of(v) for v in value), tuple(range(len(value))))
    if isinstance(value, dict):
        keys = tuple(value)
        return Tree("dict", tuple(tree_of(value[k]) for k in keys), keys)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = tuple(f.name for f in dataclasses.fields(value))
        return Tree("object", tuple(tree_of(getattr(value, n)) for n in names), names,
                    cls=type(value))
    if isinstance(value, STATIC_TYPES) or callable(value):
        return _static(value)
    if hasattr(value, "__dict__") and not isinstance(value, type):
        names = tuple(vars(value))
        return Tree("object", tuple(tree_of(getattr(value, n)) for n in names), names,
                    cls=type(value))
    return _static(value)


def leaves_of(tree, value):
    """The runtime leaves of `value`, in the order of tree.leaf_paths()."""
    if tree.kind == "leaf":
        return [value]
    if tree.kind == "static":
        return []
    out = []
    for key, child in zip(tree.keys, tree.children):
        part = getattr(value, key) if tree.kind == "object" else value[key]
        out.extend(leaves_of(child, part))
    return out


def build(tree, leaves):
    """The value with structure `tree` whose run-time leaves are `leaves` (in order)."""
    leaves = iter(leaves)

    def make(node):
        if node.kind == "leaf":
            return next(leaves)
        if node.kind == "static":
            return node.static
        parts = [make(child) for child in node.children]
        if node.kind == "tuple":
            return tuple(parts)
        if node.kind == "list":
            return parts
        if node.kind == "dict":
            return dict(zip(node.keys, parts))
        if issubclass(node.cls, tuple):
            return node.cls(*parts)
        obj = node.cls.__new__(node.cls)
        for key, part in zip(node.keys, parts):
            object.__setattr__(obj, key, part)
        return obj
    return make(tree)
