"""Lean residuals: the compiled gradient of an MLP needs no more temporary memory with fnnet's
activations than with jax.nn's.

XLA's ``memory_analysis()`` of the compiled program is deterministic for a given program and
backend, so this is an exact comparison, not a timing. The MLP (784-256-256-10, batch 64, float32) is
the lecture's network scaled down, its loss fnnet.train.loss_fn (dense layers and softmax
cross-entropy, the same in both programs): only the activation differs between the two.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
from fnnet import train

SIZES = (784, 256, 256, 10)


def _temp_bytes(act):
    keys = jax.random.split(jax.random.key(0), len(SIZES))
    params = [
        {"W": jax.random.normal(k, (n, m), jnp.float32) * 0.03, "b": jnp.zeros(n, jnp.float32)}
        for k, m, n in zip(keys, SIZES[:-1], SIZES[1:])
    ]
    x = jnp.ones((64, SIZES[0]), jnp.float32)
    y = jnp.zeros(64, jnp.int32)
    loss = functools.partial(train.loss_fn, activation=act)
    compiled = jax.jit(jax.grad(loss)).lower(params, x, y).compile()
    return compiled.memory_analysis().temp_size_in_bytes


# No trade is left: gelu's tanh form, whose merged forward and backward kept an intermediate alive on
# XLA:CPU (1.40× jax.nn's bytes), now computes its derivative apart from the forward (fnnet's _dgelu)
# and needs less than jax.nn. A ratio above 1 for any activation fails.
TRADES: dict[str, float] = {}


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid", "gelu", "gelu_erf", "silu", "softplus", "elu",
                                  "leaky_relu"])
def test_mlp_gradient_needs_no_more_memory_than_jax_nn(name):
    if name == "gelu_erf":
        ours = _temp_bytes(functools.partial(fnnet.gelu, approximate=False))
        theirs = _temp_bytes(functools.partial(jax.nn.gelu, approximate=False))
    else:
        ours, theirs = _temp_bytes(getattr(fnnet, name)), _temp_bytes(getattr(jax.nn, name))
    allowed = TRADES.get(name, 1.0)
    assert ours <= allowed * theirs, (
        f"{name}: {ours} temp bytes against jax.nn's {theirs} ({ours / theirs:.3f}×, allowed {allowed}×)"
    )


def test_exact_tails_costs_the_input_kept_alive():
    """The opt-in: tanh′ and sigmoid′ from the input keep one hidden activation per layer alive on
    XLA:CPU (the cost docs/reference/performance.md states). XLA:GPU recomputes the derivative inside the fused
    backward instead (equal bytes, measured on an H200): there the opt-in may cost nothing, never less."""
    for name in ("tanh", "sigmoid"):
        f = getattr(fnnet, name)
        lean = _temp_bytes(f)
        exact = _temp_bytes(lambda x, f=f: f(x, exact_tails=True))
        if jax.default_backend() == "cpu":
            assert exact > lean, f"{name}: exact_tails should keep the input alive ({exact} vs {lean})"
        else:
            assert exact >= lean, f"{name}: exact_tails needs less memory than the lean rule ({exact} vs {lean})"


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_gelu_derivative_apart_from_its_forward_gives_the_same_bits(dtype, monkeypatch):
    """The tanh form's derivative clips at ±40.5 on the CPU (kept apart from the forward, for memory)
    and at the forward's ±40 elsewhere: both are past saturation, so the two give the same bits."""
    from fnnet.activations import _smooth

    mags = np.concatenate([np.geomspace(1e-6, 1e30, 2000), np.linspace(38.0, 42.0, 4001)])
    x = jnp.asarray(np.concatenate([-mags, mags, [0.0, np.inf, -np.inf, np.nan]]), dtype)
    grads = {}
    for lim in (40.0, 40.5):
        monkeypatch.setattr(_smooth, "_dgelu_clip", lambda approximate, lim=lim: lim)
        jax.clear_caches()  # the public function's trace would keep the other bound
        grads[lim] = np.asarray(jax.jit(jax.grad(lambda v: jnp.sum(fnnet.gelu(v))))(x))
    jax.clear_caches()
    assert np.array_equal(grads[40.0], grads[40.5], equal_nan=True)
    assert np.isnan(grads[40.0][-1]) and grads[40.0][-3] == 1 and grads[40.0][-2] == 0
