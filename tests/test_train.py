"""fnnet.train: the hand-written backward pass, optimisers, scan epochs, the driver; and the
``python -m fnnet train`` command (fnnet._cli).

Compiling is the cost here (about a second per jitted function on a 2-core CPU), so networks are tiny
and the training tests share a few compiled epochs.
"""
import functools
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
from fnnet import _cli, datasets, train

DTYPES = [jnp.float32, jnp.float64]


def _mlp_params(sizes, dtype=np.float32, seed=0):
    """Glorot-uniform MLP params drawn with numpy (as init_mlp's, without its eager jax.random ops,
    which cost seconds of one-off compilation in a test run)."""
    rng = np.random.default_rng(seed)
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        limit = np.sqrt(6.0 / (n_in + n_out))
        params.append({
            "W": jnp.asarray(rng.uniform(-limit, limit, (n_out, n_in)), dtype),
            "b": jnp.asarray(rng.uniform(-0.1, 0.1, n_out), dtype),
        })
    return params


def _problem(dtype, sizes=(5, 7, 6, 3), batch=11, seed=0):
    params = _mlp_params(sizes, dtype, seed)
    x = jnp.asarray(np.random.default_rng(seed + 1).standard_normal((batch, sizes[0])), dtype)
    labels = jnp.asarray(np.arange(batch) % sizes[-1], jnp.int32)
    return params, x, labels


def _max_rel_err(a, b):
    """max |a − b| over max |b|, over every leaf of two pytrees of the same structure."""
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    scale = max(float(jnp.max(jnp.abs(v))) for v in lb)
    return max(float(jnp.max(jnp.abs(u - v))) for u, v in zip(la, lb)) / scale


def _plain_loss(params, x, labels, activation, loss):
    """The same network and loss written in plain jnp and jax.nn: jax.grad differentiates it on its
    own, with no fnnet rule involved (an independent oracle)."""
    act = None if activation is None else fnnet.primitive.get(activation).reference
    h = x
    for i, layer in enumerate(params):
        h = jnp.einsum("oi,ni->no", layer["W"], h) + layer["b"]
        if i < len(params) - 1 and act is not None:
            h = act(h)
    one_hot = jax.nn.one_hot(labels, h.shape[-1], dtype=h.dtype)
    if loss == "softmax_cross_entropy":
        return -jnp.mean(jnp.sum(one_hot * jax.nn.log_softmax(h), axis=-1))
    return jnp.mean(jnp.mean((h - one_hot) ** 2, axis=-1))


# ---------------------------------------------------------------------------------------------
# The hand-written backward pass
# ---------------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("activation", "loss"))
def _three_ways(params, x, labels, activation, loss):
    """(value, grads) by the hand loop, by jax.value_and_grad of loss_fn, by jax.value_and_grad of
    plain jnp; one compiled function (compiling is this file's main cost)."""
    return (
        train.loss_and_grad(params, x, labels, activation=activation, loss=loss),
        jax.value_and_grad(train.loss_fn)(params, x, labels, activation=activation, loss=loss),
        jax.value_and_grad(_plain_loss)(params, x, labels, activation, loss),
    )


@pytest.mark.parametrize(
    "dtype, activation, loss",
    [
        (jnp.float32, "tanh", "softmax_cross_entropy"),
        (jnp.float64, "tanh", "softmax_cross_entropy"),
        (jnp.float64, "relu", "softmax_cross_entropy"),
        (jnp.float32, "gelu", "mse"),
        (jnp.float64, "sigmoid", "mse"),
        (jnp.float32, None, "softmax_cross_entropy"),
    ],
)
def test_hand_backprop_equals_value_and_grad(dtype, activation, loss):
    params, x, labels = _problem(dtype)
    (value, grads), (ref_value, ref_grads), (plain_value, plain_grads) = _three_ways(
        params, x, labels, activation, loss
    )
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    for g, p in zip(jax.tree.leaves(grads), jax.tree.leaves(params)):
        assert g.shape == p.shape and g.dtype == p.dtype
    eps = float(jnp.finfo(dtype).eps)

    # 1. jax.value_and_grad of the same loss through the public functions: the same rules, applied by
    # JAX's custom_vjp machinery instead of our loop; the same arithmetic, so a few ulp at most.
    assert abs(float(value - ref_value)) <= 4 * eps * abs(float(ref_value))
    assert _max_rel_err(grads, ref_grads) <= 4 * eps

    # 2. jax.value_and_grad of plain jnp (activations' own formulas, jax.nn.log_softmax): different
    # arithmetic, so rounding differs. Each gradient entry is a sum of ≲ 10 products through three
    # layers; 200 ulp of the largest entry covers that accumulation with room, and a wrong rule is off
    # by O(1).
    assert abs(float(value - plain_value)) <= 200 * eps * abs(float(plain_value))
    assert _max_rel_err(grads, plain_grads) <= 200 * eps


@jax.jit
def _bias_free_partial(params, x, soft):
    act = functools.partial(fnnet.leaky_relu, negative_slope=0.3)
    return (
        train.loss_and_grad(params, x, soft, activation=act),
        jax.value_and_grad(train.loss_fn)(params, x, soft, activation=act),
        train.loss_and_grad(params, x, soft, activation="leaky_relu")[1],
    )


def test_hand_backprop_bias_free_soft_labels_and_partial_activation():
    params, x, labels = _problem(jnp.float64)
    params = [{"W": layer["W"]} for layer in params]  # no "b": b = 0
    logits = np.random.default_rng(3).standard_normal((x.shape[0], 3))
    soft = jnp.asarray(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), jnp.float64)
    (value, grads), (ref_value, ref_grads), default = _bias_free_partial(params, x, soft)
    assert all(set(g) == {"W"} for g in grads)
    eps = float(jnp.finfo(jnp.float64).eps)  # same rules, same arithmetic: a few ulp
    assert abs(float(value - ref_value)) <= 4 * eps * abs(float(ref_value))
    assert _max_rel_err(grads, ref_grads) <= 4 * eps
    # The slope is really used: the default 0.01 gives a different gradient.
    assert _max_rel_err(grads, default) > 1e-3


def test_activation_by_name_function_alias_and_partial():
    silu = fnnet.primitive.get("silu")
    for spec in ("silu", "swish", fnnet.silu, silu):
        assert train._activation_rule(spec) == (silu, {})
    prim, static = train._activation_rule(functools.partial(fnnet.leaky_relu, negative_slope=0.2))
    assert prim is fnnet.primitive.get("leaky_relu") and static == {"negative_slope": 0.2}
    assert train._activation_rule(None) == (None, {})
    names = train.activation_names()
    assert {"swish", "tanh", "relu", "gelu", "identity"} <= set(names)
    assert "prelu" not in names  # two arrays: not a plain activation


def test_hand_backprop_errors():
    params, x, labels = _problem(jnp.float32)
    with pytest.raises(ValueError, match="unknown activation 'tanhh'.*tanh"):
        train.loss_and_grad(params, x, labels, activation="tanhh")
    with pytest.raises(TypeError, match="hand-written rule.*'<lambda>'"):
        train.loss_and_grad(params, x, labels, activation=lambda z: z)
    with pytest.raises(TypeError, match="no hyperparameter slope"):
        train.loss_and_grad(params, x, labels, activation=functools.partial(fnnet.leaky_relu, slope=1.0))
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        train.loss_and_grad(params, x, labels, loss="hinge")
    with pytest.raises(ValueError, match=r"params\[1\]\['W'\] has shape \(3, 6\); expected \(n_out, 7\)"):
        train.loss_and_grad([params[0], params[2], params[1]], x, labels)
    with pytest.raises(ValueError, match=r"label 3 at index \(2,\) is out of range \[0, 3\)"):
        train.loss_and_grad(params, x, labels.at[2].set(3))
    with pytest.raises(ValueError, match=r"integer labels of shape \(10,\) must have the batch shape \(11,\)"):
        train.loss_and_grad(params, x, labels[:10])
    with pytest.raises(ValueError, match=r"float targets of shape \(11, 4\)"):
        train.loss_and_grad(params, x, jnp.zeros((11, 4), jnp.float32))
    with pytest.raises(TypeError, match="non-empty list of dense dicts"):
        train.loss_and_grad(params[0], x, labels)


def test_out_of_range_label_under_jit_gives_nan():
    params, x, labels = _problem(jnp.float32)
    value, _ = jax.jit(train.loss_and_grad)(params, x, labels.at[0].set(7))
    assert jnp.isnan(value)


# ---------------------------------------------------------------------------------------------
# Optimisers
# ---------------------------------------------------------------------------------------------


def _tree(a, b):
    return {"w": jnp.asarray(a, jnp.float64), "v": [jnp.asarray(b, jnp.float64)]}


def test_sgd_update_is_minus_lr_times_grad():
    opt = train.sgd(0.5)
    g = _tree([1.0, -2.0], [4.0])
    updates, state = opt.update(g, opt.init(g), g)
    chex_close(updates, _tree([-0.5, 1.0], [-2.0]))
    params = train.apply_updates(_tree([1.0, 1.0], [1.0]), updates)
    chex_close(params, _tree([0.5, 2.0], [-1.0]))


def chex_close(a, b):
    import chex

    # Exact binary fractions throughout: the optimiser arithmetic here is exact in float64.
    chex.assert_trees_all_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_recurrence(nesterov):
    lr, beta = 0.5, 0.75
    opt = train.momentum(lr, beta, nesterov=nesterov)
    g1, g2 = _tree([1.0, 2.0], [4.0]), _tree([-2.0, 0.0], [8.0])
    state = opt.init(g1)
    chex_close(state, _tree([0.0, 0.0], [0.0]))
    u1, state = opt.update(g1, state)
    u2, state = opt.update(g2, state)
    # v1 = g1, v2 = β·g1 + g2; the step is −η·v (heavy ball) or −η·(g + β·v) (Nesterov).
    v1 = g1
    v2 = jax.tree.map(lambda a, b: beta * a + b, g1, g2)
    chex_close(state, v2)
    if nesterov:
        e1 = jax.tree.map(lambda g, v: -lr * (g + beta * v), g1, v1)
        e2 = jax.tree.map(lambda g, v: -lr * (g + beta * v), g2, v2)
    else:
        e1, e2 = (jax.tree.map(lambda v: -lr * v, v) for v in (v1, v2))
    chex_close(u1, e1)
    chex_close(u2, e2)


def test_optimizer_argument_errors():
    with pytest.raises(ValueError, match="learning_rate must be a finite number in \\(0.0, inf\\]; got -0.1"):
        train.sgd(-0.1)
    with pytest.raises(ValueError, match="beta must be a finite number in \\[0.0, 1.0\\)"):
        train.momentum(0.1, beta=1.0)


def test_momentum_matches_optax():
    optax = pytest.importorskip("optax")
    params, x, labels = _problem(jnp.float64)
    ours, theirs = train.momentum(0.1, 0.9), optax.sgd(0.1, momentum=0.9)
    s_ours, s_theirs = ours.init(params), theirs.init(params)
    grad_fn = jax.jit(functools.partial(train.loss_and_grad, activation="tanh"))
    for _ in range(3):
        _, grads = grad_fn(params, x, labels)
        u_ours, s_ours = ours.update(grads, s_ours, params)
        u_theirs, s_theirs = theirs.update(grads, s_theirs, params)
        # Same recurrence, possibly a different association of the three products: a few ulp.
        assert _max_rel_err(u_ours, u_theirs) <= 8 * float(jnp.finfo(jnp.float64).eps)
        params = train.apply_updates(params, u_ours)


# ---------------------------------------------------------------------------------------------
# Steps, scan epochs, fit
# ---------------------------------------------------------------------------------------------


def test_scan_epoch_equals_steps_one_by_one():
    params, _, _ = _problem(jnp.float64, sizes=(2, 8, 2))
    ds = datasets.load("xor", n=40, dtype=np.float64)
    x, y = jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)  # 30 points
    opt = train.momentum(0.2, 0.9)
    step = train.make_step(opt, activation="tanh")
    key = jax.random.key(5)
    epoch = train.make_epoch(step, batch_size=8)
    p_scan, s_scan, losses = epoch(params, opt.init(params), x, y, key)
    assert losses.shape == (3,)  # 30 // 8 minibatches; the 6 left over wait for the next shuffle

    # The same steps, one compiled call each, on the same permutation.
    perm = np.asarray(jax.random.permutation(key, 30))
    p, s = params, opt.init(params)
    expected = []
    one_step = jax.jit(step)
    for i in range(3):
        idx = perm[8 * i: 8 * (i + 1)]
        p, s, value = one_step(p, s, x[idx], y[idx])
        expected.append(float(value))
    # The scan body and the lone step may fuse and order the float64 sums differently: three steps of
    # ≲ 10-term sums give at most a few hundred ulp; 1e-12 relative is ~4500 ulp and far below the
    # change a wrong or skipped step makes (≈ lr·|g| ≈ 1e-2).
    np.testing.assert_allclose(np.asarray(losses), expected, rtol=1e-12)
    assert _max_rel_err(p_scan, p) <= 1e-12
    assert _max_rel_err(s_scan, s) <= 1e-12


def test_epoch_is_one_scan():
    params, _, _ = _problem(jnp.float32, sizes=(2, 4, 2))
    x, y = jnp.zeros((16, 2), jnp.float32), jnp.zeros(16, jnp.int32)
    opt = train.sgd(0.1)
    epoch = train.make_epoch(train.make_step(opt, activation="tanh"), batch_size=4)
    jaxpr = jax.make_jaxpr(epoch)(params, opt.init(params), x, y, jax.random.key(0))
    text = str(jaxpr)
    assert text.count("scan[") == 1, "the epoch's steps must be one lax.scan"
    # ... with no custom_vjp inside: the gradient comes from the explicit hand-rule loop.
    assert "custom_vjp" not in text


def test_make_epoch_errors():
    step = train.make_step(train.sgd(0.1))
    with pytest.raises(ValueError, match="batch_size must be a positive int; got 0"):
        train.make_epoch(step, 0)
    with pytest.raises(ValueError, match="unknown activation"):
        train.make_step(train.sgd(0.1), activation="nope")


@pytest.fixture(scope="module")
def xor_fit():
    ds = datasets.load("xor", n=200, seed=1)
    params = _mlp_params([2, 8, 2], seed=1)
    seen = []
    result = train.fit(
        params, ds.x_train, ds.y_train, optimizer=train.momentum(0.1, 0.9), epochs=30,
        batch_size=16, activation="tanh", key=jax.random.key(2), callback=seen.append,
    )
    return ds, result, seen


def test_fit_learns_xor(xor_fit):
    ds, result, seen = xor_fit
    # 30 epochs × 9 steps = 270 steps. Blobs of std 0.3 around (±1, ±1) overlap the axes with
    # probability 2·Φ(−1/0.3) ≈ 1e-3 per point: a fitted network gets essentially every point right.
    assert train.accuracy(result.params, ds.x_train, ds.y_train, activation="tanh") >= 0.97
    assert train.accuracy(result.params, ds.x_test, ds.y_test, activation="tanh") >= 0.95
    assert result.losses[-1] < 0.1 * result.losses[0]


def test_fit_callback_and_history(xor_fit):
    _, result, seen = xor_fit
    assert [info.epoch for info in seen] == list(range(1, 31))
    assert all(info.epochs == 30 for info in seen)
    assert [info.loss for info in seen] == result.losses
    assert seen[-1].params is result.params
    assert all(a.seconds <= b.seconds for a, b in zip(seen, seen[1:]))


def test_evaluate(xor_fit):
    ds, result, _ = xor_fit
    metrics = train.evaluate(result.params, ds.x_test, ds.y_test, activation="tanh")
    assert set(metrics) == {"loss", "accuracy"}
    # evaluate goes through the public functions; the hand loop's forward pass is a second opinion.
    expected, _ = jax.jit(functools.partial(train.loss_and_grad, activation="tanh"))(
        result.params, ds.x_test, ds.y_test
    )
    # Two compilations of the same float32 loss, possibly fused differently: 1e-5 is ~80 ulp at ~0.1.
    assert abs(metrics["loss"] - float(expected)) <= 1e-5 * max(1.0, float(expected))
    assert metrics["accuracy"] == train.accuracy(result.params, ds.x_test, ds.y_test, activation="tanh")


def test_fit_learns_spirals():
    ds = datasets.load("spirals", n=300, seed=0)
    params = _mlp_params([2, 32, 32, 2])
    result = train.fit(
        params, ds.x_train, ds.y_train, optimizer=train.momentum(0.1, 0.9), epochs=40,
        batch_size=16, activation="tanh",
    )
    # 40 epochs × 14 steps = 560 steps; two noisy arms of one turn (noise 0.05, arms 0.5 apart
    # along a ray) are separable, and a 32-32 tanh network fits them; a linear model cannot.
    assert train.accuracy(result.params, ds.x_train, ds.y_train, activation="tanh") >= 0.95


def test_fit_with_optax_optimizer():
    optax = pytest.importorskip("optax")
    ds = datasets.load("xor", n=200, seed=1)
    params = _mlp_params([2, 8, 2], seed=1)
    # optax's Adam computes its bias correction from an int32 step count and Python floats, which
    # this suite's strict promotion refuses; optax itself runs under standard promotion, so do we here.
    with jax.numpy_dtype_promotion("standard"):
        result = train.fit(
            params, ds.x_train, ds.y_train, optimizer=optax.adam(0.03), epochs=30, batch_size=16,
            activation="tanh",
        )
    assert train.accuracy(result.params, ds.x_train, ds.y_train, activation="tanh") >= 0.97


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def test_cli_trains_xor(capsys):
    code = _cli.train_main(["--dataset", "xor", "--epochs", "20", "--hidden", "8", "--seed", "1"])
    out, err = capsys.readouterr()
    assert code == 0
    last = out.strip().splitlines()[-1]
    assert last.startswith("test accuracy ")
    assert float(last.split()[-1]) >= 0.95
    assert "\r" in err and "epoch 20/20" in err  # the progress bar, redrawn in place


def test_cli_via_python_m_fnnet(capsys):
    # The dispatcher hands "train" and the rest of the command line to fnnet._cli.train_main.
    from fnnet._cli import main as fnnet_main

    with pytest.raises(SystemExit) as e:
        fnnet_main(["train", "--dataset", "xor", "--lr", "0"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "python -m fnnet train" in err and "argument --lr" in err


@pytest.mark.parametrize(
    "argv, where",
    [
        (["--dataset", "xor", "--activation", "tanhh"], "argument --activation: unknown activation 'tanhh'"),
        (["--dataset", "xor", "--lr", "-0.1"], "argument --lr: expected a positive finite number"),
        (["--dataset", "xor", "--lr", "nan"], "argument --lr"),
        (["--dataset", "xor", "--hidden", "64,,x"], "argument --hidden: expected comma-separated"),
        (["--dataset", "xor", "--hidden", "0"], "argument --hidden"),
        (["--dataset", "xor", "--momentum", "1"], "argument --momentum"),
        (["--dataset", "xor", "--epochs", "0"], "argument --epochs"),
        (["--dataset", "xor", "--batch-size", "2.5"], "argument --batch-size"),
        (["--dataset", "mnist"], "argument --dataset: invalid choice: 'mnist'"),
        ([], "the following arguments are required: --dataset"),
    ],
)
def test_cli_bad_arguments(argv, where, capsys):
    with pytest.raises(SystemExit) as e:
        _cli.train_main(argv)
    assert e.value.code == 2
    assert where in capsys.readouterr().err


def test_cli_missing_sklearn(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    assert _cli.train_main(["--dataset", "digits"]) == 1
    assert "pip install 'fnnet[experiments]'" in capsys.readouterr().err


def test_defaults_cover_every_dataset():
    assert set(_cli.DEFAULTS) == set(datasets.NAMES)
    for cfg in _cli.DEFAULTS.values():
        assert cfg["activation"] in train.activation_names()


def test_cli_batch_size_larger_than_the_data_is_clamped_and_said(capsys):
    assert _cli.train_main(["--dataset", "xor", "--batch-size", "100000", "--epochs", "1", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "--batch-size 100000 is more than the 300 training points of xor; using 300" in err
    assert "batch 300," in err and "batch 100000" not in err
