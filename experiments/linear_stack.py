"""Experiment 1: a stack of linear layers is one linear layer; it cannot fit xor or spirals, tanh and relu can.

Claim. Without a non-linearity, L dense layers compose to one affine map:

    W_3(W_2(W_1 x + b_1) + b_2) + b_3 = W x + b,   W = W_3 W_2 W_1,   b = W_3 W_2 b_1 + W_3 b_2 + b_3,

so depth adds parameters but no representational power: the decision boundary of a deep linear
classifier is still a straight line. xor and spirals are not linearly separable; the same network with
tanh or relu between the layers fits both.

Measured:
1. the network's Jacobian ∂net/∂x at random points (jax.jacrev of ``fnnet.mlp(..., activation=None)``)
   against the product W_3 W_2 W_1, and ``net(x)`` against ``W x + b`` (max abs difference, relative to
   the largest entry; float32 and float64): rounding-level, at initialisation and after training;
2. train accuracy of linear / tanh / relu networks (hidden 32-32, fnnet's hand backprop, SGD with
   momentum) on xor and spirals; figure: decision regions.

    .venv/bin/python -m experiments.linear_stack [--quick]
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from experiments import _common as C

REQUIRES = ("matplotlib",)
FIGURE = "linear_stack.png"
ACTIVATIONS = (None, "tanh", "relu")
DATASETS = ("xor", "spirals")


def collapse(params):
    """The single affine map ``(W, b)`` that a bias-ful linear stack equals: W = W_L⋯W_1, b by the recursion
    b ← W_l b + b_l."""
    W = params[0]["W"]
    b = params[0]["b"]
    for layer in params[1:]:
        W = layer["W"] @ W
        b = layer["W"] @ b + layer["b"]
    return W, b


def collapse_error(params, key, n_points: int = 8) -> dict[str, float]:
    """How far the linear network is from its collapsed matrix, relative to the size of the entries.

    ``jacobian``: max over ``n_points`` random x of max |∂net/∂x(x) − W_L⋯W_1| / max |W_L⋯W_1|;
    ``map``: max |net(x) − (W x + b)| / max |net(x)|. Both are rounding: a few ε of the dtype
    (each entry of the product is a sum of a few dozen products, each rounded once).
    """
    from fnnet import layers

    dtype = params[0]["W"].dtype
    x = jax.random.normal(key, (n_points, params[0]["W"].shape[1]), dtype)

    @jax.jit  # one compilation instead of a dispatch per op
    def errors(params, x):
        W, b = collapse(params)
        net = functools.partial(layers.mlp, params, activation=None)
        J = jax.vmap(jax.jacrev(net))(x)  # (n_points, out, in): the same matrix at every x
        out = net(x)
        affine = x @ W.T + b
        return (jnp.max(jnp.abs(J - W)) / jnp.max(jnp.abs(W)),
                jnp.max(jnp.abs(out - affine)) / jnp.max(jnp.abs(out)))

    jac, mapped = errors(params, x)
    return {"jacobian": float(jac), "map": float(mapped), "eps": float(jnp.finfo(dtype).eps)}


def run(*, n: int = 600, hidden=(32, 32), epochs=(150, 400), lr: float = 0.05, seed: int = 0,
        datasets=DATASETS, activations=ACTIVATIONS) -> dict:
    """Collapse errors (float32, float64; at init and after training) and a trained network per
    (dataset, activation). ``epochs``: per dataset, in the order of ``datasets``."""
    from fnnet import datasets as fnnet_datasets, layers

    out: dict = {"collapse": {}, "fits": {}}
    sizes = [2, *hidden, 2]
    with C.float64():
        p64 = layers.init_mlp(jax.random.key(seed), sizes, dtype=jnp.float64)
        out["collapse"]["init float64"] = collapse_error(p64, jax.random.key(seed + 1))
    p32 = layers.init_mlp(jax.random.key(seed), sizes, dtype=jnp.float32)
    out["collapse"]["init float32"] = collapse_error(p32, jax.random.key(seed + 1))

    for name, n_epochs in zip(datasets, epochs):
        opts = {"n": n}
        ds = fnnet_datasets.load(name, seed=seed, **opts)
        for act in activations:
            params, losses = C.train(ds, hidden, act, epochs=n_epochs, lr=lr, seed=seed)
            out["fits"][(name, act)] = {
                "params": params,
                "losses": losses,
                "train_acc": C.accuracy(params, ds.x_train, ds.y_train, act),
                "test_acc": C.accuracy(params, ds.x_test, ds.y_test, act),
                "ds": ds,
            }
            if act is None:
                out["collapse"][f"trained float32 ({name})"] = collapse_error(
                    params, jax.random.key(seed + 2)
                )
    return out


def report(result) -> None:
    print("deep linear network vs its single matrix W = W_L...W_1 (relative max abs difference):")
    for label, e in result["collapse"].items():
        print(
            f"  {label:<26} |dnet/dx - W_L...W_1| = {e['jacobian']:.2e}   |net(x) - (Wx + b)| = {e['map']:.2e}"
            f"   ({e['jacobian'] / e['eps']:.1f} and {e['map'] / e['eps']:.1f} eps)"
        )
    print("train / test accuracy:")
    for (name, act), fit in result["fits"].items():
        print(f"  {name:<8} {act or 'linear'!s:<7} train {fit['train_acc']:.3f}  test {fit['test_acc']:.3f}"
              f"  final loss {fit['losses'][-1]:.3f}")


def plot(result, path) -> None:
    plt = C.pyplot()
    from matplotlib.colors import ListedColormap

    names = sorted({k[0] for k in result["fits"]}, key=DATASETS.index)
    acts = [a for a in ACTIVATIONS if any(k[1] == a for k in result["fits"])]
    fig, axes = plt.subplots(len(names), len(acts), figsize=(3.0 * len(acts), 2.9 * len(names)),
                             squeeze=False)
    regions = ListedColormap(["#c6dbef", "#fdd0a2"])
    for i, name in enumerate(names):
        for j, act in enumerate(acts):
            fit = result["fits"][(name, act)]
            ds = fit["ds"]
            x = np.concatenate([ds.x_train, ds.x_test])
            y = np.concatenate([ds.y_train, ds.y_test])
            lo, hi = x.min(axis=0) - 0.3, x.max(axis=0) + 0.3
            gx, gy, pred = C.grid_predictions(fit["params"], act, lo, hi, n=150)
            ax = axes[i, j]
            ax.pcolormesh(gx, gy, pred, cmap=regions, shading="auto", rasterized=True)
            ax.scatter(x[:, 0], x[:, 1], c=np.where(y == 1, "#e6550d", "#3182bd"), s=4, linewidths=0)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{name}, {act or 'linear (no activation)'}: train acc {fit['train_acc']:.2f}")
    fig.suptitle("Decision regions of a 3-layer MLP (hidden 32-32), trained with fnnet's hand backprop")
    fig.tight_layout()
    C.save(fig, path)


def main(argv=None) -> int:
    args = C.parser(__doc__).parse_args(argv)
    kw = {"epochs": (60, 200)} if args.quick else {}
    result = run(**kw)
    report(result)
    plot(result, args.out / FIGURE)
    return 0


if __name__ == "__main__":
    C.cli(main)
