"""Smooth activations: the sigmoid family, the exponential units and their relatives.

One block per activation: forward ``f``, derivative ``f'`` (the whole hand-written rule: the VJP is
``g·f'`` and the JVP ``t·f'``), the plain reference that ``jax.vjp`` differentiates as an oracle, and the
derivation. Derivatives are written in tail-stable forms: no ``1 − y²`` or ``σ(1 − σ)`` that cancels
to 0 far from the origin, no ``0·∞`` at ±∞ (the input is clipped where the derivative has already
reached its limit to the last bit in float64).
"""
from __future__ import annotations

import math

import jax.numpy as jnp
from jax import lax

from fnnet.primitive import Kink, elementwise

_SQRT_2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
SELU_SCALE = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717


def _dsigmoid(x):
    """σ'(x) = σ(x)·σ(−x) = e/(1+e)² with e = exp(−|x|): one exp, no cancellation, 0 at ±∞."""
    e = jnp.exp(-jnp.abs(x))
    return e / jnp.square(1 + e)


def _sech2(x):
    """sech²(x) = 1 − tanh²(x) = 4e/(1+e)² with e = exp(−2|x|): exact in the tails where 1 − y² is 0."""
    e = jnp.exp(-2 * jnp.abs(x))
    return 4 * e / jnp.square(1 + e)


# ----- sigmoid -------------------------------------------------------------------------------------
def _sigmoid(x):
    r"""Logistic sigmoid :math:`σ(x) = 1/(1 + e^{-x})`. Derivative :math:`σ'(x) = σ(x)σ(−x)`."""
    return lax.logistic(x)


sigmoid = elementwise(
    "sigmoid", _sigmoid, lambda x, y: _dsigmoid(x),
    reference=lambda x: 1 / (1 + jnp.exp(-x)),
    derivation="σ = 1/(1+e^{−x}) ⇒ σ' = e^{−x}/(1+e^{−x})² = σ(x)·σ(−x); written e/(1+e)², e = e^{−|x|}",
).fn


# ----- tanh ----------------------------------------------------------------------------------------
def _tanh(x):
    r"""Hyperbolic tangent :math:`\tanh x = 2σ(2x) − 1`. Derivative :math:`\operatorname{sech}^2 x`."""
    return jnp.tanh(x)


tanh = elementwise(
    "tanh", _tanh, lambda x, y: _sech2(x),
    reference=lambda x: (jnp.exp(x) - jnp.exp(-x)) / (jnp.exp(x) + jnp.exp(-x)),
    domain=(-3.0, 3.0),
    derivation="tanh' = 1 − tanh² = sech²; written 4e/(1+e)², e = e^{−2|x|} (1 − y² is 0 for |x| > 19)",
).fn


# ----- softplus, log_sigmoid -----------------------------------------------------------------------
def _softplus(x):
    r"""Softplus :math:`\log(1 + e^x)`, computed as ``logaddexp(x, 0)``. Derivative :math:`σ(x)`."""
    return jnp.logaddexp(x, 0.0)


softplus = elementwise(
    "softplus", _softplus, lambda x, y: lax.logistic(x),
    reference=lambda x: jnp.log(1 + jnp.exp(x)),
    derivation="d/dx log(1+e^x) = e^x/(1+e^x) = σ(x)",
).fn


def _log_sigmoid(x):
    r"""Log-sigmoid :math:`\log σ(x) = −\operatorname{softplus}(−x)`. Derivative :math:`σ(−x)`."""
    return -jnp.logaddexp(-x, 0.0)


log_sigmoid = elementwise(
    "log_sigmoid", _log_sigmoid, lambda x, y: lax.logistic(-x),
    reference=lambda x: jnp.log(1 / (1 + jnp.exp(-x))),
    derivation="d/dx −log(1+e^{−x}) = e^{−x}/(1+e^{−x}) = σ(−x)",
).fn


# ----- silu (swish) --------------------------------------------------------------------------------
def _silu(x):
    r"""SiLU / swish :math:`x·σ(x)`. Derivative :math:`σ(x)(1 + xσ(−x))`."""
    return x * lax.logistic(x)


def _dsilu(x, y):
    # σ(x) + x·σ(x)σ(−x); x is clipped where σ' has underflowed so that ±∞ gives 1 and 0, not 0·∞.
    xc = jnp.clip(x, -800.0, 800.0)
    return lax.logistic(xc) + xc * _dsigmoid(xc)


silu = elementwise(
    "silu", _silu, _dsilu,
    reference=lambda x: x / (1 + jnp.exp(-x)),
    derivation="(xσ)' = σ + xσ' = σ(x) + x·σ(x)σ(−x)",
).fn
swish = silu


# ----- mish ----------------------------------------------------------------------------------------
def _mish(x):
    r"""Mish :math:`x·\tanh(\operatorname{softplus}(x))`."""
    return x * jnp.tanh(jnp.logaddexp(x, 0.0))


def _dmish(x, y):
    # tanh(sp) + x·sech²(sp)·σ(x), sp = softplus(x) ≥ 0; clipped at ±800 where the terms saturate.
    xc = jnp.clip(x, -800.0, 800.0)
    sp = jnp.logaddexp(xc, 0.0)
    return jnp.tanh(sp) + xc * _sech2(sp) * lax.logistic(xc)


mish = elementwise(
    "mish", _mish, _dmish,
    reference=lambda x: x * jnp.tanh(jnp.log(1 + jnp.exp(x))),
    derivation="(x·tanh(sp))' = tanh(sp) + x·sech²(sp)·sp', sp' = σ(x)",
).fn


# ----- gelu ----------------------------------------------------------------------------------------
def _gelu_u(x):
    return _SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)


def _gelu(x, approximate=True):
    r"""GELU :math:`x·Φ(x)`; with ``approximate=True`` (jax.nn's default; torch's is exact),
    :math:`Φ(x) ≈ ½(1 + \tanh u) = σ(2u)`, :math:`u = \sqrt{2/π}(x + 0.044715x³)`.

    Written with σ(2u) and erfc so the left tail does not cancel (1 + tanh u → 0).
    """
    xc = jnp.clip(x, -40.0, 40.0)  # Φ(±40) is 0 and 1 to the last bit; keeps u³ finite in float16
    cdf = lax.logistic(2 * _gelu_u(xc)) if approximate else 0.5 * lax.erfc(-xc / _SQRT_2)
    return jnp.where(x < -40.0, jnp.zeros_like(x), x) * cdf


def _dgelu(x, y, approximate=True):
    xc = jnp.clip(x, -40.0, 40.0)
    if approximate:
        u2 = 2 * _gelu_u(xc)
        du2 = 2 * _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * xc * xc)
        return lax.logistic(u2) + xc * du2 * _dsigmoid(u2)
    return 0.5 * lax.erfc(-xc / _SQRT_2) + xc * _INV_SQRT_2PI * jnp.exp(-0.5 * xc * xc)


def _gelu_reference(x, approximate=True):
    if approximate:
        return 0.5 * x * (1 + jnp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x**3)))
    return 0.5 * x * (1 + lax.erf(x / _SQRT_2))


gelu = elementwise(
    "gelu", _gelu, _dgelu,
    reference=_gelu_reference,
    static={"approximate": True},
    variants=({"approximate": True}, {"approximate": False}),
    derivation="(xΦ)' = Φ(x) + xφ(x); approximate: Φ = σ(2u) ⇒ Φ' = 2u'·σ(2u)σ(−2u)",
).fn


# ----- elu, selu, celu -----------------------------------------------------------------------------
def _elu(x, alpha=1.0):
    r"""ELU: :math:`x` for :math:`x > 0`, :math:`α(e^x − 1)` otherwise (double where: no NaN leaks)."""
    return jnp.where(x > 0, x, alpha * jnp.expm1(jnp.where(x > 0, 0.0, x)))


def _delu(x, y, alpha=1.0):
    return jnp.where(x > 0, 1.0, alpha * jnp.exp(jnp.minimum(x, 0.0))).astype(x.dtype)


elu = elementwise(
    "elu", _elu, _delu,
    reference=lambda x, alpha=1.0: jnp.where(x > 0, x, alpha * (jnp.exp(jnp.minimum(x, 0.0)) - 1)),
    static={"alpha": 1.0},
    kinks=(Kink(0.0, 1.0, note="smooth when alpha = 1; for alpha ≠ 1 the rule takes the left side, α"),),
    variants=({"alpha": 1.0}, {"alpha": 0.5}),
    derivation="x > 0: 1; x ≤ 0: αe^x (from x, not y + α, which cancels as y → −α)",
).fn


def _selu(x):
    r"""SELU :math:`λ·\operatorname{elu}(x, α)`, λ ≈ 1.0507, α ≈ 1.6733 (Klambauer et al. 2017)."""
    return SELU_SCALE * _elu(x, SELU_ALPHA)


selu = elementwise(
    "selu", _selu, lambda x, y: SELU_SCALE * _delu(x, y, SELU_ALPHA),
    reference=lambda x: SELU_SCALE * jnp.where(x > 0, x, SELU_ALPHA * (jnp.exp(jnp.minimum(x, 0.0)) - 1)),
    kinks=(Kink(0.0, SELU_SCALE * SELU_ALPHA, note="left derivative λα ≈ 1.7581 (right: λ); jax.nn and torch agree"),),
    derivation="λ·elu'(x, α)",
).fn


def _celu(x, alpha=1.0):
    r"""CELU :math:`\max(0, x) + \min(0, α(e^{x/α} − 1))`."""
    return jnp.maximum(x, 0.0) + alpha * jnp.expm1(jnp.minimum(x, 0.0) / alpha)


celu = elementwise(
    "celu", _celu,
    lambda x, y, alpha=1.0: jnp.where(x > 0, 1.0, jnp.exp(jnp.minimum(x, 0.0) / alpha)).astype(x.dtype),
    reference=lambda x, alpha=1.0: jnp.where(x > 0, x, alpha * (jnp.exp(jnp.minimum(x, 0.0) / alpha) - 1)),
    static={"alpha": 1.0},
    variants=({"alpha": 1.0}, {"alpha": 2.0}),
    derivation="x > 0: 1; x ≤ 0: e^{x/α} (continuously differentiable for every α)",
).fn


# ----- soft_sign, squareplus -----------------------------------------------------------------------
def _soft_sign(x):
    r"""Soft sign :math:`x/(|x| + 1)`; ±∞ give ±1."""
    return jnp.where(jnp.isinf(x), jnp.sign(x), x / (jnp.abs(x) + 1))


soft_sign = elementwise(
    "soft_sign", _soft_sign, lambda x, y: 1 / jnp.square(jnp.abs(x) + 1),
    reference=lambda x: x / (jnp.abs(x) + 1),
    derivation="(x/(|x|+1))' = 1/(|x|+1)²",
).fn


def _squareplus(x, b=4.0):
    r"""Squareplus :math:`(x + \sqrt{x² + b})/2`; for x < 0 as :math:`b/(2(\sqrt{x²+b} − x))`
    (no cancellation), with ``hypot`` so x² cannot overflow."""
    h = jnp.hypot(x, math.sqrt(b))
    return jnp.where(x < 0, (b / 4) / (h / 2 - x / 2), x / 2 + h / 2)


def _dsquareplus(x, y, b=4.0):
    h = jnp.hypot(x, math.sqrt(b))
    # (1 + x/h)/2; for x < 0 that is (h + x)/(2h) = b/(2h(h − x)), again without cancellation.
    left = (b / 2) / (h * (h - x))
    return jnp.where(x < 0, jnp.where(jnp.isinf(x), 0.0, left), 0.5 + 0.5 * (x / h)).astype(x.dtype)


squareplus = elementwise(
    "squareplus", _squareplus, _dsquareplus,
    reference=lambda x, b=4.0: (x + jnp.sqrt(x * x + b)) / 2,
    static={"b": 4.0},
    derivation="((x + √(x²+b))/2)' = (1 + x/√(x²+b))/2",
).fn


# ----- log1mexp ------------------------------------------------------------------------------------
def _log1mexp(x):
    r""":math:`\log(1 − e^{−x})` for x > 0 (Mächler 2012: ``log(−expm1(−x))`` below log 2,
    ``log1p(−e^{−x})`` above). Derivative :math:`1/(e^x − 1)`."""
    return jnp.where(
        x < math.log(2.0), jnp.log(-jnp.expm1(-x)), jnp.log1p(-jnp.exp(-x))
    )


log1mexp = elementwise(
    "log1mexp", _log1mexp, lambda x, y: 1 / jnp.expm1(x),
    reference=lambda x: jnp.log(1 - jnp.exp(-x)),
    domain=(0.05, 5.0),
    support=(0.0, float("inf")),
    singular=(0.0,),
    derivation="d/dx log(1 − e^{−x}) = e^{−x}/(1 − e^{−x}) = 1/(e^x − 1) = 1/expm1(x)",
).fn


# ----- tanhshrink, identity ------------------------------------------------------------------------
def _tanhshrink(x):
    r"""torch's Tanhshrink :math:`x − \tanh x` (no jax.nn equivalent)."""
    return x - jnp.tanh(x)


tanhshrink = elementwise(
    "tanhshrink", _tanhshrink, lambda x, y: jnp.square(jnp.tanh(x)),
    reference=lambda x: x - (jnp.exp(x) - jnp.exp(-x)) / (jnp.exp(x) + jnp.exp(-x)),
    domain=(-3.0, 3.0),
    derivation="(x − tanh x)' = 1 − sech² x = tanh² x",
).fn


def _identity(x):
    """Identity :math:`x`. Derivative 1."""
    return x


identity = elementwise(
    "identity", _identity, lambda x, y: jnp.ones_like(x),
    reference=lambda x: x,
    derivation="x' = 1",
).fn
