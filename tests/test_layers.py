"""fnnet.layers: the dense layer's hand gradients in the shape convention, its errors, the initialisers'
statistics, and the MLP against plain jnp.

Tolerance for hand gradients vs ``jax.grad`` of a plain jnp dense (``_assert_grads_close``): with
L = ⟨G, z⟩ each gradient entry is a sum of n products of two factors (∂L/∂W_oi = Σ_batch G_o x_i:
n = batch size; ∂L/∂x_i = Σ_o G_o W_oi: n = n_out; ∂L/∂b_o: n = batch size, no product). A sum of n
rounded products is within (n + 1)·ε·Σ|terms| of the exact value, so two implementations are within
2(n + 1)·ε·Σ|terms|; Σ|terms| is the same gradient computed from |W|, |x|, |G| in float64. The float32
rule is compared with the float64 plain gradient, whose own error is ~1e-9 of that bound.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
from fnnet import layers
from fnnet.layers import dense, init_dense, init_mlp, mlp

DTYPES = [jnp.float32, jnp.float64]


def _eps(dtype):
    return float(jnp.finfo(dtype).eps)


def plain_dense(params, x):
    """The layer in plain jnp, per example W x + b, for jax.grad to differentiate."""
    return jnp.einsum("oi,...i->...o", params["W"], x, precision="highest") + params["b"]


def _params_and_x(seed, batch, n_in, n_out, dtype):
    """Test data from NumPy's generator (a jax.random draw compiles a program per shape), drawn in
    float32 so that both dtypes see the same numbers."""
    rng = np.random.default_rng(seed)
    draw = lambda shape, lo, hi: jnp.asarray(rng.uniform(lo, hi, shape).astype(np.float32), dtype)  # noqa: E731
    params = {"W": draw((n_out, n_in), -1, 1), "b": draw((n_out,), -1, 1)}
    return params, draw(batch + (n_in,), -2, 2)


def _normal(seed, shape):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape))


def _loss(layer):
    return lambda params, x, G: jnp.vdot(G, layer(params, x))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("batch", [(), (7,), (2, 3)], ids=["none", "n", "a-b"])
def test_dense_gradients_match_jax_grad_of_plain_dense(batch, dtype):
    n_in, n_out = 5, 3
    params, x = _params_and_x(0, batch, n_in, n_out, dtype)
    G = _normal(1, batch + (n_out,))

    z = dense(params, x)
    assert z.shape == batch + (n_out,) and z.dtype == dtype
    grads, gx = jax.jit(jax.grad(_loss(dense), argnums=(0, 1)))(params, x, G.astype(dtype))

    up = lambda t: jax.tree.map(lambda a: a.astype(jnp.float64), t)  # noqa: E731
    ref, ref_x = jax.grad(_loss(plain_dense), argnums=(0, 1))(up(params), up(x), G)
    absp = jax.tree.map(jnp.abs, up(params))
    bound, bound_x = jax.grad(_loss(plain_dense), argnums=(0, 1))(absp, jnp.abs(up(x)), jnp.abs(G))

    n_batch = max(math.prod(batch), 1)
    for name, got, want, bnd, n in [
        ("W", grads["W"], ref["W"], bound["W"], n_batch),
        ("b", grads["b"], ref["b"], bound["b"], n_batch),
        ("x", gx, ref_x, bound_x, n_out),
    ]:
        # The shape convention: each gradient has the shape (and dtype) of what it differentiates.
        expected_shape = {"W": (n_out, n_in), "b": (n_out,), "x": batch + (n_in,)}[name]
        assert got.shape == expected_shape and got.dtype == dtype, f"grad {name}: {got.dtype}{got.shape}"
        err = np.abs(np.asarray(got, np.float64) - np.asarray(want))
        tol = 2 * (n + 1) * _eps(dtype) * np.asarray(bnd) + 1e-300
        assert np.all(err <= tol), f"grad {name}: max error/tol {np.max(err / tol):.3g}"


def test_dense_vjp_is_the_lectures_formulas():
    """∂L/∂W = Σ_batch δxᵀ (outer products summed), ∂L/∂b = Σ_batch δ, ∂L/∂x = Wᵀδ per example.

    Written here example by example in float64; the rule computes them as two matrix products, so the
    sums are in different orders: ≤ 2(n + 1)ε·Σ|terms| with n = 6 (batch) or 3 (n_out).
    """
    params, x = _params_and_x(2, (2, 3), 4, 3, jnp.float64)
    delta = _normal(3, (2, 3, 3))
    _, vjp = jax.vjp(layers.affine, params["W"], params["b"], x)
    gW, gb, gx = vjp(delta)
    d2, x2 = np.asarray(delta).reshape(-1, 3), np.asarray(x).reshape(-1, 4)
    outer_sum = sum(np.outer(d, xi) for d, xi in zip(d2, x2))
    abs_outer = sum(np.outer(np.abs(d), np.abs(xi)) for d, xi in zip(d2, x2))
    eps = _eps(jnp.float64)
    assert np.all(np.abs(gW - outer_sum) <= 14 * eps * abs_outer)
    assert np.all(np.abs(gb - d2.sum(0)) <= 14 * eps * np.abs(d2).sum(0))
    Wt_delta = np.einsum("oi,...o->...i", np.asarray(params["W"]), np.asarray(delta))
    abs_Wt_delta = np.einsum("oi,...o->...i", np.abs(np.asarray(params["W"])), np.abs(np.asarray(delta)))
    assert np.all(np.abs(gx - Wt_delta) <= 8 * eps * abs_Wt_delta)


def test_dense_hand_rule_is_in_the_jaxpr():
    params, x = _params_and_x(4, (2,), 4, 3, jnp.float32)
    jaxpr = str(jax.make_jaxpr(dense)(params, x))
    assert "custom_jvp_call" in jaxpr and "name=affine" in jaxpr


def test_bias_free_params():
    """Without "b" the layer is z = Wx, and jax.grad returns W's gradient only."""
    params, x = _params_and_x(5, (4,), 3, 2, jnp.float64)
    W_only = {"W": params["W"]}
    np.testing.assert_array_equal(dense(W_only, x), dense({"W": params["W"], "b": jnp.zeros(2)}, x))
    g = jax.grad(lambda p: dense(p, x).sum())(W_only)
    assert set(g) == {"W"} and g["W"].shape == (2, 3)


# ----- bad input ----------------------------------------------------------------------------------
def test_dense_input_of_wrong_width_names_both_shapes():
    params = {"W": jnp.ones((3, 5)), "b": jnp.ones(3)}
    with pytest.raises(ValueError, match=r"\(7, 4\).*\(3, 5\)"):
        dense(params, jnp.ones((7, 4)))


@pytest.mark.parametrize(
    "params,x,err,match",
    [({"b": jnp.ones(3)}, jnp.ones(5), KeyError, r"no key 'W'.*keys present: \['b'\]"),
     ({"W": jnp.ones((3, 5)), "b": jnp.ones(3), "c": 1.0}, jnp.ones(5), KeyError, r"unexpected keys \['c'\]"),
     ({"W": jnp.ones(5), "b": jnp.ones(3)}, jnp.ones(5), ValueError, r"must be 2-D.*got shape \(5,\)"),
     ({"W": jnp.ones((3, 5)), "b": jnp.ones(4)}, jnp.ones(5), ValueError, r"\(n_out,\) = \(3,\).*\(3, 5\).*got shape \(4,\)"),
     ({"W": jnp.ones((3, 5)), "b": jnp.ones((1, 3))}, jnp.ones(5), ValueError, r"got shape \(1, 3\)"),
     ({"W": jnp.ones((3, 5)), "b": jnp.ones(3)}, jnp.ones(()), ValueError, r"x of shape \(\) does not fit"),
     ({"W": jnp.ones((3, 5)), "b": jnp.ones(3)}, jnp.ones(5, jnp.int32), TypeError, r"'x' must have a floating dtype.*int32"),
     ({"W": jnp.ones((3, 5), jnp.int32), "b": jnp.ones(3)}, jnp.ones(5), TypeError, r"params\['W'\].*int32"),
     ({"W": jnp.ones((3, 5), jnp.float32), "b": jnp.ones(3, jnp.float32)}, jnp.ones(5, jnp.float64), TypeError,
      r"share one floating dtype.*float32.*x: float64"),
     ([jnp.ones((3, 5)), jnp.ones(3)], jnp.ones(5), TypeError, "params must be a dict")],
)
def test_dense_bad_input(params, x, err, match):
    with pytest.raises(err, match=match):
        dense(params, x)


# ----- initialisers ---------------------------------------------------------------------------------
N_IN, N_OUT = 300, 100  # N = 30,000 weights: sampling errors of ~0.6% of the variance
Z = 5.0  # a 5-sigma band: a correct initialiser fails with probability < 1e-6 per statistic


def test_glorot_uniform_limit_and_variance():
    """U(−a, a), a = √(6/(n_in + n_out)): every |W| ≤ a, the largest within a(1 − 20/N) of a
    (P[max < a(1 − 20/N)] = (1 − 20/N)^N ≈ e^{−20}), the mean within Zσ/√N of 0, and the sample
    variance within Z·SE of a²/3, where SE = √((μ₄ − σ⁴)/N) = a²√(4/45/N) (μ₄ = a⁴/5 for the uniform)."""
    params = init_dense(jax.random.key(6), N_IN, N_OUT, dtype=jnp.float64)
    W = np.asarray(params["W"])
    assert W.shape == (N_OUT, N_IN) and params["W"].dtype == jnp.float64
    np.testing.assert_array_equal(params["b"], np.zeros(N_OUT))
    a, N = math.sqrt(6 / (N_IN + N_OUT)), W.size
    assert np.max(np.abs(W)) <= a and np.max(np.abs(W)) >= a * (1 - 20 / N)
    assert abs(W.mean()) <= Z * (a / math.sqrt(3)) / math.sqrt(N)
    assert abs(W.var() - a * a / 3) <= Z * a * a * math.sqrt(4 / 45 / N)


def test_he_normal_std():
    """N(0, 2/n_in): mean within Zσ/√N of 0, variance within Z·σ²√(2/N) of σ² (Gaussian: μ₄ = 3σ⁴), and
    the variance depends on n_in only (n_in ≠ n_out here, so using fan-out would miss by a factor 3)."""
    params = init_dense(jax.random.key(7), N_IN, N_OUT, init="he", dtype=jnp.float64)
    W = np.asarray(params["W"])
    var, N = 2 / N_IN, W.size
    assert abs(W.mean()) <= Z * math.sqrt(var / N)
    assert abs(W.var() - var) <= Z * var * math.sqrt(2 / N)


def test_init_dense_options():
    key = jax.random.key(8)
    p = init_dense(key, 4, 3, bias=0.1)
    assert p["W"].dtype == jnp.float32 and p["b"].dtype == jnp.float32
    np.testing.assert_array_equal(p["b"], np.full(3, 0.1, np.float32))
    custom = init_dense(key, 4, 3, init=lambda k, shape, dtype: jnp.full(shape, 0.5, dtype))
    np.testing.assert_array_equal(custom["W"], np.full((3, 4), 0.5, np.float32))
    # jax.nn.initializers with the (n_out, n_in) axes named: He's fan-in is then n_in
    he = jax.nn.initializers.he_normal(in_axis=-1, out_axis=-2)
    np.testing.assert_array_equal(init_dense(key, 4, 3, init=he)["W"], he(key, (3, 4), jnp.float32))
    with pytest.raises(ValueError, match=r"init must be one of \['glorot', 'he'\]"):
        init_dense(key, 4, 3, init="xavier")
    with pytest.raises(ValueError, match="n_in must be a positive int; got 0"):
        init_dense(key, 0, 3)
    with pytest.raises(TypeError, match="dtype must be floating.*int32"):
        init_dense(key, 4, 3, dtype=jnp.int32)
    with pytest.raises(ValueError, match=r"init returned float32\(4, 3\); expected float32\(3, 4\)"):
        init_dense(key, 4, 3, init=lambda k, shape, dtype: jnp.zeros(shape[::-1], dtype))


def test_init_mlp_shapes_and_independent_layers():
    params = init_mlp(jax.random.key(9), [4, 8, 8, 2], init="he", dtype=jnp.float64)
    assert [p["W"].shape for p in params] == [(8, 4), (8, 8), (2, 8)]
    assert all(p["W"].dtype == jnp.float64 and p["b"].shape == (p["W"].shape[0],) for p in params)
    assert not np.allclose(params[1]["W"][:, :4], params[0]["W"])  # each layer its own key
    with pytest.raises(ValueError, match="at least an input and an output size"):
        init_mlp(jax.random.key(0), [4])


# ----- mlp ------------------------------------------------------------------------------------------
def plain_mlp(params, x, act, final=None):
    for i, p in enumerate(params):
        x = plain_dense(p, x)
        f = final if i == len(params) - 1 else act
        x = f(x) if f is not None else x
    return x


@pytest.mark.parametrize(
    "activation,plain_act,final,plain_final",
    [("relu", jax.nn.relu, None, None),
     ("tanh", jnp.tanh, "sigmoid", jax.nn.sigmoid),
     (jnp.sin, jnp.sin, None, None),
     (None, None, None, None)],
    ids=["relu", "tanh-sigmoid", "callable", "linear"],
)
def test_mlp_matches_plain_jnp(activation, plain_act, final, plain_final):
    """Values and parameter gradients of a 3-layer MLP in float64 vs plain jnp + jax.grad.

    Every quantity is a composition of ≤ 3 layers of ≤ 8-term dot products and activations accurate
    to a few ε; forward and backward each add ≤ (8 + 1)ε per layer relative to the largest entry, so
    ≤ 3·2·9ε ≈ 54ε, below the 100ε used (measured: ≤ 2.5ε), while a wrong rule errs by O(1).
    """
    tol = 100 * _eps(jnp.float64)
    if isinstance(activation, str) and activation not in fnnet.registry():
        pytest.skip(f"{activation} not registered in this checkout")
    params = init_mlp(jax.random.key(10), [5, 8, 8, 3], dtype=jnp.float64)
    x = _normal(11, (4, 5))
    out = mlp(params, x, activation=activation, final_activation=final)
    ref = plain_mlp(params, x, plain_act, plain_final)
    np.testing.assert_allclose(out, ref, rtol=0, atol=tol * float(jnp.max(jnp.abs(ref))))
    g = jax.grad(lambda p: jnp.sum(mlp(p, x, activation=activation, final_activation=final) ** 2))(params)
    g_ref = jax.grad(lambda p: jnp.sum(plain_mlp(p, x, plain_act, plain_final) ** 2))(params)
    for layer, layer_ref in zip(g, g_ref):
        for k in ("W", "b"):
            scale = float(jnp.max(jnp.abs(layer_ref[k])))
            np.testing.assert_allclose(layer[k], layer_ref[k], rtol=0, atol=tol * max(scale, 1e-300))


def test_mlp_bad_input():
    params = init_mlp(jax.random.key(0), [3, 4, 2])
    with pytest.raises(ValueError, match="unknown activation 'relux'"):
        mlp(params, jnp.ones(3), activation="relux")
    with pytest.raises(ValueError, match="an activation takes one"):
        mlp(params, jnp.ones(3), activation="matmul")
    with pytest.raises(ValueError, match="params is empty"):
        mlp([], jnp.ones(3))
    with pytest.raises(TypeError, match="list of dense dicts"):
        mlp(params[0], jnp.ones(3))
    with pytest.raises(ValueError, match=r"layer params\[1\]: fnnet.dense: x of shape \(4,\) does not fit"):
        mlp([params[0], {"W": jnp.ones((2, 5), jnp.float32), "b": jnp.ones(2, jnp.float32)}],
            jnp.ones(3, jnp.float32))


def test_init_mistakes_are_named():
    with pytest.raises(TypeError, match=r"sizes must be the list of layer sizes .* got int 4"):
        init_mlp(jax.random.key(0), 4)
    with pytest.raises(TypeError, match=r"init_dense: argument 'key' must be one PRNG key .* got int 0"):
        init_dense(0, 4, 3)
    with pytest.raises(TypeError, match=r"init_mlp: argument 'key' must be one PRNG key"):
        init_mlp(jax.random.split(jax.random.key(0), 3), [2, 3])  # a batch of keys is not one key
    # both kinds of key work
    assert init_dense(jax.random.PRNGKey(0), 4, 3)["W"].shape == (3, 4)
    assert init_mlp(jax.random.key(0), (2, 5, 3))[1]["W"].shape == (3, 5)


def test_mlp_names_a_flax_layout_weight():
    p = init_dense(jax.random.key(0), 4, 3)
    with pytest.raises(ValueError, match=r"the layout of Flax and Keras; fnnet's W is \(n_out, n_in\): pass W.T"):
        mlp([{"W": p["W"].T, "b": p["b"]}], jnp.ones((2, 4)))


def test_flax_layout_weight_is_named_with_the_fix():
    """W of shape (n_in, n_out), as Flax and Keras store it: the error names W's layout, not b."""
    W = jnp.ones((4, 3))  # n_in = 4, n_out = 3, transposed
    with pytest.raises(ValueError, match=r"\(n_in, n_out\) = \(4, 3\), the layout of Flax and Keras; fnnet's W is \(n_out, n_in\): pass W.T"):
        dense({"W": W, "b": jnp.ones(3)}, jnp.ones((2, 4)))
