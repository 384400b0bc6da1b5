r"""Activations with random numbers: rrelu (random slopes) and gumbel_softmax (Gumbel noise).

Each takes an explicit PRNG ``key`` (JAX has no hidden random state) where torch draws from its global
generator. Beside each public function stands its deterministic form, registered for the generic
suites: ``rrelu_with_noise(input, noise)`` (torch's name) and the ``gumbel_softmax`` primitive
``(logits, gumbels)``: the random numbers as an array argument, so that the rule, the reference and
finite differences see the same draw, and the noise's cotangent (the reparametrisation gradient) is
checked too.
"""
from __future__ import annotations

import inspect
import math
import numbers

import jax
import jax.numpy as jnp
from jax import lax

from fnnet._checks import as_float_array, broadcasts_to, prng_key, same_dtype
from fnnet._checks import axes as _axes
from fnnet._numerics import keep_nan, normalize, shifted, softmax_vjp, unbroadcast
from fnnet.primitive import Kink, define, sample_rng, sampled, uniform_avoiding

__all__ = ["rrelu", "gumbel_softmax"]


# ----- rrelu -----------------------------------------------------------------------------------------
def _leaky_noise_forward(x, noise):
    r"""Leaky ReLU with a slope per element: :math:`x` for :math:`x > 0`, :math:`a·x` otherwise,
    ``a = noise`` broadcast to the input's shape (torch's ``rrelu_with_noise``; :func:`rrelu` calls it
    with sampled or fixed slopes).

    Derivatives: ∂y/∂x = 1 for x > 0, a for x ≤ 0 (so a at the kink 0, as in torch); ∂y/∂a = x for
    x ≤ 0, 0 otherwise, summed back to ``noise``'s shape.
    """
    return jnp.where(x > 0, x, noise * x)


def _leaky_noise_bwd(residuals, g):
    x, noise = residuals
    positive = x > 0
    dx = g * keep_nan(x, jnp.where(positive, jnp.ones_like(noise), noise))
    dnoise = unbroadcast(jnp.where(positive, jnp.zeros_like(g), x * g), noise.shape)
    return dx, dnoise


def _leaky_noise_jvp(primals, tangents, out):
    (x, noise), (tx, tnoise) = primals, tangents
    return keep_nan(x, jnp.where(x > 0, tx, noise * tx + tnoise * x))


def _leaky_noise_validate(input, noise):
    where = "fnnet.rrelu_with_noise"
    same_dtype(where, "input", input, "noise", noise)
    broadcasts_to(noise, input.shape, where, "noise")


def _leaky_noise_sample(key, dtype=jnp.float32, shape=(3, 5)):
    rng = sample_rng(key)
    x = uniform_avoiding(rng, shape, dtype, -4.0, 4.0, [0.0])
    return x, sampled(rng.uniform(1 / 8, 1 / 3, shape), dtype)


rrelu_with_noise = define(
    "rrelu_with_noise", forward=_leaky_noise_forward, bwd=_leaky_noise_bwd, jvp=_leaky_noise_jvp,
    reference=lambda input, noise: jnp.maximum(input, 0) + noise * jnp.minimum(input, 0),
    arg_names=("input", "noise"), validate=_leaky_noise_validate, sample=_leaky_noise_sample,
    kinks=(Kink(0.0, 0.25, note="∂y/∂x(0) = the slope a (torch's convention); 0.25 shown for a = ¼"),),
    derivation="∂y/∂x = [x > 0] + a·[x ≤ 0]; ∂y/∂a = x·[x ≤ 0]",
).fn


def _rrelu_noise(x, key, lower, upper, training):
    if training:
        return jax.random.uniform(key, x.shape, x.dtype, lower, upper)
    return jnp.asarray((lower + upper) / 2, x.dtype)


def _rrelu_forward(input, key=None, lower=1.0 / 8, upper=1.0 / 3, training=False):
    return _leaky_noise_forward(input, _rrelu_noise(input, key, lower, upper, training))


def _rrelu_fwd(input, key=None, lower=1.0 / 8, upper=1.0 / 3, training=False):
    noise = _rrelu_noise(input, key, lower, upper, training)
    return _leaky_noise_forward(input, noise), (input, noise)


def _rrelu_bwd(residuals, g, key=None, lower=1.0 / 8, upper=1.0 / 3, training=False):
    return _leaky_noise_bwd(residuals, g)[:1]


def _drrelu(x, y, key=None, lower=1.0 / 8, upper=1.0 / 3, training=False):
    """f' with the same slopes, redrawn from the key; NaN where x is NaN."""
    noise = _rrelu_noise(x, key, lower, upper, training)
    return keep_nan(x, jnp.where(x > 0, jnp.ones_like(x), noise))


def _rrelu_jvp(primals, tangents, out, **params):
    # t·f' (a product, not a select on t: its transpose, the hand VJP g·f', keeps a NaN of f')
    (x,), (t,) = primals, tangents
    return t * _drrelu(x, None, **params)


def _rrelu_reference(input, lower=1.0 / 8, upper=1.0 / 3, training=False, key=None):
    noise = _rrelu_noise(input, key, lower, upper, training)
    return jnp.maximum(input, 0) + noise * jnp.minimum(input, 0)


def _rrelu_validate(input, key=None, lower=1.0 / 8, upper=1.0 / 3, training=False):
    where = "fnnet.rrelu"
    for name, v in (("lower", lower), ("upper", upper)):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"{where}: '{name}' must be a real number; got {v!r}")
    if not lower <= upper:
        raise ValueError(f"{where}: 'lower' must be <= 'upper'; got lower={lower}, upper={upper}")
    if not isinstance(training, bool):
        raise TypeError(f"{where}: 'training' must be a bool; got {training!r}")
    if training:
        if key is None:
            raise ValueError(
                f"{where}: training=True draws a slope per element and needs a PRNG key: pass "
                "key=jax.random.key(seed); got key=None"
            )
        prng_key(key, where)


rrelu = define(
    "rrelu",
    forward=_rrelu_forward, fwd=_rrelu_fwd, bwd=_rrelu_bwd, jvp=_rrelu_jvp,
    reference=_rrelu_reference,
    arg_names=("input",),
    static={"lower": 1.0 / 8, "upper": 1.0 / 3, "training": False, "key": None},
    traced=("key",),
    validate=_rrelu_validate,
    elementwise=True,
    # f' for the elementwise tools (Jacobian diagonal, extremes): the same slopes, redrawn from the key
    df=_drrelu,
    saves="x",
    kinks=(Kink(0.0, (1 / 8 + 1 / 3) / 2, note="∂y/∂x(0) = the slope a (torch's convention)"),),
    domain=(-4.0, 4.0),  # sampled away from the kink 0
    variants=({"training": False}, {"lower": 0.1, "upper": 0.3}),
    derivation="∂y/∂x = [x > 0] + a·[x ≤ 0], a drawn once in the forward pass (training) or (l + u)/2",
    doc=r"""torch's randomized leaky ReLU (Xu et al. 2015), with an explicit PRNG key.

``rrelu(input, lower=1/8, upper=1/3, training=False, key=None)``: torch's positional order (torch's
``inplace`` has no meaning for immutable arrays; ``key`` comes last). :math:`x` for :math:`x > 0`,
:math:`a·x` otherwise, where

* ``training=True``: a slope :math:`a \sim U(\text{lower}, \text{upper})` drawn per element from
  ``key`` (required);
* ``training=False`` (torch's default): the fixed slope :math:`a = (\text{lower} + \text{upper})/2`;
  ``key`` is not used.

Derivative: 1 for x > 0, the *same* a for x ≤ 0 (the slopes are drawn once, in the forward pass, and
kept as the residual). **Kink** at 0: the rule returns a, torch's convention. The key and the bounds
are not differentiated.

Args:
  input: array of any shape and floating dtype.
  lower: lower end of the slope range (default 1/8, as torch); static.
  upper: upper end, ``lower <= upper`` (default 1/3, as torch); static.
  training: sample the slopes (True) or use their mean (False, default); static.
  key: a ``jax.random.key`` (or legacy ``PRNGKey``); required when ``training=True``.

Returns:
  An array of ``input``'s shape and dtype.
""",
).fn


# ----- gumbel_softmax (torch, with an explicit key) ----------------------------------------------------


def _gumbel_noise(key, shape, dtype):
    """g = −log(−log U), U ~ Uniform[tiny, 1): standard Gumbel samples (U > 0 keeps g finite)."""
    u = jax.random.uniform(key, shape, dtype, minval=float(jnp.finfo(dtype).tiny), maxval=1.0)
    return -jnp.log(-jnp.log(u))


def _gumbel_parts(logits, gumbels, tau, dim):
    axes = _axes(dim, logits.ndim, "fnnet.gumbel_softmax", "dim")
    z = (logits + gumbels) * (1.0 / tau)
    return normalize(shifted(z, axes, None)[2], axes, None), axes


def _one_hot_argmax(y, axes):
    (axis,) = axes
    idx = jnp.argmax(y, axis=axis, keepdims=True)
    hard = (lax.broadcasted_iota(idx.dtype, y.shape, axis) == idx).astype(y.dtype)
    # argmax ignores NaN's meaning; keep NaN in ⇒ NaN out.
    return jnp.where(jnp.any(jnp.isnan(y), axis=axis, keepdims=True), jnp.nan, hard)


def _gumbel_forward(logits, gumbels, *, tau=1.0, hard=False, dim=-1):
    y, axes = _gumbel_parts(logits, gumbels, tau, dim)
    return _one_hot_argmax(y, axes) if hard else y


def _gumbel_fwd(logits, gumbels, *, tau=1.0, hard=False, dim=-1):
    y, axes = _gumbel_parts(logits, gumbels, tau, dim)
    return (_one_hot_argmax(y, axes) if hard else y), y


def _gumbel_bwd(y, g, *, tau=1.0, hard=False, dim=-1):
    # hard=True: straight-through: the gradient of the soft sample y (the one-hot's is 0 a.e.).
    d = softmax_vjp(y, g, _axes(dim, y.ndim, "fnnet.gumbel_softmax", "dim")) * (1.0 / tau)
    return d, d


def _gumbel_jvp(primals, tangents, out, *, tau=1.0, hard=False, dim=-1):
    y, axes = _gumbel_parts(*primals, tau, dim)
    return softmax_vjp(y, (tangents[0] + tangents[1]) * (1.0 / tau), axes)


def _gumbel_reference(logits, gumbels, tau=1.0, hard=False, dim=-1):
    """torch's formula: y = softmax((logits + g)/τ); hard: y_hard − stop_gradient(y) + y."""
    z = (logits + gumbels) / tau
    e = jnp.exp(z - jax.lax.stop_gradient(jnp.max(z, dim, keepdims=True)))
    y = e / jnp.sum(e, dim, keepdims=True)
    if not hard:
        return y
    y_hard = jax.nn.one_hot(jnp.argmax(y, dim), y.shape[dim], dtype=y.dtype, axis=dim)
    return y_hard - jax.lax.stop_gradient(y) + y


def _validate_gumbel(logits, gumbels, tau=1.0, hard=False, dim=-1):
    if logits.shape != gumbels.shape:
        raise ValueError(
            f"fnnet.gumbel_softmax: gumbels of shape {gumbels.shape} must match logits of shape "
            f"{logits.shape}"
        )
    same_dtype("fnnet.gumbel_softmax", "logits", logits, "gumbels", gumbels)
    if isinstance(tau, bool) or not isinstance(tau, numbers.Real) or not (0 < tau < math.inf):
        raise ValueError(f"fnnet.gumbel_softmax: tau must be a positive finite number; got {tau!r}")
    if not isinstance(hard, bool):
        raise TypeError(f"fnnet.gumbel_softmax: hard must be a bool; got {hard!r}")
    if isinstance(dim, tuple):
        raise TypeError(f"fnnet.gumbel_softmax: dim must be an int (torch's signature); got {dim!r}")
    _axes(dim, logits.ndim, "fnnet.gumbel_softmax", "dim")


def _gumbel_sample(key, dtype=jnp.float32, shape=(3, 5), **static):
    rng = sample_rng(key)
    return sampled(2.0 * rng.standard_normal(shape), dtype), sampled(rng.gumbel(size=shape), dtype)


def gumbel_softmax(logits, key, tau=1.0, hard=False, dim=-1):
    r"""torch's Gumbel-softmax with an explicit PRNG key.

    ``gumbel_softmax(logits, key, tau=1.0, hard=False, dim=-1)``: draws standard Gumbel noise
    :math:`g = −\log(−\log U)`, :math:`U \sim \mathcal U(0, 1)` from ``key`` and returns
    :math:`y = \operatorname{softmax}((\text{logits} + g)/τ)` over ``dim`` (torch's formula; torch's
    deprecated ``eps`` argument is not taken). With ``hard=True`` the value is the one-hot of
    ``argmax(y)`` (exactly 0 and 1: torch computes ``y_hard − y.detach() + y``, which can be off by one
    rounding) and the gradient is the *straight-through* estimator: the gradient of the soft sample ``y``,
    not the true derivative of the one-hot (0 almost everywhere).

    Arguments:
      logits: floating array (..., n). key: a ``jax.random.key`` (or legacy uint32 key).
      tau: temperature > 0; static. hard: bool; static. dim: the axis of the categories; static.

    Derivative (soft sample, both modes): VJP :math:`y ⊙ (g − ⟨g, y⟩)/τ` with respect to the logits and
    to the noise. The registered primitive ``registry()["gumbel_softmax"]`` takes the noise as its second
    array argument (``gumbel_softmax.primitive.fn(logits, gumbels, ...)``), so it is deterministic.
    """
    # The key draws the noise here, and the registered primitive (logits, gumbels) is differentiated
    # (why a wrapper and not a key-taking primitive: docs/design.md, "Core layout").
    fname = "fnnet.gumbel_softmax"
    logits = as_float_array(logits, "logits", fname)
    prng_key(key, fname)
    gumbels = _gumbel_noise(key, logits.shape, logits.dtype)
    return _gumbel_prim.fn(logits, gumbels, tau=tau, hard=hard, dim=dim)


_gumbel_prim = define(
    "gumbel_softmax",
    forward=_gumbel_forward, fwd=_gumbel_fwd, bwd=_gumbel_bwd, jvp=_gumbel_jvp,
    reference=_gumbel_reference, arg_names=("logits", "gumbels"),
    static={"tau": 1.0, "hard": False, "dim": -1},
    validate=_validate_gumbel, sample=_gumbel_sample,
    # hard=True is not a generic variant: its straight-through gradient is by design not the derivative
    # of its (one-hot) value, which finite differences would measure; tests/test_activations_stochastic.py
    # checks it against the reference's straight-through gradient instead.
    variants=({"tau": 1.0}, {"tau": 0.5, "dim": 0}),
    derivation="y = softmax(z), z = (logits + g)/τ ⇒ Jᵀg' = y ⊙ (g' − ⟨g', y⟩)/τ for logits and g",
    doc=inspect.cleandoc(gumbel_softmax.__doc__),
)


gumbel_softmax.__module__ = "fnnet"
gumbel_softmax.primitive = _gumbel_prim


def _gumbel_key_reference(logits, key, tau=1.0, hard=False, dim=-1):
    """torch's formula with the same draw as :func:`gumbel_softmax` (for ``fnnet.gradcheck``)."""
    logits = jnp.asarray(logits)
    return _gumbel_reference(logits, _gumbel_noise(key, logits.shape, logits.dtype), tau, hard, dim)


gumbel_softmax.reference = _gumbel_key_reference
