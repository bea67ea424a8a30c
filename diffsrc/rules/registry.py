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

Forward mode (transforms/forward.py) uses the primitive's `tangent`, one of:

* a template `rule(dots, y, *args, **kwargs) -> y_dot`, where `dots` holds one
  tangent per leading positional argument. A zero tangent is `ZERO`, an object
  that exists only while transforming: products with it vanish and it drops out
  of sums, so a rule is written as plain maths (`dx * y + x * dy`) and zero terms
  cost nothing in the generated code;
* `Linear(positions, joint)`: the function is linear in those arguments (and
  depends on the others only through their shapes or as constants), so its
  tangent is the function itself applied to the tangents: once with every
  tangent (`joint`, e.g. reshape, concatenate, x[i] = v), or once per argument
  and summed (a product, e.g. matmul, einsum);
* `DIAGONAL`: an elementwise function of one argument; its Jacobian is diagonal,
  hence symmetric, so the adjoint template applied to the tangent is the tangent;
* `SOURCE`: a runtime helper written in plain Python/NumPy (a pullback's helper):
  its source is inlined beside the call and differentiated like user code.

A primitive with an adjoint but no tangent is an error in forward mode, never a
wrong derivative.
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


class ZeroTangent:
    """The zero tangent inside tangent templates (transform time only): it absorbs
    products and quotients and vanishes from sums, so that `dx * y + x * dy` with a zero
    `dx` lowers to `x * dy`."""

    def __add__(self, other):
        return other

    def __radd__(self, other):
        return other

    def __sub__(self, other):
        return -other

    def __rsub__(self, other):
        return other

    def __mul__(self, other):
        return self

    def __rmul__(self, other):
        return self

    def __truediv__(self, other):
        return self

    def __matmul__(self, other):
        return self

    def __rmatmul__(self, other):
        return self

    def __neg__(self):
        return self


ZERO = ZeroTangent()


@dataclass(frozen=True)
class Linear:
    """Tangent of a function linear in the arguments at `positions` (None: every positional
    argument from `first` on): `joint` applies it once to all tangents, else once per
    argument (a multilinear product), summing."""
    positions: tuple | None = (0,)
    joint: bool = True
    first: int = 0
    which: int | None = None

    def active(self, count, which=0):
        """The linear positions; with `which` (the position of a product adjoint helper's
        `which` argument, e.g. inner_adjoint(g, a, b, which)): the adjoint g and the
        factor that is not the one differentiated."""
        if self.which is not None:
            return (0, 2) if which == 0 else (0, 1)
        return range(self.first, count) if self.positions is None else \
            [p for p in self.positions if p < count]


DIAGONAL = "diagonal"


SOURCE = "source"


def from_source(*fns):
    """Declare the tangent of each of `fns` (runtime helpers of pullbacks, whose
    derivatives are long but whose code is plain NumPy) the forward-mode derivative of
    its own source, inlined where it is called."""
    for fn in fns:
        register(fn, tangent=SOURCE)


def linear(*fns, positions=(0,), joint=True, first=0, which=None):
    """Declare each of `fns` linear in `positions` (see Linear): its tangent is itself."""
    for fn in fns:
        register(fn, tangent=Linear(positions, joint, first, which))


def diagonal(*fns):
    """Declare each of `fns` elementwise in its one argument: the adjoint is the tangent."""
    for fn in fns:
        register(fn, tangent=DIAGONAL)


def _zero_hook(low, args, kwargs):
    from ..frontend.abstract import ObjS, Static
    a = args[0]
    return Static((isinstance(a, Static) and a.value is ZERO) or (
        isinstance(a, ObjS) and a.cls is ZeroTangent))


def _scalar_hook(low, args, kwargs):
    from ..frontend.abstract import Static
    a = args[0]
    return Static(getattr(a, "kind", None) in ("float", "int") or (
        isinstance(a, Static) and isinstance(a.value, (int, float))))


def is_zero(x_dot):
    """For tangent templates: whether a tangent is the zero tangent (folded while
    transforming; generated code never calls it)."""
    return x_dot is ZERO


def is_scalar(x):
    """For templates: whether `x` is a Python number, which never broadcasts (folded while
    transforming; generated code never calls it)."""
    return isinstance(x, (int, float))


register(is_zero, meta={"lower": _zero_hook})
register(is_scalar, meta={"lower": _scalar_hook})
