"""Forward mode and the transforms built on it: jvp, hvp, hessian, jacobian.

`jvp` runs the forward-mode transform (transforms/forward.py) through the same
pipeline and cache as `grad`. The others compose transforms by the closure
property: the generated code of `ds.grad(f)` is read again and differentiated
in forward mode (forward-over-reverse), so loops and branches keep working.
"""
import numpy as np

from .api import (GradientFunction, _bind, _check_differentiable, _closure_key, _fast_key,
                  _global_cache, _example_args, _pullback_cache, _resolve, pullback, transform)
from .errors import NoRuleError, TransformError
from .frontend.abstract import Static, TupleS
from .frontend.trees import build, tree_of
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


def _check_tangent(fn, i, primal, tangent):
    tree = tree_of(primal)
    try:
        same = tree_of(tangent).kind == tree.kind and all(
            np.shape(a) == np.shape(b) for a, b in zip(_leaves(tree, primal),
                                                       _leaves(tree, tangent)))
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


def _leaves(tree, value):
    from .frontend.trees import leaves_of
    return leaves_of(tree, value)


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

    @property
    def __diffsrc_source__(self):
        if self.last is None:
            examples = _examples(self.fn)
            self.compiled_for(examples, tuple(range(len(examples))))
        return self.last.source


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

    @property
    def __diffsrc_source__(self):
        return self.jvp.__diffsrc_source__


def hvp(f, wrt=0):
    """The Hessian-vector product of scalar `f`: `ds.hvp(f)(*args, v)` is H @ v, H the
    Hessian with respect to argument `wrt` (forward mode over the generated gradient)."""
    return HvpFunction(_resolve(f), wrt)


def _basis(x, j):
    if isinstance(x, float):
        return 1.0
    e = np.zeros(np.shape(x), dtype=np.result_type(x, np.float64) if np.ndim(x) else float)
    e.flat[j] = 1.0
    return e


class JacobianFunction:
    """What `ds.jacobian` and `ds.hessian` return; see `jacobian`."""

    def __init__(self, fn, wrt, order, forward_only=False):
        self.fn = fn
        if not isinstance(wrt, (int, str)) or isinstance(wrt, bool):
            raise TypeError("jacobian/hessian differentiate with respect to one argument: wrt "
                            "must be an int or an argument name")
        self.wrt = wrt
        self.jvp = JvpFunction(fn, order)
        self.forward_only = forward_only
        self.last = None

    def index(self, args):
        if isinstance(self.wrt, int):
            return self.wrt if self.wrt >= 0 else len(args) + self.wrt
        from .api import _normalise_wrt
        return _normalise_wrt(getattr(self.fn, "fn", self.fn), self.wrt)[0][0]

    def __call__(self, *args, **kwargs):
        if kwargs:
            args = _bind(getattr(self.fn, "fn", self.fn), args, kwargs)
        w = self.index(args)
        x = args[w]
        if not (isinstance(x, float) or (isinstance(x, np.ndarray) and x.dtype.kind == "f")):
            raise TypeError(f"jacobian/hessian differentiate with respect to a float or a "
                            f"float array, not {type(x).__name__}")
        n = int(np.size(x))
        tangents = [None] * len(args)

        def column(j):
            tangents[w] = _basis(x, j) if j is not None else np.zeros_like(x) * 1.0
            y, y_dot = self.jvp(args, tangents)
            self.last = self.jvp.last
            if not (isinstance(y, float) or isinstance(y, (np.ndarray, np.generic))):
                raise TypeError("jacobian/hessian need a function returning one float or "
                                f"array, not {type(y).__name__}")
            return y, y_dot

        y, first = column(0 if n else None)
        m = int(np.size(y))
        shape = np.shape(y) + np.shape(x)
        if n == 0:
            return np.zeros(shape)
        if m < n and not self.forward_only:
            y, back = pullback(self.fn, *args)
            self.last = next((c for c in _pullback_cache.values()
                              if c.source == back.__diffsrc_source__), self.last)
            rows = [np.asarray(back(_basis(y, i) if np.ndim(y) else 1.0)[w])
                    for i in range(m)]
            result = np.stack(rows).reshape(shape)
        else:
            cols = [np.asarray(first)] + [np.asarray(column(j)[1]) for j in range(1, n)]
            result = np.stack(cols, axis=-1).reshape(shape)
        return float(result) if shape == () and isinstance(x, float) else result

    @property
    def __diffsrc_source__(self):
        if self.last is None:
            return self.jvp.__diffsrc_source__
        return self.last.source


def jacobian(f, wrt=0):
    """The Jacobian of `f` with respect to argument `wrt`, shaped `out.shape + in.shape`.

    Forward mode (one jvp per input entry) when the input has at most as many entries
    as the output, reverse mode (one pullback per output entry) when it has more: the
    cheaper of the two. The first column is always computed forward, which also gives
    the output's size.
    """
    return JacobianFunction(_resolve(f), wrt, "forward mode")


def hessian(f, wrt=0):
    """The Hessian of scalar `f` with respect to argument `wrt`, shaped `in.shape * 2`:
    the forward-mode Jacobian of `ds.grad(f)` (forward-over-reverse)."""
    gradient = GradientFunction(_resolve(f), wrt)
    if not gradient.single:
        raise TypeError("hessian differentiates with respect to one argument: wrt must be an "
                        "int or an argument name")
    return JacobianFunction(gradient, gradient.wrt[0], "second order (hessian)",
                            forward_only=True)


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

