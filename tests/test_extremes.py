"""Extremes: every elementwise primitive at ±max finite, ±1e30, ±1e4, ±30, ±1, ±1e-3, ±tiny, subnormals,
±0, ±inf, NaN (tests/oracles.py's hard points).

For each op the exact value and derivative come from its oracle record (tests/oracles.py: its
mathematics in mpmath, 60 digits; unbounded exponents, so e^{1e30} is a number there), and the test
asserts, in float32 and float64:

* where the exact result is representable (|exact| ≤ the largest finite number), fnnet's value and
  derivative are finite and within 64 ε (relative) of it, or within ``tiny`` (the smallest normal) where
  the exact result lies below the normal range (it may flush to zero). 64 ε is test_primitives.py's
  bound for a chain of ≤ ~30 few-ULP operations; it is not an accuracy target here (test_accuracy.py
  holds that, to 4/8 ULP): it tells a saturated tail or an overflow from a right answer;
* where the exact result overflows, fnnet returns ±inf with its sign (selu(max) = λ·max,
  exp(1e30), log'(subnormal) = 1/x);
* NaN in gives NaN out, value and derivative;
* ±inf give the mathematical limits (the oracle at ±inf, tests/oracles.py: sigmoid(−inf) = 0,
  softplus(inf) = inf with derivative 1, selu(−inf) = −λα, ...): exactly where the limit is 0, an
  integer or ±inf, within two roundings (2ε) where it is an irrational constant (−λα, λ).

The derivative is compared except at the op's declared kinks (test_primitives.py checks the convention
there). Ops with a restricted support (log, log1mexp: x > 0) are tested inside it. 1e30 is finite in
float32 too (the float32 number nearest it is taken, and its exact value is the oracle's input).

The softmax family (softmax, log_softmax, logsumexp, softmin) is tested with ±1e30, ±max and ±inf
logits against the limits its docstrings state.

One jitted program per dtype evaluates every op (CPU: compiling ~100 small programs costs more than
the checks); tests/test_primitives.py's hard-point test reads the same results.
"""
from __future__ import annotations

import inspect
import math

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest

import fnnet
import oracles
from fnnet.primitive import registry

DTYPES = [jnp.float32, jnp.float64]
REL_TOL_EPS = 64
DPS = 60
INF = math.inf
CASES = oracles.params(lambda p: p.elementwise)


def _exact(prim, static):
    """(f, f′) of the op's oracle record (tests/oracles.py) at ``static``; skips, naming the record to
    add, where there is none (test_every_activation_has_an_oracle_record fails for it)."""
    try:
        return oracles.exact(prim, static, 0), oracles.exact(prim, static, 1)
    except LookupError as err:
        pytest.skip(str(err))


def test_selu_constants_are_the_oracles():
    """The module's λ and α are the published constants the oracle uses (30 digits)."""
    prim = registry()["selu"]
    module = vars(inspect.getmodule(prim.forward))
    assert (module["SELU_SCALE"], module["SELU_ALPHA"]) == (float(oracles.LAM), float(oracles.ALPHA))


@pytest.mark.parametrize("alpha,traced", [(1.0, False), (0.5, False), (2.0, False), (3.0, False), (2.0, True),
                                           (1.0, True)])
def test_elu_left_tail_derivative_for_every_alpha(alpha, traced):
    """elu'(x) = αe^x in float32's left tail. α ≤ 1 known at trace time: αe^x plainly, exact while αe^x
    is normal (where e^x is subnormal, αe^x ≤ e^x is too: nothing to keep). 1 < α ≤ 2 known: the
    shifted form e^{x + s}·(αe^{−s}); α > 2 or traced: the scaled form; both exact also where e^x is
    already subnormal but αe^x is not (α = 2: x in (−88.0, −87.3]). Points −20, −80, −87.6 (e^x
    subnormal); bound 8 ULP (the accuracy target), or below ``tiny`` where the exact value is (it may
    flush to zero). Under jit: compiled XLA:CPU code flushes subnormal results to zero (what the shift
    and the scaling guard against), while an eager call may not."""
    x = jnp.array([-20.0, -80.0, -87.6], jnp.float32)
    if traced:
        grad = jax.jit(jax.grad(lambda x, a: jnp.sum(fnnet.elu(x, a))))(x, jnp.float32(alpha))
    else:
        grad = jax.jit(jax.grad(lambda x: jnp.sum(fnnet.elu(x, alpha))))(x)
    tiny, eps = float(jnp.finfo(jnp.float32).tiny), float(jnp.finfo(jnp.float32).eps)
    for xi, gi in zip(np.asarray(x), np.asarray(grad)):
        exact = float(mpmath.mpf(alpha) * mpmath.exp(mpmath.mpf(float(xi))))
        if exact < tiny:
            assert 0 <= gi < tiny, (xi, gi, exact)
        else:
            assert abs(float(gi) - exact) <= 8 * eps * exact, (alpha, traced, xi, gi, exact)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_mish_gradient_beside_its_value_forms_its_exponential_once(dtype):
    """mish's derivative forms e^{−|x|} from the forward's own max(x, −1e4), so the compiled
    jit(value_and_grad) has one exponential, not two (the derivative's own clip of x on both sides
    gave the same values but a second exponential, and a larger gradient loop). Past 1e4 the bounded
    x·e² term keeps mish′ at its limit 1, ±inf included, and a NaN stays NaN."""
    x = jnp.linspace(-5.0, 5.0, 64, dtype=dtype).reshape(8, 8)
    grad = jax.jit(jax.value_and_grad(lambda x, w: jnp.sum(fnnet.mish(x) * w)))
    hlo = grad.lower(x, jnp.ones_like(x)).compile().as_text()
    assert hlo.count(" exponential(") == 1, hlo
    points = jnp.asarray([1e4, 2e4, 1e30, jnp.inf, -2e4, -jnp.inf, jnp.nan], dtype)
    got = np.asarray(jax.vmap(jax.grad(fnnet.mish))(points))
    np.testing.assert_array_equal(got, [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, np.nan])


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
    this (docs/reference/accuracy.md, "Extremes") instead of bit-twiddling every op. Subnormal *results* of
    normal inputs are covered by the ``tiny`` rule of _expect.
    """
    x, y, d, _ = oracles.elementwise_results(dtype)[oracles.case_id(prim, static)]
    exact_f, exact_df = _exact(prim, static)
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
        with mpmath.workdps(DPS):
            exact_y, exact_d = exact_f(mpmath.mpf(xf)), exact_df(mpmath.mpf(xf))
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
    x, y, d, _ = oracles.elementwise_results(dtype)[oracles.case_id(prim, static)]
    eps = float(jnp.finfo(dtype).eps)
    assert np.isnan(y[-1]), f"{prim.name}(NaN) = {y[-1]}"
    if prim.name in oracles.LINEAR:
        assert d[-1] == oracles.LINEAR[prim.name], f"{prim.name}'(NaN) = {d[-1]}: a linear map's is constant"
    else:
        assert np.isnan(d[-1]), f"{prim.name}'(NaN) = {d[-1]}"
    _exact(prim, static)
    f_lo, d_lo, f_hi, d_hi = oracles.limits(prim, static)
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
    # logmeanexp = logsumexp − log n: the same limits, shifted by a constant
    lme = value(lse) - math.log(x.size)
    expected = {"softmax": sm, "log_softmax": lsm, "logsumexp": lse, "logmeanexp": lme, "softmin": smin}
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


# the smooth activations' module by its name's end: fnnet.activations.smooth or a private _smooth
SMOOTH_CASES = [c for c in CASES if c.values[0].df is not None
                and getattr(c.values[0].df, "__module__", "").rpartition(".")[2].lstrip("_") == "smooth"]


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
        assert np.isnan(d[0]) != (prims[k].name in oracles.LINEAR), f"{k}: f'(NaN) = {d[0]}"
        lo, hi = prims[k].support  # ±inf and 0 where they are in the (closed) support and not singular
        inside = [(lo <= v <= hi) and v not in prims[k].singular and v != lo for v in (-np.inf, np.inf, 0.0)]
        assert np.isfinite(d[1:][inside]).all(), f"{k}: f'(−inf, inf, 0) = {d[1:]}"
