"""The one registry of primitives and their derivative rules.

A primitive is a callable diffsrc does not look inside: a NumPy function, a
`math` function, a Python operator, an ndarray method. Each entry says how
codegen writes a call to it and, when it is differentiable, gives its adjoint
*template*: an ordinary Python function

    def rule(y_bar, y, *args, **kwargs) -> tuple of adjoints

that receives the output adjoint, the output and the call's own arguments and
returns one adjoint per leading positional argument (None where an argument
gets none; arguments past the end of the tuple get none). The reverse-mode
transform reads the template with the same frontend as user code and inlines
it, so rules stay short maths and everything else (accumulation, control flow,
structure) lives in the transform.
"""
from dataclasses import dataclass, field


@dataclass(eq=False)
class Primitive:
    fn: object
    emit: str | None = None        # dotted name codegen writes ('np.exp'); None: operator/method
    adjoint: object = None         # the reverse rule template
    tangent: object = None         # the forward rule template (forward mode)
    nondiff: bool = False          # output carries no derivative (comparisons, argmax, shapes)
    foldable: bool = False         # evaluated at transform time when all arguments are constants
    effect: bool = False           # random draws, printing: never folded, moved or removed
    result_kind: str | None = None  # static kind of the output ("int", "list", "tuple", ...)
    meta: dict = field(default_factory=dict)


class Method:
    """An ndarray method or attribute, called on its first argument: `x.sum(axis=0)`, `x.T`."""
    _interned = {}

    def __new__(cls, name, attribute=False):
        key = (name, attribute)
        if key not in cls._interned:
            self = super().__new__(cls)
            self.name, self.attribute = name, attribute
            self.__name__ = self.__qualname__ = ("." if True else "") + name
            cls._interned[key] = self
        return cls._interned[key]

    def __repr__(self):
        return f"Method({self.name!r})"


PRIMITIVES = {}


def _key(fn):
    try:
        hash(fn)
        return fn
    except TypeError:
        return id(fn)


def register(fn, emit=None, **options):
    """Declare `fn` a primitive. Returns its registry entry."""
    entry = PRIMITIVES.get(_key(fn))
    if entry is None:
        entry = PRIMITIVES[_key(fn)] = Primitive(fn, emit)
    if emit is not None:
        entry.emit = emit
    for name, value in options.items():
        setattr(entry, name, value)
    return entry


def lookup(fn):
    try:
        return PRIMITIVES.get(_key(fn))
    except TypeError:
        return None


def adjoint_rule(*fns, **options):
    """Decorator: register the template below as the reverse rule of each of `fns`."""
    def decorate(template):
        for fn in fns:
            register(fn, adjoint=template, **options)
        return template
    return decorate


def tangent_rule(*fns):
    """Decorator: register the template below as the forward (tangent) rule of each of `fns`."""
    def decorate(template):
        for fn in fns:
            register(fn, tangent=template)
        return template
    return decorate


def nondifferentiable(*fns, **options):
    for fn in fns:
        register(fn, nondiff=True, **options)


def is_constant(x):
    """For rule templates: whether `x` is a constant at the call being differentiated.

    The frontend answers it while transforming (so `if is_constant(y) and y == 2:`
    folds away); generated code never calls it.
    """
    return False
