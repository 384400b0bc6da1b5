"""Shared plumbing of the lecture experiments: arguments, figures, float64 scopes, small training runs.

The experiments are a package, run from the repository root as ``python -m experiments.NAME``
(``python -m experiments.run_all`` runs them all). Every experiment module has the same shape:

* ``run(...) -> dict``: the measurement alone (no plotting), with size arguments so that the smoke test
  (``tests/test_experiments.py``) can call it on tiny problems;
* ``plot(result, path)``: the figure, written with matplotlib's Agg backend (no display needed);
* ``main(argv)``: ``--quick`` (smaller sizes, same claim), ``--out DIR`` (default ``build/figures``,
  untracked; ``docs/figures`` holds the committed figures, drawn with ``--quick``);
  prints the number that supports or refutes the claim, writes the figure, returns 0.

``REQUIRES`` in each module names the optional packages it needs (``matplotlib`` always, for the
figure; ``sklearn`` for the scikit-learn datasets); ``run_all.py`` skips a script whose packages are
missing and says which.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import pathlib
import sys
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
#: The committed figures (drawn by ``make figures``: ``run_all.py --quick --out docs/figures``).
FIG_DIR = ROOT / "docs" / "figures"
#: Where a run writes unless told otherwise: untracked, so running the experiments leaves git status clean.
OUT_DIR = ROOT / "build" / "figures"
DPI = 100
#: Figures are committed: each must stay small (PNG, flat colours compress well).
MAX_FIGURE_BYTES = 200_000

def missing(requires: Sequence[str]) -> list[str]:
    """The optional packages in ``requires`` that are not installed."""
    return [name for name in requires if importlib.util.find_spec(name) is None]


def parser(doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller sizes, same claim (seconds)")
    p.add_argument("--out", type=pathlib.Path, default=OUT_DIR,
                   help="where the figure goes (default build/figures; docs/figures holds the committed ones)")
    return p


def pyplot():
    """matplotlib.pyplot on the Agg backend (headless; the figures are files)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": DPI, "savefig.dpi": DPI, "font.size": 9, "axes.titlesize": 9})
    return plt


def save(fig, path: pathlib.Path) -> pathlib.Path:
    """Write ``fig`` as PNG at ``DPI``, close it, and check it stays under ``MAX_FIGURE_BYTES``.

    The file holds no date and no matplotlib version: the same figure drawn again on the same versions
    is the same bytes, so regenerating the committed figures leaves git status clean.
    """
    plt = pyplot()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    size = path.stat().st_size
    if size > MAX_FIGURE_BYTES:
        print(f"warning: {path} is {size / 1e3:.0f} kB (> {MAX_FIGURE_BYTES / 1e3:.0f} kB)", file=sys.stderr)
    print(f"figure: {os.path.relpath(path, os.getcwd())} ({size / 1e3:.0f} kB)")
    return path


@contextlib.contextmanager
def float64():
    """float64 for the body only (``jax.enable_x64(True)``, or the older experimental scope); the global
    setting is left as it was, so experiments run in one process (``run_all``) do not leak into each other."""
    enable = getattr(jax, "enable_x64", None)
    if enable is not None:
        with enable(True):
            yield
        return
    from jax.experimental import enable_x64  # type: ignore[attr-defined]  # older jax

    with enable_x64():
        yield


# ---------------------------------------------------------------------------------------------
# Small training runs with fnnet.train (the hand-written backward pass)
# ---------------------------------------------------------------------------------------------


def train(
    ds,
    hidden: Sequence[int],
    activation,
    *,
    epochs: int,
    lr: float,
    beta: float = 0.9,
    batch_size: int = 32,
    seed: int = 0,
    init: str | None = None,
    on_epoch: Callable | None = None,
):
    """Train an MLP on the :class:`fnnet.datasets.Dataset` ``ds`` with fnnet's hand backprop.

    ``activation`` None is a deep linear network. ``init`` defaults to He for the ReLU family (half the
    units are zero, so twice the fan-in variance) and Glorot otherwise. ``on_epoch(info)`` is
    :func:`fnnet.train.fit`'s callback. Returns ``(params, losses)``: the trained params and the mean
    training loss of each epoch.
    """
    from fnnet import layers
    from fnnet import train as T

    key_init, key_fit = jax.random.split(jax.random.key(seed))
    if init is None:
        name = activation if isinstance(activation, str) else ""
        init = "he" if name in ("relu", "leaky_relu", "relu6") else "glorot"
    sizes = [ds.n_features, *hidden, ds.n_classes]
    params = layers.init_mlp(key_init, sizes, init=init, dtype=jnp.float32)
    opt = T.momentum(lr, beta) if beta > 0 else T.sgd(lr)
    result = T.fit(
        params, ds.x_train, ds.y_train, optimizer=opt, epochs=epochs, batch_size=batch_size,
        activation=activation, key=key_fit, callback=on_epoch,
    )
    return result.params, result.losses


def accuracy(params, x, y, activation) -> float:
    from fnnet import train as T

    return T.accuracy(params, x, y, activation=activation)


def grid_predictions(params, activation, lo, hi, n=200):
    """Class predicted at every point of an ``n × n`` grid over ``[lo, hi]²`` (for decision regions)."""
    from fnnet import layers

    xs = np.linspace(lo[0], hi[0], n, dtype=np.float32)
    ys = np.linspace(lo[1], hi[1], n, dtype=np.float32)
    gx, gy = np.meshgrid(xs, ys)
    pts = jnp.asarray(np.stack([gx.ravel(), gy.ravel()], axis=1))
    pred = jnp.argmax(layers.mlp(params, pts, activation=activation), axis=-1)
    return gx, gy, np.asarray(pred).reshape(gx.shape)


def cli(main_fn: Callable[[list[str] | None], int]) -> None:
    raise SystemExit(main_fn(sys.argv[1:]))
