"""One oracle record per op: what the registry suites know about an op that its declaration does not say.

The primitive declares its forward, rules, plain reference, kinks, support and variants
(fnnet/primitive.py). The record adds the independent truth and the numerical budgets, read by every
registry suite:

* ``f``, ``df``: the exact value and derivative as mpmath functions of an mpf ``x`` and the variant's
  hyperparameters (tests/test_extremes.py, tests/test_accuracy.py). Either may be left out: ``f`` is
  then the primitive's ``.reference`` evaluated in mpmath (its ``jnp``/``lax`` calls on mpf numbers, at
  DERIVED_DPS digits, enough for every cancellation a plain formula suffers on float64's range), and
  ``df`` a central difference of ``f`` at the same precision (at a declared kink: the kink's
  derivative). A written oracle is independent of fnnet's code, so the existing ops keep theirs.
* the limits at ±inf (tests/test_extremes.py) are never written: ``limits`` evaluates ``f`` and ``df``
  at ±inf in mpmath, or at ±2¹¹⁰⁰ where the formula gives ∞·0 there (2¹¹⁰⁰ is past float64's range,
  so what overflows there overflows at ∞, and a tail converging like any power of 1/x has converged
  to the last bit);
* ``roundings``: k, the roundings on an entry's path of the value and of the derivative (VJP for ops
  over an axis) in float16/bfloat16, counted by hand from fnnet's formula (tests/test_low_precision.py,
  whose docstring gives the rules: each operation, transcendental and rounded constant 1, a square 2,
  ``lax.logistic`` 3); ``subtracted``, for a VJP rule that subtracts, the size of the terms it
  subtracts;
* ``accuracy``: the ULP measurements against mpmath (tests/test_accuracy.py and
  experiments/accuracy_table.py): which variants, fnnet's formula switches and the derivative's zero
  crossings on the grid, jax.nn's counterpart for the table.

An op without a record fails one test, ``test_every_activation_has_an_oracle_record``
(tests/test_primitives.py); the suites skip it with the same message instead of failing obscurely.

The cases (primitive × variant, with their test ids) are listed here once for every suite.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import types
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import mpmath
import numpy as np

import fnnet
from fnnet.primitive import registry

ONE, ZERO = mpmath.mpf(1), mpmath.mpf(0)
LAM = mpmath.mpf("1.0507009873554804934193349852946")  # SELU's λ and α, 30 digits (Klambauer et al.)
ALPHA = mpmath.mpf("1.6732632423543772848170429916717")
DERIVED_DPS = 1200
# Linear elementwise maps and their constant derivative: their VJP passes the cotangent through (times
# the constant), as jax.grad's and dense's do, so a NaN input gives a NaN value but the derivative stays
# the constant. Every other elementwise derivative is NaN at a NaN input.
LINEAR = {"identity": 1.0, "negative": -1.0}


@dataclasses.dataclass(frozen=True)
class Accuracy:
    """One row of the ULP measurement: the op at ``static``, against its record's f and f′.

    ``zeros``: approximate zero crossings of (f, f′) away from x = 0, excluded from the count (relative
    error has no meaning there; refined with mpmath.findroot). ``switches``: where fnnet's formulas
    switch (root-expansion windows, tail shifts, clips, branch thresholds), put on the grid.
    ``f``/``df``: an oracle of (x, dtype) where it depends on the dtype (gelu's rounded constants).
    """

    label: str | None = None
    static: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    jax_nn: Callable | None = None
    zeros: tuple[tuple[float, ...], tuple[float, ...]] = ((), ())
    switches: tuple[float, ...] = ()
    f: Callable | None = None
    df: Callable | None = None


@dataclasses.dataclass(frozen=True)
class Oracle:
    f: Callable | None = None  # exact f(x, **static) in mpmath; None: the reference in mpmath
    df: Callable | None = None  # exact f′(x, **static); None: a central difference of f
    roundings: tuple[int, int] | None = None  # k for (value, derivative or VJP) in float16/bfloat16
    subtracted: Callable | None = None  # ops over an axis: (static, y, g) -> size of what the VJP subtracts
    accuracy: tuple[Accuracy, ...] = ()


# ----- the exact functions (mpmath, x an mpf) ------------------------------------------------------
def sig(x):
    return 1 / (1 + mpmath.exp(-x))


def softplus(x):
    return mpmath.log1p(mpmath.exp(x))


def _Phi(x):
    """Φ(x); beyond |x| = 1e4 it is 0 or 1 to 10⁻²¹⁰⁰⁰⁰⁰⁰, far below any subnormal (and mpmath's erfc
    series would crawl at 1e30)."""
    if abs(x) > 1e4:
        return mpmath.mpf(1 if x > 0 else 0)
    return mpmath.erfc(-x / mpmath.sqrt(2)) / 2


def _phi(x):
    return ZERO if abs(x) > 1e4 else mpmath.npdf(x)


def _gelu_tanh(x, c1=None, c2=None):
    c1, c2 = c1 or mpmath.sqrt(2 / mpmath.pi), c2 or mpmath.mpf("0.044715")
    return x * sig(2 * c1 * (x + c2 * x**3))


def _dgelu_tanh(x, c1=None, c2=None):
    c1, c2 = c1 or mpmath.sqrt(2 / mpmath.pi), c2 or mpmath.mpf("0.044715")
    u2 = 2 * c1 * (x + c2 * x**3)
    return sig(u2) + x * 2 * c1 * (1 + 3 * c2 * x**2) * sig(u2) * sig(-u2)


def _gelu_consts(dtype):
    """√(2/π) and 0.044715 as ``dtype`` holds them: in the left tail (gelu ≈ x·e^{2u}, |2u| up to ~700)
    a half-ULP change of a constant in u moves the result by hundreds of ULP, so the accuracy of
    gelu(approximate=True) in a dtype is measured against the function with that dtype's constants
    (what any implementation in that dtype computes)."""
    return (mpmath.mpf(float(np.asarray(math.sqrt(2 / math.pi), dtype))),
            mpmath.mpf(float(np.asarray(0.044715, dtype))))


def _gelu_2u_at(target):
    """x < 0 where 2u(x) = target (tanh form): the left-tail shift of fnnet's gelu starts at |2u| = 64."""
    c1, c2 = math.sqrt(2 / math.pi), 0.044715
    roots = np.roots([2 * c1 * c2, 0.0, 2 * c1, -target])
    return float(min(r.real for r in roots if abs(r.imag) < 1e-9))


def _elu(x, a=ONE):
    return x if x > 0 else a * mpmath.expm1(x)


def _delu(x, a=ONE):
    return ONE if x > 0 else a * mpmath.exp(x)


def _squareplus(x, b=4.0):
    h = mpmath.sqrt(x * x + b)  # x < 0: the cancellation-free form (x + h cancels at x = −1e300)
    return b / (2 * (h - x)) if x < 0 else (x + h) / 2


def _dsquareplus(x, b=4.0):
    h = mpmath.sqrt(x * x + b)
    return b / (2 * h * (h - x)) if x < 0 else (1 + x / h) / 2


def _log1mexp(x):
    # log(−expm1(−x)) would need 1 − e^{−x} to more digits than the precision for large x: log1p there
    return mpmath.log(-mpmath.expm1(-x)) if x < 1 else mpmath.log1p(-mpmath.exp(-x))


def _tanhshrink(x):
    if abs(x) < mpmath.mpf("1e-5"):  # x − tanh x = x³/3 − 2x⁵/15 + …: no cancellation at any precision
        return x**3 / 3 - 2 * x**5 / 15
    return x - mpmath.tanh(x)


def _mish_df(x):
    sp = softplus(x)
    return mpmath.tanh(sp) + x * mpmath.sech(sp) ** 2 * sig(x)


def step(cond, then=ONE):
    """[cond]·then: a derivative that is ``then`` where cond holds and 0 elsewhere."""
    return mpmath.mpf(then) if cond else ZERO


def clip(x, lo, hi):
    return min(max(x, mpmath.mpf(lo)), mpmath.mpf(hi))


# ----- the softmax family's VJPs subtract: the size of what they subtract --------------------------
def _softmax_terms(static, y, g):
    """softmax's rule y ⊙ (g − ⟨g, y⟩) cancels where y_i → 1 (g_i − ⟨g, y⟩ → 0): its rounding error is
    u·y_i·(|g_i| + ⟨|g|, y⟩), which Σ_k |J_ki||g_k| (the exact sensitivity to g) does not bound. It is
    the formula's, shared with jax.nn; a cancellation-free form (Σ_{k≠i} y_k(g_i − g_k)) costs O(n²)."""
    axis = static.get("axis", static.get("dim", -1))
    ag = np.abs(g)
    return y * (ag + np.sum(ag * y, axis=-1 if axis is None and "dim" in static else axis, keepdims=True)) / (
        static.get("tau", 1.0))


def _log_softmax_terms(static, y, g):
    """log_softmax's g − y·Σg: |g_i| + y_i·Σ|g|."""
    ag = np.abs(g)
    return ag + np.exp(y) * np.sum(ag, axis=static["axis"], keepdims=True)


# ----- the records ----------------------------------------------------------------------------------
# roundings: (k value, k derivative), read off fnnet's formulas in the low dtype (fnnet/activations/,
# fnnet/ops.py); c = k + 1 (tests/test_low_precision.py). Selections of x or of exact constants do not
# round (relu, hard_tanh, identity: (0, 0)).
ORACLES: dict[str, Oracle] = {
    # ----- piecewise ---------------------------------------------------------------------------------
    "relu": Oracle(lambda x: max(x, ZERO), lambda x: step(x > 0), roundings=(0, 0)),
    "relu6": Oracle(lambda x: clip(x, 0, 6), lambda x: step(0 < x < 6), roundings=(0, 0)),
    "leaky_relu": Oracle(  # slope rounded, slope·x | slope
        lambda x, negative_slope=0.01: x if x >= 0 else mpmath.mpf(negative_slope) * x,
        lambda x, negative_slope=0.01: ONE if x >= 0 else mpmath.mpf(negative_slope),
        roundings=(2, 1)),
    "rrelu": Oracle(  # (lower + upper)/2 rounded, slope·x | slope (training=False)
        lambda x, lower=1 / 8, upper=1 / 3, training=False: x if x > 0 else mpmath.mpf((lower + upper) / 2) * x,
        lambda x, lower=1 / 8, upper=1 / 3, training=False: ONE if x > 0 else mpmath.mpf((lower + upper) / 2),
        roundings=(2, 1)),
    "hard_tanh": Oracle(lambda x: clip(x, -1, 1), lambda x: step(-1 < x < 1), roundings=(0, 0)),
    "hard_sigmoid": Oracle(  # x + 3, /6 | mask tested on x + 3, 1/6 rounded
        lambda x: clip((x + 3) / 6, 0, 1), lambda x: step(-3 < x < 3, ONE / 6), roundings=(2, 2)),
    "hard_silu": Oracle(  # hs (2), x·hs | hs (2), mask on x + 3, x/6, +
        lambda x: x * clip((x + 3) / 6, 0, 1), lambda x: clip((x + 3) / 6, 0, 1) + step(-3 < x < 3, x / 6),
        roundings=(3, 5)),
    "sparse_plus": Oracle(  # x + 1, square (2) (/4 exact) | x + 1 (/2 exact)
        lambda x: ZERO if x <= -1 else x if x >= 1 else (x + 1) ** 2 / 4,
        lambda x: ZERO if x <= -1 else ONE if x >= 1 else (x + 1) / 2, roundings=(3, 1)),
    "sparse_sigmoid": Oracle(  # x + 1 (·½ exact) | the tie test on x + 1
        lambda x: clip((x + 1) / 2, 0, 1), lambda x: step(-1 < x < 1, ONE / 2), roundings=(1, 1)),
    "hardshrink": Oracle(lambda x, lambd=0.5: x if abs(x) > lambd else ZERO,
                         lambda x, lambd=0.5: step(abs(x) > lambd), roundings=(0, 0)),
    "softshrink": Oracle(  # λ rounded, x − λ | 0 or 1
        lambda x, lambd=0.5: x - lambd if x > lambd else x + lambd if x < -lambd else ZERO,
        lambda x, lambd=0.5: step(abs(x) > lambd), roundings=(2, 0)),
    "threshold": Oracle(  # the constant `value`
        lambda x, threshold=0.0, value=0.0: x if x > threshold else mpmath.mpf(value),
        lambda x, threshold=0.0, value=0.0: step(x > threshold), roundings=(1, 0)),
    "identity": Oracle(lambda x: x, lambda x: ONE, roundings=(0, 0)),
    "negative": Oracle(lambda x: -x, lambda x: -ONE, roundings=(0, 0)),
    # ----- smooth ------------------------------------------------------------------------------------
    # tanh and sigmoid: the ULP goal applies to the tail-exact derivative (exact_tails=True); the default
    # derivative from the output is jax.grad's (no memory beyond jax.nn's) and is checked in absolute
    # terms by tests/test_extremes.py.
    "sigmoid": Oracle(  # logistic (3) | s = logistic(−|x|) (3), 1 − s, s·(1 − s)
        lambda x, exact_tails=False: sig(x), lambda x, exact_tails=False: sig(x) * sig(-x), roundings=(3, 5),
        accuracy=(Accuracy(static={"exact_tails": True}, jax_nn=jax.nn.sigmoid, switches=(-64.0,)),)),
    "tanh": Oracle(  # tanh | E = exp(2|x|), 1 + E, q = 4/(…), 1 − q/4 (q/4 exact), q·(…)
        lambda x, exact_tails=False: mpmath.tanh(x), lambda x, exact_tails=False: mpmath.sech(x) ** 2,
        roundings=(1, 5),
        accuracy=(Accuracy(static={"exact_tails": True}, jax_nn=jnp.tanh, switches=(-32.0, 32.0)),)),
    "softplus": Oracle(softplus, sig, roundings=(3, 3),  # logaddexp: exp, log1p, max + … | logistic (3)
                       accuracy=(Accuracy(jax_nn=jax.nn.softplus),)),
    "log_sigmoid": Oracle(lambda x: -softplus(-x), lambda x: sig(-x), roundings=(3, 3),
                          accuracy=(Accuracy(jax_nn=jax.nn.log_sigmoid),)),
    # silu, squareplus, gelu: computed in float32 and rounded once to the low dtype (_in_float32 of the
    # smooth activations' module): the float32 result's own error is the +1 of c
    "silu": Oracle(
        lambda x: x * sig(x), lambda x: sig(x) * (1 + x * sig(-x)), roundings=(1, 1),
        accuracy=(Accuracy(jax_nn=jax.nn.silu, zeros=((), (-1.278,)),
                           switches=(-1.5784645, -0.9784645, -64.0, -1e4)),)),
    "gelu": Oracle(
        lambda x, approximate=True: _gelu_tanh(x) if approximate else x * _Phi(x),
        lambda x, approximate=True: _dgelu_tanh(x) if approximate else _Phi(x) + x * _phi(x),
        roundings=(1, 1),
        accuracy=(
            Accuracy("gelu_tanh", {"approximate": True}, functools.partial(jax.nn.gelu, approximate=True),
                     zeros=((), (-0.752,)), switches=(-3.2524614, -0.3024614, _gelu_2u_at(-64.0), -40.0, -40.5),
                     f=lambda x, dtype: _gelu_tanh(x, *_gelu_consts(dtype)),
                     df=lambda x, dtype: _dgelu_tanh(x, *_gelu_consts(dtype))),
            Accuracy("gelu_erf", {"approximate": False}, functools.partial(jax.nn.gelu, approximate=False),
                     zeros=((), (-0.7518,)), switches=(-2.2517915, -0.3017915, -math.sqrt(128.0), -39.0, -40.0)),
        )),
    # elu: expm1, α rounded, α·… | exp, α·e (α ≤ 1 known when traced; else 86 − a, exp, α rounded,
    # α·e_s, ·scale)
    "elu": Oracle(
        lambda x, alpha=1.0: _elu(x, mpmath.mpf(alpha)), lambda x, alpha=1.0: _delu(x, mpmath.mpf(alpha)),
        roundings=(3, 5), accuracy=(Accuracy(jax_nn=jax.nn.elu, switches=(-64.0,)),)),
    "selu": Oracle(  # elu (3), λ rounded, λ·… | 86 − a, exp, λα rounded, λα·e_s, ·scale
        lambda x: LAM * _elu(x, ALPHA), lambda x: LAM * _delu(x, ALPHA), roundings=(5, 5),
        # -87.85, -707.9: where α·e^x alone turns subnormal (float32, float64)
        accuracy=(Accuracy(jax_nn=jax.nn.selu, switches=(-64.0, -87.85, -707.9)),)),
    "celu": Oracle(  # α rounded, x/α, expm1, α·…, max + … | α, x/α, exp
        lambda x, alpha=1.0: x if x > 0 else alpha * mpmath.expm1(x / alpha),
        lambda x, alpha=1.0: ONE if x > 0 else mpmath.exp(x / alpha),
        roundings=(6, 3),
        accuracy=(Accuracy(jax_nn=jax.nn.celu, switches=(-64.0,)),
                  Accuracy("celu_a2", {"alpha": 2.0}, functools.partial(jax.nn.celu, alpha=2.0),
                           switches=(-64.0,)))),
    # mish: exp, ·scale, e + 2, e_s(e + 2), e(e + 2), + 2, /, x·…, ·scale (9; the right branch 8 with e·e
    # (2)) | exp (2), d (2), expm1, 5 constants, Horner in m (5), d(b1 + b2 m) (3), +, ·¼ (exact), q (7),
    # e_s·h, /, ·scale (27 on [−3, 0); 20 below −3, h/4 (7) and q (7); 15 on the right)
    "mish": Oracle(
        lambda x: x * mpmath.tanh(softplus(x)), _mish_df, roundings=(9, 27),
        accuracy=(Accuracy(jax_nn=jax.nn.mish, zeros=((), (-1.1924,)), switches=(-3.0, -0.75, -64.0, -1e4)),)),
    "soft_sign": Oracle(  # |x| + 1, / | |x| + 1, square (2), reciprocal
        lambda x: x / (abs(x) + 1), lambda x: 1 / (abs(x) + 1) ** 2, roundings=(2, 4),
        accuracy=(Accuracy(jax_nn=jax.nn.soft_sign),)),
    "squareplus": Oracle(
        _squareplus, _dsquareplus, roundings=(1, 1),
        accuracy=(Accuracy(jax_nn=jax.nn.squareplus, switches=(-1.0, -(2.0**32), 2.0**60)),)),
    "log1mexp": Oracle(  # expm1 (or exp), log (or log1p) | expm1, reciprocal
        _log1mexp, lambda x: 1 / mpmath.expm1(x), roundings=(2, 2),
        accuracy=(Accuracy(jax_nn=jax.nn.log1mexp, switches=(math.log(4.0), 0.5**24, 0.5**53)),)),
    # tanhshrink, |x| < 2: s = x², t = s/2 − 1, x·(s·p) (4) and the Clenshaw sum p: 4 roundings per term
    # (2t·b1, − b2, + c_k, c_k rounded) whose share of p falls by the series' ratio 4.2 per term:
    # 4·Σ 4.2⁻ᵏ ≤ 5.3, counted as 6. |x| ≥ 2: tanh, x − tanh. | |x| < 0.88: s, the series (6), s·p,
    # 1 − …, square (2), s·(…) = 12; |x| ≥ 0.88: sech² (5, as tanh'), 1 − sech² = 6
    "tanhshrink": Oracle(
        _tanhshrink, lambda x: mpmath.tanh(x) ** 2, roundings=(10, 12),
        accuracy=(Accuracy(jax_nn=lambda x: x - jnp.tanh(x), switches=(-2.0, -0.88, 0.88, 2.0)),)),
    # ----- elementwise ops (fnnet/ops.py) --------------------------------------------------------------
    "exp": Oracle(mpmath.exp, mpmath.exp, roundings=(1, 1)),
    "log": Oracle(mpmath.log, lambda x: 1 / x, roundings=(1, 1)),
    # ----- ops over an axis: roundings for the value and the VJP under a normwise input perturbation
    # (tests/test_low_precision.py): a rounding of a quantity as large as |x_i| + |m| ≤ 2‖x‖∞ (the shift
    # x − m) counts 2, one of (l + g)/τ's shift 4 (|z − m| ≤ 2‖z‖∞ ≤ 4‖x‖∞/τ, times τ back on x).
    # jnp.sum accumulates a low dtype in float32 and rounds once.
    # softmax: shift (2), exp, Σ, / = 5; its VJP y ⊙ (g − ⟨g, y⟩): g·y, Σ, −, y· (4) on top of y's 5.
    "softmax": Oracle(roundings=(5, 9), subtracted=_softmax_terms),
    "softmin": Oracle(roundings=(5, 9), subtracted=_softmax_terms),  # softmax(−x): the negation is exact
    "log_softmax": Oracle(roundings=(6, 8), subtracted=_log_softmax_terms),  # shift (2), exp, Σ, log, − |
    #                                                                          y = softmax (5), Σg, y·Σg, g − …
    "logsumexp": Oracle(roundings=(6, 6)),  # shift (2), exp, Σ, log, m + … | p = softmax (5), g·p
    "logmeanexp": Oracle(roundings=(8, 6)),  # logsumexp's (6), log n rounded, − | logsumexp's
    # standardize, "fast": x² (1), Σ/n (1), μ (1), μ² (1), − (1), + ε (1), rsqrt (1), x − μ (2), ·r (1) =
    # 10 ("stable": μ, the shift (2), square, Σ/n, + ε, rsqrt, the shift again (2), ·r = 10); "fast"'s
    # mean(x²) − μ² multiplies v's roundings by (σ² + μ²)/σ², which the bound's ‖x‖∞·Σ|J| term (|J| ~
    # r = 1/σ) absorbs while ‖x‖∞/σ stays moderate, as on the sample rows (|μ| ≤ 2, σ ≥ 0.5). | y (10),
    # Σg, g·y, Σ, /n (2), c·y, two −, ·r = 8 more
    "standardize": Oracle(roundings=(10, 18)),
    # l + g (2), 1/τ rounded (2), ·(1/τ) (2), shift (4), exp, Σ, / | y (13), VJP (4)
    "gumbel_softmax": Oracle(roundings=(13, 17), subtracted=_softmax_terms),
    "glu": Oracle(roundings=(4, 7)),  # logistic (3), a·σ | g·σ (4); σ'(b) (5), a·σ', g·…
    "prelu": Oracle(roundings=(1, 2)),  # w·x | g·w; x·g, Σ over the batch (float32 accumulation, one rounding)
    "rrelu_with_noise": Oracle(roundings=(1, 2)),  # noise·x | g·noise; x·g
}


# ----- the cases every suite runs: primitive × variant --------------------------------------------
def case_id(prim, static) -> str:
    return prim.name + "".join(f"-{k}={v}" for k, v in static.items())


def cases(select=lambda prim: True):
    """(id, primitive, static) for every registered primitive that ``select`` accepts, every variant."""
    return [(case_id(p, dict(v)), p, dict(v)) for p in registry().values() if select(p) for v in p.variants]


def params(select=lambda prim: True):
    """``cases`` as pytest parameters ``prim, static`` with their ids."""
    import pytest

    return [pytest.param(p, st, id=i) for i, p, st in cases(select)]


def needs_record(prim) -> bool:
    """The primitives with a record: every elementwise op and every activation (fnnet.activations and
    rrelu's registered noise form)."""
    return prim.elementwise or prim.name in set(fnnet.activations.__all__) | {"rrelu_with_noise"}


def missing_record(name: str, field: str = "") -> str:
    what = f" (its {field})" if field else ""
    return f"add an oracle record for {name}{what} in tests/oracles.py"


def record(name: str) -> Oracle | None:
    return ORACLES.get(name)


def roundings(name: str) -> tuple[int, int] | None:
    rec = ORACLES.get(name)
    return None if rec is None else rec.roundings


# ----- every elementwise case at the hard points, one program (test_extremes, test_primitives) --------
def hard_points(dtype):
    """±0, ±smallest subnormal, ±a mid subnormal (2²⁰ × the smallest), ±tiny, ±1e-3, ±1, ±30, ±1e4,
    ±1e30, ±max, as numbers of ``dtype`` (1e30 rounded in float32)."""
    fi = jnp.finfo(dtype)
    mags = [float(fi.smallest_subnormal), float(fi.smallest_subnormal) * 2**20, float(fi.tiny), 1e-3, 1.0,
            30.0, 1e4, 1e30, float(fi.max)]
    return np.asarray([0.0, -0.0] + [s * m for m in mags for s in (1.0, -1.0)], dtype=jnp.dtype(dtype))


@functools.cache
def elementwise_results(dtype):
    """Per case id of every elementwise case: (x, f(x), f′(x), the reference at x in float64), as numpy
    arrays; x is the hard points (±0 always, the others inside the op's support) followed by −inf, +inf
    and NaN. One jitted program per dtype for every op: two suites read it, and compiling ~100 small
    programs would cost more than all their checks."""
    xs, fns = {}, {}
    for case_id_, prim, static in cases(lambda p: p.elementwise):
        lo, hi = prim.support
        x = hard_points(dtype)
        x = x[(x == 0) | ((x.astype(np.float64) > lo) & (x.astype(np.float64) < hi))]
        xs[case_id_] = jnp.asarray(np.concatenate([x, np.asarray([-math.inf, math.inf, math.nan], x.dtype)]))
        fns[case_id_] = (functools.partial(prim.fn, **static), functools.partial(prim.reference, **static))
    program = jax.jit(lambda xs: {
        k: (f(xs[k]), jax.vmap(jax.grad(f))(xs[k]), ref(xs[k].astype(jnp.float64))) for k, (f, ref) in fns.items()
    })
    return {k: tuple(np.asarray(a) for a in (xs[k], *v)) for k, v in program(xs).items()}


# ----- derived oracles: the reference in mpmath, its central difference, the limits ------------------
class _MpNumpy:
    """The part of jax.numpy/lax that plain references use, on mpmath scalars."""

    exp, log, log1p, expm1, sqrt = mpmath.exp, mpmath.log, mpmath.log1p, mpmath.expm1, mpmath.sqrt
    tanh, erf, erfc, sign = mpmath.tanh, mpmath.erf, mpmath.erfc, mpmath.sign
    abs = staticmethod(abs)
    maximum, minimum = staticmethod(max), staticmethod(min)

    @staticmethod
    def where(cond, a, b):
        return a if cond else b

    @staticmethod
    def clip(a, lo, hi):
        return clip(a, lo, hi)

    @staticmethod
    def square(a):
        return a * a

    @staticmethod
    def logistic(a):
        return sig(a)

    @staticmethod
    def reciprocal(a):
        return 1 / a

    @staticmethod
    def logaddexp(a, b):
        return mpmath.log(mpmath.exp(a) + mpmath.exp(b))

    @staticmethod
    def zeros_like(a):
        return ZERO

    @staticmethod
    def ones_like(a):
        return ONE

    @staticmethod
    def full_like(a, v):
        return mpmath.mpf(v)


def reference_in_mpmath(prim) -> Callable:
    """``prim.reference`` with its module's ``jnp``, ``lax`` and ``np`` replaced by mpmath (the reference
    must be a plain Python function using only the operations of _MpNumpy, on scalars)."""
    ref = prim.reference
    names = {**ref.__globals__, "jnp": _MpNumpy, "lax": _MpNumpy, "np": _MpNumpy}
    fn = types.FunctionType(ref.__code__, names, ref.__name__, ref.__defaults__, ref.__closure__)
    fn.__kwdefaults__ = ref.__kwdefaults__
    return fn


def _central_difference(f, x, static):
    """f′(x) from f at DERIVED_DPS digits: step 10⁻⁴⁰⁰·max(|x|, 10⁻³⁵⁰) leaves truncation ~10⁻⁸⁰⁰·f‴
    and round-off ~10⁻⁸⁰⁰·f; exact to far below any float64 ULP unless a kink lies within the step."""
    with mpmath.workdps(DERIVED_DPS):
        h = max(abs(x), mpmath.mpf(10) ** -350) * mpmath.mpf(10) ** -400
        return (f(x + h, **static) - f(x - h, **static)) / (2 * h)


def exact(prim, static: Mapping[str, Any], which: int, dtype=None) -> Callable:
    """The exact f (which = 0) or f′ (which = 1) of ``prim`` at ``static`` as a function of an mpf x.

    From its record where written (an ``Accuracy`` row's dtype-dependent oracle when ``dtype`` is
    given and the row has one); derived otherwise (module docstring). Raises LookupError naming what to
    add when there is no record or the reference cannot be evaluated in mpmath.
    """
    rec = ORACLES.get(prim.name)
    if rec is None:
        raise LookupError(missing_record(prim.name))
    static = dict(static)
    if dtype is not None:
        for row in rec.accuracy:
            given = (row.f, row.df)[which]
            if given is not None and dict(row.static) == static:
                return lambda x: given(x, dtype)
    written = (rec.f, rec.df)[which]
    if written is not None:
        return lambda x: written(x, **static)
    f = rec.f
    if f is None:
        mp_ref = reference_in_mpmath(prim)

        def f(x, **st):
            with mpmath.workdps(DERIVED_DPS):
                return mp_ref(x, **st)

        try:
            f(mpmath.mpf(prim.domain[1]), **static)
        except Exception as err:  # noqa: BLE001 - any failure: the reference is not mpmath-compatible
            raise LookupError(
                f"{missing_record(prim.name, 'f')}: its reference cannot be evaluated in mpmath ({err!r})"
            ) from None
    if which == 0:
        return lambda x: f(x, **static)
    kinks = {k.at: k.derivative for k in prim.kinks} if static == dict(prim.variants[0]) else {}

    def df(x):
        if float(x) in kinks:
            return mpmath.mpf(kinks[float(x)])
        return _central_difference(f, x, static)

    return df


def to_float(v) -> float:
    """An mpf as the nearest float64, ±inf past float64's range, NaN for NaN or a complex result."""
    if isinstance(v, mpmath.mpc) or mpmath.isnan(v):
        return math.nan
    return float(v)  # rounds to nearest, overflowing to ±inf


def _at_infinity(fn, sign):
    """fn at sign·∞, or at sign·2¹¹⁰⁰ where the formula is ∞·0 or ∞/∞ at ∞ (module docstring)."""
    with mpmath.workdps(60):
        try:
            v = to_float(fn(sign * mpmath.inf))
        except (ZeroDivisionError, ValueError, OverflowError):
            v = math.nan
        return v if not math.isnan(v) else to_float(fn(sign * mpmath.mpf(2) ** 1100))


@functools.cache
def _limits(name, static_items):
    prim = registry()[name]
    static = dict(static_items)
    f, df = exact(prim, static, 0), exact(prim, static, 1)
    lo, hi = prim.support
    out = []
    for sign, end in ((-1, lo), (1, hi)):
        inside = math.isinf(end) and math.copysign(1, end) == sign
        out += [_at_infinity(f, sign), _at_infinity(df, sign)] if inside else [None, None]
    return tuple(out)


def limits(prim, static) -> tuple:
    """(f(−∞), f′(−∞), f(+∞), f′(+∞)) as float64 (None: that end is outside the support)."""
    return _limits(prim.name, tuple(dict(static).items()))


# ----- ULP measurement (tests/test_accuracy.py, experiments/accuracy_table.py) -----------------------
CROSSING_RTOL = 1e-3
TARGET_ULP = {"float64": 4.0, "float32": 8.0}
ACCURACY_DTYPES = ("float64", "float32")


@dataclasses.dataclass(frozen=True)
class UlpRow:
    label: str
    prim: Any
    static: Mapping[str, Any]
    row: Accuracy

    @property
    def fn(self):
        return functools.partial(self.prim.fn, **self.static) if self.static else self.prim.fn

    @property
    def positive_only(self) -> bool:
        return self.prim.support[0] >= 0


def ulp_rows() -> dict[str, UlpRow]:
    """Every ``Accuracy`` row of every record, by label (the op's name unless the row names itself)."""
    out = {}
    for name, rec in ORACLES.items():
        for row in rec.accuracy:
            label = row.label or name
            out[label] = UlpRow(label, registry()[name], dict(row.static), row)
    return out


def grid(dtype, positive_only=False, density=1, switches=()):
    """Test inputs in ``dtype``: log-spaced magnitudes from 1e-10 to 0.9·max, both signs, densest on
    [1e-2, 1e3], and both sides of each switch point s at relative distances 1e-7 … 1e-1."""
    top = math.log10(0.9 * float(np.finfo(dtype).max))
    mags = np.concatenate([
        np.logspace(-10, -2, 16 * density, endpoint=False),
        np.logspace(-2, 3, 110 * density, endpoint=False),
        np.logspace(3, top, 12 * density),
    ])
    xs = mags if positive_only else np.concatenate([-mags[::-1], mags])
    near = np.logspace(-7, -1, 8 * density)
    extra = [sw * (1 + sg * near) for sw in switches for sg in (1.0, -1.0)]
    return np.unique(np.concatenate([xs, *extra]).astype(dtype))


@functools.lru_cache(maxsize=None)
def crossings(label, which, dtype, dps):
    """The zero crossings of f (which = 0) or f′ (which = 1), refined with mpmath."""
    row = ulp_rows()[label]
    f = exact(row.prim, row.static, which, dtype)
    with mpmath.workdps(dps):
        return tuple(float(mpmath.findroot(f, x0)) for x0 in row.row.zeros[which])


@functools.lru_cache(maxsize=None)
def exact_table(label, which, dtype, density=1, dps=120):
    """(x, r, ulp, residual) on the grid: r is the exact result rounded to ``dtype``, ulp its ULP,
    residual = (exact − r)/ulp (|residual| ≤ ½), for the points that are counted: results below the
    smallest normal (they may flush to zero) or past the largest finite number are not, nor points
    within CROSSING_RTOL of a zero crossing."""
    row = ulp_rows()[label]
    f = exact(row.prim, row.static, which, dtype)
    x = grid(dtype, row.positive_only, density, row.row.switches)
    p = np.finfo(dtype).nmant + 1
    tiny, big = float(np.finfo(dtype).tiny), float(np.finfo(dtype).max)
    zeros = crossings(label, which, dtype, dps)
    keep, r, ulp, res = [], [], [], []
    for i, xi in enumerate(x):
        if any(abs(xi - c) <= CROSSING_RTOL * abs(c) for c in zeros):
            continue
        with mpmath.workdps(dps):
            e = f(mpmath.mpf(float(xi)))
            if not abs(e) >= tiny or abs(e) > big:
                continue
            ri = float(np.asarray(float(e), dtype))  # (float64 → float32 double rounding: < 1e-9 ULP)
            _, k = mpmath.frexp(e)
            u = mpmath.ldexp(1, int(k) - p)
            keep.append(i)
            r.append(ri)
            ulp.append(float(u))
            res.append(float((e - ri) / u))
    return x[keep], np.array(r), np.array(ulp), np.array(res)


def ulp_errors(fn, label, which, dtype, density=1, dps=120):
    """(x, error in ULP) of ``fn`` (which = 0) or ``jax.grad(fn)`` (which = 1) at the counted points,
    evaluated in one jitted call on the whole grid."""
    x, r, ulp, res = exact_table(label, which, dtype, density, dps)
    batched = jax.jit(fn if which == 0 else jax.vmap(jax.grad(fn)))
    out = np.asarray(batched(jnp.asarray(x, dtype)), np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs((out - r) / ulp - res)
    return x, np.where(np.isfinite(err), err, np.inf)
