"""The CuPy backend's fused kernels: one generated CUDA kernel per fusion group.

`FusedFunction` is what generated code calls (`h1, t_3 = fused_add_maximum(t, b1)`).
Per signature of its arguments (dtypes and shapes) it plans once:

* dtypes of every intermediate follow NumPy's promotion rules exactly: each op is
  evaluated once on one-element NumPy stand-ins of the operands' dtypes;
* if every output has the full broadcast shape and every dtype has a CUDA type,
  the group becomes one `cupy.ElementwiseKernel` (or `cupy.ReductionKernel` when it
  ends in a sum), built from `kernel_source` and cached by its text;
* otherwise (Python scalars only, shapes that a kernel would broadcast wrongly,
  unsupported dtypes) the call runs the group's ops one by one, exactly as the
  unfused code would.

The CUDA text is generated without CuPy (`kernel_source`), so it can be shown by
`ds.source(df, kernels=True)` and compiled with nvcc where no GPU exists.
"""
import builtins
import math
import operator

import numpy as np


CTYPES = {"float32": "float", "float64": "double", "bool": "bool", "int32": "int",
          "int64": "long long"}

_FLOAT_FUNCS = {np.exp: "exp", np.log: "log", np.log1p: "log1p", np.expm1: "expm1",
                np.tanh: "tanh", np.sin: "sin", np.cos: "cos", np.sqrt: "sqrt"}
_ARITH = {operator.add: "+", np.add: "+", operator.sub: "-", np.subtract: "-",
          operator.mul: "*", np.multiply: "*", operator.truediv: "/", np.divide: "/",
          np.true_divide: "/"}
_COMPARE = {operator.lt: "<", np.less: "<", operator.le: "<=", np.less_equal: "<=",
            operator.gt: ">", np.greater: ">", operator.ge: ">=", np.greater_equal: ">=",
            operator.eq: "==", np.equal: "==", operator.ne: "!=", np.not_equal: "!="}
_NAMES = {**{f: n for f, n in _FLOAT_FUNCS.items()}, operator.add: "add", np.add: "add",
          operator.sub: "sub", np.subtract: "sub", operator.mul: "mul", np.multiply: "mul",
          operator.truediv: "div", np.divide: "div", np.true_divide: "div",
          operator.pow: "pow", np.power: "pow", operator.neg: "neg", np.negative: "neg",
          np.maximum: "maximum", np.minimum: "minimum", np.where: "where",
          builtins.abs: "abs", np.abs: "abs", np.absolute: "abs", np.sign: "sign",
          np.square: "square", np.reciprocal: "reciprocal", np.sum: "sum"}


class Unsupported(Exception):
    """This group cannot become a kernel for these dtypes/shapes (the caller falls back)."""


def ctype(dtype):
    try:
        return CTYPES[np.dtype(dtype).name]
    except KeyError:
        raise Unsupported(f"no CUDA type for {np.dtype(dtype)}") from None


def kernel_name(group):
    """A readable name from the group's functions: fused_add_maximum."""
    names = []
    for op in group.ops:
        n = _NAMES.get(op.attrs["fn"], _COMPARE.get(op.attrs["fn"]) and "cmp")
        if n and n not in names:
            names.append(n)
    return "fused_" + "_".join(names[:4])


def _literal(value):
    """A C literal for a Python scalar constant, or None (it is passed as an argument)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}LL" if abs(value) < 2 ** 62 else None
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    return None


class Signature:
    """What a plan depends on: per input, a dtype (None: Python scalar of `pytype`) and a
    shape; constants embedded in the kernel are given by value."""

    def __init__(self, group, consts, kinds):
        self.group, self.consts, self.kinds = group, consts, kinds


def infer(group, kinds, consts):
    """dtype and shape of every value of the group, by NumPy's own promotion rules.

    kinds: per non-constant input, (dtype, shape) for arrays or a Python type.
    Returns (types, shapes, full_shape) keyed by value id; a Python-scalar value has
    its Python type as its type."""
    dummies, types, shapes = {}, {}, {}
    args = iter(kinds)
    for v in group.inputs:
        if v.id in consts:
            value = consts[v.id]
            dummies[v.id], types[v.id], shapes[v.id] = value, type(value), ()
            continue
        kind = next(args)
        if isinstance(kind, type):
            dummies[v.id], types[v.id], shapes[v.id] = kind(1), kind, ()
        else:
            dtype, shape = kind
            dummies[v.id] = np.ones((1,) if shape else (), dtype)
            types[v.id], shapes[v.id] = np.dtype(dtype), shape
    full = np.broadcast_shapes(*[shapes[v.id] for v in group.inputs])
    with np.errstate(all="ignore"):
        for op in group.ops:
            fn = op.attrs["fn"]
            operands = [dummies[a.id] for a in op.args[:1 if op is group.reduction else None]]
            try:
                out = fn(*operands)
            except Exception as exc:
                raise Unsupported(f"{fn}: {exc}") from None
            dummies[op.result.id] = out
            if op is group.reduction:
                types[op.result.id] = np.asarray(out).dtype
                continue
            types[op.result.id] = type(out) if type(out) in (float, int, bool) else \
                np.asarray(out).dtype
            shapes[op.result.id] = np.broadcast_shapes(*[shapes[a.id] for a in op.args])
    return types, shapes, full, dummies


def _ct(t):
    """The C type of a value's type (a Python scalar type or a NumPy dtype)."""
    if t is float:
        return "double"
    if t is int:
        return "long long"
    if t is bool:
        return "bool"
    return ctype(t)


def _op_expr(op, ref, types, dummies):
    """The CUDA expression of one elementwise op; operands cast as NumPy would."""
    fn = op.attrs["fn"]
    out = _ct(types[op.result.id])
    args = op.args

    def cast(a, c=out):
        return f"(({c}){ref(a)})"

    if fn in _ARITH:
        return f"{cast(args[0])} {_ARITH[fn]} {cast(args[1])}"
    if fn in _COMPARE:
        common = _ct(np.result_type(dummies[args[0].id], dummies[args[1].id]))
        return f"{cast(args[0], common)} {_COMPARE[fn]} {cast(args[1], common)}"
    floating = out in ("float", "double")
    if fn in _FLOAT_FUNCS:
        if not floating:
            raise Unsupported(f"{_FLOAT_FUNCS[fn]} on {out}")
        name = _FLOAT_FUNCS[fn] + ("f" if out == "float" else "")
        return f"{name}({cast(args[0])})"
    if fn in (operator.neg, np.negative):
        return f"-{cast(args[0])}"
    if fn in (operator.pos, np.positive):
        return cast(args[0])
    if fn is np.square:
        return f"{cast(args[0])} * {cast(args[0])}"
    if fn is np.reciprocal:
        return f"(({out})1) / {cast(args[0])}"
    if fn in (builtins.abs, np.abs, np.absolute):
        x = cast(args[0])
        return f"({x} < 0 ? -{x} : {x})"
    if fn is np.sign:
        x = cast(args[0])
        nan = f"isnan({x}) ? {x} : " if floating else ""
        return f"({nan}(({out})(({x} > 0) - ({x} < 0))))"
    if fn in (operator.pow, np.power):
        if not floating:
            raise Unsupported("integer power")
        exponent = dummies.get(("const", args[1].id))
        if exponent == 2:
            return f"{cast(args[0])} * {cast(args[0])}"
        return f"pow{'f' if out == 'float' else ''}({cast(args[0])}, {cast(args[1])})"
    if fn in (np.maximum, np.minimum):
        a, b = cast(args[0]), cast(args[1])
        cmp = ">" if fn is np.maximum else "<"
        nan = f" || isnan({a})" if floating else ""
        return f"(({a} {cmp} {b}{nan}) ? {a} : {b})"
    if fn is np.where:
        return f"({cast(args[0], 'bool')} ? {cast(args[1])} : {cast(args[2])})"
    raise Unsupported(f"no CUDA expression for {fn}")


class KernelText:
    """The pieces of one kernel: parameters, body (statements), and for a reduction
    the map function's name; `cuda()` gives a whole __global__ function for nvcc."""

    def __init__(self, name, params, outputs, body, reduction_type=None):
        self.name, self.params, self.outputs, self.body = name, params, outputs, body
        self.reduction_type = reduction_type

    @property
    def in_params(self):
        return ", ".join(f"{dtype} {n}" for n, dtype, _ in self.params)

    @property
    def out_params(self):
        return ", ".join(f"{dtype} {n}" for n, dtype, _ in self.outputs)

    @property
    def preamble(self):
        """For a reduction: a device function that maps one element."""
        if self.reduction_type is None:
            return ""
        args = ", ".join(f"const {c} {n}" for n, _, c in self.params)
        body = "\n".join("    " + line for line in self.body)
        return f"__device__ {self.reduction_type} {self.name}_map({args}) {{\n{body}\n}}\n"

    @property
    def map_expr(self):
        return f"{self.name}_map({', '.join(n for n, _, _ in self.params)})"

    def text(self):
        """What `ds.source(df, kernels=True)` shows."""
        kind = "ReductionKernel" if self.reduction_type else "ElementwiseKernel"
        head = f"// cupy.{kind} {self.name}({self.in_params}) -> ({self.out_params})"
        if self.reduction_type:
            return f"{head}\n{self.preamble}// reduce: a + b, identity 0\n"
        return head + "\n" + "\n".join(self.body) + "\n"

    def cuda(self):
        """A complete CUDA translation unit with the kernel body in a grid-stride loop,
        laid out as CuPy lays out its kernels (for checking the text with nvcc)."""
        params = [f"const {c}{'*' if array else ''} _raw_{n}"
                  for (n, _, c), array in zip(self.params, self._arrays)]
        if self.reduction_type:
            params.append(f"{self.reduction_type}* _raw_out")
        else:
            params += [f"{c}* _raw_{n}" for n, _, c in self.outputs]
        loads = [f"        const {c} {n} = _raw_{n}{'[i]' if array else ''};"
                 for (n, _, c), array in zip(self.params, self._arrays)]
        lines = [self.preamble, f'extern "C" __global__ void {self.name}('
                 + ", ".join(params + ["long long _n"]) + ") {"]
        if self.reduction_type:
            lines.append(f"    {self.reduction_type} _acc = 0;")
        lines.append("    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;"
                     " i < _n; i += (long long)blockDim.x * gridDim.x) {")
        lines += loads
        if self.reduction_type:
            lines.append(f"        _acc = _acc + {self.map_expr};")
        else:
            lines += [f"        {c} &{n} = _raw_{n}[i];" for n, _, c in self.outputs]
            lines += ["        " + line for line in self.body]
        lines.append("    }")
        if self.reduction_type:
            lines.append("    atomicAdd(_raw_out, _acc);")
        lines.append("}")
        return "\n".join(lines) + "\n"


def kernel_source(group, names, kinds, consts):
    """The KernelText of `group` for these input kinds (see `infer`).

    names: value id -> a C identifier for every input and output."""
    types, shapes, full, dummies = infer(group, kinds, consts)
    for v in group.inputs:
        if v.id in consts and types[v.id] in (int, float, bool):
            dummies[("const", v.id)] = consts[v.id]
    literal = {v.id: _literal(consts[v.id]) for v in group.inputs if v.id in consts}
    local = {}

    def ref(v):
        if v.id in literal:
            return literal[v.id]
        return local.get(v.id) or names[v.id]

    body = []
    elementwise = group.ops[:-1] if group.reduction is not None else group.ops
    for k, op in enumerate(elementwise):
        c = _ct(types[op.result.id])
        local[op.result.id] = f"v{k}"
        body.append(f"const {c} v{k} = {_op_expr(op, ref, types, dummies)};")
    params, arrays = [], []
    for v in group.inputs:
        if v.id in literal:
            continue
        t = types[v.id]
        dtype = t.name if isinstance(t, np.dtype) else {float: "float64", int: "int64",
                                                        bool: "bool"}[t]
        params.append((names[v.id], dtype, _ct(t)))
        arrays.append(isinstance(t, np.dtype))
    name = kernel_name(group)
    if group.reduction is not None:
        reduced = group.reduction.args[0]
        out_t = types[group.reduction.result.id]
        if out_t.kind != "f":
            raise Unsupported(f"sum to {out_t}")
        body.append(f"return ({ctype(out_t)}){ref(reduced)};")
        text = KernelText(name, params, [(names[group.reduction.result.id], out_t.name,
                                          ctype(out_t))], body, ctype(out_t))
    else:
        outputs = []
        for v in group.outputs:
            if shapes[v.id] != full:
                raise Unsupported(f"output {v} of shape {shapes[v.id]} in a kernel over {full}")
            t = types[v.id]
            if not isinstance(t, np.dtype):
                raise Unsupported("a Python-scalar output")
            outputs.append((names[v.id], t.name, ctype(t)))
            body.append(f"{names[v.id]} = {ref(v)};")
        text = KernelText(name, params, outputs, body)
    text._arrays = arrays
    return text


class FusedFunction:
    """The callable that generated code calls for one fusion group (see the module
    docstring); `kernels` maps each compiled signature to its KernelText."""

    def __init__(self, group, consts, xp):
        self.group, self.consts, self.xp = group, consts, xp
        self.name = kernel_name(group)
        self.args = [v for v in group.inputs if v.id not in consts]
        self.names = {}
        for k, v in enumerate(self.args):
            self.names[v.id] = f"x{k}"
        for k, v in enumerate(group.outputs):
            self.names[v.id] = f"y{k}"
        self.plans = {}
        self.kernels = {}
        self.reduce_kw = {}
        if group.reduction is not None:
            kwnames = group.reduction.attrs.get("kwnames", ())
            values = group.reduction.args[len(group.reduction.args) - len(kwnames):]
            self.reduce_kw = {k: consts[v.id] for k, v in zip(kwnames, values)}
        self.ndarray = xp.ndarray
        self.fallback_fns = {id(op): _backend_function(op.attrs["fn"], xp) for op in group.ops}

    def __call__(self, *args):
        ndarray = self.ndarray
        key = tuple([(a.dtype.char, a.shape) if type(a) is ndarray else type(a) for a in args])
        plan = self.plans.get(key)
        if plan is None:
            plan = self.plans[key] = self.plan(args, key)
        return plan(*args)

    def plan(self, args, key):
        """A compiled kernel for this signature, or the op-by-op fallback."""
        if not any(type(a) is self.ndarray for a in args):
            return self.fallback
        kinds = []
        for a in args:
            if type(a) is self.ndarray:
                kinds.append((a.dtype, a.shape))
            elif type(a) in (float, int, bool):
                kinds.append(type(a))
            else:
                return self.fallback
        try:
            text = kernel_source(self.group, self.names, kinds, self.consts)
        except Unsupported:
            return self.fallback
        self.kernels[key] = text
        if not hasattr(self.xp, "ElementwiseKernel"):   # an array module without kernels
            return self.fallback
        kernel = _compile(text, self.xp)
        if self.group.reduction is None:
            return kernel
        kw = self.reduce_kw
        return lambda *a: kernel(*a, **kw)

    def fallback(self, *args):
        """The group's ops one at a time, as the unfused code runs them."""
        env = dict(zip([v.id for v in self.args], args))
        env.update(self.consts)
        for op in self.group.ops:
            fn = self.fallback_fns[id(op)]
            kwnames = op.attrs.get("kwnames", ())
            npos = len(op.args) - len(kwnames)
            kw = {k: env[v.id] for k, v in zip(kwnames, op.args[npos:])}
            env[op.result.id] = fn(*[env[a.id] for a in op.args[:npos]], **kw)
        out = [env[v.id] for v in self.group.outputs]
        return out[0] if len(out) == 1 else tuple(out)

    def sources(self):
        """The kernel text of every compiled signature (or, before any GPU call, for
        float64 arrays of one common shape, as an example)."""
        if self.kernels:
            return [t.text() for t in self.kernels.values()]
        kinds = [(np.dtype("float64"), (2,))] * len(self.args)
        try:
            text = kernel_source(self.group, self.names, kinds, self.consts)
        except Unsupported as exc:
            return [f"// {self.name}: runs op by op ({exc})\n"]
        return ["// (example: float64 inputs; kernels are compiled per dtype on the first "
                "call)\n" + text.text()]


def _backend_function(fn, xp):
    """`np.exp` -> `xp.exp`: the function the unfused code would call on this backend."""
    name = getattr(fn, "__name__", None)
    if name and getattr(np, name, None) is fn and hasattr(xp, name):
        return getattr(xp, name)
    return fn


_compiled = {}


def _compile(text, xp):
    key = (text.text(), text.in_params, text.out_params)
    kernel = _compiled.get(key)
    if kernel is None:
        if text.reduction_type:
            kernel = xp.ReductionKernel(text.in_params, text.out_params, text.map_expr,
                                        "a + b", f"{text.outputs[0][0]} = a", "0",
                                        text.name, reduce_type=text.reduction_type,
                                        preamble=text.preamble)
        else:
            kernel = xp.ElementwiseKernel(text.in_params, text.out_params,
                                          "\n".join(text.body), text.name)
        _compiled[key] = kernel
    return kernel


class Fusion:
    """The codegen side: emit one call per group and hide its members.

    `prepare(gen)` runs after inlining is chosen: members' internal values stay
    inline (never named), outputs get names, and every member counts as sitting
    where the group's last op is, so no name the call reads is reused before it."""

    def __init__(self, groups, xp):
        self.groups, self.xp = groups, xp
        self.members = {}
        self.made = {}                  # id(group) -> its FusedFunction

    def prepare(self, gen):
        for group in self.groups:
            last = gen.pos[id(group.last)]
            outputs = {v.id for v in group.outputs}
            for op in group.ops:
                self.members[id(op)] = group
                gen.pos[id(op)] = last
                for r in op.results:
                    gen.def_pos[r.id] = last
                    if r.id in outputs:
                        gen.inline.pop(r.id, None)
                    else:
                        gen.inline[r.id] = None

    def emit(self, gen, op, depth):
        """Write the group's call at its last op; True when `op` is a group member."""
        group = self.members.get(id(op))
        if group is None:
            return False
        if op is not group.last:
            return True
        consts = {v.id: gen.const_value(v) for v in group.inputs
                  if gen.is_const(v) and _literal(gen.const_value(v)) is not None}
        if group.reduction is not None:
            kwnames = group.reduction.attrs.get("kwnames", ())
            for v in group.reduction.args[len(group.reduction.args) - len(kwnames):]:
                consts[v.id] = gen.const_value(v)
        function = self.made.get(id(group))
        if function is None:            # emitted once; region_has_code may emit twice
            function = self.made[id(group)] = FusedFunction(group, consts, self.xp)
        name = gen.bind(function, function.name)
        args = ", ".join(gen.ref(v).text for v in function.args)
        targets = ", ".join(gen.name(v) if gen.uses.get(v.id) else "_" for v in group.outputs)
        gen.emit(f"{targets} = {name}({args})", depth, op.loc)
        return True
