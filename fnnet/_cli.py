"""The command line, ``python -m fnnet verify | train`` and ``python -m fnnet --version``: application
code kept apart from the library (argparse, per-dataset defaults, a progress bar).

``verify`` runs :func:`fnnet.verify.main`; ``train`` trains an MLP with :mod:`fnnet.train` on one of
:mod:`fnnet.datasets`. The benchmarks are not part of the package: ``python -m benchmarks`` from a
source checkout (``make bench``).
"""
from __future__ import annotations

import argparse
import difflib
import math
import sys
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from fnnet import datasets, layers, train

# ---------------------------------------------------------------------------------------------
# python -m fnnet train
# ---------------------------------------------------------------------------------------------

DEFAULTS: dict[str, dict[str, Any]] = {
    "xor": dict(activation="tanh", hidden=(8,), epochs=100, lr=0.1, momentum=0.9, batch_size=32),
    "spirals": dict(activation="tanh", hidden=(64, 64), epochs=300, lr=0.05, momentum=0.9, batch_size=32),
    "circles": dict(activation="tanh", hidden=(16,), epochs=100, lr=0.1, momentum=0.9, batch_size=32),
    "iris": dict(activation="tanh", hidden=(16,), epochs=100, lr=0.05, momentum=0.9, batch_size=16),
    "wine": dict(activation="tanh", hidden=(16,), epochs=100, lr=0.05, momentum=0.9, batch_size=16),
    "breast_cancer": dict(activation="tanh", hidden=(32,), epochs=50, lr=0.01, momentum=0.9, batch_size=32),
    "digits": dict(activation="relu", hidden=(64, 64), epochs=50, lr=0.05, momentum=0.9, batch_size=32),
}
"""Per-dataset defaults of ``python -m fnnet train`` (any of them can be overridden by its flag)."""


def _hidden_arg(text: str) -> tuple[int, ...]:
    """``"64,64"`` -> (64, 64); ``""`` or ``"none"`` -> () (no hidden layer: a linear model)."""
    text = text.strip()
    if text.lower() in ("", "none"):
        return ()
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive layer widths such as 64,64; got {text!r}"
        )
    return sizes


def _activation_arg(text: str) -> str:
    if text not in train.activation_names():
        raise argparse.ArgumentTypeError(
            f"unknown activation {text!r}; choose from {', '.join(train.activation_names())}"
        )
    return text


def _number_arg(kind, lo, lo_open, hi=math.inf, hi_open=False, what=""):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}; got {text!r}") from None
        ok = (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
        if not (ok and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"expected {what}; got {text!r}")
        return value

    return parse


def _train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fnnet train",
        description="Train an MLP with fnnet's hand-written backprop (one compiled lax.scan per epoch) "
        "and print its test accuracy. Defaults depend on the dataset (fnnet._cli.DEFAULTS).",
    )
    p.add_argument("--dataset", required=True, choices=datasets.NAMES,
                   help="synthetic (no dependency) or scikit-learn's bundled ones")
    p.add_argument("--activation", type=_activation_arg, help="an fnnet activation, e.g. relu, tanh, gelu")
    p.add_argument("--hidden", type=_hidden_arg, help="hidden layer widths, e.g. 64,64 ('none': linear)")
    p.add_argument("--epochs", type=_number_arg(int, 1, False, what="a positive integer"))
    p.add_argument("--lr", type=_number_arg(float, 0.0, True, what="a positive finite number"),
                   help="learning rate")
    p.add_argument("--momentum", type=_number_arg(float, 0.0, False, 1.0, True, what="a number in [0, 1)"),
                   help="0 for plain SGD")
    p.add_argument("--batch-size", type=_number_arg(int, 1, False, what="a positive integer"))
    p.add_argument("--seed", type=int, default=0, help="fixes the data, the split, the init and the shuffles")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


class _ProgressBar:
    """A one-line text progress bar on a stream, redrawn in place with ``\\r`` (no dependency)."""

    def __init__(self, stream, width: int = 30):
        self.stream, self.width = stream, width

    def __call__(self, info: train.EpochInfo) -> None:
        done = info.epoch / info.epochs
        filled = int(round(self.width * done))
        bar = "#" * filled + "-" * (self.width - filled)
        line = (
            f"\repoch {info.epoch:>{len(str(info.epochs))}}/{info.epochs} [{bar}] "
            f"loss {info.loss:.4f}  {info.seconds:5.1f}s    "  # trailing blanks cover a longer line
        )
        self.stream.write(line)
        if info.epoch == info.epochs:
            self.stream.write("\n")
        self.stream.flush()


def train_main(argv: Sequence[str]) -> int:
    """``python -m fnnet train --dataset NAME [...]``: train, show progress, print ``test accuracy``.

    Returns the exit status (0; argparse exits with 2 on bad arguments; 1 with a message when a
    dataset needs scikit-learn and it is missing).
    """
    args = _train_parser().parse_args(list(argv))
    cfg = dict(DEFAULTS[args.dataset])
    for name in ("activation", "hidden", "epochs", "lr", "momentum", "batch_size"):
        value = getattr(args, name)
        if value is not None:
            cfg[name] = value
    try:
        ds = datasets.load(args.dataset, seed=args.seed)
    except ImportError as e:
        print(f"python -m fnnet train: {e}", file=sys.stderr)
        return 1

    n_train = int(ds.x_train.shape[0])
    if cfg["batch_size"] > n_train:  # fit would take full-batch steps anyway: say so, print what runs
        print(
            f"python -m fnnet train: --batch-size {cfg['batch_size']} is more than the {n_train} training "
            f"points of {args.dataset}; using {n_train} (full-batch steps)",
            file=sys.stderr,
        )
        cfg["batch_size"] = n_train
    key_init, key_fit = jax.random.split(jax.random.key(args.seed))
    sizes = [ds.n_features, *cfg["hidden"], ds.n_classes]
    init = "he" if cfg["activation"] in ("relu", "leaky_relu", "relu6") else "glorot"
    params = layers.init_mlp(key_init, sizes, init=init, dtype=jnp.float32)
    opt = train.momentum(cfg["lr"], cfg["momentum"]) if cfg["momentum"] > 0 else train.sgd(cfg["lr"])
    print(
        f"{args.dataset}: {ds.x_train.shape[0]} train / {ds.x_test.shape[0]} test, "
        f"{ds.n_features} features, {ds.n_classes} classes; mlp {'-'.join(map(str, sizes))} "
        f"{cfg['activation']}; {cfg['epochs']} epochs, batch {cfg['batch_size']}, lr {cfg['lr']}, "
        f"momentum {cfg['momentum']}",
        file=sys.stderr,
    )
    if not args.quiet:  # the first epoch includes compiling it: say so rather than sit silent
        print(f"\repoch 0/{cfg['epochs']} (compiling the epoch's lax.scan)", end="", file=sys.stderr, flush=True)
    start = time.perf_counter()
    result = train.fit(
        params, ds.x_train, ds.y_train, optimizer=opt, epochs=cfg["epochs"],
        batch_size=cfg["batch_size"], activation=cfg["activation"], key=key_fit,
        callback=None if args.quiet else _ProgressBar(sys.stderr),
    )
    seconds = time.perf_counter() - start
    train_acc = train.accuracy(result.params, ds.x_train, ds.y_train, activation=cfg["activation"])
    test_acc = train.accuracy(result.params, ds.x_test, ds.y_test, activation=cfg["activation"])
    print(f"trained in {seconds:.1f}s; train accuracy {train_acc:.4f}")
    print(f"test accuracy {test_acc:.4f}")
    return 0


# ---------------------------------------------------------------------------------------------
# python -m fnnet verify
# ---------------------------------------------------------------------------------------------


def verify_main(argv: Sequence[str]) -> int:
    """``python -m fnnet verify [names] [--seed N] [--gradcheck]``; 2 with the message when
    :func:`fnnet.verify.verify` refuses its arguments (unknown primitive names)."""
    from fnnet import verify

    try:
        return verify.main(list(argv))
    except ValueError as e:
        print(f"python -m fnnet verify: {e}", file=sys.stderr)
        return 2


# ---------------------------------------------------------------------------------------------
# The dispatcher: python -m fnnet COMMAND
# ---------------------------------------------------------------------------------------------

COMMANDS = {
    "verify": (verify_main, "check every primitive's hand-written VJP and JVP"),
    "train": (train_main, "train an MLP with hand-written backprop"),
}

#: Commands that left the package, and where they went.
MOVED = {
    "bench": "the benchmarks are not part of the fnnet package; from a source checkout run "
    "`python -m benchmarks` (or `make bench`)",
}


def _usage() -> str:
    lines = [f"usage: python -m fnnet {{{','.join(COMMANDS)}}} [options]   (python -m fnnet COMMAND --help)", ""]
    lines += [f"  {name:<7} {doc}" for name, (_, doc) in COMMANDS.items()]
    lines += ["", "  --version  print fnnet's version"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fnnet COMMAND [options]``: the exit status of the command (2 for a usage error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(_usage(), file=sys.stderr)
        return 2
    if argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        import fnnet

        print(f"fnnet {fnnet.__version__}")
        return 0
    if argv[0] in MOVED:
        print(f"python -m fnnet {argv[0]}: {MOVED[argv[0]]}", file=sys.stderr)
        return 2
    if argv[0] not in COMMANDS:
        close = difflib.get_close_matches(argv[0], COMMANDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        print(
            f"python -m fnnet: unknown command {argv[0]!r}{hint}; the commands are "
            f"{', '.join(COMMANDS)} (python -m fnnet --help)",
            file=sys.stderr,
        )
        return 2
    return COMMANDS[argv[0]][0](argv[1:])
