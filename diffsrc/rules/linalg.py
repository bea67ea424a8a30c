"""Linear algebra: products (dot, vdot, inner, outer, matmul, tensordot, einsum, kron)
and numpy.linalg (inv, solve, det, slogdet, cholesky, eigh, eigvalsh, norm).

Batched inputs (leading dimensions) follow NumPy's broadcasting; `unbroadcast`
sums a broadcast batch adjoint back. Conventions:
  cholesky, eigh, eigvalsh  NumPy reads one triangle of the input (the lower one by
                     default); the adjoint is the exact derivative of that, i.e. it
                     lives on that triangle (off-diagonal entries doubled). For a
                     symmetric input built from other values (A = B @ B.T,
                     (M + M.T) / 2) the chain rule gives the usual symmetric result.
  eigh               eigenvalues must be distinct for the eigenvector adjoint.
  norm               see runtime.norm_adjoint (0 at the kink x == 0; ties share).
  det, slogdet, inv, solve  need an invertible matrix, as their derivatives do.
"""
import operator

import numpy as np

from .lowering_hooks import _emit, is_none, static_value
from .registry import (Method, adjoint_rule, from_source, is_zero, linear, register,
                       tangent_rule)
from ..frontend.abstract import ListS, Static, TupleS
from ..runtime import (cholesky_adjoint, convolve_adjoint, cross_adjoint, det_adjoint,
                       dot_left, dot_right, eigh_adjoint, einsum_adjoint, inner_adjoint,
                       inv_adjoint, kron_adjoint, matmul_left, matmul_right,
                       matrix_power_adjoint, norm_adjoint, pinv_adjoint, qr_adjoint,
                       slogdet_adjoint, solve_a_adjoint, solve_b_full, svd_adjoint,
                       tensordot_adjoint, unbroadcast, unreduce, vecdot_adjoint,
                       vector_norm_adjoint, zeros_like, einsum_apply, einsum_operand_adjoints)

FAMILY = "linalg"

for _name in ("dot vdot inner outer matmul tensordot einsum kron cross convolve correlate "
              "vecdot").split():
    register(getattr(np, _name), emit=f"np.{_name}").meta["family"] = FAMILY
for _name in ("inv solve det cholesky norm eigvalsh matmul multi_dot pinv matrix_power "
              "vector_norm matrix_norm outer tensordot vecdot cross svdvals").split():
    register(getattr(np.linalg, _name), emit=f"np.linalg.{_name}").meta["family"] = FAMILY
for _name in "slogdet eigh svd qr".split():
    register(getattr(np.linalg, _name), emit=f"np.linalg.{_name}",
             result_kind="tuple").meta["family"] = FAMILY
register(operator.matmul).meta.setdefault("family", FAMILY)
register(Method("dot")).meta["family"] = FAMILY
for _name in ("sign", "logabsdet", "eigenvalues", "eigenvectors", "U", "S", "Vh", "Q", "R"):
    register(Method(_name, attribute=True)).meta["family"] = FAMILY
for _helper in (cholesky_adjoint, det_adjoint, dot_left, dot_right, eigh_adjoint,
                einsum_adjoint, inner_adjoint, inv_adjoint, kron_adjoint, matmul_left,
                matmul_right, norm_adjoint, slogdet_adjoint, solve_a_adjoint, solve_b_full,
                tensordot_adjoint, convolve_adjoint, cross_adjoint, matrix_power_adjoint,
                pinv_adjoint, qr_adjoint, svd_adjoint, vecdot_adjoint, vector_norm_adjoint,
                einsum_apply, einsum_operand_adjoints):
    register(_helper)


def _multi_dot_lower(low, args, kwargs):
    """A list of arrays known at transform time is lowered to pairwise np.dot calls (1-D
    first/last arrays keep multi_dot's meaning); a list built at run time has no rule."""
    arrays = args[0] if args else kwargs.get("arrays")
    if not isinstance(arrays, (ListS, TupleS)) or "out" in kwargs:
        values = [low.value(a) for a in args] + [low.value(v) for v in kwargs.values()]
        return low.b.call(np.linalg.multi_dot, values, kwnames=tuple(kwargs))
    result = arrays.items[0]
    for item in arrays.items[1:]:
        result = low.primitive(np.dot, [result, item], {})
    return result


register(np.linalg.multi_dot).meta["lower"] = _multi_dot_lower

_LABELS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _einsum_lower(low, args, kwargs):
    """The interleaved form `einsum(a, [0, 1], b, [1, 2], [0, 2])` with constant sublists
    is lowered to the subscripts-string form, which the rule handles."""
    first = args[0] if args else None
    if not args or (isinstance(first, Static) and isinstance(first.value, str)):
        return _emit(low, np.einsum, args, kwargs)
    operands, sublists = list(args[0::2]), list(args[1::2])
    output = None
    if len(args) % 2 == 1:
        output, operands = operands[-1], operands[:-1]

    def term(sublist):
        labels = static_value(sublist, None)
        if labels is None:
            return None
        return "".join("..." if item is Ellipsis else _LABELS[int(item)] for item in labels)

    terms = [term(s) for s in sublists]
    out_term = term(output) if output is not None else ""
    if any(t is None for t in terms) or out_term is None:
        return _emit(low, np.einsum, args, kwargs)
    spec = ",".join(terms) + ("->" + out_term if output is not None else "")
    return low.primitive(np.einsum, [Static(spec)] + operands, kwargs)


register(np.einsum).meta["lower"] = _einsum_lower


# -------------------------------------------------------------------------- products
@adjoint_rule(np.matmul, np.linalg.matmul, operator.matmul)
def matmul_adjoint(z_bar, z, x, y, **kwargs):
    """All of matmul's cases: 1-D on either side, batched, broadcast batch dimensions."""
    return matmul_left(z_bar, x, y), matmul_right(z_bar, x, y)


@adjoint_rule(np.dot, Method("dot"))
def dot_adjoint(z_bar, z, x, y, out=None):
    return dot_left(z_bar, x, y), dot_right(z_bar, x, y)


@adjoint_rule(np.vdot)
def vdot_adjoint(z_bar, z, x, y):
    """The dot product of the flattened inputs (real inputs)."""
    return (np.reshape(z_bar * np.ravel(y), np.shape(x)),
            np.reshape(z_bar * np.ravel(x), np.shape(y)))


@adjoint_rule(np.inner)
def inner_rule(z_bar, z, x, y):
    return inner_adjoint(z_bar, x, y, 0), inner_adjoint(z_bar, x, y, 1)


@adjoint_rule(np.outer, np.linalg.outer)
def outer_adjoint(z_bar, z, x, y, out=None):
    """np.outer flattens its inputs; the adjoints are reshaped back."""
    return (np.reshape(z_bar @ np.ravel(y), np.shape(x)),
            np.reshape(np.ravel(x) @ z_bar, np.shape(y)))


@adjoint_rule(np.tensordot, np.linalg.tensordot)
def tensordot_rule(z_bar, z, a, b, axes=2):
    return tensordot_adjoint(z_bar, a, b, axes, 0), tensordot_adjoint(z_bar, a, b, axes, 1)


@adjoint_rule(np.einsum)
def einsum_rule(y_bar, y, subscripts, *operands, **kwargs):
    """Each operand's adjoint is another einsum (implicit/explicit output, ellipsis,
    repeated labels such as 'ii->i' or 'ii', labels summed inside one operand).
    The interleaved `einsum(a, [0, 1], b, [1, 2])` form is lowered to this one when its
    index lists are constants."""
    adjoints = [None]
    for i, operand in enumerate(operands):
        adjoints.append(einsum_adjoint(y_bar, subscripts, operands, i))
    return tuple(adjoints)


@adjoint_rule(np.kron)
def kron_rule(z_bar, z, a, b):
    return kron_adjoint(z_bar, a, b, 0), kron_adjoint(z_bar, a, b, 1)


# ---------------------------------------------------------------------- numpy.linalg
@adjoint_rule(np.linalg.inv)
def inv_rule(y_bar, y, a):
    """-inv(a)^T y_bar inv(a)^T (written with differentiable calls: second order works)."""
    yt = np.swapaxes(y, -1, -2)
    return (-(yt @ y_bar @ yt),)


@adjoint_rule(np.linalg.solve)
def solve_rule(x_bar, x, a, b):
    """b_bar = solve(a^T, x_bar); a_bar = -b_bar x^T (b a vector or a stack of columns)."""
    b_full = solve_b_full(x_bar, a, b)
    return solve_a_adjoint(b_full, x, a), unbroadcast(b_full, b)


@adjoint_rule(np.linalg.det)
def det_rule(y_bar, y, a):
    """y_bar det(a) inv(a)^T (written with differentiable calls: second order works)."""
    scale = np.expand_dims(y_bar * y, (-1, -2))
    return (scale * np.swapaxes(np.linalg.inv(a), -1, -2),)


@adjoint_rule(np.linalg.slogdet)
def slogdet_rule(y_bar, y, a):
    """Only logabsdet carries a derivative: logabsdet_bar inv(a)^T; sign has none."""
    return (slogdet_adjoint(y_bar, a),)


@adjoint_rule(Method("sign", attribute=True))
def slogdet_sign_adjoint(y_bar, y, result):
    """`slogdet(a).sign`: the adjoint of that field of the result (the sign has none)."""
    return ((y_bar, zeros_like(result[1])),)


@adjoint_rule(Method("logabsdet", attribute=True))
def slogdet_logabsdet_adjoint(y_bar, y, result):
    """`slogdet(a).logabsdet`: the adjoint of that field of the result."""
    return ((zeros_like(result[0]), y_bar),)


@adjoint_rule(Method("eigenvalues", attribute=True))
def eigenvalues_adjoint(y_bar, y, result):
    """`eigh(a).eigenvalues`: the adjoint of that field of the result."""
    return ((y_bar, zeros_like(result[1])),)


@adjoint_rule(Method("eigenvectors", attribute=True))
def eigenvectors_adjoint(y_bar, y, result):
    """`eigh(a).eigenvectors`: the adjoint of that field of the result."""
    return ((zeros_like(result[0]), y_bar),)


@adjoint_rule(np.linalg.cholesky)
def cholesky_rule(l_bar, l, a, upper=False):
    """Exact on the triangle NumPy reads (see the module docstring)."""
    return (cholesky_adjoint(l_bar, l, upper),)


@adjoint_rule(np.linalg.eigh)
def eigh_rule(y_bar, y, a, UPLO="L"):
    """V (diag(w_bar) + F o (V^T V_bar)) V^T with F_ij = 1 / (w_j - w_i) (0 for equal
    eigenvalues, so eigenvalue-only adjoints are exact for degenerate spectra);
    exact on the triangle NumPy reads."""
    return (eigh_adjoint(y_bar, y[0], y[1], UPLO),)


@adjoint_rule(np.linalg.eigvalsh)
def eigvalsh_rule(w_bar, w, a, UPLO="L"):
    """V diag(w_bar) V^T, with the eigenvectors recomputed in the pullback."""
    both = np.linalg.eigh(a, UPLO)
    return (eigh_adjoint((w_bar, zeros_like(both[1])), both[0], both[1], UPLO),)


@adjoint_rule(np.linalg.norm)
def norm_rule(y_bar, y, x, ord=None, axis=None, keepdims=False):
    """Vector orders 2 (default), 1, inf, -inf, p; matrix orders 'fro', 'nuc', 2, -2,
    1, -1, inf, -inf. x / |x| is taken as 0 at x == 0."""
    if is_none(ord) or ord == "fro":
        full = unreduce(y_bar, x, axis, keepdims)
        return (full * x / unreduce(y + (y == 0), x, axis, keepdims),)
    return (norm_adjoint(y_bar, y, x, ord, axis, keepdims),)


@adjoint_rule(np.linalg.vector_norm)
def vector_norm_rule(y_bar, y, x, axis=None, keepdims=False, ord=2):
    """A vector norm over the given axes taken together (see norm for the conventions)."""
    return (vector_norm_adjoint(y_bar, y, x, axis, keepdims, ord),)


@adjoint_rule(np.linalg.matrix_norm)
def matrix_norm_rule(y_bar, y, x, keepdims=False, ord="fro"):
    """A matrix norm over the last two axes (see norm for the conventions)."""
    return (norm_adjoint(y_bar, y, x, ord, (-2, -1), keepdims),)


@adjoint_rule(np.vecdot, np.linalg.vecdot)
def vecdot_rule(z_bar, z, x1, x2, axis=-1, **kwargs):
    return vecdot_adjoint(z_bar, x1, x2, axis, 0), vecdot_adjoint(z_bar, x1, x2, axis, 1)


@adjoint_rule(np.cross, np.linalg.cross)
def cross_rule(z_bar, z, a, b, **kwargs):
    """a_bar = b x z_bar, b_bar = z_bar x a over the last axis (3-vectors; 2-vectors give
    the z component). Other axisa/axisb/axisc are not supported."""
    return cross_adjoint(z_bar, a, b, 0), cross_adjoint(z_bar, a, b, 1)


@adjoint_rule(np.convolve)
def convolve_rule(z_bar, z, a, v, mode="full"):
    """Correlations of the (zero-padded) adjoint with the other input, for every mode."""
    return convolve_adjoint(z_bar, a, v, mode, 0), convolve_adjoint(z_bar, a, v, mode, 1)


@adjoint_rule(np.correlate)
def correlate_rule(z_bar, z, a, v, mode="valid"):
    """np.correlate(a, v) is np.convolve(a, v[::-1]) on real inputs."""
    return (convolve_adjoint(z_bar, a, v, mode, 0, True),
            convolve_adjoint(z_bar, a, v, mode, 1, True))


@adjoint_rule(np.linalg.pinv)
def pinv_rule(y_bar, y, a, *args, **kwargs):
    """-P^T G P^T + (I - A P)^T-terms (Golub & Pereyra): valid while the rank is constant."""
    return (pinv_adjoint(y_bar, y, a),)


@adjoint_rule(np.linalg.svd)
def svd_rule(y_bar, y, a, full_matrices=True, compute_uv=True, *args, **kwargs):
    """Real SVD (Townsend 2016): singular values always; singular vectors need distinct
    non-zero singular values and thin factors (full_matrices=False) or square input."""
    return (svd_adjoint(y_bar, y, a, full_matrices, compute_uv),)


@adjoint_rule(np.linalg.svdvals)
def svdvals_rule(y_bar, y, x):
    """U diag(s_bar) V^T."""
    return (svd_adjoint(y_bar, y, x, False, False),)


@adjoint_rule(np.linalg.qr)
def qr_rule(y_bar, y, a, mode="reduced"):
    """Reduced QR of a tall or square matrix with full column rank."""
    return (qr_adjoint(y_bar, y, a),)


@adjoint_rule(np.linalg.matrix_power)
def matrix_power_rule(y_bar, y, a, n):
    """Sum over k of (A^T)^k G (A^T)^(n-1-k); negative n through inv."""
    return (matrix_power_adjoint(y_bar, a, n), None)


@adjoint_rule(Method("U", attribute=True))
def svd_u_adjoint(y_bar, y, result):
    """`svd(a).U`: the adjoint of that field of the result."""
    return ((y_bar, zeros_like(result[1]), zeros_like(result[2])),)


@adjoint_rule(Method("S", attribute=True))
def svd_s_adjoint(y_bar, y, result):
    """`svd(a).S`: the adjoint of that field of the result."""
    return ((zeros_like(result[0]), y_bar, zeros_like(result[2])),)


@adjoint_rule(Method("Vh", attribute=True))
def svd_vh_adjoint(y_bar, y, result):
    """`svd(a).Vh`: the adjoint of that field of the result."""
    return ((zeros_like(result[0]), zeros_like(result[1]), y_bar),)


@adjoint_rule(Method("Q", attribute=True))
def qr_q_adjoint(y_bar, y, result):
    """`qr(a).Q`: the adjoint of that field of the result."""
    return ((y_bar, zeros_like(result[1])),)


@adjoint_rule(Method("R", attribute=True))
def qr_r_adjoint(y_bar, y, result):
    """`qr(a).R`: the adjoint of that field of the result."""
    return ((zeros_like(result[0]), y_bar),)



# ------------------------------------------------------------------------------------------
# Second order: the product adjoints are bilinear (in the adjoint and the other factor).
@adjoint_rule(inner_adjoint)
def inner_adjoint_adjoint(c, r, g, a, b, which=0):
    if which == 0:
        return np.inner(c, b), None, inner_adjoint(g, c, b, 1)
    return np.inner(a, c), inner_adjoint(g, a, c, 0), None


@adjoint_rule(tensordot_adjoint)
def tensordot_adjoint_adjoint(c, r, g, a, b, axes=2, which=0):
    if which == 0:
        return np.tensordot(c, b, axes), None, tensordot_adjoint(g, c, b, axes, 1)
    return np.tensordot(a, c, axes), tensordot_adjoint(g, a, c, axes, 0), None


@adjoint_rule(kron_adjoint)
def kron_adjoint_adjoint(c, r, g, a, b, which=0):
    if which == 0:
        return np.kron(c, b), None, kron_adjoint(g, c, b, 1)
    return np.kron(a, c), kron_adjoint(g, a, c, 0), None


@adjoint_rule(einsum_adjoint)
def einsum_adjoint_adjoint(c, r, g, subscripts, operands, which):
    """<c, einsum_adjoint(g, ..., which)> = <g, einsum(... with c in place of operand which)>."""
    return (einsum_apply(subscripts, operands, which, c), None,
            einsum_operand_adjoints(g, subscripts, operands, which, c), None)



@adjoint_rule(vecdot_adjoint)
def vecdot_adjoint_adjoint(c, r, g, a, b, axis=-1, which=0):
    if which == 0:
        return np.vecdot(c, b, axis=axis), None, vecdot_adjoint(g, c, b, axis, 1)
    return np.vecdot(a, c, axis=axis), vecdot_adjoint(g, a, c, axis, 0), None


@adjoint_rule(cross_adjoint)
def cross_adjoint_adjoint(c, r, g, a, b, which):
    """Triple products: c . (b x g) = g . (c x b) = b . (g x c)."""
    if which == 0:
        return np.cross(c, b), None, cross_adjoint(g, c, b, 1)
    return np.cross(a, c), cross_adjoint(g, a, c, 0), None


@adjoint_rule(convolve_adjoint)
def convolve_adjoint_adjoint(c, r, g, a, v, mode="full", which=0, correlate=False):
    """convolve_adjoint is the transpose of a linear map; its adjoint is that map."""
    if correlate:
        if which == 0:
            return (np.correlate(c, v, mode), None, convolve_adjoint(g, c, v, mode, 1, True))
        return (np.correlate(a, c, mode), convolve_adjoint(g, a, c, mode, 0, True), None)
    if which == 0:
        return (np.convolve(c, v, mode), None, convolve_adjoint(g, c, v, mode, 1))
    return (np.convolve(a, c, mode), convolve_adjoint(g, a, c, mode, 0), None)


# ------------------------------------------------------------------------ tangent rules
# Products are multilinear: the sum over the factors of the product with that factor's
# tangent in its place. The adjoint helpers of products are bilinear in the adjoint and
# the factor they are not the adjoint of (`which` says which that is).
linear(np.matmul, np.linalg.matmul, np.dot, Method("dot"), np.vdot, np.inner, np.outer,
       np.linalg.outer, np.tensordot, np.linalg.tensordot, np.kron, np.cross, np.linalg.cross,
       np.convolve, np.correlate, np.vecdot, np.linalg.vecdot, positions=(0, 1), joint=False)
linear(np.einsum, positions=None, first=1, joint=False)
linear(matmul_left, dot_left, positions=(0, 2), joint=False)
linear(matmul_right, dot_right, positions=(0, 1), joint=False)
linear(inner_adjoint, kron_adjoint, cross_adjoint, which=3, joint=False)
linear(tensordot_adjoint, vecdot_adjoint, convolve_adjoint, which=4, joint=False)
linear(solve_a_adjoint, positions=(0, 1), joint=False)


@tangent_rule(np.linalg.inv)
def inv_tangent(dots, y, a):
    return -(y @ dots[0] @ y)


@tangent_rule(np.linalg.solve)
def solve_tangent(dots, x, a, b):
    """solve(a, b_dot - a_dot x), with x a vector or a stack of columns as b is."""
    da, db = dots
    if is_zero(da):
        return np.linalg.solve(a, db)
    if np.ndim(b) == np.ndim(a) - 1:
        return np.linalg.solve(a, db - (da @ x[..., None])[..., 0])
    return np.linalg.solve(a, db - da @ x)


@tangent_rule(np.linalg.det)
def det_tangent(dots, y, a):
    """det(a) trace(a^-1 a_dot)."""
    return y * np.trace(np.linalg.solve(a, dots[0]), axis1=-2, axis2=-1)


def read_triangle(a_dot, uplo):
    """The symmetric matrix made of the triangle of `a_dot` that NumPy reads."""
    if uplo == "U":
        return np.triu(a_dot) + np.swapaxes(np.triu(a_dot, 1), -1, -2)
    return np.tril(a_dot) + np.swapaxes(np.tril(a_dot, -1), -1, -2)


@tangent_rule(np.linalg.eigh)
def eigh_tangent(dots, y, a, UPLO="L"):
    """w_dot = diag(V^T S V), V_dot = V (F o V^T S V) with F_ij = 1 / (w_j - w_i) (0 for
    equal eigenvalues, as the adjoint), S the triangle NumPy reads, symmetrised."""
    m = np.swapaxes(y[1], -1, -2) @ read_triangle(dots[0], UPLO) @ y[1]
    gap = np.expand_dims(y[0], -2) - np.expand_dims(y[0], -1)
    f = np.where(gap == 0, 0.0, 1.0 / np.where(gap == 0, 1.0, gap))
    return (np.diagonal(m, 0, -2, -1), y[1] @ (f * m))


@tangent_rule(np.linalg.eigvalsh)
def eigvalsh_tangent(dots, w, a, UPLO="L"):
    """diag(V^T S V), with the eigenvectors recomputed."""
    v = np.linalg.eigh(a, UPLO)[1]
    return np.diagonal(np.swapaxes(v, -1, -2) @ read_triangle(dots[0], UPLO) @ v, 0, -2, -1)


@tangent_rule(np.linalg.slogdet)
def slogdet_tangent(dots, y, a):
    """The sign is piecewise constant; logabsdet's tangent is trace(a^-1 a_dot)."""
    return (y[0] * 0.0, np.trace(np.linalg.solve(a, dots[0]), axis1=-2, axis2=-1))


@tangent_rule(Method("sign", attribute=True))
def slogdet_sign_tangent(dots, y, result):
    return None


@tangent_rule(Method("logabsdet", attribute=True), Method("eigenvectors", attribute=True),
              Method("S", attribute=True), Method("R", attribute=True))
def second_field_tangent(dots, y, result):
    return dots[0][1]


@tangent_rule(Method("eigenvalues", attribute=True), Method("U", attribute=True),
              Method("Q", attribute=True))
def first_field_tangent(dots, y, result):
    return dots[0][0]


@tangent_rule(Method("Vh", attribute=True))
def third_field_tangent(dots, y, result):
    return dots[0][2]


def mT(a):
    return np.swapaxes(a, -1, -2)


@tangent_rule(np.linalg.svd)
def svd_tangent(dots, y, a, full_matrices=True, compute_uv=True, *args, **kwargs):
    """Real SVD (Townsend 2016), with P = U^T A_dot V and F_ij = 1 / (s_j^2 - s_i^2):
    S_dot = diag(P), U_dot = U (F o (P S + S P^T)) + (I - U U^T) A_dot V S^-1 and
    V_dot = V (F o (S P + P^T S)) + (I - V V^T) A_dot^T U S^-1. As the adjoint: distinct
    non-zero singular values, thin factors or a square matrix."""
    da = dots[0]
    if not compute_uv:
        return svdvals_tangent(dots, y, a)
    if full_matrices and np.shape(a)[-1] != np.shape(a)[-2]:
        raise NotImplementedError("np.linalg.svd of a non-square matrix with "
                                  "full_matrices=True has no tangent rule; pass "
                                  "full_matrices=False")
    u, s, vh = y[0], y[1], y[2]
    v = mT(vh)
    p = mT(u) @ da @ v
    eye = np.eye(np.shape(s)[-1])
    gap = np.expand_dims(s * s, -2) - np.expand_dims(s * s, -1)
    f = (1 - eye) / (gap + eye)
    sp = np.expand_dims(s, -1) * p                    # S P
    ps = p * np.expand_dims(s, -2)                    # P S
    u_dot = u @ (f * (ps + mT(ps))) + (da @ v - u @ (mT(u) @ da @ v)) / np.expand_dims(s, -2)
    v_dot = v @ (f * (sp + mT(sp))) + (mT(da) @ u - v @ (vh @ mT(da) @ u)) / np.expand_dims(s, -2)
    return (u_dot, np.diagonal(p, 0, -2, -1), mT(v_dot))


@tangent_rule(np.linalg.svdvals)
def svdvals_tangent(dots, y, x):
    """diag(U^T A_dot V), with the singular vectors recomputed."""
    usv = np.linalg.svd(x, full_matrices=False)
    return np.diagonal(mT(usv[0]) @ dots[0] @ mT(usv[2]), 0, -2, -1)


@tangent_rule(np.linalg.qr)
def qr_tangent(dots, y, a, mode="reduced"):
    """Reduced QR, m >= n, full column rank: with B = Q^T A_dot R^-1, Q^T Q_dot = W is
    skew and R_dot R^-1 = B - W upper triangular, so W = tril(B, -1) - tril(B, -1)^T,
    R_dot = (B - W) R and Q_dot = Q W + (A_dot - Q Q^T A_dot) R^-1."""
    q, r = y[0], y[1]
    da = dots[0]
    da_rinv = mT(np.linalg.solve(mT(r), mT(da)))       # A_dot R^-1
    b = mT(q) @ da_rinv
    low = np.tril(b, -1)
    w = low - mT(low)
    return (q @ w + da_rinv - q @ b, (b - w) @ r)


@tangent_rule(np.linalg.pinv)
def pinv_tangent(dots, p, a, *args, **kwargs):
    """-P A_dot P + P P^T A_dot^T (I - A P) + (I - P A) A_dot^T P^T P (Golub & Pereyra;
    constant rank)."""
    da = dots[0]
    pt = mT(p)
    return (-(p @ da @ p) + p @ (pt @ mT(da) - pt @ mT(da) @ a @ p)
            + (mT(da) - p @ a @ mT(da)) @ pt @ p)


@tangent_rule(np.linalg.matrix_power)
def matrix_power_tangent(dots, y, a, n):
    """The sum over k of A^k A_dot A^(n-1-k); a negative n is the power of inv(a)."""
    da = dots[0]
    if n < 0:
        a = np.linalg.inv(a)
        da = -(a @ da @ a)
        n = -n
    total = da * 0.0
    for k in range(n):
        total = total + np.linalg.matrix_power(a, k) @ da @ np.linalg.matrix_power(a, n - 1 - k)
    return total


@tangent_rule(einsum_adjoint)
def einsum_adjoint_tangent(dots, r, g, subscripts, operands, which):
    """Linear in g and in each operand other than `which` (it reads only that one's
    shape): the sum of einsum_adjoint with one of them replaced by its tangent."""
    total = dots[0]
    if not is_zero(dots[0]):
        total = einsum_adjoint(dots[0], subscripts, operands, which)
    if not is_zero(dots[2]):
        for i in range(len(operands)):
            if i != which:
                replaced = tuple(dots[2][j] if j == i else operands[j]
                                 for j in range(len(operands)))
                total = total + einsum_adjoint(g, subscripts, replaced, which)
    return total


@tangent_rule(np.linalg.cholesky)
def cholesky_tangent(dots, l, a, upper=False):
    """L phi(L^-1 S L^-T), phi the lower triangle with half the diagonal, S the symmetric
    matrix of the triangle NumPy reads (the adjoint's convention)."""
    s = read_triangle(dots[0], "U" if upper else "L")
    if upper:
        low = np.swapaxes(l, -1, -2)            # cholesky(a, upper=True) is L^T
        li = np.linalg.inv(low)
        m = li @ s @ np.swapaxes(li, -1, -2)
        return np.swapaxes(low @ (np.tril(m, -1) + 0.5 * m * np.eye(np.shape(m)[-1])), -1, -2)
    li = np.linalg.inv(l)
    m = li @ s @ np.swapaxes(li, -1, -2)
    return l @ (np.tril(m, -1) + 0.5 * m * np.eye(np.shape(m)[-1]))


@tangent_rule(np.linalg.norm)
def norm_tangent(dots, y, x, ord=None, axis=None, keepdims=False):
    """The partial derivatives of the adjoint (norms of disjoint slices), times x_dot."""
    (partials,) = norm_rule(np.ones_like(y), y, x, ord, axis, keepdims)
    return np.sum(partials * dots[0], axis=axis, keepdims=keepdims)


@tangent_rule(np.linalg.vector_norm)
def vector_norm_tangent(dots, y, x, axis=None, keepdims=False, ord=2):
    (partials,) = vector_norm_rule(np.ones_like(y), y, x, axis, keepdims, ord)
    return np.sum(partials * dots[0], axis=axis, keepdims=keepdims)


@tangent_rule(np.linalg.matrix_norm)
def matrix_norm_tangent(dots, y, x, keepdims=False, ord="fro"):
    (partials,) = matrix_norm_rule(np.ones_like(y), y, x, keepdims, ord)
    return np.sum(partials * dots[0], axis=(-2, -1), keepdims=keepdims)


@tangent_rule(solve_b_full)
def solve_b_full_tangent(dots, r, g, a, b):
    """r = solve(a^T, g): r_dot = solve(a^T, g_dot - a_dot^T r), in r's vector or matrix
    layout."""
    dg, da = dots[0], dots[1]
    if is_zero(da):
        return solve_b_full(dg, a, b)
    dat = np.swapaxes(da, -1, -2)
    if np.ndim(b) == 1 and np.ndim(g) >= 1:
        return solve_b_full(dg - (dat @ r[..., None])[..., 0], a, b)
    return solve_b_full(dg - dat @ r, a, b)


from_source(cholesky_adjoint, inv_adjoint, matrix_power_adjoint, norm_adjoint, pinv_adjoint, qr_adjoint,
            svd_adjoint, vector_norm_adjoint)
