"""rrelu and gumbel_softmax, the activations that draw random numbers from an explicit key: the draw
fixed by the key, the slopes or noise reused by the rule, torch's formulas, the straight-through
estimator, and the error messages. Their deterministic forms (rrelu_with_noise, the gumbel_softmax
primitive on (logits, gumbels)) are in the generic registry suites.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
from fnnet.activations import _stochastic
from test_activations_softmax import GRAD_RTOL, VALUE_RTOL, _close
from test_activations_piecewise import _grid, _same


@pytest.fixture
def logits():
    return 3.0 * jax.random.normal(jax.random.key(1), (4, 6), jnp.float64)


# ----- rrelu ---------------------------------------------------------------------------------------
def test_rrelu_training_samples_slopes_in_range_and_the_vjp_uses_them(key):
    x = -jnp.abs(jax.random.normal(jax.random.key(1), (200,))) - 0.1  # all negative
    y = fnnet.rrelu(x, training=True, key=key)
    slopes = y / x
    assert float(slopes.min()) >= 1 / 8 and float(slopes.max()) < 1 / 3
    assert float(jnp.std(slopes)) > 0.01  # drawn per element, not one slope
    _same(fnnet.rrelu(x, training=True, key=key), y)  # the key fixes the draw
    assert not np.array_equal(fnnet.rrelu(x, training=True, key=jax.random.key(7)), y)
    # the backward pass multiplies by the same slopes: dy/dx = y/x elementwise (exact: y = a·x, and
    # a·x/x = a to within one rounding, so compare the rule with the drawn noise itself)
    noise = jax.random.uniform(key, x.shape, x.dtype, 1 / 8, 1 / 3)
    _same(y, noise * x)
    grad = jax.grad(lambda v: jnp.sum(fnnet.rrelu(v, training=True, key=key)))(x)
    _same(grad, noise)
    # positive inputs pass unchanged with derivative 1
    xp = jnp.abs(x)
    _same(fnnet.rrelu(xp, training=True, key=key), xp)
    _same(jax.grad(lambda v: jnp.sum(fnnet.rrelu(v, training=True, key=key)))(xp), jnp.ones_like(xp))


def test_rrelu_eval_is_leaky_relu_with_the_mean_slope_and_torch_kink():
    x = _grid(np.float64)
    finite = x[jnp.isfinite(x)]
    slope = (1 / 8 + 1 / 3) / 2
    _same(fnnet.rrelu(finite), jnp.where(finite > 0, finite, slope * finite))
    g = jax.vmap(jax.grad(fnnet.rrelu))(finite)
    _same(g, jnp.where(finite > 0, 1.0, slope))  # at 0: the slope (torch's x > 0 ? g : g·a)
    assert float(jax.grad(fnnet.rrelu)(0.0, 0.1, 0.3)) == pytest.approx(0.2, rel=1e-15)


def test_rrelu_under_jit_and_float32(key):
    x = jnp.linspace(-2, 2, 9, dtype=jnp.float32)
    f = jax.jit(lambda v, k: fnnet.rrelu(v, training=True, key=k))
    y = f(x, key)
    assert y.dtype == jnp.float32
    _same(y, fnnet.rrelu(x, training=True, key=key))
    legacy = jax.random.PRNGKey(0)
    assert fnnet.rrelu(x, training=True, key=legacy).shape == x.shape


def test_rrelu_errors(key):
    x = jnp.ones(3)
    with pytest.raises(ValueError, match="training=True .* needs a PRNG key.*got key=None"):
        fnnet.rrelu(x, training=True)
    with pytest.raises(TypeError, match="argument 'key' must be one PRNG key.*float64"):
        fnnet.rrelu(x, training=True, key=jnp.ones(2))
    with pytest.raises(ValueError, match="'lower' must be <= 'upper'; got lower=0.5, upper=0.1"):
        fnnet.rrelu(x, 0.5, 0.1, True, key)
    with pytest.raises(TypeError, match="'training' must be a bool"):
        fnnet.rrelu(x, training="yes", key=key)
    with pytest.raises(TypeError, match="'input'.*bool"):
        fnnet.rrelu(jnp.ones(3, bool))


def test_rrelu_with_noise_noise_shape_error():
    with pytest.raises(ValueError, match=r"'noise' of shape \(4,\) does not broadcast to the input's shape \(2, 3\)"):
        _stochastic.rrelu_with_noise(jnp.ones((2, 3)), jnp.ones(4))
    with pytest.raises(ValueError, match=r"'noise' of shape \(2, 2, 3\)"):
        _stochastic.rrelu_with_noise(jnp.ones((2, 3)), jnp.ones((2, 2, 3)))


# ----- gumbel_softmax ------------------------------------------------------------------------------


def test_gumbel_softmax_is_torch_formula(logits, key):
    u = jax.random.uniform(key, logits.shape, jnp.float64, minval=float(jnp.finfo(jnp.float64).tiny), maxval=1.0)
    gum = -jnp.log(-jnp.log(u))
    for tau in (1.0, 0.3):
        y = fnnet.gumbel_softmax(logits, key, tau=tau)
        _close(y, jax.nn.softmax((logits + gum) / tau), VALUE_RTOL, f"gumbel_softmax tau={tau}")
    y0 = fnnet.gumbel_softmax(logits, key, dim=0)
    _close(y0, jax.nn.softmax(logits + gum, axis=0), VALUE_RTOL, "gumbel_softmax dim=0")
    assert not jnp.allclose(fnnet.gumbel_softmax(logits, jax.random.key(9)), fnnet.gumbel_softmax(logits, key))
    # a legacy uint32 key works too
    fnnet.gumbel_softmax(logits, jax.random.PRNGKey(0))


def test_gumbel_softmax_hard_straight_through(logits, key):
    g = jax.random.normal(jax.random.key(2), (4, 6), jnp.float64)
    soft = fnnet.gumbel_softmax(logits, key, tau=0.5)
    hard = fnnet.gumbel_softmax(logits, key, tau=0.5, hard=True)
    np.testing.assert_array_equal(hard, jax.nn.one_hot(jnp.argmax(soft, -1), 6, dtype=logits.dtype))
    g_hard = jax.grad(lambda logits: jnp.vdot(g, fnnet.gumbel_softmax(logits, key, tau=0.5, hard=True)))(logits)
    g_soft = jax.grad(lambda logits: jnp.vdot(g, fnnet.gumbel_softmax(logits, key, tau=0.5)))(logits)
    np.testing.assert_array_equal(g_hard, g_soft)
    # and equals autodiff of torch's y_hard − stop_gradient(y) + y
    prim = fnnet.gumbel_softmax.primitive
    logits, gum = prim.sample_inputs(key, jnp.float64, (4, 6))
    vjp_hand = jax.vjp(lambda l, n: prim.fn(l, n, tau=0.5, hard=True), logits, gum)[1](g)
    vjp_ref = jax.vjp(lambda l, n: prim.reference(l, n, tau=0.5, hard=True), logits, gum)[1](g)
    for a, b in zip(vjp_hand, vjp_ref):
        _close(a, b, GRAD_RTOL, "straight-through VJP")
    _, t_hand = jax.jvp(lambda l: prim.fn(l, gum, tau=0.5, hard=True), (logits,), (g,))
    _, t_ref = jax.jvp(lambda l: prim.reference(l, gum, tau=0.5, hard=True), (logits,), (g,))
    _close(t_hand, t_ref, GRAD_RTOL, "straight-through JVP")


def test_gumbel_softmax_bad_input(logits, key):
    with pytest.raises(TypeError, match=r"argument 'key' must be one PRNG key.*float64 and shape \(4, 6\)"):
        fnnet.gumbel_softmax(logits, logits)
    with pytest.raises(ValueError, match=r"tau must be a positive finite number; got 0"):
        fnnet.gumbel_softmax(logits, key, tau=0.0)
    with pytest.raises(TypeError, match=r"'?hard'? must be a bool"):
        fnnet.gumbel_softmax(logits, key, hard=1)
    with pytest.raises(ValueError, match=r"dim 2 is out of range for an input with ndim 2"):
        fnnet.gumbel_softmax(logits, key, dim=2)
