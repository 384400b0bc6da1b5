"""Experiment 5: dead ReLUs at a high learning rate, ReLU against leaky ReLU and swish.

Claim. relu'(z) = 0 for z < 0. A hidden unit whose pre-activation z = w·h + b is ≤ 0 for every training
example outputs 0 everywhere and passes back no gradient, so its incoming weights w and bias b receive
exactly zero gradient: once a large step has pushed it there it never comes back (in the first hidden
layer, whose inputs are fixed, never; deeper, only if the layers below happen to move it). Large
learning rates make such steps likely. Leaky ReLU (slope 0.01 for z < 0) and swish (z·σ(z), derivative
σ(z)(1 + z σ(−z)) ≠ 0) always pass some gradient, so an inactive unit can recover.

Measured (an MLP 64-64-64-10 on scikit-learn's digits, or 2-64-64-2 on spirals when scikit-learn is
absent; plain SGD, batch 32, the same init and data order for all; fnnet's hand backprop):

1. after every epoch, the fraction of hidden units that never activate (z ≤ 0 for every training
   example), at a high learning rate;
2. the final fraction and the test accuracy across a sweep of learning rates (a run whose loss is not
   finite is marked diverged);
3. the mechanism: for the final network at the high learning rate, the largest gradient entry of the
   incoming weights and biases of the never-active units (hand backprop over the whole training set):
   exactly 0 for ReLU, not for the others.

    .venv/bin/python -m experiments.dead_relu [--quick]
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from experiments import _common as C

REQUIRES = ("matplotlib",)
FIGURE = "dead_relu.png"
ACTIVATIONS = ("relu", "leaky_relu", "swish")
HIGH_LR = 0.8
LRS = (0.3, 0.5, 0.7, 0.8, 0.9, 1.0)


@functools.partial(jax.jit, static_argnames="activation")
def _inactive(params, x, activation):
    import fnnet
    from fnnet import layers

    f = getattr(fnnet, activation)
    h, masks = x, []
    for layer in params[:-1]:
        z = layers.dense(layer, h)
        masks.append(jnp.all(z <= 0, axis=0))
        h = f(z)
    return masks


def inactive_masks(params, x, activation) -> list[np.ndarray]:
    """Per hidden layer, a boolean per unit: z ≤ 0 for every row of x (the unit never activates)."""
    return [np.asarray(m) for m in _inactive(params, jnp.asarray(x), activation)]


def dead_gradient(params, x, y, activation, masks) -> float:
    """max |∂L/∂W_l[u, :]|, |∂L/∂b_l[u]| over the never-active units u (hand backprop, whole set); NaN if none."""
    from fnnet import train as T

    grad_fn = jax.jit(functools.partial(T.loss_and_grad, activation=activation))
    _, grads = grad_fn(params, jnp.asarray(x), jnp.asarray(y))
    worst = []
    for g, m in zip(grads[:-1], masks):
        if m.any():
            worst.append(float(jnp.max(jnp.abs(g["W"][m]))))
            worst.append(float(jnp.max(jnp.abs(g["b"][m]))))
    return max(worst) if worst else math.nan


def dataset(name=None):
    from fnnet import datasets

    if name is None:
        name = "spirals" if C.missing(["sklearn"]) else "digits"
    return datasets.load(name, seed=0, **({"n": 600} if name == "spirals" else {}))


def train_tracking(ds, activation, lr, *, epochs, hidden=(64, 64), seed=0) -> dict:
    """Train with plain SGD at ``lr``; the inactive fraction after each epoch (epoch 0: at init)."""
    from fnnet import layers

    history = []

    def on_epoch(info):
        history.append(np.concatenate(inactive_masks(info.params, ds.x_train, activation)).mean())

    # Fraction at initialisation (same params C.train starts from: same seed, same init).
    init = "he" if activation in ("relu", "leaky_relu") else "glorot"
    p0 = layers.init_mlp(jax.random.split(jax.random.key(seed))[0], [ds.n_features, *hidden, ds.n_classes],
                         init=init)
    history.append(np.concatenate(inactive_masks(p0, ds.x_train, activation)).mean())
    params, losses = C.train(ds, hidden, activation, epochs=epochs, lr=lr, beta=0.0, seed=seed, init=init,
                             on_epoch=on_epoch)
    finite = bool(np.all(np.isfinite(losses)))
    masks = inactive_masks(params, ds.x_train, activation)
    return {
        "inactive": np.asarray(history), "losses": np.asarray(losses), "diverged": not finite,
        "final": float(np.concatenate(masks).mean()) if finite else math.nan,
        "test_acc": C.accuracy(params, ds.x_test, ds.y_test, activation) if finite else math.nan,
        "params": params, "masks": masks,
    }


def run(*, epochs: int = 20, lrs=LRS, high_lr: float = HIGH_LR, hidden=(64, 64), ds_name=None) -> dict:
    ds = dataset(ds_name)
    out = {"dataset": ds.name, "high_lr": high_lr, "sweep": {}, "grad": {}}
    for lr in sorted(set(lrs) | {high_lr}):
        for act in ACTIVATIONS:
            r = train_tracking(ds, act, lr, epochs=epochs, hidden=hidden)
            out["sweep"][(act, lr)] = r
            if lr == high_lr and not r["diverged"]:
                out["grad"][act] = dead_gradient(r["params"], ds.x_train, ds.y_train, act, r["masks"])
    return out


def report(result) -> None:
    hi = result["high_lr"]
    print(f"{result['dataset']}, plain SGD at lr {hi}: fraction of hidden units never active over the "
          "training set (init -> end), test accuracy, largest gradient entry into the never-active units")
    for act in ACTIVATIONS:
        r = result["sweep"][(act, hi)]
        g = result["grad"].get(act, math.nan)
        revived = int(np.sum(np.diff(r["inactive"]) < 0))
        print(f"  {act:<10} {r['inactive'][0]:.3f} -> {r['final']:.3f}  (max {np.nanmax(r['inactive']):.3f}, "
              f"fell in {revived} epochs)  test acc {r['test_acc']:.3f}  max |grad into inactive units| = {g:.3g}")
    print("sweep: final inactive fraction / test accuracy per learning rate")
    lrs = sorted({lr for _, lr in result["sweep"]})
    print("  " + " " * 10 + "".join(f"{'lr ' + str(lr):>15}" for lr in lrs))
    for act in ACTIVATIONS:
        cells = []
        for lr in lrs:
            r = result["sweep"][(act, lr)]
            cells.append("diverged" if r["diverged"] else f"{r['final']:.3f}/{r['test_acc']:.3f}")
        print(f"  {act:<10}" + "".join(f"{c:>15}" for c in cells))


def plot(result, path) -> None:
    plt = C.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.3))
    colors = {"relu": "#d62728", "leaky_relu": "#2ca02c", "swish": "#1f77b4"}
    hi = result["high_lr"]
    lrs = sorted({lr for _, lr in result["sweep"]})
    for act in ACTIVATIONS:
        r = result["sweep"][(act, hi)]
        g = result["grad"].get(act, math.nan)
        axes[0].plot(r["inactive"], color=colors[act], marker=".", label=f"{act}: max |∇ into them| = {g:.2g}")
        final = [result["sweep"][(act, lr)]["final"] for lr in lrs]
        acc = [result["sweep"][(act, lr)]["test_acc"] for lr in lrs]
        axes[1].plot(lrs, final, color=colors[act], marker="o", label=act)
        axes[2].plot(lrs, acc, color=colors[act], marker="o", label=act)
        for lr in lrs:
            if result["sweep"][(act, lr)]["diverged"]:
                axes[2].plot([lr], [0.0], color=colors[act], marker="x", ms=8)
    axes[0].set_title(f"{result['dataset']}, SGD lr {hi}: units never active")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("fraction of hidden units")
    axes[0].legend(fontsize=7)
    axes[1].set_title("final fraction never active vs learning rate")
    axes[1].set_xlabel("learning rate")
    axes[1].legend(fontsize=8)
    axes[2].set_title("test accuracy vs learning rate (x: diverged)")
    axes[2].set_xlabel("learning rate")
    axes[2].set_ylim(-0.05, 1.02)
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    C.save(fig, path)


def main(argv=None) -> int:
    args = C.parser(__doc__).parse_args(argv)
    result = run(epochs=15, lrs=(0.5, 1.0)) if args.quick else run()
    report(result)
    plot(result, args.out / FIGURE)
    return 0


if __name__ == "__main__":
    C.cli(main)
