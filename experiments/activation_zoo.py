"""Experiment 6: the activation zoo on digits: loss and accuracy curves for each activation.

The lecture's activations, sigmoid, tanh, hard_tanh, relu, leaky_relu, swish, and gelu, each in the same
MLP 64-64-64-10 on scikit-learn's digits (1347 train / 450 test, standardised), the same data order, SGD
with momentum 0.9 at one learning rate, fnnet's hand backprop. Init: He for the ReLU family, Glorot
otherwise (``fnnet.train``'s rule). After every epoch: training loss and test loss and accuracy.

What to expect (the lecture's story, which the numbers test): sigmoid, whose derivative is at most ¼
and whose outputs are not centred on 0, learns slowest; tanh (derivative ≤ 1, centred) faster; the
ReLU family and the smooth ReLUs (swish, gelu) fastest, all reaching similar accuracy on this small task.

    .venv/bin/python -m experiments.activation_zoo [--quick]
"""
from __future__ import annotations

import numpy as np

from experiments import _common as C

REQUIRES = ("matplotlib", "sklearn")
FIGURE = "activation_zoo.png"
ACTIVATIONS = ("sigmoid", "tanh", "hard_tanh", "relu", "leaky_relu", "swish", "gelu")


def run(*, epochs: int = 40, lr: float = 0.02, hidden=(64, 64), activations=ACTIVATIONS, ds=None,
        seed: int = 0) -> dict:
    """Per activation: training loss per epoch, test loss and accuracy per epoch (index 0: at init)."""
    from fnnet import datasets
    from fnnet import train as T

    ds = datasets.load("digits", seed=seed) if ds is None else ds
    out = {"dataset": ds.name, "epochs": epochs, "lr": lr, "curves": {}}
    for act in activations:
        test_loss, test_acc = [], []

        def on_epoch(info, act=act, test_loss=test_loss, test_acc=test_acc):
            e = T.evaluate(info.params, ds.x_test, ds.y_test, activation=act)
            test_loss.append(e["loss"])
            test_acc.append(e["accuracy"])

        _, losses = C.train(ds, hidden, act, epochs=epochs, lr=lr, seed=seed, on_epoch=on_epoch)
        out["curves"][act] = {"train_loss": np.asarray(losses), "test_loss": np.asarray(test_loss),
                              "test_acc": np.asarray(test_acc)}
    return out


def epochs_to(acc: np.ndarray, level: float) -> int | None:
    """The first epoch (1-based) whose test accuracy reaches ``level``; None if none does."""
    hit = np.flatnonzero(acc >= level)
    return int(hit[0]) + 1 if hit.size else None


def report(result) -> None:
    print(f"{result['dataset']}: {result['epochs']} epochs, SGD momentum 0.9, lr {result['lr']}")
    print(f"  {'activation':<11} {'final train loss':>16} {'test loss':>10} {'test acc':>9} "
          f"{'best acc':>9} {'epochs to 95%':>14}")
    for act, c in result["curves"].items():
        e95 = epochs_to(c["test_acc"], 0.95)
        print(f"  {act:<11} {c['train_loss'][-1]:>16.4f} {c['test_loss'][-1]:>10.4f} {c['test_acc'][-1]:>9.4f} "
              f"{c['test_acc'].max():>9.4f} {e95 if e95 else 'never'!s:>14}")


def plot(result, path) -> None:
    plt = C.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12.5, 3.9))
    cmap = plt.get_cmap("tab10")
    for i, (act, c) in enumerate(result["curves"].items()):
        epochs = np.arange(1, len(c["train_loss"]) + 1)
        axes[0].semilogy(epochs, c["train_loss"], color=cmap(i), label=f"{act} (final test acc {c['test_acc'][-1]:.3f})")
        axes[1].semilogy(epochs, c["test_loss"], color=cmap(i))
        axes[2].plot(epochs, c["test_acc"], color=cmap(i))
    axes[0].set_title("training loss (mean over the epoch's steps)")
    axes[0].set_ylabel("cross-entropy")
    axes[1].set_title("test loss")
    axes[1].set_ylabel("cross-entropy")
    axes[2].set_title("test accuracy")
    axes[2].set_ylabel("fraction of test digits right")
    axes[2].set_ylim(0.0, 1.0)  # the whole range: the slow starter (sigmoid) stays in view
    axes[2].axhline(0.1, color="#999999", lw=0.8, ls=":")
    axes[2].text(len(epochs), 0.12, "chance (10 classes)", ha="right", fontsize=7, color="#666666")
    for ax in axes:
        ax.set_xlabel("epoch")
    # one legend for the three panels, under them: no curve is covered
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(f"{result['dataset']}: MLP 64-64-64-10, SGD momentum 0.9, lr {result['lr']}, fnnet hand backprop")
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    C.save(fig, path)


def main(argv=None) -> int:
    args = C.parser(__doc__).parse_args(argv)
    result = run(epochs=15) if args.quick else run()
    report(result)
    plot(result, args.out / FIGURE)
    return 0


if __name__ == "__main__":
    C.cli(main)
