"""Generate docs/numpy_coverage.md from diffsrc's rule registry.

    python docs/gen_coverage.py            # rewrite docs/numpy_coverage.md
    python docs/gen_coverage.py --check    # exit 1 if the file is out of date

Nothing in the table is written by hand: for every NumPy function of the coverage
list (the functions issue 3 asks for) the script looks the function, its ndarray
method/attribute form and its operator form up in `diffsrc.rules.registry` and
reports what it finds: whether each form is registered, whether there is a reverse
rule (or the function is registered as having no derivative), the rule template
that implements it and the first line of that template's docstring (where the
subgradient conventions are stated). A second table lists every other NumPy entry
of the registry, so the page also shows what exists beyond the list.
"""
import inspect
import operator
import os
import sys

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import diffsrc  # noqa: E402,F401  (importing it registers every rule)
from diffsrc import runtime  # noqa: E402
from diffsrc.rules import registry  # noqa: E402
from diffsrc.rules.registry import Method  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.path.join(HERE, "numpy_coverage.md")

OPERATORS = {"add": ("+", operator.add), "subtract": ("-", operator.sub),
             "multiply": ("*", operator.mul), "divide": ("/", operator.truediv),
             "true_divide": ("/", operator.truediv), "floor_divide": ("//", operator.floordiv),
             "mod": ("%", operator.mod), "remainder": ("%", operator.mod),
             "power": ("**", operator.pow), "negative": ("-x", operator.neg),
             "positive": ("+x", operator.pos), "matmul": ("@", operator.matmul),
             "abs": ("abs(x)", abs), "less": ("<", operator.lt), "greater": (">", operator.gt),
             "equal": ("==", operator.eq), "not_equal": ("!=", operator.ne),
             "less_equal": ("<=", operator.le), "greater_equal": (">=", operator.ge)}

# The coverage list of issue 3, by family. A name is looked up as np.<name> (dotted
# names below numpy), ".name" is a method-only form, "@name" an attribute-only form.
SPEC = {
    "Elementwise": """add subtract multiply divide true_divide floor_divide mod remainder power
        negative positive float_power reciprocal square sqrt cbrt exp exp2 expm1 log log2 log10
        log1p logaddexp logaddexp2 sin cos tan arcsin arccos arctan arctan2 hypot sinh cosh tanh
        arcsinh arccosh arctanh abs absolute fabs sign maximum minimum fmax fmin clip where sinc
        deg2rad rad2deg degrees radians heaviside floor ceil round around trunc rint fix""",
    "Reductions": """sum mean prod max min amax amin var std cumsum cumprod average ptp nansum
        nanmean nanmax nanmin diff""",
    "Shape": """reshape ravel .flatten transpose @T swapaxes moveaxis expand_dims squeeze
        broadcast_to atleast_1d atleast_2d atleast_3d concatenate stack hstack vstack dstack
        column_stack split array_split hsplit vsplit tile repeat flip fliplr flipud roll rot90
        pad diag diagonal triu tril trace append lib.stride_tricks.sliding_window_view""",
    "Indexing": """[] []= take take_along_axis sort""",
    "Linear algebra": """dot vdot inner outer matmul tensordot einsum kron linalg.inv
        linalg.solve linalg.det linalg.slogdet linalg.cholesky linalg.norm linalg.eigh
        linalg.eigvalsh linalg.multi_dot""",
    "Creation and casting": """zeros ones full zeros_like ones_like full_like empty eye
        identity arange linspace array asarray copy .astype float32 float64 .item""",
    "No derivative (pass-through)": """argmax argmin argsort nonzero searchsorted shape ndim
        size @dtype equal not_equal less less_equal greater greater_equal logical_and logical_or
        logical_not logical_xor isnan isfinite isinf any all count_nonzero random.normal
        random.uniform random.rand random.randn random.randint random.choice random.permutation
        random.default_rng .normal .uniform .standard_normal .integers .random .choice""",
}
SPECIAL = {"[]": ("x[index]", operator.getitem), "[]=": ("x[index] = v", runtime.index_update)}


def resolve(name):
    """(label, function object or None, method name or None, attribute?)."""
    if name in SPECIAL:
        return SPECIAL[name][0], SPECIAL[name][1], None, False
    if name.startswith("."):
        return name[1:], None, name[1:], False
    if name.startswith("@"):
        return name[1:], None, name[1:], True
    obj = np
    for part in name.split("."):
        obj = getattr(obj, part)
    short = name.split(".")[-1]
    method = short if hasattr(np.ndarray, short) and callable(getattr(np.ndarray, short)) \
        else None
    attribute = short in ("T", "real", "imag", "shape", "ndim", "size", "dtype")
    if short in ("shape", "ndim", "size"):
        method, attribute = short, True
    return name, obj, method, attribute


def status(entry):
    if entry is None:
        return None
    if entry.adjoint is not None:
        return "rule"
    if entry.nondiff:
        return "none"
    if entry.meta.get("lower") is not None:
        return "lowered"
    return "missing"


def rule_text(entry):
    if entry is not None and entry.adjoint is None and entry.meta.get("lower") is not None:
        template = entry.meta["lower"]
    elif entry is None or entry.adjoint is None:
        return "", ""
    else:
        template = entry.adjoint
    name = getattr(template, "__qualname__", template.__name__).split(".<locals>")[0]
    where = f"`{template.__module__.replace('diffsrc.rules.', '')}.{name}`"
    doc = inspect.getdoc(template) or ""
    first = doc.split("\n\n")[0].replace("\n", " ").replace("|", "\\|")
    return where, first


def tangent_text(entries):
    """The forward-mode (tangent) rule of the differentiable forms, or a visible gap."""
    differentiable = [e for e in entries if e.adjoint is not None]
    if not differentiable:
        return "—"
    kinds = set()
    for e in differentiable:
        if e.tangent is None:
            return "**no tangent rule**"
        if isinstance(e.tangent, registry.Linear):
            kinds.add("linear")
        elif e.tangent == registry.DIAGONAL:
            kinds.add("from the adjoint")
        elif e.tangent == registry.SOURCE:
            kinds.add("from its source")
        else:
            kinds.add(f"`{e.tangent.__module__.replace('diffsrc.rules.', '')}."
                      f"{e.tangent.__name__}`")
    return ", ".join(sorted(kinds))


def cell(flag):
    return "yes" if flag else "—"


def row(name):
    label, fn, method, attribute = resolve(name)
    fn_entry = registry.lookup(fn) if fn is not None else None
    m_entry = registry.lookup(Method(method, attribute=attribute)) if method else None
    op = OPERATORS.get(name)
    op_entry = registry.lookup(op[1]) if op else None
    entries = [e for e in (fn_entry, m_entry, op_entry) if e is not None]
    states = {status(e) for e in entries}
    if not entries:
        verdict = "**NOT REGISTERED**"
    elif "missing" in states:
        verdict = "**no rule**"
    elif states == {"none"}:
        verdict = "no derivative (constant)"
    elif states == {"lowered"}:
        verdict = "lowered to differentiable calls"
    else:
        verdict = "reverse rule"
    primary = next((e for e in entries if e.adjoint is not None), entries[0] if entries else None)
    where, doc = rule_text(primary)
    if name in SPECIAL:
        fn_form = f"`{label}`"
    elif fn is not None:
        fn_form = f"`np.{name}`" + ("" if fn_entry is not None else " (not registered)")
    else:
        fn_form = "—"
    if method:
        text = f"`x.{method}`" if attribute else f"`x.{method}()`"
        m_form = text + ("" if m_entry is not None else " (not registered)")
    else:
        m_form = "—"
    o_form = f"`{op[0]}`" if op_entry is not None else "—"
    return (f"| {fn_form} | {m_form} | {o_form} | {verdict} | {tangent_text(entries)} | "
            f"{where} | {doc} |"), verdict


# Deprecated aliases that only some NumPy versions still export: left off the page, so
# that it reads the same under every NumPy diffsrc supports.
VERSION_DEPENDENT = {"row_stack"}


def numpy_name(fn):
    """`np.xxx` name of a registered NumPy callable, or None."""
    if isinstance(fn, Method):
        return None
    for prefix, module in (("", np), ("linalg.", np.linalg), ("random.", np.random),
                           ("lib.stride_tricks.", np.lib.stride_tricks)):
        name = getattr(fn, "__name__", None)
        if name and name not in VERSION_DEPENDENT and vars(module).get(name) is fn:
            return prefix + name
    if fn is sliding_window_view:
        return "lib.stride_tricks.sliding_window_view"
    return None


def listed_names():
    names = set()
    for text in SPEC.values():
        for name in text.split():
            names.add(name.lstrip(".@"))
    return names


def others():
    """Registered NumPy entries outside the coverage list, by family."""
    listed = listed_names()
    rows = {}
    for entry in list(registry.PRIMITIVES.values()):
        fn = entry.fn
        if isinstance(fn, Method):
            if fn.name in listed:
                continue
            label = f"`x.{fn.name}`" if fn.attribute else f"`x.{fn.name}()`"
        else:
            name = numpy_name(fn)
            if name is None or name in listed or name.startswith("random."):
                continue
            label = f"`np.{name}`"
        family = entry.meta.get("family") or (
            entry.adjoint.__module__.split(".")[-1] if entry.adjoint is not None else "other")
        state = {"rule": "reverse rule", "none": "no derivative (constant)",
                 "lowered": "lowered to differentiable calls",
                 "missing": "**no rule**"}[status(entry)]
        where, doc = rule_text(entry)
        rows.setdefault(family, []).append(
            f"| {label} | {state} | {tangent_text([entry])} | {where} | {doc} |")
    return {k: sorted(v) for k, v in sorted(rows.items())}


HEADER = """# NumPy coverage

*Generated by `python docs/gen_coverage.py` from diffsrc's rule registry
(`diffsrc.rules.registry`); do not edit by hand. `tests/test_numpy_coverage.py` fails
when this page is out of date or a listed function has no rule.*

Each row is one NumPy function of the coverage list: its function form, its ndarray
method/attribute form and its operator form where NumPy has them (and whether diffsrc
registers each), whether it has a reverse-mode rule or is registered as having no
derivative (its output is a constant of the derivative), its forward-mode (tangent)
rule (see "Forward mode" at the end), the reverse rule template, and the
first paragraph of the template's docstring, where conventions at kinks and ties are
stated. Rules live in `diffsrc/rules/` (ufuncs, reductions, shape, indexing, linalg,
creation; operators in arithmetic, subscripts in structures).

Conventions in short: `abs`/`sign`-like kinks take the subgradient 0 at 0;
`maximum`/`minimum`/`fmax`/`fmin` split ties half and half; `max`/`min`/`ptp` reductions
share ties equally; `clip` passes the adjoint on the closed interval; `sort` sends each
adjoint through a stable argsort; `prod`/`cumprod` are exact with zeros; `cholesky`/`eigh`
adjoints live on the triangle NumPy reads; random draws are constants.

## User-defined rules

Any callable, including one without Python source (a C extension, a SciPy ufunc), can
be given a reverse rule. The rule is an ordinary Python function written like the
built-in ones: it receives the output adjoint, the output and the call's arguments, and
returns one adjoint per leading positional argument (None for none). It is read and
inlined like user code, so it may use NumPy, branches and the helpers of
`diffsrc.runtime` (`unbroadcast` undoes broadcasting):

```python
import math
import numpy as np
import scipy.special
import diffsrc as ds

@ds.adjoint(scipy.special.erf)
def _(y_bar, y, x):
    return (y_bar * (2.0 / math.sqrt(math.pi)) * np.exp(-x * x),)

ds.grad(lambda x: np.sum(scipy.special.erf(x)))(np.ones(3))
```

A differentiated call with neither a rule nor readable source raises
`diffsrc.NoRuleError` naming the function and the user's line and pointing to
`@ds.adjoint`; asking for the gradient of an integer argument raises
`NonDifferentiableError`.
"""


def generate():
    lines = [HEADER]
    missing = []
    for family, text in SPEC.items():
        lines.append(f"## {family}\n")
        lines.append("| Function | Method / attribute | Operator | Derivative | Tangent | Rule "
                     "| Convention / notes |")
        lines.append("|---|---|---|---|---|---|---|")
        for name in text.split():
            line, verdict = row(name)
            lines.append(line)
            if verdict.startswith("**"):
                missing.append(name)
        lines.append("")
    random_count = sum(1 for e in registry.PRIMITIVES.values()
                       if (numpy_name(e.fn) or "").startswith("random."))
    lines.append(f"All {random_count} callables of `np.random` and the methods of "
                 "`np.random.Generator` are registered as random draws with no derivative.\n")
    lines.append("## Other registered NumPy functions\n")
    for family, rows in others().items():
        lines.append(f"### {family}\n")
        lines.append("| Function | Derivative | Tangent | Rule | Convention / notes |")
        lines.append("|---|---|---|---|---|")
        lines.extend(rows)
        lines.append("")
    lines.append("## Second order\n")
    lines.append("A pullback calls the helpers of `diffsrc.runtime` named below. Those with a "
                 "rule of their own can be differentiated again (gradients of gradients, "
                 "Hessian-vector products); a pullback that calls one without a rule raises "
                 "`NoRuleError` when differentiated again.\n")
    with_rule, without = [], []
    for entry in registry.PRIMITIVES.values():
        fn = entry.fn
        if getattr(fn, "__module__", None) != runtime.__name__ or entry.nondiff or \
                entry.foldable or entry.effect or fn.__name__.startswith("_"):
            continue
        (with_rule if entry.adjoint is not None else without).append(f"`{fn.__name__}`")
    lines.append("With a rule: " + ", ".join(sorted(with_rule)) + ".\n")
    lines.append("First order only: " + ", ".join(sorted(without)) + ".\n")
    lines.append("Forward over reverse (`ds.hvp`, `ds.hessian`) runs the pullback in forward "
                 "mode, so it needs the *tangent* rule of each helper the pullback calls; "
                 "one without raises `NoRuleError` naming it and \"second order\".\n")
    forward, backward_only = [], []
    for entry in registry.PRIMITIVES.values():
        fn = entry.fn
        if getattr(fn, "__module__", None) != runtime.__name__ or entry.nondiff or \
                entry.foldable or entry.effect or fn.__name__.startswith("_"):
            continue
        (forward if entry.tangent is not None else backward_only).append(f"`{fn.__name__}`")
    lines.append("With a tangent rule: " + ", ".join(sorted(forward)) + ".\n")
    lines.append("Without: " + ", ".join(sorted(backward_only)) + ".\n")
    no_tangent = sorted({e.emit or getattr(e.fn, "__name__", repr(e.fn))
                         for e in registry.PRIMITIVES.values()
                         if e.adjoint is not None and e.tangent is None and
                         getattr(e.fn, "__module__", None) != runtime.__name__})
    from_source = sorted(e.fn.__name__ for e in registry.PRIMITIVES.values()
                         if e.tangent == registry.SOURCE)
    lines.append("## Forward mode\n")
    lines.append("The Tangent column names each function's forward-mode rule: a template, "
                 "`linear` (the function applied to the tangents) or `from the adjoint` "
                 "(an elementwise function of one argument, whose adjoint is its tangent). "
                 "Functions with a reverse rule but no tangent rule raise `NoRuleError` in "
                 "`ds.jvp`, `ds.hvp`, `ds.hessian` and forward-mode `ds.jacobian`: "
                 + (", ".join(f"`{n}`" for n in no_tangent) if no_tangent else "none do")
                 + ".\n")
    lines.append("Second order (`ds.hvp`, `ds.hessian`) differentiates the generated pullback "
                 "in forward mode, so the helpers it calls need tangent rules too. Those whose "
                 "derivative is long are differentiated *from their source* (plain NumPy in "
                 "`diffsrc/runtime.py`, inlined at the call with its constant arguments folded): "
                 + ", ".join(f"`{n}`" for n in from_source) + ".\n")
    if missing:
        lines.append("## Gaps\n")
        lines.append("Listed but without a rule: " + ", ".join(f"`{m}`" for m in missing))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n", missing


def main(argv):
    text, missing = generate()
    if "--check" in argv:
        current = open(TARGET).read() if os.path.exists(TARGET) else ""
        if current != text:
            print("docs/numpy_coverage.md is out of date: run python docs/gen_coverage.py")
            return 1
        return 0
    with open(TARGET, "w") as f:
        f.write(text)
    print(f"wrote {TARGET}" + (f" ({len(missing)} gaps: {' '.join(missing)})" if missing else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
