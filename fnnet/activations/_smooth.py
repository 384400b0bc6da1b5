"""Smooth activations: the sigmoid family, the exponential units and their relatives, and glu (a
sigmoid gate).

One block per activation: forward ``f``, derivative ``f'`` (the whole hand-written rule: the VJP is
``g·f'`` and the JVP ``t·f'``), the plain reference that ``jax.vjp`` differentiates as an oracle, and the
derivation. Derivatives are written in tail-stable forms: no ``1 − y²`` or ``σ(1 − σ)`` that cancels
to 0 far from the origin, no ``0·∞`` at ±∞ (the input is clipped where the derivative has already
reached its limit to the last bit in float64).
"""
from __future__ import annotations

import decimal
import functools
import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from fnnet._numerics import E_SHIFT, SHIFT, SHIFT_FROM, backend, const, dsigmoid, exp_neg_scaled, where
from fnnet._numerics import softplus as _softplus_kernel
from fnnet._checks import axes
from fnnet.primitive import Kink, define, elementwise, sample_rng, sampled

__all__ = [
    "celu", "elu", "gelu", "glu", "identity", "log1mexp", "log_sigmoid", "mish", "selu", "sigmoid",
    "silu", "soft_sign", "softplus", "squareplus", "swish", "tanh", "tanhshrink",
]

_SQRT_2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_SQRT_PI_OVER_2 = math.sqrt(math.pi / 2.0)
SELU_SCALE = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717


def _sech2(x):
    """sech²(x) = q(1 − q/4), q = 4/(1 + e^{2|x|}) = 4σ(−2|x|): no cancellation (q/4 ≤ ½), and q is
    normal wherever sech² is (q overflows to 0 only where e^{2|x|} does, where sech² < the smallest
    normal); a form through e^{−2|x|} would lose bits where e^{−2|x|} is subnormal but 4e^{−2|x|} not."""
    q = 4 / (1 + jnp.exp(2 * jnp.abs(x)))
    return q * (1 - 0.25 * q)


def _in_float32(fn):
    """Run ``fn`` in float32 for float16/bfloat16 input and round the result once: the formulas below
    use the range of float32 (x², e^{±64}, x³) and bit splits defined for float32/float64."""
    @functools.wraps(fn)
    def wrapped(x, *args, **kwargs):
        if x.dtype in (jnp.float32, jnp.float64):
            return fn(x, *args, **kwargs)
        return fn(x.astype(jnp.float32), *args, **kwargs).astype(x.dtype)
    return wrapped


# ----- error-free transformations ------------------------------------------------------------------
# A product a·b is formed as hi + lo from halves of a and b (a bit mask keeps the high 12 of float32's
# 24 significant bits, 26 of float64's 53) whose pairwise products are exact, summed with Knuth's
# TwoSum. No rounded product enters the algorithm: XLA fuses a multiply into a following add (an FMA)
# under jit, which changes a Dekker product p − a·b (the FMA computes it from the unrounded a·b, while
# p elsewhere is rounded) and Veltkamp's splitting a·(2^s + 1) − …, but leaves an exact product's sum
# unchanged (an FMA of an exact product rounds the same sum). TwoSum has no multiplication to fuse, and
# XLA does not reassociate floating-point sums (it does fold chains of constants, which is why no
# difference x − r_hi − r_lo appears below: root expansions carry r's low bits in a constant instead).
_SPLIT_MASK = {
    "float32": (np.uint32, np.uint32(0xFFFFF000)),
    "float64": (np.uint64, np.uint64(0xFFFFFFFFF8000000)),
}


def _split(a):
    """a = hi + lo exactly, hi the high half of a's significand (float32: 12 bits, float64: 26)."""
    ut, mask = _SPLIT_MASK[a.dtype.name]
    hi = lax.bitcast_convert_type(lax.bitcast_convert_type(a, ut) & mask, a.dtype)
    return hi, a - hi


def _split_const(c, dtype):
    """The same split of a Python constant, at trace time."""
    ut, mask = _SPLIT_MASK[jnp.dtype(dtype).name]
    v = np.asarray(c, dtype)
    hi = (v.view(np.dtype(ut)) & mask).view(v.dtype)
    return float(hi), float(v - hi)


def _two_prod(a, b):
    """(p, e): a·b = p + e to about twice the working precision (relative ~2⁻⁴⁸ in float32, ~2⁻¹⁰⁴ in
    float64), p within an ULP of a·b. ``b`` may be an array or a Python constant (split at trace time)."""
    ah, al = _split(a)
    bh, bl = _split(b) if hasattr(b, "dtype") else _split_const(b, a.dtype)
    p, e = _two_sum(ah * bh, ah * bl + al * bh)  # exact + (rounded to 2⁻²⁴·2⁻¹¹ of a·b)
    return p, e + al * bl


def _two_sum(a, b):
    """(s, e): s = fl(a + b) and a + b = s + e exactly (Knuth)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _horner(t, coeffs):
    acc = jnp.full_like(t, coeffs[-1])
    for c in coeffs[-2::-1]:
        acc = acc * t + c
    return acc


def _root_expansion(x, table):
    """f'(x) near its zero r from ``table[dtype] = (r_h, c0, (lo, hi), Q)``
    (experiments/smooth_constants.py): d·Q(d) + c0 with d = x − r_h, exact near r (Sterbenz); c0 = f'(r_h)
    carries r's low bits. Returns (value, inside the window lo ≤ d ≤ hi)."""
    rh, c0, (lo, hi), q = table[x.dtype.name]
    d = x - rh
    return d * _horner(d, q) + c0, (d >= lo) & (d <= hi)


# ----- numerical tools (why each exists: docs/reference/accuracy.md; left-tail scaling: fnnet/_numerics.py) ---
def _const2(value, dtype):
    """A constant given as a decimal string or Fraction, as (hi, lo) in ``dtype``: hi + lo carries
    twice the dtype's precision (for differences x − r that must not lose r's low bits)."""
    v = Fraction(value) if not isinstance(value, Fraction) else value
    hi = float(np.asarray(float(v), dtype))
    lo = float(np.asarray(float(v - Fraction(hi)), dtype))
    return hi, lo


# ----- constant tables, generated by experiments/smooth_constants.py (mpmath, 50 digits) ------------
# Root expansions (r_h, c0, (lo, hi), Q): see _root_expansion. _ERFCX: (z_max, F), see _erfc_parts.
_SILU_ROOT = {
    # root -1.278464542761073795109359; fit relative error 3.7e-09; cancellation at the edges 0.95
    'float32': (-1.2784645557403564, -2.8270396683554365e-09, (-0.3, 0.3), (
            0.2178117057198001, 0.14664881143410916, 0.01887481092646841, -0.01522394086786812,
            -0.006606296267747028, 0.0001553535697965743, 0.0007920286441177502,
        )),
    # root -1.278464542761073795109359; fit relative error 9.6e-18; cancellation at the edges 0.95
    'float64': (-1.2784645427610737, 2.3843834755243115e-17, (-0.3, 0.3), (
            0.2178117057198001, 0.14664879699694697, 0.01887481422378247, -0.015222655223206831,
            -0.006606589138404616, 0.0001266274117453653, 0.0007985218861010692,
            0.00018570718069416695, -4.0905504833127574e-05, -2.9732393645684367e-05,
            -2.9396191219612134e-06, 2.336132706281358e-06, 8.331094882623457e-07,
        )),
}
_GELU_TANH_ROOT = {
    # root -0.7524614044087226429506442; fit relative error 1.7e-09; cancellation at the edges 1.09
    'float32': (-0.7524614334106445, -5.523703654793586e-08, (-2.5, 0.45), (
            1.9045991519357106, -0.8163185139298336, 0.06160522202268255, 0.00232148003689729,
            0.010204140627011195, -0.0017447264239277135, -0.0008376153769458442,
            0.00038604598387360765, 7.824180117030201e-05, -9.052704368303872e-05,
            -4.6190351716332955e-05, -8.864026012848788e-06, -6.516620223756604e-07,
        )),
    # root -0.7524614220710162185581739; fit relative error 1.8e-18; cancellation at the edges 1.09
    'float64': (-0.7524614220710162, 6.615990132647629e-17, (-2.5, 0.45), (
            1.9045991238220834, -0.8163184971863922, 0.06160513613987206, 0.0023210847331275658,
            0.010205476998125785, -0.0017409966965883344, -0.000841738847493362,
            0.0003696074659235383, 7.215492611337308e-05, -6.825703881688122e-05,
            -1.3449143931855915e-05, 9.804805026712963e-06, 2.816902231741577e-06,
            -1.1264701133998832e-06, -4.7053362552962306e-07, 1.0723638500879103e-07,
            6.381634775201281e-08, -6.747708237840173e-09, -1.6756773034660587e-09,
            6.9793761008505e-09, 4.3044950482736234e-09, 8.32183264791717e-10,
            -1.8421689397415998e-10, -1.5224331435787095e-10, -4.2975820732405865e-11,
            -6.756187514551775e-12, -5.912862906302247e-13, -2.26936641801173e-14,
        )),
}
_GELU_ERF_ROOT = {
    # root -0.7517915246935644574579049; fit relative error 3.4e-10; cancellation at the edges 1.21
    'float32': (-0.7517915368080139, -1.738192718040505e-08, (-1.5, 0.45), (
            1.4348095033855375, 0.21245271888160136, 0.09169645680374862, 0.03587884203323952,
            0.012944303460005155, 0.004359101411553539, 0.0013841814717982627,
            0.0004146702177098661, 0.00011139702990440854, 2.2698475151817772e-05,
            2.411615276784205e-06,
        )),
    # root -0.7517915246935644574579049; fit relative error 3.7e-18; cancellation at the edges 1.21
    'float64': (-0.7517915246935645, -2.1460100207222875e-17, (-1.5, 0.45), (
            1.4348095033989257, 0.21245271259101725, 0.09169645155828172, 0.03587902436626037,
            0.01294458102503514, 0.004357899676660944, 0.001381192712564476,
            0.00041494134057418024, 0.00011880481161872983, 3.256246635038095e-05,
            8.574948721273738e-06, 2.176387915499529e-06, 5.338916522348241e-07,
            1.268366250838863e-07, 2.904771881947485e-08, 6.220243975636797e-09,
            1.1427413331828546e-09, 1.5215788446426728e-10, 1.0417175549659632e-11,
        )),
}
_ERFCX = {
    # |x| ≤ 15.0: relative error 3.6e-10; max Σ|c_k τ^k|/G = 1.1
    'float32': (15.0, (
            1.056607074228241, -0.6665643751530466, 0.3726578859785612, -0.1795238934551029,
            0.07074200563830446, -0.020320594262312367, 0.001892513639452929, 0.000618598008935638,
            -0.0014281936785405986, -0.00019245540936540723, 0.00013010206062994003,
            2.9520541430618525e-05,
        )),
    # |x| ≤ 39.0: relative error 7.8e-20; max Σ|c_k τ^k|/G = 1.49
    'float64': (39.0, (
            1.056607074470865, -0.6665643853131292, 0.37265771301394107, -0.17952285286101108,
            0.07076624856600652, -0.020179556427427518, 0.0023038246429481174,
            0.0013010476645771397, -0.0007871464392461464, 8.493775439815597e-05,
            9.934104118849525e-05, -4.3372310474111634e-05, -7.797070210600346e-06,
            1.0711135239212181e-05, -4.4956519975563594e-07, -2.4510875855285023e-06,
            4.2910874376126403e-07, 5.649446176688864e-07, -5.3546468689982264e-08,
            1.9407053472353625e-07, 5.459973185579822e-07, 4.855096680547706e-07,
            2.445509341878311e-07, 7.845995279681222e-08, 1.6111802493002142e-08,
            1.954335427945157e-09, 1.074404958636208e-10,
        )),
}


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
    # keeping x alive until the backward pass (measured in docs/reference/performance.md).
    return dsigmoid(x) if exact_tails else y * (1 - y)


sigmoid = elementwise(
    "sigmoid", _sigmoid, _dsigmoid_rule,
    reference=lambda x, exact_tails=False: 1 / (1 + jnp.exp(-x)),
    saves="xy",
    static={"exact_tails": False},
    variants=({"exact_tails": False}, {"exact_tails": True}),
    derivation="σ' = σ(x)·σ(−x); lean: y(1 − y); exact: s(1 − s), s = σ(−|x|)",
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
    derivation="tanh' = 1 − tanh² = sech²; lean: (1 − y)(1 + y); exact: q(1 − q/4), q = 4/(1 + e^{2|x|})",
).fn


# ----- softplus, log_sigmoid -----------------------------------------------------------------------
def _softplus(x):
    r"""Softplus :math:`\log(1 + e^x)`, computed as ``logaddexp(x, 0)``. Derivative :math:`σ(x)`."""
    return _softplus_kernel(x)


softplus = elementwise(
    "softplus", _softplus, lambda x, y: lax.logistic(x),
    reference=lambda x: jnp.log(1 + jnp.exp(x)),
    derivation="d/dx log(1+e^x) = e^x/(1+e^x) = σ(x)",
).fn


def _log_sigmoid(x):
    r"""Log-sigmoid :math:`\log σ(x) = −\operatorname{softplus}(−x)`. Derivative :math:`σ(−x)`."""
    return -_softplus_kernel(-x)


log_sigmoid = elementwise(
    "log_sigmoid", _log_sigmoid, lambda x, y: lax.logistic(-x),
    reference=lambda x: jnp.log(1 / (1 + jnp.exp(-x))),
    derivation="d/dx −log(1+e^{−x}) = e^{−x}/(1+e^{−x}) = σ(−x)",
).fn


# ----- silu (swish) --------------------------------------------------------------------------------
def _silu_parts(x):
    """(xc, e, ed, scale): e^{−|x|} as ``e`` (times e^{86} where x < −64, with ``scale`` = e^{−86}
    applied last; ``ed`` is e^{−|x|} itself, 0 there), so that no product passes through a subnormal
    (left-tail scaling). One exp."""
    xc = jnp.clip(x, -1e4, 1e4)  # silu and silu' have reached their limits at ±1e4 in every dtype
    tail = xc < -SHIFT_FROM
    e = jnp.exp(where(tail, xc + SHIFT, -jnp.abs(xc)))  # x + 86 is exact for x ≤ −64
    return xc, e, where(tail, 0.0, e), where(tail, E_SHIFT, 1.0).astype(x.dtype)


@_in_float32
def _silu(x):
    r"""SiLU / swish :math:`x·σ(x)`. Derivative :math:`σ(x)(1 + xσ(−x))`.

    :math:`x/(1 + e)` for x ≥ 0 and :math:`xe/(1 + e)` for x < 0, e = e^{−|x|} (one exp, one division).
    """
    xc, e, ed, _ = _silu_parts(x)
    num = where(xc >= 0, x, xc * e)
    # In the scaled tail ed = 0, so the division is by 1 there: the select below equals
    # (num/(1 + ed))·scale bit for bit, and ending the forward with it (the division read once) keeps
    # XLA:CPU from pulling the division into a following reduction and storing its operands
    # (jit fwd+bwd of sum(silu(x)·w): 1.9× → 1.2–1.3× jax.nn there).
    return where(xc < -SHIFT_FROM, num * E_SHIFT, num / (1 + ed))


def _silu_prime(x):
    # With e = e^{−|x|}: silu' = (1 + e(1 + x))/(1 + e)² for x ≥ 0 (positive terms) and
    # e(1 + x + e)/(1 + e)² for x < 0 (1 + x is exact there), which cancels only near the root
    # r = −1.2785 of 1 + x + e^x: there a fitted expansion about r (_SILU_ROOT).
    xc, e, ed, scale = _silu_parts(x)
    opx = 1 + xc
    num = where(xc >= 0, 1 + e * opx, e * (opx + ed))
    general = (num / jnp.square(1 + ed)) * scale
    near, inside = _root_expansion(xc, _SILU_ROOT)
    return where(inside, near, general)


silu = elementwise(
    "silu", _silu, _in_float32(lambda x, y: _silu_prime(x)),
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
    e, e_s, scale = exp_neg_scaled(jnp.abs(xc))
    # x ≥ 0, t = e^{−x}: n/(n+2) = (1+2t)/(1+2t+2t²); x < 0, e = e^{x}: x·e(e+2)/(e(e+2)+2). (Selecting
    # the numerators and denominators first to divide once, as _dmish does, makes XLA:CPU split the
    # gradient's loop into 7 fusions instead of 3 and compile 60 % longer.)
    pos = x * ((1 + 2 * e) / (1 + 2 * e + 2 * e * e))
    neg = (xc * (e_s * (e + 2) / (e * (e + 2) + 2))) * scale
    return where(x < 0, neg, pos)


# The root of mish' (mpmath.findroot, 30 digits). The expansion of mish's numerator h (below) is taken
# about r_h, r rounded to the working dtype, so that d = x − r_h is exact on the window (both are
# multiples of ulp(r_h)/2 there, |d| < 2) and no second constant has to be subtracted: h(r_h), tiny,
# is the constant term, evaluated at 60 digits (h cancels to ~|r_h − r| there).
_MISH_ROOT = "-1.19243121451549521213758834042"


@functools.cache
def _mish_expansion(dtype):
    """(r_h, h(r_h), A1, A2, A3, B1, B2) for ``dtype`` (see _dmish)."""
    rh = float(np.asarray(float(Fraction(_MISH_ROOT)), dtype))
    with decimal.localcontext() as ctx:
        ctx.prec = 60
        R = decimal.Decimal(rh)
        E = R.exp()
        c0 = float((E + 2) * (E * (E + 2) + 2) + 4 * R * (1 + E))
    E = math.exp(rh)
    return rh, c0, 3 * E**3 + 8 * E**2 + 6 * E + 4 * rh * E, 3 * E**3 + 4 * E**2, E**3, 4 * (1 + E), 4 * E


def _dmish(x, y):
    # mish' = tanh(sp) + x·sech²(sp)·σ(x). For x ≥ 0, with t = e^{−x} and D = 1 + 2t + 2t²:
    # (1 + 2t)/D + 4x·t²(1 + t)/D², positive terms. For x < 0, with e = e^x and n = e(e + 2):
    # e·h/(n + 2)², h = (e + 2)(n + 2) + 4x(1 + e), which cancels near its root r ≈ −1.1924. There,
    # with d = x − r_h, m = expm1(d), E = e^{r_h}, h = h(r_h) + A1·m + A2·m² + A3·m³ + B1·d + B2·d·m
    # exactly (e = E(1 + m), x = r_h + d), and on [−3, −0.75] (where it is used) these terms do not
    # cancel.
    # mish' has reached its limits 0 and 1 at ±1e4. e is formed from the forward's own maximum(x, −1e4),
    # so that XLA forms it once for both where the two meet in one program (as in a gradient beside
    # its value): the same bits as clipping x on both sides here (e = 0 past 1e4 either way), and
    # XLA:GPU (sm_90, deviceless compile of jit(value_and_grad) at 1024 × 1024, jax 0.10.2) compiles
    # the gradient in 1.14–1.17× jax.nn's time against 1.19–1.24× (both versions interleaved, a script
    # outside the repository; the drop-in benchmark's --gpu-target-config: 1.05–1.23 in four runs).
    # Only the x·e² term needs x bounded (inf·0).
    xc = jnp.maximum(x, -1e4)
    e, e_s, scale = exp_neg_scaled(jnp.abs(xc))
    D = 1 + 2 * e + 2 * e * e
    pos_num = (1 + 2 * e) * D + 4 * jnp.minimum(xc, 1e4) * (e * e * (1 + e))  # over D²: positive terms
    rh, c0, a1, a2, a3, b1, b2 = _mish_expansion(jnp.dtype(x.dtype))
    d = jnp.clip(xc, -3.0, 0.0) - rh
    m = jnp.expm1(d)
    h_near = c0 + (m * (a1 + m * (a2 + a3 * m)) + d * (b1 + b2 * m))
    # Off [−3, −0.75], h/4 = (1 + x) + e((1.5 + x) + e(1 + e/4)): below −3 (1 + x exact) the rest is
    # small, above −1 all terms are positive; and (n + 2)²/4 = 1 + e(2 + e(2 + e(1 + e/4))). Fewer
    # roundings than (e + 2)(n + 2) + 4x(1 + e) and a square.
    q = 1 + e * (2 + e * (2 + e * (1 + 0.25 * e)))
    h4_far = (1 + xc) + e * ((1.5 + xc) + e * (1 + 0.25 * e))
    h4 = where((xc >= -3.0) & (xc <= -0.75), 0.25 * h_near, h4_far)
    # One division for both sides (numerators and denominators selected first): on a GPU, where this
    # gradient is compute-bound, a division counts.
    neg = x < 0
    num = where(neg, e_s * h4, pos_num)
    return (num / where(neg, q, jnp.square(D))) * where(neg, scale, 1.0)


mish = elementwise(
    "mish", _mish, _dmish,
    reference=lambda x: x * jnp.tanh(jnp.log(1 + jnp.exp(x))),
    derivation="(x·tanh(sp))' = tanh(sp) + x·sech²(sp)·sp', sp' = σ(x)",
).fn


# ----- gelu ----------------------------------------------------------------------------------------
# In the left tail gelu(x) ≈ x·e^{2u} (tanh form) or x·e^{−x²/2}·(…) (erf form): the exponential turns
# an absolute error δ of its argument into a relative error δ of the result, and |2u|, x²/2 reach ~90
# (float32) and ~750 (float64). So the argument is formed to about twice the working precision with
# error-free products (bit-mask splits, above), and erfc is evaluated as e^{−z²}·erfcx(z) with the
# exponential's argument exact and erfcx fitted (experiments/smooth_constants.py). The derivative's
# cancellation towards its zero near −0.752 is removed by an expansion about the root.
#
def _gelu_tanh_constants(dtype):
    """K1 = 2c1 (exact) and K3 = 2c1c2 in two pieces, c1, c2 the dtype's √(2/π) and 0.044715: the
    tanh form is defined by these constants (what any program in the dtype holds)."""
    c1 = Fraction(float(np.asarray(_SQRT_2_OVER_PI, dtype)))
    c2 = Fraction(float(np.asarray(0.044715, dtype)))
    k3h, k3l = _const2(2 * c1 * c2, jnp.dtype(dtype))
    return float(2 * c1), k3h, k3l


def _gelu_2u(x):
    """2u(x) = K1·x + K3·x³ as (v, ve), v + ve to about twice the working precision, and x²."""
    k1, k3h, k3l = _gelu_tanh_constants(x.dtype)
    sq, sqe = _two_prod(x, x)
    t, te = _two_prod(sq, k3h)
    te = te + (sqe * k3h + sq * k3l)
    a, ae = _two_sum(t, k1)
    v, ve = _two_prod(x, a)
    return v, ve + x * (ae + te), sq


def _gelu_tanh_parts(x):
    """σ(±2u), 2u = v + ve: (q, rt, v, ve, scale) with σ(2u) = q·scale and σ(−2u) = rt.

    e^{−|2u|} = e^{−|v|}(1 ∓ ve) to first order (|ve| ≤ ulp(v)), one rounding; then one division.
    Written with few reuses of each intermediate, which keeps XLA's fusion of the whole derivative in
    one loop."""
    v, ve, _ = _gelu_2u(x)
    neg = v < 0
    _, es, scale = exp_neg_scaled(jnp.abs(v))
    es = es + es * where(neg, ve, -ve)  # e^{−|2u|}/scale
    e = es * scale
    # σ(|w|) = 1/(1 + e) rounds 1 + e, up to ε/2 relative (1 ULP of a result near 1) where e ≪ 1; as
    # 1 − σ(−|w|) = 1 − e/(1 + e) it rounds once (σ(−|w|) ≤ ½ carries the other rounding, relatively).
    # The division is read once: XLA's CPU fusion splits the loop at an expensive op read often.
    sm = e * (1 / (1 + e))
    t = 1 - sm
    return where(neg, es, 1.0) * t, where(neg, t, sm), v, ve, where(neg, scale, 1.0)


def _erfc_parts(x):
    """(E, scale, R): e^{−x²/2} = E·scale from x² = p + pe exactly, and R = erfcx(z) = e^{z²}erfc(z),
    z = |x|/√2, from its fit G = erfcx(z)·(|x| + 4) in τ = t − ½, t = (|x| − 4)/(|x| + 4) (z itself is
    never rounded); so Φ(−|x|) = ½erfc(z) = ½E·R·scale."""
    wmax, coeffs = _ERFCX[x.dtype.name]
    p, pe = _two_prod(x, x)
    _, es, scale = exp_neg_scaled(0.5 * p)
    w = jnp.minimum(jnp.abs(x), wmax)
    # τ = t − ½ = 2w·r − 3/2 with r = 1/(w + 4) (one rounding beyond r's); Horner reads τ once per
    # coefficient, and XLA's CPU fusion splits the loop at a division read that often, so the division
    # is read once, by the product. erfcx = G(t)/(w + 4): a second division, one rounding fewer than G·r.
    wk = w + 4.0
    return es - (0.5 * pe) * es, scale, _horner(2 * (w * (1 / wk)) - 1.5, coeffs) / wk


@_in_float32
def _gelu(x, approximate=True):
    r"""GELU :math:`x·Φ(x)`; with ``approximate=True`` (jax.nn's default; torch's is exact),
    :math:`Φ(x) ≈ ½(1 + \tanh u) = σ(2u)`, :math:`u = \sqrt{2/π}(x + 0.044715x³)`.

    Written with σ(2u) and e^{−z²}·erfcx(z), whose left tails do not cancel, the exponentials' arguments
    to twice the working precision (see the comment above the constant tables).
    """
    xc = jnp.clip(x, -40.0, 40.0)  # Φ(±40) is 0 and 1 to the last bit
    xm = where(x < -40.0, 0.0, x).astype(x.dtype)  # −∞ gives 0, +∞ gives ∞
    if approximate:
        q, _, v, _, scale = _gelu_tanh_parts(xc)
        p = xm * q
        # scale is 1 where v ≥ 0: the select equals p·scale bit for bit, and ending the forward with it
        # keeps XLA:CPU from pulling the product into a following reduction (7 fusions → 5 in
        # value_and_grad of sum(gelu(x)·w), compile time −15 %; see _silu)
        return where(v < 0, p * scale, p)
    E, scale, R = _erfc_parts(xc)
    P = 0.5 * E * R  # Φ(−|x|)/scale: the scale is applied last (left-tail scaling)
    return where(x < 0, (xm * P) * scale, xm * (1 - P * scale))


def _dgelu_clip(approximate):
    """Where the derivative clips its input: ±40 as the forward does, or ±40.5 (both are past
    saturation: the derivative is 0 and 1 to the last bit there, so the results are identical).

    ±40.5 keeps XLA from merging this computation with the forward's. Merged, XLA:CPU keeps an
    intermediate of the tanh form's forward (the double-word 2u's exponential) alive until the backward
    pass: one array per layer, 1.43× jax.nn's temporaries on an MLP's gradient; apart, the backward
    recomputes from x, which the rule keeps anyway: 0.57× jax.nn's, at the same speed. XLA:GPU needs
    jax.nn's bytes merged, and merged it computes the parts once where the forward and the backward
    fuse into one kernel, so the split is made for the CPU only. The erf form stays merged everywhere
    (apart it is 40 % slower on the CPU, and merged it needs jax.nn's bytes)."""
    return 40.5 if approximate and backend() == "cpu" else 40.0


def _dgelu(x, y, approximate=True):
    lim = _dgelu_clip(approximate)
    xc = jnp.clip(x, -lim, lim)
    if approximate:
        # σ(2u)·g, g = 1 + x·2u'·σ(−2u): positive terms for x ≥ 0; for x < 0, g cancels towards its
        # root r ≈ −0.752 and is taken from the expansion about r there.
        # x·2u' = K1x + 3K3x³ = 3·2u − 2K1x from the double-word 2u, 3v = 2v + v exactly (Fast2Sum,
        # 2v exact): one rounding of the sum and one of 2K1x, instead of ~5 through K1 + 3K3x².
        k1, _, _ = _gelu_tanh_constants(x.dtype)
        q, rt, v, ve, scale = _gelu_tanh_parts(xc)
        h = 2 * v + v
        g = 1 + (h + (((v - (h - 2 * v)) + 3 * ve) - (2 * k1) * xc)) * rt
        near, inside = _root_expansion(xc, _GELU_TANH_ROOT)
        return (q * where(inside, near, g)) * scale
    # Φ(x) + xφ(x), φ(x) = e^{−x²/2}/√(2π). x < 0: φ(x)·g with g = x + Φ(x)/φ(x) = x + √(π/2)·erfcx(z),
    # which cancels towards its root r ≈ −0.752 (expansion about r there). x ≥ 0: 1 − ½erfc(z) + xφ =
    # 1 + e^{−x²/2}(x/√(2π) − ½erfcx(z)), the bracket below ½ in magnitude against a result ≥ ½.
    E, scale, R = _erfc_parts(xc)
    neg = xc < 0
    near, inside = _root_expansion(xc, _GELU_ERF_ROOT)
    # φ·g = e^{−x²/2}(x/√(2π) + ½erfcx(z)) for x < 0 (√(π/2)/√(2π) = ½), and the bracket of x ≥ 0 is
    # the same with −½: one expression, R read once (see _erfc_parts on XLA's fusion).
    bracket = _INV_SQRT_2PI * xc + where(neg, 0.5, -0.5) * R
    A = (E * where(neg & inside, _INV_SQRT_2PI * near, bracket)) * scale
    return where(neg, A, 1 + A)


def _gelu_reference(x, approximate=True):
    if approximate:
        return 0.5 * x * (1 + jnp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x**3)))
    return 0.5 * x * (1 + lax.erf(x / _SQRT_2))


gelu = elementwise(
    "gelu", _gelu, _in_float32(_dgelu),
    reference=_gelu_reference,
    static={"approximate": True},
    variants=({"approximate": True}, {"approximate": False}),
    derivation="(xΦ)' = Φ(x) + xφ(x); approximate: Φ = σ(2u) ⇒ Φ' = 2u'·σ(2u)σ(−2u)",
).fn


# ----- elu, selu, celu -----------------------------------------------------------------------------
def _elu(x, alpha=1.0):
    r"""ELU: :math:`x` for :math:`x > 0`, :math:`α(e^x − 1)` otherwise (double where: no NaN leaks)."""
    return where(x > 0, x, alpha * jnp.expm1(where(x > 0, 0.0, x)))


def _delu(x, y, alpha=1.0, lam=1.0):
    # λα·e^x, formed three ways by what is known of c = λα when the rule is traced (λ = 1 for elu).
    # * c ≤ 1 (elu's default α = 1): λα·e^x is subnormal wherever e^x is, so e^x itself serves.
    # * 1 < c ≤ 2 (selu's ≈ 1.758), float32/float64: e^{x + s}·(c·e^{−s}) with s = ⌈8 ln c⌉/8, so that
    #   c·e^{−s} ≤ 1 and e^{x + s} is normal wherever the product is. x + s is exact for x ≤ −s/2 (s is
    #   a multiple of 1/8, x a multiple of its own ULP, which is finer below 2^21 in float32, and the sum
    #   is no larger than x); above, its rounding error (≤ s·u/2 absolute, s ≤ 0.75) adds under half an
    #   ULP. The plain form's count of operations (selu's jit(value_and_grad) at 2^20: 0.90-1.07x
    #   jax.nn's against 1.01-1.13x for the scaled form below, nine interleaved sets of 40 rounds, a
    #   script outside the repository); selu' within 1.7 ULP in float32 (2.5 scaled) and 2 in float64
    #   over a denser scan than the accuracy table's (the same script; the table: 1.35 and 1.9),
    #   normal down to x = −87.9 in float32.
    # * otherwise (α known only at run time, c > 2, float16/bfloat16, whose coarse ULP would make
    #   x + s inexact): left-tail scaling (exp_neg_scaled; not in float16, whose left tail is below its
    #   range), ((λα)·e_s)·scale with the scale applied last.
    # A subnormal intermediate would cost all its bits (the CPU flushes it to zero): the latter two
    # keep λα·e^x exact where e^x is already subnormal but λα·e^x is not (float32, selu: x in
    # (−87.9, −87.3]).
    c = lam * alpha
    known = not isinstance(c, jax.core.Tracer)
    if known and c <= 1:
        return where(x > 0, lam, c * jnp.exp(where(x > 0, 0.0, x))).astype(x.dtype)
    if known and c <= 2 and x.dtype in (jnp.float32, jnp.float64):
        s = math.ceil(8 * math.log(c)) / 8
        return where(x > 0, lam, (c * math.exp(-s)) * jnp.exp(jnp.minimum(x, 0.0) + s)).astype(x.dtype)
    _, e_s, scale = exp_neg_scaled(-jnp.minimum(x, 0.0))
    return where(x > 0, lam, (c * e_s) * scale).astype(x.dtype)


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
    "selu", _selu, lambda x, y: _delu(x, y, SELU_ALPHA, SELU_SCALE),
    reference=lambda x: SELU_SCALE * jnp.where(x > 0, x, SELU_ALPHA * (jnp.exp(jnp.where(x > 0, 0.0, x)) - 1)),
    kinks=(Kink(0.0, SELU_SCALE * SELU_ALPHA, note="left derivative λα ≈ 1.7581 (right: λ); jax.nn and torch agree"),),
    derivation="λ·elu'(x, α)",
).fn


def _celu(x, alpha=1.0):
    r"""CELU :math:`\max(0, x) + \min(0, α(e^{x/α} − 1))`."""
    return jnp.maximum(x, 0.0) + alpha * jnp.expm1(jnp.minimum(x, 0.0) / alpha)


celu = elementwise(
    "celu", _celu,
    lambda x, y, alpha=1.0: where(x > 0, 1.0, jnp.exp(jnp.minimum(x, 0.0) / alpha)).astype(x.dtype),
    reference=lambda x, alpha=1.0: jnp.where(x > 0, x, alpha * (jnp.exp(jnp.where(x > 0, 0.0, x) / alpha) - 1)),
    static={"alpha": 1.0},
    traced=("alpha",),
    variants=({"alpha": 1.0}, {"alpha": 2.0}),
    derivation="x > 0: 1; x ≤ 0: e^{x/α} (continuously differentiable for every α)",
).fn


# ----- soft_sign, squareplus -----------------------------------------------------------------------
def _soft_sign(x):
    r"""Soft sign :math:`x/(|x| + 1)`; ±∞ give ±1."""
    return where(jnp.isinf(x), jnp.sign(x), x / (jnp.abs(x) + 1))


soft_sign = elementwise(
    "soft_sign", _soft_sign, lambda x, y: 1 / jnp.square(jnp.abs(x) + 1),
    reference=lambda x: x / (jnp.abs(x) + 1),
    derivation="(x/(|x|+1))' = 1/(|x|+1)²",
).fn


def _squareplus_parts(x, b):
    """(h, m): h = √(x² + b) and m = h + |x|; past |x| = 2⁶⁰, where b/x² is below the last bit of
    1 in float64, h is |x| itself (x² would overflow float32 there)."""
    ax = jnp.abs(x)
    h = where(ax < 2.0**60, jnp.sqrt(x * x + b), ax)
    return h, h + ax


@_in_float32
def _squareplus(x, b=4.0):
    r"""Squareplus :math:`(x + \sqrt{x² + b})/2 = \max(x, 0) + (b/2)/(\sqrt{x²+b} + |x|)` (for x ≥ 0,
    (h − x)/2 = (b/2)/(h + x)): one division, no cancellation, no overflow of x + h; x² is not formed
    past |x| = 2⁶⁰."""
    _, m = _squareplus_parts(x, b)
    d = (0.5 * b) / m
    # = max(x, 0) + d bit for bit; ending with the select keeps XLA:CPU from pulling the sum into a
    # following reduction and storing its operands (see _silu): jit fwd+bwd 1.37× → 0.73× jax.nn there
    return where(x > 0, x + d, d)


def _dsquareplus(x, y, b=4.0):
    # (1 + x/h)/2 = (h + x)/(2h), which cancels only for x ≪ 0: below x = −1 it is written
    # b/(2h·m) (h + x = b/(h − x) = b/m); above, (h + x)/(2h) cancels by at most |x|/(h + x) ≤ 0.81.
    # One division. Below −2³² numerator and denominator are scaled by 2⁻⁶⁴ (exact) so that 2h·m
    # (≈ 4x²) does not overflow where the result is still normal. +∞ is clipped to 2⁶⁰ (result 1).
    xc = jnp.minimum(x, 2.0**60)
    h, m = _squareplus_parts(xc, b)
    left = xc < -1.0
    s = where(xc < -(2.0**32), 2.0**-64, 1.0)
    return where(left, b * s, h + xc) / ((2 * h) * where(left, m * s, 1.0))


squareplus = elementwise(
    "squareplus", _squareplus, _in_float32(_dsquareplus),
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
    r""":math:`\log(1 − e^{−x})` for x > 0 (Mächler 2012: ``log(−expm1(−x))`` below log 4,
    ``log1p(−e^{−x})`` above; for x < ε/2, where −expm1(−x) rounds to x, ``log(x)``).
    Derivative :math:`1/(e^x − 1)`.

    The switch is at log 4, not Mächler's log 2: XLA's float64 log1p is up to 128 ULP off on
    [−0.5, −0.3] (its argument −e^{−x} for x in [log 2, 1.2]), and log(1 − e^{−x}) loses under an ULP
    for x ≤ log 4 (|log(¾)| = 0.29: the rounding of 1 − e^{−x} costs at most ~1.5 ULP of the result).
    """
    small = where(_below_unit_roundoff(x), x, -jnp.expm1(-x))
    return where(
        x < math.log(4.0), jnp.log(small), jnp.log1p(-jnp.exp(-x))
    )


def _dlog1mexp(x, y):
    # 1/expm1(x) = 1/x − 1/2 + x/12 − …: below ε/2 the first two terms are exact to the last bit, and
    # they avoid the float16 expm1 of a subnormal (see _below_unit_roundoff).
    return where(_below_unit_roundoff(x), 1 / x - 0.5, 1 / jnp.expm1(x))


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


def _tanhshrink_series(x, s):
    """s·p(s) = (x − tanh x)/x for s = x² ≤ 4 (Clenshaw over _TANHSHRINK_CHEB)."""
    t = 0.5 * s - 1.0
    eps = float(jnp.finfo(x.dtype).eps)
    coeffs = [c for c in _TANHSHRINK_CHEB if abs(c) >= 0.01 * eps]
    b1 = b2 = jnp.zeros_like(x)
    for c in coeffs[:0:-1]:
        b1, b2 = 2 * t * b1 - b2 + c, b1
    return s * (t * b1 - b2 + coeffs[0])


def _tanhshrink(x):
    r"""torch's Tanhshrink :math:`x − \tanh x` (no jax.nn equivalent).

    x − tanh x cancels near 0 (it is x³/3 − 2x⁵/15 + …): for |x| < 2 it is x·s·p(s), s = x², with p a
    Chebyshev series (Clenshaw); beyond, x − tanh x loses at most a factor 2.
    """
    small = jnp.abs(x) < 2.0
    s = jnp.square(where(small, x, 0.0))
    return where(small, x * _tanhshrink_series(x, s), x - _tanh(x))


def _dtanhshrink(x, y):
    # tanh² x: squaring tanh doubles its error; instead 1 − sech² x for |x| ≥ 0.88 (sech² ≤ ½ there, so
    # the difference loses nothing) and s·(1 − s·p(s))², s = x², from the value's series below.
    small = jnp.abs(x) < 0.88
    s = jnp.square(where(small, x, 0.0))
    return where(small, s * jnp.square(1 - _tanhshrink_series(x, s)), 1 - _sech2(x))


tanhshrink = elementwise(
    "tanhshrink", _tanhshrink, _dtanhshrink,
    reference=lambda x: x - (jnp.exp(x) - jnp.exp(-x)) / (jnp.exp(x) + jnp.exp(-x)),
    domain=(-3.0, 3.0),
    derivation="(x − tanh x)' = 1 − sech² x = tanh² x",
).fn


def _identity(x):
    """Identity :math:`x`. Derivative 1."""
    return x


# identity is linear: its Jacobian is I and its VJP returns the cotangent unchanged, as jax.grad of
# ``lambda x: x`` does and as fnnet's other linear maps (dense) do. The NaN select of the non-linear
# activations (a NaN input gives a NaN derivative) is not added: a NaN input already gives a NaN
# output, and the select would cost a pass over x under jit and a fused loop to compile.
identity = elementwise(
    "identity", _identity, lambda x, y: jnp.ones_like(y),
    reference=lambda x: x,
    saves="y",  # nothing is read: the product g·1 folds to g under jit
    nan_select=False,
    derivation="x' = 1",
).fn


# ----- glu -------------------------------------------------------------------------------------------


def _validate_glu(x, axis=-1, exact_tails=False):
    if isinstance(axis, tuple):
        raise TypeError(f"fnnet.glu: axis must be an int; got {axis!r}")
    (ax,) = axes(axis, x.ndim, "fnnet.glu")
    if x.shape[ax] % 2:
        raise ValueError(
            f"fnnet.glu: the size of axis {axis} must be even (it is split in two halves); "
            f"got shape {x.shape}"
        )


# glu is written with lax operations (jax.numpy's functions are jitted wrappers that re-trace on every
# trace of a program; same operations and bits): jit(value_and_grad) traced in 17 ms instead of 39.
def _glu_halves(x, axis):
    ax = axis % x.ndim
    n = x.shape[ax] // 2
    return lax.slice_in_dim(x, 0, n, axis=ax), lax.slice_in_dim(x, n, 2 * n, axis=ax)


def _glu_forward(x, *, axis=-1, exact_tails=False):
    a, b = _glu_halves(x, axis)
    return lax.mul(a, lax.logistic(b))


def _a_dsig(a, b, exact_tails):
    # a·σ'(b). Lean (default): σ' = s(1 − s) from s = σ(b), the forward's own σ (jax.grad(jax.nn.glu)'s
    # arithmetic): 0 where s rounds to 1 (b > 17 in float32). exact_tails=True: σ' = s(1 − s) with
    # s = σ(−|b|), exact everywhere, at the cost of a second exponential (jit(value_and_grad) at 2^20:
    # 1.03-1.10x jax.nn's against 0.94-1.00x, docs/reference/performance_dropin.md).
    # Where σ'(b) is exactly 0 (|b| ≥ ~745, or ±inf) an infinite a gives the limit 0, not NaN; the lean
    # form, whose σ' is 0 wherever s rounds to 1, gives 0 there too (where a·σ'(b) is really inf·tiny).
    if exact_tails:
        d = dsigmoid(b)
    else:
        s = lax.logistic(b)
        d = lax.mul(s, lax.sub(const(1, s), s))
    limit = lax.bitwise_and(lax.eq(lax.abs(a), const(np.inf, a)), lax.eq(d, const(0, d)))
    return lax.select(limit, lax.full_like(a, 0), lax.mul(a, d))


def _glu_bwd(res, g, *, axis=-1, exact_tails=False):
    (x,) = res  # the default fwd saves the inputs
    a, b = _glu_halves(x, axis)
    return (lax.concatenate([lax.mul(g, lax.logistic(b)), lax.mul(g, _a_dsig(a, b, exact_tails))],
                            axis % x.ndim),)


def _glu_jvp(primals, tangents, out, *, axis=-1, exact_tails=False):
    a, b = _glu_halves(primals[0], axis)
    ta, tb = _glu_halves(tangents[0], axis)
    return lax.add(lax.mul(ta, lax.logistic(b)), lax.mul(tb, _a_dsig(a, b, exact_tails)))


def _glu_sample(key, dtype=jnp.float32, shape=(3, 5), axis=-1, exact_tails=False):
    shape = list(shape)
    shape[axis] *= 2
    return (sampled(2.0 * sample_rng(key).standard_normal(tuple(shape)), dtype),)


def _glu_reference(x, axis=-1, exact_tails=False):
    a, b = jnp.split(x, 2, axis=axis)
    return a / (1 + jnp.exp(-b))


glu = define(
    "glu",
    forward=_glu_forward, bwd=_glu_bwd, jvp=_glu_jvp, reference=_glu_reference,
    arg_names=("x",), static={"axis": -1, "exact_tails": False}, validate=_validate_glu,
    sample=_glu_sample,
    variants=({"axis": -1}, {"axis": 0}, {"axis": -1, "exact_tails": True}),
    derivation=("glu(a ‖ b) = a·σ(b) ⇒ ∂/∂a = σ(b), ∂/∂b = a·σ(b)σ(−b); "
                "lean: σ(1 − σ); exact: s(1 − s), s = σ(−|b|)"),
    doc=r"""Gated linear unit :math:`a ⊙ σ(b)` where ``x = concatenate([a, b], axis)`` (jax.nn.glu).

Arguments:
  x: floating array whose size along ``axis`` is even. axis: int; static.
  exact_tails: how σ'(b) is formed (static), as :func:`sigmoid`'s. False (default): s(1 − s) from
    s = σ(b), as ``jax.grad(jax.nn.glu)`` forms it: 0 where s rounds to 1 (b > 17 in float32).
    True: s(1 − s) with s = σ(−|b|), exact everywhere, at the cost of a second exponential.

Returns:
  An array with ``axis`` halved. Derivative: :math:`∂/∂a = σ(b)`, :math:`∂/∂b = a·σ(b)σ(−b)`.
""",
).fn
