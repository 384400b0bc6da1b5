"""The drop-in cost of fnnet's activations against jax.nn's, for every activation both export: eager
call time at 16 and 2²⁰ entries, jit forward and forward+backward time, compile time of
jit(value_and_grad), and the compiled temporary memory of an MLP's gradient, each a ratio measured side
by side in one process (interleaved rounds, medians), ending with a one-line verdict.

    python -m experiments.dropin_cost             # the tables of docs/reference/performance_dropin.md
    python -m experiments.dropin_cost --quick     # 3 ops, small sizes, few rounds (< 60 s)

Every option of ``python -m benchmarks dropin`` is accepted (``--help`` lists them); the protocol is
in ``benchmarks/dropin.py``. Run from a source checkout (the benchmarks package is not in the wheel).
"""
from __future__ import annotations

import sys

from benchmarks.dropin import main

if __name__ == "__main__":
    sys.exit(main())
