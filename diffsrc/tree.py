"""Parameter trees: nested containers whose leaves are arrays or numbers.

Model parameters, gradients and optimizer state are all *trees*: dicts, lists,
tuples (plain or named) and dataclass instances nested in any way.
``diffsrc.grad`` returns gradients with the structure of its arguments, so one
small set of structure-preserving functions serves optimizers, checkpoints and
tests alike.

Rules:

* ``None`` is an empty subtree (it holds no leaves), so optional entries
  survive every function here.
* Any other object that is not a dict, list, tuple or dataclass instance is a
  leaf.
* Dicts keep their key order; dict subclasses come back as plain ``dict``.
* A dataclass node's children are its ``init=True`` fields; it is rebuilt by
  calling the class with those fields as keywords.
* Nothing here mutates its inputs: every result is a new tree.
"""
import dataclasses
import json
import math
import sys
import zipfile
from urllib.parse import quote

import numpy as np

__all__ = [
    "TreeDef", "tree_map", "tree_leaves", "tree_flatten", "tree_unflatten",
    "tree_paths", "tree_zeros_like", "tree_count", "tree_add", "tree_sub",
    "tree_scale", "global_norm", "tree_allclose", "save", "load", "to_device",
]


class TreeDef:
    """The structure of a tree without its leaves; what tree_unflatten needs.

    ``kind`` is one of "leaf", "none", "dict", "list", "tuple", "namedtuple",
    "dataclass"; ``meta`` holds the dict keys, the namedtuple class, or the
    dataclass ``(class, field names)``; ``children`` are TreeDefs.
    """

    __slots__ = ("kind", "meta", "children")

    def __init__(self, kind, meta, children):
        self.kind = kind
        self.meta = meta
        self.children = tuple(children)

    @property
    def num_leaves(self):
        if self.kind == "leaf":
            return 1
        return sum(child.num_leaves for child in self.children)

    def keys(self):
        """The key of each child: dict keys, list indices or field names."""
        if self.kind == "dict":
            return self.meta
        if self.kind == "namedtuple":
            return self.meta._fields
        if self.kind == "dataclass":
            return self.meta[1]
        return tuple(range(len(self.children)))

    def __eq__(self, other):
        return (isinstance(other, TreeDef) and self.kind == other.kind
                and self.meta == other.meta and self.children == other.children)

    def __hash__(self):
        return hash((self.kind, self.meta, self.children))

    def __repr__(self):
        if self.kind in ("leaf", "none"):
            return "*" if self.kind == "leaf" else "None"
        inner = ", ".join(f"{k!r}: {c!r}" for k, c in zip(self.keys(), self.children))
        if self.kind == "dict":
            return "{" + inner + "}"
        if self.kind == "list":
            return "[" + ", ".join(repr(c) for c in self.children) + "]"
        if self.kind == "tuple":
            return "(" + ", ".join(repr(c) for c in self.children) + ",)"
        return f"{_record_class(self.kind, self.meta).__name__}({inner})"


def _node(x):
    """Split a container into (kind, meta, keys, children); None for a leaf."""
    if x is None:
        return "none", None, (), ()
    if isinstance(x, dict):
        keys = tuple(x)
        return "dict", keys, keys, tuple(x[k] for k in keys)
    if isinstance(x, tuple):
        if hasattr(type(x), "_fields"):
            return "namedtuple", type(x), type(x)._fields, tuple(x)
        return "tuple", None, tuple(range(len(x))), x
    if isinstance(x, list):
        return "list", None, tuple(range(len(x))), tuple(x)
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        names = tuple(f.name for f in dataclasses.fields(x) if f.init)
        return "dataclass", (type(x), names), names, tuple(getattr(x, n) for n in names)
    return None


def _build(kind, meta, children):
    if kind == "none":
        return None
    if kind == "dict":
        return dict(zip(meta, children))
    if kind == "list":
        return list(children)
    if kind == "tuple":
        return tuple(children)
    if kind == "namedtuple":
        return meta(*children)
    cls, names = meta
    return cls(**dict(zip(names, children)))


def _where(path):
    return "/".join(str(k) for k in path) or "<root>"


def _record_class(kind, meta):
    """The class of a namedtuple or dataclass node, else None."""
    if kind == "namedtuple":
        return meta
    if kind == "dataclass":
        return meta[0]
    return None


def _describe(kind, meta):
    cls = _record_class(kind, meta)
    return kind if cls is None else f"{kind} {cls.__name__}"


def _match(node, other, index, path):
    """Children of tree number `index` in the order of `node`, or a clear error."""
    kind, meta, keys, children = node
    onode = _node(other)
    if onode is None:
        raise TypeError(f"tree {index} has a leaf at {_where(path)} where tree 0 "
                        f"has a {_describe(kind, meta)}")
    okind, ometa, _, ochildren = onode
    if okind != kind or _record_class(okind, ometa) is not _record_class(kind, meta):
        raise TypeError(f"tree {index} has a {_describe(okind, ometa)} at {_where(path)} "
                        f"where tree 0 has a {_describe(kind, meta)}")
    if kind == "dict":
        if set(ometa) != set(meta):
            missing = [k for k in meta if k not in other]
            extra = [k for k in ometa if k not in meta]
            raise ValueError(f"dict keys differ at {_where(path)}: tree {index} lacks "
                             f"{missing} and has extra {extra}")
        return tuple(other[k] for k in keys)
    if len(ochildren) != len(children):
        raise ValueError(f"tree {index} has {len(ochildren)} children at {_where(path)} "
                         f"where tree 0 has {len(children)}")
    return ochildren


def _map(fn, x, rest, path):
    node = _node(x)
    if node is None:
        for i, r in enumerate(rest, start=1):
            rnode = _node(r)
            if rnode is not None:
                raise TypeError(f"tree {i} has a {_describe(rnode[0], rnode[1])} at "
                                f"{_where(path)} where tree 0 has a leaf")
        return fn(x, *rest)
    kind, meta, keys, children = node
    rest_children = [_match(node, r, i, path) for i, r in enumerate(rest, start=1)]
    new = [_map(fn, child, tuple(rc[j] for rc in rest_children), path + (key,))
           for j, (key, child) in enumerate(zip(keys, children))]
    return _build(kind, meta, new)


def tree_map(fn, tree, *rest):
    """Apply fn leaf-wise; with several trees, fn gets one leaf from each.

    All trees must have the structure of the first (dict keys may come in any
    order; the result follows the first tree). A mismatch raises TypeError
    (different container kinds) or ValueError (different keys or lengths),
    naming the path where it occurs.
    """
    return _map(fn, tree, rest, ())


def tree_flatten(tree):
    """Return (leaves, treedef): the leaves in a fixed order and the structure."""
    leaves = []

    def walk(x):
        node = _node(x)
        if node is None:
            leaves.append(x)
            return TreeDef("leaf", None, ())
        kind, meta, _, children = node
        return TreeDef(kind, meta, [walk(c) for c in children])

    treedef = walk(tree)
    return leaves, treedef


def tree_unflatten(treedef, leaves):
    """Inverse of tree_flatten: put `leaves` (in order) into `treedef`."""
    leaves = list(leaves)
    if len(leaves) != treedef.num_leaves:
        raise ValueError(f"structure has {treedef.num_leaves} leaves but "
                         f"{len(leaves)} were given")
    it = iter(leaves)

    def build(td):
        if td.kind == "leaf":
            return next(it)
        return _build(td.kind, td.meta, [build(c) for c in td.children])

    return build(treedef)


def tree_leaves(tree):
    """The leaves of a tree, in tree_flatten order."""
    return tree_flatten(tree)[0]


def _leaf_keys(treedef, path=()):
    if treedef.kind == "leaf":
        return [path]
    out = []
    for key, child in zip(treedef.keys(), treedef.children):
        out.extend(_leaf_keys(child, path + (key,)))
    return out


def tree_paths(tree):
    """A readable path per leaf, e.g. "layers/0/W", in tree_flatten order."""
    return ["/".join(str(k) for k in p) for p in _leaf_keys(tree_flatten(tree)[1])]


def tree_zeros_like(tree):
    """Zeros with each leaf's shape and dtype (Python numbers give 0 of their type)."""
    def zero(x):
        if isinstance(x, (bool, int, float, complex)):
            return type(x)(0)
        if isinstance(x, np.generic):
            return x.dtype.type(0)
        return np.zeros_like(x)
    return tree_map(zero, tree)


def tree_count(tree):
    """Number of scalar parameters: the total size of all leaves."""
    return sum(int(np.size(x)) for x in tree_leaves(tree))


def tree_add(a, b):
    """Leaf-wise a + b."""
    return tree_map(lambda x, y: x + y, a, b)


def tree_sub(a, b):
    """Leaf-wise a - b."""
    return tree_map(lambda x, y: x - y, a, b)


def tree_scale(tree, s):
    """Every leaf multiplied by the scalar s."""
    return tree_map(lambda x: x * s, tree)


def global_norm(tree):
    """The 2-norm of all leaves taken together as one vector (a Python float).

    Squares are summed in float64 so float32 trees with many parameters do not
    lose precision.
    """
    total = 0.0
    for x in tree_leaves(tree):
        total += float(np.sum(np.square(np.abs(x), dtype=np.float64)))
    return math.sqrt(total)


def tree_allclose(a, b, rtol=1e-5, atol=1e-8):
    """True when a and b have one structure and leaf-wise equal shapes and close values."""
    la, ta = tree_flatten(a)
    lb, tb = tree_flatten(b)
    if ta != tb:
        return False
    return all(np.shape(x) == np.shape(y) and np.allclose(x, y, rtol=rtol, atol=atol)
               for x, y in zip(la, lb))


# ---------------------------------------------------------------- save / load
#
# File layout: an ordinary .npz (zip of .npy files, no pickles). Each leaf is
# stored under its path with every segment percent-encoded ("layers/0/W"); the
# entry "%structure" holds a UTF-8 JSON record of the structure and the Python
# type of each leaf, as a uint8 array. In quoted names "%" is always followed
# by two hex digits (or nothing, for an empty key), so the record's name
# cannot clash with a leaf's.

_RECORD = "%structure"
_FORMAT = 1


def _leaf_name(path):
    return "/".join(quote(str(k), safe="") or "%" for k in path) or "%"


def _encode_leaf(leaf, where):
    for kind in (bool, int, float, complex):
        if type(leaf) is kind:
            return kind.__name__, np.asarray(leaf)
    if isinstance(leaf, np.generic):
        arr = np.asarray(leaf)
        kind = "scalar"
    elif isinstance(leaf, np.ndarray):
        arr = leaf
        kind = "array"
    else:
        raise TypeError(f"cannot save leaf of type {type(leaf).__name__} at {where}: "
                        "leaves must be numpy arrays, numpy scalars or Python numbers")
    if arr.dtype.hasobject:
        raise TypeError(f"cannot save object array at {where} without pickle")
    return kind, arr


def _decode_leaf(kind, arr):
    if kind == "array":
        return arr
    if kind == "scalar":
        return arr[()]
    return {"bool": bool, "int": int, "float": float, "complex": complex}[kind](arr)


def _class_ref(cls):
    return [cls.__module__, cls.__qualname__]


def _key_to_json(key):
    if type(key) is str:
        return ["s", key]
    if type(key) is int:
        return ["i", key]
    raise TypeError(f"cannot save dict key {key!r} of type {type(key).__name__}: "
                    "only str and int keys are supported")


def _to_json(td):
    out = {"t": td.kind}
    if td.kind == "dict":
        out["k"] = [_key_to_json(k) for k in td.meta]
    elif td.kind == "namedtuple":
        out["cls"] = _class_ref(td.meta)
    elif td.kind == "dataclass":
        out["cls"] = _class_ref(td.meta[0])
        out["f"] = list(td.meta[1])
    if td.kind not in ("leaf", "none"):
        out["c"] = [_to_json(c) for c in td.children]
    return out


def _resolve_class(ref):
    """Find an already-imported dataclass or namedtuple class; never imports."""
    module_name, qualname = ref
    obj = sys.modules.get(module_name)
    if obj is None or "<locals>" in qualname:
        raise ValueError(f"cannot find class {module_name}.{qualname}; import it "
                         "first or pass like= a tree with the same structure")
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    is_record = isinstance(obj, type) and (dataclasses.is_dataclass(obj) or (
        issubclass(obj, tuple) and hasattr(obj, "_fields")))
    if not is_record:
        raise ValueError(f"{module_name}.{qualname} is not a dataclass or namedtuple")
    return obj


def _from_json(rec):
    kind = rec["t"]
    children = [_from_json(c) for c in rec.get("c", ())]
    if kind == "dict":
        meta = tuple(k if t == "s" else int(k) for t, k in rec["k"])
    elif kind == "namedtuple":
        meta = _resolve_class(rec["cls"])
    elif kind == "dataclass":
        meta = (_resolve_class(rec["cls"]), tuple(rec["f"]))
    elif kind in ("leaf", "none", "list", "tuple"):
        meta = None
    else:
        raise ValueError(f"unknown node kind {kind!r} in tree file")
    return TreeDef(kind, meta, children)


def save(path, tree):
    """Write a tree to `path` (exactly that name) as a pickle-free .npz file."""
    leaves, treedef = tree_flatten(tree)
    keys = _leaf_keys(treedef)
    names = [_leaf_name(k) for k in keys]
    if len(set(names)) != len(names):
        raise ValueError("two leaves map to the same stored name (e.g. dict keys 0 "
                         "and '0' in one dict); rename one of them")
    entries = []
    kinds = []
    for name, key, leaf in zip(names, keys, leaves):
        kind, arr = _encode_leaf(leaf, _where(key))
        kinds.append(kind)
        entries.append((name, arr))
    record = {"format": _FORMAT, "structure": _to_json(treedef), "leaves": kinds}
    blob = np.frombuffer(json.dumps(record).encode("utf-8"), dtype=np.uint8)
    entries.append((_RECORD, blob))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, arr in entries:
            with zf.open(name + ".npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, arr, allow_pickle=False)


def load(path, like=None):
    """Read a tree written by save.

    Dataclass and namedtuple classes are looked up by module and name among
    modules already imported (nothing is imported or executed). For classes
    defined inside functions, pass ``like=``: a tree of the same structure
    whose classes are used instead; a structure mismatch raises ValueError.
    """
    with np.load(path, allow_pickle=False) as data:
        if _RECORD not in data.files:
            raise ValueError(f"{path} was not written by diffsrc.tree.save")
        record = json.loads(data[_RECORD].tobytes().decode("utf-8"))
        if record.get("format") != _FORMAT:
            raise ValueError(f"unsupported tree file format {record.get('format')!r}")
        if like is None:
            treedef = _from_json(record["structure"])
        else:
            treedef = tree_flatten(like)[1]
            if _to_json(treedef) != record["structure"]:
                raise ValueError("the structure stored in the file differs from `like`")
        names = [_leaf_name(k) for k in _leaf_keys(treedef)]
        leaves = [_decode_leaf(kind, data[name]) for name, kind in zip(names, record["leaves"])]
    return tree_unflatten(treedef, leaves)


def to_device(tree, device):
    """A copy of ``tree`` with every array moved to ``device``: "gpu" (CuPy) or "cpu".

    Initialisers and data loaders make NumPy arrays; this puts a model's parameters,
    optimizer state or a batch on the GPU (and back), keeping the structure."""
    from .backends import to_device as move
    return move(tree, device)
