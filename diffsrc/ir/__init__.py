"""The SSA intermediate representation: values, ops, blocks and functions."""
from .nodes import Value, Op, Block, Function, Location
from .builder import Builder
from .printer import format_function
from .verifier import verify

__all__ = ["Value", "Op", "Block", "Function", "Location", "Builder", "format_function", "verify"]
