"""Run every lecture experiment and draw its figure.

    .venv/bin/python -m experiments.run_all --quick     # a few minutes on 2 CPU cores (make experiments)
    .venv/bin/python -m experiments.run_all             # the full sizes
    .venv/bin/python -m experiments.run_all --only dead_relu,jacobians
    .venv/bin/python -m experiments.run_all --quick --out docs/figures   # redraw the committed figures (make figures)

Figures go to ``build/figures/`` (untracked) unless ``--out`` says otherwise, so a run leaves git status
clean. The committed ones in ``docs/figures/`` are the ``--quick`` sizes; ``_common.save`` writes no
date or version into a PNG, so redrawing them gives the same bytes on the same versions of jax and
matplotlib, except where a figure shows a timing (hard_tanh_vs_tanh's left panel).

The experiments run one after another in this process (one JAX import, one set of compiled
primitives). One whose optional packages are missing (matplotlib for every figure, scikit-learn for
the digits experiments) is skipped with a message naming the package and how to install it; one that
fails is reported and the rest still run. Exit status: 0 when every experiment that ran succeeded.
"""
from __future__ import annotations

import argparse
import importlib
import pathlib
import time
import traceback

from experiments import _common as C

#: In the lecture's order (docs/index.md links their pages).
EXPERIMENTS = (
    "linear_stack",
    "threshold_stall",
    "tanh_sigmoid_identity",
    "hard_tanh_vs_tanh",
    "dead_relu",
    "activation_zoo",
    "jacobians",
    "backprop_graph",
    "gradcheck_steps",
)
INSTALL = {"matplotlib": "matplotlib", "sklearn": "scikit-learn", "mpmath": "mpmath"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--quick", action="store_true", help="every experiment's --quick sizes")
    p.add_argument("--out", type=pathlib.Path, default=C.OUT_DIR,
                   help="where the figures go (default build/figures; docs/figures holds the committed ones)")
    p.add_argument("--only", type=lambda s: [x for x in s.split(",") if x], default=None,
                   help=f"comma-separated subset of: {', '.join(EXPERIMENTS)}")
    args = p.parse_args(argv)
    names = args.only or list(EXPERIMENTS)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        p.error(f"unknown experiment(s) {unknown}; known: {', '.join(EXPERIMENTS)}")

    timings, skipped, failed = {}, {}, {}
    start = time.perf_counter()
    for name in names:
        module = importlib.import_module(f"experiments.{name}")
        lacking = C.missing(getattr(module, "REQUIRES", ("matplotlib",)))
        if lacking:
            pkgs = " ".join(INSTALL.get(m, m) for m in lacking)
            skipped[name] = lacking
            print(f"=== {name}: skipped, needs {', '.join(lacking)} (pip install {pkgs}, or "
                  "pip install 'fnnet[experiments]')\n", flush=True)
            continue
        print(f"=== {name}", flush=True)
        t0 = time.perf_counter()
        try:
            module.main((["--quick"] if args.quick else []) + ["--out", str(args.out)])
        except Exception:  # noqa: BLE001  report and go on: one broken experiment must not hide the others
            traceback.print_exc()
            failed[name] = True
        timings[name] = time.perf_counter() - t0
        print(f"--- {name}: {timings[name]:.1f} s\n", flush=True)
    total = time.perf_counter() - start

    print("summary:")
    for name in names:
        state = ("skipped (needs " + ", ".join(skipped[name]) + ")" if name in skipped
                 else "FAILED" if name in failed else "ok")
        t = f"{timings[name]:6.1f} s" if name in timings else " " * 8
        print(f"  {name:<22} {t}  {state}")
    print(f"total {total:.1f} s{' (quick)' if args.quick else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
