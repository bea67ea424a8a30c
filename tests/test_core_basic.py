"""Core transformer acceptance tests: scalar Python, the public API surface,
operators, the math module, builtins and desugared syntax.

Every gradient is checked against a closed form or against central finite
differences in float64 (tests/gradcheck.py).
"""
import ast
import math
import re

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import diffsrc as ds

try:
    from gradcheck import check_grad, floats, nonzero_floats
except ImportError:  # tests/ turned into a package
    from tests.gradcheck import check_grad, floats, nonzero_floats

EXACT = dict(rel=1e-12, abs=1e-12)
HYP = settings(max_examples=25, deadline=None)


# ---------------------------------------------------------------------------
# The two functions of the source document (MODELS.md item 3)
# ---------------------------------------------------------------------------


def F(a, b):
    return a / (1 + b**2)


def G(x):
    return 3 * x**2 + 2 * x + 1


def test_F_gradient_both_arguments():
    ga, gb = ds.grad(F, wrt=(0, 1))(1.0, 2.0)
    assert ga == pytest.approx(0.2, **EXACT)
    assert gb == pytest.approx(-0.16, **EXACT)


def test_F_default_wrt_is_first_argument():
    g = ds.grad(F)(1.0, 2.0)
    assert not isinstance(g, tuple)
    assert isinstance(g, float)
    assert g == pytest.approx(0.2, **EXACT)


def test_G_gradient_at_5():
    g = ds.grad(G)(5.0)
    assert isinstance(g, float)
    assert g == pytest.approx(32.0, **EXACT)


@HYP
@given(x=floats(-10, 10))
def test_G_gradient_closed_form(x):
    assert ds.grad(G)(x) == pytest.approx(6 * x + 2, rel=1e-12, abs=1e-12)


@HYP
@given(a=floats(-5, 5), b=floats(-5, 5))
def test_F_gradient_closed_form(a, b):
    ga, gb = ds.grad(F, wrt=(0, 1))(a, b)
    assert ga == pytest.approx(1 / (1 + b * b), rel=1e-12, abs=1e-12)
    assert gb == pytest.approx(-2 * a * b / (1 + b * b) ** 2, rel=1e-12, abs=1e-12)


def test_F_value_and_grad():
    v, (ga, gb) = ds.value_and_grad(F, wrt=(0, 1))(1.0, 2.0)
    assert v == pytest.approx(0.2, **EXACT)
    assert ga == pytest.approx(0.2, **EXACT)
    assert gb == pytest.approx(-0.16, **EXACT)


def test_value_and_grad_default_wrt():
    v, g = ds.value_and_grad(G)(5.0)
    assert v == pytest.approx(86.0, **EXACT)
    assert g == pytest.approx(32.0, **EXACT)


def test_value_and_grad_single_name():
    v, g = ds.value_and_grad(F, wrt="b")(1.0, 2.0)
    assert v == pytest.approx(0.2, **EXACT)
    assert g == pytest.approx(-0.16, **EXACT)


# ---------------------------------------------------------------------------
# IR and generated source
# ---------------------------------------------------------------------------


def test_ir_has_numbered_ssa_values():
    text = ds.ir(F)
    assert isinstance(text, str)
    assert re.search(r"%\d+\s*=", text), text
    numbered = set(re.findall(r"%\d+", text))
    assert len(numbered) >= 3, text  # b**2, 1 + ..., a / ...


def test_ir_of_G_mentions_each_operation():
    text = ds.ir(G)
    assert len(set(re.findall(r"%\d+", text))) >= 5, text


def _generated_source(fn, *args, wrt=0):
    df = ds.grad(fn, wrt=wrt)
    df(*args)  # make sure the derivative for these argument kinds exists
    src = ds.source(df)
    assert isinstance(src, str) and src.strip()
    return src


def test_source_is_valid_python_with_a_def():
    src = _generated_source(F, 1.0, 2.0, wrt=(0, 1))
    assert "def" in src
    compile(src, "<diffsrc-generated>", "exec")
    tree = ast.parse(src)
    assert any(isinstance(n, ast.FunctionDef) for n in ast.walk(tree))


def test_source_has_no_machinery_objects():
    src = _generated_source(F, 1.0, 2.0, wrt=(0, 1))
    assert "object at 0x" not in src
    assert "<function" not in src
    assert "<built-in" not in src


def test_source_has_one_statement_per_line():
    src = _generated_source(F, 1.0, 2.0, wrt=(0, 1))
    tree = ast.parse(src)
    starts = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.stmt)]
    assert len(starts) == len(set(starts)), src


def test_grad_returns_a_callable():
    df = ds.grad(F)
    assert callable(df)
    assert callable(ds.grad(F, wrt=(0, 1)))
    assert callable(ds.value_and_grad(F))


def test_source_names_derive_from_user_names():
    src = _generated_source(F, 1.0, 2.0, wrt=(0, 1))
    names = {n.id for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Name)}
    names |= {n.arg for n in ast.walk(ast.parse(src)) if isinstance(n, ast.arg)}
    assert "a" in names and "b" in names, sorted(names)
    # DESIGN/issue: adjoints are named after the user's variables, e.g. `b_bar`
    assert any(re.fullmatch(r"[ab]\w*_bar\w*", n) for n in names), sorted(names)


def test_source_of_grad_of_G_is_valid_python():
    src = _generated_source(G, 5.0)
    compile(src, "<diffsrc-generated>", "exec")


# ---------------------------------------------------------------------------
# Source-string entry point
# ---------------------------------------------------------------------------

F_SRC = "def F(a, b):\n    return a / (1 + b**2)"


def test_grad_of_source_string_both():
    ga, gb = ds.grad(F_SRC, wrt=(0, 1))(1.0, 2.0)
    assert ga == pytest.approx(0.2, **EXACT)
    assert gb == pytest.approx(-0.16, **EXACT)


def test_grad_of_source_string_default_and_name():
    assert ds.grad(F_SRC)(1.0, 2.0) == pytest.approx(0.2, **EXACT)
    assert ds.grad(F_SRC, wrt="b")(1.0, 2.0) == pytest.approx(-0.16, **EXACT)


def test_grad_of_source_string_with_numpy_and_math():
    src = (
        "import math\n"
        "import numpy as np\n"
        "def H(x, w):\n"
        "    return math.sin(x) * np.sum(np.tanh(w))\n"
    )
    w = np.array([0.1, -0.4, 0.7])
    gx, gw = ds.grad(src, wrt=(0, 1))(0.3, w)
    assert gx == pytest.approx(math.cos(0.3) * np.sum(np.tanh(w)), rel=1e-12)
    np.testing.assert_allclose(gw, math.sin(0.3) * (1 - np.tanh(w) ** 2), rtol=1e-12)


def test_source_string_gradient_checked_numerically():
    src = "def K(x, y):\n    z = x * y + x ** 2\n    return z / (1.0 + y * y)\n"
    check_grad(src, (0.7, -1.3), wrt=(0, 1))


# ---------------------------------------------------------------------------
# Decorator forms and wrt selection
# ---------------------------------------------------------------------------


def test_bare_decorator():
    @ds.grad
    def cube(x):
        return x**3

    assert cube(2.0) == pytest.approx(12.0, **EXACT)


def test_decorator_with_tuple_wrt():
    @ds.grad(wrt=(0, 1))
    def prod(x, y):
        return x * y + y

    gx, gy = prod(3.0, 4.0)
    assert gx == pytest.approx(4.0, **EXACT)
    assert gy == pytest.approx(4.0, **EXACT)


def test_decorator_with_name_wrt():
    @ds.grad(wrt="y")
    def prod(x, y):
        return x * y * y

    assert prod(3.0, 4.0) == pytest.approx(24.0, **EXACT)


def test_decorator_with_int_wrt():
    @ds.grad(wrt=1)
    def prod(x, y):
        return x * y * y

    assert prod(3.0, 4.0) == pytest.approx(24.0, **EXACT)


def three(x, y, z):
    return x * y + 2.0 * z * x + z**3


@pytest.mark.parametrize(
    "wrt, expected",
    [
        (0, 2.0 + 2 * 3.0),
        (1, 1.0),
        (2, 2 * 1.0 + 3 * 9.0),
        ("x", 8.0),
        ("z", 29.0),
        ((0, 2), (8.0, 29.0)),
        ((2, 0), (29.0, 8.0)),
        (("z", "y"), (29.0, 1.0)),
        (("x", "y", "z"), (8.0, 1.0, 29.0)),
        ((1,), (1.0,)),
    ],
)
def test_wrt_selection(wrt, expected):
    g = ds.grad(three, wrt=wrt)(1.0, 2.0, 3.0)
    if isinstance(expected, tuple):
        assert isinstance(g, tuple) and len(g) == len(expected)
        for gi, ei in zip(g, expected):
            assert gi == pytest.approx(ei, **EXACT)
    else:
        assert not isinstance(g, tuple)
        assert g == pytest.approx(expected, **EXACT)


def test_mixed_int_and_name_wrt():
    g = ds.grad(three, wrt=(0, "z"))(1.0, 2.0, 3.0)
    assert g[0] == pytest.approx(8.0, **EXACT)
    assert g[1] == pytest.approx(29.0, **EXACT)


# ---------------------------------------------------------------------------
# pullback
# ---------------------------------------------------------------------------


def test_pullback_F():
    y, back = ds.pullback(F, 1.0, 2.0)
    assert y == pytest.approx(0.2, **EXACT)
    adj = back(1.0)
    assert isinstance(adj, tuple) and len(adj) == 2
    assert adj[0] == pytest.approx(0.2, **EXACT)
    assert adj[1] == pytest.approx(-0.16, **EXACT)


def test_pullback_is_linear_in_cotangent_and_reusable():
    y, back = ds.pullback(F, 1.0, 2.0)
    a1 = back(1.0)
    a3 = back(3.0)
    a0 = back(0.0)
    assert a3[0] == pytest.approx(3 * a1[0], **EXACT)
    assert a3[1] == pytest.approx(3 * a1[1], **EXACT)
    assert a0[0] == 0.0 and a0[1] == 0.0
    assert back(1.0)[1] == pytest.approx(-0.16, **EXACT)  # calling again is fine


def powi(x, n):
    return x**n


def test_pullback_int_argument_adjoint_is_none():
    y, back = ds.pullback(powi, 2.0, 5)
    assert y == pytest.approx(32.0, **EXACT)
    gx, gn = back(1.0)
    assert gx == pytest.approx(80.0, **EXACT)
    assert gn is None


def moded(x, mode, flag):
    if flag:
        x = x * 2.0
    if mode == "square":
        return x * x
    return x


def test_pullback_str_and_bool_arguments_adjoint_is_none():
    y, back = ds.pullback(moded, 3.0, "square", True)
    assert y == pytest.approx(36.0, **EXACT)
    gx, gmode, gflag = back(1.0)
    assert gx == pytest.approx(24.0, **EXACT)
    assert gmode is None and gflag is None
    y, back = ds.pullback(moded, 3.0, "identity", False)
    assert y == pytest.approx(3.0, **EXACT)
    assert back(1.0)[0] == pytest.approx(1.0, **EXACT)


def unused_second(x, y):
    return x * 2.0


def test_pullback_unused_float_argument_gets_real_zero():
    y, back = ds.pullback(unused_second, 1.5, 4.0)
    gx, gy = back(1.0)
    assert gx == pytest.approx(2.0, **EXACT)
    assert gy is not None and gy == 0.0 and isinstance(gy, float)


# ---------------------------------------------------------------------------
# Python operators
# ---------------------------------------------------------------------------


def op_add(a, b):
    return a + b * 2.0 + 1.0


def op_sub(a, b):
    return a - 3.0 * b - 2.0 - (b - a)


def op_mul(a, b):
    return a * b * a


def op_div(a, b):
    return a / b + 1.0 / a + 3 / b


def op_floordiv(a, b):
    return (a // b) * a + b


def op_mod(a, b):
    return a % b + 0.5 * b


def op_pow(a, b):
    return a**b


def op_pow_const(a, b):
    return a**3 + b**2 + a**-1 + b**0.5 + a**2.5


def op_rpow(a, b):
    return 2.0**a + 3**b


def op_neg(a, b):
    return -a * -b + (+a) - (-(-b))


def op_abs(a, b):
    return abs(a) * abs(b) + abs(a - b)


def op_cmp(a, b):
    r = 0.0
    if a < b:
        r += a * b
    if a <= b:
        r += a
    if a > b:
        r += b * b
    if a >= b:
        r -= a
    if a == b:
        r += 100.0 * a
    if a != b:
        r += 2.0 * b
    return r


def op_bool_arith(a, b):
    return (a > b) * a + (a <= b) * b * 2.0


def op_precedence(a, b):
    return a - b * a**2 / (b + 4.0) - -a


POS = floats(0.5, 3.0)
NZ = nonzero_floats(0.5, 3.0)

OPERATOR_CASES = [
    (op_add, floats(), floats()),
    (op_sub, floats(), floats()),
    (op_mul, floats(), floats()),
    (op_div, NZ, NZ),
    (op_floordiv, floats(0.5, 10.0), POS),
    (op_mod, floats(0.5, 10.0), POS),
    (op_pow, POS, floats(-2.0, 2.0)),
    (op_pow_const, POS, POS),
    (op_rpow, floats(), floats()),
    (op_neg, floats(), floats()),
    (op_abs, NZ, NZ),
    (op_cmp, floats(), floats()),
    (op_bool_arith, floats(), floats()),
    (op_precedence, floats(), POS),
]


@pytest.mark.parametrize("fn, sa, sb", OPERATOR_CASES, ids=[c[0].__name__ for c in OPERATOR_CASES])
@HYP
@given(data=st.data())
def test_operator_gradients_match_finite_differences(fn, sa, sb, data):
    a = data.draw(sa, label="a")
    b = data.draw(sb, label="b")
    assume(abs(a - b) > 1e-3)  # kinks of abs / comparisons
    if fn in (op_floordiv, op_mod):
        q = a / b
        assume(min(q - math.floor(q), math.ceil(q) - q) > 1e-3)
    check_grad(fn, (a, b), wrt=(0, 1))


def test_floordiv_and_mod_closed_form():
    ga, gb = ds.grad(op_floordiv, wrt=(0, 1))(7.5, 2.0)
    assert ga == pytest.approx(3.0, **EXACT) and gb == pytest.approx(1.0, **EXACT)
    ga, gb = ds.grad(op_mod, wrt=(0, 1))(7.5, 2.0)
    assert ga == pytest.approx(1.0, **EXACT) and gb == pytest.approx(-3.0 + 0.5, **EXACT)


def test_abs_both_signs():
    assert ds.grad(abs_only)(-3.0) == pytest.approx(-1.0, **EXACT)
    assert ds.grad(abs_only)(2.0) == pytest.approx(1.0, **EXACT)


def abs_only(x):
    return abs(x)


def test_pow_with_int_exponent_argument():
    assert ds.grad(powi)(2.0, 5) == pytest.approx(80.0, **EXACT)
    assert ds.grad(powi)(3.0, 0) == pytest.approx(0.0, **EXACT)
    assert ds.grad(powi)(3.0, 1) == pytest.approx(1.0, **EXACT)


def test_pow_both_arguments_closed_form():
    gx, gy = ds.grad(op_pow, wrt=(0, 1))(2.0, 3.0)
    assert gx == pytest.approx(3 * 2.0**2, **EXACT)
    assert gy == pytest.approx(8.0 * math.log(2.0), **EXACT)


def div_by_int(x):
    return x / 2 + 7 // 2 * x


def test_int_literals_mix_with_floats():
    assert ds.grad(div_by_int)(1.25) == pytest.approx(0.5 + 3.0, **EXACT)


# ---------------------------------------------------------------------------
# math module
# ---------------------------------------------------------------------------


def m_sin(x):
    return math.sin(x)


def m_cos(x):
    return math.cos(x)


def m_tan(x):
    return math.tan(x)


def m_exp(x):
    return math.exp(x)


def m_log(x):
    return math.log(x)


def m_log_base(x):
    return math.log(x, 3.0)


def m_log10(x):
    return math.log10(x)


def m_log2(x):
    return math.log2(x)


def m_log1p(x):
    return math.log1p(x)


def m_expm1(x):
    return math.expm1(x)


def m_sqrt(x):
    return math.sqrt(x)


def m_tanh(x):
    return math.tanh(x)


def m_sinh(x):
    return math.sinh(x)


def m_cosh(x):
    return math.cosh(x)


def m_asin(x):
    return math.asin(x)


def m_acos(x):
    return math.acos(x)


def m_atan(x):
    return math.atan(x)


def m_asinh(x):
    return math.asinh(x)


def m_acosh(x):
    return math.acosh(x)


def m_atanh(x):
    return math.atanh(x)


def m_fabs(x):
    return math.fabs(x)


def m_erf(x):
    return math.erf(x)


def m_erfc(x):
    return math.erfc(x)


def m_degrees(x):
    return math.degrees(x) + math.radians(x)


def m_pow1(x):
    return math.pow(x, 2.5)


def m_composed(x):
    return math.exp(math.sin(x)) * math.sqrt(1.0 + x * x) - math.log(2.0 + math.cos(x))


MATH_UNARY = [
    (m_sin, floats(-3, 3)),
    (m_cos, floats(-3, 3)),
    (m_tan, floats(-1.2, 1.2)),
    (m_exp, floats(-3, 3)),
    (m_log, floats(0.2, 5)),
    (m_log_base, floats(0.2, 5)),
    (m_log10, floats(0.2, 5)),
    (m_log2, floats(0.2, 5)),
    (m_log1p, floats(-0.5, 3)),
    (m_expm1, floats(-3, 3)),
    (m_sqrt, floats(0.1, 5)),
    (m_tanh, floats(-3, 3)),
    (m_sinh, floats(-3, 3)),
    (m_cosh, floats(-3, 3)),
    (m_asin, floats(-0.9, 0.9)),
    (m_acos, floats(-0.9, 0.9)),
    (m_atan, floats(-3, 3)),
    (m_asinh, floats(-3, 3)),
    (m_acosh, floats(1.1, 5)),
    (m_atanh, floats(-0.9, 0.9)),
    (m_fabs, nonzero_floats(0.1, 3)),
    (m_erf, floats(-2, 2)),
    (m_erfc, floats(-2, 2)),
    (m_degrees, floats(-3, 3)),
    (m_pow1, floats(0.2, 3)),
    (m_composed, floats(-3, 3)),
]


@pytest.mark.parametrize("fn, sx", MATH_UNARY, ids=[c[0].__name__ for c in MATH_UNARY])
@HYP
@given(data=st.data())
def test_math_unary_matches_finite_differences(fn, sx, data):
    x = data.draw(sx, label="x")
    check_grad(fn, (x,), wrt=0)


@pytest.mark.parametrize(
    "fn, x, expected",
    [
        (m_sin, 0.3, math.cos(0.3)),
        (m_cos, 0.3, -math.sin(0.3)),
        (m_tan, 0.3, 1 / math.cos(0.3) ** 2),
        (m_exp, 0.3, math.exp(0.3)),
        (m_log, 0.3, 1 / 0.3),
        (m_sqrt, 0.3, 0.5 / math.sqrt(0.3)),
        (m_tanh, 0.3, 1 - math.tanh(0.3) ** 2),
        (m_atan, 0.3, 1 / (1 + 0.09)),
    ],
    ids=lambda v: getattr(v, "__name__", None),
)
def test_math_closed_forms(fn, x, expected):
    assert ds.grad(fn)(x) == pytest.approx(expected, **EXACT)


def m_atan2(y, x):
    return math.atan2(y, x)


def m_hypot(x, y):
    return math.hypot(x, y)


def m_pow2(x, y):
    return math.pow(x, y)


def m_log_var_base(x, b):
    return math.log(x, b)


MATH_BINARY = [
    (m_atan2, nonzero_floats(0.2, 3), nonzero_floats(0.2, 3)),
    (m_hypot, nonzero_floats(0.2, 3), nonzero_floats(0.2, 3)),
    (m_pow2, floats(0.2, 3), floats(-2, 2)),
    (m_log_var_base, floats(0.2, 5), floats(1.5, 4)),
]


@pytest.mark.parametrize("fn, sa, sb", MATH_BINARY, ids=[c[0].__name__ for c in MATH_BINARY])
@HYP
@given(data=st.data())
def test_math_binary_matches_finite_differences(fn, sa, sb, data):
    a = data.draw(sa, label="a")
    b = data.draw(sb, label="b")
    check_grad(fn, (a, b), wrt=(0, 1))


def test_atan2_closed_form():
    gy, gx = ds.grad(m_atan2, wrt=(0, 1))(1.0, 2.0)
    assert gy == pytest.approx(2.0 / 5.0, **EXACT)
    assert gx == pytest.approx(-1.0 / 5.0, **EXACT)


def test_hypot_closed_form():
    gx, gy = ds.grad(m_hypot, wrt=(0, 1))(3.0, 4.0)
    assert gx == pytest.approx(0.6, **EXACT) and gy == pytest.approx(0.8, **EXACT)


def m_constants(x):
    return math.pi * x * x + math.e * x + math.tau


def test_math_constants():
    assert ds.grad(m_constants)(2.0) == pytest.approx(4 * math.pi + math.e, **EXACT)


def m_floor_ceil(x):
    return x * math.floor(x) + math.ceil(x) * 2.0 * x + math.trunc(x)


def test_math_floor_ceil_trunc_have_zero_derivative():
    # d/dx = floor(x) + 2 ceil(x) at a non-integer point
    assert ds.grad(m_floor_ceil)(2.5) == pytest.approx(2.0 + 6.0, **EXACT)
    assert ds.grad(m_floor_ceil)(-1.5) == pytest.approx(-2.0 - 2.0, **EXACT)


# ---------------------------------------------------------------------------
# builtins
# ---------------------------------------------------------------------------


def b_sum_list(a, b, c):
    return sum([a, b * b, c * a])


def b_sum_start(a, b):
    return sum([a, b], 10.0) * a


def b_max2(a, b):
    return max(a, b) * 2.0 + min(a, b)


def b_max3(a, b, c):
    return max(a, b, c) - min(a, b, c) * 0.5


def b_abs(a, b):
    return abs(a * b) + abs(a) ** 2


def b_float_int(x):
    return float(x) * 2.0 + int(x) * x


def b_float_of_int(x, n):
    return float(n) * x + float(len(range(n))) * x


def b_range(x, n):
    acc = 0.0
    for i in range(n):
        acc = acc + x * i
    return acc


def b_range_start_stop_step(x, n):
    acc = 1.0
    for i in range(2, n, 3):
        acc = acc * x + i
    return acc


def test_builtin_sum_of_list():
    g = ds.grad(b_sum_list, wrt=(0, 1, 2))(1.5, 2.0, 3.0)
    assert g[0] == pytest.approx(1 + 3.0, **EXACT)
    assert g[1] == pytest.approx(4.0, **EXACT)
    assert g[2] == pytest.approx(1.5, **EXACT)


def test_builtin_sum_with_start():
    ga, gb = ds.grad(b_sum_start, wrt=(0, 1))(2.0, 3.0)
    # (10 + a + b) * a -> d/da = 10 + 2a + b, d/db = a
    assert ga == pytest.approx(10 + 4 + 3, **EXACT)
    assert gb == pytest.approx(2.0, **EXACT)


@pytest.mark.parametrize("a, b, expected", [(3.0, 1.0, (2.0, 1.0)), (1.0, 3.0, (1.0, 2.0))])
def test_builtin_min_max_two_args(a, b, expected):
    ga, gb = ds.grad(b_max2, wrt=(0, 1))(a, b)
    assert (ga, gb) == (pytest.approx(expected[0], **EXACT), pytest.approx(expected[1], **EXACT))


@pytest.mark.parametrize(
    "args, expected",
    [((3.0, 1.0, 2.0), (1.0, -0.5, 0.0)), ((1.0, 2.0, 5.0), (-0.5, 0.0, 1.0))],
)
def test_builtin_min_max_three_args(args, expected):
    g = ds.grad(b_max3, wrt=(0, 1, 2))(*args)
    assert tuple(g) == tuple(pytest.approx(e, **EXACT) for e in expected)


@HYP
@given(a=nonzero_floats(0.3, 3), b=nonzero_floats(0.3, 3))
def test_builtin_abs_matches_fd(a, b):
    check_grad(b_abs, (a, b), wrt=(0, 1))


@pytest.mark.parametrize("x, expected", [(2.5, 2.0 + 2.0), (-1.5, 2.0 - 1.0), (0.25, 2.0)])
def test_builtin_float_and_int(x, expected):
    # int(x) truncates and has no derivative
    assert ds.grad(b_float_int)(x) == pytest.approx(expected, **EXACT)


def test_builtin_float_of_int_and_len():
    assert ds.grad(b_float_of_int)(1.5, 4) == pytest.approx(8.0, **EXACT)


@pytest.mark.parametrize("n", [0, 1, 2, 5])
def test_builtin_range_runtime_bound(n):
    assert ds.grad(b_range)(2.0, n) == pytest.approx(sum(range(n)), **EXACT)


@pytest.mark.parametrize("n", [2, 3, 6, 12])
def test_builtin_range_start_stop_step(n):
    check_grad(b_range_start_stop_step, (1.3, n), wrt=0)


def b_len_mean(xs):
    return sum(xs) / len(xs)


def b_zip(xs, ys):
    acc = 0.0
    for x, y in zip(xs, ys):
        acc += x * y
    return acc


def b_enumerate(xs):
    acc = 0.0
    for i, x in enumerate(xs):
        acc += i * x * x
    return acc


def b_enumerate_start(xs):
    acc = 0.0
    for i, x in enumerate(xs, 1):
        acc += i * x
    return acc


def b_max_of_list(xs):
    return max(xs) - min(xs)


def test_builtin_len_and_sum_over_list():
    g = ds.grad(b_len_mean)([1.0, 2.0, 3.0, 4.0])
    assert isinstance(g, list) and len(g) == 4
    assert g == [pytest.approx(0.25, **EXACT)] * 4


def test_builtin_zip():
    gx, gy = ds.grad(b_zip, wrt=(0, 1))([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    assert gx == [pytest.approx(v, **EXACT) for v in (4.0, 5.0, 6.0)]
    assert gy == [pytest.approx(v, **EXACT) for v in (1.0, 2.0, 3.0)]


def test_builtin_enumerate():
    g = ds.grad(b_enumerate)([1.0, 2.0, 3.0])
    assert g == [pytest.approx(v, **EXACT) for v in (0.0, 4.0, 12.0)]
    g = ds.grad(b_enumerate_start)([1.0, 2.0, 3.0])
    assert g == [pytest.approx(v, **EXACT) for v in (1.0, 2.0, 3.0)]


def test_builtin_max_min_of_list():
    g = ds.grad(b_max_of_list)([1.0, 5.0, -2.0, 3.0])
    assert g == [pytest.approx(v, **EXACT) for v in (0.0, 1.0, -1.0, 0.0)]


# ---------------------------------------------------------------------------
# syntax that the frontend desugars
# ---------------------------------------------------------------------------


def s_augassign(x, y):
    z = x
    z += y * x
    z *= 2.0
    z -= y
    z /= 3.0
    z **= 2
    return z


def s_unpack(a, b):
    p, q = a * 2.0, b + a
    (r, (s, t)) = (p, (q, p * q))
    [u, v] = [s, t]
    return r + u * v


def s_swap(a, b):
    a, b = b, a
    return a * 10.0 + b**2


def s_rotate(a, b, c):
    a, b, c = c, a, b
    return a * 1.0 + b * 2.0 + c * 3.0


def s_chained(x):
    if 0.0 < x < 1.0:
        return x * x
    elif -2.0 <= x <= 0.0 < 1.0:
        return 3.0 * x
    return x * x * x


def s_ternary(x):
    y = x * x if x > 0 else -3.0 * x
    return y + (x if x > 1.0 else (2.0 * x if x > -1.0 else 4.0 * x))


def s_docstring_assert(x):
    """A docstring has no adjoint."""
    assert x > 0, "x must be positive"
    assert x < 100.0
    return x**3


SCALE = 2.5
OFFSETS = (1.0, 2.0, 3.0)
DEBUG = False


def s_constants(x):
    k = 2**3  # folded
    y = k * x + SCALE * x * x + OFFSETS[1] * x + 1e-3
    if DEBUG:
        y = y * 0.0
    return y


def s_none(x):
    y = None
    if y is None:
        y = x * 2.0
    return y * x


def s_reassign(x):
    x = x * 2.0
    x = x + 1.0
    x = x * x
    return x


def s_fanout(x):
    return x * x * x + x


def s_multi_target(x):
    a = b = x * 2.0
    return a * b


def s_semicolons(x):
    a = x * 2.0; b = a * a; return b  # noqa: E702


def s_default(x, k=3.0):
    return k * x * x


def s_constant_output(x):
    return 3.0


def s_pass(x):
    if x > 0:
        pass
    else:
        pass
    return x + 0.0


SYNTAX_CASES = [
    (s_augassign, (1.3, 0.7), (0, 1)),
    (s_unpack, (1.3, 0.7), (0, 1)),
    (s_swap, (1.3, 0.7), (0, 1)),
    (s_rotate, (1.3, 0.7, -0.4), (0, 1, 2)),
    (s_chained, (0.5,), 0),
    (s_chained, (-1.0,), 0),
    (s_chained, (1.5,), 0),
    (s_chained, (-3.0,), 0),
    (s_ternary, (2.0,), 0),
    (s_ternary, (0.5,), 0),
    (s_ternary, (-0.5,), 0),
    (s_ternary, (-2.0,), 0),
    (s_docstring_assert, (1.7,), 0),
    (s_constants, (1.7,), 0),
    (s_none, (1.7,), 0),
    (s_reassign, (1.7,), 0),
    (s_fanout, (1.7,), 0),
    (s_multi_target, (1.7,), 0),
    (s_semicolons, (1.7,), 0),
    (s_default, (1.7,), 0),
    (s_pass, (1.7,), 0),
]


@pytest.mark.parametrize(
    "fn, args, wrt", SYNTAX_CASES,
    ids=[f"{c[0].__name__}-{c[1]}" for c in SYNTAX_CASES],
)
def test_syntax_matches_finite_differences(fn, args, wrt):
    check_grad(fn, args, wrt=wrt)


def test_swap_closed_form():
    ga, gb = ds.grad(s_swap, wrt=(0, 1))(1.5, 2.0)
    assert ga == pytest.approx(3.0, **EXACT)
    assert gb == pytest.approx(10.0, **EXACT)


def test_rotate_closed_form():
    g = ds.grad(s_rotate, wrt=(0, 1, 2))(1.0, 1.0, 1.0)
    assert tuple(g) == (pytest.approx(2.0), pytest.approx(3.0), pytest.approx(1.0))


def test_chained_comparison_branches_closed_form():
    df = ds.grad(s_chained)
    assert df(0.5) == pytest.approx(1.0, **EXACT)
    assert df(-1.0) == pytest.approx(3.0, **EXACT)
    assert df(2.0) == pytest.approx(12.0, **EXACT)


def test_conditional_expression_closed_form():
    df = ds.grad(s_ternary)
    assert df(2.0) == pytest.approx(4.0 + 1.0, **EXACT)
    assert df(0.5) == pytest.approx(1.0 + 2.0, **EXACT)
    assert df(-0.5) == pytest.approx(-3.0 + 2.0, **EXACT)
    assert df(-2.0) == pytest.approx(-3.0 + 4.0, **EXACT)


def test_assert_failure_still_raises():
    with pytest.raises(AssertionError):
        ds.grad(s_docstring_assert)(-1.0)


def test_constants_closed_form():
    assert ds.grad(s_constants)(2.0) == pytest.approx(8.0 + 2 * SCALE * 2.0 + 2.0, **EXACT)


def test_default_argument_used_and_overridden():
    assert ds.grad(s_default)(2.0) == pytest.approx(12.0, **EXACT)
    assert ds.grad(s_default)(2.0, 1.0) == pytest.approx(4.0, **EXACT)
    gx, gk = ds.grad(s_default, wrt=(0, 1))(2.0, 1.0)
    assert gx == pytest.approx(4.0, **EXACT) and gk == pytest.approx(4.0, **EXACT)


def test_unused_argument_gradient_is_float_zero():
    gx, gy = ds.grad(unused_second, wrt=(0, 1))(1.0, 2.0)
    assert gx == pytest.approx(2.0, **EXACT)
    assert isinstance(gy, float) and gy == 0.0


def test_constant_function_gradient_is_zero():
    g = ds.grad(s_constant_output)(5.0)
    assert isinstance(g, float) and g == 0.0


def test_fanout_accumulates():
    assert ds.grad(s_fanout)(2.0) == pytest.approx(13.0, **EXACT)
    assert ds.grad(s_multi_target)(1.0) == pytest.approx(8.0, **EXACT)
