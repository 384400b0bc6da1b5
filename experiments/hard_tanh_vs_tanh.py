"""Experiment 4: hard tanh against tanh: time per element, and accuracy of networks trained with each.

Claim (the lecture's). hard_tanh(z) = clip(z, −1, 1) is tanh's piecewise-linear caricature: a compare
and a select instead of an exponential, with derivative 1 on (−1, 1) and 0 outside (tanh: sech²(z),
never exactly 0). So it should be cheaper per element, and networks trained with it should reach
similar accuracy.

Measured:

1. forward + backward time per element: ``jit(grad(lambda x: f(x).sum()))`` on n float32 entries
   ~ N(0, 9), fnnet's hand rules; the two compiled functions are run alternately (interleaved, so load
   from other processes hits both alike) and the median of each is reported, with the ratio;
2. test accuracy of an MLP trained with each (fnnet's hand backprop, SGD with momentum, same init,
   same data order) on spirals and, when scikit-learn is installed, digits; several seeds; two
   initialisations, Glorot (uniform, variance 2/(n_in + n_out)) and He (normal, variance 2/n_in);
3. after training, the fraction of hidden pre-activations z (over the training set) inside (−1, 1),
   where hard_tanh(z) = z: a hard-tanh network all of whose pre-activations lie there *is* a linear
   network. On spirals (2 inputs) Glorot's small first-layer weights put every unit there at the start;
   the gradient of that linear network leads to the best linear classifier, inside the region, and
   training settles there at the linear network's accuracy (compare experiment 1). tanh is curved
   everywhere (tanh z ≈ z − z³/3), so it never has such a linear trap. He's larger weights start
   units on the flat parts and hard_tanh learns as well as tanh.

    .venv/bin/python -m experiments.hard_tanh_vs_tanh [--quick]
"""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments import _common as C

REQUIRES = ("matplotlib",)
FIGURE = "hard_tanh_vs_tanh.png"
ACTIVATIONS = ("tanh", "hard_tanh")
#: Per dataset: hidden sizes, epochs, learning rate (momentum 0.9, batch 32).
TASKS = {
    "spirals": {"hidden": (64, 64), "epochs": 300, "lr": 0.05},
    "digits": {"hidden": (64,), "epochs": 40, "lr": 0.05},
}


def time_per_element(n: int = 1 << 22, repeats: int = 30, seed: int = 0) -> dict:
    """Median seconds per element of fwd+bwd for each activation, interleaved runs."""
    import fnnet

    x = 3.0 * jax.random.normal(jax.random.key(seed), (n,), jnp.float32)
    def fwd_bwd(f):
        return jax.jit(jax.grad(lambda v: f(v).sum()))

    steps = {a: fwd_bwd(getattr(fnnet, a)) for a in ACTIVATIONS}
    for s in steps.values():  # compile and warm up outside the timed loop
        s(x).block_until_ready()
    times = {a: [] for a in ACTIVATIONS}
    for _ in range(repeats):
        for a, s in steps.items():
            t0 = time.perf_counter()
            s(x).block_until_ready()
            times[a].append((time.perf_counter() - t0) / n)
    return {"n": n, "times": {a: np.asarray(t) for a, t in times.items()},
            "median": {a: float(np.median(t)) for a, t in times.items()},
            "platform": jax.devices()[0].platform}


INITS = ("glorot", "he")


def linear_fraction(params, x) -> float:
    """The fraction of hidden pre-activations z over the rows of x with |z| < 1 (hard_tanh's linear part)."""
    from fnnet import layers

    h, inside, total = jnp.asarray(x), 0, 0
    for layer in params[:-1]:
        z = layers.dense(layer, h)
        inside += int(jnp.sum(jnp.abs(z) < 1))
        total += z.size
        h = jnp.clip(z, -1.0, 1.0)
    return inside / total


def accuracies(*, tasks=TASKS, seeds=(0, 1, 2), inits=INITS, n_spirals: int = 600) -> dict:
    """``{(dataset, init, activation): [test accuracy per seed]}``, the loss curves of seed 0, and the
    hard-tanh linear fractions."""
    from fnnet import datasets

    out, curves, linear = {}, {}, {}
    for name, cfg in tasks.items():
        if name in datasets.SKLEARN and C.missing(["sklearn"]):
            print(f"  ({name} skipped: scikit-learn is not installed)")
            continue
        for seed in seeds:
            ds = datasets.load(name, seed=seed, **({"n": n_spirals} if name == "spirals" else {}))
            for init in inits:
                for act in ACTIVATIONS:
                    params, losses = C.train(ds, cfg["hidden"], act, epochs=cfg["epochs"], lr=cfg["lr"],
                                             seed=seed, init=init)
                    key = (name, init, act)
                    out.setdefault(key, []).append(C.accuracy(params, ds.x_test, ds.y_test, act))
                    if seed == seeds[0]:
                        curves[key] = losses
                    if act == "hard_tanh":
                        linear.setdefault((name, init), []).append(linear_fraction(params, ds.x_train))
    return {"accuracy": out, "curves": curves, "linear": linear}


def run(*, n: int = 1 << 22, repeats: int = 30, tasks=TASKS, seeds=(0, 1, 2), inits=INITS) -> dict:
    return {"timing": time_per_element(n, repeats), **accuracies(tasks=tasks, seeds=seeds, inits=inits)}


def report(result) -> None:
    t = result["timing"]
    med = t["median"]
    print(f"fwd+bwd time per element ({t['n']} float32, median of {len(t['times']['tanh'])} interleaved runs, "
          f"{t['platform']}):")
    for a in ACTIVATIONS:
        print(f"  {a:<10} {med[a] * 1e9:.3f} ns/element")
    print(f"  tanh / hard_tanh = {med['tanh'] / med['hard_tanh']:.2f}x")
    print("test accuracy (mean over seeds, [per seed]); hard_tanh: fraction of hidden pre-activations in (-1, 1):")
    for (name, init, act), accs in result["accuracy"].items():
        extra = ""
        if act == "hard_tanh":
            extra = f"   linear fraction {np.mean(result['linear'][(name, init)]):.3f}"
        print(f"  {name:<8} {init:<7} {act:<10} {np.mean(accs):.3f}  {[round(a, 3) for a in accs]}{extra}")


def plot(result, path) -> None:
    plt = C.pyplot()
    names = sorted({k[0] for k in result["accuracy"]}, key=list(TASKS).index)
    fig, axes = plt.subplots(1, 1 + len(names), figsize=(4.4 * (1 + len(names)), 4.6), squeeze=False)
    axes = axes[0]
    colors = {"tanh": "#1f77b4", "hard_tanh": "#ff7f0e"}
    t = result["timing"]
    ax = axes[0]
    ax.boxplot([t["times"][a] * 1e9 for a in ACTIVATIONS], tick_labels=list(ACTIVATIONS), widths=0.5)
    ratio = t["median"]["tanh"] / t["median"]["hard_tanh"]
    ax.set_ylabel("ns per element (fwd + bwd)")
    ax.set_title(f"time, {t['n']:,} float32 ({t['platform']}); tanh/hard = {ratio:.2f}x")
    ax.set_ylim(bottom=0)
    styles = {"glorot": "-", "he": "--"}
    for ax, name in zip(axes[1:], names):
        for (ds_name, init, act), accs in result["accuracy"].items():
            if ds_name != name:
                continue
            ax.plot(result["curves"][(name, init, act)], color=colors[act], ls=styles.get(init, "-"),
                    label=f"{act}, {init}: test acc {np.mean(accs):.3f}")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss (seed 0)")
        n_seeds = len(next(iter(result["accuracy"].values())))
        ax.set_title(f"{name} (accuracy: mean of {n_seeds} seed{'s' if n_seeds > 1 else ''})")
        # under the panel: the curves cross the whole plot, so no corner is free
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), frameon=False)
    fig.tight_layout()
    C.save(fig, path)


def main(argv=None) -> int:
    args = C.parser(__doc__).parse_args(argv)
    if args.quick:
        tasks = {"spirals": dict(TASKS["spirals"], epochs=150), "digits": dict(TASKS["digits"], epochs=20)}
        result = run(n=1 << 20, repeats=15, tasks=tasks, seeds=(0,))
    else:
        result = run()
    report(result)
    plot(result, args.out / FIGURE)
    return 0


if __name__ == "__main__":
    C.cli(main)
