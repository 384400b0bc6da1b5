r"""Piecewise-linear (and piecewise-polynomial) activations: the ReLU family, the hard and sparse
functions, the shrinks, threshold and prelu (rrelu, whose slopes are random, is in ``_stochastic``).

One block per activation: forward ``f``, derivative ``f'`` (the whole hand-written rule: the VJP is
``g·f'`` and the JVP ``t·f'``), a plain reference that ``jax.vjp`` differentiates as an oracle, and the
kinks. These functions are differentiable everywhere except at a few points (the *kinks*) where the
one-sided derivatives differ; the rule must still return *a* number there, and libraries disagree on
which. fnnet returns exactly ``jax.grad(jax.nn.X)``'s value at every kink of a function jax.nn has, and
torch's (read from ``aten/src/ATen/native/cpu/Activation.cpp``) for the torch-only ones; each kink is
declared as a :class:`~fnnet.primitive.Kink` with torch's value beside it where they differ. The table
is in ``docs/reference/activations.md`` ("Kink conventions: fnnet vs torch").

Values are computed with the same expressions as ``jax.nn`` (so they agree to the last bit), except
where jax.nn's value is NaN and the mathematical limit is not (``hard_silu(−∞) = 0``).

NaN in gives NaN out, in the value *and* in the derivative: a rule written as ``where(x > 0, 1, 0)``
would silently turn a NaN input into a zero gradient (``jax.grad(jax.nn.relu)(nan)`` is 0); here it stays
NaN so that the NaN is seen where it entered (``elementwise`` does this for the derivatives declared
through it; the ops declared with ``define`` below do it themselves with ``keep_nan``).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from fnnet._checks import same_dtype
from fnnet._numerics import keep_nan, where
from fnnet.primitive import REQUIRED, Kink, define, elementwise, sample_rng, sampled, uniform_avoiding

__all__ = [
    "hard_sigmoid",
    "hard_silu",
    "hard_swish",
    "hard_tanh",
    "hardshrink",
    "leaky_relu",
    "prelu",
    "relu",
    "relu6",
    "softshrink",
    "sparse_plus",
    "sparse_sigmoid",
    "threshold",
]


def _select(mask, a, b, like):
    """``where(mask, a, b)`` for Python-number branches, in ``like``'s dtype (strict promotion)."""
    return where(mask, lax.full_like(like, a), lax.full_like(like, b))


def _kinks_at_pm(at, derivative, note, torch=None):
    """The kinks at −at and at, where the rule takes the same value (as at −at)."""
    return (Kink(-at, derivative, torch=torch, note=note),
            Kink(at, derivative, torch=torch, note=f"as at −{at:g}"))


def _sampler(kinks_of, domain, n_args=1):
    """A ``sample(key, dtype, shape, **static)`` for elementwise ops whose kinks move with the
    hyperparameters: uniform points on ``domain`` kept away from ``kinks_of(**static)``."""
    lo, hi = domain

    def sample(key, dtype=jnp.float32, shape=(3, 5), **static):
        kinks, rng = kinks_of(**static), sample_rng(key)
        return tuple(uniform_avoiding(rng, shape, dtype, lo, hi, kinks) for _ in range(n_args))

    return sample


# ===== The ReLU family ==============================================================================

# ----- relu ----------------------------------------------------------------------------------------
def _relu(x):
    r"""Rectified linear unit :math:`\operatorname{relu}(x) = \max(x, 0)`.

    Derivative: 1 for x > 0, 0 for x < 0. **Kink** at 0: the rule returns 0 (jax.nn and torch agree;
    ``jnp.maximum``'s own derivative would split the tie and give ½).

    Arguments:
      x: array of any shape and floating dtype.

    Returns:
      An array of ``x``'s shape and dtype.
    """
    return jnp.maximum(x, 0)


def _drelu(x, y):
    # [x > 0] as max(sign(x), 0): 1, 0 (at ±0 too: max(−0, 0) is +0) and NaN at NaN, so the rule needs
    # no select for NaN (the select form maps NaN to 0 and needed one). jit fwd+bwd at 2²⁰ (hand
    # custom_vjp side by side, 300 rounds): 1.00× jax.nn's against 1.03× with the two selects.
    return lax.max(lax.sign(x), lax.full_like(x, 0))


relu = elementwise(
    "relu", _relu,
    _drelu,
    reference=lambda x: jnp.where(x > 0, x, jnp.zeros_like(x)),
    kinks=(Kink(0.0, 0.0, note="0, not ½ (the tie split of max(x, 0)); jax.nn and torch agree"),),
    derivation="max(x, 0)' = [x > 0]",
).fn


# ----- relu6 ---------------------------------------------------------------------------------------
def _relu6(x):
    r"""ReLU6 :math:`\min(\max(x, 0), 6)`.

    Derivative: 1 for 0 < x < 6, 0 outside. **Kinks** at 0 and 6: the rule returns 0 at both (jax.nn and
    torch agree: the derivative is 1 on the open interval only).

    Arguments:
      x: array of any shape and floating dtype.

    Returns:
      An array of ``x``'s shape and dtype.
    """
    return jnp.minimum(jnp.maximum(x, 0), 6.0)


def _drelu6(x, y):
    # [0 < x < 6] from the output y = clip(x, 0, 6): y(6 − y) is positive exactly on the open interval
    # (6 − y is exact for y ≥ 3, and a rounded 6 − y is still > 0 below), 0 at and beyond both kinks
    # (y = +0 there: max(−0, 0) is +0) and NaN at NaN, so sign() of it is the indicator and the rule
    # needs no NaN select. It reads y, which the next layer keeps anyway. jit fwd+bwd at 2²⁰ (hand
    # custom_vjp side by side, 300 rounds, two runs): 1.03–1.07× jax.nn's against 1.06–1.10× for the
    # select on x with its NaN select.
    return lax.sign(y * (6 - y))


relu6 = elementwise(
    "relu6", _relu6,
    _drelu6, saves="y",
    reference=lambda x: jnp.where(x > 6, jnp.full_like(x, 6.0), jnp.where(x > 0, x, jnp.zeros_like(x))),
    kinks=(
        Kink(0.0, 0.0, note="derivative 1 on the open interval (0, 6) only; jax.nn and torch agree"),
        Kink(6.0, 0.0, note="as at 0"),
    ),
    domain=(-2.0, 8.0),
    derivation="[0 < x < 6]",
).fn


# ----- leaky_relu ----------------------------------------------------------------------------------
def _leaky_relu(x, negative_slope=0.01):
    r"""Leaky ReLU: :math:`x` for :math:`x \ge 0`, :math:`αx` for :math:`x < 0`, α = ``negative_slope``.

    Derivative: 1 for x > 0, α for x < 0. **Kink** at 0: the rule returns **1** (jax.nn, which writes
    ``where(x >= 0, ...)``); torch returns α there (its backward is ``x > 0 ? g : g·α``).

    ``negative_slope`` may be traced (as in jax.nn); its derivative then comes from autodiff of the
    forward. For a learnable per-channel slope see :func:`prelu`.

    Arguments:
      x: array of any shape and floating dtype.
      negative_slope: the slope α for negative inputs (default 0.01).

    Returns:
      An array of ``x``'s shape and dtype.
    """
    return where(x >= 0, x, negative_slope * x)


def _dleaky_relu(x, y, negative_slope=0.01):
    # α for x < 0, else min(sign(x) + 1, 1): 1 for x ≥ 0 (−0 included, as jax.nn's x >= 0) and NaN at
    # NaN (x < 0 is false there and min propagates NaN), so the rule needs no NaN select; α itself is
    # selected, not computed, so it is exact. jit fwd+bwd at 2²⁰ (hand custom_vjp side by side, 300
    # rounds, two runs): 0.99–1.03× jax.nn's against 1.02–1.05× for the select with its NaN select.
    # (With a traced α the NaN probe cannot run and the mechanism keeps its select.)
    one = lax.full_like(x, 1)
    return where(x < 0, negative_slope, lax.min(lax.add(lax.sign(x), one), one))


leaky_relu = elementwise(
    "leaky_relu", _leaky_relu,
    _dleaky_relu,
    reference=lambda x, negative_slope=0.01: jnp.maximum(x, 0) + negative_slope * jnp.minimum(x, 0),
    static={"negative_slope": 0.01},
    traced=("negative_slope",),
    kinks=(Kink(0.0, 1.0, torch=0.01, note="jax.nn takes the right side (x >= 0); torch the left, α"),),
    variants=({"negative_slope": 0.01}, {"negative_slope": 0.2}),
    derivation="x ≥ 0: 1; x < 0: α",
).fn


# ===== Hard functions ===============================================================================

# ----- hard_tanh -----------------------------------------------------------------------------------
def _hard_tanh(x):
    r"""Hard tanh: :math:`−1` for :math:`x < −1`, :math:`x` on :math:`[−1, 1]`, :math:`1` for
    :math:`x > 1` (that is, :math:`\operatorname{clip}(x, −1, 1)`).

    The lecture's note prints 0 for the middle case; that is a typo: the function is the identity on
    [−1, 1], which is what makes it continuous (and what jax.nn and torch compute).

    Derivative: 1 on (−1, 1), 0 outside. **Kinks** at ±1: the rule returns **1** (jax.nn: the middle
    branch is the closed interval); torch's ``hardtanh`` returns 0 there (``x <= min || x >= max``).

    Arguments:
      x: array of any shape and floating dtype.

    Returns:
      An array of ``x``'s shape and dtype.
    """
    return where(x > 1, 1, where(x < -1, -1, x))


hard_tanh = elementwise(
    "hard_tanh", _hard_tanh,
    lambda x, y: _select((x >= -1) & (x <= 1), 1.0, 0.0, x),
    reference=lambda x: jnp.minimum(jnp.maximum(x, -1.0), 1.0),
    kinks=_kinks_at_pm(1.0, 1.0, "jax.nn: closed middle interval; torch: x <= min_val ⇒ 0", torch=0.0),
    domain=(-3.0, 3.0),
    derivation="[−1 ≤ x ≤ 1]",
).fn


# ----- hard_sigmoid --------------------------------------------------------------------------------
def _hard_sigmoid(x):
    r"""Hard sigmoid :math:`\operatorname{relu6}(x + 3)/6`: 0 for x ≤ −3, (x + 3)/6 between, 1 for x ≥ 3.

    Derivative: 1/6 on (−3, 3), 0 outside. **Kinks** at ±3: the rule returns 0 (jax.nn and torch
    agree). The test is made on ``u = x + 3``, as jax.nn's relu6 does, so that the points where ``x + 3``
    rounds onto 0 or 6 get the same derivative as in jax.nn.

    Arguments:
      x: array of any shape and floating dtype.

    Returns:
      An array of ``x``'s shape and dtype.
    """
    return jnp.minimum(jnp.maximum(x + 3.0, 0), 6.0) / 6.0


def _hard_sigmoid_mask(x):
    u = x + 3.0
    return (u > 0) & (u < 6)


hard_sigmoid = elementwise(
    "hard_sigmoid", _hard_sigmoid,
    lambda x, y: _select(_hard_sigmoid_mask(x), 1.0 / 6.0, 0.0, x),
    reference=lambda x: jnp.clip((x + 3.0) / 6.0, 0.0, 1.0),
    kinks=_kinks_at_pm(3.0, 0.0, "derivative 1/6 on the open interval only; jax.nn and torch agree"),
    domain=(-6.0, 6.0),
    derivation="relu6'(x + 3)/6 = [−3 < x < 3]/6",
).fn


# ----- hard_silu (hard_swish) ----------------------------------------------------------------------
def _hard_silu(x):
    r"""Hard SiLU / hard swish :math:`x·\operatorname{hard\_sigmoid}(x)`: 0 for x ≤ −3,
    x(x + 3)/6 between, x for x ≥ 3. ``hard_swish`` is the same function.

    Derivative: 0 for x < −3, (2x + 3)/6 = hard_sigmoid(x) + x/6 on (−3, 3), 1 for x > 3.
    **Kinks** at ±3 (the function is continuous, its derivative jumps from 0 to −½ at −3 and from 1½ to
    1 at 3): the rule returns jax.nn's product-rule values, **0 at −3 and 1 at 3**; torch's
    ``hardswish`` returns −½ at −3 and 1½ at 3 (its middle branch x/3 + ½ on the closed interval).

    At −∞ the value is the limit 0 (jax.nn's ``x·0`` gives NaN there).

    Arguments:
      x: array of any shape and floating dtype.

    Returns:
      An array of ``x``'s shape and dtype.
    """
    y = x * _hard_sigmoid(x)
    return where(jnp.isneginf(x), -jnp.zeros_like(x), y)  # −0.0, the sign of x·0 for x < −3


def _dhard_silu(x, y):
    # Product rule as jax.nn differentiates it: hs(x) + x·hs'(x), hs' = [−3 < x < 3]/6. Outside the
    # interval hs is exactly 0 or 1 and x·0 is dropped (where, not a product), so ±∞ gives 0 and 1.
    # x/6 (not x·(1/6)) rounds as jax.grad does.
    return _hard_sigmoid(x) + where(_hard_sigmoid_mask(x), x / 6.0, jnp.zeros_like(x))


hard_silu = elementwise(
    "hard_silu", _hard_silu, _dhard_silu,
    reference=lambda x: x * jnp.clip((x + 3.0) / 6.0, 0.0, 1.0),
    kinks=(
        Kink(-3.0, 0.0, torch=-0.5, note="jax.nn's product rule: hs(−3) + (−3)·0; torch: x/3 + ½"),
        Kink(3.0, 1.0, torch=1.5, note="jax.nn's product rule: hs(3) + 3·0; torch: x/3 + ½"),
    ),
    domain=(-6.0, 6.0),
    derivation="(x·hs)' = hs + x·hs' = (2x + 3)/6 on (−3, 3); 0 below, 1 above",
).fn
hard_swish = hard_silu


# ===== Sparse functions (Fenchel–Young twins of softplus and sigmoid) ===============================

# ----- sparse_plus ---------------------------------------------------------------------------------
def _sparse_plus(x):
    r"""Sparse plus: 0 for :math:`x \le −1`, :math:`(x + 1)^2/4` on (−1, 1), :math:`x` for
    :math:`x \ge 1`; a smooth, convex twin of softplus.

    Derivative: :math:`\operatorname{sparse\_sigmoid}(x)`: 0, (x + 1)/2, 1. It is continuous (C¹), so
    ±1 are not kinks of f' in the strict sense; the rule returns 0 at −1 and 1 at 1, the common value of
    both sides (jax.nn gives the same; torch has no sparse_plus). The second derivative jumps there.

    Arguments:
      x: array of any shape and floating dtype.

    Returns:
      An array of ``x``'s shape and dtype.
    """
    return where(x <= -1.0, 0.0, where(x >= 1.0, x, (x + 1.0) ** 2 / 4))


sparse_plus = elementwise(
    "sparse_plus", _sparse_plus,
    # (x + 1)/2 is finite for every finite x (no square in the unselected branch to overflow).
    lambda x, y: where(x <= -1.0, jnp.zeros_like(x), where(x >= 1.0, jnp.ones_like(x), (x + 1.0) / 2)),
    reference=lambda x: jnp.square(jnp.clip(x + 1.0, 0.0, 2.0)) / 4 + jnp.maximum(x - 1.0, 0.0),
    kinks=(
        Kink(-1.0, 0.0, note="f is C¹: both one-sided derivatives are 0 (f'' jumps 0 → ½)"),
        Kink(1.0, 1.0, note="f is C¹: both one-sided derivatives are 1 (f'' jumps ½ → 0)"),
    ),
    domain=(-3.0, 3.0),
    derivation="((x + 1)²/4)' = (x + 1)/2 on (−1, 1); 0 below, 1 above",
).fn


# ----- sparse_sigmoid ------------------------------------------------------------------------------
def _sparse_sigmoid(x):
    r"""Sparse sigmoid :math:`\tfrac12\operatorname{clip}(x + 1, 0, 2)`: 0 for x ≤ −1, (x + 1)/2
    between, 1 for x ≥ 1; the derivative of :func:`sparse_plus`.

    Derivative: ½ on (−1, 1), 0 outside. **Kinks** at ±1: the rule returns **¼**, the mean of the
    one-sided derivatives ½ and 0 (jax.nn's clip splits the tie: ½·½). The test is made on
    ``u = x + 1`` as jax.nn's clip does, so points next to 1 where ``x + 1`` rounds to 2 also give ¼,
    as in jax.nn. torch has no sparse_sigmoid.

    Arguments:
      x: array of any shape and floating dtype.

    Returns:
      An array of ``x``'s shape and dtype.
    """
    return 0.5 * jnp.clip(x + 1.0, 0.0, 2.0)


def _dsparse_sigmoid(x, y):
    u = x + 1.0
    inside = _select((u > 0) & (u < 2), 0.5, 0.0, x)
    return where((u == 0) | (u == 2), jnp.full_like(x, 0.25), inside)


sparse_sigmoid = elementwise(
    "sparse_sigmoid", _sparse_sigmoid, _dsparse_sigmoid,
    reference=lambda x: jnp.where(x <= -1.0, jnp.zeros_like(x), jnp.where(x >= 1.0, jnp.ones_like(x), (x + 1.0) / 2)),
    kinks=_kinks_at_pm(1.0, 0.25, "mean of the one-sided derivatives 0 and ½ (jax.nn's clip tie split)"),
    domain=(-3.0, 3.0),
    derivation="½·clip'(x + 1) = ½·[−1 < x < 1]; ¼ at the ties",
).fn


# ===== torch-only: shrinks and threshold ============================================================

# ----- hardshrink ----------------------------------------------------------------------------------
def _hardshrink(x, lambd=0.5):
    r"""torch's Hardshrink: :math:`x` for :math:`|x| > λ`, 0 for :math:`|x| \le λ` (λ = ``lambd``).

    Derivative: 1 for |x| > λ, 0 for |x| < λ. **Kinks** at ±λ, where the function *jumps* (from 0 to
    ±λ): the rule returns 0 on the closed interval [−λ, λ], torch's convention
    (``shrink_backward``: ``-λ <= x <= λ ? 0 : g``). jax.nn has no hardshrink.

    Arguments:
      input: array of any shape and floating dtype.
      lambd: the half-width λ of the dead zone (default 0.5).

    Returns:
      An array of ``input``'s shape and dtype.
    """
    return where((x >= -lambd) & (x <= lambd), jnp.zeros_like(x), x)


def _shrink_derivative(x, lambd):
    return keep_nan(x, _select((x >= -lambd) & (x <= lambd), 0.0, 1.0, x))


def _shrink(name, f, reference, validate=None, note=""):
    """hardshrink and softshrink: one rule, [|x| > λ] (0 on the closed interval, torch's
    ``shrink_backward``), kinks at ±λ."""
    return elementwise(
        name, f, lambda x, y, lambd=0.5: _shrink_derivative(x, lambd),
        reference=reference,
        arg_name="input",
        static={"lambd": 0.5},
        validate=validate,
        kinks=(Kink(-0.5, 0.0, note=note), Kink(0.5, 0.0, note="as at −λ")),
        domain=(-3.0, 3.0),
        sample=_sampler(lambda lambd=0.5: [-lambd, lambd], (-3.0, 3.0)),
        variants=({"lambd": 0.5}, {"lambd": 1.5}),
        derivation="[|x| > λ]",
    ).fn


hardshrink = _shrink(
    "hardshrink", _hardshrink,
    lambda input, lambd=0.5: jnp.where(jnp.abs(input) > lambd, input, jnp.zeros_like(input)),
    note="jump discontinuity (0 ↔ −λ); torch: 0 on the closed interval [−λ, λ]",
)


# ----- softshrink ----------------------------------------------------------------------------------
def _softshrink(x, lambd=0.5):
    r"""torch's Softshrink: :math:`x − λ` for :math:`x > λ`, :math:`x + λ` for :math:`x < −λ`, 0 between
    (the proximal operator of λ|x|, soft thresholding).

    Derivative: 1 for |x| > λ, 0 for |x| < λ. **Kinks** at ±λ (continuous there): the rule returns 0
    on the closed interval [−λ, λ], torch's convention (the same ``shrink_backward`` as hardshrink).
    jax.nn has no softshrink. torch requires λ ≥ 0; so does fnnet (``ValueError``).

    NaN in gives NaN out (the middle branch is ``x·0``, which is ±0 for finite x and NaN for NaN).

    Arguments:
      input: array of any shape and floating dtype.
      lambd: the threshold λ ≥ 0 (default 0.5).

    Returns:
      An array of ``input``'s shape and dtype.
    """
    return where(x > lambd, x - lambd, where(x < -lambd, x + lambd, x * 0))


def _validate_lambd(input, lambd=0.5):
    if not lambd >= 0:
        raise ValueError(f"fnnet.softshrink: 'lambd' must be >= 0 (torch's rule); got {lambd}")


softshrink = _shrink(
    "softshrink", _softshrink,
    lambda input, lambd=0.5: jnp.sign(input) * jnp.maximum(jnp.abs(input) - lambd, 0.0),
    validate=_validate_lambd,
    note="one-sided derivatives 1 and 0; torch: 0 on the closed interval [−λ, λ]",
)


# ----- threshold -----------------------------------------------------------------------------------
def _threshold(x, threshold=0.0, value=0.0):
    r"""torch's Threshold: :math:`x` for :math:`x > θ`, ``value`` for :math:`x \le θ` (θ = ``threshold``).

    Computed as torch does, ``x <= θ ? value : x``, so that NaN passes through (``NaN <= θ`` is False).

    Derivative: 1 for x > θ, 0 for x < θ. **Kink** at θ (a jump unless ``value == θ``): the rule returns
    0, torch's convention (``threshold_backward``: ``x <= θ ? 0 : g``). ``threshold(x, 0, 0)`` is relu
    with the same derivative at 0. jax.nn has no threshold.

    Arguments:
      input: array of any shape and floating dtype.
      threshold: θ, the value at and below which the input is replaced (required, as in torch).
      value: the replacement (required, as in torch).

    Returns:
      An array of ``input``'s shape and dtype.
    """
    return where(x <= threshold, jnp.full_like(x, value), x)


def _dthreshold(x, threshold):
    return keep_nan(x, _select(x <= threshold, 0.0, 1.0, x))


threshold = elementwise(
    "threshold", _threshold, lambda x, y, threshold, value: _dthreshold(x, threshold),
    reference=lambda input, threshold, value: jnp.where(input > threshold, input, jnp.full_like(input, value)),
    arg_name="input",
    static={"threshold": REQUIRED, "value": REQUIRED},  # required, as in torch.nn.functional.threshold
    kinks=(Kink(0.0, 0.0, note="at x = threshold; torch: x <= θ ⇒ 0"),),
    domain=(-3.0, 3.0),
    sample=_sampler(lambda threshold=0.0, value=0.0: [threshold], (-3.0, 3.0)),
    variants=({"threshold": 0.0, "value": 0.0}, {"threshold": 0.5, "value": -2.0}),
    derivation="[x > θ]",
).fn


# ===== Learnable slopes: prelu ==========================================================

# ----- prelu ---------------------------------------------------------------------------------------
def _prelu_weight(weight, ndim):
    """The weight laid out to broadcast against the input: one entry everywhere, or one per channel
    along axis 1 (torch's channel axis)."""
    if weight.size == 1:
        return weight.reshape(())
    return weight.reshape((weight.size,) + (1,) * (ndim - 2))


def _prelu_forward(x, w):
    r"""torch's PReLU: :math:`x` for :math:`x > 0`, :math:`w·x` otherwise, with a learnable weight w.

    **Shapes** (torch's rule): ``weight`` has one entry (shape ``()`` or ``(1,)``), used everywhere, or
    one entry per channel, shape ``(C,)`` with ``C = input.shape[1]`` (``input`` of shape ``(N, C, ...)``);
    an input with fewer than 2 dimensions has no channel axis and takes a single weight.

    Derivatives: ∂y/∂x = 1 for x > 0, w for x < 0; ∂y/∂w = 0 for x > 0, x for x ≤ 0, summed over every
    axis but the channel axis (the adjoint of the broadcast), so the weight's cotangent has the weight's
    shape. **Kink** at x = 0: ∂y/∂x = **w**, torch's convention (``x > 0 ? g : w·g``; this is also
    leaky_relu's torch convention, where jax.nn's leaky_relu returns 1). jax.nn has no prelu.

    Arguments:
      input: array ``(N, C, ...)``, or any shape with a single weight; floating dtype.
      weight: array ``()``, ``(1,)`` or ``(C,)`` of ``input``'s dtype.

    Returns:
      An array of ``input``'s shape and dtype.
    """
    wb = _prelu_weight(w, x.ndim)
    return where(x > 0, x, wb * x)


def _prelu_bwd(residuals, g):
    x, w = residuals
    wb = _prelu_weight(w, x.ndim)
    positive = x > 0
    dx = g * keep_nan(x, where(positive, jnp.ones_like(wb), wb))
    dw_full = where(positive, jnp.zeros_like(g), x * g)
    if w.size == 1:
        dw = jnp.sum(dw_full)
    else:  # sum over every axis but the channel axis 1
        dw = jnp.sum(dw_full, axis=(0,) + tuple(range(2, x.ndim)))
    return dx, dw.reshape(w.shape).astype(w.dtype)


def _prelu_jvp(primals, tangents, out):
    (x, w), (tx, tw) = primals, tangents
    wb, twb = _prelu_weight(w, x.ndim), _prelu_weight(tw, x.ndim)
    return keep_nan(x, where(x > 0, tx, wb * tx + twb * x))


def _prelu_reference(input, weight):
    w = _prelu_weight(weight, input.ndim)
    return jnp.maximum(input, 0) + w * jnp.minimum(input, 0)


def _prelu_validate(input, weight):
    where = "fnnet.prelu"
    same_dtype(where, "input", input, "weight", weight)
    if weight.ndim > 1:
        raise ValueError(
            f"{where}: 'weight' must have shape (), (1,) or (C,); got shape {weight.shape} "
            f"(input shape {input.shape})"
        )
    if weight.size != 1 and (input.ndim < 2 or input.shape[1] != weight.size):
        raise ValueError(
            f"{where}: 'weight' of shape {weight.shape} must have 1 entry or one per channel "
            f"(input.shape[1]); got input of shape {input.shape}"
        )


def _prelu_sample(key, dtype=jnp.float32, shape=(3, 5)):
    rng = sample_rng(key)
    x = uniform_avoiding(rng, shape, dtype, -4.0, 4.0, [0.0])
    n_channels = shape[1] if len(shape) >= 2 else 1
    return x, sampled(rng.uniform(-0.5, 0.5, (n_channels,)), dtype)


prelu = define(
    "prelu",
    forward=_prelu_forward,
    bwd=_prelu_bwd,
    jvp=_prelu_jvp,
    reference=_prelu_reference,
    arg_names=("input", "weight"),
    validate=_prelu_validate,
    kinks=(Kink(0.0, 0.25, note="∂y/∂x(0) = w, torch's convention; 0.25 is torch's default init of w"),),
    sample=_prelu_sample,
    derivation="∂y/∂x = [x > 0] + w·[x ≤ 0]; ∂y/∂w = x·[x ≤ 0], summed over all axes but 1",
).fn
