"""Shape and dtype inference: what every array in a function looks like, for given arguments.

The IR is written for any argument shapes; calls like `unbroadcast(g, x)` decide
at run time whether anything needs summing. Once the argument shapes are known,
most of those questions have one answer, and `specialize` can answer them at
transform time. This module finds the answers.

Each value gets an `Info`: an array of known shape and dtype, a NumPy scalar, a
Python number of unknown value, or an *exact* constant (shapes, axis tuples,
folded numbers). A primitive is evaluated on stand-ins (zero-stride arrays of the
right shape and dtype) only when its output shape cannot depend on the values:
elementwise operations, reductions, shape manipulation, matrix products and the
runtime helpers that undo them. Everything else (random draws, boolean masks,
`nonzero`, sizes computed from data, recursion) is unknown, and code that reads
it stays general.
"""
from dataclasses import dataclass
import operator
import warnings

import numpy as np

from ..frontend.trees import leaves_of
from ..ir.nodes import walk_ops
from ..rules import registry
from ..rules.registry import Method
from ..rules.structures import list_append, make_tuple
from .. import runtime

UNROLLED_TRIPS = 16      # shorter range loops are followed trip by trip
SAFE_FAMILIES = {"elementwise", "reductions", "shape", "linalg", "creation"}
ARITHMETIC = {operator.add, operator.sub, operator.mul, operator.truediv, operator.floordiv,
              operator.mod, operator.pow, operator.neg, operator.pos, operator.matmul,
              operator.lt, operator.le, operator.gt, operator.ge, operator.eq, operator.ne,
              operator.and_, operator.or_, operator.xor, operator.invert, abs, pow,
              np.where, np.matmul, np.dot, np.einsum, np.tensordot, np.outer, np.inner}
SAME_AS = {runtime.unindex: 1, runtime.index_update: 0, runtime.add_into: 0,
           runtime.zeros_like: 0}
DATA_DEPENDENT = {np.nonzero, np.flatnonzero, np.argwhere, np.unique, np.compress, np.extract,
                  np.repeat, np.trim_zeros, np.bincount, np.histogram, np.resize,
                  np.real_if_close, Method("nonzero"), Method("repeat")}
QUERIES = {np.shape: lambda x: np.shape(x), np.ndim: np.ndim, np.size: np.size, len: len,
           Method("shape", attribute=True): lambda x: x.shape,
           Method("ndim", attribute=True): lambda x: x.ndim,
           Method("size", attribute=True): lambda x: x.size,
           Method("dtype", attribute=True): lambda x: x.dtype, np.result_type: np.result_type}


@dataclass(frozen=True)
class Info:
    """What is known of a value at transform time.

    kind: "array" (shape, dtype), "scalar" (a NumPy scalar of dtype), "float"/"int"/"bool"
    (a Python number of unknown value), "tuple" (value: the Infos of its items, some not
    exact: an index like `[:, t]` in a loop), "list" (value: (Info of every item, length or
    None): a list built in a loop) or "exact" (value is the value itself).
    """
    kind: str
    shape: tuple = ()
    dtype: object = None
    value: object = None

    def standin(self):
        """An object that behaves like the value as far as shapes and dtypes go."""
        if self.kind == "array":
            if self.value is not None:             # a constant array: its own values
                return self.value.array
            return np.broadcast_to(np.zeros((), self.dtype), self.shape)
        if self.kind == "scalar":
            return self.dtype.type(0)
        if self.kind == "tuple":
            return tuple(i.standin() for i in self.value)
        if self.kind == "list":
            item, length = self.value
            if length is None or (length and item is None):
                raise ValueError("a list of unknown length or items")
            return [item.standin() for _ in range(length)]
        return {"float": 0.0, "int": 0, "bool": False}.get(self.kind, self.value)


def describe(value, exact=False):
    """The Info of a run-time value (an argument leaf, or a result computed on stand-ins)."""
    if type(value) is np.ndarray:
        return Info("array", value.shape, value.dtype)
    if isinstance(value, np.generic):
        return Info("scalar", (), value.dtype)
    if type(value) is list and not exact:
        items = [describe(v) for v in value]
        if all(i is not None and i == items[0] for i in items):
            return Info("list", value=(items[0] if items else None, len(items)))
        return None
    if exact:
        return Info("exact", value=value)
    for kind in (bool, int, float):
        if type(value) is kind:
            return Info(kind.__name__)
    return None


# Pure functions of constants that the registry does not mark foldable (they also take
# arrays), evaluated when every argument is exact: `x.shape[1]`, `len(shape)`.
FOLDABLE = {operator.getitem, len, tuple, max, min, abs, int, float, make_tuple}


def _is_safe(fn):
    if fn in DATA_DEPENDENT:
        return False
    if fn in ARITHMETIC or fn in QUERIES:
        return True
    if getattr(fn, "__module__", None) == runtime.__name__:
        return True          # adjoint helpers: results shaped like a primal or an adjoint
    entry = registry.lookup(fn)
    return entry is not None and not entry.effect and entry.meta.get("family") in SAFE_FAMILIES


def _apply(fn, args, kwnames):
    split = len(args) - len(kwnames)
    positional, keywords = args[:split], dict(zip(kwnames, args[split:]))
    if isinstance(fn, Method):
        target = getattr(positional[0], fn.name)
        return target if fn.attribute else target(*positional[1:], **keywords)
    return fn(*positional, **keywords)


class ShapeInference:
    def __init__(self):
        self.info = {}            # value id -> Info (absent: unknown)
        self.pushed = {}          # stack value id -> Infos of what each push stored

    def get(self, v):
        return self.info.get(v.id)

    def set(self, v, info):
        if info is None:
            self.info.pop(v.id, None)
        else:
            self.info[v.id] = info

    def call(self, op):
        fn = op.attrs["fn"]
        infos = [self.get(a) for a in op.args]
        if fn in SAME_AS:                  # whatever the index or the update holds
            return [infos[SAME_AS[fn]]]
        if any(i is None for i in infos):
            return [None] * len(op.results)
        if fn is make_tuple and not all(i.kind == "exact" for i in infos):
            return [Info("tuple", value=tuple(infos))]
        if any(i.kind == "list" for i in infos):
            return [_list_call(fn, infos)] if len(op.results) == 1 else [None] * len(op.results)
        entry = registry.lookup(fn)
        exact = all(i.kind == "exact" for i in infos) and (
            fn in FOLDABLE or entry is not None and entry.foldable and not entry.effect)
        if not exact and not _safe_call(fn, infos):
            return [None] * len(op.results)
        return evaluate(fn, infos, op.attrs.get("kwnames", ()), len(op.results),
                        exact or fn in QUERIES)

    def block(self, block):
        for op in block.ops:
            self.op(op)

    def region(self, region, params):
        for p, info in zip(region.params, params):
            self.set(p, info)
        self.block(region)
        return [self.get(a) for a in region.ops[-1].args] if region.ops else []

    def op(self, op):
        name = op.opname
        if name == "const":
            value = op.attrs["value"]
            if type(value) is list and not value:      # a list to be filled in a loop
                self.set(op.result, Info("list", value=(None, 0)))
            elif isinstance(value, np.ndarray):   # permutations, indices: values matter
                self.set(op.result, Info("array", value.shape, value.dtype, _Constant(value)))
            else:
                self.set(op.result, describe(value, exact=True))
        elif name == "call":
            for r, info in zip(op.results, self.call(op)):
                self.set(r, info)
        elif name == "if":
            branches = [self.region(region, []) for region in op.regions]
            for k, r in enumerate(op.results):
                self.set(r, _merge(*(b[k] if k < len(b) else None for b in branches)))
        elif name in ("for", "while"):
            self.loop(op)
        elif name == "stack":
            self.pushed[op.result.id] = []
        elif name == "push":
            self.pushed.setdefault(op.args[0].id, []).append([self.get(a) for a in op.args[1:]])
        elif name == "pop":
            pushes = self.pushed.get(op.args[0].id) or [[None] * len(op.results)]
            for k, r in enumerate(op.results):
                self.set(r, _merge(*(p[k] for p in pushes)))
        elif not (name == "unpack" and all(r.id in self.info for r in op.results)):
            for r in op.results:         # inner structures, recursion: unknown
                self.set(r, None)

    def loop(self, op):
        body = op.regions[-1]
        if op.opname == "for":
            over = op.attrs.get("over")
            inits = op.args[3:] if over == "range" else op.args[1:]
            first = [Info("int")] if over == "range" else [_item(self.get(op.args[0]))]
        else:
            inits, first = op.args, []
        carried = [self.get(a) for a in inits]
        trips = self.trip_values(op)
        if trips is not None and len(trips) <= UNROLLED_TRIPS:
            return self.each_trip(op, body, trips, carried)
        growth = self.list_growth(op, body, first, carried)
        carried = [_list_of(c, None) if k in growth else c for k, c in enumerate(carried)]
        for _ in range(4):               # shapes that change from one iteration to the next
            if op.opname == "while":     # become unknown; stable ones are a fixpoint
                self.region(op.regions[0], carried)
            out = self.region(body, first + carried)
            merged = [_merge(c, o) for c, o in zip(carried, out)]
            if merged == carried:
                break
            carried = merged
        else:
            carried = [None] * len(carried)
            self.region(body, first + carried)
        for k, (start, per_trip) in growth.items():
            if carried[k] is not None and carried[k].kind == "list":
                carried[k] = _list_of(carried[k], start + per_trip * growth.trips)
        for r, info in zip(op.results, carried):
            self.set(r, info)

    def trip_values(self, op):
        """The loop counter's values, when a range loop's bounds are constants."""
        if op.opname != "for" or op.attrs.get("over") != "range":
            return None
        bounds = [self.get(a) for a in op.args[:3]]
        if not all(b is not None and b.kind == "exact" for b in bounds):
            return None
        return range(*(b.value for b in bounds))

    def each_trip(self, op, body, trips, carried):
        """A short loop followed trip by trip, its counter a constant each time: slices
        like x[:, i:i + h] then have known shapes. What holds on every trip is kept."""
        seen = {}
        for counter in trips:
            carried = self.region(body, [Info("exact", value=counter)] + carried)
            for inner in walk_ops(body):
                for r in inner.results:
                    seen.setdefault(r.id, []).append(self.get(r))
        for value_id, infos in seen.items():
            merged = _merge(*infos)
            if merged is None:
                self.info.pop(value_id, None)
            else:
                self.info[value_id] = merged
        for r, info in zip(op.results, carried):
            self.set(r, info)

    def list_growth(self, op, body, first, carried):
        """Lists the loop body lengthens by a fixed count per trip, when the trip count
        is known (`for t in range(50): hs = hs + [h]`): {position: (start, per trip)}."""
        growth = _Growth()
        trips = self.trip_values(op)
        if trips is None:
            return growth
        growth.trips = len(trips)
        lists = [k for k, c in enumerate(carried) if c is not None and c.kind == "list" and
                 c.value[1] is not None]
        if not lists:
            return growth
        out = self.region(body, first + carried)
        for k in lists:
            after = out[k]
            if after is not None and after.kind == "list" and after.value[1] is not None:
                growth[k] = (carried[k].value[1], after.value[1] - carried[k].value[1])
        return growth


def evaluate(fn, infos, kwnames, count, exact):
    """The Infos of the `count` results of `fn` applied to values described by `infos`."""
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            result = _apply(fn, [i.standin() for i in infos], kwnames)
    except Exception:
        return [None] * count
    if count == 1:
        return [describe(result, exact)]
    if isinstance(result, tuple) and len(result) == count:
        return [describe(r, exact) for r in result]
    return [None] * count


def _safe_call(fn, infos):
    """Whether evaluating `fn` on stand-ins gives the true shape and dtype."""
    if fn is operator.getitem:
        index = infos[1]
        parts = index.value if index.kind == "tuple" else (index,)
        return all(_shape_safe_index(p) for p in parts)
    if not _is_safe(fn):
        return False
    if is_elementwise(fn):
        return True
    # Elsewhere an integer of unknown value may be a size, a count or an axis (np.zeros(n),
    # np.tile(x, reps), np.diag(x, k)): only data (arrays, floats) may be unknown.
    entry = registry.lookup(fn)
    sizes = entry is not None and entry.meta.get("family") in ("shape", "creation")
    return all(i.kind in ("exact", "list", "float") or (
        i.kind in ("array", "scalar") and (i.dtype.kind not in "iub" or (
            i.shape and not (sizes and k > 0)))) for k, i in enumerate(infos))


def is_elementwise(fn):
    """Whether `fn` maps broadcast arguments entry by entry."""
    if fn in ARITHMETIC and fn not in (operator.matmul, np.matmul, np.dot, np.einsum,
                                       np.tensordot, np.outer, np.inner):
        return True
    entry = registry.lookup(fn)
    return fn is runtime.winner_share or (entry is not None and
                                          entry.meta.get("family") == "elementwise")


def _shape_safe_index(info):
    """An index part whose value cannot change the result's shape: a constant, an integer
    (a loop counter), or an integer array (its shape decides). Not a boolean mask."""
    if info.kind == "exact":
        value = info.value
        parts = value if isinstance(value, tuple) else (value,)
        return not any(isinstance(p, np.ndarray) and p.dtype.kind == "b" for p in parts)
    return info.kind == "int" or (info.kind in ("array", "scalar") and info.dtype.kind in "iu")


def _item(info):
    if info is not None and info.kind == "array" and info.shape:
        return Info("array", info.shape[1:], info.dtype)
    return None


def _merge(*infos):
    """The Info that holds on every path, if they agree (lists: their items agree)."""
    if all(i == infos[0] for i in infos[1:]):
        return infos[0]
    if all(i is not None and i.kind == "list" for i in infos):
        items = {i.value[0] for i in infos if i.value[0] is not None}
        lengths = {i.value[1] for i in infos}
        if len(items) <= 1:
            return Info("list", value=(next(iter(items), None),
                                       lengths.pop() if len(lengths) == 1 else None))
    return None


class _Constant:
    """A constant array inside an Info, compared by identity."""
    def __init__(self, array):
        self.array = array


class _Growth(dict):
    trips = None


def _list_of(info, length):
    return Info("list", value=(info.value[0], length))


def _list_call(fn, infos):
    """List operations on lists whose items are alike: concatenation, indexing, len."""
    lists = [i for i in infos if i.kind == "list"]
    items = {i.value[0] for i in lists if i.value[0] is not None}
    if len(items) > 1:
        return None
    item = next(iter(items), None)
    if fn in (operator.add, list_append):
        if fn is list_append:
            if item is not None and infos[1] != item:
                return None
            item = infos[1]
        lengths = [i.value[1] for i in lists] + ([1] if fn is list_append else [])
        return Info("list", value=(item, None if None in lengths else sum(lengths)))
    length = lists[0].value[1]
    if fn is len and length is not None:
        return Info("exact", value=length)
    if fn is operator.getitem and infos[0].kind == "list":
        index = infos[1]
        if index.kind == "int" or (index.kind == "exact" and isinstance(index.value, int)):
            return item
        if index.kind == "exact" and isinstance(index.value, slice):
            return Info("list", value=(item, None if length is None else
                                       len(range(length)[index.value])))
        return None
    try:                                  # np.stack(hs), unstack(...): evaluate on stand-ins
        return evaluate(fn, infos, (), 1, False)[0] if _safe_call(fn, infos) else None
    except ValueError:
        return None


def infer_shapes(fn, args):
    """Info for the values of `fn` (body and pullback) when called with `args`."""
    inference = ShapeInference()
    for param, arg in zip(fn.params, args):
        inference.set(param, describe(arg))
    examples = {p.id: a for p, a in zip(fn.params, args)}
    for op in fn.body.ops:
        if op.opname == "unpack" and op.args[0].id in examples:
            leaves = leaves_of(op.attrs["tree"], examples[op.args[0].id])
            for r, leaf in zip(op.results, leaves):
                inference.set(r, describe(leaf))
    inference.block(fn.body)
    pullback = getattr(fn, "pullback", None)
    if pullback is not None:
        inference.block(pullback)
    return inference.info
