"""Specialisation to the argument shapes: answer at transform time what code would ask at run time.

With the shapes and dtypes from `shapes.infer_shapes`:

    x.shape, np.size(x), len(x), x.shape[1] -> constants
    unbroadcast(g, x), same shape & dtype   -> g
    unbroadcast(g, x), x a bias             -> np.sum(g, axis=...)  (keepdims where x has 1s;
                                               sum_leading(g, n) for many short rows)
    unindex(g, x, index), index all of x    -> g   (x[:, :26] of a 26-wide x; x[index] -> x)
    matmul_left(g, a, b), 2-d               -> g @ b.T  (kept where
                                               runtime.transposed_product_wins)
    matmul_right(g, a, b), 2-d              -> a.T @ g
    (n, 1) @ (1, m)                         -> (n, 1) * (1, m)   (an outer product)
    np.max(x, axis=(2, 4)) over <= 8 items  -> np.maximum of strided slices (same values)
    winner_share(U(extremum_share(g, y, X, ...)), t, c), X = V(np.maximum(t, c)), c a
    number, V views (reshape, index) that U undoes
                                            -> U(clamped_extremum_share(g, y, X, ...,
                                                 np.maximum, c, V(tie_mask(t, c))))
                                               (relu then max-pool: the relu's comparison
                                               made on the pooled shape where t has no c;
                                               t == c found before the clamp, which may
                                               then write over t; a broadcast False when
                                               there are none)
    winner_share(G, t, c), x = np.maximum(t, c), nothing else reading t
                                            -> masked_share(G, t > c, tie_mask(t, c))
                                               (the same: both comparisons made before
                                               the relu, which may then write over t)
    unreduce(c, x, ...) for a constant c    -> stays one `unreduce(c, x, None, False)` through
                                               further unreduce, scaling and negation, and
    unreduce(c, x, ...) * y                 -> c * y   when y already has the full shape

The last rule is the seed of every mean or sum loss: the adjoint of `np.mean(r * r)`
is then `2 / n * r`, not a full array of 1/n multiplied in.
"""
import operator

import numpy as np

from ..ir import Builder
from ..ir.nodes import substitute, substitute_chains, walk_ops
from ..rules import registry
from ..rules.registry import Method
from .. import runtime
from .dce import eliminate_dead_code
from .shapes import Info, evaluate, infer_shapes, is_elementwise

MULTIPLY = {operator.mul, np.multiply}
DIVIDE = {operator.truediv, np.divide, np.true_divide}
NEGATE = {operator.neg, np.negative}
TRANSPOSE = Method("T", attribute=True)
LITERALS = (int, float, bool, type(None), slice)


def _literal(value):
    if isinstance(value, tuple):
        return all(_literal(v) for v in value)
    return isinstance(value, LITERALS)


class Specializer:
    def __init__(self, fn, args, host=True):
        self.fn = fn
        self.host = host
        self.info = infer_shapes(fn, args)
        self.defs = {}
        self.filled = {}          # value id -> (constant, Info): an array full of one number
        self.mapping = {}
        self.changed = False

    def array(self, v):
        info = self.info.get(v.id)
        return info if info is not None and info.kind == "array" else None

    def exact(self, v):
        info = self.info.get(v.id)
        if info is not None and info.kind == "exact" and isinstance(info.value, (int, float)) \
                and not isinstance(info.value, bool):
            return info.value
        return None

    # ----------------------------------------------------------------- emitting
    def emit(self, block, at, fn, args, kwnames=(), hint="", info=None):
        """A call to `fn` placed just before op `at`."""
        new = self.insert(block, at, "call", args, {"fn": fn, "kwnames": tuple(kwnames)}, hint)
        if info is not None:
            self.info[new.id] = info
        return new

    def constant(self, block, at, value):
        new = self.insert(block, at, "const", [], {"value": value}, "")
        self.info[new.id] = Info("exact", value=value)
        return new

    def insert(self, block, at, opname, args, attrs, hint):
        new = Builder(block, at.loc).op(opname, args, attrs=attrs, hints=[hint])
        block.ops.insert(block.ops.index(at), block.ops.pop())
        self.defs[new.result.id] = new
        return new.result

    # -------------------------------------------------------------------- rules
    def rewrite(self, op, block):
        fn, args = op.attrs["fn"], op.args
        kwnames = op.attrs.get("kwnames", ())
        result = op.results[0] if len(op.results) == 1 else None
        info = self.info.get(result.id) if result is not None else None
        if info is not None and info.kind == "exact" and _literal(info.value) and \
                op.opname == "call" and not getattr(registry.lookup(fn), "effect", False):
            return self.constant(block, op, info.value)
        if fn in EXTREMA and info is not None and info.kind == "array":
            return self.small_extremum(op, block, fn, args, info)
        if kwnames:
            return None
        if is_elementwise(fn) and info is not None:
            self.broadcast_operands(op, fn, info)
        if fn is runtime.unbroadcast:
            return self.unbroadcast(op, block, *args)
        if fn is runtime.unindex and len(args) == 3 and self.whole(*args):
            return args[0]
        if fn is runtime.unindex and len(args) == 3 and self.only_entry(*args):
            shape = self.constant(block, op, self.array(args[1]).shape)
            return self.emit(block, op, np.full, [shape, args[0]], hint=result.hint, info=info)
        if fn is operator.getitem and len(args) == 2 and self.whole(op.result, *args):
            return args[0]
        if fn is runtime.matmul_left and self.plain_2d(*args) and not \
                runtime.transposed_product_wins(self.array(args[0]), self.array(args[2])):
            g, a, b = args
            bt = self.emit(block, op, TRANSPOSE, [b], info=_transposed(self.array(b)))
            return self.product(block, op, g, bt, result.hint, info)
        if fn is runtime.matmul_right and self.plain_2d(*args):
            g, a, b = args
            at = self.emit(block, op, TRANSPOSE, [a], info=_transposed(self.array(a)))
            return self.product(block, op, at, g, result.hint, info)
        if fn in (runtime.matmul_left, runtime.matmul_right) and self.vector_matrix(*args):
            g, a, b = args                   # a (k,) @ b (k, n): the products NumPy's do
            if fn is runtime.matmul_left:
                return self.emit(block, op, operator.matmul, [b, g], hint=result.hint,
                                 info=info)
            return self.emit(block, op, np.outer, [a, g], hint=result.hint, info=info)
        if fn in (operator.matmul, np.matmul) and len(args) == 2 and \
                self.outer(*args) and info is not None:
            return self.emit(block, op, operator.mul, args, hint=result.hint, info=info)
        return self.fill(op, block, fn, args, info)

    def small_extremum(self, op, block, fn, args, info):
        """np.max(windows, axis=(2, 4)) over 2x2 windows -> three np.maximum of strided
        slices: the same values, without NumPy's slow reduction over short inner axes."""
        x, *rest = args
        xi = self.array(x)
        kw = dict(zip(op.attrs.get("kwnames", ()), rest[len(rest) - len(op.attrs.get(
            "kwnames", ())):]))
        positional = rest[:len(rest) - len(kw)]
        if xi is None or len(positional) > 1 or set(kw) - {"axis", "keepdims"}:
            return None
        axis_v = positional[0] if positional else kw.get("axis")
        axis = self.info.get(axis_v.id) if axis_v is not None else None
        keep = self.info.get(kw["keepdims"].id) if "keepdims" in kw else Info("exact", value=False)
        if axis is None or axis.kind != "exact" or keep is None or keep.kind != "exact":
            return None
        axes = axis.value if isinstance(axis.value, tuple) else (axis.value,)
        if not all(isinstance(a, int) and not isinstance(a, bool) for a in axes):
            return None
        axes = sorted({a % len(xi.shape) for a in axes})
        sizes = [xi.shape[a] for a in axes]
        if not 2 <= int(np.prod(sizes)) <= 8:
            return None
        combine = np.maximum if EXTREMA[fn] == "max" else np.minimum
        total = None
        for position in np.ndindex(*sizes):
            index = [slice(None)] * len(xi.shape)
            for a, k in zip(axes, position):
                index[a] = slice(k, k + 1) if keep.value else k
            part = self.emit(block, op, operator.getitem, [x, self.constant(block, op, tuple(
                index))])
            total = part if total is None else self.emit(block, op, combine, [total, part],
                                                          info=info)
        total.hint = op.results[0].hint
        return total

    def outer(self, a, b):
        """(n, 1) @ (1, m): no sums, so the broadcast product gives the same bits, without
        a matrix product BLAS is slow at."""
        ai, bi = self.array(a), self.array(b)
        return ai is not None and bi is not None and len(ai.shape) == len(bi.shape) == 2 and \
            ai.shape[1] == 1 and ai.dtype == bi.dtype

    def product(self, block, op, a, b, hint, info):
        fn = operator.mul if self.outer(a, b) else operator.matmul
        return self.emit(block, op, fn, [a, b], hint=hint, info=info)

    def broadcast_operands(self, op, fn, info):
        """unreduce(g, x, axis, keepdims=True) OP y -> g OP y where broadcasting gives the same."""
        for k, a in enumerate(op.args):
            spread = self.defs.get(a.id)
            if spread is None or spread.opname != "call" or \
                    spread.attrs["fn"] is not runtime.unreduce or len(spread.args) != 4:
                continue
            g, _, axis, keepdims = spread.args
            if not (self.info.get(keepdims.id) == Info("exact", value=True) or
                    self.info.get(axis.id) == Info("exact", value=None)):
                continue
            args = op.args[:k] + [g] + op.args[k + 1:]
            infos = [self.info.get(v.id) for v in args]
            if None not in infos and evaluate(fn, infos, (), 1, False) == [info]:
                op.args = args
                self.changed = True

    def whole(self, g, x, index):
        """Whether `x[index]` is all of x, in order, with g's shape and dtype: then the
        scatter `unindex(g, x, index)` is g itself, and `x[index]` (g) is x."""
        xi, index = self.array(x), self.info.get(index.id)
        if xi is None or self.array(g) != xi or index is None or index.kind != "exact":
            return False
        parts = index.value if isinstance(index.value, tuple) else (index.value,)
        return len(parts) <= len(xi.shape) and all(
            isinstance(p, slice) and p.indices(n) == (0, n, 1) for p, n in zip(parts, xi.shape))

    def plain_2d(self, g, a, b):
        infos = [self.array(v) for v in (g, a, b)]
        return all(i is not None and len(i.shape) == 2 for i in infos) and \
            len({i.dtype for i in infos}) == 1

    def only_entry(self, g, x, index):
        """Whether `x[index]` is the one entry of a one-element x, and g a number of x's
        dtype: then the scatter `unindex(g, x, index)` is np.full(x.shape, g)."""
        xi, gi, index = self.array(x), self.info.get(g.id), self.info.get(index.id)
        if xi is None or gi is None or gi.kind != "scalar" or gi.dtype != xi.dtype or \
                index is None or index.kind != "exact" or int(np.prod(xi.shape)) != 1:
            return False
        parts = index.value if isinstance(index.value, tuple) else (index.value,)
        return len(parts) == len(xi.shape) and all(
            type(p) is int and p in (0, -1) for p in parts)

    def vector_matrix(self, g, a, b):
        """a @ b of a vector a (k,) and a matrix b (k, n), with g (n,), of one dtype."""
        infos = [self.array(v) for v in (g, a, b)]
        return all(i is not None for i in infos) and \
            [len(i.shape) for i in infos] == [1, 1, 2] and len({i.dtype for i in infos}) == 1

    def unbroadcast(self, op, block, g, x):
        gi, xi = self.info.get(g.id), self.info.get(x.id)
        if gi is not None and gi.kind in ("scalar", "float") and gi == xi:
            return g                         # one number for another of its type
        xi = self.array(x)
        if gi is None or xi is None or gi.kind != "array" or (
                gi.dtype != xi.dtype and xi.dtype.kind in "fc"):
            return None
        if gi.shape == xi.shape:
            return g
        extra = len(gi.shape) - len(xi.shape)
        if extra < 0:
            return None
        ones = tuple(i for i, n in enumerate(xi.shape) if n == 1 and gi.shape[extra + i] != 1)
        if extra and ones:
            return None
        if extra and _tall(gi.shape, extra, gi.dtype):
            count = self.constant(block, op, extra)
            return self.emit(block, op, runtime.sum_leading, [g, count], (), op.result.hint, xi)
        axes = tuple(range(extra)) if extra else ones
        axis = self.constant(block, op, axes[0] if len(axes) == 1 else axes)
        if ones:
            keep = self.constant(block, op, True)
            return self.emit(block, op, np.sum, [g, axis, keep], ("axis", "keepdims"),
                             op.result.hint, xi)
        return self.emit(block, op, np.sum, [g, axis], ("axis",), op.result.hint, xi)

    def fill(self, op, block, fn, args, info):
        """Track arrays full of one constant; fold them into what they multiply."""
        if info is None or info.kind != "array":
            return None
        if fn is runtime.unreduce:
            c = self.exact(args[0])
            inner = self.filled.get(args[0].id)
            if inner is not None:
                c = inner[0]
            if c is None:
                return None
            self.filled[op.result.id] = (c, info)
            if inner is None and len(args) == 4 and self.exact(args[3]) is False and \
                    self.info.get(args[2].id) == Info("exact", value=None):
                return None                         # already the canonical form
            return self.full(block, op, c, args[1], info)
        if fn in NEGATE and args[0].id in self.filled:
            c, _ = self.filled[args[0].id]
            return self.full(block, op, -c, None, info)
        if fn in MULTIPLY | DIVIDE and len(args) == 2:
            left, right = (self.filled.get(a.id) for a in args)
            if left is not None and self.exact(args[1]) is not None:
                k = self.exact(args[1])
                if fn in DIVIDE and k == 0:
                    return None
                return self.full(block, op, left[0] * k if fn in MULTIPLY else left[0] / k,
                                 None, info)
            if fn in MULTIPLY:
                for filled, other in ((left, args[1]), (right, args[0])):
                    oi = self.array(other)
                    if filled is None or oi != info:
                        continue
                    if filled[0] == 1 and oi.dtype.kind in "fc":
                        return other
                    if isinstance(filled[0], (int, float)):
                        scale = self.constant(block, op, filled[0])
                        return self.emit(block, op, operator.mul, [scale, other],
                                         hint=op.result.hint, info=info)
        return None

    def full(self, block, op, c, like, info):
        """unreduce(c, like, None, False): the one spelling of an array full of c."""
        if like is None:
            like = self.source_of(op.args[0])
            if like is None:
                return None
        self.filled[op.result.id] = (c, info)
        args = [self.constant(block, op, c), like, self.constant(block, op, None),
                self.constant(block, op, False)]
        new = self.emit(block, op, runtime.unreduce, args, hint=op.result.hint, info=info)
        self.filled[new.id] = (c, info)
        return new

    def source_of(self, v):
        """The `x` of the unreduce(c, x, ...) that made filled value `v`."""
        op = self.defs.get(v.id)
        if op is not None and op.opname == "call" and op.attrs["fn"] is runtime.unreduce:
            return op.args[1]
        return None

    # ---------------------------------------------------------------------- run
    def run(self):
        blocks = [self.fn.body] + ([self.fn.pullback] if getattr(self.fn, "pullback", None)
                                   else [])
        self.uses = {}
        for block in blocks:
            for op in walk_ops(block):
                for r in op.results:
                    self.defs[r.id] = op
                for a in op.args:
                    self.uses[a.id] = self.uses.get(a.id, 0) + 1
        for block in blocks:
            self.visit(block)
        substitute_chains(blocks, self.mapping)
        if self.host:
            eliminate_dead_code(self.fn)    # the adjoints of constants are read by no one
            self.share_through_clamps(blocks)
        return self.changed

    # ------------------------------------------------- relu before a max-pool
    def share_through_clamps(self, blocks):
        """Fold each clamp's winner_share into the extremum_share that feeds it
        (`clamped_share`), once the other rules have settled the views between them."""
        self.defs, self.uses, self.users, self.owner = {}, {}, {}, {}
        for block in blocks:
            self.index_block(block)
        mapping = {}
        for op, block in list(self.owner.values()):
            if op.opname == "call" and op.attrs["fn"] is runtime.winner_share:
                folded = self.clamped_share(op, block)
                if folded is not None:
                    mapping[op.results[0]] = folded
                    self.changed = True
                else:
                    self.share_from_the_clamp(op)
        for block in blocks:
            substitute(block, mapping)

    def share_from_the_clamp(self, op):
        """winner_share(G, t, c) -> masked_share(G, t > c, tie_mask(t, c)) for
        x = np.maximum(t, c) (or (G, c, t), np.minimum and c > t) where nothing else reads
        t: both comparisons are made before the clamp, which can then write over t, and
        the pullback multiplies by the stored mask as a hand-written relu adjoint does.
        The ties first: their mask is a temporary, and the one kept is then made last
        (W4: 0.4% of the step, the temporary's memory reused at once)."""
        if len(op.args) != 3 or op.attrs.get("kwnames"):
            return
        adjoint, a, b = op.args
        for t in (a, b):
            clamp = next((user for user in self.users.get(t.id, ())
                          if self.clamped(user, a, b) is t), None)
            if clamp is not None and self.uses.get(t.id) == 2:
                block = self.owner[id(clamp)][1]
                mask = Info("array", self.array(t).shape, np.dtype(bool))
                ties = self.emit(block, clamp, runtime.tie_mask, [t, b if a is t else a],
                                 hint="ties", info=mask)
                wins = self.emit(block, clamp, operator.gt, [a, b], hint="wins", info=mask)
                op.attrs["fn"] = runtime.masked_share
                op.args = [adjoint, wins, ties]
                self.changed = True
                return

    def index_block(self, block):
        for op in block.ops:
            self.owner[id(op)] = (op, block)
            for r in op.results:
                self.defs[r.id] = op
            for a in op.args:
                self.uses[a.id] = self.uses.get(a.id, 0) + 1
                self.users.setdefault(a.id, []).append(op)
            for region in op.regions:
                self.index_block(region)

    def clamped_share(self, op, block):
        """For `winner_share(G, t, c)` (the adjoint t gets from x = np.maximum(t, c), or
        `(G, c, t)` from np.minimum) where G is only the adjoint of an extremum over views
        of x: the extremum_share turned clamped_extremum_share, and G, which then is the
        whole answer. t's ties with c are found just before the clamp (which may then
        write over t) and viewed as x is: runtime.tie_mask, a broadcast False where there
        are none, which the pullback then need not read from memory."""
        if len(op.args) != 3 or op.attrs.get("kwnames"):
            return None
        adjoint, a, b = op.args
        undo, value = [], adjoint           # the ops that put the extremum's adjoint back
        while True:
            step = self.defs.get(value.id)
            if step is None or step.opname != "call" or step.attrs.get("kwnames") or \
                    self.uses.get(value.id) != 1 or self.owner[id(step)][1] is not block:
                return None
            if step.attrs["fn"] is runtime.extremum_share:
                break
            if not (_reshape(step) or step.attrs["fn"] is runtime.unindex):
                return None
            undo.append(step)
            value = step.args[0]
        share = step
        if not 3 <= len(share.args) <= 5:
            return None
        views, value = [], share.args[2]    # the ops that made the extremum's input
        for _ in undo:
            step = self.defs.get(value.id)
            if step is None or step.opname != "call" or step.attrs.get("kwnames"):
                return None
            views.append(step)
            value = step.args[0]
        clamp = self.defs.get(value.id)
        t = self.clamped(clamp, a, b)
        if t is None or not all(self.undoes(u, v) for u, v in zip(reversed(undo), views)):
            return None
        bound = b if a is t else a
        shape = self.array(t).shape
        ties = self.emit(self.owner[id(clamp)][1], clamp, runtime.tie_mask, [t, bound],
                         hint="ties", info=Info("array", shape, np.dtype(bool)))
        for view in reversed(views):
            rest = [self.constant(block, share, self.info[v.id].value) for v in view.args[1:]]
            shape = self.array(view.results[0]).shape
            ties = self.emit(block, share, view.attrs["fn"], [ties] + rest,
                             info=Info("array", shape, np.dtype(bool)))
        defaults = [self.constant(block, share, v) for v in (None, False)[len(share.args) - 3:]]
        share.args = share.args + defaults + [
            self.constant(block, share, clamp.attrs["fn"]), bound, ties]
        share.attrs["fn"] = runtime.clamped_extremum_share
        return adjoint

    def clamped(self, clamp, a, b):
        """The array t when `clamp` is np.maximum(t, c) (or (c, t)) and (a, b) is (t, c),
        or np.minimum and (c, t), c a Python number: a and b as winner_share takes them."""
        if clamp is None or clamp.opname != "call" or clamp.attrs.get("kwnames") or \
                clamp.attrs["fn"] not in (np.maximum, np.minimum) or len(clamp.args) != 2:
            return None
        t, number = (a, b) if clamp.attrs["fn"] is np.maximum else (b, a)
        ti, ci = self.array(t), self.info.get(number.id)
        if ti is None or not ti.shape or t not in clamp.args or ci is None or not (
                ci.kind in ("float", "int") or self.exact(number) is not None):
            return None
        c = clamp.args[1] if clamp.args[0] is t else clamp.args[0]
        same = c is number or (ci.kind == "exact" and self.info.get(c.id) == ci)
        return t if same else None

    def undoes(self, undo, view):
        """Whether `undo` is the adjoint of view op `view`: a reshape back to its input's
        shape, or the scatter of its index into its input. Their arguments must be
        constants (they are repeated on the pre-clamp array)."""
        if not all(self.info.get(v.id) is not None and self.info[v.id].kind == "exact"
                   for v in view.args[1:]):
            return False
        if _reshape(view):
            inner, back = self.array(view.args[0]), self.array(undo.results[0])
            return _reshape(undo) and inner is not None and back is not None and \
                back.shape == inner.shape
        index, scattered = view.args[1], undo.args[2]
        same = index is scattered or (_literal(self.info[index.id].value) and self.info.get(
            scattered.id) == self.info[index.id])
        return view.attrs["fn"] is operator.getitem and undo.attrs["fn"] is runtime.unindex \
            and undo.args[1] is view.args[0] and same

    def visit(self, block):
        for op in list(block.ops):
            op.args = [self.mapping.get(a, a) for a in op.args]
            for region in op.regions:
                self.visit(region)
            if op.opname != "call":
                continue
            replacement = self.rewrite(op, block)
            if replacement is not None and replacement is not op.results[0]:
                hint = op.results[0].hint
                if not replacement.hint or (hint.endswith("_bar") and self.uses.get(
                        replacement.id) == 1):     # `b_bar`, not a rule's own `dx`
                    replacement.hint = hint
                self.mapping[op.results[0]] = replacement
                self.changed = True


EXTREMA = {np.max: "max", np.amax: "max", np.min: "min", np.amin: "min",
           Method("max"): "max", Method("min"): "min"}


def _reshape(op):
    return op.attrs["fn"] in (np.reshape, Method("reshape"))


def _tall(shape, leading, dtype):
    """Whether summing the leading axes is in the regime where runtime.sum_leading beats
    np.sum (many short rows). Its product with a row of ones (float32/64) wins from 256
    rows at any width up to 512 (2.5x for (512, 2)), from 128 (or 4 blocks) at widths
    from 64; below, a small BLAS call costs more than NumPy's rows in a training step
    ((128, 10): 17-24 vs 4-6 us beside the layers' products). Its blocks of rows laid side
    by side (other dtypes) only from 4 blocks. Fewer rows than their width go to np.sum:
    for the (128, 512) bias adjoints of W4, beside products that had just filled the
    cache, the product with a row of ones made the training step 0.5-1% slower."""
    width = int(np.prod(shape[leading:]))
    rows = int(np.prod(shape[:leading]))
    if not 0 < width <= min(512, rows):
        return False
    blocks = 4 * (1024 // width)
    if dtype.char in "fd":
        return rows >= min(128 if width >= 64 else 256, blocks)
    return rows >= blocks


def _transposed(info):
    return Info("array", info.shape[::-1], info.dtype)


def specialize(fn, args, host=True):
    """Rewrite `fn` for arguments shaped like `args`; returns whether anything changed.

    Leaves the shapes it found in `fn.shape_info` for the passes after it. `host=False`
    (CuPy) leaves clamps as they are: their rules pay off through NumPy's in-place
    updates, and a tie count on the GPU would wait for it."""
    specializer = Specializer(fn, args, host)
    changed = specializer.run()
    fn.shape_info = specializer.info
    return changed
