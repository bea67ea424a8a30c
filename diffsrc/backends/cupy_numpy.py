"""The `np` that generated code sees on the CuPy backend: CuPy, plus NumPy's API where
CuPy's differs.

Generated code is one text for both backends, so it calls NumPy's API (`np.linalg.
vector_norm`, `np.sum(x, where=m)`, `np.take(x, i, mode="clip")`). This namespace is CuPy
with those functions written over CuPy; a NumPy function that has neither a CuPy
counterpart nor a translation here raises `BackendUnsupportedError` naming it, at the
call, instead of an AttributeError from inside CuPy. The NumPy backend never sees it.
"""
import collections
import functools
import types

import numpy as np

from ..errors import DiffsrcError


class BackendUnsupportedError(DiffsrcError, AttributeError):
    """A NumPy function the CuPy backend has no counterpart for (an AttributeError too,
    so `hasattr` still answers False)."""


class _Namespace(types.ModuleType):
    """CuPy's attributes (copied once, so a lookup is a dict hit) and the translations;
    a missing name is a clear error."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise BackendUnsupportedError(
            f"{self.__name__}.{name} has no CuPy counterpart: diffsrc's cupy backend cannot "
            "run it (use NumPy arrays for this function, or write it with functions CuPy has)")


QRResult = collections.namedtuple("QRResult", "Q R")
EighResult = collections.namedtuple("EighResult", "eigenvalues eigenvectors")
SlogdetResult = collections.namedtuple("SlogdetResult", "sign logabsdet")
SVDResult = collections.namedtuple("SVDResult", "U S Vh")


class _Generator:
    """NumPy's Generator API over CuPy's, which draws the standard distributions only:
    `normal` and `uniform` scale standard draws; other methods are CuPy's own, and one
    CuPy lacks is a clear error."""

    def __init__(self, generator):
        self._generator = generator

    def normal(self, loc=0.0, scale=1.0, size=None):
        return loc + scale * self._generator.standard_normal(size)

    def uniform(self, low=0.0, high=1.0, size=None):
        return low + (high - low) * self._generator.random(size)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return getattr(self._generator, name)
        except AttributeError:
            raise BackendUnsupportedError(
                f"Generator.{name} has no CuPy counterpart: diffsrc's cupy backend cannot "
                "run it (draw with NumPy, or with a method CuPy's Generator has)") from None


def _contains_device_array(x, cp):
    if isinstance(x, (list, tuple)):
        return any(_contains_device_array(e, cp) for e in x)
    return isinstance(x, cp.ndarray)


def namespace(cp):
    """The `np` of generated code on CuPy (built once per process)."""
    if cp.__name__ in _built:
        return _built[cp.__name__]
    ns = _Namespace("np")
    ns.__dict__.update({k: v for k, v in vars(cp).items() if not k.startswith("__")})
    linalg = _Namespace("np.linalg")
    linalg.__dict__.update({k: v for k, v in vars(cp.linalg).items()
                            if not k.startswith("__")})
    ns.linalg = linalg

    def nested(x):
        """A (nested) sequence holding CuPy arrays, stacked on the device."""
        if isinstance(x, (list, tuple)):
            return cp.stack([nested(e) for e in x])
        return cp.asarray(x)

    def creation(fn):
        @functools.wraps(fn)
        def make(a, dtype=None, *args, **kwargs):
            if isinstance(a, (list, tuple)) and _contains_device_array(a, cp):
                a = nested(a)
            return fn(a, dtype, *args, **kwargs)
        return make

    ns.asarray, ns.array = creation(cp.asarray), creation(cp.array)

    def as_array(a):
        return a if isinstance(a, cp.ndarray) else nested(a) if isinstance(
            a, (list, tuple)) else cp.asarray(a)

    def reduction(fn, identity=None, pick=None):
        """`fn` with NumPy's `where=` and `initial=` (and non-array inputs); `pick` is
        cp.maximum or cp.minimum for max/min, whose `initial` competes with the result."""
        @functools.wraps(fn)
        def reduce(a, axis=None, *args, where=None, initial=None, **kwargs):
            a = as_array(a)
            if where is not None:
                fill = identity if initial is None or identity is not None else initial
                a = cp.where(cp.asarray(where), a, fill)
            out = fn(a, axis, *args, **kwargs)
            if initial is not None:
                if pick is not None:
                    out = pick(out, initial)
                else:
                    out = out + initial if identity == 0 else out * initial
            return out
        return reduce

    for name, ident, pick in (("sum", 0, None), ("nansum", 0, None), ("prod", 1, None),
                              ("nanprod", 1, None), ("amax", None, cp.maximum),
                              ("amin", None, cp.minimum), ("max", None, cp.maximum),
                              ("min", None, cp.minimum)):
        if hasattr(cp, name):
            setattr(ns, name, reduction(getattr(cp, name), ident, pick))

    def mean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=None):
        a = as_array(a)
        if where is None:
            return cp.mean(a, axis, dtype, out, keepdims)
        w = cp.broadcast_to(cp.asarray(where), a.shape)
        total = cp.where(w, a, 0).sum(axis=axis, dtype=dtype, keepdims=keepdims)
        return total / w.sum(axis=axis, keepdims=keepdims, dtype=total.dtype)
    ns.mean = mean

    def take(a, indices, axis=None, out=None, mode="raise"):
        n = a.size if axis is None else a.shape[axis]
        indices = cp.asarray(indices)
        indices = indices.clip(0, n - 1) if mode == "clip" else indices % n if n else indices
        return cp.take(a, indices, axis, out)
    ns.take = take

    def dot(a, b, out=None):
        if np.ndim(a) == 0 or np.ndim(b) == 0:
            return cp.multiply(a, b)
        return cp.dot(a, b, out)
    ns.dot = dot

    def select(condlist, choicelist, default=0):
        if np.ndim(default) == 0:
            return cp.select(condlist, choicelist, default)
        out = cp.asarray(default)
        for cond, choice in zip(reversed(condlist), reversed(choicelist)):
            out = cp.where(cond, choice, out)
        return out
    ns.select = select

    def tensordot(a, b, axes=2):
        if isinstance(axes, (list, tuple)):
            axes = tuple(tuple(x) if isinstance(x, (list, tuple)) else (x,) for x in axes)
        return cp.tensordot(a, b, axes)
    ns.tensordot = tensordot

    def vecdot(x1, x2, /, *, axis=-1):
        return (x1 * x2).sum(axis=axis)
    ns.vecdot = vecdot

    def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
        a, b = cp.asarray(a), cp.asarray(b)
        shape = np.broadcast_shapes(a.shape, b.shape)
        return cp.cross(cp.broadcast_to(a, shape), cp.broadcast_to(b, shape), axisa, axisb,
                        axisc, axis)
    ns.cross = cross

    def vector_norm(x, /, *, axis=None, keepdims=False, ord=2):
        nd = x.ndim
        axes = tuple(range(nd)) if axis is None else \
            tuple(a % nd for a in ((axis,) if isinstance(axis, int) else axis))
        rest = [i for i in range(nd) if i not in axes]
        flat = x.transpose(rest + list(axes)).reshape([x.shape[i] for i in rest] + [-1])
        out = cp.linalg.norm(flat, ord, -1)
        if keepdims:
            out = out.reshape([1 if i in axes else n for i, n in enumerate(x.shape)])
        return out
    linalg.vector_norm = vector_norm

    def matrix_norm(x, /, *, keepdims=False, ord="fro"):
        if ord == "nuc":
            out = cp.linalg.svd(x, compute_uv=False).sum(axis=-1)
            return out[..., None, None] if keepdims else out
        return cp.linalg.norm(x, ord, (-2, -1), keepdims)
    linalg.matrix_norm = matrix_norm
    linalg.svdvals = lambda x, /: cp.linalg.svd(x, compute_uv=False)
    linalg.trace = lambda x, /, *, offset=0, dtype=None: cp.trace(x, offset, -2, -1, dtype)
    linalg.diagonal = lambda x, /, *, offset=0: cp.diagonal(x, offset, -2, -1)
    linalg.outer = lambda x1, x2, /: cp.outer(x1, x2)
    linalg.tensordot = lambda x1, x2, /, *, axes=2: tensordot(x1, x2, axes)
    linalg.vecdot = vecdot
    linalg.cross = lambda x1, x2, /, *, axis=-1: cross(x1, x2, axis=axis)
    linalg.matmul = cp.matmul

    def named(fn, result):
        @functools.wraps(fn)
        def call(*args, **kwargs):
            out = fn(*args, **kwargs)
            return result(*out) if isinstance(out, tuple) else out
        return call
    linalg.qr = named(cp.linalg.qr, QRResult)
    linalg.eigh = named(cp.linalg.eigh, EighResult)
    linalg.slogdet = named(cp.linalg.slogdet, SlogdetResult)
    linalg.svd = named(cp.linalg.svd, SVDResult)

    def solve(a, b):
        """NumPy 2's solve: a 1-D b is one vector, any other b a stack of (M, K)
        matrices, and the stack dimensions of a and b broadcast (CuPy's solve needs
        them equal)."""
        a, b = as_array(a), as_array(b)
        vector = b.ndim == 1
        if vector:
            b = b[:, None]
        batch = tuple(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
        if a.shape[:-2] != batch:
            a = cp.ascontiguousarray(cp.broadcast_to(a, batch + a.shape[-2:]))
        if b.shape[:-2] != batch:
            b = cp.ascontiguousarray(cp.broadcast_to(b, batch + b.shape[-2:]))
        x = cp.linalg.solve(a, b)
        return x[..., 0] if vector else x
    linalg.solve = solve

    def repeat(a, repeats, axis=None):
        if isinstance(repeats, cp.ndarray) and repeats.ndim:   # CuPy takes host counts only
            repeats = repeats.tolist()
        return cp.repeat(a, repeats, axis)
    ns.repeat = repeat
    random = _Namespace("np.random")
    random.__dict__.update({k: v for k, v in vars(cp.random).items() if not k.startswith("__")})
    random.default_rng = lambda seed=None: _Generator(cp.random.default_rng(seed))
    ns.random = random
    _built[cp.__name__] = ns
    return ns


_built = {}
