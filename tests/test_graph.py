"""fnnet.graph: topological order, forward, backward with hand rules only, and the error messages.

The oracle for every gradient is ``jax.vjp`` of the *same computation written with the primitives'
plain references* (``prim.reference``, jnp only), evaluated by a separate interpreter here, so neither
the graph's order nor the hand rules take part in the expected values.

Tolerance (float64, normwise ‖a − b‖∞ ≤ tol·‖b‖∞ per input): each node's hand rule and reference agree
to ≤ 64ε (the bound tests/test_primitives.py derives). A cotangent reaching an input has passed through
at most ``depth`` rules on each path and is a sum over paths; with activations bounded (tanh, sigmoid)
and inputs in [−1, 1] no path amplifies error by more than a small factor, so the error is
≤ 64ε·depth·(small constant). With ``depth ≤ N_NODES = 24`` that is ≤ 64·2.2e-16·24 ≈ 3.4e-13; the tol
allows a factor 4 for the sums over paths: 1.4e-12, 11 orders of magnitude below a wrong rule (O(1)
error). (Measured over 30 seeds: worst 5.8e-16.)
"""
from __future__ import annotations

import random
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
import fnnet.layers
import fnnet.ops
from fnnet.graph import Graph, GraphError
from fnnet.primitive import define

EPS64 = float(jnp.finfo(jnp.float64).eps)
N_NODES = 24
DAG_TOL = 4 * 64 * EPS64 * N_NODES


def _normwise_close(actual, expected, tol, what=""):
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        a, e = np.asarray(a, np.float64), np.asarray(e, np.float64)
        assert a.shape == e.shape, f"{what}: shape {a.shape} != {e.shape}"
        scale = max(float(np.max(np.abs(e), initial=0.0)), np.finfo(np.float64).tiny)
        err = float(np.max(np.abs(a - e), initial=0.0)) / scale
        assert err <= tol, f"{what}: normwise relative error {err:.3e} > {tol:.1e}"


# ------------------------------------------------------------------------------------------------
# Test-local primitives (unregistered): binary ops and pytree-valued ops, so the graph mechanics are
# tested independently of fnnet.ops. Each has a hand bwd and a plain reference like any primitive.
# ------------------------------------------------------------------------------------------------


add2 = define(
    "test_add", forward=lambda x, y: x + y, bwd=lambda r, g: (g, g),
    jvp=lambda p, t, out: t[0] + t[1], reference=lambda x, y: x + y,
    arg_names=("x", "y"), register=False,
)
mul2 = define(
    "test_mul", forward=lambda x, y: x * y, bwd=lambda r, g: (g * r[1], g * r[0]),
    jvp=lambda p, t, out: t[0] * p[1] + p[0] * t[1], reference=lambda x, y: x * y,
    arg_names=("x", "y"), register=False,
)
total = define(
    "test_sum", forward=lambda x: jnp.sum(x), bwd=lambda r, g: (jnp.broadcast_to(g, r[0].shape),),
    jvp=lambda p, t, out: jnp.sum(t[0]), reference=lambda x: jnp.sum(x), register=False,
)
# A pytree-valued op: (x·y, x + y); its cotangent is a pair.
both = define(
    "test_both", forward=lambda x, y: (x * y, x + y),
    bwd=lambda r, g: (g[0] * r[1] + g[1], g[0] * r[0] + g[1]),
    jvp=lambda p, t, out: (t[0] * p[1] + p[0] * t[1], t[0] + t[1]),
    reference=lambda x, y: (x * y, x + y), arg_names=("x", "y"), register=False,
)
# A consumer of a pytree argument: p[0]·sin-free combination, and of a params dict.
pair_dot = define(
    "test_pair_dot", forward=lambda p: p[0] * p[1],
    bwd=lambda r, g: ((g * r[0][1], g * r[0][0]),),
    jvp=lambda p, t, out: t[0][0] * p[0][1] + p[0][0] * t[0][1],
    reference=lambda p: p[0] * p[1], register=False,
)
affine = define(
    "test_affine", forward=lambda params, x: params["a"] * x + params["c"],
    bwd=lambda r, g: ({"a": jnp.sum(g * r[1]), "c": jnp.sum(g)}, g * r[0]["a"]),
    jvp=lambda p, t, out: t[0]["a"] * p[1] + t[0]["c"] + p[0]["a"] * t[1],
    reference=lambda params, x: params["a"] * x + params["c"], arg_names=("params", "x"),
    register=False,
)
scale = define(
    "test_scale", forward=lambda x, factor=2.0: factor * x, bwd=lambda r, g, factor=2.0: (factor * g,),
    jvp=lambda p, t, out, factor=2.0: factor * t[0], reference=lambda x, factor=2.0: factor * x,
    static={"factor": 2.0}, register=False,
)

UNARY = [fnnet.tanh, fnnet.sigmoid, fnnet.softplus, fnnet.silu, fnnet.gelu, fnnet.soft_sign]
BINARY = [add2, mul2]


def _reference_eval(nodes, inputs):
    """Evaluate node specs with the plain references, in an order found here by repeated scanning
    (deliberately not the graph's Kahn order)."""
    env = dict(inputs)
    pending = list(nodes)
    while pending:
        rest = []
        for spec in pending:
            name, op, ins = spec[:3]
            static = spec[3] if len(spec) == 4 else {}
            if all(i in env for i in ins):
                prim = op if not hasattr(op, "primitive") else op.primitive
                env[name] = prim.reference(*(env[i] for i in ins), **static)
            else:
                rest.append(spec)
        assert len(rest) < len(pending), "reference interpreter: no progress (cycle?)"
        pending = rest
    return env


def random_dag(seed, n_nodes=N_NODES, n_inputs=4, shape=(3, 4), binary=None, shapes=None):
    """Node specs (shuffled) and their input values.

    Every node draws its inputs from all earlier names, so values fan out; two "parameters" p0, p1 are
    forced into several nodes (shared parameters), and some binary nodes read the same name twice.
    ``shapes`` maps some inputs to their own (broadcast-compatible) shapes.
    """
    binary = BINARY if binary is None else binary
    shapes = shapes or {}
    rng = random.Random(seed)
    names = [f"x{i}" for i in range(n_inputs - 2)] + ["p0", "p1"]
    specs = []
    for k in range(n_nodes):
        name = f"n{k}"
        if rng.random() < 0.5:
            op = rng.choice(binary)
            a = names[k] if k < n_inputs else rng.choice(names)  # every input is used
            b = a if rng.random() < 0.15 else rng.choice(["p0", "p1"] if k % 3 == 0 else names)
            ins = [a, b]
        else:
            op = rng.choice(UNARY)
            ins = [names[k] if k < n_inputs else rng.choice(names)]
        specs.append((name, op, ins))
        names.append(name)
    rng.shuffle(specs)
    keys = jax.random.split(jax.random.key(seed), n_inputs)
    inputs = {
        n: jax.random.uniform(k, shapes.get(n, shape), jnp.float64, -1.0, 1.0)
        for n, k in zip([f"x{i}" for i in range(n_inputs - 2)] + ["p0", "p1"], keys)
    }
    return specs, inputs


def _seeds(graph, values, seed, k=3):
    rng = random.Random(seed + 1000)
    outs = rng.sample(list(graph.order), k)
    return {
        o: jax.random.normal(jax.random.key(seed + i), values[o].shape, values[o].dtype)
        for i, o in enumerate(outs)
    }


def _reference_vjp(specs, inputs, seeds):
    def f(inp):
        env = _reference_eval(specs, inp)
        return {o: env[o] for o in seeds}

    # jit: one compiled oracle instead of one eager compilation per jnp op (much faster under test load)
    _, vjp = jax.vjp(jax.jit(f), inputs)
    return vjp(seeds)[0]


# ------------------------------------------------------------------------------------------------
# Order
# ------------------------------------------------------------------------------------------------
def test_order_is_topological_and_ties_follow_declaration_order():
    # y and z are ready at once; y was declared first, so y, then its consumer a (now the earliest
    # declared ready node), then z.
    g = Graph([("y", "tanh", ["x"]), ("a", "tanh", ["y"]), ("z", "sigmoid", ["x"])])
    assert g.order == ("y", "a", "z")
    assert g.inputs == ("x",)
    # Declared backwards: the order still respects every edge.
    g = Graph([("c", "tanh", ["b"]), ("b", "tanh", ["a"]), ("a", "tanh", ["x"])])
    assert g.order == ("a", "b", "c")
    # Independent nodes keep declaration order exactly.
    g = Graph([("q", "tanh", ["x"]), ("m", "tanh", ["x"]), ("b", "tanh", ["x"])])
    assert g.order == ("q", "m", "b")


@pytest.mark.parametrize("seed", range(5))
def test_random_dag_order_respects_every_edge(seed):
    specs, _ = random_dag(seed)
    g = Graph(specs)
    pos = {n: i for i, n in enumerate(g.order)}
    assert sorted(pos) == sorted(s[0] for s in specs)
    for name, _, ins in specs:
        for i in ins:
            if i in pos:
                assert pos[i] < pos[name], f"{i} must come before {name}"
    assert Graph(specs).order == g.order  # deterministic


def test_ops_by_primitive_function_and_name_are_the_same():
    a = Graph([("h", fnnet.tanh, ["x"])])
    b = Graph([("h", "tanh", ["x"])])
    c = Graph([("h", fnnet.tanh.primitive, ["x"])])
    assert a.nodes[0].op is b.nodes[0].op is c.nodes[0].op is fnnet.tanh.primitive


# ------------------------------------------------------------------------------------------------
# Forward and backward against jax.vjp of the reference computation
# ------------------------------------------------------------------------------------------------
# Eager runs are cheap once the per-op compilations are cached; each jitted seed is a fresh compile.
@pytest.mark.parametrize(
    "seed,use_jit", [(s, False) for s in range(6)] + [(s, True) for s in range(3)],
    ids=[f"{s}-eager" for s in range(6)] + [f"{s}-jit" for s in range(3)],
)
def test_random_dag_matches_vjp_of_reference(seed, use_jit):
    specs, inputs = random_dag(seed)
    g = Graph(specs)
    forward = jax.jit(g.forward) if use_jit else g.forward
    values = forward(inputs)
    ref_env = _reference_eval(specs, inputs)
    for name in g.order:
        _normwise_close(values[name], ref_env[name], 64 * EPS64 * N_NODES, f"value of {name}")
    seeds = _seeds(g, values, seed)
    backward = jax.jit(g.backward) if use_jit else g.backward
    grads = backward(values, seeds)
    expected = _reference_vjp(specs, inputs, seeds)
    assert set(grads) == set(inputs)
    for name in inputs:
        _normwise_close(grads[name], expected[name], DAG_TOL, f"cotangent of {name}")
        assert grads[name].dtype == inputs[name].dtype


@pytest.mark.parametrize("seed,use_jit", [(0, False), (1, False), (0, True), (1, True)])
def test_random_dag_with_fnnet_ops_and_broadcasting(seed, use_jit):
    # fnnet.ops' broadcasting rules inside a graph: p1 (4,) is a bias broadcast over rows and x0 (3, 1)
    # over columns, so their cotangents must be summed back to their own shapes.
    binary = [fnnet.ops.add, fnnet.ops.subtract, fnnet.ops.multiply]
    specs, inputs = random_dag(seed, binary=binary, shapes={"p1": (4,), "x0": (3, 1)})
    g = Graph(specs)
    run = lambda v, s: g.backward(g.forward(v), s)  # noqa: E731
    run = jax.jit(run) if use_jit else run
    values = g.forward(inputs)
    seeds = _seeds(g, values, seed)
    grads = run(inputs, seeds)
    expected = _reference_vjp(specs, inputs, seeds)
    for name in inputs:
        assert grads[name].shape == inputs[name].shape
        _normwise_close(grads[name], expected[name], DAG_TOL, f"cotangent of {name}")


def test_mlp_as_a_graph_equals_fnnet_layers_and_jax_grad():
    # h1 = tanh(W1 x + b1), h2 = tanh(W2 h1 + b2), z = W3 h2 + b3, L = mean((z − y)²), with dense, tanh,
    # subtract, multiply, mean as graph nodes; compared with fnnet.mlp + jax.grad (whose backward
    # pass runs the same hand rules through custom_vjp), so the two agree to a few ε.
    sizes = [5, 8, 6, 3]
    params = fnnet.layers.init_mlp(jax.random.key(7), sizes, dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(8), (10, 5), jnp.float64)
    y = jax.random.normal(jax.random.key(9), (10, 3), jnp.float64)
    specs = [
        ("z1", "dense", ["W1", "b1", "x"]), ("h1", "tanh", ["z1"]),
        ("z2", "dense", ["W2", "b2", "h1"]), ("h2", "tanh", ["z2"]),
        ("z3", "dense", ["W3", "b3", "h2"]),
        ("r", "subtract", ["z3", "y"]), ("r2", "multiply", ["r", "r"]), ("L", "mean", ["r2"]),
    ]
    g = Graph(specs)
    values = {"x": x, "y": y}
    for i, layer in enumerate(params, start=1):
        values[f"W{i}"], values[f"b{i}"] = layer["W"], layer["b"]
    names = ["W1", "b1", "W2", "b2", "W3", "b3"]

    @jax.jit
    def graph_run(values):
        loss, grads = g.value_and_grad("L", wrt=names)(values)
        return g.forward(values)["z3"], loss, grads

    @jax.jit
    def ref_run(params):
        def ref_loss(params):
            z = fnnet.layers.mlp(params, x, activation="tanh")
            return jnp.mean(jnp.square(z - y)), z

        (value, z), grads = jax.value_and_grad(ref_loss, has_aux=True)(params)
        return z, value, grads

    z, loss, grads = graph_run(values)
    ref_z, ref_value, ref_grads = ref_run(params)
    _normwise_close(z, ref_z, 8 * EPS64, "mlp output")
    _normwise_close(loss, ref_value, 8 * EPS64, "loss")
    for i, layer in enumerate(ref_grads, start=1):
        _normwise_close(grads[f"W{i}"], layer["W"], 64 * EPS64, f"W{i}")
        _normwise_close(grads[f"b{i}"], layer["b"], 64 * EPS64, f"b{i}")


def test_fan_out_accumulates_with_plus_equals():
    # h = tanh(x) feeds three consumers, and y = h·h reads it twice: dL/dh collects four terms.
    specs = [
        ("h", fnnet.tanh, ["x"]),
        ("y", mul2, ["h", "h"]),
        ("s", fnnet.sigmoid, ["h"]),
        ("t", add2, ["y", "s"]),
        ("u", add2, ["t", "h"]),
        ("L", total, ["u"]),
    ]
    x = jnp.linspace(-1.0, 1.0, 5, dtype=jnp.float64)
    loss, grad = Graph(specs).value_and_grad("L", wrt="x")({"x": x})
    h = jnp.tanh(x)
    s = jax.nn.sigmoid(h)
    by_hand = (2 * h + s * (1 - s) + 1) * (1 - h**2)  # d/dh of h² + σ(h) + h, then tanh'
    _normwise_close(grad, by_hand, 16 * EPS64, "fan-out gradient")
    _normwise_close(loss, jnp.sum(h * h + s + h), 16 * EPS64, "loss")


def test_unreachable_inputs_get_zeros_and_unvisited_nodes_are_skipped():
    g = Graph([("a", "tanh", ["x"]), ("b", "sigmoid", ["y"]), ("c", add2, ["a", "z"])])
    vals = g.forward({"x": jnp.ones(3), "y": jnp.ones(3), "z": jnp.ones(3)})
    grads = g.backward(vals, {"a": jnp.ones(3)})
    chex.assert_trees_all_equal(grads["y"], jnp.zeros(3))
    chex.assert_trees_all_equal(grads["z"], jnp.zeros(3))
    _normwise_close(grads["x"], 1 - jnp.tanh(1.0) ** 2 * jnp.ones(3), 4 * EPS64)


def test_seed_on_an_input_passes_straight_through():
    g = Graph([("a", scale, ["x"])])
    vals = g.forward({"x": jnp.ones(2)})
    grads = g.backward(vals, {"a": jnp.ones(2), "x": jnp.full(2, 5.0)})
    chex.assert_trees_all_equal(grads["x"], jnp.full(2, 7.0))


def test_residuals_from_forward_give_the_same_backward():
    specs, inputs = random_dag(11)
    g = Graph(specs)
    values, residuals = g.forward(inputs, return_residuals=True)
    seeds = _seeds(g, values, 11)
    chex.assert_trees_all_equal(
        g.backward(values, seeds, residuals=residuals), g.backward(values, seeds)
    )


def test_vjp_method_mirrors_jax_vjp():
    specs, inputs = random_dag(4)
    g = Graph(specs)
    a, b = g.order[-1], g.order[-2]
    outs, vjp_fn = g.vjp(inputs, [a, b])
    values = g.forward(inputs)
    chex.assert_trees_all_equal(outs, (values[a], values[b]))
    ga = jax.random.normal(jax.random.key(1), values[a].shape, jnp.float64)
    gb = jax.random.normal(jax.random.key(2), values[b].shape, jnp.float64)
    expected = _reference_vjp(specs, inputs, {a: ga, b: gb})
    _normwise_close(vjp_fn((ga, gb)), expected, DAG_TOL, "vjp of two outputs")
    out, vjp_one = g.vjp(inputs, a)
    chex.assert_trees_all_equal(out, values[a])
    _normwise_close(vjp_one(ga), _reference_vjp(specs, inputs, {a: ga}), DAG_TOL, "vjp of one output")
    with pytest.raises(GraphError, match=r"output 'nope' is neither a node nor an input"):
        g.vjp(inputs, "nope")


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
def test_value_and_grad_matches_jax_grad_of_reference(use_jit):
    specs, inputs = random_dag(3)
    specs = specs + [("L", total, [specs[0][0]])]
    g = Graph(specs)
    vg = g.value_and_grad("L", wrt=["p0", "p1"])
    vg = jax.jit(vg) if use_jit else vg
    loss, grads = vg(inputs)
    ref = lambda p: _reference_eval(specs, {**inputs, **p})["L"]  # noqa: E731
    ref_loss, ref_grads = jax.value_and_grad(ref)({"p0": inputs["p0"], "p1": inputs["p1"]})
    _normwise_close(loss, ref_loss, 64 * EPS64 * N_NODES, "loss")
    assert set(grads) == {"p0", "p1"}
    _normwise_close(grads, ref_grads, DAG_TOL, "grads")


def test_static_hyperparameters_per_node():
    g = Graph([("a", scale, ["x"], {"factor": 3.0}), ("b", scale, ["a"])])
    vals = g.forward({"x": jnp.ones(2)})
    chex.assert_trees_all_equal(vals["b"], jnp.full(2, 6.0))
    grads = g.backward(vals, {"b": jnp.ones(2)})
    chex.assert_trees_all_equal(grads["x"], jnp.full(2, 6.0))
    g = Graph([("a", "gelu", ["x"], {"approximate": False}), ("L", total, ["a"])])
    x = jnp.linspace(-2.0, 2.0, 7, dtype=jnp.float64)
    _, grad = g.value_and_grad("L", wrt="x")({"x": x})
    ref = jax.grad(lambda x: jnp.sum(jax.nn.gelu(x, approximate=False)))(x)
    _normwise_close(grad, ref, 64 * EPS64, "gelu(approximate=False)")


def test_pytree_valued_nodes_and_pytree_inputs():
    # n = (x·y, x + y) fans out to two consumers; params is a dict input.
    specs = [
        ("n", both, ["x", "y"]),
        ("m", pair_dot, ["n"]),
        ("k", pair_dot, ["n"]),
        ("a", affine, ["params", "m"]),
        ("L", total, ["a"]),
        ("L2", total, ["k"]),
    ]
    inputs = {
        "x": jnp.array([0.5, -1.0, 2.0]),
        "y": jnp.array([1.5, 0.25, -0.5]),
        "params": {"a": jnp.array(0.7), "c": jnp.array(-0.2)},
    }
    g = Graph(specs)
    vals = g.forward(inputs)
    assert isinstance(vals["n"], tuple) and len(vals["n"]) == 2
    grads = g.backward(vals, {"L": jnp.array(1.0), "L2": jnp.array(2.0)})
    expected = _reference_vjp(specs, inputs, {"L": jnp.array(1.0), "L2": jnp.array(2.0)})
    _normwise_close(grads, expected, 16 * EPS64, "pytree graph")
    assert jax.tree.structure(grads["params"]) == jax.tree.structure(inputs["params"])


def test_vmap_over_a_batch_of_inputs():
    specs, inputs = random_dag(5)
    specs = specs + [("L", total, [specs[-1][0]])]
    g = Graph(specs)
    batch = {k: jnp.stack([v, 0.5 * v, -v]) for k, v in inputs.items()}
    vg = jax.vmap(g.value_and_grad("L"))
    losses, grads = vg(batch)
    ref = jax.vmap(jax.value_and_grad(lambda inp: _reference_eval(specs, inp)["L"]))
    ref_losses, ref_grads = ref(batch)
    _normwise_close(losses, ref_losses, 64 * EPS64 * N_NODES, "batched losses")
    _normwise_close(grads, ref_grads, DAG_TOL, "batched grads")
    # and under jit(vmap)
    _normwise_close(jax.jit(vg)(batch)[1], ref_grads, DAG_TOL, "jit(vmap) grads")


def test_deep_chain_without_recursion():
    # 10,000 tanh nodes declared from last to first; the sort runs under a recursion limit of 100 (a
    # recursive DFS would need depth 10,000). The gradient of x ↦ tanh^(10000)(x) is checked against
    # jax.grad of a lax.scan of the reference: d/dx is the product of 10,000 factors 1 − tanh², each
    # within a few ε, so the relative error is ≤ ~10,000·4ε ≈ 1e-11; tol 1e-10.
    n = 10_000
    specs = [(f"h{i}", "tanh", [f"h{i - 1}" if i else "x"]) for i in range(n)][::-1]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(100)
    try:
        g = Graph(specs)
    finally:
        sys.setrecursionlimit(limit)
    assert g.order[0] == "h0" and g.order[-1] == f"h{n - 1}"
    x = jnp.array([0.5, -1.5])
    vals, res = g.forward({"x": x}, return_residuals=True)
    grads = g.backward(vals, {f"h{n - 1}": jnp.ones(2)}, residuals=res)

    def ref(x):
        return jax.lax.scan(lambda h, _: (jnp.tanh(h), None), x, None, length=n)[0]

    out, vjp = jax.vjp(ref, x)
    _normwise_close(vals[f"h{n - 1}"], out, 1e-10, "chain value")
    _normwise_close(grads["x"], vjp(jnp.ones(2))[0], 1e-10, "chain gradient")


def test_backward_never_calls_jax_vjp(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("Graph.backward must use the hand rules, not jax.vjp")

    specs, inputs = random_dag(2)
    g = Graph(specs)
    values = g.forward(inputs)
    monkeypatch.setattr(jax, "vjp", boom)
    monkeypatch.setattr(jax, "grad", boom)
    grads = g.backward(values, _seeds(g, values, 2))
    assert set(grads) == set(inputs)


# ------------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------------
def test_cycle_names_the_nodes_on_it():
    with pytest.raises(GraphError, match=r"cycle: c -> b -> a -> c; also not orderable .*\['d'\]"):
        Graph([("a", "tanh", ["b"]), ("b", "tanh", ["c"]), ("c", "tanh", ["a"]), ("d", "tanh", ["c"])])
    with pytest.raises(GraphError, match=r"cycle: a -> a$"):
        Graph([("a", "tanh", ["a"])])
    with pytest.raises(GraphError, match=r"cycle: .*(q -> r|r -> q)"):
        Graph([("p", "tanh", ["x"]), ("q", add2, ["p", "r"]), ("r", "tanh", ["q"])])


def test_duplicate_names():
    with pytest.raises(GraphError, match=r"duplicate node name 'h': declared as node #0 \(tanh\) and node #2 \(sigmoid\)"):
        Graph([("h", "tanh", ["x"]), ("k", "tanh", ["h"]), ("h", "sigmoid", ["x"])])


def test_wrong_number_of_inputs():
    with pytest.raises(GraphError, match=r"node 'h': op 'tanh' takes 1 input\(s\) \(x\); got 2: \['x', 'y'\]"):
        Graph([("h", "tanh", ["x", "y"])])
    with pytest.raises(GraphError, match=r"node 's': op 'test_add' takes 2 input\(s\) \(x, y\); got 1"):
        Graph([("s", add2, ["x"])])


def test_bad_node_specs():
    with pytest.raises(GraphError, match=r"node 'h': no fnnet primitive named 'tanhh'"):
        Graph([("h", "tanhh", ["x"])])
    with pytest.raises(GraphError, match=r"node 'h': op must be an fnnet Primitive"):
        Graph([("h", jnp.tanh, ["x"])])
    with pytest.raises(GraphError, match=r"input_names must be a list of names; got the str 'x'"):
        Graph([("h", "tanh", "x")])
    with pytest.raises(GraphError, match=r"node #0: expected \(name, op, input_names\)"):
        Graph([("h", "tanh")])
    with pytest.raises(GraphError, match=r"node 'h': op 'tanh' has no hyperparameter\(s\) \['alpha'\]"):
        Graph([("h", "tanh", ["x"], {"alpha": 1.0})])


def test_forward_errors_name_the_input():
    g = Graph([("h", "tanh", ["x"]), ("k", add2, ["h", "bias"]), ("j", mul2, ["bias", "k"])])
    with pytest.raises(GraphError, match=r"missing value for input 'bias' \(used by 'k', 'j'\)"):
        g.forward({"x": jnp.ones(2)})
    # A typo in an input name shows up as the missing input it was meant to be.
    with pytest.raises(GraphError, match=r"missing value for input 'bias'"):
        g.forward({"x": jnp.ones(2), "biass": jnp.ones(2)})
    with pytest.raises(GraphError, match=r"argument 'x' must have a floating dtype .* got int"):
        g.forward({"x": jnp.ones(2, jnp.int32), "bias": jnp.ones(2)})


def test_an_op_failing_inside_the_graph_names_the_node_and_its_inputs():
    g = Graph([("z", "dense", ["W", "b", "x"]), ("h", "tanh", ["z"])])
    bad = {"W": jnp.ones((4, 3)), "b": jnp.ones(4), "x": jnp.ones((2, 5))}
    with pytest.raises(GraphError, match=(
        r"node 'z' = affine\(W='W': float64\[4, 3\], b='b': float64\[4\], x='x': float64\[2, 5\]\) "
        r"failed in forward: "
    )):
        g.forward(bad)


def test_backward_and_value_and_grad_errors():
    g = Graph([("h", "tanh", ["x"]), ("L", total, ["h"])])
    vals = g.forward({"x": jnp.ones(3)})
    with pytest.raises(GraphError, match=r"cotangent for 'h': expected shape \(3,\) and dtype float64 .* got shape \(2,\)"):
        g.backward(vals, {"h": jnp.ones(2)})
    with pytest.raises(GraphError, match=r"cotangent given for 'nope'"):
        g.backward(vals, {"nope": jnp.ones(3)})
    with pytest.raises(GraphError, match=r"values has no entry for \['h'"):
        g.backward({"x": jnp.ones(3)}, {"L": jnp.ones(())})
    with pytest.raises(GraphError, match=r"needs a scalar floating output; 'h' has shape \(3,\)"):
        g.value_and_grad("h")({"x": jnp.ones(3)})
    with pytest.raises(GraphError, match=r"wrt names \['h'\] are not inputs"):
        g.value_and_grad("L", wrt="h")
    with pytest.raises(GraphError, match=r"output 'M' is not a node"):
        g.value_and_grad("M")


# ------------------------------------------------------------------------------------------------
# Drawing
# ------------------------------------------------------------------------------------------------
def test_to_dot_and_mermaid():
    g = Graph([("h", "tanh", ["x"]), ("y", scale, ["h"], {"factor": 3.0}), ("L", total, ["y"])])
    dot = g.to_dot(highlight=["L"])
    assert dot.startswith('digraph "G" {')
    assert '"x" [shape=ellipse];' in dot
    assert '"y" [shape=box, label="y = test_scale(factor=3.0)"];' in dot
    assert '"L" [shape=box, label="L = test_sum", style=filled' in dot
    assert '"x" -> "h" [label="x"];' in dot and '"h" -> "y" [label="x"];' in dot
    mer = g.to_mermaid()
    assert mer.splitlines()[0] == "flowchart LR" and 'n0(["x"])' in mer and "n0 -->|x| n1" in mer
