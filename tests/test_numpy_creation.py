"""Creation and casting inside differentiated functions, and the NumPy functions that
pass through without a derivative (argmax, shapes, comparisons, random draws)."""
import numpy as np

from numpy_support import check_grad, ds, out, random_array


# ------------------------------------------------------------------------- creation
def uses_constants(x):
    z = np.zeros(x.shape) + np.ones_like(x) * 2.0 + np.zeros_like(x)
    e = np.eye(x.shape[0])
    r = np.arange(x.shape[1]) * 0.5 + np.linspace(0.0, 1.0, x.shape[1])
    f = np.full(x.shape, 3.0) + np.full_like(x, 0.5) + np.ones((1, x.shape[1]))
    return out(e @ (x * z) + r * x + f * x + np.empty_like(x).shape[0] + np.identity(1) * x)


def test_created_arrays_are_constants():
    x = random_array((3, 4), 1)
    check_grad(uses_constants, (x,))


def full_of(v, x):
    return out(np.full(x.shape, v) * x + np.full_like(x, fill_value=v) ** 2)


def full_array_fill(v, x):
    return out(np.full((2, 3), v) * x)


def linspace_ends(a, b):
    return out(np.linspace(a, b, 5) ** 2) + out(np.linspace(start=a, stop=b, num=4,
                                                            endpoint=False))


def linspace_arrays(a, b):
    return out(np.linspace(a, b, 3, axis=-1))


def test_fill_values_and_linspace_ends_are_differentiable():
    x = random_array((2, 3), 2)
    check_grad(full_of, (0.7, x), wrt=(0, 1))
    check_grad(full_array_fill, (random_array((3,), 3), x), wrt=(0, 1))
    check_grad(linspace_ends, (0.3, 1.7), wrt=(0, 1))
    check_grad(linspace_arrays, (random_array((2,), 4), random_array((2,), 5)), wrt=(0, 1))


def array_of_list(a, b):
    m = np.array([[a, b], [b * a, 1.0]])
    return out(m @ np.asarray([a, 2.0]))


def array_of_arrays(x, y):
    return out(np.array([x, y * 2.0, x * y]))


def asarray_of_scalars(x):
    return out(np.asarray([x[0], x[1] * x[2]]))


def test_array_and_asarray_of_differentiable_lists():
    check_grad(array_of_list, (0.3, -1.2), wrt=(0, 1))
    check_grad(array_of_arrays, (random_array((3,), 1), random_array((3,), 2)), wrt=(0, 1))
    check_grad(asarray_of_scalars, (random_array((3,), 3),))


# -------------------------------------------------------------------------- casting
def to32(x): return out(x.astype(np.float32).astype(np.float64) * 2.0)
def via_float32(x): return np.sum(np.float32(x) * 2.0 + np.float64(x) * x)
def to_int(x): return np.sum(x.astype(int) * 1.0 + x)
def copies(x): return out(np.copy(x) + x.copy() + np.ascontiguousarray(x.T).T)
def item_of(x): return x.item() * 3.0 + x.reshape(()).item() ** 2


def test_casts():
    x = random_array((2, 3), 4)
    g = ds.grad(to32)(x)
    assert g.dtype == np.float64
    np.testing.assert_allclose(g, ds.grad(lambda_plain)(x), rtol=1e-6)
    g32 = ds.grad(via_float32)(x)             # FD through a float32 cast is too noisy
    assert g32.dtype == np.float64
    np.testing.assert_allclose(g32, 2.0 + 2.0 * x, rtol=1e-6)
    np.testing.assert_array_equal(ds.grad(to_int)(x), np.ones_like(x))   # cast to int: no path
    check_grad(copies, (x,))
    check_grad(item_of, (np.array([0.7]),))


def lambda_plain(x):
    return out(x * 2.0)


# ---------------------------------------------------------- non-differentiable pass-through
def passthrough(x):
    i = np.argmax(x)
    j = np.argmin(x, axis=0)
    order = np.argsort(x[0])
    k = x.argmax()
    n = x.shape[0] * x.ndim + x.size + np.size(x) + np.ndim(x) + len(np.shape(x))
    mask = (x > 0.1) & np.isfinite(x) & ~np.isnan(x) & np.logical_not(x < -5.0)
    mask = np.logical_and(mask, np.greater(x, -9.0)) | np.logical_or(x == 9.0, np.equal(x, 8))
    picked = x.ravel()[i] + x[j, np.arange(x.shape[1])].sum() + x[0][order[-1]]
    kind = 1.0 if x.dtype == np.float64 else 0.0
    count = np.count_nonzero(mask) + np.sum(np.nonzero(mask)[0]) + np.any(mask) + np.all(x < 9)
    return out(x * mask) + picked * n + kind * k + count * 0.0


def test_non_differentiable_functions_pass_through():
    x = random_array((3, 4), 6)
    check_grad(passthrough, (x,))


def noisy(x):
    noise = np.random.normal(size=x.shape)
    u = np.random.uniform(0.0, 1.0, x.shape)
    return out(x * 0.0 + x * np.mean(noise * 0.0 + 1.0) + u * 0.0)


def reparameterised(mu, rng):
    eps = rng.normal(size=mu.shape)
    return out(mu + 0.0 * eps)


def mean_shift_draw(mu):
    return np.sum(np.random.normal(loc=mu, scale=1.0) * 0.0 + mu)


def test_random_draws_are_constants():
    x = random_array((2, 3), 7)
    check_grad(noisy, (x,))
    rng = np.random.default_rng(0)          # drawing advances rng: no check_grad copy test
    np.testing.assert_allclose(ds.grad(reparameterised)(x, rng), 2 * x + 1, rtol=1e-12)
    np.testing.assert_array_equal(ds.grad(mean_shift_draw)(x), np.ones_like(x))


def generator_inside(mu):
    rng = np.random.default_rng(3)
    eps = rng.standard_normal(mu.shape)
    return np.sum(mu * eps)


def test_generator_created_inside_draws_constants():
    mu = random_array((4,), 8)
    g = ds.grad(generator_inside)(mu)
    np.testing.assert_array_equal(g, np.random.default_rng(3).standard_normal(4))


def draws_change(x):
    return np.sum(x * np.random.uniform(size=x.shape))


def test_random_calls_are_kept_and_redrawn_each_call():
    x = np.ones(3)
    g1, g2 = ds.grad(draws_change)(x), ds.grad(draws_change)(x)
    assert not np.array_equal(g1, g2)


RNG = np.random.default_rng(0)


def constant_generator_draw(mu):
    return np.sum(RNG.normal(mu, 1.0) * 0.0 + mu)


def test_constant_generator_draw_with_differentiated_parameters_is_a_constant():
    np.testing.assert_array_equal(ds.grad(constant_generator_draw)(np.ones(2)), np.ones(2))


def float_of_array(x):
    return float(x) * 2.0


def test_float_of_a_zero_dimensional_array_keeps_the_gradient_an_array():
    g = ds.grad(float_of_array)(np.array(1.5))
    assert isinstance(g, np.ndarray) and g.shape == () and g == 2.0


C = np.linspace(0.5, 2.0, 4)
M = np.arange(12.0).reshape(3, 4) / 10.0


def constant_array_methods(x):
    return out(M.dot(x) * C.sum() + C.reshape(1, 4).dot(x * x))


def test_methods_of_a_constant_array_with_differentiated_arguments():
    check_grad(constant_array_methods, (random_array((4,), 3),))


def item_of_zero_dimensional(x):
    return x.item() ** 2


def test_item_of_a_zero_dimensional_array_keeps_the_gradient_an_array():
    g = check_grad(item_of_zero_dimensional, (np.array(1.5),))
    assert isinstance(g, np.ndarray) and g.shape == ()
