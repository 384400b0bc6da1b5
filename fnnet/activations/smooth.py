"""Smooth activations: the sigmoid family, the exponential units and their relatives.

One block per activation: forward ``f``, derivative ``f'`` (the whole hand-written rule: the VJP is
``g·f'`` and the JVP ``t·f'``), the plain reference that ``jax.vjp`` differentiates as an oracle, and the
derivation. Derivatives are written in tail-stable forms: no ``1 − y²`` or ``σ(1 − σ)`` that cancels
to 0 far from the origin, no ``0·∞`` at ±∞ (the input is clipped where the derivative has already
reached its limit to the last bit in float64).
"""
from __future__ import annotations

import functools
import math
from fractions import Fraction

import jax.numpy as jnp
import numpy as np
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


# ----- numerical tools (why each exists: docs/accuracy.md) -----------------------------------------
# Left-tail scaling. x·σ(x), σ(x)σ(−x)·g, ... are normal numbers down to x ≈ −91.7 in float32 (−715 in
# float64) while e^x is already subnormal below −87.3 (−708): a product formed through e^x loses up to
# all its bits there. So e^{−a} (a = |x|) is formed as e_s·E with e_s = e^{64−a} (a − 64 is exact: 64
# is a multiple of ulp(a) and |a − 64| ≤ a) and E = fl(e^{−64}) applied last, once the product is back
# in the normal range.
_E64 = math.exp(-64.0)


def _exp_neg_scaled(a):
    """For a ≥ 0: (e, e_s, scale) with e = e^{−a} (may be subnormal) and e^{−a} = e_s·scale, e_s normal."""
    big = a > 64.0
    e_s = jnp.exp(jnp.where(big, 64.0 - a, -a))
    scale = jnp.where(big, jnp.asarray(_E64, a.dtype), jnp.asarray(1.0, a.dtype))
    return e_s * scale, e_s, scale


def _sigmoid_parts(v):
    """σ(v) = s·scale (s normal where σ(v) is not far below the normal range) and σ(−v)."""
    e, e_s, scale = _exp_neg_scaled(jnp.abs(v))
    neg = v < 0
    inv = 1 / (1 + e)
    s = jnp.where(neg, e_s * inv, inv)
    return s, jnp.where(neg, scale, jnp.ones_like(scale)), jnp.where(neg, inv, e * inv)


def _const2(value, dtype):
    """A constant given as a decimal string or Fraction, as (hi, lo) in ``dtype``: hi + lo carries
    twice the dtype's precision (for differences x − r that must not lose r's low bits)."""
    v = Fraction(value) if not isinstance(value, Fraction) else value
    hi = float(np.asarray(float(v), dtype))
    lo = float(np.asarray(float(v - Fraction(hi)), dtype))
    return hi, lo


def _minus_root(x, root):
    """x − r with r (a decimal string) carried in two pieces: exact-ish wherever x is near r.

    The barrier keeps XLA from folding (x − r_hi) − r_lo into x − (r_hi + r_lo) = x − r_hi, which it
    does with constants under jit and which would throw r's low bits away.
    """
    hi, lo = _const2(root, x.dtype)
    return lax.optimization_barrier(x - hi) - lo


# ----- sigmoid -------------------------------------------------------------------------------------
def _sigmoid(x, exact_tails=False):
    r"""Logistic sigmoid :math:`σ(x) = 1/(1 + e^{-x})`. Derivative :math:`σ'(x) = σ(x)σ(−x)`.

    Args:
      x: array of any shape and floating dtype.
      exact_tails: the backward pass's residual (static). False (default): σ' = y(1 − y) from the
        output, as ``jax.grad(jax.nn.sigmoid)`` keeps it: no memory beyond jax.nn's, but σ' is 0
        where y rounds to 1 (x > 17 in float32). True: σ' = e/(1+e)², e = e^{−|x|}, from the input:
        exact everywhere, and the input stays alive until the backward pass.

    Returns:
      An array of ``x``'s shape and dtype.
    """
    return lax.logistic(x)


def _dsigmoid_rule(x, y, exact_tails=False):
    # Lean (default): σ' = y(1 − y) from the output, which the next layer keeps anyway: no residual
    # beyond jax.grad's. It loses the right tail (y rounds to 1: σ'(x) = 0 for x > 17 in float32).
    # exact_tails=True: e/(1+e)² from the input, exact to the last bit everywhere, at the cost of
    # keeping x alive until the backward pass (measured in docs/performance.md).
    return _dsigmoid(x) if exact_tails else y * (1 - y)


sigmoid = elementwise(
    "sigmoid", _sigmoid, _dsigmoid_rule,
    reference=lambda x, exact_tails=False: 1 / (1 + jnp.exp(-x)),
    saves="xy",
    static={"exact_tails": False},
    variants=({"exact_tails": False}, {"exact_tails": True}),
    derivation="σ = 1/(1+e^{−x}) ⇒ σ' = e^{−x}/(1+e^{−x})² = σ(x)·σ(−x); lean: y(1 − y); exact: e/(1+e)², e = e^{−|x|}",
).fn


# ----- tanh ----------------------------------------------------------------------------------------
def _tanh(x, exact_tails=False):
    r"""Hyperbolic tangent :math:`\tanh x = 2σ(2x) − 1`. Derivative :math:`\operatorname{sech}^2 x`.

    ``exact_tails`` (static) chooses the backward pass's residual: False (default) computes
    :math:`(1 − y)(1 + y)` from the output, jax.grad's residual (no extra memory; 0 where y rounds to
    ±1, |x| > 9 in float32); True computes :math:`4e/(1+e)^2`, :math:`e = e^{−2|x|}`, from the input,
    exact everywhere at the cost of keeping the input alive until the backward pass.

    float64: :math:`−m/(2 + m)`, :math:`m = \operatorname{expm1}(−2|x|)`, with the sign of x (≤ 3 ULP;
    XLA's tanh is 7 ULP off in float64 near |x| = 19). Other dtypes: XLA's tanh, which is within 4 ULP
    there and 3× cheaper than expm1 on XLA:CPU (float32 is the training dtype; float64 the checking one).
    """
    if x.dtype != jnp.float64:
        return jnp.tanh(x)
    m = jnp.expm1(-2 * jnp.abs(x))
    return jnp.copysign(-m / (2 + m), x)


def _dtanh_rule(x, y, exact_tails=False):
    # Lean (default): 1 − y² = (1 − y)(1 + y) from the output (jax.grad's residual); the product form
    # is exact in its own arithmetic (1 − y is exact for y ≥ ½). exact_tails=True: sech² from x.
    return _sech2(x) if exact_tails else (1 - y) * (1 + y)


tanh = elementwise(
    "tanh", _tanh, _dtanh_rule,
    reference=lambda x, exact_tails=False: (jnp.exp(x) - jnp.exp(-x)) / (jnp.exp(x) + jnp.exp(-x)),
    saves="xy",
    static={"exact_tails": False},
    variants=({"exact_tails": False}, {"exact_tails": True}),
    domain=(-3.0, 3.0),
    derivation="tanh' = 1 − tanh² = sech²; lean: (1 − y)(1 + y); exact: 4e/(1+e)², e = e^{−2|x|}",
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
    s, scale, _ = _sigmoid_parts(x)
    # −1e4 stands for −∞ (silu(−1e4) = 0 in every dtype) so that −∞ gives 0, not −∞·0.
    return (jnp.maximum(x, -1e4) * s) * scale


# The root of 1 + x + e^x (silu' = 0 there): r = −1 − W(1/e), by mpmath.findroot to 30 digits.
_SILU_ROOT = "-1.27846454276107379510935873902"


def _dsilu(x, y):
    # x ≥ 0: σ(x)(1 + xσ(−x)), positive terms. x < 0: silu' = σ(x)σ(−x)·g, g = 1 + x + e^x, which
    # cancels near its root r. With d = x − r and c = e^r = −(1 + r): g = d + c·expm1(d) exactly, and
    # d, c·expm1(d) have the same sign: no cancellation anywhere (d is formed with r in two pieces).
    xc = jnp.clip(x, -1e4, 1e4)  # silu' has reached its limits 0 and 1 to the last bit at ±1e4
    s, scale, sm = _sigmoid_parts(xc)
    d = _minus_root(jnp.minimum(xc, 0.0), _SILU_ROOT)
    g = d + float(-1 - Fraction(_SILU_ROOT)) * jnp.expm1(d)
    # (on [−0.5, 0) the right form does not cancel either: 1 + xσ(−x) ≥ 0.69; it is the more accurate)
    return jnp.where(x < -0.5, (s * sm * g) * scale, s * (1 + xc * sm))


silu = elementwise(
    "silu", _silu, _dsilu,
    reference=lambda x: x / (1 + jnp.exp(-x)),
    derivation="(xσ)' = σ + xσ' = σ(x)(1 + xσ(−x)) = σ(x)σ(−x)(1 + x + e^x)",
).fn
swish = silu


# ----- mish ----------------------------------------------------------------------------------------
def _mish(x):
    r"""Mish :math:`x·\tanh(\operatorname{softplus}(x))`.

    With :math:`n = (1 + e^x)^2 − 1 = e^x(e^x + 2)`, :math:`\tanh(\operatorname{softplus} x) = n/(n+2)`;
    written with :math:`e = e^{−|x|}` on each side so that nothing cancels or overflows.
    """
    xc = jnp.maximum(x, -1e4)  # mish(−1e4) = 0 in every dtype: −∞ gives 0, not −∞·0
    e, e_s, scale = _exp_neg_scaled(jnp.abs(xc))
    pos = x * ((1 + 2 * e) / (1 + 2 * e + 2 * e * e))  # t = e^{−x}: n/(n+2) = (1+2t)/(1+2t+2t²)
    neg = (xc * (e_s * (e + 2) / (e * (e + 2) + 2))) * scale  # e = e^{x}: x·e(e+2)/(e(e+2)+2)
    return jnp.where(x < 0, neg, pos)


# The root of mish' (mpmath.findroot, 30 digits), and the coefficients of mish's numerator h (below)
# expanded about it.
_MISH_ROOT = "-1.19243121451549521213758834042"


@functools.cache
def _mish_expansion():
    r = float(Fraction(_MISH_ROOT))
    E = math.exp(r)
    return (3 * E**3 + 8 * E**2 + 6 * E + 4 * r * E, 3 * E**3 + 4 * E**2, E**3, 4 * (1 + E), 4 * E)


def _dmish(x, y):
    # mish' = tanh(sp) + x·sech²(sp)·σ(x). For x ≥ 0, with t = e^{−x} and D = 1 + 2t + 2t²:
    # (1 + 2t)/D + 4x·t²(1 + t)/D², positive terms. For x < 0, with e = e^x and n = e(e + 2):
    # e·h/(n + 2)², h = (e + 2)(n + 2) + 4x(1 + e), which cancels near its root r ≈ −1.1924. There,
    # with d = x − r, m = expm1(d), E = e^r, h = A1·m + A2·m² + A3·m³ + B1·d + B2·d·m exactly (h(r) = 0
    # removes the constant term), and on [−3, 0) these terms do not cancel.
    xc = jnp.clip(x, -1e4, 1e4)  # mish' has reached its limits 0 and 1 at ±1e4
    e, e_s, scale = _exp_neg_scaled(jnp.abs(xc))
    D = 1 + 2 * e + 2 * e * e
    pos = (1 + 2 * e) / D + 4 * xc * (e * e * (1 + e)) / jnp.square(D)
    a1, a2, a3, b1, b2 = _mish_expansion()
    d = _minus_root(jnp.clip(xc, -3.0, 0.0), _MISH_ROOT)
    m = jnp.expm1(d)
    h_near = m * (a1 + m * (a2 + a3 * m)) + d * (b1 + b2 * m)
    n2 = e * (e + 2) + 2
    h_far = (e + 2) * n2 + 4 * xc * (1 + e)
    h = jnp.where(xc >= -3.0, h_near, h_far)
    neg = (e_s * h / jnp.square(n2)) * scale
    return jnp.where(x < 0, neg, pos)


mish = elementwise(
    "mish", _mish, _dmish,
    reference=lambda x: x * jnp.tanh(jnp.log(1 + jnp.exp(x))),
    derivation="(x·tanh(sp))' = tanh(sp) + x·sech²(sp)·sp', sp' = σ(x)",
).fn


# ----- gelu ----------------------------------------------------------------------------------------
# Cheap stable forms, not double-word arithmetic: Φ(x) = σ(2u) in the tanh form and ½erfc(−x/√2) in
# the erf form never cancel, so the bulk is accurate to a few ULP; in the far left tail the
# exponential turns the rounding of u (or of z² inside erfc) into relative error of the result, which
# only twice-the-precision arithmetic would remove. That was built and measured: XLA:CPU contracts the
# products into FMAs under jit (defeating it) and the step ran 19× slower than jax.nn.gelu. gelu is the
# transformer activation; fnnet keeps it as fast as jax.nn and documents the tail (docs/accuracy.md).
def _gelu_u2(x):
    """2u = 2√(2/π)(x + 0.044715x³) and its derivative 2u'."""
    x2 = x * x
    return 2 * _SQRT_2_OVER_PI * x * (1 + 0.044715 * x2), 2 * _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x2)


def _gelu(x, approximate=True):
    r"""GELU :math:`x·Φ(x)`; with ``approximate=True`` (jax.nn's default; torch's is exact),
    :math:`Φ(x) ≈ ½(1 + \tanh u) = σ(2u)`, :math:`u = \sqrt{2/π}(x + 0.044715x³)`.

    Written with σ(2u) and erfc so the left tail does not cancel (1 + tanh u → 0).
    """
    xc = jnp.clip(x, -40.0, 40.0)  # Φ(±40) is 0 and 1 to the last bit; keeps x³ finite in float16
    cdf = lax.logistic(_gelu_u2(xc)[0]) if approximate else 0.5 * lax.erfc(-xc / _SQRT_2)
    return jnp.where(x < -40.0, jnp.zeros_like(x), x) * cdf


def _dgelu(x, y, approximate=True):
    xc = jnp.clip(x, -40.0, 40.0)
    if approximate:
        u2, du2 = _gelu_u2(xc)
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
    # α·e^x formed as (α·e_s)·scale: for α > 1 (selu's λα ≈ 1.76) the result is still normal where e^x
    # alone is already subnormal, and a subnormal intermediate would cost all its bits (left-tail scaling).
    _, e_s, scale = _exp_neg_scaled(-jnp.minimum(x, 0.0))
    return jnp.where(x > 0, 1.0, (alpha * e_s) * scale).astype(x.dtype)


elu = elementwise(
    "elu", _elu, _delu,
    reference=lambda x, alpha=1.0: jnp.where(x > 0, x, alpha * (jnp.exp(jnp.where(x > 0, 0.0, x)) - 1)),
    static={"alpha": 1.0},
    traced=("alpha",),
    kinks=(Kink(0.0, 1.0, note="smooth when alpha = 1; for alpha ≠ 1 the rule takes the left side, α"),),
    variants=({"alpha": 1.0}, {"alpha": 0.5}),
    derivation="x > 0: 1; x ≤ 0: αe^x (from x, not y + α, which cancels as y → −α)",
).fn


def _selu(x):
    r"""SELU :math:`λ·\operatorname{elu}(x, α)`, λ ≈ 1.0507, α ≈ 1.6733 (Klambauer et al. 2017)."""
    return SELU_SCALE * _elu(x, SELU_ALPHA)


selu = elementwise(
    "selu", _selu, lambda x, y: SELU_SCALE * _delu(x, y, SELU_ALPHA),
    reference=lambda x: SELU_SCALE * jnp.where(x > 0, x, SELU_ALPHA * (jnp.exp(jnp.where(x > 0, 0.0, x)) - 1)),
    kinks=(Kink(0.0, SELU_SCALE * SELU_ALPHA, note="left derivative λα ≈ 1.7581 (right: λ); jax.nn and torch agree"),),
    derivation="λ·elu'(x, α)",
).fn


def _celu(x, alpha=1.0):
    r"""CELU :math:`\max(0, x) + \min(0, α(e^{x/α} − 1))`."""
    return jnp.maximum(x, 0.0) + alpha * jnp.expm1(jnp.minimum(x, 0.0) / alpha)


celu = elementwise(
    "celu", _celu,
    lambda x, y, alpha=1.0: jnp.where(x > 0, 1.0, jnp.exp(jnp.minimum(x, 0.0) / alpha)).astype(x.dtype),
    reference=lambda x, alpha=1.0: jnp.where(x > 0, x, alpha * (jnp.exp(jnp.where(x > 0, 0.0, x) / alpha) - 1)),
    static={"alpha": 1.0},
    traced=("alpha",),
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
    # ±∞ take their limits 1 and 0 and are kept out of the formulas (x/h = ∞/∞ is NaN at +∞).
    xf = jnp.where(jnp.isinf(x), 0.0, x)
    h = jnp.hypot(xf, math.sqrt(b))
    # (1 + x/h)/2; for x < 0 that is (h + x)/(2h) = b/(2h(h − x)), again without cancellation.
    left = (b / 2) / (h * (h - xf))
    d = jnp.where(xf < 0, left, 0.5 + 0.5 * (xf / h))
    return jnp.where(jnp.isinf(x), jnp.where(x > 0, 1.0, 0.0), d).astype(x.dtype)


squareplus = elementwise(
    "squareplus", _squareplus, _dsquareplus,
    reference=lambda x, b=4.0: (x + jnp.sqrt(x * x + b)) / 2,
    static={"b": 4.0},
    derivation="((x + √(x²+b))/2)' = (1 + x/√(x²+b))/2",
).fn


# ----- log1mexp ------------------------------------------------------------------------------------
def _below_unit_roundoff(x):
    """x < u = ε/2: there e^{±x} − 1 = ±x(1 ± x/2 + …) rounds to ±x (the x/2 term is below half an ULP).

    Used to take x itself instead of expm1(x): XLA's float16 expm1 drops the low bits of a subnormal
    input (expm1(257·2⁻²⁴) = 256·2⁻²⁴), which made log1mexp'(x) = 1/expm1(x) overflow to inf at
    x = 257·2⁻²⁴ where the exact value 65280.5 is finite. In float32/float64 expm1 returns x there anyway.
    """
    return x < float(jnp.finfo(x.dtype).eps) / 2


def _log1mexp(x):
    r""":math:`\log(1 − e^{−x})` for x > 0 (Mächler 2012: ``log(−expm1(−x))`` below log 2,
    ``log1p(−e^{−x})`` above; for x < ε/2, where −expm1(−x) rounds to x, ``log(x)``).
    Derivative :math:`1/(e^x − 1)`."""
    small = jnp.where(_below_unit_roundoff(x), x, -jnp.expm1(-x))
    return jnp.where(
        x < math.log(2.0), jnp.log(small), jnp.log1p(-jnp.exp(-x))
    )


def _dlog1mexp(x, y):
    # 1/expm1(x) = 1/x − 1/2 + x/12 − …: below ε/2 the first two terms are exact to the last bit, and
    # they avoid the float16 expm1 of a subnormal (see _below_unit_roundoff).
    return jnp.where(_below_unit_roundoff(x), 1 / x - 0.5, 1 / jnp.expm1(x))


log1mexp = elementwise(
    "log1mexp", _log1mexp, _dlog1mexp,
    reference=lambda x: jnp.log(1 - jnp.exp(-x)),
    domain=(0.05, 5.0),
    support=(0.0, float("inf")),
    singular=(0.0,),
    derivation="d/dx log(1 − e^{−x}) = e^{−x}/(1 − e^{−x}) = 1/(e^x − 1) = 1/expm1(x)",
).fn


# ----- tanhshrink, identity ------------------------------------------------------------------------
# Chebyshev coefficients of (x − tanh x)/x³ as a function of s = x² on [0, 4] (|x| < 2), computed with
# mpmath at 50 digits (c_k = (2/N)Σ f(cos θ_j)cos kθ_j, N = 40, c_0 halved). They fall by ~4.2 per term
# (the pole of tanh at s = −π²/4); a dtype uses those above its ε/100.
_TANHSHRINK_CHEB = (
    0.2073913078762066, -0.0962430154202646, 0.022682377083644147, -0.005358375971964861,
    0.0012663361171549804, -0.00029929142825705604, 7.073668332210778e-05, -1.6718449703689158e-05,
    3.9513679217227164e-06, -9.338969650781624e-07, 2.2072446006165615e-07, -5.216773282881417e-08,
    1.2329727066320123e-08, -2.9141034370388164e-09, 6.887418347683001e-10, -1.6278259341504252e-10,
    3.8473302159509073e-11, -9.093078983469404e-12, 2.149128896105882e-12, -5.079418116211105e-13,
    1.200509120045932e-13, -2.8373764756907044e-14, 6.706075889281856e-15, -1.5849660493805287e-15,
    3.7460318361502164e-16, -8.853662526674027e-17, 2.0925433516013657e-17, -4.945679446374828e-18,
    1.1689002843155454e-18,
)


def _tanhshrink(x):
    r"""torch's Tanhshrink :math:`x − \tanh x` (no jax.nn equivalent).

    x − tanh x cancels near 0 (it is x³/3 − 2x⁵/15 + …): for |x| < 2 it is x·s·p(s), s = x², with p a
    Chebyshev series (Clenshaw); beyond, x − tanh x loses at most a factor 2.
    """
    small = jnp.abs(x) < 2.0
    s = jnp.square(jnp.where(small, x, 0.0))
    t = 0.5 * s - 1.0
    eps = float(jnp.finfo(x.dtype).eps)
    coeffs = [c for c in _TANHSHRINK_CHEB if abs(c) >= 0.01 * eps]
    b1 = b2 = jnp.zeros_like(x)
    for c in coeffs[:0:-1]:
        b1, b2 = 2 * t * b1 - b2 + c, b1
    p = t * b1 - b2 + coeffs[0]
    return jnp.where(small, x * (s * p), x - _tanh(x))


tanhshrink = elementwise(
    "tanhshrink", _tanhshrink, lambda x, y: jnp.square(_tanh(x)),
    reference=lambda x: x - (jnp.exp(x) - jnp.exp(-x)) / (jnp.exp(x) + jnp.exp(-x)),
    domain=(-3.0, 3.0),
    derivation="(x − tanh x)' = 1 − sech² x = tanh² x",
).fn


def _identity(x):
    """Identity :math:`x`. Derivative 1."""
    return x


identity = elementwise(
    "identity", _identity, lambda x, y: jnp.ones_like(y),
    reference=lambda x: x,
    saves="y",
    # The constant 1, also at NaN (the cotangent passes through unchanged, as in jax.nn): a NaN select
    # would make the backward pass read an array it otherwise never touches (1.8× jax.nn's time).
    nan_select=False,
    derivation="x' = 1",
).fn
