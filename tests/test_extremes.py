"""Extremes: every elementwise primitive at ±max finite, ±1e30, ±1e4, subnormals, ±tiny, 0, ±inf, NaN.

For each op the exact value and derivative come from its mathematics (mpmath, 60 digits; unbounded
exponents, so e^{1e30} is a number there), and the test asserts, in float32 and float64:

* where the exact result is representable (|exact| ≤ the largest finite number), fnnet's value and
  derivative are finite and within 64 ε (relative) of it, or within ``tiny`` (the smallest normal) where
  the exact result lies below the normal range (it may flush to zero). 64 ε is test_primitives.py's
  bound for a chain of ≤ ~30 few-ULP operations; it is not an accuracy target here (test_accuracy.py
  holds that, to 4/8 ULP): it tells a saturated tail or an overflow from a right answer;
* where the exact result overflows, fnnet returns ±inf with its sign (selu(max) = λ·max,
  exp(1e30), log'(subnormal) = 1/x);
* NaN in gives NaN out, value and derivative;
* ±inf give the mathematical limits (table LIMITS: sigmoid(−inf) = 0, softplus(inf) = inf with
  derivative 1, selu(−inf) = −λα, ...): exactly where the limit is 0, an integer or ±inf, within two
  roundings (2ε) where it is an irrational constant (−λα, λ).

The derivative is compared except at the op's declared kinks (test_primitives.py checks the convention
there). Ops with a restricted support (log, log1mexp: x > 0) are tested inside it. 1e30 is finite in
float32 too (the float32 number nearest it is taken, and its exact value is the oracle's input).

The softmax family (softmax, log_softmax, logsumexp, softmin) is tested with ±1e30, ±max and ±inf
logits against the limits its docstrings state.

One jitted program per dtype evaluates every op (CPU: compiling ~100 small programs costs more than
the checks).
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest

import fnnet  # noqa: F401  (registers every primitive)
from fnnet.activations._smooth import SELU_ALPHA, SELU_SCALE
from fnnet.primitive import registry

mp = mpmath.mp
mp.dps = 60
DTYPES = [jnp.float32, jnp.float64]
REL_TOL_EPS = 64
LAM = mpmath.mpf("1.0507009873554804934193349852946")
ALPHA = mpmath.mpf("1.6732632423543772848170429916717")


# ----- the exact functions: (f(x), f'(x)) for an mpf x -----------------------------------------------
def _sig(x):
    return 1 / (1 + mpmath.exp(-x))


def _softplus(x):
    return mpmath.log1p(mpmath.exp(x))


def _Phi_phi(x):
    """Φ(x), φ(x); beyond |x| = 1e4 they are 0/1 and 0 to 10⁻²¹⁰⁰⁰⁰⁰⁰, far below any subnormal (and
    mpmath's erfc series would crawl at 1e30)."""
    if abs(x) > 1e4:
        return mpmath.mpf(1 if x > 0 else 0), mpmath.mpf(0)
    return mpmath.erfc(-x / mpmath.sqrt(2)) / 2, mpmath.npdf(x)


def _gelu(x, approximate=True):
    if not approximate:
        Phi, phi = _Phi_phi(x)
        return x * Phi, Phi + x * phi
    c1, c2 = mpmath.sqrt(2 / mpmath.pi), mpmath.mpf("0.044715")
    u2 = 2 * c1 * (x + c2 * x**3)
    return x * _sig(u2), _sig(u2) + x * 2 * c1 * (1 + 3 * c2 * x**2) * _sig(u2) * _sig(-u2)


def _elu(x, alpha=1.0):
    a = mpmath.mpf(alpha)
    return (x, mpmath.mpf(1)) if x > 0 else (a * mpmath.expm1(x), a * mpmath.exp(x))


def _mish(x):
    t = mpmath.tanh(_softplus(x))
    return x * t, t + x * (1 - t**2) * _sig(x)


def _squareplus(x, b=4.0):
    h = mpmath.sqrt(x * x + b)
    if x < 0:  # the cancellation-free forms (60 digits would not survive x + h at x = −1e300)
        return b / (2 * (h - x)), b / (2 * h * (h - x))
    return (x + h) / 2, (1 + x / h) / 2


def _tanhshrink(x):
    if abs(x) < mpmath.mpf("1e-5"):  # x − tanh x = x³/3 − 2x⁵/15 + …: no cancellation at 60 digits
        return x**3 / 3 - 2 * x**5 / 15, mpmath.tanh(x) ** 2
    return x - mpmath.tanh(x), mpmath.tanh(x) ** 2


def _between(x, lo, hi):
    return lo < x < hi


ONE, ZERO = mpmath.mpf(1), mpmath.mpf(0)
EXACT = {
    "relu": lambda x: (max(x, ZERO), ONE if x > 0 else ZERO),
    "relu6": lambda x: (min(max(x, ZERO), 6), ONE if _between(x, 0, 6) else ZERO),
    "leaky_relu": lambda x, negative_slope=0.01: (
        (x, ONE) if x >= 0 else (mpmath.mpf(negative_slope) * x, mpmath.mpf(negative_slope))
    ),
    "rrelu": lambda x, lower=1 / 8, upper=1 / 3, training=False: (
        (x, ONE) if x > 0 else (mpmath.mpf((lower + upper) / 2) * x, mpmath.mpf((lower + upper) / 2))
    ),
    "hard_tanh": lambda x: (min(max(x, -ONE), ONE), ONE if _between(x, -1, 1) else ZERO),
    "hard_sigmoid": lambda x: (
        min(max((x + 3) / 6, ZERO), ONE), ONE / 6 if _between(x, -3, 3) else ZERO
    ),
    "hard_silu": lambda x: (
        x * min(max((x + 3) / 6, ZERO), ONE),
        min(max((x + 3) / 6, ZERO), ONE) + (x / 6 if _between(x, -3, 3) else ZERO),
    ),
    "sparse_plus": lambda x: (
        (ZERO, ZERO) if x <= -1 else (x, ONE) if x >= 1 else ((x + 1) ** 2 / 4, (x + 1) / 2)
    ),
    "sparse_sigmoid": lambda x: (
        min(max((x + 1) / 2, ZERO), ONE), ONE / 2 if _between(x, -1, 1) else ZERO
    ),
    "hardshrink": lambda x, lambd=0.5: (x, ONE) if abs(x) > lambd else (ZERO, ZERO),
    "softshrink": lambda x, lambd=0.5: (
        (x - lambd, ONE) if x > lambd else (x + lambd, ONE) if x < -lambd else (ZERO, ZERO)
    ),
    "threshold": lambda x, threshold=0.0, value=0.0: (
        (x, ONE) if x > threshold else (mpmath.mpf(value), ZERO)
    ),
    "sigmoid": lambda x, exact_tails=False: (_sig(x), _sig(x) * _sig(-x)),
    "tanh": lambda x, exact_tails=False: (mpmath.tanh(x), mpmath.sech(x) ** 2),
    "softplus": lambda x: (_softplus(x), _sig(x)),
    "log_sigmoid": lambda x: (-_softplus(-x), _sig(-x)),
    "silu": lambda x: (x * _sig(x), _sig(x) * (1 + x * _sig(-x))),
    "mish": _mish,
    "gelu": _gelu,
    "elu": _elu,
    "selu": lambda x: tuple(LAM * v for v in _elu(x, ALPHA)),
    "celu": lambda x, alpha=1.0: (
        max(x, ZERO) + min(ZERO, alpha * mpmath.expm1(x / alpha)),
        ONE if x > 0 else mpmath.exp(x / alpha),
    ),
    "soft_sign": lambda x: (x / (abs(x) + 1), 1 / (abs(x) + 1) ** 2),
    "squareplus": _squareplus,
    "log1mexp": lambda x: (mpmath.log(-mpmath.expm1(-x)), 1 / mpmath.expm1(x)),
    "tanhshrink": _tanhshrink,
    "identity": lambda x: (x, ONE),
    "negative": lambda x: (-x, -ONE),
    "exp": lambda x: (mpmath.exp(x), mpmath.exp(x)),
    "log": lambda x: (mpmath.log(x), 1 / x),
}

INF = math.inf
_LAM_ALPHA = float(LAM * ALPHA)
# (f(−∞), f'(−∞), f(+∞), f'(+∞)) from each op's mathematics; None: outside the support.
LIMITS = {
    "relu": lambda: (0, 0, INF, 1),
    "relu6": lambda: (0, 0, 6, 0),
    "leaky_relu": lambda negative_slope=0.01: (-INF, negative_slope, INF, 1),
    "rrelu": lambda lower=1 / 8, upper=1 / 3, training=False: (-INF, (lower + upper) / 2, INF, 1),
    "hard_tanh": lambda: (-1, 0, 1, 0),
    "hard_sigmoid": lambda: (0, 0, 1, 0),
    "hard_silu": lambda: (0, 0, INF, 1),
    "sparse_plus": lambda: (0, 0, INF, 1),
    "sparse_sigmoid": lambda: (0, 0, 1, 0),
    "hardshrink": lambda lambd=0.5: (-INF, 1, INF, 1),
    "softshrink": lambda lambd=0.5: (-INF, 1, INF, 1),
    "threshold": lambda threshold=0.0, value=0.0: (value, 0, INF, 1),
    "sigmoid": lambda exact_tails=False: (0, 0, 1, 0),
    "tanh": lambda exact_tails=False: (-1, 0, 1, 0),
    "softplus": lambda: (0, 0, INF, 1),
    "log_sigmoid": lambda: (-INF, 1, 0, 0),
    "silu": lambda: (0, 0, INF, 1),
    "mish": lambda: (0, 0, INF, 1),
    "gelu": lambda approximate=True: (0, 0, INF, 1),
    "elu": lambda alpha=1.0: (-alpha, 0, INF, 1),
    "selu": lambda: (-_LAM_ALPHA, 0, INF, float(LAM)),
    "celu": lambda alpha=1.0: (-alpha, 0, INF, 1),
    "soft_sign": lambda: (-1, 0, 1, 0),
    "squareplus": lambda b=4.0: (0, 0, INF, 1),
    "log1mexp": lambda: (None, None, 0, 0),
    "tanhshrink": lambda: (-INF, 1, INF, 1),
    "identity": lambda: (-INF, 1, INF, 1),
    "negative": lambda: (INF, -1, -INF, -1),
    "exp": lambda: (0, 0, INF, INF),
    "log": lambda: (None, None, INF, 0),
}


def _case_id(prim, static):
    return prim.name + "".join(f"-{k}={v}" for k, v in static.items())


CASES = [
    pytest.param(p, dict(v), id=_case_id(p, dict(v)))
    for p in registry().values() if p.elementwise for v in p.variants
]


def test_every_elementwise_primitive_has_its_exact_function_and_limits():
    missing = sorted({c.values[0].name for c in CASES} - (set(EXACT) & set(LIMITS)))
    assert not missing, f"no exact function or limits for {missing} in tests/test_extremes.py"
    # the module's constants are the published ones the oracle uses (30 digits)
    assert float(LAM) == SELU_SCALE and float(ALPHA) == SELU_ALPHA


def _points(dtype):
    """0, ±smallest subnormal, ±a mid subnormal, ±tiny, ±1, ±1e4, ±1e30, ±max (dtype-rounded)."""
    fi = jnp.finfo(dtype)
    mags = [float(fi.smallest_subnormal), float(fi.smallest_subnormal) * 2**20, float(fi.tiny), 1.0, 1e4,
            1e30, float(fi.max)]
    pts = [0.0, -0.0] + [s * m for m in mags for s in (1.0, -1.0)]
    return np.asarray(pts, dtype=jnp.dtype(dtype))


@functools.cache
def _results(dtype):
    """Per case id: (x, f(x), f'(x)) at the finite points of the support followed by −inf, +inf, NaN."""
    xs, fns = {}, {}
    for case in CASES:
        prim, static = case.values
        lo, hi = prim.support
        x = _points(dtype)  # ±0 always (the denormals-are-zero comparison), the rest inside the support
        x = x[(x == 0) | ((x.astype(np.float64) > lo) & (x.astype(np.float64) < hi))]
        xs[case.id] = np.concatenate([x, np.asarray([-INF, INF, np.nan], x.dtype)])
        fns[case.id] = functools.partial(lambda v, p, st: p.fn(v, **st), p=prim, st=static)
    program = jax.jit(
        lambda xs: {k: (f(xs[k]), jax.vmap(jax.grad(f))(xs[k])) for k, f in fns.items()}
    )
    out = program({k: jnp.asarray(v) for k, v in xs.items()})
    return {k: (xs[k], np.asarray(out[k][0]), np.asarray(out[k][1])) for k in xs}


def _expect(actual, exact, dtype, what):
    """``actual`` (a dtype number) against the exact mpf: overflow → ±inf, else finite and close."""
    big, tiny, eps = float(jnp.finfo(dtype).max), float(jnp.finfo(dtype).tiny), float(jnp.finfo(dtype).eps)
    assert not math.isnan(actual), f"{what}: NaN, exact {mpmath.nstr(exact, 8)}"
    with np.errstate(over="ignore"):  # the exact value past the largest finite number rounds to ±inf
        rounded = float(np.asarray(float(exact), jnp.dtype(dtype))) if abs(exact) < 2 * big else math.copysign(INF, exact)
    if math.isinf(rounded):
        assert math.isinf(actual) and math.copysign(1, actual) == math.copysign(1, rounded), (
            f"{what}: {actual}, but the exact {mpmath.nstr(exact, 8)} overflows to {rounded}"
        )
        return
    assert math.isfinite(actual), f"{what}: {actual}, exact {mpmath.nstr(exact, 8)} is finite"
    err = abs(mpmath.mpf(actual) - exact)
    assert err <= REL_TOL_EPS * eps * abs(exact) or (abs(exact) <= tiny and err <= tiny), (
        f"{what}: {actual!r}, exact {mpmath.nstr(exact, 17)} (relative error {mpmath.nstr(err / abs(exact), 3)})"
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("prim,static", CASES)
def test_finite_extremes_match_the_mathematics(prim, static, dtype):
    """At a subnormal input the result may instead be exactly the op's result at ±0 (same sign).

    XLA:CPU (like the GPUs) runs with denormals-are-zero: a subnormal *input* reads as ±0 in every
    arithmetic operation and comparison, so relu'(2⁻¹⁴⁹) is relu'(0) = 0 and log(2⁻¹⁴⁹) is −inf
    (exact: −103.3). Nothing written in jnp arithmetic can see the subnormal's bits; fnnet documents
    this (docs/accuracy.md, "Extremes") instead of bit-twiddling every op. Subnormal *results* of
    normal inputs are covered by the ``tiny`` rule of _expect.
    """
    x, y, d = _results(dtype)[_case_id(prim, static)]
    finite = x[:-3]
    at_zero = {math.copysign(1, float(v)): (float(yv), float(dv))
               for v, yv, dv in zip(finite, y, d) if float(v) == 0}
    kinks = {k.at for k in prim.kinks} if static == dict(prim.variants[0]) else set()
    tiny = float(jnp.finfo(dtype).tiny)
    lo, hi = prim.support
    for xi, yi, di in zip(finite, y, d):
        xf = float(xi)
        if not lo < xf < hi:
            continue
        exact_y, exact_d = EXACT[prim.name](mpmath.mpf(xf), **static)
        zy, zd = at_zero[math.copysign(1, xf)] if 0 < abs(xf) < tiny else (None, None)
        if not _same(float(yi), zy):
            _expect(float(yi), exact_y, dtype, f"{prim.name}({xf!r})")
        if xf not in kinks and not _same(float(di), zd):
            if static.get("exact_tails") is False:
                # The lean derivative is computed from the rounded output y (y(1 − y), (1 − y)(1 + y)):
                # y carries ≤ 1 ULP (≤ ε·|y| ≤ ε), the derivative's slope in y is ≤ 2 and its own
                # rounding ≤ 2 ULP of a value ≤ 1, so its absolute error is ≤ 2ε + 2ε = 4ε.
                eps = float(jnp.finfo(dtype).eps)
                assert abs(float(di) - float(exact_d)) <= 4 * eps, f"{prim.name}'({xf!r}) lean"
            else:
                _expect(float(di), exact_d, dtype, f"{prim.name}'({xf!r})")


def _same(a, b):
    """a is b's value (NaN equal to NaN); b None: nothing to compare with."""
    return b is not None and (a == b or (math.isnan(a) and math.isnan(b)))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("prim,static", CASES)
def test_infinities_give_the_limits_and_nan_gives_nan(prim, static, dtype):
    x, y, d = _results(dtype)[_case_id(prim, static)]
    eps = float(jnp.finfo(dtype).eps)
    assert np.isnan(y[-1]) and np.isnan(d[-1]), f"{prim.name}(NaN) = {y[-1]}, derivative {d[-1]}"
    f_lo, d_lo, f_hi, d_hi = LIMITS[prim.name](**static)
    for xi, yi, di, lim_y, lim_d in ((x[-3], y[-3], d[-3], f_lo, d_lo), (x[-2], y[-2], d[-2], f_hi, d_hi)):
        if lim_y is None:
            continue
        for got, lim, what in ((float(yi), lim_y, "value"), (float(di), lim_d, "derivative")):
            lim_dtype = float(np.asarray(lim, jnp.dtype(dtype)))
            if lim_dtype == 0 or math.isinf(lim_dtype) or lim_dtype == round(lim_dtype):
                ok = got == lim_dtype
            else:  # an irrational constant (−λα, λ): the limit within two roundings
                ok = abs(got - lim) <= 2 * eps * abs(lim)
            assert ok, f"{prim.name} {what} at {float(xi)}: {got}, limit {lim}"


# ----- the softmax family with huge and infinite logits ---------------------------------------------
SOFTMAX_CASES = {
    # logits: (softmax, log_softmax, logsumexp, softmin) — the limits the docstrings state; the
    # gradient (VJP with g = 1, 2, 3) must be finite in every case.
    "pm1e30": ([1e30, 0.0, -1e30], [1, 0, 0], [0, -1e30, -2e30], 1e30, [0, 0, 1]),
    "pminf": ([INF, 0.0, -INF], [1, 0, 0], [0, -INF, -INF], INF, [0, 0, 1]),
    "tied_inf": ([INF, INF, 1.0], [0.5, 0.5, 0], [-math.log(2), -math.log(2), -INF], INF, [0, 0, 1]),
    "all_neg_inf": ([-INF, -INF], [0.5, 0.5], [-math.log(2), -math.log(2)], -INF, [0.5, 0.5]),
    "pmmax": (["max", "-max"], [1, 0], [0, "-2max"], "max", [0, 1]),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(SOFTMAX_CASES))
def test_softmax_family_at_huge_and_infinite_logits(case, dtype):
    """Shift by the maximum: ±1e30 and ±max logits give exact one-hot probabilities and finite
    gradients; ±inf give the limits (entries tied at an infinite maximum share the mass)."""
    big, eps = float(jnp.finfo(dtype).max), float(jnp.finfo(dtype).eps)

    def value(v):
        if v == "max":
            return big
        if v == "-max":
            return -big
        if v == "-2max":
            return -INF  # −2·max overflows
        return v

    logits, sm, lsm, lse, smin = SOFTMAX_CASES[case]
    x = jnp.asarray([value(v) for v in logits], dtype)
    g = jnp.arange(1, x.size + 1, dtype=dtype)
    expected = {"softmax": sm, "log_softmax": lsm, "logsumexp": lse, "softmin": smin}
    for name, want in expected.items():
        f = registry()[name].fn
        y, vjp = jax.vjp(f, x)
        (grad,) = vjp(jnp.ones_like(y) if y.ndim == 0 else g)
        want = np.asarray([value(w) for w in np.atleast_1d(np.asarray(want, object))], np.float64)
        got = np.atleast_1d(np.asarray(y, np.float64))
        with np.errstate(invalid="ignore"):  # inf − inf where both are the same infinity
            close = (got == want) | (np.isfinite(want) & (np.abs(got - want) <= 2 * eps * np.abs(want)))
        assert close.all(), f"{name}({logits}) = {got}, limit {want}"
        assert np.all(np.isfinite(np.asarray(grad))), f"{name}({logits}): gradient {grad}"
        assert y.dtype == dtype and grad.dtype == dtype


SMOOTH_CASES = [c for c in CASES if c.values[0].df is not None
                and getattr(c.values[0].df, "__module__", "") == "fnnet.activations._smooth"]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_smooth_derivative_formulas_map_nan_to_nan(dtype):
    """Each smooth activation's f'(x, y) itself (not the NaN select a mechanism may add) is NaN at NaN,
    and finite at ±inf and 0 inside its support: a NaN must not vanish from a gradient, whatever wraps
    the formula."""
    assert len(SMOOTH_CASES) >= 15
    x = jnp.asarray([np.nan, -np.inf, np.inf, 0.0], dtype)

    def all_df(x):
        out = {}
        for case in SMOOTH_CASES:
            prim, static = case.values
            y = prim.forward(x, **static) if "y" in prim.saves else None
            out[case.id] = prim.df(x if "x" in prim.saves else None, y, **static)
        return out

    prims = {case.id: case.values[0] for case in SMOOTH_CASES}
    for k, d in jax.jit(all_df)(x).items():
        d = np.asarray(d)
        assert np.isnan(d[0]), f"{k}: f'(NaN) = {d[0]}"
        lo, hi = prims[k].support  # ±inf and 0 where they are in the (closed) support and not singular
        inside = [(lo <= v <= hi) and v not in prims[k].singular and v != lo for v in (-np.inf, np.inf, 0.0)]
        assert np.isfinite(d[1:][inside]).all(), f"{k}: f'(−inf, inf, 0) = {d[1:]}"
