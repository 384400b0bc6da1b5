"""softmax, log_softmax, logsumexp, softmin (and glu, which shares these fixtures): what the generic registry tests
(tests/test_primitives.py) do not cover: jax.nn's values and gradients, the masked (``where``) and
weighted (``b``) paths, keepdims/return_sign, infinities, and the error messages.

Tolerances. fnnet computes these with the same expressions as jax.nn (exp(x − m)/Σ, (x − m) − log Σ,
m + log Σ), so values differ only by the order XLA sums in: a sum of n ≤ 12 positive terms carries
≤ n·ε relative error, hence ``rtol = 16·ε``. Gradients are a few more roundings (one product and one
sum per entry): ``32·ε``, normwise (an entry near 0 is judged at its array's scale).
"""
from __future__ import annotations

import math

import jax
import jax.extend as jex
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest

import fnnet
from fnnet.check import fd

F64_EPS = float(jnp.finfo(jnp.float64).eps)
VALUE_RTOL = 16 * F64_EPS
GRAD_RTOL = 32 * F64_EPS


def _close(actual, expected, rtol, what=""):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    fin = np.isfinite(expected)
    assert np.array_equal(np.isfinite(actual), fin), f"{what}: non-finite pattern differs\n{actual}\n{expected}"
    assert np.array_equal(actual[~fin], expected[~fin], equal_nan=True), f"{what}: infinities differ"
    scale = max(float(np.max(np.abs(expected[fin]), initial=0.0)), 1e-300)
    err = float(np.max(np.abs(actual[fin] - expected[fin]), initial=0.0)) / scale
    assert err <= rtol, f"{what}: normwise error {err:.3e} > {rtol:.3e}"


# Test data from NumPy's generator (jax.random would compile a program per shape).
@pytest.fixture
def x():
    return jnp.asarray(3.0 * np.random.default_rng(1).standard_normal((4, 6)))


@pytest.fixture
def g():
    return jnp.asarray(np.random.default_rng(2).standard_normal((4, 6)))


AXES = [-1, 0, (0, 1), None]


# ------------------------------------------------------------------------------------------------
# Values and gradients against jax.nn
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_family_matches_jax_nn(name, axis, x, g):
    ours, theirs = getattr(fnnet, name), getattr(jax.nn, name)
    _close(ours(x, axis=axis), theirs(x, axis=axis), VALUE_RTOL, f"{name} value")

    @jax.jit  # both libraries' VJP and JVP in one compiled program
    def derivatives(x, g, t):
        return [(jax.grad(lambda x: jnp.vdot(g, fn(x, axis=axis)))(x),
                 jax.jvp(lambda x: fn(x, axis=axis), (x,), (t,))[1]) for fn in (ours, theirs)]

    (gr, jt), (gr_ref, jt_ref) = derivatives(x, g, jnp.flip(g, 0))
    _close(gr, gr_ref, GRAD_RTOL, f"{name} VJP")
    _close(jt, jt_ref, GRAD_RTOL, f"{name} JVP")


@pytest.mark.parametrize(
    "axis,keepdims", [(-1, False), (0, True), ((0, 1), False), (None, False), (None, True)], ids=str
)
def test_logsumexp_matches_jax_nn(axis, keepdims, x):
    out = fnnet.logsumexp(x, axis=axis, keepdims=keepdims)
    _close(out, jax.nn.logsumexp(x, axis=axis, keepdims=keepdims), VALUE_RTOL, "logsumexp value")
    gr, gr_ref = jax.jit(lambda x: [  # both gradients in one compiled program
        jax.grad(lambda x: jnp.sum(jnp.sin(lse(x, axis=axis, keepdims=keepdims))))(x)
        for lse in (fnnet.logsumexp, jax.nn.logsumexp)
    ])(x)
    _close(gr, gr_ref, GRAD_RTOL, "logsumexp VJP")


@pytest.mark.parametrize(
    "axis,keepdims", [(-1, False), (0, True), ((0, 1), False), (None, False), (None, True)], ids=str
)
def test_logmeanexp_matches_jax_nn(axis, keepdims, x):
    out = fnnet.logmeanexp(x, axis=axis, keepdims=keepdims)
    _close(out, jax.nn.logmeanexp(x, axis=axis, keepdims=keepdims), VALUE_RTOL, "logmeanexp value")
    _close(out, fnnet.logsumexp(x, axis=axis, keepdims=keepdims) - np.log(x.size / out.size), VALUE_RTOL,
           "logmeanexp = logsumexp − log n")
    gr, gr_ref = jax.jit(lambda x: [
        jax.grad(lambda x: jnp.sum(jnp.sin(lme(x, axis=axis, keepdims=keepdims))))(x)
        for lme in (fnnet.logmeanexp, jax.nn.logmeanexp)
    ])(x)
    _close(gr, gr_ref, GRAD_RTOL, "logmeanexp VJP")


def test_masked_logmeanexp_matches_jax_nn(x, mask):
    """n counts the included entries; a fully masked slice (row 2) is NaN, the mean of no entries, as
    jax.nn's, with zero gradient; forward mode agrees with jax.nn's on the other rows."""
    out = fnnet.logmeanexp(x, axis=1, where=mask)
    ref = jax.nn.logmeanexp(x, axis=1, where=mask)
    _close(out, ref, VALUE_RTOL, "masked logmeanexp")
    assert jnp.isnan(out[2]) and jnp.isnan(ref[2])
    rows = jnp.arange(x.shape[0]) != 2
    gr = jax.grad(lambda x: jnp.sum(jnp.where(rows, fnnet.logmeanexp(x, axis=1, where=mask), 0.0)))(x)
    gr_ref = jax.grad(lambda x: jnp.sum(jnp.where(rows, jax.nn.logmeanexp(x, axis=1, where=mask), 0.0)))(x)
    _close(gr, gr_ref, GRAD_RTOL, "masked logmeanexp VJP")
    assert jnp.all(jax.grad(lambda x: fnnet.logmeanexp(x, axis=1, where=mask)[2])(x) == 0)
    _, jt = jax.jvp(lambda x: fnnet.logmeanexp(x, axis=1, where=mask), (x,), (jnp.flip(x, 1),))
    _, jt_ref = jax.jvp(lambda x: jax.nn.logmeanexp(x, axis=1, where=mask), (x,), (jnp.flip(x, 1),))
    _close(jt[rows], jt_ref[rows], GRAD_RTOL, "masked logmeanexp JVP")


def test_glu_matches_jax_nn(x, g):
    for axis in (-1, 0):
        gg = g[:, :3] if axis == -1 else g[:2]
        _close(fnnet.glu(x, axis), jax.nn.glu(x, axis), VALUE_RTOL, "glu value")
        gr = jax.grad(lambda x: jnp.vdot(gg, fnnet.glu(x, axis)))(x)
        _close(gr, jax.grad(lambda x: jnp.vdot(gg, jax.nn.glu(x, axis)))(x), GRAD_RTOL, "glu VJP")


def test_softmin_is_torch_formula(x, g):
    """torch: softmin(x, dim) = softmax(−x, dim)."""
    for dim in (0, 1, -1):
        _close(fnnet.softmin(x, dim=dim), jax.nn.softmax(-x, axis=dim), VALUE_RTOL, "softmin")
        gr = jax.grad(lambda x: jnp.vdot(g, fnnet.softmin(x, dim=dim)))(x)
        _close(gr, jax.grad(lambda x: jnp.vdot(g, jax.nn.softmax(-x, axis=dim)))(x), GRAD_RTOL, "softmin VJP")
    # dim=None: torch's implicit choice for 1-D and 2-D inputs is the last axis; ours is the same.
    _close(fnnet.softmin(x), jax.nn.softmax(-x, axis=1), VALUE_RTOL, "softmin dim=None 2-D")
    _close(fnnet.softmin(x[0]), jax.nn.softmax(-x[0]), VALUE_RTOL, "softmin dim=None 1-D")


def test_softmin_dim_none_refused_where_torch_differs():
    with pytest.raises(ValueError, match=r"dim=None is ambiguous.*ndim 3.*pass dim"):
        fnnet.softmin(jnp.zeros((2, 3, 4)))
    assert fnnet.softmin(jnp.zeros((2, 3, 4)), dim=0).shape == (2, 3, 4)


# ------------------------------------------------------------------------------------------------
# Masks (where)
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def mask():
    m = jnp.asarray(np.random.default_rng(3).random((4, 6)) < 0.6)
    return m.at[:, 0].set(True).at[2].set(False)  # row 2 fully masked


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_masked_softmax_family_matches_jax_nn(name, x, g, mask):
    ours, theirs = getattr(fnnet, name), getattr(jax.nn, name)
    _close(ours(x, where=mask), theirs(x, where=mask), VALUE_RTOL, f"{name} masked value")
    gr = jax.grad(lambda x: jnp.vdot(g, jnp.where(mask, ours(x, where=mask), 0.0)))(x)
    gr_ref = jax.grad(lambda x: jnp.vdot(g, jnp.where(mask, theirs(x, where=mask), 0.0)))(x)
    _close(gr, gr_ref, GRAD_RTOL, f"{name} masked VJP")
    assert jnp.all(jnp.where(mask, True, gr == 0)), "a masked entry has a nonzero gradient"
    # A cotangent at a masked output is dropped (that output is the constant 0 or −inf), as in jax.nn.
    (gr_all,) = jax.vjp(lambda x: ours(x, where=mask), x)[1](g)
    _close(gr_all, gr_ref, GRAD_RTOL, f"{name} masked VJP ignores masked cotangents")
    t = jnp.flip(g, 1)
    _, jt = jax.jvp(lambda x: ours(x, where=mask), (x,), (t,))
    _, jt_ref = jax.jvp(lambda x: theirs(x, where=mask), (x,), (t,))
    _close(jnp.where(mask, jt, 0.0), jnp.where(mask, jt_ref, 0.0), GRAD_RTOL, f"{name} masked JVP")


def test_masked_logsumexp_matches_jax_nn(x, mask):
    out = fnnet.logsumexp(x, axis=1, where=mask)
    _close(out, jax.nn.logsumexp(x, axis=1, where=mask), VALUE_RTOL, "masked logsumexp")
    assert out[2] == -jnp.inf
    gr = jax.grad(lambda x: jnp.sum(jnp.where(jnp.isinf(o := fnnet.logsumexp(x, axis=1, where=mask)), 0.0, o)))(x)
    gr_ref = jax.grad(lambda x: jnp.sum(jnp.where(jnp.isinf(o := jax.nn.logsumexp(x, axis=1, where=mask)), 0.0, o)))(x)
    _close(gr, gr_ref, GRAD_RTOL, "masked logsumexp VJP")
    assert jnp.all(gr[2] == 0)


def test_fully_masked_slice_is_jax_nn_convention():
    x = jnp.array([1.0, 2.0, 3.0])
    none = jnp.zeros(3, bool)
    assert jnp.all(fnnet.softmax(x, where=none) == 0)
    assert jnp.all(fnnet.log_softmax(x, where=none) == -jnp.inf)
    assert fnnet.logsumexp(x, where=none) == -jnp.inf
    for f in (fnnet.softmax, lambda x, where: jnp.where(where, fnnet.log_softmax(x, where=where), 0.0)):
        assert jnp.all(jax.grad(lambda x: jnp.sum(f(x, where=none)))(x) == 0)


def test_masked_entries_may_hold_nan_or_inf():
    """jax.nn's values ignore whatever a masked entry holds; so do fnnet's values and gradients."""
    x = jnp.array([1.0, jnp.nan, jnp.inf, 2.0])
    m = jnp.array([True, False, False, True])
    expected = jax.nn.softmax(jnp.array([1.0, 2.0]))
    y = fnnet.softmax(x, where=m)
    _close(y[jnp.array([0, 3])], expected, VALUE_RTOL, "masked NaN/inf")
    gr = jax.grad(lambda x: fnnet.softmax(x, where=m)[0])(x)
    assert jnp.all(jnp.isfinite(gr)) and gr[1] == 0 and gr[2] == 0


def test_mask_broadcasts_and_is_validated(x):
    row = jnp.array([True, True, False, True, True, True])
    _close(fnnet.softmax(x, where=row), jax.nn.softmax(x, where=row), VALUE_RTOL, "broadcast mask")
    with pytest.raises(ValueError, match=r"'where' of shape \(5,\).*input's shape \(4, 6\)"):
        fnnet.softmax(x, where=jnp.ones(5, bool))
    with pytest.raises(TypeError, match=r"'where' must be a boolean mask; got dtype float64"):
        fnnet.log_softmax(x, where=jnp.ones((4, 6)))


# ------------------------------------------------------------------------------------------------
# logsumexp: b, return_sign
# ------------------------------------------------------------------------------------------------


def test_logsumexp_b_matches_jax_nn(x):
    b = jnp.asarray(np.random.default_rng(4).uniform(0.1, 2.0, x.shape))
    _close(fnnet.logsumexp(x, axis=1, b=b), jax.nn.logsumexp(x, axis=1, b=b), VALUE_RTOL, "b value")
    f = lambda a, b, lse: jnp.sum(jnp.cos(lse(a, axis=1, b=b)))  # noqa: E731
    ga, gb = jax.grad(f, (0, 1))(x, b, fnnet.logsumexp)
    ga_ref, gb_ref = jax.grad(f, (0, 1))(x, b, jax.nn.logsumexp)
    _close(ga, ga_ref, GRAD_RTOL, "b: d/da")
    _close(gb, gb_ref, GRAD_RTOL, "b: d/db")


def test_logsumexp_grad_wrt_zero_weight_is_exact():
    """∂/∂b_i log Σ b e^a = e^{a_i}/S also at b_i = 0 (jax.nn returns 0 there)."""
    a = jnp.array([1.0, 2.0, 3.0])
    b = jnp.array([1.0, 0.0, 0.5])
    s = np.exp(1.0) + 0.5 * np.exp(3.0)
    gb = jax.grad(lambda b: fnnet.logsumexp(a, b=b))(b)
    _close(gb, np.exp([1.0, 2.0, 3.0]) / s, GRAD_RTOL, "d/db at b = 0")
    # and it is the central difference of the value there
    (by_fd,) = fd.jvp(lambda b: fnnet.logsumexp(a, b=b), (b,), (jnp.array([0.0, 1.0, 0.0]),), h=1e-6)
    # Richardson-extrapolated with h/2: truncation below h²·|f'''| ≈ 1e-12, round-off 3ε/h ≈ 3e-10
    assert abs(float(by_fd.value) - float(gb[1])) < 1e-8


def test_logsumexp_return_sign_and_negative_sums():
    a = jnp.array([1.0, 2.0, 3.0])
    b = jnp.array([1.0, -2.0, 1.0])  # Σ b e^a = e − 2e² + e³ > 0
    out, sign = fnnet.logsumexp(a, b=b, return_sign=True)
    out_ref, sign_ref = jax.nn.logsumexp(a, b=b, return_sign=True)
    _close(out, out_ref, VALUE_RTOL, "return_sign value")
    assert sign == sign_ref == 1.0
    b2 = jnp.array([1.0, -2.0, 0.1])  # Σ b e^a = e − 2e² + 0.1e³ < 0
    out2, sign2 = fnnet.logsumexp(a, b=b2, return_sign=True)
    assert sign2 == -1.0 and jnp.isfinite(out2)
    assert jnp.isnan(fnnet.logsumexp(a, b=b2)), "a negative sum without return_sign is NaN (jax.nn)"
    # d log|S| / da_i = b_i e^{a_i} / S, whatever the sign of S; the sign's cotangent is ignored.
    s = float(jnp.sum(b2 * jnp.exp(a)))
    ga = jax.grad(lambda a: fnnet.logsumexp(a, b=b2, return_sign=True)[0])(a)
    _close(ga, b2 * jnp.exp(a) / s, GRAD_RTOL, "return_sign d/da")
    gsum = jax.grad(lambda a: sum(fnnet.logsumexp(a, b=b2, return_sign=True)))(a)
    _close(gsum, ga, 0.0, "sign contributes no gradient")


def test_logsumexp_b_broadcasting(x):
    b_row = jnp.linspace(0.5, 1.5, 6)[None, :]
    out = fnnet.logsumexp(x, axis=1, b=b_row)
    _close(out, jax.nn.logsumexp(x, axis=1, b=b_row), VALUE_RTOL, "b (1, 6)")
    gb = jax.grad(lambda b: jnp.sum(fnnet.logsumexp(x, axis=1, b=b)))(b_row)
    gb_ref = jax.grad(lambda b: jnp.sum(jax.nn.logsumexp(x, axis=1, b=b)))(b_row)
    assert gb.shape == b_row.shape
    _close(gb, gb_ref, GRAD_RTOL, "b cotangent summed over the broadcast axis")
    # b larger than a: a is broadcast (its cotangent summed back)
    a_row = x[:1]
    b_big = jnp.ones((4, 6)) * jnp.arange(1.0, 5.0)[:, None]
    ga = jax.grad(lambda a: jnp.sum(fnnet.logsumexp(a, axis=1, b=b_big)))(a_row)
    ga_ref = jax.grad(lambda a: jnp.sum(jax.nn.logsumexp(a, axis=1, b=b_big)))(a_row)
    _close(ga, ga_ref, GRAD_RTOL, "a broadcast to b")
    with pytest.raises(ValueError, match=r"'b' of shape \(5,\) does not broadcast with 'a' of shape \(4, 6\)"):
        fnnet.logsumexp(x, b=jnp.ones(5))
    with pytest.raises(TypeError, match=r"'a' dtype float64 and 'b' dtype float32 have no implicit promotion"):
        fnnet.logsumexp(x, b=jnp.ones(6, jnp.float32))
    _close(fnnet.logsumexp(x, b=2.0), jax.nn.logsumexp(x) + np.log(2.0), VALUE_RTOL, "scalar b")


@pytest.mark.parametrize("return_sign", [False, True])
@pytest.mark.parametrize("use_where", [False, True])
def test_logsumexp_general_vjp_equals_jvp(x, mask, use_where, return_sign):
    """⟨g, J u⟩ through the hand JVP equals ⟨Jᵀ g, u⟩ through the hand VJP, for a, b together."""
    b = jnp.asarray(np.random.default_rng(5).uniform(0.1, 2.0, x.shape))
    kw = dict(axis=1, where=mask.at[2, 1].set(True) if use_where else None, return_sign=return_sign)
    first = (lambda o: o[0]) if return_sign else (lambda o: o)  # noqa: E731
    f = lambda a, b: first(fnnet.logsumexp(a, b=b, **kw))  # noqa: E731
    f_fwd = lambda a, b: first(fnnet.logsumexp(a, b=b, **kw))  # noqa: E731
    u = (jnp.cos(x), jnp.sin(b))
    out, jvp_out = jax.jvp(f_fwd, (x, b), u)
    gg = jnp.arange(1.0, 5.0)
    _, vjp = jax.vjp(f, x, b)
    cts = vjp(gg)
    lhs = jnp.vdot(gg, jvp_out)
    rhs = sum(jnp.vdot(c, t) for c, t in zip(cts, u))
    # Both sides sum the same 2·24 products in different orders (and the rules round differently,
    # a few ε per entry): |lhs − rhs| ≤ (2·48 + 16)·ε·Σ|products|.
    terms = sum(float(jnp.sum(jnp.abs(c * t))) for c, t in zip(cts, u))
    assert abs(float(lhs - rhs)) <= 112 * F64_EPS * terms


# ------------------------------------------------------------------------------------------------
# Large, infinite and NaN inputs
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("big", [1e4, 1e30, "max"])
def test_large_logits_finite(big, dtype):
    big = float(jnp.finfo(dtype).max) if big == "max" else big
    if big > float(jnp.finfo(dtype).max):
        pytest.skip("not representable")
    x = jnp.asarray([[big, 0.0, -big], [-big, -big, 0.0]], dtype)
    g = jnp.asarray([[1.0, -2.0, 0.5], [0.3, 0.2, -1.0]], dtype)
    y = fnnet.softmax(x)
    np.testing.assert_array_equal(y, jnp.asarray([[1, 0, 0], [0, 0, 1]], dtype))
    # log Σ e^{x − m} = log 1 = 0 exactly here, so log_softmax is x − m, rounded in the dtype (−2·max
    # overflows to −inf, as the exact value does).
    xn = np.asarray(x)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(fnnet.log_softmax(x), xn - xn.max(-1, keepdims=True))
    lse = fnnet.logsumexp(x, axis=-1)
    np.testing.assert_array_equal(lse, jnp.asarray([big, 0.0], dtype))
    for f in (fnnet.softmax, fnnet.log_softmax, lambda x: fnnet.logsumexp(x, axis=-1, keepdims=True)):
        gr = jax.grad(lambda x: jnp.sum(g[:, :1] * f(x) if f(x).shape[-1] == 1 else g * f(x)))(x)
        assert jnp.all(jnp.isfinite(gr)), gr
    # log_softmax's gradient at a saturated softmax is g − onehot·Σg, exactly
    gr = jax.grad(lambda x: jnp.sum(g * fnnet.log_softmax(x)))(x)
    expected = g - jnp.asarray([[1, 0, 0], [0, 0, 1]], dtype) * jnp.sum(g, -1, keepdims=True)
    np.testing.assert_array_equal(gr, expected)


def test_neg_inf_logits_match_jax_nn(g):
    x = jnp.array([[1.0, -jnp.inf, 2.0], [-jnp.inf, 0.5, -jnp.inf]])
    g = g[:2, :3]
    for name in ("softmax", "log_softmax"):
        ours, theirs = getattr(fnnet, name), getattr(jax.nn, name)
        _close(ours(x), theirs(x), VALUE_RTOL, name)
        # log_softmax is −inf at a −inf logit (a constant): read only the finite outputs.
        finite = jnp.isfinite(theirs(x))

        def loss(f, x):
            return jnp.vdot(g, jnp.where(finite, f(x), 0.0))

        gr = jax.grad(lambda x: loss(ours, x))(x)
        assert jnp.all(jnp.isfinite(gr))
        _close(gr, jax.grad(lambda x: loss(theirs, x))(x), GRAD_RTOL, f"{name} VJP with -inf")
    _close(fnnet.logsumexp(x, axis=1), jax.nn.logsumexp(x, axis=1), VALUE_RTOL, "logsumexp -inf")
    _close(jax.grad(lambda x: jnp.sum(fnnet.logsumexp(x, axis=1)))(x),
           jax.grad(lambda x: jnp.sum(jax.nn.logsumexp(x, axis=1)))(x), GRAD_RTOL, "logsumexp grad -inf")


def test_infinite_maximum_ties_share_the_mass():
    """Where jax.nn gives NaN (x − max = inf − inf), fnnet gives the limit of the tied entries."""
    inf = jnp.inf
    np.testing.assert_array_equal(fnnet.softmax(jnp.array([1.0, inf, 3.0])), [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(fnnet.softmax(jnp.array([inf, 1.0, inf])), [0.5, 0.0, 0.5])
    np.testing.assert_array_equal(fnnet.softmax(jnp.array([-inf, -inf])), [0.5, 0.5])
    np.testing.assert_array_equal(fnnet.log_softmax(jnp.array([1.0, inf])), [-inf, 0.0])
    assert fnnet.logsumexp(jnp.array([1.0, inf])) == inf
    assert fnnet.logsumexp(jnp.array([-inf, -inf])) == -inf
    np.testing.assert_array_equal(jax.grad(fnnet.logsumexp)(jnp.array([1.0, inf])), [0.0, 1.0])
    gr = jax.grad(lambda x: fnnet.softmax(x)[0])(jnp.array([-inf, -inf]))
    np.testing.assert_array_equal(gr, [0.25, -0.25])  # y(δ − y) with y uniform: the limit of softmax'(c·1)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_shift_formed_apart_is_the_same_bits(dtype):
    """log_softmax's rule forms x − m a second time with other operations (so that XLA does not merge
    the two): the same bits as the kernel's, at ties at ±inf, all −inf, NaN, signed zeros, the
    largest finite values, over each axis, masked or not; and the rule's output is the forward's."""
    from fnnet._numerics import shifted, shifted_apart

    inf, nan, big = jnp.inf, jnp.nan, float(jnp.finfo(dtype).max)
    x = jnp.array([[1.0, inf, 3.0, 0.0], [inf, inf, -inf, 2.0], [-inf, -inf, -inf, -inf],
                   [nan, 1.0, 2.0, 3.0], [-inf, 0.0, -0.0, 1.0], [big, inf, -big, 0.0],
                   [-0.0, 0.0, -0.0, 0.0], [2.5, -1e30, 7.0, 7.0]], dtype)
    mask = jnp.arange(32).reshape(8, 4) % 3 != 1
    for axes in [(1,), (0,), (0, 1)]:
        for m in (None, mask):
            mx, d, _ = shifted(x, axes, m)
            np.testing.assert_array_equal(np.asarray(shifted_apart(x, mx, axes)).view(np.uint8),
                                          np.asarray(d).view(np.uint8))
    for where in (None, mask):
        y = fnnet.log_softmax(x, where=where)
        y_rule, _ = jax.vjp(lambda v: fnnet.log_softmax(v, where=where), x)
        np.testing.assert_array_equal(np.asarray(y_rule), np.asarray(y))


def test_rules_form_the_shift_apart_only_where_it_pays():
    """log_softmax's rule and softmax_cross_entropy's form x − m apart (the same bits, above) on
    XLA:CPU from 2¹⁴ entries on and over slices longer than ARITH_MAX_SLICE; below either the second
    loop costs more than it saves."""
    from fnnet._numerics import APART_MIN_SIZE, ARITH_MAX_SLICE, apart_pays

    on_cpu = jax.default_backend() == "cpu"
    assert APART_MIN_SIZE == 1 << 14 and ARITH_MAX_SLICE == 40
    assert not apart_pays(jnp.zeros((256, 10)), (1,))
    assert not apart_pays(jax.ShapeDtypeStruct((APART_MIN_SIZE - 1,), jnp.float32), (0,))
    assert apart_pays(jax.ShapeDtypeStruct((APART_MIN_SIZE,), jnp.float32), (0,)) == on_cpu
    assert apart_pays(jnp.zeros((1024, 1024)), (1,)) == on_cpu
    assert not apart_pays(jax.ShapeDtypeStruct((16384, 40), jnp.float32), (1,))
    assert apart_pays(jax.ShapeDtypeStruct((16384, 41), jnp.float32), (1,)) == on_cpu
    assert apart_pays(jax.ShapeDtypeStruct((1024, 8, 8), jnp.float32), (1, 2)) == on_cpu


@pytest.mark.slow  # 12-14 s cold on 2 cores, the suite's longest: `make test-slow` runs it
def test_target_backend_chooses_the_forms_not_the_values(monkeypatch, with_gates):
    """``fnnet._numerics.TARGET_BACKEND`` (None: jax.default_backend()) is the platform the rules are
    traced for: "gpu" turns off every XLA:CPU form (the arithmetic shift, the shift formed apart, the
    branches, gelu's apart clip), and the results stay those of the CPU forms: jit of the softmax
    family, the integer-label loss and gelu and of their gradients over 4096 slices of 10 and
    1024 × 1024, with ties at +inf, an all −inf slice and a NaN planted, and logsumexp over every axis
    without them (with DIFFERENCE_MIN_SLICE set to 2¹⁶, in the difference form off the CPU); NaN
    exactly where the CPU forms give NaN. Bounds, u the unit roundoff and n the slice's length: the
    two forms exponentiate the same shifted values and may sum them in another order, 2(n − 1)u apart
    at most (each order
    within (n − 1)u of the exact sum); a quotient e/s then differs by that plus its own rounding in
    each, 2nu relative; a logarithm of the sum (log_softmax, logsumexp, the loss) turns the sum's
    relative difference into an absolute one and adds its roundings relative to the result:
    2nu + 2u|y|. Each gradient entry comes out of a slice's cancelling g − ⟨g, y⟩: held to the same
    bound times the largest gradient entry."""
    import fnnet._numerics as numerics
    from fnnet.activations._smooth import _dgelu_clip

    if jax.default_backend() != "cpu":
        pytest.skip("compares the XLA:CPU forms against the accelerators'")
    short, long = jnp.zeros((4096, 10)), jnp.zeros((1024, 1024))
    gates = lambda: (numerics.backend(), numerics.arith_pays(short, (1,)), numerics.apart_pays(long, (1,)),
                     numerics.branch_pays(short, (1,), None), numerics.log_branch_pays(long, None),
                     numerics.one_kernel_pays(short, (1,), None), _dgelu_clip(True),
                     [numerics.shift_form(long, axes) for axes in ((1,), (0, 1))])
    assert gates() == ("cpu", True, True, True, True, True, 40.5, ["select", "select"])
    monkeypatch.setattr(numerics, "TARGET_BACKEND", "gpu")
    assert gates() == ("gpu", False, False, False, False, False, 40.0, ["select", "select"])
    monkeypatch.setattr(numerics, "DIFFERENCE_MIN_SLICE", 1 << 16)  # the difference where it is set
    assert gates()[-1] == ["select", "difference"]
    monkeypatch.setattr(numerics, "TARGET_BACKEND", None)

    labels = lambda x: jnp.arange(x.shape[0]) % 7
    ops = {"softmax": fnnet.softmax, "log_softmax": fnnet.log_softmax, "softmin": fnnet.softmin,
           "logsumexp": lambda x: fnnet.logsumexp(x, axis=-1), "gelu": fnnet.gelu,
           "logsumexp over every axis": lambda x: fnnet.logsumexp(x, keepdims=True),
           "sce_int": lambda x: fnnet.losses.softmax_cross_entropy_with_integer_labels(x, labels(x))}
    logs = ("log_softmax", "logsumexp", "sce_int", "logsumexp over every axis")  # a log of the sum
    u = float(jnp.finfo(jnp.float32).eps) / 2
    cases = []
    for shape in ((4096, 10), (1024, 1024)):
        plain = jax.random.normal(jax.random.key(3), shape, jnp.float32) * 4
        special = plain.at[0, :2].set(jnp.inf).at[1].set(-jnp.inf).at[2, 3].set(jnp.nan)
        for name, f in ops.items():
            whole = name == "logsumexp over every axis"  # one slice: a special value would be all of it
            x, tol = (plain, 2 * plain.size * u) if whole else (special, 2 * shape[1] * u)
            w = jax.random.normal(jax.random.key(4), jax.eval_shape(f, x).shape, jnp.float32)
            cases.append((name, shape, f, x, w, tol))

    def both(x, f, w):
        loss = lambda x: jnp.sum(jnp.where(jnp.isfinite(f(x)), f(x) * w, 0.0))
        return [np.asarray(v, np.float64) for v in (jax.jit(f)(x), jax.jit(jax.grad(loss))(x))]

    # every case under one setting, then under the other (the traces are cleared between settings)
    cpu_runs = [with_gates(both, x, f, w, TARGET_BACKEND=None) for _, _, f, x, w, _ in cases]
    gpu_runs = [with_gates(both, x, f, w, TARGET_BACKEND="gpu", DIFFERENCE_MIN_SLICE=1 << 16)
                for _, _, f, x, w, _ in cases]
    for (name, shape, _, _, _, tol), (y_cpu, g_cpu), (y_gpu, g_gpu) in zip(cases, cpu_runs, gpu_runs):
        for cpu, gpu in ((y_cpu, y_gpu), (g_cpu, g_gpu)):
            np.testing.assert_array_equal(np.isnan(cpu), np.isnan(gpu), err_msg=f"{name} {shape}")
        finite = np.isfinite(y_cpu)
        np.testing.assert_array_equal(y_gpu[~finite & ~np.isnan(y_cpu)], y_cpu[~finite & ~np.isnan(y_cpu)])
        bound = (tol + 2 * u * np.abs(y_cpu) if name in logs else tol * np.abs(y_cpu))[finite]
        assert np.all(np.abs(y_gpu[finite] - y_cpu[finite]) <= bound), (name, shape)
        scale = np.nanmax(np.abs(g_cpu))
        np.testing.assert_allclose(g_gpu, g_cpu, rtol=0, atol=tol * scale, err_msg=f"{name} {shape}")
    jax.clear_caches()


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64])
def test_arithmetic_shift_is_the_same_bits(dtype):
    """The shift written with arithmetic alone, min(a·x − b, 0)·c with per-slice coefficients, and as
    the plain difference with one select on it, give the selects' bits (the shifted value and its
    exponential) at ties at ±inf, the largest finite value beside +inf, all −inf, NaN of either sign,
    signed zeros, over each axis and both together. A NaN is NaN in all, but not always of the same
    sign: a select passes the input's NaN on, arithmetic makes its own, whose sign IEEE 754 leaves
    unspecified (§6.3; XLA:GPU's float64 NaN is positive)."""
    from fnnet._numerics import shifted

    inf, nan, big = jnp.inf, jnp.nan, float(jnp.finfo(dtype).max)
    x = jnp.array([[1.0, inf, 3.0, 0.0], [inf, inf, -inf, 2.0], [-inf, -inf, -inf, -inf],
                   [nan, 1.0, 2.0, 3.0], [-nan, 1.0, 2.0, 3.0], [-inf, 0.0, -0.0, 1.0],
                   [big, inf, -big, 0.0], [-0.0, 0.0, -0.0, 0.0], [2.5, -big, 7.0, 7.0],
                   [-big, -inf, -big, -inf], [big, big, -inf, inf]], dtype)
    for axes in [(1,), (0,), (0, 1)]:
        by_select = jax.jit(lambda v: shifted(v, axes, None, form="select"))(x)
        by_arith = jax.jit(lambda v: shifted(v, axes, None, form="arith"))(x)
        by_difference = jax.jit(lambda v: shifted(v, axes, None, form="difference"))(x)
        for a, b in [*zip(by_arith, by_select), *zip(by_difference, by_select)]:
            a, b = np.asarray(a), np.asarray(b)
            nan = np.isnan(b)
            np.testing.assert_array_equal(np.isnan(a), nan)
            np.testing.assert_array_equal(a[~nan].view(np.uint8), b[~nan].view(np.uint8))


@pytest.mark.parametrize("shape", [(64, 10), (16, 40), (8, 4, 5)])
@pytest.mark.parametrize("form", ["arith", "difference"])
def test_rules_give_the_same_bits_with_any_form_of_the_shift(monkeypatch, shape, form):
    """Values and gradients of every rule that takes the shift's form from shift_form (arithmetic over
    short slices on XLA:CPU; the difference off it where set) are the selects' bits on
    XLA:CPU, on random slices (the special values: test_arithmetic_shift_is_the_same_bits). Elsewhere the two
    programs may fuse differently and sum in another order: held to the bounds of
    test_target_backend_chooses_the_forms_not_the_values (2nu relative for a quotient, 2nu + 2u|y| for
    a logarithm of the sum, the gradients 2nu times their largest entry)."""
    import fnnet.activations._softmax as sm
    import fnnet.losses as fl
    from fnnet._numerics import arith_pays

    x = jax.random.normal(jax.random.key(1), shape) * 4
    w = jax.random.normal(jax.random.key(2), shape[:-1] + (1,))
    labels = jax.random.randint(jax.random.key(3), shape[:-1], 0, shape[-1])
    fns = {"softmax": fnnet.softmax, "logsumexp": lambda v: fnnet.logsumexp(v, axis=-1, keepdims=True),
           "sce_int": lambda v: fnnet.losses.softmax_cross_entropy_with_integer_labels(v, labels)[..., None],
           "softmin": lambda v: fnnet.softmin(v, dim=-1)}

    def run():
        jax.clear_caches()
        return {k: [np.asarray(jax.jit(f)(x)), np.asarray(jax.jit(jax.grad(lambda v: jnp.sum(f(v) * w)))(x))]
                for k, f in fns.items()}

    for mod in (sm, fl):
        monkeypatch.setattr(mod, "_shift_form", lambda x, axes, *a, **k: form)
    other = run()
    for mod in (sm, fl):
        monkeypatch.setattr(mod, "_shift_form", lambda x, axes, *a, **k: "select")
    selects = run()
    assert arith_pays(x, (x.ndim - 1,)) == (jax.default_backend() == "cpu")
    tol = 2 * shape[-1] * float(jnp.finfo(x.dtype).eps) / 2
    for name in fns:
        (y, g), (y_sel, g_sel) = other[name], selects[name]
        if jax.default_backend() == "cpu":
            for a, b in ((y, y_sel), (g, g_sel)):
                np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8), err_msg=name)
            continue
        log = name in ("logsumexp", "sce_int")
        bound = tol + tol * np.abs(y_sel) / shape[-1] if log else tol * np.abs(y_sel)
        assert np.all(np.abs(y - y_sel) <= bound), name
        assert np.max(np.abs(g - g_sel)) <= tol * np.max(np.abs(g_sel)), name


def test_shift_is_arithmetic_over_short_slices_on_the_cpu_only_and_never_masked():
    """arith_pays: XLA:CPU and slices of at most ARITH_MAX_SLICE entries, in the rules that keep e
    and in softmin's below the branches' gates; a mask, an evaluation without gradient and
    log_softmax's rule keep the selects."""
    from fnnet._numerics import ARITH_MAX_SLICE, arith_pays

    on_cpu = jax.default_backend() == "cpu"
    assert arith_pays(jnp.zeros((4096, ARITH_MAX_SLICE)), (1,)) == on_cpu
    assert not arith_pays(jnp.zeros((4096, ARITH_MAX_SLICE + 1)), (1,))
    assert not arith_pays(jnp.zeros((8, 8, 8)), (1, 2))
    assert arith_pays(jnp.zeros((8, 8, 4)), (0, 2)) == on_cpu

    def ops(fn, x):
        def walk(jaxpr):
            for e in jaxpr.eqns:
                yield e.primitive.name
                for v in e.params.values():
                    for sub in v if isinstance(v, (tuple, list)) else (v,):
                        if isinstance(sub, jex.core.ClosedJaxpr):
                            yield from walk(sub.jaxpr)
                        elif isinstance(sub, jex.core.Jaxpr):
                            yield from walk(sub)
        return set(walk(jax.make_jaxpr(fn)(x).jaxpr))

    def grad(f):
        return jax.grad(lambda v: jnp.sum(f(v)))

    x = jnp.zeros((64, 10))
    assert ("min" in ops(grad(fnnet.softmax), x)) == on_cpu  # the rule, which keeps e
    assert ("min" in ops(grad(lambda v: fnnet.softmin(v, dim=-1)), x)) == on_cpu  # below the branches' gates
    assert "min" not in ops(lambda v: fnnet.softmin(v, dim=-1), x)
    assert "min" not in ops(fnnet.softmax, x)  # evaluated alone: the selects
    assert "min" not in ops(grad(lambda v: fnnet.softmax(v, where=v > 0)), x)
    assert "min" not in ops(grad(fnnet.softmax), jnp.zeros((64, 64)))
    assert "min" not in ops(grad(fnnet.log_softmax), x)  # its output reads the shifted value too


def _planted(x, axes):
    """x with slice 0 tied at +inf (two entries), slice 1 all −inf, slice 2 holding a NaN, slice 3
    holding +inf beside the largest finite value and −inf: slices taken over ``axes``."""
    x = np.array(x)
    kept = [i for i in range(x.ndim) if i not in axes]
    moved = np.moveaxis(x, kept + list(axes), range(x.ndim)).reshape(-1, math.prod(x.shape[a] for a in axes))
    moved[0, [1, -1]] = np.inf
    moved[1] = -np.inf
    moved[2, 3] = np.nan
    moved[3, :3] = [float(jnp.finfo(x.dtype).max), np.inf, -np.inf]
    shape = [x.shape[i] for i in kept + list(axes)]
    return np.moveaxis(moved.reshape(shape), range(x.ndim), kept + list(axes))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("shape,axis", [((48, 64), -1), ((64, 48), 0), ((6, 8, 16), (1, 2)), ((4, 40, 3), 1)],
                         ids=str)
def test_branch_gives_every_finite_slice_the_same_bits(with_gates, dtype, shape, axis):
    """softmax evaluated without gradient over a large input runs jax.nn's plain exp(x − max) and
    takes the tie rule's branch only when a slice needs it (fnnet._numerics.exp_sums): every finite
    slice keeps its bits whether or not another slice took the branch, the special slices get the
    selects' values (ties at +inf, all −inf, NaN), and the values are within the two forms' rounding
    bound of the selects' on random slices (they run different exponential kernels on XLA:CPU)."""
    axes = tuple(int(a) % len(shape) for a in np.atleast_1d(axis))
    x = np.asarray(jax.random.normal(jax.random.key(7), shape, dtype) * 5)
    dirty = _planted(x, axes)
    finite = np.broadcast_to(np.isfinite(dirty).all(axis=axes, keepdims=True), shape)
    assert 0 < finite.sum() < finite.size
    fns = [lambda v: fnnet.softmax(v, axis=axis)]
    if isinstance(axis, int):  # softmin takes one dim (torch's signature)
        fns.append(lambda v: fnnet.softmin(-v, dim=axis))
    for fn in fns:
        clean_b = with_gates(fn, x, BRANCH_MIN_BYTES=0)
        dirty_b = with_gates(fn, dirty, BRANCH_MIN_BYTES=0)
        clean_s = with_gates(fn, x, BRANCH_MIN_BYTES=1 << 62)
        dirty_s = with_gates(fn, dirty, BRANCH_MIN_BYTES=1 << 62)
        np.testing.assert_array_equal(dirty_b[finite].view(np.uint8), clean_b[finite].view(np.uint8))
        np.testing.assert_array_equal(dirty_b[~finite], dirty_s[~finite])  # NaN where NaN
        # Each form computes y_i = e_i / Σ_j e_j in the input's precision (unit roundoff u) with its
        # own exponential kernel. Taking each exponential within 2u of exp (relative), the sum of the
        # n positive terms is within (n − 1)u (recursive summation; the two reductions may add in
        # different orders) plus the terms' 2u, and the quotient within 2u (a division, or XLA's
        # product with a rounded reciprocal): each form is within (n + 5)u of the exact y_i, so the
        # two differ by at most 2(n + 5)u of the larger (observed: up to 5 ULP).
        n = math.prod(shape[a] for a in axes)
        u = float(np.finfo(dtype).eps) / 2
        bound = 2 * (n + 5) * u * np.maximum(np.abs(clean_b), np.abs(clean_s))
        assert np.all(np.abs(clean_b - clean_s) <= bound)


def test_branch_only_where_it_pays_and_vmap_keeps_it_a_branch(monkeypatch):
    """branch_pays: XLA:CPU, no mask, from BRANCH_MIN_BYTES on (from 1/16 of it over slices of at
    most ARITH_MAX_SLICE entries), and only for an evaluation without gradient (softmax's rule: over
    short slices only); under vmap the predicate is one for the whole batch, so the branch stays a
    cond (not a select evaluating both) and a member's values do not depend on its neighbours'."""
    import fnnet._numerics as numerics

    on_cpu = numerics._branch_backend()  # XLA:CPU with one device
    gate = numerics.BRANCH_MIN_BYTES
    for n, least in ((numerics.ARITH_MAX_SLICE, gate >> 4), (numerics.ARITH_MAX_SLICE + 1, gate)):
        rows = -(-least // (4 * n))  # the fewest rows of n float32 entries reaching the gate
        x = jax.ShapeDtypeStruct((rows, n), jnp.float32)
        assert numerics.branch_pays(x, (1,), None) == on_cpu, n
        assert not numerics.branch_pays(jax.ShapeDtypeStruct((rows - 1, n), jnp.float32), (1,), None), n
        assert not numerics.branch_pays(x, (1,), x), n  # a mask
        assert numerics.rule_branch_pays(x, (1,), None) == (on_cpu and n <= numerics.ARITH_MAX_SLICE)
    for n in (numerics.LSE_BRANCH_MAX_SLICE, numerics.LSE_BRANCH_MAX_SLICE + 1):  # logsumexp's rule: ≤ 24
        x = jax.ShapeDtypeStruct((-(-(gate >> 4) // (4 * n)), n), jnp.float32)
        assert numerics.rule_branch_pays(x, (1,), None) == on_cpu
        assert numerics.lse_rule_branch_pays(x, (1,), None) == (on_cpu and n <= numerics.LSE_BRANCH_MAX_SLICE)
    # the slice, not the row, decides: a (rows, n) input reduced over both axes is one long slice
    short = jax.ShapeDtypeStruct((-(-(gate >> 4) // (4 * 16)), 16), jnp.float32)
    assert numerics.branch_pays(short, (1,), None) == on_cpu
    assert not numerics.branch_pays(short, (0, 1), None)
    gate = numerics.LOG_BRANCH_MIN_BYTES
    for n in (16, numerics.ARITH_MAX_SLICE + 1, 1024):  # log_softmax's gate: any slice length
        rows = -(-gate // (4 * n))
        x = jax.ShapeDtypeStruct((rows, n), jnp.float32)
        assert numerics.log_branch_pays(x, None) == on_cpu, n
        assert not numerics.log_branch_pays(jax.ShapeDtypeStruct((rows - 1, n), jnp.float32), None), n
        assert not numerics.log_branch_pays(x, x), n

    def conds(fn, x):
        return jax.make_jaxpr(fn)(x).pretty_print().count("cond[")

    monkeypatch.setattr(numerics, "BRANCH_MIN_BYTES", 0)
    monkeypatch.setattr(numerics, "LOG_BRANCH_MIN_BYTES", 0)
    x = jax.random.normal(jax.random.key(3), (4, 32, 16))
    long = jax.random.normal(jax.random.key(4), (4, 8, 64))
    for f, at_tie in ((fnnet.softmax, 1.0), (fnnet.log_softmax, 0.0)):
        assert conds(f, x) == on_cpu
        assert conds(jax.vmap(f), x) == on_cpu
        # the rules: softmax's takes the branch over short slices only (rule_branch_pays)
        assert conds(jax.grad(lambda v: jnp.sum(f(v) * v)), x) == (on_cpu and f is fnnet.softmax)
        assert conds(jax.grad(lambda v: jnp.sum(f(v) * v)), long) == 0
        assert conds(lambda v: f(v, where=v > 0), x) == 0
        jax.clear_caches()
        dirty = x.at[1, 3, 4].set(jnp.inf)
        batched = np.asarray(jax.vmap(f)(dirty))
        alone = np.stack([np.asarray(f(v)) for v in x])
        np.testing.assert_array_equal(np.delete(batched, 1, 0).view(np.uint8), np.delete(alone, 1, 0).view(np.uint8))
        np.testing.assert_array_equal(np.delete(batched[1], 3, 0).view(np.uint8), np.delete(alone[1], 3, 0).view(np.uint8))
        assert batched[1, 3, 4] == at_tie and np.all(np.delete(batched[1, 3], 4) == (0.0 if at_tie else -np.inf))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_gathered_entries_shift_to_the_same_bits(dtype):
    """The integer-label cross-entropy shifts only the gathered label logit (``shift_entries``): the
    same bits as that entry of the kernel's shifted slice, at every position of the special rows
    (ties at ±inf, all −inf, NaN, signed zeros, the largest finite values), over each axis, masked
    or not."""
    from fnnet._numerics import shift_entries, shifted

    inf, nan, big = jnp.inf, jnp.nan, float(jnp.finfo(dtype).max)
    x = jnp.array([[1.0, inf, 3.0, 0.0], [inf, inf, -inf, 2.0], [-inf, -inf, -inf, -inf],
                   [nan, 1.0, 2.0, 3.0], [-inf, 0.0, -0.0, 1.0], [big, inf, -big, 0.0],
                   [-0.0, 0.0, -0.0, 0.0], [2.5, -1e30, 7.0, 7.0]], dtype)
    mask = jnp.arange(32).reshape(8, 4) % 3 != 1
    for axis in (0, 1):
        for m in (None, mask):
            mx, d, _ = shifted(x, (axis,), m)
            for k in range(x.shape[axis]):
                idx = jnp.full(mx.shape, k)
                xk = jnp.take_along_axis(x, idx, axis=axis)
                np.testing.assert_array_equal(np.asarray(shift_entries(xk, mx)).view(np.uint8),
                                              np.asarray(jnp.take_along_axis(d, idx, axis=axis)).view(np.uint8))


def test_softmin_negates_inside_the_kernels_never_a_branch_operand(with_gates):
    """softmin(x) = softmax(−x) takes its branches (the slice sums' and the one-kernel form's, and
    its rule's) with x itself as the operand and negates inside: a ``neg`` feeding a ``cond`` would
    have to be written to memory, a pass over the input that jax.nn.softmax(−x) does not make. Its
    values are softmax(−x)'s bits on each path, the ties at ±inf and NaN included."""

    def cond_operands_from_neg(fn, x):
        jaxpr = jax.make_jaxpr(fn)(x).jaxpr
        made_by_neg = set()
        conds, found = 0, []
        def walk(j):
            nonlocal conds
            for e in j.eqns:
                if e.primitive.name == "neg":
                    made_by_neg.update(map(id, e.outvars))
                if e.primitive.name == "cond":
                    conds += 1
                    found.extend(v for v in e.invars if id(v) in made_by_neg)
                for v in e.params.values():
                    for sub in v if isinstance(v, (tuple, list)) else (v,):
                        if isinstance(sub, jex.core.ClosedJaxpr):
                            walk(sub.jaxpr)
                        elif isinstance(sub, jex.core.Jaxpr):
                            walk(sub)
        walk(jaxpr)
        return conds, found

    x = jax.random.normal(jax.random.key(12), (4096, 16)) * 4
    x = x.at[0, :2].set(-jnp.inf).at[1].set(jnp.inf).at[2, 3].set(jnp.nan)
    on_cpu_one = jax.default_backend() == "cpu" and jax.device_count() == 1
    for gates in ({"ONE_KERNEL_MIN_SLICES": 0}, {"ONE_KERNEL_MIN_SLICES": 1 << 62, "BRANCH_MIN_BYTES": 0},
                  {"ONE_KERNEL_MIN_SLICES": 1 << 62, "BRANCH_MIN_BYTES": 1 << 62}):
        want = with_gates(lambda v: fnnet.softmax(-v), x, **gates)
        got = with_gates(lambda v: fnnet.softmin(v, dim=-1), x, **gates)
        conds, found = cond_operands_from_neg(lambda v: fnnet.softmin(v, dim=-1), x)  # the gates just set
        assert conds == (on_cpu_one and gates.get("BRANCH_MIN_BYTES") != 1 << 62) and not found, gates
        # the rule: softmax's, the branch on the slice sums over short slices (rule_branch_pays)
        conds, found = cond_operands_from_neg(jax.grad(lambda v: jnp.sum(fnnet.softmin(v, dim=-1) * v)), x)
        assert conds == (on_cpu_one and gates.get("BRANCH_MIN_BYTES") != 1 << 62) and not found, gates
        nan = np.isnan(want)  # NaN where NaN (its sign and payload carry nothing), else the bits
        np.testing.assert_array_equal(np.isnan(got), nan, err_msg=str(gates))
        np.testing.assert_array_equal(got[~nan].view(np.uint8), want[~nan].view(np.uint8), err_msg=str(gates))
        assert np.all(nan[2]) and np.all(got[1] == 1 / 16) and got[0, 0] == got[0, 1] == 0.5


def test_nan_in_gives_nan_out():
    x = jnp.array([[1.0, jnp.nan, 2.0], [1.0, 2.0, 3.0]])
    for f in (fnnet.softmax, fnnet.log_softmax, lambda x: fnnet.logsumexp(x, axis=-1, keepdims=True),
              lambda x: fnnet.softmin(x, dim=-1)):
        y = f(x)
        assert jnp.all(jnp.isnan(y[0])) and not jnp.any(jnp.isnan(y[1]))
        gr = jax.grad(lambda x: jnp.sum(f(x)))(x)
        assert jnp.all(jnp.isnan(gr[0])) and not jnp.any(jnp.isnan(gr[1]))


def test_glu_extremes():
    big = float(jnp.finfo(jnp.float64).max)
    x = jnp.array([2.0, big, -1e4, 1e30])  # a = (2, max), b = (-1e4, 1e30)
    y = fnnet.glu(x)
    np.testing.assert_array_equal(y, [0.0, big])
    gr = jax.grad(lambda x: jnp.sum(fnnet.glu(x)))(x)
    np.testing.assert_array_equal(gr, [0.0, 1.0, 0.0, 0.0])
    gr = jax.grad(lambda x: jnp.sum(fnnet.glu(x)))(jnp.array([jnp.inf, jnp.inf]))
    assert gr[1] == 0, "a·σ'(b) with a = b = inf: the limit 0, not inf·0"


def test_glu_exact_tails_chooses_how_the_gate_derivative_is_formed():
    """Lean (default): σ'(b) = s(1 − s) from s = σ(b), jax.grad(jax.nn.glu)'s arithmetic, 0 once s
    rounds to 1; exact_tails=True: exact in the right tail too. a = 1, b = 20 in float32: s = σ(20)
    rounds to 1 (1 − s ≈ 2.1e-9 < ε/2), σ'(20) = e^{−20}/(1 + e^{−20})² ≈ 2.06e-9. The exact form is a
    few roundings (exp, 1 + E, 1/…, 1 − s, s·…: ≤ 5 of ε/2 each, relative); 4ε bounds them."""
    x = jnp.array([1.0, 20.0], jnp.float32)
    lean = jax.grad(lambda x: jnp.sum(fnnet.glu(x)))(x)
    exact = jax.grad(lambda x: jnp.sum(fnnet.glu(x, exact_tails=True)))(x)
    truth = float(mpmath.exp(-20) / (1 + mpmath.exp(-20)) ** 2)
    assert lean[1] == 0
    assert abs(float(exact[1]) - truth) <= 4 * float(jnp.finfo(jnp.float32).eps) * truth, (exact, truth)
    # Away from the tail both are σ'(b) within the lean form's cancellation, ε·s/(1 − s) relative (s
    # carries ≤ 2 roundings, 1 − s magnifies them by s/(1 − s)), plus the few roundings above.
    key = jax.random.key(3)
    x = 3.0 * jax.random.normal(key, (64, 32), jnp.float64)
    g = jax.random.normal(jax.random.key(4), (64, 16), jnp.float64)
    lean = jax.grad(lambda x: jnp.vdot(g, fnnet.glu(x)))(x)
    exact = jax.grad(lambda x: jnp.vdot(g, fnnet.glu(x, exact_tails=True)))(x)
    ref = jax.grad(lambda x: jnp.vdot(g, jax.nn.glu(x)))(x)
    b = x[:, 16:]
    s = jax.nn.sigmoid(b)
    bound = (2 * s / (1 - s) + 8) * float(jnp.finfo(jnp.float64).eps) * jnp.abs(exact[:, 16:])
    assert jnp.all(jnp.abs(lean[:, 16:] - exact[:, 16:]) <= bound)
    np.testing.assert_array_equal(lean[:, :16], exact[:, :16])  # ∂/∂a = g·σ(b) in both
    np.testing.assert_allclose(lean, ref, rtol=16 * float(jnp.finfo(jnp.float64).eps))


# ------------------------------------------------------------------------------------------------
# Bad input, jaxprs
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp", "logmeanexp"])
def test_axis_out_of_range_names_axis_and_ndim(name, x):
    f = getattr(fnnet, name)
    with pytest.raises(ValueError, match=r"fnnet\.\w+: axis 2 is out of range for an input with ndim 2"):
        f(x, axis=2)
    with pytest.raises(ValueError, match=r"axis \(0, -2\) names the same axis twice \(ndim 2\)"):
        f(x, axis=(0, -2))
    with pytest.raises(ValueError, match=r"axis -1 is out of range for an input with ndim 0"):
        f(jnp.float64(1.0), axis=-1)


def test_integer_input_and_odd_glu():
    # integers are promoted as jax.numpy promotes them
    y = fnnet.softmax(jnp.arange(3, dtype=jnp.int32))
    assert y.dtype == jnp.float32  # as jnp.sin promotes int32
    np.testing.assert_allclose(y, jax.nn.softmax(jnp.arange(3.0, dtype=jnp.float32)), rtol=4e-7)
    with pytest.raises(TypeError, match=r"argument 'x' must have a floating dtype.*got bool"):
        fnnet.softmax(jnp.ones(3, bool), where=jnp.ones(3, bool))
    with pytest.raises(ValueError, match=r"size of axis -1 must be even.*shape \(2, 5\)"):
        fnnet.glu(jnp.zeros((2, 5)))
    with pytest.raises(TypeError, match=r"glu: (hyperparameter 'axis' must be a real number|axis must be an int)"):
        fnnet.glu(jnp.zeros((2, 4)), axis=(0,))


def test_masked_and_weighted_paths_are_hand_written(x, mask):
    for f, name in [
        (lambda x: fnnet.softmax(x, where=mask), "softmax"),
        (lambda x: fnnet.log_softmax(x, where=mask), "log_softmax"),
        (lambda x: fnnet.logsumexp(x, b=x, where=mask), "logsumexp"),
        (lambda x: fnnet.logmeanexp(x, where=mask), "logmeanexp"),
        (lambda x: fnnet.gumbel_softmax(x, jax.random.key(0)), "gumbel_softmax"),
    ]:
        jaxpr = str(jax.make_jaxpr(f)(x))
        assert "custom_jvp_call" in jaxpr and f"name={name}" in jaxpr


def test_jit_and_vmap(x, mask):
    f = jax.jit(lambda x, m: fnnet.log_softmax(x, where=m))
    _close(f(x, mask), jax.nn.log_softmax(x, where=mask), VALUE_RTOL, "jit masked")
    v = jax.vmap(lambda r: fnnet.logsumexp(r))(x)
    _close(v, jax.nn.logsumexp(x, axis=1), VALUE_RTOL, "vmap logsumexp")


def _saved_residuals():
    # saved_residuals is what jax's own tests use (jax.ad_checkpoint only exports a printing twin)
    return pytest.importorskip("jax._src.ad_checkpoint").saved_residuals


@pytest.mark.parametrize("flag", [False, True])
def test_the_softmax_flag_chooses_the_rule_and_residuals_jax_nn_chooses(flag):
    # jax.softmax_custom_jvp(False), jax's default: backprop through y = e/Σe, keeping e, S and S⁻²
    # (n + 2 numbers per slice); True: the Jacobian's rule from the output alone (n). fnnet.softmax
    # follows the flag with two hand-written rules that keep exactly what jax.nn.softmax keeps.
    saved_residuals = _saved_residuals()
    x = jnp.array([5.5, 1.3, -4.2, 0.9], jnp.float32)
    with jax.softmax_custom_jvp(flag):
        ours = [(a.shape, a.dtype) for a, _ in saved_residuals(fnnet.softmax, x)]
        theirs = [(a.shape, a.dtype) for a, _ in saved_residuals(jax.nn.softmax, x)]
        jaxpr = str(jax.make_jaxpr(fnnet.softmax)(x))
    assert sorted(ours) == sorted(theirs), (ours, theirs)
    assert sum(int(np.prod(s)) for s, _ in ours) == (4 if flag else 6)
    assert "custom_jvp_call" in jaxpr and "name=softmax" in jaxpr  # fnnet's rule either way
    # log_softmax has one rule, whatever the flag: e and its slice sum (4 + 1), as jax.nn keeps
    with jax.softmax_custom_jvp(flag):
        assert sum(a.size for a, _ in saved_residuals(fnnet.log_softmax, x)) == 5
        assert sum(a.size for a, _ in saved_residuals(jax.nn.log_softmax, x)) == 5


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_both_softmax_rules_agree_with_jax_nn_and_with_each_other(dtype):
    # Each rule against jax.nn's under the same flag (jit of the gradient; under False the programs
    # are the same graph) and the two rules against each other, on finite slices (with a −inf entry
    # and an axis tuple) and at the special slices where jax.nn gives NaN (ties at ±inf, all −inf).
    # Tolerance: both sides round the same few operations, whose error is bounded by a few ε of
    # max|g| (an entry of y(g − ⟨g, y⟩) cancels at most to that scale); 8ε·max|g| covers it.
    eps = float(jnp.finfo(dtype).eps)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 5, 7)) * 3
    x[0, 0, 2] = -np.inf
    x, w = jnp.asarray(x, dtype), jnp.asarray(rng.standard_normal((6, 5, 7)), dtype)
    axes = (-1, 0, (0, 2))

    def all_axes(v):  # one compiled program per flag: each rule, jax.nn's and the JVP, every axis
        out = []
        for axis in axes:
            ours = jax.grad(lambda u: jnp.sum(fnnet.softmax(u, axis=axis) * w))(v)
            theirs = jax.grad(lambda u: jnp.sum(jax.nn.softmax(u, axis=axis) * w))(v)
            out.append((ours, theirs, jax.jvp(lambda u: fnnet.softmax(u, axis=axis), (v,), (w,))[1]))
        return out

    atol = 8 * eps * float(jnp.max(jnp.abs(w)))
    grads = {}
    for flag in (False, True):
        with jax.softmax_custom_jvp(flag):
            results = jax.jit(all_axes)(x)
        for axis, (ours, theirs, tangent) in zip(axes, results):
            np.testing.assert_allclose(ours, theirs, rtol=0, atol=atol, err_msg=f"{flag} {axis}")
            np.testing.assert_allclose(tangent, ours, rtol=0, atol=atol)  # J is symmetric
        grads[flag] = [r[0] for r in results]
    for a, b in zip(grads[False], grads[True]):
        np.testing.assert_allclose(a, b, rtol=0, atol=atol)
    special = jnp.asarray([[np.inf, np.inf, 1.0], [-np.inf] * 3, [1.0, -np.inf, 2.0], [1e30, -1e30, 0.0]], dtype)
    g = jnp.asarray([0.3, -1.2, 2.0], dtype)
    out = []
    for flag in (False, True):
        with jax.softmax_custom_jvp(flag):
            out.append(jax.grad(lambda v: jnp.sum(fnnet.softmax(v) * g))(special))
    assert np.all(np.isfinite(out[0])) and np.all(np.isfinite(out[1]))
    np.testing.assert_allclose(out[0], out[1], rtol=0, atol=8 * eps * 2.0)


@pytest.mark.parametrize("flag", [False, True])
def test_each_softmax_rule_passes_the_checker(flag):
    # Finite differences and the reference's autodiff, through the public function under each flag
    # (the checker's program cache keys on the flag: each check traces its own rule).
    x = jnp.asarray(np.random.default_rng(4).standard_normal((3, 5)) * 2, jnp.float32)
    mask = jnp.asarray([[True, False, True, True, True]] * 3)
    with jax.softmax_custom_jvp(flag):
        for kw in ({"axis": -1}, {"axis": 0}, {"axis": -1, "where": mask}):
            report = fnnet.gradcheck(lambda v: fnnet.softmax(v, **kw), x)
            assert report.passed, report
        jaxpr = str(jax.make_jaxpr(jax.grad(lambda v: fnnet.softmax(v)[0, 0]))(x))
    # the backward is the flag's rule: S⁻² (integer_pow) only in the formula's rule
    assert ("integer_pow" in jaxpr) is (not flag)


def test_the_checkers_program_cache_keys_on_the_softmax_flag():
    from fnnet.check import programs

    x = jnp.zeros((3,), jnp.float32)
    keys = []
    for flag in (False, True):
        with jax.softmax_custom_jvp(flag):
            keys.append(programs.cache_key((x,), (0,), {(0, 0)}, "central", None))
    assert None not in keys and keys[0] != keys[1]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_logsumexp_value_alone_equals_the_value_beside_its_gradient(dtype):
    # Without b, where or return_sign the value is computed on its own path (no tie sharing, which
    # only the gradient needs): it must give what the differentiated path gives, at every special
    # slice: finite, +inf (with ties), all −inf, NaN, empty.
    x = np.array([[1.0, 2.0, 3.0], [np.inf, 1.0, np.inf], [-np.inf] * 3, [np.nan, 1.0, 2.0],
                  [np.inf, -np.inf, 0.0], [-1e30, 1e30, 0.0]])
    x = jnp.asarray(x, dtype)
    for kw in ({"axis": -1}, {"axis": 0}, {"axis": None}, {"axis": -1, "keepdims": True}):
        alone = fnnet.logsumexp(x, **kw)
        beside = jax.vjp(lambda v: fnnet.logsumexp(v, **kw), x)[0]
        np.testing.assert_array_equal(np.asarray(alone), np.asarray(beside))
        assert alone.dtype == beside.dtype == dtype and alone.shape == beside.shape
    empty = jnp.zeros((2, 0), dtype)
    np.testing.assert_array_equal(np.asarray(fnnet.logsumexp(empty, axis=1)), [-np.inf, -np.inf])
    np.testing.assert_array_equal(np.asarray(jax.vjp(lambda v: fnnet.logsumexp(v, axis=1), empty)[0]),
                                  [-np.inf, -np.inf])


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("shape,axis", [((48, 64), -1), ((64, 48), 0), ((6, 8, 16), (1, 2)), ((4, 40, 3), 1)],
                         ids=str)
def test_log_softmax_branch_keeps_every_finite_slice_and_fixes_the_others(with_gates, dtype, shape, axis):
    """log_softmax evaluated without gradient with its branch forced on (fnnet._numerics.
    log_branch_pays, unless_nan): jax.nn's formula, and the tie rule's over the slices where that is
    NaN. Finite slices keep their bits whether or not another slice took the branch; the special
    slices (ties at +inf, all −inf, NaN, +inf beside the largest finite value) equal the selects'
    values; random slices agree with the selects' within the bound derived below."""

    def run(gate, v):
        return with_gates(lambda v: fnnet.log_softmax(v, axis=axis), v, LOG_BRANCH_MIN_BYTES=gate)

    axes = tuple(int(a) % len(shape) for a in np.atleast_1d(axis))
    x = np.asarray(jax.random.normal(jax.random.key(7), shape, dtype) * 5)
    dirty = _planted(x, axes)
    finite = np.broadcast_to(np.isfinite(dirty).all(axis=axes, keepdims=True), shape)
    clean_b, dirty_b, clean_s, dirty_s = run(0, x), run(0, dirty), run(1 << 62, x), run(1 << 62, dirty)
    np.testing.assert_array_equal(dirty_b[finite].view(np.uint8), clean_b[finite].view(np.uint8))
    special_b, special_s = dirty_b[~finite], dirty_s[~finite]  # NaN where NaN (its payload carries
    np.testing.assert_array_equal(np.isnan(special_b), np.isnan(special_s))  # nothing), else the bits
    keep = ~np.isnan(special_s)
    np.testing.assert_array_equal(special_b[keep].view(np.uint8), special_s[keep].view(np.uint8))
    # Both shift by the same maximum (the same bits) and differ only in log Σe: each exponential
    # within 2u, the sum of n positive terms within (n − 1)u more (in either order), the logarithm
    # within u|lse|: the two log Σe differ by at most 2(n + 1)u + 2u|lse|, and the final subtraction
    # rounds each output by u|out|.
    n = math.prod(shape[a] for a in axes)
    u = float(np.finfo(dtype).eps) / 2
    lse = np.log(np.sum(np.exp(x.astype(np.float64) - x.max(axis=axes, keepdims=True)), axis=axes, keepdims=True))
    bound = 2 * (n + 1) * u + 2 * u * np.abs(lse) + 2 * u * np.abs(clean_s)
    assert np.all(np.abs(clean_b - clean_s) <= bound)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64],
                         ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("shape", [(48, 16), (6, 8, 10), (64, 4)], ids=str)
def test_one_kernel_form_keeps_every_finite_slice_and_fixes_the_others(with_gates, dtype, shape):
    """softmax, softmin and log_softmax evaluated without gradient in the one-kernel form, forced on
    (fnnet._numerics.one_kernel_pays: jax.nn's formula as it stands, the tie rule's where it gives
    NaN, the predicate on each slice's first output entry). The planted slices hold their specials
    away from the first entry, so the predicate sees them only because jax.nn's formula makes the
    whole slice NaN (an all −inf slice's first entry is −inf, which the predicate does not read as NaN
    either). Finite slices keep their bits whether or not another slice took the branch; the
    special slices equal the selects' values (NaN where NaN); random slices agree with the selects'
    within the bounds derived in the branch tests above (softmax: 2(n + 5)u of the larger;
    log_softmax: 2(n + 1)u + 2u|lse| + 2u|out|), u the unit roundoff of the input's dtype (both forms
    compute in it)."""

    axes = (len(shape) - 1,)
    fns = {"softmax": lambda v: fnnet.softmax(v), "softmin": lambda v: fnnet.softmin(-v, dim=-1),
           "log_softmax": lambda v: fnnet.log_softmax(v)}

    def run(fn, one_kernel, v):  # the other side: the selects
        return with_gates(jax.jit(fn), v, ONE_KERNEL_MIN_SLICES=0 if one_kernel else 1 << 62,
                          BRANCH_MIN_BYTES=1 << 62, LOG_BRANCH_MIN_BYTES=1 << 62)

    x = np.asarray(jax.random.normal(jax.random.key(11), shape, dtype) * 5)
    dirty = _planted(x, axes)
    first = dirty[..., 0]  # +inf and NaN sit behind the first entry (an all −inf slice cannot)
    assert not np.isnan(first).any() and not (first == np.inf).any()
    finite = np.broadcast_to(np.isfinite(dirty).all(axis=axes, keepdims=True), shape)
    n, u = shape[-1], float(jnp.finfo(dtype).eps) / 2
    for name, fn in fns.items():
        clean_1, dirty_1 = run(fn, True, x), run(fn, True, dirty)
        clean_s, dirty_s = run(fn, False, x), run(fn, False, dirty)
        np.testing.assert_array_equal(dirty_1[finite].view(np.uint8), clean_1[finite].view(np.uint8))
        special_1, special_s = dirty_1[~finite], dirty_s[~finite]
        np.testing.assert_array_equal(np.isnan(special_1), np.isnan(special_s), err_msg=name)
        keep = ~np.isnan(special_s)
        np.testing.assert_array_equal(special_1[keep].view(np.uint8), special_s[keep].view(np.uint8))
        clean_1, clean_s = clean_1.astype(np.float64), clean_s.astype(np.float64)
        if name == "log_softmax":
            lse = np.log(np.sum(np.exp(x.astype(np.float64) - x.max(axis=axes, keepdims=True)), axis=axes,
                                keepdims=True))
            bound = 2 * (n + 1) * u + 2 * u * np.abs(lse) + 2 * u * np.abs(clean_s)
        else:
            bound = 2 * (n + 5) * u * np.maximum(np.abs(clean_1), np.abs(clean_s))
        assert np.all(np.abs(clean_1 - clean_s) <= bound), name


def test_one_kernel_form_only_where_it_pays_and_vmap_keeps_it_a_branch(monkeypatch):
    """one_kernel_pays: XLA:CPU with one device, no mask, the last axis only, from
    ONE_KERNEL_MIN_SLICES slices of at most ONE_KERNEL_MAX_SLICE entries; only for an evaluation
    without gradient (the rules are unchanged); under vmap one predicate for the batch, so the
    branch stays a cond and a member's values do not depend on its neighbours'."""
    import fnnet._numerics as numerics

    on_cpu = numerics._branch_backend()
    rows, n = numerics.ONE_KERNEL_MIN_SLICES, numerics.ONE_KERNEL_MAX_SLICE

    def pays(shape, axes=None, mask=None):
        x = jax.ShapeDtypeStruct(shape, jnp.float32)
        return numerics.one_kernel_pays(x, (len(shape) - 1,) if axes is None else axes, mask)

    assert pays((rows, n)) == on_cpu and pays((rows // 8, 8, 3)) == on_cpu
    assert not pays((rows - 1, n)) and not pays((rows, n + 1)) and not pays((rows, 0))
    assert not pays((rows, n), axes=(0,)) and not pays((n, rows), axes=(0,))
    assert not pays((rows, n), mask=jnp.ones((rows, n), bool))

    def conds(fn, v):
        return jax.make_jaxpr(fn)(v).pretty_print().count("cond[")

    monkeypatch.setattr(numerics, "ONE_KERNEL_MIN_SLICES", 0)
    x = jax.random.normal(jax.random.key(5), (4, 32, 16))
    for f, at_tie in ((fnnet.softmax, 1.0), (fnnet.log_softmax, 0.0)):
        assert conds(f, x) == on_cpu and conds(jax.vmap(f), x) == on_cpu
        assert ("slice[" in jax.make_jaxpr(f)(x).pretty_print()) == on_cpu  # the first column, the probe
        jax.clear_caches()
        dirty = x.at[1, 3, 4].set(jnp.inf)
        batched = np.asarray(jax.vmap(f)(dirty))
        alone = np.stack([np.asarray(f(v)) for v in x])
        np.testing.assert_array_equal(np.delete(batched, 1, 0).view(np.uint8), np.delete(alone, 1, 0).view(np.uint8))
        assert batched[1, 3, 4] == at_tie and np.all(np.delete(batched[1, 3], 4) == (0.0 if at_tie else -np.inf))


@pytest.mark.parametrize("op", ["softmax", "logsumexp"])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("shape,axis", [((64, 16), -1), ((24, 40), 0), ((6, 8, 3), (1, 2))], ids=str)
def test_rule_branch_over_short_slices_keeps_finite_slices_and_the_tie_rule(with_gates, op, dtype, shape, axis):
    """softmax's rule over short slices (fnnet._numerics.rule_branch_pays) and logsumexp's over
    slices of at most 24 entries (lse_rule_branch_pays), forced on: the value and the gradient of
    every finite slice keep their bits whether or not another slice took the tie branch, the special
    slices get the selects' (or the arithmetic shift's) values and gradients, and the values and
    gradients are within the forms' rounding bounds of the other form's: softmax's y and logsumexp's
    gradient (softmax weights) within 2(n + 5)u of the larger
    (test_branch_gives_every_finite_slice_the_same_bits); logsumexp's value m + log Σe, the same
    maximum, log Σe within 2(n + 1)u + 2u|lse| (test_log_softmax_branch_keeps_every_finite_slice_and_
    fixes_the_others) and the sum's rounding u|out|."""
    axes = tuple(int(a) % len(shape) for a in np.atleast_1d(axis))
    x = np.asarray(jax.random.normal(jax.random.key(9), shape, dtype) * 5)
    f = {"softmax": lambda u: fnnet.softmax(u, axis=axis), "logsumexp": lambda u: fnnet.logsumexp(u, axis=axis)}[op]
    w = jax.random.normal(jax.random.key(10), jax.eval_shape(f, x).shape, dtype)
    dirty = _planted(x, axes)
    finite = np.broadcast_to(np.isfinite(dirty).all(axis=axes, keepdims=True), shape)
    finite_out = finite if op == "softmax" else np.isfinite(dirty).all(axis=axes)

    def y_and_grad(v):
        y, vjp = jax.vjp(f, v)
        return np.asarray(y), np.asarray(vjp(w)[0])

    runs = {}
    for name, gate in (("branch", 0), ("selects", 1 << 62)):
        for which, v in (("clean", x), ("dirty", dirty)):
            runs[name, which] = with_gates(y_and_grad, v, BRANCH_MIN_BYTES=gate)
    for k, fin in ((0, finite_out), (1, finite)):  # value, gradient
        b_clean, b_dirty = runs["branch", "clean"][k], runs["branch", "dirty"][k]
        np.testing.assert_array_equal(b_dirty[fin].view(np.uint8), b_clean[fin].view(np.uint8))
        np.testing.assert_array_equal(b_dirty[~fin], runs["selects", "dirty"][k][~fin])
    n = math.prod(shape[a] for a in axes)
    u = float(np.finfo(dtype).eps) / 2
    (yb, gb), (ys, gs) = runs["branch", "clean"], runs["selects", "clean"]
    if op == "softmax":
        assert np.all(np.abs(yb - ys) <= 2 * (n + 5) * u * np.maximum(np.abs(yb), np.abs(ys)))
    else:
        lse = np.log(np.sum(np.exp(x.astype(np.float64) - x.max(axis=axes, keepdims=True)), axis=axes))
        assert np.all(np.abs(yb - ys) <= 2 * (n + 1) * u + 2 * u * np.abs(lse) + 2 * u * np.abs(ys))
        sm = np.asarray(jax.vjp(f, x)[1](jnp.ones_like(w))[0])  # the softmax weights
        bound = 2 * (n + 5) * u * np.abs(sm) * np.broadcast_to(np.expand_dims(np.abs(np.asarray(w)), axes), shape)
        assert np.all(np.abs(gb - gs) <= bound + 2 * u * np.abs(gs))
    import fnnet._numerics as numerics

    if numerics._branch_backend():
        def conds(v):
            return jax.make_jaxpr(jax.grad(lambda u: jnp.vdot(w, f(u))))(v).pretty_print().count("cond[")

        taken = with_gates(conds, x, BRANCH_MIN_BYTES=0)
        assert taken == 1  # the rule did take the branch


def test_no_branch_over_several_devices():
    """With several devices the branches are not taken (fnnet._numerics._branch_backend): a sharded
    predicate would be one more all-reduce in every call. Checked in a subprocess, the device count
    being fixed when jax is imported: with the gates at 0 (the one-kernel form's too), 2 CPU devices
    compile no conditional (and, unsharded, no collective) for softmax, log_softmax and the soft-label
    loss."""
    import os
    import subprocess
    import sys

    code = (
        "import jax, jax.numpy as jnp, numpy as np, fnnet, fnnet._numerics as n\n"
        "assert jax.device_count() == 2 and not n._branch_backend()\n"
        "n.BRANCH_MIN_BYTES = n.LOG_BRANCH_MIN_BYTES = n.LOSS_BRANCH_MIN_BYTES = n.ONE_KERNEL_MIN_SLICES = 0\n"
        "x = jax.random.normal(jax.random.key(0), (64, 16))\n"
        "sce = lambda v: fnnet.losses.softmax_cross_entropy(v, jax.nn.softmax(v))\n"
        "for f in (fnnet.softmax, fnnet.log_softmax, sce):\n"
        "    t = jax.jit(jax.value_and_grad(lambda v: jnp.sum(f(v)))).lower(x).compile().as_text()\n"
        "    assert 'conditional(' not in t and 'all-reduce(' not in t, t\n"
        "    assert 'conditional(' not in jax.jit(f).lower(x).compile().as_text()\n"
        "print('ok')\n"
    )
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stdout + proc.stderr


@pytest.mark.parametrize("form", ["select", "arith", "difference"])
@pytest.mark.parametrize("n", [40, 64, 1024])
def test_a_nan_makes_its_slice_nan_in_every_form(with_gates, form, n):
    """A NaN anywhere in a slice (first, middle, last entry; beside +inf too) makes the slice's outputs
    and gradients NaN and leaves the other slices finite, in every rule of the family and every form
    of the shift, and in the forwards' branches (512 KiB of input: above their gates), although
    XLA:CPU's maximum may skip a NaN over rows of 64 and more (a finite maximum, or ±inf beside it)."""
    rows = (1 << 17) // n
    x = jax.random.normal(jax.random.key(3), (rows, n), jnp.float32) * 4
    x = x.at[2, n // 2].set(jnp.nan).at[5, 0].set(jnp.nan).at[7, n - 1].set(jnp.nan)
    x = x.at[9, 1].set(jnp.nan).at[9, 3].set(jnp.inf)
    labels = jnp.arange(rows) % n
    clean = jax.random.normal(jax.random.key(4), (rows, n), jnp.float32)
    fns = {"softmax": fnnet.softmax, "log_softmax": fnnet.log_softmax, "softmin": fnnet.softmin,
           "logsumexp": lambda v: fnnet.logsumexp(v, axis=-1, keepdims=True),
           "logmeanexp": lambda v: fnnet.logmeanexp(v, axis=-1, keepdims=True),
           "sce_int": lambda v: fnnet.losses.softmax_cross_entropy_with_integer_labels(v, labels)[:, None],
           "sce": lambda v: fnnet.losses.softmax_cross_entropy(v, jax.nn.softmax(clean))[:, None],
           "logsumexp_b": lambda v: fnnet.logsumexp(v, axis=-1, b=jnp.abs(clean) + 1, keepdims=True)}

    def run():
        return {k: [jax.jit(f)(x), jax.jit(jax.grad(lambda v, f=f: jnp.sum(f(v))))(x)] for k, f in fns.items()}

    for name, outs in with_gates(run, SHIFT_FORM=form).items():
        for what, v in zip(("value", "gradient"), outs):
            assert np.isnan(v[[2, 5, 7, 9]]).all(), f"{name} {what}: a slice with a NaN is not all NaN"
            assert np.isfinite(np.delete(v, [2, 5, 7, 9], 0)).all(), f"{name} {what}"
