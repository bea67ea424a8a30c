"""Single-element arrays as NumPy scalars: `y[0, 0]` once, then scalar arithmetic.

A (1, 1) prediction, a batch-of-one loss or an (n, 1) @ (1, 1) adjoint makes the
specialised code do a chain of elementwise ufunc calls on one-element arrays, each
costing the full array dispatch (about ten times a scalar operation). Once the
shapes are known (`specialize` leaves them in `fn.shape_info`), such a chain runs
on the NumPy scalar of the same dtype instead:

    y = np.tanh(h @ W2 + b2)            y = np.tanh(h @ W2 + b2)
    r = target - y                       y_0 = y[0, 0]
    t_bar = -2 * r * (1 - y * y)   ->    r = target - y_0
    W2_bar = h.T * t_bar                 t_bar = -2.0 * r * (1.0 - y_0 * y_0)
                                         W2_bar = h.T * t_bar

NumPy 2 promotes scalars exactly like arrays (NEP 50), and a scalar runs the same
ufunc loop on the same single element, so values and dtypes are unchanged (`**` is
left alone: on arrays `x ** 2` is np.square, on scalars pow). What must stay an
array does: a value that is returned, carried by a loop, kept on a tape, or read by
anything other than elementwise arithmetic is computed as before, and its readers
that can take a scalar get `y[0, 0]`, read once. A scalar replaces an array operand
only where another operand already has the result's shape, so no result changes
shape. `np.sum` of a one-element square is the square itself (a sum of one element
is that element, except that it turns -0.0 into 0.0, which a square never is).
Integer constants in scalar arithmetic are written as floats of the same value.
"""
import operator

import numpy as np

from ..ir import Builder
from ..ir.nodes import substitute, walk_ops
from .shapes import Info, describe, evaluate

OPERATORS = {operator.add, operator.sub, operator.mul, operator.truediv, operator.neg,
             operator.pos, abs}
# Ufuncs that take another path on scalars than on arrays.
DIFFERENT_ON_SCALARS = {np.power, np.float_power}
SQUARES = {operator.mul, np.multiply, np.square}


def _on_scalars(fn):
    """Whether `fn` applied to NumPy scalars computes what it does on one-element arrays."""
    if fn in OPERATORS:
        return True
    return isinstance(fn, np.ufunc) and fn.nout == 1 and fn not in DIFFERENT_ON_SCALARS


def _scalar(info):
    return Info("scalar", (), info.dtype)


class Scalarizer:
    def __init__(self, fn):
        self.info = fn.shape_info
        self.blocks = [fn.body] + ([fn.pullback] if getattr(fn, "pullback", None) else [])
        self.defs, self.block_of, self.uses = {}, {}, {}
        self.arrays = set()          # ids of one-element values that stay arrays
        self.parameters(fn.params, fn.body)
        for block in self.blocks:
            self.index(block)
        self.extracted = {}          # value id -> its element, `x[0, 0]`

    def parameters(self, params, block):
        """Parameters come as arrays, read from the start of `block`."""
        for p in params:
            self.block_of[p.id] = block
            if self.one_element(p) is not None:
                self.arrays.add(p.id)

    def index(self, block):
        self.parameters(block.params, block)
        for op in block.ops:
            for a in op.args:
                self.uses.setdefault(a.id, []).append(op)
            for r in op.results:
                self.defs[r.id] = op
                self.block_of[r.id] = block
            for region in op.regions:
                self.index(region)

    # ------------------------------------------------------------------ queries
    def one_element(self, v):
        """The Info of `v` if it is a one-element floating-point array (0-d arrays are
        rare, and stay as they are)."""
        info = self.info.get(v.id)
        if info is not None and info.kind == "array" and info.dtype.kind == "f" and \
                info.shape and int(np.prod(info.shape)) == 1:
            return info
        return None

    def known(self, v):
        """The Info of `v`; constants made after shape inference (by simplify) included."""
        op = self.defs.get(v.id)
        if v.id not in self.info and op is not None and op.opname == "const":
            return describe(op.attrs["value"], exact=True)
        return self.info.get(v.id)

    def elementwise(self, op):
        return op.opname == "call" and not op.attrs.get("kwnames") and \
            len(op.results) == 1 and _on_scalars(op.attrs["fn"])

    def chain_link(self, op):
        """Whether `op` makes a one-element array from one-element arrays and numbers, and
        gives the same-dtype scalar when they are scalars: it can run on scalars."""
        if not self.elementwise(op) or self.one_element(op.result) is None:
            return False
        infos = []
        for a in op.args:
            info = self.known(a)
            if info is None:
                return False
            if self.one_element(a) is not None:
                info = _scalar(info)
            elif not (info.kind in ("scalar", "float", "int") or (
                    info.kind == "exact" and isinstance(info.value, (int, float)))):
                return False
            infos.append(info)
        return evaluate(op.attrs["fn"], infos, (), 1, False) == [_scalar(self.info[op.result.id])]

    def broadcasts_scalar(self, op, v):
        """Whether `op` (elementwise, with a larger result) gives the same result when `v`
        is a scalar: another operand already has the result's shape."""
        result = self.info.get(op.result.id) if self.elementwise(op) else None
        if result is None or result.kind != "array":
            return False
        infos = [self.known(a) for a in op.args]
        if None in infos or not any(a is not v and i.kind == "array" and i.shape == result.shape
                                    for a, i in zip(op.args, infos)):
            return False
        infos = [_scalar(i) if a is v else i for a, i in zip(op.args, infos)]
        return evaluate(op.attrs["fn"], infos, (), 1, False) == [result]

    def sum_of_square(self, op):
        """np.sum(t * t) of one element: the element itself, which cannot be -0.0."""
        if not (op.opname == "call" and op.attrs["fn"] is np.sum and len(op.args) == 1 and
                not op.attrs.get("kwnames")):
            return False
        v = op.args[0]
        square = self.defs.get(v.id)
        return self.one_element(v) is not None and square is not None and \
            square.opname == "call" and square.attrs["fn"] in SQUARES and \
            not square.attrs.get("kwnames") and len(set(square.args)) == 1 and \
            self.info.get(op.result.id) == _scalar(self.info[v.id])

    def takes_scalar(self, use, v):
        if id(use) in self.links:
            return use.result.id not in self.arrays
        return id(use) in self.sums or self.broadcasts_scalar(use, v)

    # ---------------------------------------------------------------- rewriting
    def extract(self, v):
        """`v[0]`, `v[0, 0]`, ...: placed once, just after `v` is defined."""
        if v.id not in self.extracted:
            block, op = self.block_of[v.id], self.defs.get(v.id)
            at = block.ops.index(op) + 1 if op is not None else 0
            ndim = len(self.info[v.id].shape)
            first = 0 if ndim == 1 else (0,) * ndim
            builder = Builder(block, op.loc if op is not None else None)
            index = builder.const(first)
            element = builder.call(operator.getitem, [v, index],
                                   hint=f"{v.hint}_0" if v.hint else "")
            new = block.ops[-2:]
            del block.ops[-2:]
            block.ops[at:at] = new
            self.info[index.id] = Info("exact", value=first)
            self.info[element.id] = _scalar(self.info[v.id])
            self.extracted[v.id] = element
        return self.extracted[v.id]

    def operand(self, a, op):
        """What scalar operation `op` reads for its operand `a`: an array's element, and an
        integer constant as the float of the same value (both are weak scalars: the result
        is the same, but NumPy's scalar arithmetic converts a Python int far more slowly)."""
        if a.id in self.arrays:
            return self.extract(a)
        const = self.defs.get(a.id)
        if op.attrs["fn"] in OPERATORS and const is not None and const.opname == "const" and \
                type(const.attrs["value"]) is int and abs(const.attrs["value"]) <= 2 ** 53:
            block = self.block_of[op.result.id]
            number = Builder(block, const.loc).const(float(const.attrs["value"]))
            block.ops.insert(block.ops.index(op), block.ops.pop())
            self.info[number.id] = Info("exact", value=float(const.attrs["value"]))
            return number
        return a

    def run(self):
        ops = [op for block in self.blocks for op in walk_ops(block)]
        self.links = {id(op) for op in ops if self.chain_link(op)}
        self.sums = {id(op) for op in ops if self.sum_of_square(op)}
        for op in reversed(ops):               # every reader is decided before its operand
            for r in op.results:
                if self.one_element(r) is not None and (id(op) not in self.links or not all(
                        self.takes_scalar(use, r) for use in self.uses.get(r.id, []))):
                    self.arrays.add(r.id)
        mapping, changed = {}, False
        for op in ops:
            if id(op) in self.links and op.result.id not in self.arrays:
                op.args = [self.operand(a, op) for a in op.args]
                self.info[op.result.id] = _scalar(self.info[op.result.id])
                changed = True
            elif id(op) in self.sums and op.args[0].id not in self.arrays:
                mapping[op.result] = op.args[0]
        for block in self.blocks:
            substitute(block, mapping)
        return changed


def scalarize(fn):
    """Run one-element floating-point chains of specialised code on NumPy scalars;
    returns whether anything changed. Needs `fn.shape_info` (from `specialize`)."""
    if getattr(fn, "shape_info", None) is None:
        return False
    return Scalarizer(fn).run()
