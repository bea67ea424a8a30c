"""The `math` module's differentiable functions, on Python floats."""
import math

from .registry import adjoint_rule, diagonal, nondifferentiable, register, tangent_rule

for _name in ("sin cos tan asin acos atan atan2 exp expm1 log log1p log2 log10 sqrt pow hypot "
              "sinh cosh tanh asinh acosh atanh erf erfc fabs degrees radians copysign").split():
    register(getattr(math, _name), emit=f"math.{_name}", foldable=True)
nondifferentiable(math.floor, math.ceil, math.trunc, math.isnan, math.isinf, math.isfinite,
                  foldable=True)
for _f in (math.floor, math.ceil, math.trunc, math.isnan, math.isinf, math.isfinite):
    register(_f, emit=f"math.{_f.__name__}")


@adjoint_rule(math.sin)
def sin_adjoint(y_bar, y, x):
    return (y_bar * math.cos(x),)


@adjoint_rule(math.cos)
def cos_adjoint(y_bar, y, x):
    return (-y_bar * math.sin(x),)


@adjoint_rule(math.tan)
def tan_adjoint(y_bar, y, x):
    return (y_bar * (1.0 + y * y),)


@adjoint_rule(math.asin)
def asin_adjoint(y_bar, y, x):
    return (y_bar / math.sqrt(1.0 - x * x),)


@adjoint_rule(math.acos)
def acos_adjoint(y_bar, y, x):
    return (-y_bar / math.sqrt(1.0 - x * x),)


@adjoint_rule(math.atan)
def atan_adjoint(y_bar, y, x):
    return (y_bar / (1.0 + x * x),)


@adjoint_rule(math.atan2)
def atan2_adjoint(z_bar, z, y, x):
    denominator = x * x + y * y
    return z_bar * x / denominator, -z_bar * y / denominator


@adjoint_rule(math.exp)
def exp_adjoint(y_bar, y, x):
    return (y_bar * y,)


@adjoint_rule(math.expm1)
def expm1_adjoint(y_bar, y, x):
    return (y_bar * (y + 1.0),)


@adjoint_rule(math.log)
def log_adjoint(y_bar, y, x, base=math.e):
    return y_bar / (x * math.log(base)), -y_bar * y / (base * math.log(base))


@adjoint_rule(math.log1p)
def log1p_adjoint(y_bar, y, x):
    return (y_bar / (1.0 + x),)


@adjoint_rule(math.log2)
def log2_adjoint(y_bar, y, x):
    return (y_bar / (x * math.log(2.0)),)


@adjoint_rule(math.log10)
def log10_adjoint(y_bar, y, x):
    return (y_bar / (x * math.log(10.0)),)


@adjoint_rule(math.sqrt)
def sqrt_adjoint(y_bar, y, x):
    return (y_bar / (2.0 * y),)


@adjoint_rule(math.pow)
def pow_adjoint(z_bar, z, x, y):
    return z_bar * y * math.pow(x, y - 1.0), z_bar * z * math.log(x) if x > 0 else 0.0


@adjoint_rule(math.hypot)
def hypot_adjoint(z_bar, z, x, y):
    return z_bar * x / z, z_bar * y / z


@adjoint_rule(math.sinh)
def sinh_adjoint(y_bar, y, x):
    return (y_bar * math.cosh(x),)


@adjoint_rule(math.cosh)
def cosh_adjoint(y_bar, y, x):
    return (y_bar * math.sinh(x),)


@adjoint_rule(math.tanh)
def tanh_adjoint(y_bar, y, x):
    return (y_bar * (1.0 - y * y),)


@adjoint_rule(math.asinh)
def asinh_adjoint(y_bar, y, x):
    return (y_bar / math.sqrt(x * x + 1.0),)


@adjoint_rule(math.acosh)
def acosh_adjoint(y_bar, y, x):
    return (y_bar / math.sqrt(x * x - 1.0),)


@adjoint_rule(math.atanh)
def atanh_adjoint(y_bar, y, x):
    return (y_bar / (1.0 - x * x),)


@adjoint_rule(math.erf)
def erf_adjoint(y_bar, y, x):
    return (y_bar * 2.0 / math.sqrt(math.pi) * math.exp(-x * x),)


@adjoint_rule(math.erfc)
def erfc_adjoint(y_bar, y, x):
    return (-y_bar * 2.0 / math.sqrt(math.pi) * math.exp(-x * x),)


@adjoint_rule(math.fabs)
def fabs_adjoint(y_bar, y, x):
    return (y_bar * math.copysign(1.0, x) if x != 0 else 0.0,)


@adjoint_rule(math.degrees)
def degrees_adjoint(y_bar, y, x):
    return (y_bar * (180.0 / math.pi),)


@adjoint_rule(math.radians)
def radians_adjoint(y_bar, y, x):
    return (y_bar * (math.pi / 180.0),)


@adjoint_rule(math.copysign)
def copysign_adjoint(z_bar, z, x, y):
    return (z_bar * (1.0 if (x >= 0) == (y >= 0) else -1.0), None)


# ------------------------------------------------------------------------ tangent rules
# One-argument functions: the adjoint applied to the tangent (registry.DIAGONAL).
diagonal(math.sin, math.cos, math.tan, math.asin, math.acos, math.atan, math.exp, math.expm1,
         math.log, math.log1p, math.log2, math.log10, math.sqrt, math.sinh, math.cosh,
         math.tanh, math.asinh, math.acosh, math.atanh, math.erf, math.erfc, math.fabs,
         math.degrees, math.radians)


@tangent_rule(math.atan2)
def atan2_tangent(dots, z, y, x):
    dy, dx = dots
    return (dy * x - dx * y) / (x * x + y * y)


@tangent_rule(math.pow)
def pow_tangent(dots, z, x, y):
    dx, dy = dots
    return dx * (y * math.pow(x, y - 1.0)) + dy * (z * math.log(x) if x > 0 else 0.0)


@tangent_rule(math.hypot)
def hypot_tangent(dots, z, x, y):
    dx, dy = dots
    return (dx * x + dy * y) / z


@tangent_rule(math.copysign)
def copysign_tangent(dots, z, x, y):
    dx, dy = dots
    return dx * (1.0 if (x >= 0) == (y >= 0) else -1.0)
