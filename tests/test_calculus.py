"""fnnet.calculus: Jacobians from the hand rules, structured Jacobians, the two gradient conventions.

Tolerance for hand-rule Jacobians vs jax.jacrev / jax.jacfwd of the reference (float64, normwise per
Jacobian, ‖a − b‖∞ ≤ tol·‖b‖∞): row i of the hand Jacobian is exactly ``bwd(residuals, e_i)`` and
column j exactly ``jvp(primals, e_j)``; assembling them adds no arithmetic. So the comparison is the
hand rule vs autodiff of the reference on basis vectors, whose difference tests/test_primitives.py
bounds by 64ε (each side a chain of ≤ ~30 few-ULP operations on the sampling domains). The rev and fwd
hand Jacobians are compared with each other at the same bound (for elementwise ops both are f'(x)·1,
exactly equal; for matmul or softmax the two rules sum in different orders).
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
import fnnet.layers
import fnnet.ops  # noqa: F401  (registers the arithmetic primitives)
from fnnet import calculus
from fnnet.calculus import (
    as_matrix,
    dense_jacobians,
    elementwise_jacobian,
    inner_product_gradient,
    jacobian,
    materialize_diagonal,
    to_jacobian_form,
    to_shape_convention,
)
from fnnet.primitive import registry

try:  # the losses register primitives too once they are in
    import fnnet.losses  # noqa: F401
except ModuleNotFoundError:
    pass

TOL = 64 * float(jnp.finfo(jnp.float64).eps)
CASES = [
    pytest.param(p, dict(v), id=p.name + "".join(f"-{k}={val}" for k, val in v.items()))
    for p in registry().values()
    for v in p.variants
]
ELEMENTWISE = [c for c in CASES if c.values[0].elementwise]
# The Jacobian assembly depends on a rule's shapes, not on its arithmetic: an elementwise op's other
# hyperparameter values (a slope, a threshold, exact_tails) change only f', which
# tests/test_primitives.py checks for every variant. Variants over an axis, a mask or labels change the
# structure and are all kept.
STRUCTURAL = [c for c in CASES if not c.values[0].elementwise or c.values[1] == dict(c.values[0].variants[0])]


def _normwise_close(actual, expected, tol, what=""):
    a, e = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != {e.shape}"
    scale = max(float(np.max(np.abs(e), initial=0.0)), np.finfo(np.float64).tiny)
    err = float(np.max(np.abs(a - e), initial=0.0)) / scale
    assert err <= tol, f"{what}: normwise relative error {err:.3e} > {tol:.1e}"


def _sample(prim, static):
    # a variant with a `where` mask is written for the sampler's default shape
    shape = None if "where" in static else (2, 3)
    kwargs = {} if shape is None else {"shape": shape}
    return prim.sample_inputs(jax.random.key(0), jnp.float64, **kwargs, **static)


def _float_argnums(args):
    return tuple(i for i, a in enumerate(args) if jnp.issubdtype(a.dtype, jnp.floating))


@pytest.mark.parametrize("prim,static", [c for c in STRUCTURAL if c not in ELEMENTWISE])
def test_jacobian_from_hand_rules_matches_jacrev_of_reference(prim, static):
    """Rows from the hand VJP and columns from the hand JVP, each against autodiff's Jacobian of the
    reference (jax.jacrev: one exact Jacobian is the yardstick for both), and against each other.
    (An elementwise op's rows and columns are checked with its diagonal, below.)"""
    args = _sample(prim, static)
    nums = _float_argnums(args)

    @jax.jit  # one compiled program per case (eager would compile every jnp op on its own)
    def all_three(*args):
        ref = lambda *a: prim.reference(*a, **static)  # noqa: E731
        return (
            jacobian(prim, nums, mode="rev")(*args, **static),  # rows: hand VJP of basis cotangents
            jacobian(prim, nums, mode="fwd")(*args, **static),  # columns: hand JVP of basis tangents
            jax.jacrev(ref, argnums=nums)(*args),
        )

    rows, cols, ref_jac = all_three(*args)
    for k, i in enumerate(nums):
        what = f"{prim.name} ∂out/∂{prim.arg_names[i]}"
        out_shape = rows[k].shape[: rows[k].ndim - args[i].ndim]
        assert rows[k].shape == out_shape + args[i].shape
        _normwise_close(rows[k], ref_jac[k], TOL, what + " rows vs jacrev")
        _normwise_close(cols[k], ref_jac[k], TOL, what + " columns vs jacrev")
        _normwise_close(rows[k], cols[k], TOL, what + " rows vs columns")


def test_jacobian_eager_equals_jitted():
    x = jnp.linspace(-2.0, 2.0, 6, dtype=jnp.float64).reshape(2, 3)
    for mode in ("rev", "fwd"):
        eager = jacobian("tanh", mode=mode)(x)
        jitted = jax.jit(jacobian("tanh", mode=mode))(x)
        chex.assert_trees_all_equal(eager, jitted)


def test_softmax_jacobian_is_block_diagonal_with_diag_s_minus_ss():
    x = jnp.linspace(-2.0, 2.0, 6, dtype=jnp.float64).reshape(2, 3)
    eager = jax.jit(lambda x: jacobian(fnnet.softmax, mode="rev")(x, axis=-1))(x)
    # softmax along the last axis: J[b, i, c, j] = δ_bc (s_i δ_ij − s_i s_j); rows of different
    # examples do not touch, and each block is diag(s) − s sᵀ.
    s = jax.nn.softmax(x, axis=-1)
    for bidx in range(2):
        block = jnp.diag(s[bidx]) - jnp.outer(s[bidx], s[bidx])
        _normwise_close(eager[bidx, :, bidx, :], block, TOL, "softmax block")
        chex.assert_trees_all_equal(eager[bidx, :, 1 - bidx, :], jnp.zeros((3, 3)))


def test_jacobian_errors():
    with pytest.raises(ValueError, match=r"argnums 1 out of range for 'tanh', whose arguments are \('x',\)"):
        jacobian("tanh", 1)
    with pytest.raises(ValueError, match=r"mode must be 'rev' or 'fwd'; got 'backward'"):
        jacobian("tanh", mode="backward")
    with pytest.raises(TypeError, match=r"jacobian of 'add' takes 2 array argument\(s\)"):
        jacobian("add")(jnp.ones(2))
    with pytest.raises(TypeError, match=r"'tanh' has no hyperparameter\(s\) \['alpha'\]"):
        jacobian("tanh")(jnp.ones(2), alpha=1.0)
    with pytest.raises(TypeError, match=r"op must be an fnnet Primitive"):
        jacobian(jnp.tanh)


# ------------------------------------------------------------------------------------------------
# Structured Jacobians
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("prim,static", [c for c in ELEMENTWISE if c in STRUCTURAL])
def test_elementwise_jacobian_is_the_diagonal(prim, static):
    """The diagonal f'(x) from the op's derivative, and the full Jacobian's rows (hand VJP) and columns
    (hand JVP), against jax.jacrev of the reference, all computed in one compiled program."""
    (x,) = _sample(prim, static)

    @jax.jit
    def all_four(x):
        ref = jax.jacrev(lambda x: prim.reference(x, **static))(x)
        d = elementwise_jacobian(prim, x, **static)
        return d, ref, jacobian(prim, mode="rev")(x, **static), jacobian(prim, mode="fwd")(x, **static)

    d, ref, rows, cols = all_four(x)
    assert d.shape == x.shape and d.dtype == x.dtype
    full = materialize_diagonal(d)
    _normwise_close(full, ref, TOL, f"{prim.name} diagonal")
    # Off the diagonal the full Jacobian is exactly zero, in the hand rule and in autodiff alike.
    m = as_matrix(ref, x.shape)
    off = ~np.eye(x.size, dtype=bool)
    assert np.all(np.asarray(m)[off] == 0.0)
    # Same f' through g·f' with g = e_i (rows) and through the JVP's f'·e_j (columns): equal up to the
    # last bit, but the three may be fused differently (1 ULP seen for gelu), so compare at TOL.
    _normwise_close(rows, full, TOL, f"{prim.name} rows vs diagonal")
    _normwise_close(cols, full, TOL, f"{prim.name} columns vs diagonal")
    assert np.all(as_matrix(rows, x.shape)[off] == 0.0) and np.all(as_matrix(cols, x.shape)[off] == 0.0)


def test_elementwise_jacobian_refuses_a_non_elementwise_op():
    with pytest.raises(TypeError, match=r"'softmax' is not an elementwise primitive"):
        elementwise_jacobian("softmax", jnp.ones(3))


def test_materialize_diagonal_layout():
    d = jnp.arange(1.0, 7.0).reshape(2, 3)
    J = materialize_diagonal(d)
    assert J.shape == (2, 3, 2, 3)
    chex.assert_trees_all_equal(as_matrix(J, (2, 3)), jnp.diag(jnp.arange(1.0, 7.0)))


def _dense_case(n_out=3, n_in=4):
    kW, kb, kx = jax.random.split(jax.random.key(3), 3)
    W = jax.random.normal(kW, (n_out, n_in), jnp.float64)
    b = jax.random.normal(kb, (n_out,), jnp.float64)
    x = jax.random.normal(kx, (n_in,), jnp.float64)
    return W, b, x


def test_dense_jacobians_against_jacrev_and_the_hand_rules():
    W, b, x = _dense_case()
    n_out, n_in = W.shape
    J = dense_jacobians(W, b, x)
    chex.assert_trees_all_equal(J.x, W)
    chex.assert_trees_all_equal(J.b, jnp.eye(n_out))
    # ∂y/∂W: row i holds xᵀ in block i (columns i·n_in … i·n_in + n_in − 1), zeros elsewhere.
    assert J.W.shape == (n_out, n_out * n_in)
    for i in range(n_out):
        for k in range(n_out):
            block = J.W[i, k * n_in:(k + 1) * n_in]
            chex.assert_trees_all_equal(block, x if i == k else jnp.zeros(n_in))
    assert int(jnp.count_nonzero(J.W)) == n_out * n_in  # x has no zero entry
    # The same three matrices from autodiff of the reference and from the hand rules (fnnet.calculus
    # .jacobian over the registered "affine" primitive, arguments (W, b, x); "dense" names it too).
    ref = jax.jacrev(fnnet.layers.affine.reference, argnums=(0, 1, 2))(W, b, x)
    hand = jacobian("dense", (0, 1, 2))(W, b, x)
    for got, r, h in zip((J.W, J.b, J.x), ref, hand):
        _normwise_close(got, as_matrix(r, (n_out,)), TOL, "dense vs jacrev")
        _normwise_close(got, as_matrix(h, (n_out,)), TOL, "dense vs hand rows")


def test_dense_jacobians_times_cotangent_is_the_vjp():
    # gᵀJ is the VJP: gᵀW = ∂L/∂x, gᵀI = ∂L/∂b, gᵀ(I ⊗ xᵀ) = vec(g xᵀ) = vec(∂L/∂W).
    W, b, x = _dense_case()
    g = jnp.array([0.5, -1.0, 2.0])
    J = dense_jacobians(W, b, x)
    _, vjp = jax.vjp(fnnet.layers.affine, W, b, x)
    gW, gb, gx = vjp(g)
    _normwise_close(g @ J.x, gx, TOL, "x")
    _normwise_close(g @ J.b, gb, TOL, "b")
    _normwise_close(to_shape_convention(g @ J.W, W.shape), gW, TOL, "W")


def test_dense_jacobians_shape_errors():
    W, b, x = _dense_case()
    with pytest.raises(ValueError, match=r"W \(out, in\), b \(out,\), x \(in,\); got W \(3, 4\), b \(3,\), x \(2, 4\)"):
        dense_jacobians(W, b, jnp.ones((2, 4)))


# ------------------------------------------------------------------------------------------------
# Shape convention <-> Jacobian form
# ------------------------------------------------------------------------------------------------
def test_shape_convention_and_jacobian_form_convert_both_ways():
    W, b, x = _dense_case()
    y = jnp.array([1.0, 0.0, -1.0])

    def loss(W):
        return 0.5 * jnp.sum(jnp.square(fnnet.layers.affine(W, b, x) - y))

    grad = jax.grad(loss)(W)  # shape convention: (out, in), like W
    assert grad.shape == W.shape
    # Jacobian form: differentiate the same loss as a function of vec(W) (row-major), output (1,).
    row = jax.jacrev(lambda v: loss(v.reshape(W.shape)).reshape(1))(W.reshape(-1))
    assert row.shape == (1, W.size)
    _normwise_close(to_jacobian_form(grad), row, TOL, "to_jacobian_form")
    _normwise_close(to_shape_convention(row, W.shape), grad, TOL, "to_shape_convention")
    # entry (i, j) of W sits at position i·n_in + j of the row
    chex.assert_trees_all_equal(to_jacobian_form(grad)[0, 1 * W.shape[1] + 2], grad[1, 2])
    chex.assert_trees_all_equal(to_shape_convention(to_jacobian_form(grad), W.shape), grad)


def test_to_shape_convention_error_names_both_shapes():
    with pytest.raises(ValueError, match=r"expected a row of shape \(1, 12\) for a parameter of shape \(3, 4\); got \(1, 10\)"):
        to_shape_convention(jnp.ones((1, 10)), (3, 4))


def test_inner_product_example_h_versus_h_transpose():
    # ∂(uᵀh)/∂u: h in the shape convention (n, 1), hᵀ in Jacobian form (1, n).
    n = 4
    u = jnp.arange(1.0, n + 1.0).reshape(n, 1)
    h = jnp.array([[0.5], [-2.0], [3.0], [1.25]])
    f = lambda u: (u.T @ h)[0, 0]  # noqa: E731
    shape_conv = jax.grad(f)(u)
    jac_form = as_matrix(jax.jacrev(lambda u: (u.T @ h).reshape(1))(u), (1,))
    assert shape_conv.shape == (n, 1) and jac_form.shape == (1, n)
    chex.assert_trees_all_equal(shape_conv, h)
    chex.assert_trees_all_equal(jac_form, h.T)
    chex.assert_trees_all_equal(inner_product_gradient(u, h, "shape"), h)
    chex.assert_trees_all_equal(inner_product_gradient(u, h, "jacobian"), h.T)
    chex.assert_trees_all_equal(to_jacobian_form(shape_conv), jac_form)  # the converter is the transpose here
    with pytest.raises(ValueError, match=r"columns of the same shape \(n, 1\); got u \(4,\), h \(4, 1\)"):
        inner_product_gradient(u.reshape(-1), h)
    with pytest.raises(ValueError, match=r"convention must be 'shape' or 'jacobian'; got 'row'"):
        inner_product_gradient(u, h, "row")


def test_public_names():
    for name in calculus.__all__:
        assert getattr(calculus, name).__doc__, f"{name} has no docstring"
