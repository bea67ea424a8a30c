"""A small builder that appends ops to the current block and hands back their results."""
from contextlib import contextmanager

from .nodes import Block, Op, Value


class Builder:
    """Appends ops to `self.block`; `loc` is stamped on every op it creates."""

    def __init__(self, block=None, loc=None):
        self.block = block if block is not None else Block()
        self.loc = loc

    def op(self, opname, args=(), nresults=1, hints=None, kinds=None, attrs=None, regions=()):
        hints = hints or [""] * nresults
        kinds = kinds or [None] * nresults
        results = [Value(h, k) for h, k in zip(hints, kinds)]
        op = Op(opname, args, results, attrs, regions, self.loc)
        self.block.ops.append(op)
        return op

    def const(self, value, hint=""):
        return self.op("const", attrs={"value": value}, hints=[hint]).result

    def call(self, fn, args, kwnames=(), hint="", kind=None):
        return self.op("call", args, attrs={"fn": fn, "kwnames": tuple(kwnames)},
                       hints=[hint], kinds=[kind]).result

    @contextmanager
    def at(self, block):
        """Temporarily build into another block (a region being filled)."""
        saved = self.block
        self.block = block
        try:
            yield block
        finally:
            self.block = saved

    @contextmanager
    def located(self, loc):
        saved = self.loc
        self.loc = loc or saved
        try:
            yield
        finally:
            self.loc = saved
