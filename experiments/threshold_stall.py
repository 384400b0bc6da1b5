"""Experiment 2: a 0/1 threshold activation has zero slope, so gradient learning stalls; sigmoid learns.

Claim. The threshold (Heaviside) unit step(z) = 1[z > 0] is piecewise constant: step'(z) = 0 for every
z ≠ 0 (and undefined at 0). By the chain rule every gradient that passes through it is multiplied by 0,
so nothing below a threshold unit ever receives a gradient: the loss, as a function of those weights,
is a staircase whose treads are flat. The sigmoid σ(z) = 1/(1 + e^(−z)), a smoothed step, has
σ'(z) = σ(z)σ(−z) > 0 everywhere, and gradient descent moves.

Measured (full-batch gradient descent, gradients by ``jax.grad``: fnnet's hand rules for dense,
sigmoid and the losses; the step is ``(z > 0).astype(dtype)``, whose JAX derivative is 0):

1. one unit y = act(w·x + b) with squared loss on two separable Gaussian blobs, from a wrong start:
   ‖∇_{w,b} L‖ over all steps (exactly 0 for the step) and the loss before and after;
2. an MLP 2-16-2 (softmax cross-entropy) on circles, gradient descent with momentum 0.9, lr 0.2 for both: ‖∇ of the hidden layer‖ over all steps (exactly 0
   for the step: only the output layer learns, a linear readout of frozen random binary features),
   and the test accuracy of each.

    .venv/bin/python -m experiments.threshold_stall [--quick]
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from experiments import _common as C

REQUIRES = ("matplotlib",)
FIGURE = "threshold_stall.png"


def step(z):
    """The 0/1 threshold: 1 where z > 0, else 0. Its JAX derivative is 0 (a comparison has none)."""
    return (z > 0).astype(z.dtype)


def _activation(name):
    import fnnet

    return {"step": step, "sigmoid": fnnet.sigmoid}[name]


def blobs(n: int = 200, seed: int = 0):
    """Two Gaussian blobs (std 0.5) at (−1, −1) (label 0) and (1, 1) (label 1): linearly separable."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = np.where(y[:, None] == 1, 1.0, -1.0) + 0.5 * rng.standard_normal((n, 2))
    return x.astype(np.float32), y.astype(np.int32)


def unit_loss(params, x, y, act):
    import fnnet

    out = act(fnnet.dense(params, x))[:, 0]
    return jnp.mean((out - y.astype(out.dtype)) ** 2)


def mlp_loss(params, x, y, act):
    """fnnet.train's MLP loss (softmax cross-entropy of integer labels), differentiated by jax.grad:
    the step has no hand rule, so the explicit hand backprop cannot run it."""
    from fnnet import train

    return train.loss_fn(params, x, y, activation=act)


def descend(loss, params, x, y, act, *, steps: int, lr: float, beta: float = 0.0):
    """Full-batch gradient descent (fnnet.train.momentum, heavy ball ``beta``; 0: plain) as one
    ``lax.scan``.

    Returns the final params, the loss before each step and the gradient norm of each layer at each
    step (``(steps, n_layers)``).
    """
    from fnnet import train

    opt = train.momentum(lr, beta)

    def body(carry, _):
        p, v = carry
        value, g = jax.value_and_grad(loss)(p, x, y, act)
        layers = g if isinstance(g, list) else [g]
        norms = jnp.stack([jnp.sqrt(sum(jnp.sum(a * a) for a in layer.values())) for layer in layers])
        updates, v = opt.update(g, v, p)
        return (train.apply_updates(p, updates), v), (value, norms)

    v0 = opt.init(params)
    (params, _), (values, norms) = jax.jit(lambda p: lax.scan(body, (p, v0), None, length=steps))(params)
    return params, np.asarray(values), np.asarray(norms)


def run(*, steps: int = 400, n: int = 400, lr_unit: float = 0.5, lr_mlp: float = 0.2, beta_mlp: float = 0.9, hidden: int = 16,
        seed: int = 0) -> dict:
    import fnnet
    from fnnet import datasets, layers

    out: dict = {"unit": {}, "mlp": {}}
    x, y = blobs(n, seed)
    x, y = jnp.asarray(x), jnp.asarray(y)
    # A wrong start: the boundary w·x = 0 at right angles to the one that separates the blobs.
    start = {"W": jnp.asarray([[-1.0, 1.0]], jnp.float32), "b": jnp.zeros((1,), jnp.float32)}
    # The loss along the line w(t) = start + t·(1, 1)/√2 (towards the right answer): a staircase for
    # the step, a smooth slope for the sigmoid.
    ts = np.linspace(-1.0, 4.0, 2001, dtype=np.float32)
    for name in ("step", "sigmoid"):
        act = _activation(name)
        p, values, norms = descend(unit_loss, start, x, y, act, steps=steps, lr=lr_unit)
        pred = (act(fnnet.dense(p, x))[:, 0] > 0.5).astype(jnp.int32)
        line = jax.jit(jax.vmap(
            lambda t, act=act: unit_loss({"W": start["W"] + t * jnp.asarray([[0.7071, 0.7071]], jnp.float32),
                                 "b": start["b"]}, x, y, act)
        ))(jnp.asarray(ts))
        out["unit"][name] = {
            "loss": values, "grad_norm": norms[:, 0], "accuracy": float(jnp.mean(pred == y)),
            "line_t": ts, "line_loss": np.asarray(line),
        }

    ds = datasets.load("circles", seed=seed, n=n)
    xtr, ytr = jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)
    p0 = layers.init_mlp(jax.random.key(seed), [2, hidden, 2])
    for name in ("step", "sigmoid"):
        act = _activation(name)
        p, values, norms = descend(mlp_loss, p0, xtr, ytr, act, steps=steps, lr=lr_mlp, beta=beta_mlp)
        logits = fnnet.mlp(p, jnp.asarray(ds.x_test), activation=act)
        out["mlp"][name] = {
            "loss": values, "grad_norm": norms,
            "hidden_moved": float(jnp.max(jnp.abs(p[0]["W"] - p0[0]["W"]))),
            "test_accuracy": float(jnp.mean(jnp.argmax(logits, -1).astype(jnp.int32) == jnp.asarray(ds.y_test))),
        }
    return out


def report(result) -> None:
    print("one unit, squared loss, separable blobs, full-batch gradient descent:")
    for name, r in result["unit"].items():
        print(f"  {name:<8} max |grad| over {len(r['loss'])} steps = {r['grad_norm'].max():.3g}   "
              f"loss {r['loss'][0]:.4f} -> {r['loss'][-1]:.4f}   accuracy {r['accuracy']:.3f}")
    print("MLP 2-16-2 on circles (momentum 0.9, lr 0.2):")
    for name, r in result["mlp"].items():
        print(f"  {name:<8} max |grad hidden layer| = {r['grad_norm'][:, 0].max():.3g}   "
              f"max |grad output layer| = {r['grad_norm'][:, 1].max():.3g}   "
              f"hidden W moved by {r['hidden_moved']:.3g}   loss {r['loss'][0]:.3f} -> {r['loss'][-1]:.3f}   "
              f"test accuracy {r['test_accuracy']:.3f}")


def plot(result, path) -> None:
    plt = C.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    # every legend sits under its panel: none covers a curve
    below = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.2), "fontsize": 8, "frameon": False}
    colors = {"step": "#d62728", "sigmoid": "#1f77b4"}
    ax = axes[0]
    for name, r in result["unit"].items():
        ax.plot(r["line_t"], r["line_loss"], color=colors[name], label=name)
    zoom = ax.inset_axes([0.45, 0.45, 0.5, 0.45])
    r = result["unit"]["step"]
    sel = (r["line_t"] >= 0.0) & (r["line_t"] <= 0.25)
    zoom.plot(r["line_t"][sel], r["line_loss"][sel], color=colors["step"], drawstyle="steps-mid")
    zoom.set_title("step, zoomed: flat treads", fontsize=7)
    zoom.tick_params(labelsize=6)
    ax.set_xlabel("t  (w = w_start + t·(1,1)/√2)")
    ax.set_ylabel("squared loss")
    ax.set_title("one unit: the loss along a line in weight space")
    ax.legend(**below, ncol=2)
    ax = axes[1]
    for name, r in result["unit"].items():
        ax.plot(r["loss"], color=colors[name],
                label=f"{name}: max |∇| = {r['grad_norm'].max():.2g}, acc {r['accuracy']:.2f}")
    ax.set_xlabel("gradient-descent step")
    ax.set_ylabel("squared loss (training set)")
    ax.set_title("one unit: training loss")
    ax.legend(**below)
    ax = axes[2]
    for name, r in result["mlp"].items():
        ax.plot(r["loss"], color=colors[name],
                label=f"{name}: max |∇W₁| = {r['grad_norm'][:, 0].max():.2g}, test acc {r['test_accuracy']:.2f}")
    ax.set_xlabel("gradient-descent step")
    ax.set_ylabel("cross-entropy (training set)")
    ax.set_title("MLP 2-16-2 on circles: training loss")
    ax.legend(**below)
    fig.tight_layout()
    C.save(fig, path)


def main(argv=None) -> int:
    args = C.parser(__doc__).parse_args(argv)
    result = run(steps=200) if args.quick else run()
    report(result)
    plot(result, args.out / FIGURE)
    return 0


if __name__ == "__main__":
    C.cli(main)
