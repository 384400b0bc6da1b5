"""fnnet.standardize against jax.nn.standardize, exact arithmetic and its own derivation.

The registry suites (test_primitives, test_calculus, test_low_precision) check the hand rules against
autodiff of the reference and central differences on every variant; here: every argument jax.nn takes,
the gradients of the given moments, the slices whose derivative is ill-conditioned, special values,
residuals and bad input.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest

import fnnet

F64_EPS = float(jnp.finfo(jnp.float64).eps)


def _rng():
    return np.random.default_rng(7)


@pytest.fixture
def x():
    r = _rng()
    return jnp.asarray(r.normal(size=(4, 6)) * r.uniform(0.5, 2, (4, 1)) + r.uniform(-2, 2, (4, 1)))


@pytest.fixture
def g():
    return jnp.asarray(np.random.default_rng(8).normal(size=(4, 6)))


def _mask():
    # At least three entries kept per row: over two kept entries the derivative is O(ε·r³), a difference
    # of O(r) terms (test_slices_of_two_against_exact_arithmetic), which no rule matches to 64 ULP.
    return jnp.asarray(np.random.default_rng(9).random((4, 6)) < 0.5).at[:, :3].set(True)


def _close(a, b, rtol, what):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}"
    assert np.array_equal(np.isnan(a), np.isnan(b)), f"{what}: NaN pattern differs\n{a}\n{b}"
    fin = np.isfinite(b)
    assert np.array_equal(a[~fin], b[~fin], equal_nan=True), f"{what}: infinities differ"
    scale = max(float(np.max(np.abs(b[fin]), initial=0.0)), 1e-300)
    err = float(np.max(np.abs(a[fin] - b[fin]), initial=0.0)) / scale
    assert err <= rtol, f"{what}: normwise relative difference {err:.3g} > {rtol:.3g}"


# The rows' spreads are 0.5-2 and their means within ±2, so the Jacobian's entries are O(r) and both
# rules (the hand one, autodiff's of jax.nn's formula) agree to a few roundings of the O(r) terms.
GRAD_RTOL = 64 * F64_EPS


def _reordered_sums_bound(x, kw):
    """How far two evaluations of jax.nn's formula may differ when their sums add in different orders
    and a product may or may not be fused into an addition, to first order in u. A sum of n terms in
    any order is within (n − 1)·u·Σ|aᵢ| of the exact sum, so each mean within n·u·mean|a| (its division
    rounded too); then μ by δμ, v = mean(x²) − μ² ("fast") by δv = n·u·mean(x²) + 2|μ|·δμ + u·(mean(x²)
    + μ²) (nothing where both evaluations clip it at 0), or mean((x − μ)²) ("stable") by n·u·v +
    2·mean|x − μ|·δμ; y = (x − μ)·(v + ε)^{−1/2} by r·δμ + |y|·r²·δv/2 + 3u·|y| (its own three
    roundings). Each evaluation is within that of the exact value: the two within twice it. n is the
    slice's size (a mask keeps fewer)."""
    x = np.asarray(x, np.float64)
    u = float(jnp.finfo(jnp.float64).eps) / 2
    axis = kw.get("axis", -1)
    where = True if kw.get("where") is None else np.asarray(kw["where"])
    n = x.size if axis is None else int(np.prod([x.shape[a] for a in np.atleast_1d(axis)]))
    mean = lambda a: np.mean(a, axis, where=where, keepdims=True)  # noqa: E731
    if kw.get("mean") is None:
        mu, dmu = mean(x), n * u * mean(np.abs(x))
    else:
        mu, dmu = np.asarray(kw["mean"]), 0.0
    if kw.get("variance") is not None:
        v, dv = np.asarray(kw["variance"]), 0.0
    elif kw.get("algorithm", "fast") == "stable":
        v = mean((x - mu) ** 2)
        dv = n * u * v + 2 * mean(np.abs(x - mu)) * dmu
    else:
        v = mean(x * x) - mu * mu
        dv = n * u * mean(x * x) + 2 * np.abs(mu) * dmu + u * (mean(x * x) + mu * mu)
        dv = np.where(v + dv < 0, 0.0, dv)  # clipped to 0 (a given mean far from the data's) either way
        v = np.maximum(v, 0.0)
    r = 1 / np.sqrt(v + np.asarray(kw.get("epsilon", 1e-5)))
    y = (x - mu) * r
    return 2 * (r * dmu + np.abs(y) * r * r * dv / 2 + 3 * u * np.abs(y))


KWARGS = {
    "default": {},
    "stable": {"algorithm": "stable"},
    "axis0": {"axis": 0},
    "axes": {"axis": (0, 1)},
    "all": {"axis": None, "algorithm": "stable"},
    "epsilon": {"epsilon": 0.3},
    "mask": {"where": "mask"},
    "mask-stable": {"where": "mask", "algorithm": "stable"},
    "mask-axes": {"axis": (0, 1), "where": "mask"},
    "mean": {"mean": "mean"},
    "mean-stable": {"mean": "mean", "algorithm": "stable"},
    "mean-mask": {"mean": "mean", "where": "mask"},
    "variance": {"variance": "variance"},
    "variance-stable": {"variance": "variance", "algorithm": "stable"},
    "both": {"mean": "mean", "variance": "variance"},
    # moments or ε that vary within a slice (jax.nn broadcasts them): r and the clip factor per entry
    "variance-entries": {"variance": "variance_entries"},
    "variance-features": {"variance": "variance_features"},
    "variance-features-axis0": {"variance": "variance_features", "axis": 0},
    "epsilon-entries": {"epsilon": "epsilon_entries"},
    "epsilon-entries-stable-mask": {"epsilon": "epsilon_entries", "algorithm": "stable", "where": "mask"},
    "mean-entries": {"mean": "mean_entries"},
    "mean-features-mask": {"mean": "mean_features", "where": "mask"},
}


def _kwargs(name):
    r = np.random.default_rng(10)
    given = {"mask": _mask(), "mean": jnp.asarray(r.normal(size=(4, 1))),
             "variance": jnp.asarray(r.uniform(0.5, 2.0, (4, 1))),
             "variance_entries": jnp.asarray(r.uniform(0.5, 2.0, (4, 6))),
             "variance_features": jnp.asarray(r.uniform(0.5, 2.0, (6,))),
             "epsilon_entries": jnp.asarray(r.uniform(0.01, 0.5, (4, 6))),
             # given means per entry or feature, small beside the rows' spread: "fast"'s mean(x²) − μ²
             # then stays well above 0 (near 0, or clipped to it, r = (v + ε)^{−1/2} grows to ε^{−1/2}
             # and so do the rules' terms: a regime of its own, test_special_values_follow_jax_nn)
             "mean_entries": jnp.asarray(0.1 * r.normal(size=(4, 6))),
             "mean_features": jnp.asarray(0.1 * r.normal(size=(6,)))}
    return {k: given.get(v, v) if isinstance(v, str) else v for k, v in KWARGS[name].items()}


@pytest.mark.parametrize("case", list(KWARGS))
def test_matches_jax_nn_value_vjp_jvp(case, x, g):
    """The value (the same operations: the same bits), the VJP (the hand rule) and the JVP (its
    transpose) against jax.nn.standardize and its autodiff, for every argument jax.nn takes."""
    kw = _kwargs(case)
    ours, theirs = (lambda v: fnnet.standardize(v, **kw)), (lambda v: jax.nn.standardize(v, **kw))
    y, y_ref = np.asarray(jax.jit(ours)(x)), np.asarray(jax.jit(theirs)(x))
    bound = _reordered_sums_bound(x, kw)
    # the bound against an evaluation whose sums do add in another order: jax.nn's of the reversed rows
    flip = {k: jnp.flip(v) if k in ("where", "mean", "variance", "epsilon") and jnp.ndim(v) else v
            for k, v in kw.items()}  # every axis reversed: (4, 1) and (6,) arguments broadcast as before
    reordered = np.flip(np.asarray(jax.jit(lambda v: jax.nn.standardize(v, **flip))(jnp.flip(x, (0, 1)))), (0, 1))
    assert np.all(np.abs(reordered - y_ref) <= bound), f"{case}: jax.nn of the reversed rows"
    if jax.default_backend() == "cpu":
        np.testing.assert_array_equal(y, y_ref)
    else:  # XLA:GPU may fuse the same sums into other kernels, adding in another order
        assert np.all(np.abs(y - y_ref) <= bound), f"{case}: {np.max(np.abs(y - y_ref) / bound):.3g} × the bound"
    gr, gr_ref = (jax.grad(lambda v, f=f: jnp.vdot(g, f(v)))(x) for f in (ours, theirs))
    _close(gr, gr_ref, GRAD_RTOL, f"{case} VJP")
    t, t_ref = (jax.jvp(f, (x,), (g,))[1] for f in (ours, theirs))
    _close(t, t_ref, GRAD_RTOL, f"{case} JVP")


def test_hand_jvp_is_the_transpose_of_the_hand_vjp(x, g):
    """The primitive's own jvp (checked nowhere else for the given-moment cases) against the tangent
    map the public function uses, the transpose of the hand VJP."""
    prim = fnnet.get("standardize")
    for case in KWARGS:
        kw = _kwargs(case)
        kw = {"axis": -1, "mean": None, "variance": None, "epsilon": 1e-5, "where": None, "algorithm": "fast", **kw}
        out = prim.forward(x, **kw)
        hand = prim.jvp((x,), (g,), out, **kw)
        _, public = jax.jvp(lambda v: fnnet.standardize(v, **kw), (x,), (g,))
        _close(hand, public, GRAD_RTOL, f"{case}: hand JVP vs transpose of the hand VJP")


def test_given_moments_and_epsilon_are_differentiable(x, g):
    """mean, variance and epsilon get their derivatives from autodiff of the forward: jax.nn's."""
    kw = _kwargs("both")
    args = (kw["mean"], kw["variance"], jnp.asarray(0.1))
    ours = jax.grad(lambda m, v, e: jnp.vdot(g, fnnet.standardize(x, mean=m, variance=v, epsilon=e)), (0, 1, 2))(*args)
    theirs = jax.grad(lambda m, v, e: jnp.vdot(g, jax.nn.standardize(x, mean=m, variance=v, epsilon=e)),
                      (0, 1, 2))(*args)
    for a, b, name in zip(ours, theirs, ("mean", "variance", "epsilon")):
        _close(a, b, GRAD_RTOL, f"d/d{name}")
    # epsilon alone, the moments computed from x
    d = jax.grad(lambda e: jnp.vdot(g, fnnet.standardize(x, epsilon=e)))(0.1)
    _close(d, jax.grad(lambda e: jnp.vdot(g, jax.nn.standardize(x, epsilon=e)))(0.1), GRAD_RTOL, "d/depsilon")


def _exact_jacobian_pairs(x, eps):
    """∂y_i/∂x_j of standardize over slices of two (the columns of a (2, k) x), in 60-digit arithmetic:
    r·(δ_ij − 1/n − y_i·y_j/n)."""
    mpmath.mp.dps = 60
    out = np.zeros((x.shape[1], 2, 2))
    for c in range(x.shape[1]):
        col = [mpmath.mpf(float(v)) for v in x[:, c]]
        mu = sum(col) / 2
        r = 1 / mpmath.sqrt(sum((v - mu) ** 2 for v in col) / 2 + mpmath.mpf(eps))
        y = [(v - mu) * r for v in col]
        for i in range(2):
            for j in range(2):
                out[c, i, j] = float(r * ((1 if i == j else 0) - mpmath.mpf(1) / 2 - y[i] * y[j] / 2))
    return out


@pytest.mark.parametrize("algorithm", ["fast", "stable"])
def test_slices_of_two_against_exact_arithmetic(algorithm):
    """Over a slice of two entries the outputs are ±√(v/(v + ε)) whatever x: the Jacobian is
    r³·ε/2·[[1, −1], [−1, 1]], O(ε·r³), a difference of O(r) terms. Neither the hand rule nor autodiff
    of jax.nn's formula can be accurate relative to it; each is held to the rounding of its terms:
    |Ĵ − J| ≤ c·u·r with c = 16 (the rule's few roundings of g, Σg/n and y·Σgy/n, each ≤ r, counted
    generously), against the exact Jacobian."""
    x = np.random.default_rng(11).normal(size=(2, 5)) * 2
    exact = _exact_jacobian_pairs(x, 1e-5)
    r = 1 / np.sqrt(np.var(x, axis=0) + 1e-5)
    assert np.max(np.abs(exact)) < 1e-3 * np.min(r)  # the ill-conditioned regime
    for f, who in ((fnnet.standardize, "fnnet"), (jax.nn.standardize, "jax.nn autodiff")):
        jac = jax.jacrev(lambda v, f=f: f(v, axis=0, algorithm=algorithm))(jnp.asarray(x))
        got = np.asarray(jac).reshape(2, 5, 2, 5)
        for c in range(5):
            err = np.abs(got[:, c, :, c] - exact[c])
            assert np.all(err <= 16 * F64_EPS / 2 * r[c]), f"{who}, column {c}: {err.max():.3g} vs r = {r[c]:.3g}"


def test_special_values_follow_jax_nn():
    """A constant slice (v = 0, "fast"'s clip at its kink), a NaN, ±inf, huge and all-masked slices:
    the values are jax.nn's, NaN where jax.nn's are (x² overflowing in "fast", 0·inf), and so is the
    pattern of the gradient's NaNs; finite gradients agree."""
    rows = [[3.0, 3.0, 3.0, 3.0], [1.0, np.nan, 2.0, 0.5], [1.0, np.inf, 2.0, 0.5], [-np.inf, 1.0, 2.0, 3.0],
            [1e200, -1e200, 3e200, 0.0], [1e-200, 2e-200, -1e-200, 0.0], [-11.0, -11.0, -11.0, -11.0 + 3e-6]]
    x = jnp.asarray(rows)
    mask = jnp.ones_like(x, bool).at[0].set(False)
    g = jnp.asarray(np.random.default_rng(12).normal(size=x.shape))
    for kw in ({}, {"algorithm": "stable"}, {"where": mask}):
        ours, theirs = fnnet.standardize(x, **kw), jax.nn.standardize(x, **kw)
        np.testing.assert_array_equal(ours, theirs)
        gr = jax.grad(lambda v: jnp.vdot(g, jnp.nan_to_num(fnnet.standardize(v, **kw))))(x)
        gr_ref = jax.grad(lambda v: jnp.vdot(g, jnp.nan_to_num(jax.nn.standardize(v, **kw))))(x)
        assert np.array_equal(np.isnan(gr), np.isnan(gr_ref)), f"{kw}: gradient NaNs\n{gr}\n{gr_ref}"
        ok = np.all(np.isfinite(np.asarray(gr_ref)), axis=1)
        _close(np.asarray(gr)[ok], np.asarray(gr_ref)[ok], 1e-12, f"{kw}: finite gradient rows")
    assert not bool(jnp.any(jnp.isnan(fnnet.standardize(x[-1]))))  # jax#30426's regression input


def test_masked_entries_take_no_part(x, g):
    """jax's own check: the masked result on the kept entries is the filtered input's. With no
    cotangent on the masked outputs the gradient on the kept entries is the filtered input's too, and
    0 on the masked ones; with any cotangent a masked entry's gradient is r·g (it enters neither
    moment: only its own output depends on it)."""
    m = _mask()[2]
    kept = np.asarray(m)
    assert 3 <= kept.sum() < kept.size
    xr, gr_ = x[2], g[2]
    y = fnnet.standardize(xr, where=m)
    _close(y[kept], fnnet.standardize(xr[kept]), 16 * F64_EPS, "kept entries")
    g_kept = jnp.where(m, gr_, 0.0)
    grad = jax.grad(lambda v: jnp.vdot(g_kept, fnnet.standardize(v, where=m)))(xr)
    filtered = jax.grad(lambda v: jnp.vdot(gr_[kept], fnnet.standardize(v)))(xr[kept])
    _close(grad[kept], filtered, GRAD_RTOL, "gradient at kept entries")
    assert np.all(np.asarray(grad)[~kept] == 0)
    grad = jax.grad(lambda v: jnp.vdot(gr_, fnnet.standardize(v, where=m)))(xr)
    r = 1 / jnp.sqrt(jnp.var(xr[kept]) + 1e-5)
    _close(grad[~kept], r * gr_[~kept], GRAD_RTOL, "gradient at masked entries")


def test_keeps_fewer_residuals_than_jax_grad(x):
    """The rule keeps y and two numbers per slice (r, the clip factor); jax.grad of jax.nn's formula
    keeps twice as many numbers."""
    saved = pytest.importorskip("jax._src.ad_checkpoint").saved_residuals
    ours = sum(a.size for a, _ in saved(fnnet.standardize, x))
    theirs = sum(a.size for a, _ in saved(jax.nn.standardize, x))
    assert ours <= x.size + 2 * x.shape[0] + 1 < theirs, (ours, theirs)


def test_dtypes_and_promotion():
    """Integers promote as jax.nn's (float32); float16 stays float16; a given mean of another dtype
    promotes as jax.numpy does; jit with the algorithm as a keyword."""
    with jax.numpy_dtype_promotion("standard"):  # jax.nn's own mean of integers mixes dtypes
        i = jnp.arange(4, dtype=jnp.int32)
        np.testing.assert_array_equal(fnnet.standardize(i), jax.nn.standardize(i))
        assert fnnet.standardize(i).dtype == jax.nn.standardize(i).dtype == jnp.float32
    h = jnp.asarray([1.0, 2.0, 4.0], jnp.float16)
    assert fnnet.standardize(h).dtype == jnp.float16
    np.testing.assert_array_equal(fnnet.standardize(h), jax.nn.standardize(h))
    m, x32 = jnp.asarray([2.0], jnp.float64), h.astype(jnp.float32)
    with jax.numpy_dtype_promotion("standard"):
        assert fnnet.standardize(x32, mean=m).dtype == jax.nn.standardize(x32, mean=m).dtype == jnp.float64
    with pytest.raises(TypeError, match=r"'x' dtype float32 and 'mean' dtype float64 have no implicit promotion"):
        fnnet.standardize(x32, mean=m)  # under strict promotion (this suite's), named instead of jax's error
    v = jnp.asarray([1e6, 1e6 + 1, 1e6 + 2], jnp.float32)
    np.testing.assert_array_equal(jax.jit(lambda v: fnnet.standardize(v, algorithm="stable"))(v),
                                  fnnet.standardize(v, algorithm="stable"))


def test_bad_input_names_the_argument():
    x = jnp.ones((3, 4))
    with pytest.raises(ValueError, match=r"fnnet\.standardize: unknown algorithm 'exact'; expected 'fast' or 'stable'"):
        fnnet.standardize(x, algorithm="exact")
    with pytest.raises(ValueError, match=r"fnnet\.standardize: 'mean' of shape \(5,\) does not broadcast to "
                                         r"the input's shape \(3, 4\)"):
        fnnet.standardize(x, mean=jnp.ones(5))
    with pytest.raises(ValueError, match=r"'variance' of shape \(3, 4, 1\) does not broadcast"):
        fnnet.standardize(x, variance=jnp.ones((3, 4, 1)))
    with pytest.raises(TypeError, match=r"fnnet\.standardize: 'where' must be a boolean mask; got dtype int32"):
        fnnet.standardize(x, where=jnp.ones((3, 4), jnp.int32))
    with pytest.raises(ValueError, match=r"fnnet\.standardize: 'epsilon' of shape \(2,\) does not broadcast"):
        fnnet.standardize(x, epsilon=jnp.ones(2))
    with pytest.raises(ValueError, match=r"fnnet\.standardize: axis 2 is out of range for an input with ndim 2"):
        fnnet.standardize(x, axis=2)


def test_accelerator_form_sums_once_with_the_same_gradient(x, g, with_gates):
    """Off XLA:CPU the rule forms Σg and Σg·y as one reduction of the two stacked (a lone Σg beside g
    is a normalization diamond that XLA:GPU compiles with Triton): traced for a GPU here and run on the
    CPU, the gradient is the CPU form's and jax.nn's to rounding, for every case that needs both
    sums (r per slice or, with ε per entry, per entry) and for one that needs a single sum."""
    for case in ("default", "mask", "epsilon-entries", "mean"):
        kw = _kwargs(case)
        grad = jax.grad(lambda v, kw=kw: jnp.vdot(g, fnnet.standardize(v, **kw)))
        stacked = with_gates(lambda v, grad=grad: (grad(v), str(jax.make_jaxpr(grad)(v))), x, TARGET_BACKEND="gpu")
        apart = with_gates(lambda v, grad=grad: (grad(v), str(jax.make_jaxpr(grad)(v))), x, TARGET_BACKEND="cpu")
        one_sum = [("stack[" in str(text)) or ("concatenate" in str(text)) for text in (stacked[1], apart[1])]
        assert one_sum == [case != "mean", False], (case, one_sum)
        _close(stacked[0], apart[0], GRAD_RTOL, f"{case}: stacked vs apart")
        _close(stacked[0], jax.grad(lambda v, kw=kw: jnp.vdot(g, jax.nn.standardize(v, **kw)))(x), GRAD_RTOL, case)


def test_fast_clip_at_its_kink_takes_half_the_derivative():
    """"fast" with a given mean: x = ±1 and μ = 1 make mean(x²) − μ² exactly 0, the clip's kink, where
    y ≠ 0; the rule takes jax's ½ there (autodiff of jax.nn's formula), not 1 or 0."""
    x, mu, g = jnp.asarray([[1.0, -1.0]]), jnp.asarray([[1.0]]), jnp.asarray([[0.3, -0.7]])
    ours = jax.grad(lambda v: jnp.vdot(g, fnnet.standardize(v, mean=mu)))(x)
    theirs = jax.grad(lambda v: jnp.vdot(g, jax.nn.standardize(v, mean=mu)))(x)
    _close(ours, theirs, GRAD_RTOL, "gradient at the clip's kink")
    whole = jax.grad(lambda v: jnp.vdot(g, fnnet.standardize(v, mean=mu, variance=jnp.zeros((1, 1)))))(x)
    assert not np.allclose(np.asarray(ours), np.asarray(whole))  # the v term is there, halved
