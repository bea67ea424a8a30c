"""Derivative rules, one module per family of primitives; importing registers them all."""
from . import registry, structures, arithmetic, mathfuncs, numpy_core, builtins  # noqa: F401
