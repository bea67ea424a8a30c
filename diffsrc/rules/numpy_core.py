"""The NumPy rules, by family (importing this module registers all of them).

    ufuncs      elementwise functions          reductions  sum, mean, prod, max, var, ...
    shape       reshape, joins, splits, pads   indexing    take, take_along_axis, sort
    linalg      products and numpy.linalg      creation    creation, casting, constants

Operators and their ufunc names (add, multiply, power, ...) are in arithmetic.py;
subscripts and subscript assignment in structures.py.
"""
from . import ufuncs, reductions, shape, indexing, linalg, creation  # noqa: F401

FAMILIES = {"elementwise": ufuncs, "reductions": reductions, "shape": shape,
            "indexing": indexing, "linalg": linalg, "creation": creation}
