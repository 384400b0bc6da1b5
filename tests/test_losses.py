"""Losses: values against optax's formulas (written out here in float64 numpy: optax is not a
dependency), gradients against jax.grad of the plain references, stability at huge and infinite logits,
and the bad-input messages. The generic VJP/JVP/finite-difference checks run in tests/test_primitives.py.

Tolerances. Values: a log-softmax is (x − m) − log Σ, each step ≤ 1 ULP with |x − m| ≲ 10 on these
inputs, then a sum of ≤ 6 products: ≤ ~16 roundings of quantities of the loss's size, hence
``rtol = 32·ε`` (normwise). Gradients: two or three more roundings: the same bound holds.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet.losses as L

EPS = float(jnp.finfo(jnp.float64).eps)
RTOL = 32 * EPS


def _close(actual, expected, rtol=RTOL, what=""):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1e-300)
    err = float(np.max(np.abs(actual - expected), initial=0.0)) / scale
    assert err <= rtol, f"{what}: normwise error {err:.3e} > {rtol:.3e}"


def _np_log_softmax(z):
    z = np.asarray(z, np.float64)
    m = z.max(-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))


@pytest.fixture
def logits():
    return 3.0 * jax.random.normal(jax.random.key(1), (4, 5), jnp.float64)


@pytest.fixture
def probs():
    return jax.nn.softmax(jax.random.normal(jax.random.key(2), (4, 5), jnp.float64))


# ------------------------------------------------------------------------------------------------
# Values and gradients
# ------------------------------------------------------------------------------------------------


def test_softmax_cross_entropy(logits, probs):
    _close(L.softmax_cross_entropy(logits, probs), -(np.asarray(probs) * _np_log_softmax(logits)).sum(-1))
    g = jnp.arange(1.0, 5.0)
    f = lambda z, y, loss: jnp.vdot(g, loss(z, y))  # noqa: E731
    dz, dy = jax.grad(f, (0, 1))(logits, probs, L.softmax_cross_entropy)
    dz_ref, dy_ref = jax.grad(f, (0, 1))(logits, probs, L.softmax_cross_entropy.reference)
    _close(dz, dz_ref, what="d/dlogits")
    _close(dy, dy_ref, what="d/dlabels")
    # normalised labels: the textbook p − y
    _close(dz, g[:, None] * (jax.nn.softmax(logits) - probs), what="p − y")


def test_softmax_cross_entropy_unnormalised_labels(logits, probs):
    """For labels that do not sum to 1 the exact gradient is p·Σy − y, not p − y."""
    y = 3.0 * probs
    dz = jax.grad(lambda z: jnp.sum(L.softmax_cross_entropy(z, y)))(logits)
    _close(dz, jax.grad(lambda z: jnp.sum(L.softmax_cross_entropy.reference(z, y)))(logits))
    _close(dz, jax.nn.softmax(logits) * 3.0 - y)


def test_integer_labels(logits):
    labels = jnp.array([0, 4, 2, 2])
    loss = L.softmax_cross_entropy_with_integer_labels(logits, labels)
    _close(loss, -_np_log_softmax(logits)[np.arange(4), np.asarray(labels)])
    dz = jax.grad(lambda z: jnp.sum(L.softmax_cross_entropy_with_integer_labels(z, labels)))(logits)
    _close(dz, jax.nn.softmax(logits) - jax.nn.one_hot(labels, 5, dtype=jnp.float64), what="p − e_k")
    dz_ref = jax.grad(lambda z: jnp.sum(L.softmax_cross_entropy_with_integer_labels.reference(z, labels)))(logits)
    _close(dz, dz_ref)
    # Python lists of ints work; under jit, labels are traced and the loss is the same
    _close(L.softmax_cross_entropy_with_integer_labels(logits, [0, 4, 2, 2]), loss)
    jitted = jax.jit(L.softmax_cross_entropy_with_integer_labels)
    _close(jitted(logits, labels), loss)
    assert "name=softmax_cross_entropy" in str(jax.make_jaxpr(jitted)(logits, labels))


def test_sigmoid_binary_cross_entropy(logits):
    y = jax.random.uniform(jax.random.key(3), logits.shape, jnp.float64)
    z, yn = np.asarray(logits), np.asarray(y)
    log_p, log_not_p = -np.logaddexp(0, -z), -np.logaddexp(0, z)  # optax: log_sigmoid(±z)
    _close(L.sigmoid_binary_cross_entropy(logits, y), -yn * log_p - (1 - yn) * log_not_p)
    g = jnp.cos(logits)
    f = lambda z, y, loss: jnp.vdot(g, loss(z, y))  # noqa: E731
    dz, dy = jax.grad(f, (0, 1))(logits, y, L.sigmoid_binary_cross_entropy)
    dz_ref, dy_ref = jax.grad(f, (0, 1))(logits, y, L.sigmoid_binary_cross_entropy.reference)
    _close(dz, dz_ref, what="d/dlogits")
    _close(dy, dy_ref, what="d/dlabels")
    _close(dz, g * (jax.nn.sigmoid(logits) - y), what="σ(z) − y")
    _close(dy, -g * logits, what="−z")
    # integer (0/1) labels are cast to the logits' dtype, as optax does
    y_int = (y > 0.5).astype(jnp.int32)
    _close(L.sigmoid_binary_cross_entropy(logits, y_int),
           L.sigmoid_binary_cross_entropy(logits, y_int.astype(jnp.float64)))


def test_mse_and_squared_error():
    p = jax.random.normal(jax.random.key(4), (3, 7), jnp.float64)
    t = jax.random.normal(jax.random.key(5), (3, 7), jnp.float64)
    pn, tn = np.asarray(p), np.asarray(t)
    _close(L.mse(p, t), ((pn - tn) ** 2).mean(-1))
    _close(L.squared_error(p, t), (pn - tn) ** 2)
    g = jnp.array([1.0, -2.0, 0.5])
    dp, dt = jax.grad(lambda p, t: jnp.vdot(g, L.mse(p, t)), (0, 1))(p, t)
    _close(dp, g[:, None] * 2 * (p - t) / 7, what="2(p − t)/n")
    _close(dt, -dp)
    dp2 = jax.grad(lambda p: jnp.sum(L.squared_error(p, t)))(p)
    _close(dp2, 2 * (p - t))


@pytest.mark.parametrize(
    "name", ["softmax_cross_entropy", "sigmoid_binary_cross_entropy", "mse", "squared_error"]
)
def test_vjp_and_jvp_agree(name, logits, probs):
    """⟨g, J u⟩ through the hand JVP = ⟨Jᵀg, u⟩ through the hand VJP (both arguments at once)."""
    f = getattr(L, name)
    args = (logits, probs)
    u = (jnp.sin(logits), jnp.cos(probs))
    out, ju = jax.jvp(f.forward_mode, args, u)
    g = jnp.linspace(-1.0, 2.0, out.size).reshape(out.shape)
    cts = jax.vjp(f, *args)[1](g)
    lhs, rhs = jnp.vdot(g, ju), sum(jnp.vdot(c, t) for c, t in zip(cts, u))
    terms = sum(float(jnp.sum(jnp.abs(c * t))) for c, t in zip(cts, u))
    # two sums of 2·20 products, each rounding ≤ ε relative to Σ|terms|
    assert abs(float(lhs - rhs)) <= 80 * EPS * terms


# ------------------------------------------------------------------------------------------------
# Stability
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("big", [1e4, 1e30, "max"])
def test_softmax_cross_entropy_large_logits(big, dtype):
    big = float(jnp.finfo(dtype).max) if big == "max" else big
    if big > float(jnp.finfo(dtype).max):
        pytest.skip("not representable in float32")
    z = jnp.asarray([[big, 0.0, -big], [0.0, big, -big]], dtype)
    y = jnp.asarray([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]], dtype)
    loss = L.softmax_cross_entropy(z, y)
    # row 0: the right class is certain: 0. row 1: −½·log p_0 − ½·log p_1 = ½·big, exactly
    np.testing.assert_array_equal(loss, jnp.asarray([0.0, 0.5 * big], dtype))
    dz = jax.grad(lambda z: jnp.sum(L.softmax_cross_entropy(z, y)))(z)
    np.testing.assert_array_equal(dz, jnp.asarray([[0, 0, 0], [-0.5, 0.5, 0]], dtype))
    k = jnp.array([0, 0])
    li = L.softmax_cross_entropy_with_integer_labels(z, k)
    np.testing.assert_array_equal(li, jnp.asarray([0.0, big], dtype))  # −log p = lse − z_k = big − 0
    assert jnp.all(jnp.isfinite(jax.grad(lambda z: jnp.sum(L.softmax_cross_entropy_with_integer_labels(z, k)))(z)))


def test_softmax_cross_entropy_neg_inf_logit_with_zero_label():
    """0·log 0 = 0: an impossible class that is also not a label costs nothing (optax's naive −Σ y log p is NaN)."""
    z = jnp.array([[0.0, -jnp.inf, 1.0]])
    y = jnp.array([[0.3, 0.0, 0.7]])
    loss = L.softmax_cross_entropy(z, y)
    _close(loss, -(np.array([0.3, 0.7]) * _np_log_softmax(np.array([0.0, 1.0]))).sum()[None])
    dz = jax.grad(lambda z: jnp.sum(L.softmax_cross_entropy(z, y)))(z)
    assert jnp.all(jnp.isfinite(dz)) and dz[0, 1] == 0
    # a label on an impossible class: an infinite loss, the honest answer
    assert L.softmax_cross_entropy(z, jnp.array([[0.0, 1.0, 0.0]]))[0] == jnp.inf


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["f32", "f64"])
def test_sigmoid_bce_extremes(dtype):
    big = float(jnp.finfo(dtype).max)
    z = jnp.asarray([1e30, -1e30, big, -big, jnp.inf, -jnp.inf, 1e4], dtype)
    one, zero = jnp.ones_like(z), jnp.zeros_like(z)
    np.testing.assert_array_equal(L.sigmoid_binary_cross_entropy(z, jnp.where(z > 0, one, zero)), zero)
    np.testing.assert_array_equal(L.sigmoid_binary_cross_entropy(z, jnp.where(z > 0, zero, one)), jnp.abs(z))
    half = jnp.full_like(z, 0.5)
    np.testing.assert_array_equal(L.sigmoid_binary_cross_entropy(z, half), 0.5 * jnp.abs(z))
    dz = jax.grad(lambda z: jnp.sum(L.sigmoid_binary_cross_entropy(z, half)))(z)
    np.testing.assert_array_equal(dz, jnp.where(z > 0, 0.5, -0.5).astype(dtype))
    nan = jnp.asarray([jnp.nan], dtype)
    for lab in (0.0, 1.0, 0.5):
        assert jnp.isnan(L.sigmoid_binary_cross_entropy(nan, jnp.asarray([lab], dtype)))[0]


def test_mse_huge_differences():
    """(p − t)² overflows for |p − t| > 1.3e154; the mean (and the gradient) need not."""
    big = 1e200
    p = jnp.array([[big, 0.0, 0.0, 0.0]])
    t = jnp.zeros((1, 4))
    # (1e200)²/4 = 2.5e399 overflows, as it should; 1e154 differences do not
    assert L.mse(p, t)[0] == jnp.inf
    p = jnp.array([[2e154, 0.0, 0.0, 0.0]])
    _close(L.mse(p, t), jnp.array([1e308]), rtol=4 * EPS)
    p = jnp.array([[1e308, 0.0, 0.0, 0.0]])
    t = jnp.array([[-1e308, 0.0, 0.0, 0.0]])
    dp = jax.grad(lambda p: jnp.sum(L.mse(p, t)))(p)
    _close(dp, jnp.array([[1e308, 0.0, 0.0, 0.0]]), rtol=4 * EPS)  # 2·2e308/4, although p − t overflows


# ------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------


def test_wrong_shapes_name_both_shapes(logits):
    with pytest.raises(ValueError, match=r"labels of shape \(4, 3\) must have the shape of logits, \(4, 5\)"):
        L.softmax_cross_entropy(logits, jnp.ones((4, 3)))
    with pytest.raises(ValueError, match=r"labels of shape \(4, 5\) must have the shape of logits, \(4, 6\)"):
        L.sigmoid_binary_cross_entropy(jnp.ones((4, 6)), jnp.ones((4, 5)))
    with pytest.raises(ValueError, match=r"targets of shape \(3,\) must have the shape of predictions, \(4, 5\)"):
        L.mse(logits, jnp.ones(3))
    with pytest.raises(ValueError, match=r"labels of shape \(4, 5\) must have shape logits.shape\[:-1\] = \(4,\)"):
        L.softmax_cross_entropy_with_integer_labels(logits, jnp.zeros((4, 5), jnp.int32))
    with pytest.raises(ValueError, match=r"logits must have at least 1 axis.*got shape \(\)"):
        L.softmax_cross_entropy(jnp.float64(1.0), jnp.float64(1.0))


def test_dtypes(logits, probs):
    with pytest.raises(TypeError, match=r"labels must be integer class indices; got dtype float64"):
        L.softmax_cross_entropy_with_integer_labels(logits, jnp.zeros(4))
    with pytest.raises(TypeError, match=r"labels must be integer class indices; got dtype bool"):
        L.softmax_cross_entropy_with_integer_labels(logits, jnp.zeros(4, bool))
    with pytest.raises(TypeError, match=r"argument 'labels' must have a floating dtype.*got int32"):
        L.softmax_cross_entropy(logits, jnp.zeros((4, 5), jnp.int32))
    with pytest.raises(TypeError, match=r"labels dtype float32 must equal logits dtype float64"):
        L.softmax_cross_entropy(logits, probs.astype(jnp.float32))
    with pytest.raises(TypeError, match=r"argument 'logits' must have a floating dtype.*got int32"):
        L.softmax_cross_entropy_with_integer_labels(jnp.zeros((4, 5), jnp.int32), jnp.zeros(4, jnp.int32))


def test_integer_labels_out_of_range(logits):
    with pytest.raises(ValueError, match=r"label 5 at index \(2,\) is out of range \[0, 5\)"):
        L.softmax_cross_entropy_with_integer_labels(logits, jnp.array([0, 1, 5, 2]))
    with pytest.raises(ValueError, match=r"label -1 at index \(0,\) is out of range \[0, 5\)"):
        L.softmax_cross_entropy_with_integer_labels(logits, np.array([-1, 1, 2, 2]))
    # traced labels cannot be checked before running: the bad example's loss is NaN, the others exact
    out = jax.jit(L.softmax_cross_entropy_with_integer_labels)(logits, jnp.array([0, 1, 7, 2]))
    assert jnp.isnan(out[2]) and not jnp.any(jnp.isnan(out[jnp.array([0, 1, 3])]))
