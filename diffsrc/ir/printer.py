"""Prints IR in the numbered-value notation of the source documents: `%3 = %2 ** 2`."""
import operator

BINARY_SYMBOLS = {
    operator.add: "+", operator.sub: "-", operator.mul: "*", operator.truediv: "/",
    operator.floordiv: "//", operator.mod: "%", operator.pow: "**", operator.matmul: "@",
    operator.lt: "<", operator.le: "<=", operator.gt: ">", operator.ge: ">=",
    operator.eq: "==", operator.ne: "!=", operator.and_: "&", operator.or_: "|",
    operator.xor: "^",
}
UNARY_SYMBOLS = {operator.neg: "-", operator.pos: "+", operator.not_: "not ", operator.invert: "~"}


def callable_name(fn):
    """A short, readable name for a callable in IR listings and messages."""
    module = getattr(fn, "__module__", None) or ""
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    if module.startswith("numpy"):
        return "np." + name
    if module in ("math", "builtins", "", None) or module.startswith("diffsrc"):
        return name
    return f"{module}.{name}"


def _value(v):
    return repr(v)


def _op_text(op):
    a = [_value(x) for x in op.args]
    if op.opname == "const":
        return f"const {op.attrs['value']!r}"
    if op.opname == "call":
        fn = op.attrs["fn"]
        kwnames = op.attrs.get("kwnames", ())
        npos = len(a) - len(kwnames)
        if fn in BINARY_SYMBOLS and npos == 2 and not kwnames:
            return f"{a[0]} {BINARY_SYMBOLS[fn]} {a[1]}"
        if fn in UNARY_SYMBOLS and npos == 1 and not kwnames:
            return f"{UNARY_SYMBOLS[fn]}{a[0]}"
        parts = a[:npos] + [f"{k}={x}" for k, x in zip(kwnames, a[npos:])]
        return f"{callable_name(fn)}({', '.join(parts)})"
    if op.opname in ("vjp",):
        return f"vjp {callable_name(op.attrs['fn'])}({', '.join(a)})"
    extra = ""
    if op.opname == "for":
        extra = f" over={op.attrs.get('over')}" + (
            f" exit={op.attrs['exit']}" if op.attrs.get("exit") is not None else "")
    return f"{op.opname}{extra} {', '.join(a)}".rstrip()


def format_block(block, indent=1):
    pad = "    " * indent
    lines = []
    for op in block.ops:
        lhs = ", ".join(_value(r) for r in op.results)
        text = _op_text(op)
        loc = f"  # line {op.loc.lineno}" if op.loc else ""
        lines.append(f"{pad}{lhs + ' = ' if lhs else ''}{text}{loc}")
        for i, region in enumerate(op.regions):
            params = ", ".join(_value(p) for p in region.params)
            label = {"if": ("then", "else"), "for": ("body",), "while": ("cond", "body")}.get(
                op.opname, ())
            name = label[i] if i < len(label) else f"region{i}"
            lines.append(f"{pad}  {name}({params}):")
            lines.extend(format_block(region, indent + 1))
    return lines


def format_function(fn):
    """The whole function as text; what `ds.ir(f)` shows."""
    params = ", ".join(_value(p) for p in fn.params)
    header = f"function {fn.name}({params}):  # {fn.filename}:{fn.lineno}"
    lines = [header] + format_block(fn.body)
    pullback = getattr(fn, "pullback", None)
    if pullback is not None:
        seeds = ", ".join(_value(p) for p in pullback.params)
        lines += [f"  pullback({seeds}):"] + format_block(pullback, 2)
    return "\n".join(lines) + "\n"
