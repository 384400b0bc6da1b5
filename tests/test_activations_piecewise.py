"""Piecewise activations: values equal to jax.nn's (torch's formula for the torch-only ones), the
derivative chosen at every kink, prelu's broadcasting, and the error messages (rrelu, whose slopes are
random: tests/test_activations_stochastic.py).

The generic checks every registered primitive gets (VJP/JVP against autodiff of the reference and
against central differences, the hard points, the diagonal Jacobian) live in tests/test_primitives.py;
what is here is specific to these functions.
"""
import inspect
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet

JAX_NAMES = [
    "relu", "relu6", "leaky_relu", "hard_tanh", "hard_sigmoid", "hard_silu", "sparse_plus",
    "sparse_sigmoid",
]
TORCH_ONLY = ["hardshrink", "softshrink", "threshold", "prelu", "rrelu"]
DTYPES = [jnp.float32, jnp.float64]


def _grid(dtype):
    """A grid through every kink, each kink's neighbours one ulp away, and the hard points."""
    finfo = np.finfo(dtype)
    kinks = [-6.0, -3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0, 6.0]
    pts = list(np.linspace(-8, 8, 641))
    for k in kinks:
        k = dtype(k)
        pts += [k, np.nextafter(k, dtype(-np.inf)), np.nextafter(k, dtype(np.inf))]
    pts += [-0.0, finfo.tiny / 4, -finfo.tiny / 4, 1e4, -1e4, finfo.max, -finfo.max]
    return jnp.asarray(np.array(pts, dtype=dtype))


def _same(a, b, atol=0.0):
    """Equal values (NaN equals NaN; +0 equals −0), up to flushing subnormals to zero, and up to
    ``atol`` where asked.

    XLA on CPU flushes subnormal results to zero inside compiled code (jax.nn's functions are jitted)
    and not always in eager dispatch, so a subnormal and a zero are the same value computed in two
    floating-point environments, not a difference of formula.
    """
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype, (a.dtype, b.dtype)
    both_nan = np.isnan(a) & np.isnan(b)
    tiny = np.finfo(a.dtype).tiny
    with np.errstate(invalid="ignore"):
        flushed = ((a == 0) & (np.abs(b) < tiny)) | ((b == 0) & (np.abs(a) < tiny))
    with np.errstate(invalid="ignore"):
        near = np.abs(a - b) <= atol
    bad = ~((a == b) | both_nan | flushed | near)
    assert not bad.any(), f"differ at {np.flatnonzero(bad)[:5]}: {a[bad][:5]} vs {b[bad][:5]}"


def _grads(f, x, **kw):
    """f'(x) entry by entry, compiled once (eager vmap would compile every op separately)."""
    return jax.jit(jax.vmap(jax.grad(lambda v: f(v, **kw))))(x)


# ----- agreement with jax.nn ----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", JAX_NAMES)
def test_values_and_gradients_equal_jax_nn(name, dtype):
    # fnnet computes jax.nn's expressions, so values and derivatives agree to the last bit on the
    # whole grid, kinks and their one-ulp neighbours included (no tolerance: a rounding difference
    # would be a different formula). The inputs where fnnet deliberately differs are checked below.
    f, ref = getattr(fnnet, name), getattr(jax.nn, name)
    x = _grid(dtype)
    _same(f(x), ref(x))
    g, g_ref = _grads(f, x), _grads(ref, x)
    # Where jax.nn's gradient is NaN at a non-NaN input (sparse_plus at ±max: its where leaks
    # 0·(x+1)·2 = 0·∞), fnnet's must be a number; it is pinned in the test below.
    leak = np.isnan(g_ref) & ~np.isnan(np.asarray(x))
    assert np.isfinite(np.asarray(g)[leak]).all()
    # Compiled, XLA may evaluate hard_silu's hs(x) + x/6 as hs(x) + x·(1/6) in one program and not
    # the other: the terms are ≤ 1 in magnitude, so the two differ by ≤ 2 roundings of size ≤ eps/2
    # each, near the zero crossing at x = −1.5 too: atol = 2·eps. Every other derivative here is an
    # exact constant, and a wrong kink convention or piece is off by ≥ 0.01.
    atol = 2 * float(np.finfo(dtype).eps)
    _same(g[~leak], g_ref[~leak], atol=atol)
    # forward mode is built from the same f', so it agrees with the reverse rule
    t = jnp.ones_like(x)
    _same(jax.jvp(f, (x,), (t,))[1], g, atol=atol)


@pytest.mark.parametrize("slope", [0.01, 0.2, 1.5])
def test_leaky_relu_matches_jax_nn_for_other_slopes(slope):
    x = _grid(np.float64)
    _same(fnnet.leaky_relu(x, slope), jax.nn.leaky_relu(x, slope))
    _same(_grads(fnnet.leaky_relu, x, negative_slope=slope),
          _grads(jax.nn.leaky_relu, x, negative_slope=slope))


@pytest.mark.parametrize("dtype", DTYPES)
def test_deliberate_differences_from_jax_nn(dtype):
    inf, nan = dtype(np.inf), dtype(np.nan)
    # hard_silu(−∞) is the limit 0 (jax.nn: −∞·0 = NaN)
    assert float(jax.nn.hard_silu(jnp.asarray(-inf))) != float(jax.nn.hard_silu(jnp.asarray(-inf)))
    assert float(fnnet.hard_silu(jnp.asarray(-inf))) == 0.0
    # sparse_plus' at ±max and ±∞: jax.nn's where leaks 0·∞ = NaN; the derivative is 1 and 0
    big = dtype(np.finfo(dtype).max)
    for x, want in ((inf, 1.0), (-inf, 0.0), (big, 1.0), (-big, 0.0)):
        assert np.isnan(float(jax.grad(jax.nn.sparse_plus)(jnp.asarray(x))))
        assert float(jax.grad(fnnet.sparse_plus)(jnp.asarray(x))) == want
    # NaN in gives a NaN gradient (jax.nn's masked rules return a constant)
    for name in JAX_NAMES:
        assert np.isnan(float(jax.grad(getattr(fnnet, name))(jnp.asarray(nan)))), name
        assert np.isnan(float(getattr(fnnet, name)(jnp.asarray(nan)))), name


def test_hard_swish_is_hard_silu_registered_once():
    assert fnnet.hard_swish is fnnet.hard_silu
    assert fnnet.activations.hard_swish is fnnet.hard_silu
    assert "hard_silu" in fnnet.registry() and "hard_swish" not in fnnet.registry()


@pytest.mark.parametrize("name", JAX_NAMES)
def test_signatures_are_jax_nn_s(name):
    got = inspect.signature(getattr(fnnet, name))
    want = inspect.signature(getattr(jax.nn, name))
    assert [(p.name, p.default) for p in got.parameters.values()] == [
        (p.name, p.default) for p in want.parameters.values()
    ]


def test_torch_signatures():
    def params(f):
        return [(p.name, p.default) for p in inspect.signature(f).parameters.values()]

    empty = inspect.Parameter.empty
    assert params(fnnet.hardshrink) == [("input", empty), ("lambd", 0.5)]
    assert params(fnnet.softshrink) == [("input", empty), ("lambd", 0.5)]
    assert params(fnnet.threshold) == [("input", empty), ("threshold", empty), ("value", empty)]
    assert params(fnnet.prelu) == [("input", empty), ("weight", empty)]
    assert params(fnnet.rrelu) == [
        ("input", empty), ("lower", 1 / 8), ("upper", 1 / 3), ("training", False), ("key", None)
    ]  # torch's positional order; the key (fnnet's addition) last


@pytest.mark.parametrize("name", JAX_NAMES + TORCH_ONLY)
def test_every_function_runs_a_hand_rule(name):
    f = getattr(fnnet, name)
    args = {"threshold": (0.5, 0.0), "prelu": (jnp.ones(1),)}.get(name, ())
    jaxpr = str(jax.make_jaxpr(lambda x: f(x, *args))(jnp.ones((2, 3))))
    assert "custom_jvp_call" in jaxpr


# ----- kinks ---------------------------------------------------------------------------------------
KINK_PRIMITIVES = [
    "relu", "relu6", "leaky_relu", "hard_tanh", "hard_sigmoid", "hard_silu", "sparse_plus",
    "sparse_sigmoid", "hardshrink", "softshrink", "threshold",
]

# jax.grad(jax.nn.X) at each kink, measured on jax 0.10.2 and written down, so that a change in
# jax.nn's convention shows here as well as in the live comparison below.
JAX_KINK_VALUES = {
    "relu": {0.0: 0.0},
    "relu6": {0.0: 0.0, 6.0: 0.0},
    "leaky_relu": {0.0: 1.0},
    "hard_tanh": {-1.0: 1.0, 1.0: 1.0},
    "hard_sigmoid": {-3.0: 0.0, 3.0: 0.0},
    "hard_silu": {-3.0: 0.0, 3.0: 1.0},
    "sparse_plus": {-1.0: 0.0, 1.0: 1.0},
    "sparse_sigmoid": {-1.0: 0.25, 1.0: 0.25},
}

# torch's derivative at each kink, read from aten/src/ATen/native/cpu/Activation.cpp (torch is not a
# dependency): threshold_backward (x <= θ ? 0 : g), leaky_relu_backward (x > 0 ? g : g·α),
# hardtanh_backward (x <= min || x >= max ? 0 : g), hardsigmoid_backward (−3 < x < 3 ? g/6 : 0),
# hardswish_backward (x < −3 ? 0 : x <= 3 ? g·(x/3 + ½) : g), shrink_backward (−λ <= x <= λ ? 0 : g).
TORCH_KINK_VALUES = {
    "relu": {0.0: 0.0},
    "relu6": {0.0: 0.0, 6.0: 0.0},
    "leaky_relu": {0.0: 0.01},
    "hard_tanh": {-1.0: 0.0, 1.0: 0.0},
    "hard_sigmoid": {-3.0: 0.0, 3.0: 0.0},
    "hard_silu": {-3.0: -0.5, 3.0: 1.5},
    "hardshrink": {-0.5: 0.0, 0.5: 0.0},
    "softshrink": {-0.5: 0.0, 0.5: 0.0},
    "threshold": {0.0: 0.0},
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", KINK_PRIMITIVES)
def test_rule_at_every_declared_kink(name, dtype):
    prim = fnnet.get(name)
    assert prim.kinks, name
    declared = {k.at: k for k in prim.kinks}
    want_jax = JAX_KINK_VALUES.get(name)
    want_torch = TORCH_KINK_VALUES.get(name, {})
    if want_jax is not None:
        assert set(declared) == set(want_jax)
    else:  # torch-only: torch's convention is fnnet's
        assert set(declared) == set(want_torch)
    for at, kink in declared.items():
        x = jnp.asarray(at, dtype)
        f = lambda v: prim.fn(v, **prim.variants[0])  # noqa: E731  (threshold's parameters are required)
        reverse = jax.grad(f)(x)
        forward = jax.jvp(f, (x,), (jnp.ones_like(x),))[1]
        assert reverse.dtype == dtype
        assert float(reverse) == kink.derivative == float(forward), (at, reverse, forward)
        if want_jax is not None:
            assert kink.derivative == want_jax[at]
            # and it is what jax.nn gives today
            assert float(jax.grad(getattr(jax.nn, name))(x)) == kink.derivative
            torch_value = want_torch.get(at)
            if torch_value is not None and torch_value != kink.derivative:
                assert kink.torch == torch_value, (name, at, kink.torch)
            else:
                assert kink.torch is None, (name, at, kink.torch)
        else:
            assert kink.derivative == want_torch[at] and kink.torch is None
        assert kink.note, "every kink explains its choice"


@pytest.mark.parametrize("lambd", [0.5, 1.5])
@pytest.mark.parametrize("name", ["hardshrink", "softshrink"])
def test_shrink_kinks_follow_lambd(name, lambd):
    f = getattr(fnnet, name)
    for at in (-lambd, lambd):
        assert float(jax.grad(f)(at, lambd)) == 0.0  # torch: 0 on the closed interval
        assert float(jax.grad(f)(math.nextafter(at, math.copysign(math.inf, at)), lambd)) == 1.0


def test_threshold_kink_follows_threshold():
    assert float(jax.grad(fnnet.threshold)(0.5, 0.5, -2.0)) == 0.0
    assert float(jax.grad(fnnet.threshold)(math.nextafter(0.5, 1.0), 0.5, -2.0)) == 1.0


def test_hard_silu_kinks_are_where_the_derivative_jumps():
    # one-sided difference quotients on either side of ±3 (exact for a polynomial piece up to the
    # O(h) curvature term, h = 1e-6: error ≤ h/3 for the quadratic x(x+3)/6), bracketing the rule
    f = lambda x: float(fnnet.hard_silu(jnp.asarray(x)))
    h = 1e-6
    for at, left, right in ((-3.0, 0.0, -0.5), (3.0, 1.5, 1.0)):
        assert abs((f(at) - f(at - h)) / h - left) < h
        assert abs((f(at + h) - f(at)) / h - right) < h


# ----- the torch-only functions against torch's formulas ------------------------------------------
def _np_grid():
    return np.concatenate([np.linspace(-4, 4, 321), [-0.5, 0.5, 1.5, -1.5, 0.0, np.inf, -np.inf, np.nan]])


@pytest.mark.parametrize("lambd", [0.5, 1.5, 0.0])
def test_hardshrink_softshrink_values(lambd):
    x = _np_grid()
    with np.errstate(invalid="ignore"):
        hard = np.where((x >= -lambd) & (x <= lambd), 0.0, x)  # torch: (−λ <= x <= λ) ? 0 : x
        soft = np.where(x > lambd, x - lambd, np.where(x < -lambd, x + lambd, x * 0))
    _same(fnnet.hardshrink(jnp.asarray(x), lambd), hard)
    _same(fnnet.softshrink(jnp.asarray(x), lambd), soft)
    dx = np.where((x >= -lambd) & (x <= lambd), 0.0, 1.0)
    dx[np.isnan(x)] = np.nan
    _same(_grads(fnnet.hardshrink, jnp.asarray(x), lambd=lambd), dx)
    _same(_grads(fnnet.softshrink, jnp.asarray(x), lambd=lambd), dx)


@pytest.mark.parametrize("th, value", [(0.0, 0.0), (0.5, -2.0), (-1.0, 7.0)])
def test_threshold_values(th, value):
    x = _np_grid()
    want = np.where(x <= th, value, x)  # torch's kernel: x <= θ ? value : x (NaN passes)
    _same(fnnet.threshold(jnp.asarray(x), th, value), want)
    dx = np.where(x <= th, 0.0, 1.0)
    dx[np.isnan(x)] = np.nan
    _same(jax.vmap(jax.grad(fnnet.threshold), (0, None, None))(jnp.asarray(x), th, value), dx)


def test_threshold_zero_zero_is_relu():
    x = _grid(np.float64)
    _same(fnnet.threshold(x, 0.0, 0.0), fnnet.relu(x))
    _same(jax.vmap(jax.grad(fnnet.threshold), (0, None, None))(x, 0.0, 0.0), _grads(fnnet.relu, x))


# ----- prelu ---------------------------------------------------------------------------------------
def _torch_prelu(x, w):
    """torch's formula: x > 0 ? x : w·x, w along axis 1 (or everywhere for one weight)."""
    w = np.asarray(w)
    wb = w.reshape(()) if w.size == 1 else w.reshape((-1,) + (1,) * (x.ndim - 2))
    return np.where(x > 0, x, wb * x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "x_shape, w_shape",
    [((2, 3, 4, 5), (3,)), ((2, 3), (3,)), ((2, 3, 4), (1,)), ((2, 3, 4), ()), ((7,), (1,)), ((), ())],
)
def test_prelu_broadcasting_values_and_gradients(x_shape, w_shape, dtype):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal(x_shape), dtype)
    w = jnp.asarray(rng.uniform(-0.5, 0.5, w_shape), dtype)
    g = jnp.asarray(rng.standard_normal(x_shape), dtype)

    @jax.jit  # one compilation per case instead of one per eager op
    def run(x, w, g):
        y, vjp = jax.vjp(fnnet.prelu, x, w)
        return y, vjp(g), jax.vjp(fnnet.prelu.reference, x, w)[1](g)

    y, (dx, dw), (rx, rw) = run(x, w, g)
    assert y.shape == x_shape and y.dtype == dtype
    _same(y, _torch_prelu(np.asarray(x), np.asarray(w)))
    assert dx.shape == x_shape and dw.shape == w_shape and dw.dtype == dtype
    # dx is exact (g or w·g in both); dw is a sum over up to 40 terms in a possibly different order:
    # |error| ≤ n·eps·Σ|x·g| with n = 40
    chex.assert_trees_all_close(dx, rx, rtol=0, atol=0)
    eps = float(jnp.finfo(dtype).eps)
    bound = 40 * eps * float(jnp.sum(jnp.abs(x * g))) + float(jnp.finfo(dtype).tiny)
    assert float(jnp.max(jnp.abs(dw - rw))) <= bound


def test_prelu_kink_is_weight_and_weight_gradient_zero(key):
    x = jnp.zeros((2, 3))
    w = jnp.array([0.1, 0.2, 0.3])
    dx, dw = jax.vjp(fnnet.prelu, x, w)[1](jnp.ones_like(x))
    _same(dx, jnp.broadcast_to(w, x.shape))  # torch: x > 0 ? g : w·g
    _same(dw, jnp.zeros(3))
    # the same from forward mode
    tx = jnp.ones_like(x)
    _same(jax.jvp(fnnet.prelu, (x, w), (tx, jnp.zeros(3)))[1], jnp.broadcast_to(w, x.shape))


def test_prelu_errors():
    with pytest.raises(ValueError, match=r"'weight' of shape \(4,\).*input of shape \(2, 3, 5\)"):
        fnnet.prelu(jnp.ones((2, 3, 5)), jnp.ones(4))
    with pytest.raises(ValueError, match=r"'weight' of shape \(2,\).*input of shape \(2,\)"):
        fnnet.prelu(jnp.ones(2), jnp.ones(2))  # no channel axis below 2 dimensions
    with pytest.raises(ValueError, match=r"shape \(1, 3\)"):
        fnnet.prelu(jnp.ones((2, 3)), jnp.ones((1, 3)))
    with pytest.raises(TypeError, match="'weight' must have the dtype of 'input' \\(float32\\); got float64"):
        fnnet.prelu(jnp.ones((2, 3), jnp.float32), jnp.ones(3, jnp.float64))
    with pytest.raises(TypeError, match="'input'.*bool"):
        fnnet.prelu(jnp.ones((2, 3), bool), jnp.ones(3))


# ----- other errors --------------------------------------------------------------------------------
def test_softshrink_negative_lambd_is_refused():
    with pytest.raises(ValueError, match="'lambd' must be >= 0.*got -0.5"):
        fnnet.softshrink(jnp.ones(2), -0.5)


def test_integer_input_is_promoted_as_jnp_promotes_it():
    """As jax.numpy promotes (jnp.sin(int32) is float32)."""
    y = fnnet.relu(jnp.arange(-1, 2, dtype=jnp.int32))
    assert y.dtype == jnp.float32  # int32 to float32, as jnp.sin promotes it
    np.testing.assert_array_equal(y, [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(fnnet.threshold(jnp.arange(3, dtype=jnp.int32), 0.5, -1.0), [-1.0, 1.0, 2.0])
    with pytest.raises(TypeError, match="argument 'x' must have a floating dtype.*bool"):
        fnnet.relu(jnp.ones(3, bool))


def test_threshold_requires_both_hyperparameters():
    with pytest.raises(TypeError, match="value"):
        fnnet.threshold(jnp.ones(2), 0.5)


def test_traced_slope_is_accepted_as_in_jax_nn():
    x = jnp.array([-2.0, 3.0])
    np.testing.assert_array_equal(jax.jit(fnnet.leaky_relu)(x, 0.1), jax.nn.leaky_relu(x, 0.1))
    # its derivative, from autodiff of the forward (the hand rule covers x)
    d = jax.grad(lambda a: fnnet.leaky_relu(x, a).sum())(0.1)
    np.testing.assert_allclose(d, -2.0)


# ----- the lecture's hard tanh --------------------------------------------------------------------
def test_hard_tanh_is_identity_in_the_middle():
    # The lecture's note prints 0 for −1 ≤ z ≤ 1, a typo: the function is z there.
    z = jnp.array([-3.0, -1.0, -0.25, 0.0, 0.75, 1.0, 2.0])
    _same(fnnet.hard_tanh(z), jnp.array([-1.0, -1.0, -0.25, 0.0, 0.75, 1.0, 1.0]))
