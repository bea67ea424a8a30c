"""Finite-difference gradient checking and hypothesis strategies for diffsrc tests.

Public helpers
--------------
check_grad(f, args, wrt=0, rtol=1e-5, atol=1e-6)
    Compare ``ds.grad(f, wrt=wrt)(*args)`` with CENTRAL finite differences
    computed in float64 over every element of every ``wrt`` argument.  The
    arguments may be floats, float ndarrays (any float dtype; the finite
    differences are always taken on a float64 copy) or nested
    dict / list / tuple / namedtuple / dataclass containers of those.  Ints,
    bools, strings, None and other objects inside containers are treated as
    non-differentiable and are not perturbed.  The analytic gradient must have
    the same structure as the argument: dict -> dict (same keys), list -> list,
    tuple -> tuple, dataclass -> instance of the same class, float -> float,
    ndarray -> ndarray of the same shape and dtype.  Returns the analytic
    gradient (a tuple of gradients when ``wrt`` is a tuple).

numeric_grad(f, args, wrt=0)
    The central finite-difference gradient alone (float64 everywhere).

assert_grad_structure(grad, template)
    Structure / type / shape / dtype check of one gradient against its argument.

assert_tree_allclose(actual, expected, rtol, atol)
    Numerical comparison of two nested structures leaf by leaf.

Strategies: ``floats``, ``nonzero_floats``, ``shapes``, ``arrays``,
``positive_arrays``, ``nonzero_arrays``, ``broadcast_pair``,
``broadcast_shapes`` (see their docstrings).

``f`` may also be a source string (``"def F(a, b): ..."``): it is passed to
``ds.grad`` as is, and executed with numpy/math in scope for the finite
differences.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import gc
import importlib.util
import inspect
import itertools
import math
import os
import tempfile

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import diffsrc as ds

__all__ = [
    "check_grad", "numeric_grad", "assert_grad_structure", "assert_tree_allclose",
    "leaf_paths", "get_path", "set_path", "wrt_indices", "callable_from",
    "floats", "nonzero_floats", "shapes", "arrays", "positive_arrays",
    "nonzero_arrays", "broadcast_shapes", "broadcast_pair", "deep_copy_args",
    "assert_args_equal", "poly_helper", "scaled_tanh_sum", "module_from_source",
]

# ---------------------------------------------------------------------------
# nested-structure utilities
# ---------------------------------------------------------------------------


def _is_dataclass_instance(obj):
    return dataclasses.is_dataclass(obj) and not isinstance(obj, type)


def _is_namedtuple(obj):
    return isinstance(obj, tuple) and hasattr(obj, "_fields")


def _is_float_scalar(obj):
    return isinstance(obj, (float, np.floating)) and not isinstance(obj, bool)


def _is_float_array(obj):
    return isinstance(obj, np.ndarray) and np.issubdtype(obj.dtype, np.floating)


def leaf_paths(obj, prefix=()):
    """Yield the paths of every differentiable scalar inside ``obj``.

    A path is a tuple of steps: ("key", k) for dicts, ("idx", i) for
    lists/tuples, ("attr", name) for dataclasses, ("elem", index_tuple) for an
    element of a float ndarray.  A bare float yields the path ``prefix``.
    """
    if obj is None or isinstance(obj, (bool, np.bool_, int, np.integer, str, bytes)):
        return
    if _is_float_scalar(obj):
        yield prefix
    elif isinstance(obj, np.ndarray):
        if _is_float_array(obj):
            for idx in np.ndindex(obj.shape):
                yield prefix + (("elem", idx),)
    elif isinstance(obj, dict):
        for k in obj:
            yield from leaf_paths(obj[k], prefix + (("key", k),))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from leaf_paths(v, prefix + (("idx", i),))
    elif _is_dataclass_instance(obj):
        for fld in dataclasses.fields(obj):
            yield from leaf_paths(getattr(obj, fld.name), prefix + (("attr", fld.name),))
    # anything else (functions, generic objects) is not differentiated


def get_path(obj, path):
    for kind, key in path:
        if kind == "key":
            obj = obj[key]
        elif kind == "idx":
            obj = obj[key]
        elif kind == "attr":
            obj = getattr(obj, key)
        elif kind == "elem":
            obj = obj[key]
        else:  # pragma: no cover
            raise ValueError(kind)
    return obj


def set_path(obj, path, value):
    """Return a copy of ``obj`` with the leaf at ``path`` replaced (functional)."""
    if not path:
        return value
    (kind, key), rest = path[0], path[1:]
    if kind == "elem":
        assert not rest
        out = np.array(obj, copy=True)
        out[key] = value
        return out
    if kind == "key":
        out = dict(obj) if type(obj) is dict else copy.copy(obj)
        out[key] = set_path(obj[key], rest, value)
        return out
    if kind == "idx":
        items = list(obj)
        items[key] = set_path(obj[key], rest, value)
        if isinstance(obj, list):
            return items
        if _is_namedtuple(obj):
            return type(obj)(*items)
        return tuple(items) if type(obj) is tuple else type(obj)(items)
    if kind == "attr":
        return dataclasses.replace(obj, **{key: set_path(getattr(obj, key), rest, value)})
    raise ValueError(kind)  # pragma: no cover


def _to_float64(obj):
    """Copy of ``obj`` with every float array / float scalar promoted to float64."""
    if _is_float_array(obj):
        return np.array(obj, dtype=np.float64, copy=True)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, dict):
        return type(obj)((k, _to_float64(v)) for k, v in obj.items()) if type(obj) is dict \
            else copy.copy(obj)
    if isinstance(obj, list):
        return [_to_float64(v) for v in obj]
    if _is_namedtuple(obj):
        return type(obj)(*[_to_float64(v) for v in obj])
    if isinstance(obj, tuple):
        return tuple(_to_float64(v) for v in obj)
    if _is_dataclass_instance(obj):
        return dataclasses.replace(
            obj, **{f.name: _to_float64(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                    if f.init})
    return obj


def deep_copy_args(args):
    """A deep copy of an argument tuple (for never-mutated checks)."""
    return copy.deepcopy(tuple(args))


def _tree_equal(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape
                and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True))
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_tree_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(
            _tree_equal(x, y) for x, y in zip(a, b))
    if _is_dataclass_instance(a):
        return type(a) is type(b) and all(
            _tree_equal(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    if type(a).__eq__ is object.__eq__ and hasattr(a, "__dict__") and a is not b:
        # plain objects (e.g. a model instance): compare their attributes
        return type(a) is type(b) and _tree_equal(vars(a), vars(b))
    return a == b


def assert_args_equal(before, after):
    """Assert two argument tuples are identical in structure and values (bitwise)."""
    assert _tree_equal(tuple(before), tuple(after)), (
        f"arguments were mutated:\nbefore={before!r}\nafter={after!r}")


# ---------------------------------------------------------------------------
# wrt handling
# ---------------------------------------------------------------------------


_source_modules = itertools.count()


def module_from_source(source, prefix="generated"):
    """`source` (numpy imported as np) as a module in a file of its own, so that diffsrc
    can read its functions' source; for tests that draw programs as text."""
    path = os.path.join(tempfile.mkdtemp(), f"{prefix}_{next(_source_modules)}.py")
    with open(path, "w") as f:
        f.write("import numpy as np\n\n" + source)
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def callable_from(f):
    """``f`` itself, or the function defined by a source string."""
    if callable(f):
        return f
    if isinstance(f, str):
        ns = {"np": np, "numpy": np, "math": math}
        exec(compile(f, "<gradcheck-source>", "exec"), ns)
        funcs = [v for k, v in ns.items() if inspect.isfunction(v) and k not in ("np", "math")]
        assert funcs, "source string defines no function"
        return funcs[-1]
    raise TypeError(f"not a function or source string: {f!r}")


def wrt_indices(f, wrt, nargs=None):
    """Normalise ``wrt`` to (tuple_of_positional_indices, single)."""
    single = isinstance(wrt, (int, str))
    items = (wrt,) if single else tuple(wrt)
    params = list(inspect.signature(callable_from(f)).parameters)
    out = []
    for w in items:
        if isinstance(w, str):
            out.append(params.index(w))
        else:
            i = int(w)
            if i < 0 and nargs is not None:
                i += nargs
            out.append(i)
    return tuple(out), single


# ---------------------------------------------------------------------------
# finite differences
# ---------------------------------------------------------------------------


def _scalar(y):
    y = np.asarray(y)
    assert y.size == 1, f"function output is not a scalar (shape {y.shape})"
    return float(y.reshape(()))


def _zeros_like_tree(obj):
    """float64 zeros with the structure of ``obj`` (non-differentiable leaves kept)."""
    if _is_float_scalar(obj):
        return 0.0
    if _is_float_array(obj):
        return np.zeros(obj.shape, dtype=np.float64)
    if isinstance(obj, dict):
        return {k: _zeros_like_tree(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_zeros_like_tree(v) for v in obj]
    if _is_namedtuple(obj):
        return type(obj)(*[_zeros_like_tree(v) for v in obj])
    if isinstance(obj, tuple):
        return tuple(_zeros_like_tree(v) for v in obj)
    if _is_dataclass_instance(obj):
        return dataclasses.replace(
            obj, **{f.name: _zeros_like_tree(getattr(obj, f.name))
                    for f in dataclasses.fields(obj) if f.init})
    return obj


def numeric_grad(f, args, wrt=0, eps=5e-6):
    """Central finite differences in float64 w.r.t. the ``wrt`` arguments.

    Step for a leaf with value v: h = eps * max(1, |v|).  Returns one structure
    per wrt argument (a tuple if ``wrt`` is a tuple), with float64 leaves.
    """
    fn = callable_from(f)
    args64 = [_to_float64(a) for a in args]
    idxs, single = wrt_indices(f, wrt, len(args64))
    grads = []
    for i in idxs:
        base = args64[i]
        g = _zeros_like_tree(base)
        for path in leaf_paths(base):
            v = float(get_path(base, path))
            h = eps * max(1.0, abs(v))
            plus = list(args64)
            minus = list(args64)
            plus[i] = set_path(base, path, v + h)
            minus[i] = set_path(base, path, v - h)
            d = (_scalar(fn(*plus)) - _scalar(fn(*minus))) / (2.0 * h)
            g = set_path(g, path, d)
        grads.append(g)
    return grads[0] if single else tuple(grads)


# ---------------------------------------------------------------------------
# structure and value comparison
# ---------------------------------------------------------------------------


def assert_grad_structure(grad, template, where="grad"):
    """The gradient must mirror the argument ``template``'s structure and types."""
    if template is None or isinstance(template, (bool, np.bool_, int, np.integer, str, bytes)):
        # non-differentiable leaf: no adjoint, a zero, or the value passed through
        assert grad is None or grad is template or (
            type(grad) is type(template) and grad == template) or (
            isinstance(grad, (int, float, np.number)) and grad == 0), (
            f"{where}: non-differentiable leaf {template!r} got adjoint {grad!r}")
        return
    if _is_float_scalar(template):
        assert _is_float_scalar(grad) and not isinstance(grad, np.ndarray), (
            f"{where}: gradient of a float must be a float, got {type(grad).__name__}: {grad!r}")
        return
    if isinstance(template, np.ndarray):
        if not _is_float_array(template):
            assert grad is None or (isinstance(grad, np.ndarray) and not np.any(grad)), (
                f"{where}: non-float array got adjoint {grad!r}")
            return
        if template.ndim == 0 and isinstance(grad, np.generic):
            assert grad.dtype == template.dtype, f"{where}: dtype {grad.dtype} != {template.dtype}"
            return
        assert isinstance(grad, np.ndarray), (
            f"{where}: gradient of an ndarray must be an ndarray, got {type(grad).__name__}")
        assert grad.shape == template.shape, f"{where}: shape {grad.shape} != {template.shape}"
        assert grad.dtype == template.dtype, f"{where}: dtype {grad.dtype} != {template.dtype}"
        return
    if isinstance(template, dict):
        assert isinstance(grad, dict), f"{where}: expected dict, got {type(grad).__name__}"
        assert set(grad) == set(template), f"{where}: keys {sorted(map(str, grad))} != {sorted(map(str, template))}"
        for k in template:
            assert_grad_structure(grad[k], template[k], f"{where}[{k!r}]")
        return
    if isinstance(template, list):
        assert isinstance(grad, list), f"{where}: expected list, got {type(grad).__name__}"
        assert len(grad) == len(template), f"{where}: len {len(grad)} != {len(template)}"
        for i, (g, t) in enumerate(zip(grad, template)):
            assert_grad_structure(g, t, f"{where}[{i}]")
        return
    if isinstance(template, tuple):
        assert isinstance(grad, tuple), f"{where}: expected tuple, got {type(grad).__name__}"
        if _is_namedtuple(template):
            assert type(grad) is type(template), f"{where}: expected {type(template).__name__}"
        assert len(grad) == len(template), f"{where}: len {len(grad)} != {len(template)}"
        for i, (g, t) in enumerate(zip(grad, template)):
            assert_grad_structure(g, t, f"{where}[{i}]")
        return
    if _is_dataclass_instance(template):
        assert type(grad) is type(template), (
            f"{where}: expected {type(template).__name__} instance, got {type(grad).__name__}")
        for fld in dataclasses.fields(template):
            assert_grad_structure(getattr(grad, fld.name), getattr(template, fld.name),
                                  f"{where}.{fld.name}")
        return
    # other objects: no requirement


def assert_tree_allclose(actual, expected, rtol=1e-5, atol=1e-6, where="grad"):
    """Leaf-by-leaf numerical comparison (structure must match the expected one)."""
    paths = list(leaf_paths(_to_float64(expected)))
    bad = []
    for path in paths:
        e = float(get_path(expected, path))
        try:
            a = float(get_path(actual, path))
        except (KeyError, IndexError, AttributeError, TypeError) as exc:
            raise AssertionError(f"{where}: missing leaf at {path}: {exc}") from None
        if not (math.isfinite(a) and abs(a - e) <= atol + rtol * abs(e)):
            bad.append((path, a, e))
    if bad:
        lines = [f"  at {p}: got {a!r}, expected {e!r}" for p, a, e in bad[:10]]
        raise AssertionError(
            f"{where}: {len(bad)} of {len(paths)} entries differ (rtol={rtol}, atol={atol}):\n"
            + "\n".join(lines))


# DIFFSRC_TEST_DEVICE=gpu re-runs every check_grad with the arguments on the GPU (CuPy):
# the gradient is computed there, must come back as CuPy arrays, and is compared on
# the host with the same finite differences.
ON_GPU = os.environ.get("DIFFSRC_TEST_DEVICE", "cpu") == "gpu"


def _device_grad(f, wrt, args):
    from diffsrc.backends import to_device
    device_args = to_device(args, "gpu")
    analytic = ds.grad(f, wrt=wrt)(*device_args)
    _release_device_garbage()
    host = [leaf for leaf in _leaves(analytic) if isinstance(leaf, np.ndarray)]
    assert not host, f"a gradient on the GPU came back as a NumPy array: {host[0]!r}"
    return to_device(analytic, "cpu")


def _leaves(tree):
    if isinstance(tree, dict):
        tree = list(tree.values())
    if dataclasses.is_dataclass(tree) and not isinstance(tree, type):
        tree = [getattr(tree, f.name) for f in dataclasses.fields(tree)]
    if isinstance(tree, (list, tuple)):
        return [leaf for item in tree for leaf in _leaves(item)]
    return [tree]


def _on_device(f, wrt):
    """f as diffsrc runs it on the GPU (the user's `np` there is CuPy's, random draws
    included), its value brought back to the host."""
    from diffsrc.backends import to_device
    value_and_grad = ds.value_and_grad(f, wrt=wrt)

    @functools.wraps(f)
    def run(*args):
        value = to_device(value_and_grad(*to_device(args, "gpu"))[0], "cpu")
        _release_device_garbage()
        return value
    return run


def _release_device_garbage(limit=1 << 30):
    """CuPy's random generators hold ~13 MB of device memory each, which only the cycle
    collector gives back; thousands of finite-difference calls would fill the GPU."""
    import cupy
    if cupy.get_default_memory_pool().used_bytes() > limit:
        gc.collect()


def check_grad(f, args, wrt=0, rtol=1e-5, atol=1e-6, eps=5e-6, draws_random=False):
    """Check ds.grad(f, wrt)(*args) against central finite differences (float64).

    Verifies structure/type/shape/dtype of every gradient against its argument
    and the values against finite differences.  Returns the analytic gradient.
    `draws_random`: f draws random numbers, so on the GPU its finite differences run
    there too (CuPy's generators draw other numbers than NumPy's from the same seed).
    """
    args = tuple(args)
    before = deep_copy_args(args)
    analytic = _device_grad(f, wrt, args) if ON_GPU else ds.grad(f, wrt=wrt)(*args)
    assert_args_equal(before, args)
    numeric = numeric_grad(_on_device(f, wrt) if ON_GPU and draws_random else f, args, wrt, eps=eps)
    idxs, single = wrt_indices(f, wrt, len(args))
    if single:
        assert not isinstance(analytic, tuple) or isinstance(args[idxs[0]], tuple), (
            "grad with a single wrt must return that argument's gradient, not a tuple")
        pairs = [(analytic, numeric, idxs[0])]
    else:
        assert isinstance(analytic, tuple) and len(analytic) == len(idxs), (
            f"grad with wrt={wrt!r} must return a tuple of {len(idxs)} gradients, got {analytic!r}")
        pairs = list(zip(analytic, numeric, idxs))
    for a, n, i in pairs:
        assert_grad_structure(a, args[i], where=f"grad[arg {i}]")
        assert_tree_allclose(a, n, rtol=rtol, atol=atol, where=f"grad[arg {i}]")
    return analytic


# ---------------------------------------------------------------------------
# hypothesis strategies
# ---------------------------------------------------------------------------


def floats(lo=-3.0, hi=3.0):
    """Finite float64 values in [lo, hi]."""
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, width=64)


def nonzero_floats(lo=0.25, hi=3.0):
    """Values with lo <= |x| <= hi, either sign (safe for division, abs, kinks at 0)."""
    return st.tuples(st.sampled_from([-1.0, 1.0]), floats(lo, hi)).map(lambda t: t[0] * t[1])


def shapes(min_dims=1, max_dims=3, min_side=1, max_side=4):
    """Small array shapes; size-1 axes are included (min_side=1)."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def arrays(shape=None, lo=-2.0, hi=2.0, dtype=np.float64):
    """float arrays of the given shape (or a strategy/`shapes()` by default) in [lo, hi]."""
    if shape is None:
        shape = shapes()
    width = 32 if np.dtype(dtype) == np.float32 else 64
    elements = st.floats(lo, hi, allow_nan=False, allow_infinity=False, width=width)
    return hnp.arrays(dtype, shape, elements=elements)


def positive_arrays(shape=None, lo=0.5, hi=3.0, dtype=np.float64):
    """Arrays with entries in [lo, hi] (lo > 0): safe for log, sqrt, division."""
    return arrays(shape, lo, hi, dtype)


def nonzero_arrays(shape=None, lo=0.25, hi=2.0, dtype=np.float64):
    """Arrays with lo <= |entry| <= hi, mixed signs (away from the kinks of abs/relu)."""
    if shape is None:
        shape = shapes()
    width = 32 if np.dtype(dtype) == np.float32 else 64
    mag = st.floats(lo, hi, allow_nan=False, allow_infinity=False, width=width)
    elements = st.tuples(st.sampled_from([-1.0, 1.0]), mag).map(lambda t: t[0] * t[1])
    return hnp.arrays(dtype, shape, elements=elements)


def broadcast_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4):
    """Tuples of mutually broadcastable shapes (size-1 axes and missing leading axes)."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=num_shapes, min_dims=min_dims, max_dims=max_dims, min_side=1,
        max_side=max_side).map(lambda bs: bs.input_shapes)


@st.composite
def broadcast_pair(draw, lo=-2.0, hi=2.0, lo_b=None, hi_b=None, min_dims=1, max_dims=3,
                   max_side=4, dtype=np.float64):
    """A pair (a, b) of float arrays whose shapes broadcast against each other.

    ``a`` has entries in [lo, hi]; ``b`` in [lo_b, hi_b] (default: same range).
    Both have at least ``min_dims`` dimensions.
    """
    sa, sb = draw(broadcast_shapes(2, min_dims=min_dims, max_dims=max_dims, max_side=max_side))
    a = draw(arrays(sa, lo, hi, dtype))
    b = draw(arrays(sb, lo if lo_b is None else lo_b, hi if hi_b is None else hi_b, dtype))
    return a, b


# ---------------------------------------------------------------------------
# helpers living in ANOTHER module (used by test_core_calls to check that
# callee names are resolved against the callee's own globals)
# ---------------------------------------------------------------------------

_HELPER_SCALE = 1.5


def poly_helper(x, c):
    """c * x**3 + _HELPER_SCALE * x  (uses this module's globals)."""
    return c * x ** 3 + _HELPER_SCALE * x


def scaled_tanh_sum(w, x):
    """sum(tanh(w * x)) * _HELPER_SCALE using this module's `np`."""
    return np.sum(np.tanh(w * x)) * _HELPER_SCALE
