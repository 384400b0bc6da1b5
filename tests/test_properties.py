"""Property-based tests (hypothesis): random shapes and broadcasting for the ops' VJPs, random points
and dtypes for every elementwise activation, and jit / no-jit / vmap / grad-of-grad agreement.

Tolerances are those of tests/test_primitives.py: two exact formulas for the same quantity, each a
few dozen roundings, agree to 64ε normwise.
"""
from __future__ import annotations

import functools

import chex
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import oracles
from fnnet import ops
from fnnet.primitive import registry

SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ULPS = 64
BINARY = ["add", "subtract", "multiply", "divide"]
ELEMENTWISE = sorted({p.name for _, p, _ in oracles.cases(lambda p: p.elementwise)})
DTYPES = st.sampled_from([jnp.float32, jnp.float64])


def _close(a, b, dtype, what):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(float(np.max(np.abs(b), initial=0.0)), 1e-300)
    err = float(np.max(np.abs(a - b), initial=0.0)) / scale
    assert err <= ULPS * float(jnp.finfo(dtype).eps), f"{what}: normwise error {err:.2e}"


@pytest.mark.slow  # each drawn shape compiles anew (~90 s in all); test_ops' BROADCAST_CASES cover every op
@SETTINGS          # with each kind of broadcast (size-1 axes, new leading axes, scalars), both dtypes
@given(
    name=st.sampled_from(BINARY),
    shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4),
    dtype=DTYPES,
    seed=st.integers(0, 2**16),
)
def test_binary_op_vjp_sums_broadcast_cotangents_back(name, shapes, dtype, seed):
    prim = registry()[name]
    kx, ky, kg = jax.random.split(jax.random.key(seed), 3)
    (sx, sy), out_shape = shapes.input_shapes, shapes.result_shape
    x = jax.random.uniform(kx, sx, dtype, 0.5, 2.0)
    y = jax.random.uniform(ky, sy, dtype, 0.5, 2.0)  # away from 0: divide is well conditioned
    g = jax.random.normal(kg, out_shape, dtype)
    out, vjp = jax.vjp(prim.fn, x, y)
    out_ref, vjp_ref = jax.vjp(prim.reference, x.astype(jnp.float64), y.astype(jnp.float64))
    assert out.shape == out_shape and out.dtype == dtype
    _close(out, out_ref, dtype, f"{name} value")
    for ct, ct_ref, primal, arg in zip(vjp(g), vjp_ref(g.astype(jnp.float64)), (x, y), "xy"):
        assert ct.shape == primal.shape, f"{name}: cotangent of {arg} {ct.shape} != {primal.shape}"
        _close(ct, ct_ref, dtype, f"{name} VJP wrt {arg}")


@pytest.mark.slow  # each drawn shape compiles anew (~10 s); test_ops covers fixed batch shapes
@settings(SETTINGS, max_examples=8)  # each new shape is a new compilation
@given(
    shapes=hnp.mutually_broadcastable_shapes(signature=np.matmul.signature, max_dims=3, max_side=4),
    dtype=DTYPES,
    seed=st.integers(0, 2**16),
)
def test_matmul_vjp_with_batch_broadcasting(shapes, dtype, seed):
    kx, ky, kg = jax.random.split(jax.random.key(seed), 3)
    sx, sy = shapes.input_shapes
    x, y = jax.random.normal(kx, sx, dtype), jax.random.normal(ky, sy, dtype)
    out, vjp = jax.vjp(ops.matmul, x, y)
    g = jax.random.normal(kg, out.shape, dtype)
    out_ref, vjp_ref = jax.vjp(jnp.matmul, x.astype(jnp.float64), y.astype(jnp.float64))
    assert out.shape == out_ref.shape
    # A matmul entry is a sum of k products; its rounding is bounded by k·ε·Σ|terms|, so the normwise
    # bound gets the contraction length as a factor (k ≤ 4 here, inside the 64ε budget).
    _close(out, out_ref, dtype, "matmul value")
    for ct, ct_ref, primal in zip(vjp(g), vjp_ref(g.astype(jnp.float64)), (x, y)):
        assert ct.shape == primal.shape
        _close(ct, ct_ref, dtype, "matmul VJP")


@functools.lru_cache(maxsize=None)
def _value_and_derivative(name, reference):
    prim = registry()[name]
    # the first variant: threshold's parameters are required; tanh/sigmoid's is the lean derivative
    f = functools.partial(prim.reference if reference else prim.fn, **prim.variants[0])
    return jax.jit(lambda x: (f(x), jax.vmap(jax.grad(f))(x)))


@st.composite
def _points(draw, name):
    lo, hi = registry()[name].domain
    return np.asarray(draw(st.lists(st.floats(lo, hi), min_size=8, max_size=8)), np.float64)


@SETTINGS
@given(data=st.data(), name=st.sampled_from(ELEMENTWISE), dtype=DTYPES)
def test_elementwise_value_and_derivative_match_reference_at_random_points(data, name, dtype):
    """Random points of the sampling domain (kinks included: hypothesis tries the boundaries and
    simple values such as 0, where the rule and jax's derivative of the reference may legitimately
    differ, so points within 1e-6 of a declared kink are skipped)."""
    x = data.draw(_points(name))
    kinks = [k.at for k in registry()[name].kinks]
    x = x[np.all([np.abs(x - k) > 1e-6 for k in kinks], axis=0)] if kinks else x
    x = jnp.asarray(np.resize(x, 8) if x.size else np.full(8, 0.5), dtype)
    y, d = _value_and_derivative(name, False)(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    y_ref, d_ref = _value_and_derivative(name, True)(x.astype(jnp.float64))
    _close(y, y_ref, dtype, f"{name} value")
    _close(d, d_ref, dtype, f"{name} derivative")


class TransformationsAgree(chex.TestCase):
    """jit and no-jit (chex.variants), vmap against a Python loop, and grad-of-grad (reverse over the
    hand VJP, itself written in jnp) against jax's second derivative of the reference."""

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(*ELEMENTWISE)
    def test_transformations_agree(self, name):
        prim = registry()[name]
        static = dict(prim.variants[0])  # threshold's parameters are required
        fn = functools.partial(prim.fn, **static)
        reference = functools.partial(prim.reference, **static)
        (x,) = prim.sample_inputs(jax.random.key(5), jnp.float64, (6,), **static)
        tol = ULPS * float(jnp.finfo(jnp.float64).eps)
        grad = self.variant(jax.grad(fn))
        looped = jnp.stack([grad(xi) for xi in x])
        batched = self.variant(jax.vmap(jax.grad(fn)))(x)
        chex.assert_trees_all_close(batched, looped, rtol=tol)
        # the reference's first and second derivatives, by autodiff, in one compiled program
        d_ref, second_ref = jax.jit(
            lambda x: (jax.vmap(jax.grad(reference))(x), jax.vmap(jax.grad(jax.grad(reference)))(x))
        )(x)
        chex.assert_trees_all_close(looped, d_ref, rtol=tol, atol=tol * float(jnp.max(jnp.abs(d_ref))))
        second = self.variant(jax.vmap(jax.grad(jax.grad(fn))))(x)
        # f'' has zeros on the grid (relu family: everywhere): judged at the array's scale.
        scale = float(jnp.max(jnp.abs(second_ref)))
        chex.assert_trees_all_close(second, second_ref, rtol=tol, atol=tol * max(scale, 1.0))
