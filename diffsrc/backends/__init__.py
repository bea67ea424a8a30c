"""Array backends: which array module the generated code runs against.

Generated code names its array module `np`. A backend binds that name (and any
array constants the code captured) to NumPy or to CuPy, so the same text runs on
the CPU or the GPU. The backend follows the arguments: CuPy arrays select CuPy,
anything else NumPy; arguments on both devices are an error naming them. The CuPy
backend can also fuse elementwise groups into generated kernels (`fuse=True`,
the default), which changes the generated text: fused groups become calls.
"""
import dataclasses

import numpy as np

from ..errors import DiffsrcError


class BackendMismatchError(DiffsrcError):
    """Arguments live on different devices (NumPy and CuPy arrays in one call)."""


@dataclasses.dataclass(frozen=True)
class Backend:
    """`name` is "numpy" or "cupy"; `fuse` asks the CuPy backend for fused kernels."""
    name: str
    fuse: bool = True

    def __post_init__(self):
        if self.name not in ("numpy", "cupy"):
            raise ValueError(f"unknown backend {self.name!r} (use 'numpy' or 'cupy')")

    @property
    def fused(self):
        return self.name == "cupy" and self.fuse

    def module(self):
        if self.name == "numpy":
            return np
        try:
            import cupy
        except ImportError as exc:
            raise DiffsrcError(f"the cupy backend (device 'gpu') needs CuPy and a CUDA GPU, "
                               f"and CuPy cannot be imported here: {exc}") from None
        return cupy

    def bind(self, namespace):
        """Point the generated code's `np` at this backend's module (on CuPy, CuPy with
        NumPy's API where the two differ: backends/cupy_numpy.py); captured NumPy
        arrays (weights, masks, and integer ones: `np.r_[0:10]` ranges are operands as
        often as indices) move to the device once, here, not on every call: CuPy refuses
        host operands, and takes device index arrays as readily as host ones. The one
        host-only use of an integer array, `np.repeat`'s counts, is translated back in
        cupy_numpy.py and runtime.unrepeat."""
        if self.name == "numpy":
            return namespace
        from .cupy_numpy import namespace as cupy_namespace
        xp = self.module()
        namespace["np"] = cupy_namespace(xp)
        for name, value in list(namespace.items()):
            if type(value) is np.ndarray and value.dtype.kind in "biufc":
                namespace[name] = xp.asarray(value)
        return namespace

    def describe(self):
        if self.name == "numpy":
            return "numpy"
        return "cupy (fused elementwise kernels)" if self.fuse else "cupy (unfused)"


NUMPY = Backend("numpy")
CUPY = Backend("cupy")


def resolve(spec):
    """A Backend from None (follow the arguments), a name, or a Backend."""
    if spec is None or isinstance(spec, Backend):
        return spec
    if isinstance(spec, str):
        return Backend(spec)
    raise TypeError(f"backend must be None, 'numpy', 'cupy' or a Backend, not {spec!r}")


def is_device_array(x):
    """A CuPy array (checked by module name: CuPy need not be importable)."""
    return type(x).__module__.startswith("cupy") and hasattr(x, "__cuda_array_interface__")


def _devices(x, found):
    """Collect which array kinds a (nested) argument holds: 'numpy' and/or 'cupy'."""
    if type(x) is np.ndarray:
        found.add("numpy")
    elif is_device_array(x):
        found.add("cupy")
    elif isinstance(x, dict):
        for v in x.values():
            _devices(v, found)
    elif isinstance(x, (list, tuple)):
        for v in x:
            _devices(v, found)
    elif dataclasses.is_dataclass(x) and not isinstance(x, type):
        for f in dataclasses.fields(x):
            _devices(getattr(x, f.name), found)
    return found


def detect(args, names=()):
    """The backend the arguments select; BackendMismatchError when they disagree."""
    where = {}
    for i, a in enumerate(args):
        for kind in _devices(a, set()):
            where.setdefault(kind, names[i] if i < len(names) else f"#{i}")
    if len(where) == 2:
        raise BackendMismatchError(
            f"argument {where['numpy']!r} holds NumPy arrays but argument {where['cupy']!r} "
            "holds CuPy arrays; put every array on one device (diffsrc.tree.to_device) or "
            "pass backend= to choose one explicitly")
    return CUPY if "cupy" in where else NUMPY


def add_device_option(parser, help):
    """The examples' `--device {cpu,gpu}` flag (argparse)."""
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help=help)


def device_module(parser, args):
    """The array module `args.device` asks for; a missing CuPy or GPU is a usage error."""
    try:
        return require_device(args.device)
    except DiffsrcError as exc:
        parser.error(str(exc))


def require_device(device):
    """The array module of `device`: NumPy for "cpu", CuPy for "gpu" (what the examples'
    `--device` flag calls); a DiffsrcError that says what is missing (CuPy, or a CUDA
    device) when the GPU cannot be used."""
    if device in ("cpu", "numpy"):
        return np
    if device not in ("gpu", "cupy"):
        raise ValueError(f"unknown device {device!r} (use 'cpu' or 'gpu')")
    xp = CUPY.module()
    try:
        count = xp.cuda.runtime.getDeviceCount()
    except Exception as exc:            # noqa: BLE001 - CUDA reports a missing GPU many ways
        raise DiffsrcError(f"device 'gpu' needs a CUDA GPU, and CuPy finds none: {exc}") \
            from None
    if count < 1:
        raise DiffsrcError("device 'gpu' needs a CUDA GPU, and CuPy finds none")
    return xp


def synchronize(x=None):
    """Wait for the GPU's queued work (for timings); nothing on the CPU. With `x`, only
    when `x` holds a CuPy array."""
    if x is not None and "cupy" not in _devices(x, set()):
        return
    import sys
    cupy = sys.modules.get("cupy")
    if cupy is not None:
        cupy.cuda.get_current_stream().synchronize()


def to_device(tree, device):
    """A copy of `tree` with every array on `device` ("gpu"/"cupy" or "cpu"/"numpy")."""
    if device in ("gpu", "cupy"):
        convert = CUPY.module().asarray
    elif device in ("cpu", "numpy"):
        def convert(x):
            return x.get() if is_device_array(x) else x
    else:
        raise ValueError(f"unknown device {device!r} (use 'cpu' or 'gpu')")
    return _map_arrays(tree, convert)


def _map_arrays(x, convert):
    if type(x) is np.ndarray or is_device_array(x):
        return convert(x)
    if isinstance(x, dict):
        return {k: _map_arrays(v, convert) for k, v in x.items()}
    if isinstance(x, list):
        return [_map_arrays(v, convert) for v in x]
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return type(x)(*[_map_arrays(v, convert) for v in x])
    if isinstance(x, tuple):
        return tuple(_map_arrays(v, convert) for v in x)
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return dataclasses.replace(x, **{f.name: _map_arrays(getattr(x, f.name), convert)
                                         for f in dataclasses.fields(x) if f.init})
    return x
