"""Custom VJP rules the gradient-check tests share, each with the defects a test can seed in it.

Every test that shows a defect caught also shows the correct rule passing, so each rule here is
correct when no defect is asked for.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def tanh_with_bwd(bwd):
    """tanh with the hand-written ``bwd(x, g) -> (cotangent,)`` given (right or wrong)."""

    @jax.custom_vjp
    def f(x):
        return jnp.tanh(x)

    f.defvjp(lambda x: (f(x), x), bwd)
    return f


def tanh_rule(defect=None, reference=None):
    """tanh with a hand-written VJP; ``defect(x, d)`` edits the derivative ``d``; optional .reference."""

    def bwd(x, g):
        d = 1 - jnp.tanh(x) ** 2
        return (g * (defect(x, d) if defect else d),)

    f = tanh_with_bwd(bwd)
    if reference is not None:
        f.reference = reference
    return f


def tanh_sq_sum(bug=None):
    """sum(tanh(x)^2); d/dx = 2 y (1 - y^2) with y = tanh(x), kept from the forward pass.

    ``bug``: ``"entry"`` (entry 7 off by 1e-3 relative), ``"sign"`` (every sign flipped), or
    ``"second_order"`` (y held constant in bwd: the first derivative is right, its own derivative not).
    """

    @jax.custom_vjp
    def f(x):
        return jnp.sum(jnp.tanh(x) ** 2)

    def fwd(x):
        y = jnp.tanh(x)
        return jnp.sum(y**2), y

    def bwd(y, g):
        if bug == "second_order":
            y = jax.lax.stop_gradient(y)
        v = g * 2 * y * (1 - y**2)
        if bug == "entry":
            v = v.at[7].multiply(1 + 1e-3)
        if bug == "sign":
            v = -v
        return (v,)

    f.defvjp(fwd, bwd)
    return f
