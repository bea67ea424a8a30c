"""Every family of tangent rules, one NumPy function at a time: ds.jvp against central
finite differences, and ds.hvp (forward over the generated pullback, which needs the
tangent rules of the pullback's helpers) against finite differences of ds.grad."""
import numpy as np
import pytest

import diffsrc as ds

X = 0.55 + (np.arange(12.0).reshape(3, 4) * 0.618) % 1.0      # distinct, away from kinks

EXPRESSIONS = """
    np.square(x) np.sqrt(x) np.cbrt(x) np.reciprocal(x) np.exp2(x) np.expm1(x) np.log2(x)
    np.log10(x) np.log1p(x) np.logaddexp(x,1.0-x) np.logaddexp2(x,0.3) np.arcsin(x/2)
    np.arccos(x/2) np.arctan(x) np.hypot(x,0.5) np.sinh(x) np.cosh(x) np.arcsinh(x)
    np.arccosh(x+1) np.arctanh(x/2) np.abs(x-1.01) np.fmax(x,1.01) np.fmin(x,1.01)
    np.minimum(x,1.01) np.maximum(x,x[0]) np.clip(x,0.81,1.21) np.where(x>1.01,x,x**2)
    np.sinc(x) np.deg2rad(x) np.float_power(x,1.5) np.power(x,x) np.copysign(x,-1.0)
    np.fmod(x,0.7) np.mod(x,0.7) x/(1.0+x) x**3-x**0.5 np.heaviside(x-1.01,x)
    np.prod(x,axis=1) np.max(x,axis=0) np.min(x) np.ptp(x,axis=1) np.var(x,axis=1,ddof=1)
    np.std(x) np.nansum(x) np.nanmean(x,axis=0) np.nanvar(x) np.nanstd(x,axis=1)
    np.median(x,axis=0) np.average(x,axis=1,weights=[1.,2.,3.,4.]) np.diff(x,axis=1)
    np.cumsum(x,axis=1) np.cov(x) np.corrcoef(x) x.sum(axis=0) x.mean()
    np.reshape(x,(4,3)) x.T np.swapaxes(x,0,1) np.moveaxis(x,0,1) np.expand_dims(x,1)
    np.squeeze(x[None]) np.atleast_3d(x) np.concatenate([x,2*x],axis=0) np.stack([x,x**2],2)
    np.hstack([x,x]) np.vstack([x,x]) np.dstack([x,x]) np.column_stack([x[0],x[1]])
    np.split(x,2,axis=1)[1] np.array_split(x,3)[2] np.tile(x,(2,1)) np.repeat(x,2,axis=0)
    np.flip(x,1) np.fliplr(x) np.flipud(x) np.roll(x,1,axis=1) np.rot90(x) np.pad(x,1)
    np.pad(x,1,mode="edge") np.diag(x[0]) np.diagonal(x) np.trace(x) np.triu(x) np.tril(x)
    np.lib.stride_tricks.sliding_window_view(x,(2,2)) np.append(x,x) np.broadcast_to(x[0],(2,4))
    x[1:,::2] x[[0,0,2]] x[x>1.01] np.take(x,[0,3,3],axis=1) np.sort(x,axis=1)
    np.take_along_axis(x,np.argsort(x,axis=1),1)
    x@x.T np.dot(x,x.T) np.vdot(x,x) np.inner(x,x) np.outer(x[0],x[1])
    np.tensordot(x,x,axes=([1],[1])) np.einsum("ij,kj->ik",x,x) np.kron(x[:2,:2],x[1:,1:3])
    np.cross(x[:,:3],x[1:2,1:]) np.convolve(x[0],x[1]) np.correlate(x[0],x[1],"full")
    np.linalg.inv(x[:,:3]+3*np.eye(3)) np.linalg.det(x[:,:3]) np.linalg.norm(x,1)
    np.linalg.norm(x,"nuc") np.linalg.norm(x,axis=1) np.linalg.solve(x[:,:3]+np.eye(3),x[:,3])
    np.linalg.solve(x[:,:3]+np.eye(3),x[:,1:]) np.linalg.solve(x[:,:3]+np.eye(3),np.ones(3))
    np.linalg.cholesky(x[:,:3]@x[:,:3].T+np.eye(3)) np.array([x[0,0],2.0*x[1,1]])
    np.full((2,2),x[0,0]) np.linspace(x[0,0],x[1,1],5) np.float64(x) x.copy()
    max(x[0,0],x[0,1]) float(x[1,2])*x
    np.cumprod(x,axis=1) np.cumprod(x) x.cumprod(axis=0) np.quantile(x,0.3,axis=1)
    np.percentile(x,[20.,70.],axis=0) np.partition(x,1,axis=1) np.partition(x,2,axis=None)
    np.linalg.pinv(x) np.linalg.matrix_power(x[:,:3],3) np.linalg.matrix_power(x[:,:3]+np.eye(3),-2)
    np.linalg.svd(x.T,full_matrices=False).U np.linalg.svd(x.T,full_matrices=False).S
    np.linalg.svd(x[:,:3]).Vh np.linalg.svd(x,compute_uv=False) np.linalg.svdvals(x)
    np.linalg.qr(x.T).Q np.linalg.qr(x.T).R np.linalg.norm(x,2) np.linalg.norm(x,-2)
    np.linalg.norm(x,np.inf,axis=1) np.linalg.norm(x,3,axis=0) np.linalg.norm(x,-np.inf)
    np.linalg.vector_norm(x,ord=3) np.linalg.matrix_norm(x,ord=1)
    np.linalg.cholesky(x[:,:3]@x[:,:3].T+np.eye(3),upper=True) np.average(x,axis=1,weights=x[0])
    np.average(x,weights=x*x) np.average(x,axis=0,weights=x[0]+x[:,0:1])
""".split()


def compiled(expression):
    """A module-level-like function from source text (ds reads it like a file)."""
    return f"def f(x):\n    return {expression}\n"


def run(source):
    namespace = {"np": np}
    exec(source, namespace)
    return namespace["f"]


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_jvp_of_each_function(expression):
    source = compiled(expression)
    f = run(source)
    v = np.cos(np.arange(12.0)).reshape(3, 4)
    y, y_dot = ds.jvp(source, (X,), (v,))
    eps = 1e-6
    expected = (np.asarray(f(X + eps * v)) - np.asarray(f(X - eps * v))) / (2 * eps)
    np.testing.assert_allclose(y, f(X), rtol=1e-12)
    assert np.shape(y_dot) == np.shape(y)
    np.testing.assert_allclose(y_dot, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_hvp_of_each_function(expression):
    source = f"def f(x):\n    y = {expression}\n    return np.sum(y * y)\n"
    v = np.cos(np.arange(12.0)).reshape(3, 4)
    hv = ds.hvp(source)(X, v)
    g = ds.grad(source)
    eps = 1e-6
    np.testing.assert_allclose(hv, (g(X + eps * v) - g(X - eps * v)) / (2 * eps), rtol=1e-5,
                               atol=1e-6)


def test_every_reverse_rule_has_a_tangent_rule():
    """Adding a reverse rule without its tangent rule fails this test."""
    from diffsrc.rules import registry
    missing = {e.emit or getattr(e.fn, "__name__", repr(e.fn))
               for e in registry.PRIMITIVES.values()
               if e.adjoint is not None and e.tangent is None and
               e.adjoint.__module__.startswith("diffsrc.rules")}      # not the tests' own
    assert missing == set()


def test_svd_with_full_rectangular_factors_has_no_tangent():
    """Its extra singular vectors are not unique: an error, never an arbitrary number."""
    with pytest.raises(Exception, match="full_matrices=True"):
        ds.jvp("def f(x):\n    return np.linalg.svd(x).U\n", (X,), (X,))
