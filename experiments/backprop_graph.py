"""Experiment 8: backprop by topological sort on the computation graph of a two-layer network.

The lecture's algorithm: (1) sort the graph topologically; (2) evaluate the nodes in that order;
(3) walk the order backwards, each node pushing its cotangent to its inputs with its op's hand-written
rule, summed (+=) where a value is used more than once. ``fnnet.Graph`` does exactly this
(``fnnet/graph.py``). The network:

    z1 = dense(W1, b1, x)        (B, H)      z1 = x W1ᵀ + b1
    h1 = tanh(z1)                (B, H)
    z2 = dense(W2, b2, h1)       (B, C)
    ce = softmax_cross_entropy(z2, y)   (B,) y one-hot
    loss = mean(ce)              ()

declared in shuffled order so that the sort has work to do. Measured: the topological order, and the
gradients of ``Graph.value_and_grad("loss")`` (hand rules only, no ``jax.vjp``) against ``jax.grad`` of
the same loss written in plain ``jax.numpy`` (an independent oracle: no fnnet code), float32 and
float64: max abs difference relative to the largest gradient entry. Figure: the DAG drawn by
matplotlib in topological layers (each node at its longest distance from an input), the forward order
and the backward order on the nodes. ``docs/figures/backprop_graph.dot`` holds ``graph.to_dot()`` for
Graphviz (``dot -Tsvg``).

    .venv/bin/python -m experiments.backprop_graph [--quick]
"""
from __future__ import annotations

import random

import jax
import jax.numpy as jnp
import numpy as np

from experiments import _common as C

REQUIRES = ("matplotlib",)
FIGURE = "backprop_graph.png"
PARAMS = ("W1", "b1", "W2", "b2")

NODES = [
    ("z1", "dense", ["W1", "b1", "x"]),
    ("h1", "tanh", ["z1"]),
    ("z2", "dense", ["W2", "b2", "h1"]),
    ("ce", "softmax_cross_entropy", ["z2", "y"]),
    ("loss", "mean", ["ce"]),
]


def build(seed: int = 0):
    from fnnet import Graph, losses, ops  # noqa: F401  (register softmax_cross_entropy, mean)

    specs = list(NODES)
    random.Random(seed).shuffle(specs)
    return specs, Graph(specs)


def plain_loss(params, x, y):
    """The same loss in plain jax.numpy, for jax.grad: no fnnet code involved."""
    h1 = jnp.tanh(x @ params["W1"].T + params["b1"])
    z2 = h1 @ params["W2"].T + params["b2"]
    return jnp.mean(-jnp.sum(y * jax.nn.log_softmax(z2, axis=-1), axis=-1))


def inputs(dtype, *, batch=16, n_in=4, hidden=8, n_classes=3, seed=0):
    """Data and parameters drawn with numpy (no per-op JAX compilation), then cast to ``dtype``."""
    rng = np.random.default_rng(seed)
    arrays = {
        "x": rng.standard_normal((batch, n_in)),
        "y": np.eye(n_classes)[rng.integers(0, n_classes, batch)],
        "W1": rng.standard_normal((hidden, n_in)) / np.sqrt(n_in),
        "b1": 0.1 * rng.standard_normal(hidden),
        "W2": rng.standard_normal((n_classes, hidden)) / np.sqrt(hidden),
        "b2": np.zeros(n_classes),
    }
    return {k: jnp.asarray(v, dtype) for k, v in arrays.items()}


def run(*, seed: int = 0, **sizes) -> dict:
    specs, g = build(seed)
    out = {"declared": [s[0] for s in specs], "order": list(g.order), "inputs": list(g.inputs), "graph": g,
           "err": {}}
    for name, dtype in (("float32", jnp.float32), ("float64", jnp.float64)):
        with C.float64() if name == "float64" else _nullcontext():
            v = inputs(dtype, seed=seed, **sizes)
            # Both sides jitted: one compilation each instead of a dispatch per op (the Graph's
            # forward/backward are plain Python over arrays, so they trace like any function).
            loss, grads = jax.jit(g.value_and_grad("loss", wrt=list(PARAMS)))(v)
            params = {k: v[k] for k in PARAMS}
            ref_loss, ref = jax.jit(jax.value_and_grad(plain_loss))(params, v["x"], v["y"])
            scale = max(float(jnp.max(jnp.abs(ref[k]))) for k in PARAMS)
            diff = max(float(jnp.max(jnp.abs(grads[k] - ref[k]))) for k in PARAMS)
            out["err"][name] = {"loss": abs(float(loss) - float(ref_loss)), "grad": diff, "relative": diff / scale,
                                "eps": float(jnp.finfo(dtype).eps)}
    return out


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def depths(g) -> dict[str, int]:
    """Longest distance from an input (inputs: 0), computed along the topological order."""
    d = {i: 0 for i in g.inputs}
    for name in g.order:
        d[name] = 1 + max(d[i] for i in g.node(name).inputs)
    return d


def report(result) -> None:
    print(f"declared order:    {result['declared']}")
    print(f"topological order: {result['order']}   (inputs: {result['inputs']})")
    print(f"backward order:    {result['order'][::-1]}")
    for name, e in result["err"].items():
        print(f"  {name}: |loss - plain loss| = {e['loss']:.2e},  max |grad - jax.grad| = {e['grad']:.2e} "
              f"({e['relative']:.2e} of the largest entry = {e['relative'] / e['eps']:.1f} eps)")


def plot(result, path) -> None:
    plt = C.pyplot()
    g = result["graph"]
    d = depths(g)

    def label(name):
        return name if name in g.inputs else f"{name} = {g.node(name).op.name}"

    def half_width(name):  # in data units: about 0.045 per character at these font sizes
        return 0.045 * len(label(name)) + 0.12

    # Nodes in columns by depth, each column as wide as its widest label plus a gap for the edge
    # labels; each graph input one column before its first consumer, stacked above and below the
    # node row, so that no edge crosses the drawing.
    column = {n: d[n] for n in g.order}
    for inp in g.inputs:
        column[inp] = d[next(n for n in g.order if inp in g.node(n).inputs)] - 1
    n_cols = max(column.values()) + 1
    width = [max((half_width(n) for n in column if column[n] == c), default=0.3) for c in range(n_cols)]
    col_x = [0.0]
    for c in range(1, n_cols):
        col_x.append(col_x[-1] + width[c - 1] + width[c] + 1.1)
    pos, column_use = {}, {}
    for name in g.order:
        col = d[name]
        k = column_use.get(col, 0)
        column_use[col] = k + 1
        pos[name] = (col_x[col], -1.0 * k)
    slots = [1.0, -1.0, 2.0, -2.0, 3.0, -3.0]
    for inp in g.inputs:
        col = column[inp]
        taken = {round(y, 3) for (x, y) in pos.values() if abs(x - col_x[col]) < 1e-9}
        y = next(0.8 * s for s in ([0.0] + slots) if round(0.8 * s, 3) not in taken)
        pos[inp] = (col_x[col], y)
    fig, ax = plt.subplots(figsize=(11, 3.0))
    order = {n: i + 1 for i, n in enumerate(g.order)}
    for name in g.order:
        node = g.node(name)
        for arg, inp in zip(node.op.arg_names, node.inputs):
            (x0, y0), (x1, y1) = pos[inp], pos[name]
            ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                        arrowprops={"arrowstyle": "->", "color": "#555555", "lw": 0.9, "shrinkA": 14, "shrinkB": 30})
            # the argument's name halfway along the edge, on a white patch: no box or line covers it
            # halfway between the two boxes' edges (not their centres: a wide box would cover it)
            xa, xb = x0 + half_width(inp), x1 - half_width(name)
            t = ((xa + xb) / 2 - x0) / (x1 - x0)
            ax.text(x0 + t * (x1 - x0), y0 + t * (y1 - y0), arg, fontsize=7.5, color="#333333",
                    ha="center", va="center", zorder=3,
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none"})
    for name, (x, y) in pos.items():
        if name in g.inputs:
            ax.text(x, y, name, ha="center", va="center", fontsize=9,
                    bbox={"boxstyle": "ellipse,pad=0.3", "fc": "#eeeeee", "ec": "#888888"})
        else:
            node = g.node(name)
            fill = "#fdd0a2" if name == "loss" else "#c6dbef"
            ax.text(x, y, f"{name} = {node.op.name}", ha="center", va="center", fontsize=8.5,
                    bbox={"boxstyle": "round,pad=0.35", "fc": fill, "ec": "#3182bd"})
            back = len(g.order) - order[name] + 1
            ax.text(x, y - 0.32, f"fwd #{order[name]}  ·  bwd #{back}", ha="center", va="top", fontsize=7,
                    color="#08519c")
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    ax.set_xlim(min(xs) - 0.6, max(xs) + 1.0)
    ax.set_ylim(min(ys) - 0.3, max(ys) + 0.3)
    ax.axis("off")
    e = result["err"]
    ax.set_title(
        "Two-layer network as an fnnet.Graph (declared shuffled, sorted by Kahn's algorithm); "
        f"max |grad − jax.grad| = {e['float64']['grad']:.1e} (float64), {e['float32']['grad']:.1e} (float32)",
        fontsize=9,
    )
    fig.tight_layout()
    C.save(fig, path)
    path.with_suffix(".dot").write_text(g.to_dot("two_layer_mlp", highlight=["loss"]))


def main(argv=None) -> int:
    args = C.parser(__doc__).parse_args(argv)
    result = run()  # seconds already: --quick changes nothing
    report(result)
    plot(result, args.out / FIGURE)
    return 0


if __name__ == "__main__":
    C.cli(main)
