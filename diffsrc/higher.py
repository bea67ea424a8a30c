"""Forward mode and the transforms built on it: jvp, hvp, hessian, jacobian.

`jvp` runs the forward-mode transform (transforms/forward.py) through the same
pipeline and cache as `grad`. The others compose transforms by the closure
property: the generated code of `ds.grad(f)` is read again and differentiated
in forward mode (forward-over-reverse), so loops and branches keep working.
"""
import dataclasses

import numpy as np

from .api import (GradientFunction, _bind, _check_differentiable, _closure_key, _fast_key,
                  _global_cache, _example_args, _normalise_wrt, _pullback_cache, _resolve,
                  transform)
from .errors import NonDifferentiableError, NoRuleError, TransformError
from .frontend.abstract import Static, TupleS
from .frontend.trees import Tree, build, leaves_of, tree_of
from .ir.nodes import walk_ops
from .rules import registry


def _examples(fn):
    """Example arguments to show the source of a transform not called yet."""
    return _example_args(fn.fn if isinstance(fn, GradientFunction) else fn)


def _like(tangent, primal):
    """A tangent of a float is a float; array tangents are the caller's own arrays."""
    if type(primal) is float and type(tangent) is not float:
        return float(tangent)
    if isinstance(tangent, np.ndarray) and not tangent.flags.writeable:
        return tangent.copy()
    return tangent


def _differentiable(value):
    tree = tree_of(value)
    return tree.kind != "static" and (tree.kind != "leaf" or tree.differentiable_leaf())


def _check_tangent(fn, i, primal, tangent):
    tree = tree_of(primal)
    try:
        same = tree_of(tangent).kind == tree.kind and all(
            np.shape(a) == np.shape(b) for a, b in zip(leaves_of(tree, primal),
                                                       leaves_of(tree, tangent)))
    except (KeyError, AttributeError, IndexError, TypeError):
        same = False
    if not same:
        raise ValueError(f"the tangent of argument {i} of {getattr(fn, '__name__', fn)} must "
                         f"have the structure and shapes of the argument")


def _at_users_line(exc):
    """An error in generated code being differentiated again, moved to the user's line."""
    for compiled in list(_global_cache.values()) + list(_pullback_cache.values()):
        if compiled.filename == exc.filename:
            loc = compiled.line_locs.get(exc.lineno)
            if loc is not None:
                return type(exc)(exc.message + f" (in the derivative code generated from "
                                 f"this line, {exc.filename}:{exc.lineno})", loc.filename,
                                 loc.lineno)
    return exc


class JvpFunction:
    """What `ds.jvp(f)` returns: `(primals, tangents) -> (f(*primals), tangent of f)`.

    A tangent of None leaves that argument undifferentiated (ints, strings and other
    arguments without a derivative take None)."""

    def __init__(self, fn, order="forward mode"):
        self.fn = fn
        self.order = order
        self.fast = {}
        self.has_closure = bool(getattr(getattr(fn, "fn", fn), "__closure__", None))
        self.last = None

    def compiled_for(self, primals, wrt):
        key = ("jvp", self.fn, wrt, tuple(map(tree_of, primals)),
               _closure_key(getattr(self.fn, "fn", self.fn)))
        compiled = _global_cache.get(key)
        if compiled is None:
            _check_differentiable(getattr(self.fn, "fn", self.fn), primals, wrt)
            try:
                compiled = transform(self.fn, primals, wrt, "jvp", order=self.order)
            except NoRuleError as exc:
                raise _at_users_line(exc) from None
            _global_cache[key] = compiled
        self.last = compiled
        return compiled

    def __call__(self, primals, tangents):
        primals, tangents = tuple(primals), tuple(tangents)
        if len(primals) != len(tangents):
            raise ValueError(f"jvp needs one tangent per primal ({len(primals)} primals, "
                             f"{len(tangents)} tangents)")
        wrt = tuple(i for i, t in enumerate(tangents) if t is not None)
        fast = None if self.has_closure else _fast_key(primals)
        compiled = self.fast.get((fast, wrt)) if fast is not None else None
        if compiled is None:
            for i in wrt:
                _check_tangent(self.fn, i, primals[i], tangents[i])
            compiled = self.compiled_for(primals, wrt)
            if fast is not None:
                self.fast[(fast, wrt)] = compiled
        self.last = compiled
        try:
            out = compiled.function(*primals, *[tangents[i] for i in wrt])
        except Exception as exc:
            compiled.annotate(exc)
            raise
        tree = compiled.ir.out_tree
        n = len(out) // 2
        y_leaves, dot_leaves = out[:n], [_like(d, y) for d, y in zip(out[n:], out[:n])]
        return build(tree, y_leaves), build(tree, dot_leaves)

    def __diffsrc_inline__(self, low, args, kwargs):
        """`ds.jvp(f, primals, tangents)` inside differentiated code: its generated code is
        inlined (the closure property), so it can be differentiated again."""
        from .frontend.lower import build_abstract, placeholder
        if kwargs or len(args) != 2:
            raise low.error(TransformError, "a jvp function takes (primals, tangents)")
        primals = low.iterate_static(args[0], None)
        tangents = low.iterate_static(args[1], None)
        wrt = tuple(i for i, t in enumerate(tangents)
                    if not (isinstance(t, Static) and t.value is None))
        compiled = self.compiled_for(tuple(placeholder(a) for a in primals), wrt)
        result = low.call_python(compiled.function,
                                 list(primals) + [tangents[i] for i in wrt], {})
        n = len(compiled.ir.out_tree.leaf_paths())
        leaves = low.iterate_static(result, 2 * n)
        tree = compiled.ir.out_tree
        return TupleS((build_abstract(tree, iter(leaves[:n])),
                       build_abstract(tree, iter(leaves[n:]))))

    def __diffsrc_compiled__(self, *primals):
        """The code of the last call, or for `primals` (all differentiated but ints)."""
        if primals or self.last is None:
            primals = primals or _examples(self.fn)
            self.compiled_for(primals, tuple(i for i, p in enumerate(primals)
                                             if _differentiable(p)))
        return self.last

    @property
    def __diffsrc_source__(self):
        return self.__diffsrc_compiled__().source


def jvp(f, primals=None, tangents=None):
    """Forward mode: `(f(*primals), J @ tangents)`, the Jacobian-vector product.

    `ds.jvp(f)` alone returns the jvp function `(primals, tangents) -> (y, y_dot)`,
    whose generated code `ds.source` shows. Tangents have the structure and shapes of
    the primals; None marks an argument not differentiated. Zero output tangents come
    back as zeros shaped like the output.
    """
    fn = JvpFunction(_resolve(f))
    if primals is None and tangents is None:
        return fn
    return fn(primals, tangents)


class HvpFunction:
    """What `ds.hvp(f, wrt)` returns: `(*args, v) -> H @ v`, with H the Hessian of scalar
    `f` with respect to argument `wrt`: the jvp of `ds.grad(f)` (forward-over-reverse)."""

    def __init__(self, fn, wrt=0):
        self.grad = GradientFunction(fn, wrt)
        if not self.grad.single:
            raise TypeError("hvp differentiates with respect to one argument: wrt must be an "
                            "int or an argument name")
        self.jvp = JvpFunction(self.grad, order="second order (hvp)")

    def tangents(self, args, v):
        out = [None] * len(args)
        out[self.grad.wrt[0]] = v
        return out

    def __call__(self, *args):
        *args, v = args
        return self.jvp(args, self.tangents(args, v))[1]

    def __diffsrc_inline__(self, low, args, kwargs):
        if kwargs:
            raise low.error(TransformError, "keyword arguments to an hvp function inside "
                            "differentiated code")
        *args, v = args
        tangents = [Static(None)] * len(args)
        tangents[self.grad.wrt[0]] = v
        _, hv = self.jvp.__diffsrc_inline__(low, [TupleS(tuple(args)), TupleS(tuple(tangents))],
                                            {}).items
        return hv

    def __diffsrc_compiled__(self, *args):
        """The code of the last call, or for `args` (f's arguments, without v)."""
        if args or self.jvp.last is None:
            self.jvp.compiled_for(args or _examples(self.grad), self.grad.wrt)
        return self.jvp.last

    @property
    def __diffsrc_source__(self):
        return self.__diffsrc_compiled__().source


def hvp(f, wrt=0):
    """The Hessian-vector product of scalar `f`: `ds.hvp(f)(*args, v)` is H @ v, H the
    Hessian with respect to argument `wrt` (forward mode over the generated gradient)."""
    return HvpFunction(_resolve(f), wrt)


class _Side:
    """The flat layout of one side of a Jacobian: the float leaves of some values (the
    differentiated arguments, or the outputs), each at an offset into a vector of all
    their entries."""

    def __init__(self, trees, values):
        self.trees = trees
        self.leaves = [leaf for tree, value in zip(trees, values)
                       for leaf in leaves_of(tree, value)]
        self.sizes = [int(np.size(leaf)) for leaf in self.leaves]
        self.offsets = np.cumsum([0] + self.sizes).tolist()
        self.size = self.offsets[-1]

    def entries(self):
        """(leaf number, index within the leaf) of every entry, in order."""
        return [(k, i) for k, size in enumerate(self.sizes) for i in range(size)]

    def units(self):
        """A zero per leaf to move a one through: arrays (written in place), floats 0.0."""
        return [np.zeros(leaf.shape, leaf.dtype if _is_float(leaf) else np.float64)
                if np.ndim(leaf) else 0.0 for leaf in self.leaves]

    def values(self, leaves):
        """The values with this side's structure and the given leaves."""
        out, leaves = [], iter(leaves)
        for tree in self.trees:
            out.append(build(tree, [next(leaves) for _ in tree.leaf_paths()]))
        return out


def _is_float(leaf):
    return type(leaf) is float or getattr(leaf, "dtype", np.dtype(int)).kind == "f"


def _leaves_or_none(tree, value):
    """The leaves of an adjoint; None (zero) throughout for a None adjoint."""
    return leaves_of(tree, value) if value is not None else [None] * len(tree.leaf_paths())


def _with_one(units, k, i):
    """`units` with entry i of leaf k set to one: in place for an array (undo with the same
    call and 0.0), a fresh list for a float."""
    if isinstance(units[k], np.ndarray):
        units[k].flat[i] = 1.0
        return units
    return units[:k] + [1.0] + units[k + 1:]


def _reset(units, k, i):
    if isinstance(units[k], np.ndarray):
        units[k].flat[i] = 0.0


def _without_statics(tree):
    """A Jacobian has None where the value had a part that is not a number or an array."""
    if tree.kind == "static":
        return Tree("static", static=None)
    if tree.kind == "leaf":
        return tree
    return dataclasses.replace(tree, children=tuple(map(_without_statics, tree.children)))


class JacobianFunction:
    """What `ds.jacobian` and `ds.hessian` return; see `jacobian`."""

    def __init__(self, fn, wrt, order, forward_only=False):
        self.fn = fn
        self.user_fn = getattr(fn, "fn", fn)
        self.wrt, self.single = _normalise_wrt(self.user_fn, wrt)
        self.jvp = JvpFunction(fn, order)
        self.forward_only = forward_only
        self.output_sizes = {}      # argument kinds -> output entries: later calls skip the probe
        self.last = None

    def __call__(self, *args, **kwargs):
        args = _bind(self.user_fn, args, kwargs)
        _check_differentiable(self.user_fn, args, self.wrt)
        wrt = tuple(sorted(set(self.wrt)))
        inputs = _Side([tree_of(args[i]) for i in wrt], [args[i] for i in wrt])
        self.check_inputs(args, wrt, inputs)
        key = None if self.jvp.has_closure else _fast_key(args)
        m = self.output_sizes.get(key) if key is not None else None
        first = None
        if m is None and not self.forward_only:
            first = self.columns(args, wrt, inputs, probe=True)
            m = first[1].size
            if key is not None:
                self.output_sizes[key] = m
        if m is not None and m < inputs.size and not self.forward_only:
            out_tree, outputs, matrix = self.rows(args, wrt, inputs)
        else:
            out_tree, outputs, matrix = self.columns(args, wrt, inputs, first=first)
        return self.assemble(out_tree, outputs, inputs, wrt, matrix)

    def check_inputs(self, args, wrt, inputs):
        for i, tree in zip(wrt, inputs.trees):
            for path, leaf in zip(tree.leaf_paths(), leaves_of(tree, args[i])):
                if not _is_float(leaf):
                    from .codegen.python import path_text
                    code = getattr(self.user_fn, "__code__", None)
                    raise NonDifferentiableError(
                        f"jacobian/hessian differentiate with respect to floats and float "
                        f"arrays; argument {i}{path_text(path)} of "
                        f"{getattr(self.user_fn, '__name__', 'f')} is a {type(leaf).__name__}",
                        code.co_filename if code else None, code.co_firstlineno if code else None)

    def columns(self, args, wrt, inputs, probe=False, first=None):
        """Forward mode: one jvp per input entry, through the compiled jvp called directly.
        `probe`: only the first column (it gives the output's layout); `first` is one."""
        compiled = self.last = self.jvp.compiled_for(args, wrt)
        call, units = compiled.function, inputs.units()
        entries = inputs.entries() or [None]            # no input entries: one zero column
        out_tree, outputs, matrix = first if first is not None else (None, None, None)
        in_place = inputs.values(units)                 # arrays' ones are written into these
        for j, entry in enumerate(entries):
            if j == 0 and first is not None:
                continue
            leaves = units if entry is None else _with_one(units, *entry)
            try:
                out = call(*args, *(in_place if leaves is units else inputs.values(leaves)))
            except Exception as exc:
                compiled.annotate(exc)
                raise
            if entry is not None:
                _reset(units, *entry)
            half = len(out) // 2
            if outputs is None:
                out_tree = _without_statics(compiled.ir.out_tree)
                outputs = _Side([out_tree], [build(out_tree, out[:half])])
                matrix = np.zeros((max(inputs.size, 1), outputs.size))
            for dot, start, size in zip(out[half:], outputs.offsets, outputs.sizes):
                if dot is not None:
                    matrix[j, start:start + size] = np.ravel(dot)
            if probe:
                return out_tree, outputs, matrix
        return out_tree, outputs, matrix[:inputs.size].T

    def rows(self, args, wrt, inputs):
        """Reverse mode: one pass of the compiled pullback, one backward call per output
        entry; the adjoints of the differentiated arguments only."""
        key = ("jacobian", self.fn, wrt, tuple(map(tree_of, args)), _closure_key(self.user_fn))
        compiled = _pullback_cache.get(key)
        if compiled is None:
            compiled = _pullback_cache[key] = transform(self.fn, args, wrt, "pullback")
        self.last = compiled
        try:
            y, back = compiled.function(*args)
            out_tree = _without_statics(compiled.ir.out_tree)
            y = build(out_tree, y if len(out_tree.leaf_paths()) != 1 else (y,))
            outputs = _Side([out_tree], [y])
            seeds = outputs.units()
            matrix = np.zeros((outputs.size, inputs.size))
            taped = any(op.opname == "pop" for op in walk_ops(compiled.ir.pullback))
            fresh = True
            for j, (k, i) in enumerate(outputs.entries()):
                if not _is_float(outputs.leaves[k]):
                    continue
                if not fresh:               # a backward pass empties the loops' tapes
                    back = compiled.function(*args)[1]
                fresh = not taped
                adjoints = back(*_with_one(seeds, k, i))
                _reset(seeds, k, i)
                grads = [leaf for tree, a in zip(inputs.trees, adjoints)
                         for leaf in _leaves_or_none(tree, a)]
                for g, start, size in zip(grads, inputs.offsets, inputs.sizes):
                    if g is not None:
                        matrix[j, start:start + size] = np.ravel(g)
        except Exception as exc:
            compiled.annotate(exc)
            raise
        return out_tree, outputs, matrix

    def assemble(self, out_tree, outputs, inputs, wrt, matrix):
        """The blocks of `matrix` (output entries x input entries), shaped out.shape +
        in.shape, in the output's structure, each holding the inputs' structure (a tuple
        of them for a tuple `wrt`)."""
        per_output = []
        for out, o0, m in zip(outputs.leaves, outputs.offsets, outputs.sizes):
            blocks = []
            for x, i0, n in zip(inputs.leaves, inputs.offsets, inputs.sizes):
                block = matrix[o0:o0 + m, i0:i0 + n].reshape(np.shape(out) + np.shape(x))
                if block.shape == () and type(x) is float:
                    blocks.append(float(block))
                else:
                    blocks.append(block.astype(np.result_type(out, x, 1.0)))
            by_arg = dict(zip(wrt, inputs.values(blocks)))
            per_output.append(by_arg[self.wrt[0]] if self.single else
                              tuple(by_arg[i] for i in self.wrt))
        return build(out_tree, per_output)

    def __diffsrc_compiled__(self, *args):
        """The code the last call ran (the jvp or the pullback), or the jvp for `args`."""
        if args or self.last is None:
            args = args or _examples(self.fn)
            self.last = self.jvp.compiled_for(args, tuple(sorted(set(self.wrt))))
        return self.last

    @property
    def __diffsrc_source__(self):
        return self.__diffsrc_compiled__().source


def jacobian(f, wrt=0):
    """The Jacobian of `f` with respect to argument(s) `wrt`.

    `wrt` is an int, an argument name, or a tuple of them (then each output part holds a
    tuple of Jacobians, one per argument). Arguments may be floats, float arrays or
    containers of them; the output may be a container of floats and arrays. Each block is
    shaped `out.shape + in.shape` (JAX's convention); the blocks have the output's
    structure, each holding the argument's structure.

    Forward mode (one jvp per input entry) when the differentiated arguments have at most
    as many entries in all as the output, reverse mode (one pullback pass, one backward
    call per output entry) when they have more. The first call for given argument kinds
    and shapes runs one jvp column to learn the output's size.
    """
    return JacobianFunction(_resolve(f), wrt, "forward mode")


def hessian(f, wrt=0):
    """The Hessian of scalar `f` with respect to argument(s) `wrt`, shaped `in.shape * 2`
    (blocks `H[i][j]` for a tuple `wrt`): the forward-mode Jacobian of `ds.grad(f)`
    (forward-over-reverse), one Hessian-vector product per input entry."""
    gradient = GradientFunction(_resolve(f), wrt)
    return JacobianFunction(gradient, wrt, "second order (hessian)", forward_only=True)


def tangent(fn):
    """Register the forward rule of `fn` (the companion of `@ds.adjoint`).

        @ds.tangent(scipy.special.erf)
        def _(dots, y, x):
            (x_dot,) = dots
            return x_dot * 2 / np.sqrt(np.pi) * np.exp(-x * x)

    The rule receives a tuple with the tangent of each leading positional argument,
    the output and the call's arguments, and returns the output's tangent. A zero
    tangent arrives as an object that vanishes from sums and products, so the rule is
    written as plain maths. It is read and inlined like user code.
    """
    def register(template):
        if not callable(template):
            raise TypeError("@ds.tangent decorates the rule function")
        registry.register(fn, tangent=template)
        _global_cache.clear()
        _pullback_cache.clear()
        return template
    return register

