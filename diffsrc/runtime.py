"""Small helpers that generated derivative code calls by name.

They are written against the array's own methods (not a fixed module) so the
same text runs on NumPy and CuPy arrays, and each is self-contained so that
`ds.export` can copy its source into a standalone module.
"""
import numpy as np


def unbroadcast(g, x):
    """Sum `g` down to the shape of `x`: the adjoint of NumPy broadcasting."""
    shape = np.shape(x)
    if np.shape(g) == shape:
        return g
    g = np.asarray(g) if not hasattr(g, "sum") else g
    extra = g.ndim - len(shape)
    if extra > 0:
        g = g.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    if not shape:
        g = g.reshape(())
        return g[()] if isinstance(x, (float, int)) or not hasattr(x, "shape") else g
    return g


def zeros_like(x):
    """A zero adjoint with the structure, shape and dtype of `x`."""
    if isinstance(x, float):
        return 0.0
    if isinstance(x, (bool, int, str)) or x is None:
        return None
    if isinstance(x, list):
        return [zeros_like(e) for e in x]
    if isinstance(x, tuple):
        return tuple(zeros_like(e) for e in x)
    if isinstance(x, dict):
        return {k: zeros_like(v) for k, v in x.items()}
    if hasattr(x, "__dataclass_fields__"):
        import dataclasses
        return dataclasses.replace(x, **{f.name: zeros_like(getattr(x, f.name))
                                         for f in dataclasses.fields(x) if f.init})
    if hasattr(x, "dtype") and x.dtype.kind not in "fc":
        return None
    return x * 0 if not hasattr(x, "shape") else _zeros_array(x)


def _zeros_array(x):
    out = x.copy() if x.ndim else x * 0
    if x.ndim:
        out.fill(0)
    return out


def accumulate(a, b):
    """a + b for adjoints of containers (lists, tuples, dicts); None is zero."""
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, list):
        return [accumulate(x, y) for x, y in zip(a, b)]
    if isinstance(a, tuple):
        return tuple(accumulate(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return {k: accumulate(a[k], b.get(k)) for k in a}
    return a + b


def unindex(g, x, index):
    """The adjoint of `x[index]`: `g` scattered into zeros shaped like `x`.

    Repeated integer indices accumulate (np.add.at semantics), so gathers with
    duplicates get the right gradient.
    """
    if isinstance(x, (list, tuple)):
        out = [zeros_like(e) for e in x]
        if isinstance(index, slice):
            positions = range(len(x))[index]
            for i, gi in zip(positions, g):
                out[i] = accumulate(out[i], gi)
        else:
            out[index] = accumulate(out[index], g)
        return type(x)(out) if isinstance(x, tuple) else out
    out = _zeros_array(np.asarray(x)) if not hasattr(x, "shape") else _zeros_array(x)
    if _is_basic(index):
        out[index] = g
    else:
        np.add.at(out, index, g)
    return out


def _is_basic(index):
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (slice, int, np.integer))
               for p in parts)


def index_update(x, index, v):
    """`x[index] = v` as a new array: the functional form of an in-place update."""
    if isinstance(x, list):
        out = list(x)
        out[index] = v
        return out
    out = x.copy()
    out[index] = v
    return out


def push(stack, value):
    stack.append(value)
    return stack


def raise_error(exc):
    raise exc


def unreduce(g, x, axis=None, keepdims=False):
    """Broadcast the adjoint of a reduction over `axis` back to the shape of `x`."""
    shape = np.shape(x)
    if axis is not None and not keepdims:
        axes = (axis,) if isinstance(axis, int) else tuple(axis)
        axes = sorted(a % len(shape) for a in axes)
        kept = list(np.shape(g))
        for a in axes:
            kept.insert(a, 1)
        g = g.reshape(kept) if hasattr(g, "reshape") else np.reshape(g, kept)
    return np.broadcast_to(g, shape)


def matmul_left(g, a, b):
    """The adjoint of `a` in `a @ b`, for every rank NumPy's matmul accepts."""
    if a.ndim == 2 and b.ndim == 2:
        return g @ b.T
    if a.ndim == 1 and b.ndim == 1:
        return g * b
    if b.ndim == 1:
        return unbroadcast(g[..., None] * b, a)
    if a.ndim == 1:
        return unbroadcast((g[..., None, :] @ b.swapaxes(-1, -2))[..., 0, :], a)
    return unbroadcast(g @ b.swapaxes(-1, -2), a)


def matmul_right(g, a, b):
    """The adjoint of `b` in `a @ b`."""
    if a.ndim == 2 and b.ndim == 2:
        return a.T @ g
    if a.ndim == 1 and b.ndim == 1:
        return g * a
    if a.ndim == 1:
        return unbroadcast(a[:, None] * g[..., None, :], b)
    if b.ndim == 1:
        return unbroadcast((a.swapaxes(-1, -2) @ g[..., None])[..., 0], b)
    return unbroadcast(a.swapaxes(-1, -2) @ g, b)


def dot_left(g, a, b):
    """The adjoint of `a` in `np.dot(a, b)` (scalars, vectors and matrices)."""
    if np.ndim(a) == 0 or np.ndim(b) == 0:
        return unbroadcast(g * b, a)
    if a.ndim > 2 or b.ndim > 2:
        return np.tensordot(g, b, axes=(list(range(a.ndim - 1, g.ndim)),
                                        [i for i in range(b.ndim) if i != b.ndim - 2]))
    return matmul_left(g, a, b)


def dot_right(g, a, b):
    """The adjoint of `b` in `np.dot(a, b)`."""
    if np.ndim(a) == 0 or np.ndim(b) == 0:
        return unbroadcast(g * a, b)
    if a.ndim > 2 or b.ndim > 2:
        moved = np.tensordot(a, g, axes=(list(range(a.ndim - 1)), list(range(a.ndim - 1))))
        return np.moveaxis(moved, 0, -2) if b.ndim > 1 else moved
    return matmul_right(g, a, b)


def array_adjoint(g, x):
    """The adjoint of `np.array(x)` for `x` a (nested) list or tuple of numbers/arrays."""
    if isinstance(x, (list, tuple)):
        return [array_adjoint(gi, xi) for gi, xi in zip(g, x)]
    return unbroadcast(g, x)


def unstack(g, count, axis=0):
    """The adjoint of `np.stack` of `count` arrays: the slices of `g` along `axis`."""
    moved = np.moveaxis(g, axis, 0)
    return [moved[i] for i in range(count)]


def unconcatenate(g, parts, axis=0):
    """The adjoint of `np.concatenate(parts, axis)`: `g` cut back into the parts."""
    sizes = [np.shape(p)[axis] for p in parts]
    cuts = np.cumsum(sizes)[:-1]
    return list(np.split(g, cuts, axis=axis))


def clip_mask(x, low, high):
    """Where `np.clip` passes its input through (the derivative is 1 there)."""
    inside = np.ones(np.shape(x), dtype=bool)
    if low is not None:
        inside = inside & (x >= low)
    if high is not None:
        inside = inside & (x <= high)
    return inside


def cast_like(g, x):
    """An adjoint cast back to the dtype of `x` (None for integer `x`)."""
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        return g if isinstance(x, float) else None
    if dtype.kind not in "fc":
        return None
    return g.astype(dtype, copy=False) if hasattr(g, "astype") else dtype.type(g)


def sum_items_adjoint(g, items):
    """The adjoint of the builtin `sum(items)` over a list or an array's rows."""
    if isinstance(items, (list, tuple)):
        return [unbroadcast(g, item) for item in items]
    return np.broadcast_to(g, np.shape(items))


def with_fields(obj, **fields):
    """A copy of `obj` (dataclass or plain object) with some fields replaced: its adjoint."""
    import copy
    import dataclasses
    if dataclasses.is_dataclass(obj):
        init = {f.name for f in dataclasses.fields(obj) if f.init}
        new = dataclasses.replace(obj, **{k: v for k, v in fields.items() if k in init})
        for k, v in fields.items():
            if k not in init:
                object.__setattr__(new, k, v)
        return new
    new = copy.copy(obj)
    for k, v in fields.items():
        setattr(new, k, v)
    return new
