"""Derivative rules, one module per family of primitives; importing registers them all."""
from . import registry, structures, arithmetic, mathfuncs, builtins  # noqa: F401
from . import ufuncs, reductions, shape, indexing, linalg, creation, numpy_core  # noqa: F401
from . import helpers  # noqa: F401  (rules of the helpers generated code calls; last)
