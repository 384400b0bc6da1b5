"""The forwards evaluated without gradient that run a plain formula first, behind a branch to the
exact one, against the same forwards with the exact formula's selects, side by side in one process.

    python -m benchmarks branch                               # the softmax cross-entropies, default shapes
    python -m benchmarks branch --ops softmax --shapes 4096x1024,32768x128

On XLA:CPU, softmax and softmin (``fnnet._numerics.branch_pays``), log_softmax (``log_branch_pays``)
and the softmax cross-entropies (``loss_branch_pays``), from input sizes that depend on the slices'
length, compute the plain formula and take a ``lax.cond`` to the exact one only where the plain one
gives NaN (``exp_sums``, ``unless_nan``); over many slices softmax and log_softmax are jax.nn's
formula as it stands, the predicate on the output's first column (``one_kernel_pays``). Here
each op is compiled with its gate at 0 (the branch) and out of reach (the selects), softmax and
log_softmax also with the one-kernel gate at 0, and all are timed in the same interleaved rounds as
the competitor (jax.nn's softmax, or optax's
loss when optax is installed, else the loss's plain-jnp ``.reference``; jax.nn's log_softmax): the printed ratios are
medians over rounds of the within-round ratio to the competitor (:mod:`benchmarks._timing`), so
the gates' thresholds can be read off one run. float32 inputs as in :mod:`benchmarks.losses`.
"""
from __future__ import annotations

import argparse
import statistics

import jax
import jax.numpy as jnp

import fnnet
import fnnet._numerics as numerics
import fnnet.losses as L
from benchmarks._timing import interleaved
from benchmarks.losses import competitor, inputs

#: op -> the fnnet._numerics gate that decides its branch on the slice sums.
OPS = {
    "softmax": "BRANCH_MIN_BYTES",
    "log_softmax": "LOG_BRANCH_MIN_BYTES",
    "softmax_cross_entropy": "LOSS_BRANCH_MIN_BYTES",
    "softmax_cross_entropy_with_integer_labels": "LOSS_BRANCH_MIN_BYTES",
}

#: The gate of jax.nn's whole formula as one kernel (``one_kernel_pays``), checked before the other,
#: and its longest slice (out of reach when the form is forced).
ONE_KERNEL = "ONE_KERNEL_MIN_SLICES"
ONE_KERNEL_LONGEST = "ONE_KERNEL_MAX_SLICE"
OUT_OF_REACH = 1 << 62

#: The ops whose competitor is jax.nn's function of the same name (the others are losses).
ACTIVATIONS = ("softmax", "log_softmax")

LOSS_SHAPES = ((4096, 1000), (1024, 1024), (256, 1024), (64, 1024), (32, 1024), (512, 64), (4096, 10), (256, 10))
SOFTMAX_SHAPES = ((4096, 1024), (32768, 128), (2048, 1024), (16384, 128), (16384, 10))


def compiled_with_gate(fn, gate_name: str, gate: int, args, **other_gates: int):
    """``jax.jit(fn)`` compiled for ``args`` with ``fnnet._numerics.<gate_name>`` set to ``gate`` (and
    each of ``other_gates`` to its value) while it is traced (the gates are read at trace time), the
    gates restored after."""
    gates = {gate_name: gate, **other_gates}
    old = {name: getattr(numerics, name) for name in gates}
    for name, value in gates.items():
        setattr(numerics, name, value)
    try:
        return jax.jit(lambda *a: fn(*a)).lower(*args).compile()
    finally:
        for name, value in old.items():
            setattr(numerics, name, value)


def op_inputs(op: str, shape):
    if op in ACTIVATIONS:
        return (jax.random.normal(jax.random.key(0), shape, jnp.float32) * 3,)
    return inputs(op, shape)


def op_functions(op: str, against: str):
    """(fnnet's function, the competitor's, the competitor's name)."""
    if op in ACTIVATIONS:
        return getattr(fnnet, op), getattr(jax.nn, op), "jax.nn"
    name, fb = competitor(against)
    return getattr(L, op), fb(op), name.split(" (")[0]


def measure(op: str, shape, against: str, rounds: int) -> dict:
    args = op_inputs(op, shape)
    fa, fb, name = op_functions(op, against)
    gate = OPS[op]
    off = {ONE_KERNEL: OUT_OF_REACH}
    fns = {"branch": compiled_with_gate(fa, gate, 0, args, **off),
           "selects": compiled_with_gate(fa, gate, OUT_OF_REACH, args, **off)}
    if op in ACTIVATIONS:
        fns["one kernel"] = compiled_with_gate(fa, ONE_KERNEL, 0, args, **{ONE_KERNEL_LONGEST: OUT_OF_REACH})
    fns[name] = jax.jit(fb).lower(*args).compile()
    times = interleaved({k: (lambda f=f: f(*args)) for k, f in fns.items()}, rounds)
    return {k: statistics.median(a / b for a, b in zip(times[k], times[name])) for k in fns if k != name} | {
        "against": name, "kib": args[0].size * args[0].dtype.itemsize // 1024}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks branch", description=__doc__.split("\n\n")[0])
    p.add_argument("--ops", type=lambda s: [o for o in s.split(",") if o], default=None,
                   help=f"comma-separated subset of {','.join(OPS)} (default: the two losses)")
    p.add_argument("--shapes", type=lambda s: [tuple(int(v) for v in o.split("x")) for o in s.split(",") if o],
                   default=None, help="rows x slice, comma-separated (defaults: the losses' 4096x1000 ... 256x10, "
                                      "softmax's 4096x1024, 32768x128, 2048x1024, 16384x128, 16384x10)")
    p.add_argument("--against", choices=("auto", "optax", "reference"), default="auto",
                   help="the losses' competitor (as benchmarks losses)")
    p.add_argument("--repeats", type=int, default=100, help="timed rounds (default 100)")
    args = p.parse_args(argv)
    ops = args.ops or ["softmax_cross_entropy", "softmax_cross_entropy_with_integer_labels"]
    unknown = [o for o in ops if o not in OPS]
    if unknown:
        p.error(f"unknown op(s) {unknown}; known: {', '.join(OPS)}")
    args.ops = ops
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    print(f"jit forward alone, fnnet / competitor, median of {args.repeats} interleaved rounds; one kernel: "
          f"{ONE_KERNEL} at 0 and {ONE_KERNEL_LONGEST} out of reach (softmax, log_softmax); "
          f"branch: the op's gate at 0 and {ONE_KERNEL} out of reach; "
          f"selects: both out of reach; {jax.default_backend()}, jax {jax.__version__}")
    if not numerics._branch_backend():
        print("(the branches are taken on XLA:CPU with one device only: here every column times the selects)")
    print("| op | shape | KiB | against | one kernel | branch | selects |")
    print("|---|---|---|---|---|---|---|")
    for op in args.ops:
        shapes = args.shapes or (SOFTMAX_SHAPES if op in ACTIVATIONS else LOSS_SHAPES)
        for shape in shapes:
            r = measure(op, shape, args.against, args.repeats)
            one = f"{r['one kernel']:.2f}" if "one kernel" in r else "–"
            print(f"| {op} | {shape[0]}x{shape[1]} | {r['kib']} | {r['against']} | {one} | {r['branch']:.2f} | "
                  f"{r['selects']:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
