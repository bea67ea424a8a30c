"""IR nodes: SSA values defined by ops, ops grouped in blocks, blocks nested in ops.

Control flow is structured (as in MLIR's scf dialect): `if`, `for` and `while`
are ops that own regions (blocks) and pass loop-carried values explicitly as
block parameters and `yield` operands. Every op keeps the source location of
the user's statement it came from.
"""
from dataclasses import dataclass
import itertools

_ids = itertools.count(1)


@dataclass(frozen=True)
class Location:
    """Where an op came from in the user's code."""
    filename: str
    lineno: int

    def __str__(self):
        return f"{self.filename}:{self.lineno}"


class Value:
    """An SSA value: defined once (by an op result or a block parameter).

    `hint` is the user's variable name when there is one; codegen derives the
    Python name from it. `kind` is a coarse static type used where semantics
    differ: "list", "tuple", "dict", "stack", "int" (never differentiable) or None
    (a number or an array).
    """
    __slots__ = ("id", "hint", "kind")

    def __init__(self, hint="", kind=None):
        self.id = next(_ids)
        self.hint = hint
        self.kind = kind

    def __repr__(self):
        return f"%{self.id}" + (f"<{self.hint}>" if self.hint else "")


class Block:
    """A straight-line list of ops with parameters; nested blocks end in a `yield` op."""
    __slots__ = ("params", "ops")

    def __init__(self, params=None, ops=None):
        self.params = list(params or [])
        self.ops = list(ops or [])

    @property
    def terminator(self):
        return self.ops[-1] if self.ops and self.ops[-1].opname in ("yield", "return") else None


# The op names, with what their fields mean:
#   const    attrs: value                         results: [v]
#   call     args: operands; attrs: fn, kwnames (names of the trailing args)
#   if       args: [cond]; regions: [then, else]; each region yields the results
#   for      args: [start, stop, step] (attrs.over == "range") or [sequence]
#            (over == "items"), then the initial carried values; regions:
#            [body(index_or_item, *carried) -> yield carried]; attrs.exit: index
#            of the carried value that, once true, stops the loop (a break flag)
#   while    args: initial carried; regions: [cond(*carried) -> yield flag,
#            body(*carried) -> yield carried]
#   yield    args: what the region produces
#   return   args: the function's result leaves
#   stack    results: [a new, empty stack]           (loop tapes of the pullback)
#   push     args: [stack, *values]                  (effect)
#   pop      args: [stack]; results: the values pushed last
#   vjp      args: operands; attrs: fn -> results [output, pullback]
#   unvjp    args: [pullback, output_adjoint] -> results: adjoints of the operands
#   unpack   args: [structured argument]; attrs: tree -> results: its run-time leaves
#   pack     args: [structured argument, *leaf adjoints]; attrs: tree -> its adjoint
OPNAMES = frozenset("const call if for while yield return stack push pop vjp unvjp unpack "
                    "pack".split())
EFFECTFUL = frozenset(("push", "pop", "yield", "return"))


class Op:
    """One operation. `results` are the SSA values it defines."""
    __slots__ = ("opname", "args", "results", "attrs", "regions", "loc")

    def __init__(self, opname, args=(), results=(), attrs=None, regions=(), loc=None):
        assert opname in OPNAMES, opname
        self.opname = opname
        self.args = list(args)
        self.results = list(results)
        self.attrs = dict(attrs or {})
        self.regions = list(regions)
        self.loc = loc

    @property
    def result(self):
        assert len(self.results) == 1, self
        return self.results[0]

    def __repr__(self):
        return f"Op({self.opname}, {self.args} -> {self.results})"


class Function:
    """A function in SSA form.

    `params` are the leaves of the flattened arguments; `signature` (an
    api-level description) says how the user's arguments map onto them. The
    body ends with a `return` op whose operands are the output leaves.
    """

    def __init__(self, name, params, body, arg_names=(), filename="<unknown>", lineno=0):
        self.name = name
        self.params = list(params)
        self.body = body
        self.arg_names = list(arg_names)
        self.filename = filename
        self.lineno = lineno
        self.out_tree = None
        self.in_trees = None


def walk_ops(block):
    """Every op in `block` and in the regions nested inside it, in program order."""
    for op in block.ops:
        yield op
        for region in op.regions:
            yield from walk_ops(region)


def substitute(block, mapping):
    """Replace operand references in `block` (recursively) following `mapping`."""
    for op in walk_ops(block):
        op.args = [mapping.get(a, a) for a in op.args]


def substitute_chains(blocks, mapping):
    """`substitute` in every block, where a replacement may itself be replaced (a -> b,
    b -> c): every value goes to the end of its chain."""
    for key, value in list(mapping.items()):
        while value in mapping:
            value = mapping[value]
        mapping[key] = value
    for block in blocks:
        substitute(block, mapping)
