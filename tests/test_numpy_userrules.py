"""User-defined derivative rules (@ds.adjoint) for functions with and without Python
source, and the errors for calls that have no rule and for integer inputs."""
import math

import numpy as np
import pytest
import scipy.special

from numpy_support import check_grad, ds, out, random_array
from diffsrc.errors import NonDifferentiableError, NoRuleError


# ------------------------------------------------------- a C function (a scipy ufunc)
@ds.adjoint(scipy.special.erf)
def _erf_adjoint(y_bar, y, x):
    return (y_bar * (2.0 / math.sqrt(math.pi)) * np.exp(-x * x),)


def uses_erf(x):
    return out(scipy.special.erf(x * 1.5))


def test_rule_for_a_function_without_python_source():
    check_grad(uses_erf, (random_array((2, 3), 1),))


@ds.adjoint(scipy.special.xlogy)
def _xlogy_adjoint(z_bar, z, x, y):
    """Two arguments, broadcasting undone by the shared helper like the built-in rules."""
    from diffsrc.runtime import unbroadcast
    return (unbroadcast(z_bar * np.log(y), x), unbroadcast(z_bar * x / y, y))


def uses_xlogy(x, y):
    return out(scipy.special.xlogy(x, y))


def test_two_argument_rule_with_broadcasting():
    check_grad(uses_xlogy, (random_array((2, 3), 2), random_array((3,), 3, 0.5, 2.0)),
               wrt=(0, 1))


# --------------------------------------------- a Python function: the rule wins over source
def round_ste(x):
    """Rounding, whose user rule is the straight-through estimator."""
    return np.round(x)


@ds.adjoint(round_ste)
def _round_ste_adjoint(y_bar, y, x):
    return (y_bar,)


def uses_round_ste(x):
    return np.sum(round_ste(x) * np.arange(1.0, 4.0))


def test_rule_replaces_the_source_of_a_python_function():
    g = ds.grad(uses_round_ste)(np.array([0.2, 1.7, -0.4]))
    np.testing.assert_array_equal(g, [1.0, 2.0, 3.0])     # inlining would give zeros
    assert "round_ste(" in ds.source(ds.grad(uses_round_ste))


def clipped_sqrt(x):
    return np.sqrt(np.maximum(x, 1e-12))


@ds.adjoint(clipped_sqrt)
def _clipped_sqrt_adjoint(y_bar, y, x):
    """A rule with a branch on a compile-time constant and NumPy calls."""
    safe = np.where(x > 1e-12, x, 1.0)
    if True:
        return (np.where(x > 1e-12, y_bar * 0.5 / np.sqrt(safe), 0.0),)
    return (None,)


def uses_clipped_sqrt(x):
    return out(clipped_sqrt(x))


def test_rule_with_branches_and_numpy_calls():
    x = np.array([0.0, 0.5, 2.0])
    g = ds.grad(uses_clipped_sqrt)(x)
    assert g[0] == 0.0
    check_grad(uses_clipped_sqrt, (x[1:],))


# --------------------------------------------------------------------------- errors
def uses_ndtr(x):
    return np.sum(scipy.special.ndtr(x))


def test_no_rule_and_no_source_is_a_clear_error():
    with pytest.raises(NoRuleError) as info:
        ds.grad(uses_ndtr)(np.ones(3))
    message = str(info.value)
    assert "ndtr" in message and "ds.adjoint" in message
    assert "test_numpy_userrules.py" in message            # points at the user's line


def uses_gradient(x):
    return np.sum(np.gradient(x)[0])


def uses_unique(x):
    return np.sum(np.unique(x))


@pytest.mark.parametrize("f", [uses_gradient, uses_unique])
def test_numpy_function_without_a_rule_is_an_error_not_a_zero(f):
    with pytest.raises(NoRuleError, match="ds.adjoint"):
        ds.grad(f)(random_array((3, 3), 1))


def plain_sum(x):
    return np.sum(x * 2.0)


@pytest.mark.parametrize("value", [np.arange(3), 3, np.array([True, False])])
def test_integer_inputs_asked_for_a_gradient_are_an_error(value):
    with pytest.raises(NonDifferentiableError, match="carries no gradient"):
        ds.grad(plain_sum)(value)


def test_integer_inputs_not_asked_for_are_fine():
    def_int = ds.grad(int_scaled, wrt=0)(np.ones(3), 4)
    np.testing.assert_array_equal(def_int, [4.0, 4.0, 4.0])


def int_scaled(x, k):
    return np.sum(x * k)


def test_non_differentiable_function_output_passes_through_without_error():
    # np.argmax has no derivative; it may be used freely and contributes none
    g = ds.grad(argmax_pick)(np.array([0.5, 2.0, 1.0]))
    np.testing.assert_array_equal(g, [0.0, 3.0, 0.0])


def argmax_pick(x):
    return x[np.argmax(x)] * 3.0
