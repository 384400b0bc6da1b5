"""How large a graph fnnet.graph handles, and how long sort, forward and backward take.

Two graphs:

* chain: x -> tanh -> tanh -> ... (N nodes), declared from last to first so the sort has to reorder
  everything; the depth a recursive sort could not reach.
* wide: a random DAG of N nodes over arrays of shape (WIDTH,), each node an add, multiply or tanh of
  nodes drawn from the last WINDOW names (fan-out everywhere), with 8 shared parameter inputs; nodes
  are declared in shuffled order.

Measured: the sort (``Graph(nodes)``: validation + Kahn's algorithm), the eager forward (with
residuals) and backward (hand rules, given the residuals), each after one warm-up run so that JAX's
per-op compilation is not counted; then ``jax.jit`` of forward+backward: the first call (trace +
compile) and a compiled call; with ``--baseline`` beside the same for ``jax.jit(jax.vjp)`` of the
computation written in plain jnp (each op's reference), which separates XLA's compile cost from the
graph's.

    .venv/bin/python -m experiments.graph_scale            # N = 10,000
    .venv/bin/python -m experiments.graph_scale --quick    # N = 1,000
"""
from __future__ import annotations

import argparse
import platform
import random
import sys
import time

import jax
import jax.numpy as jnp

import fnnet
import fnnet.ops  # noqa: F401  (registers add, multiply)
from fnnet.graph import Graph

WIDTH = 256
WINDOW = 16


def chain(n):
    specs = [(f"h{i}", "tanh", [f"h{i - 1}" if i else "x"]) for i in range(n)][::-1]
    return specs, {"x": jnp.linspace(-1.0, 1.0, WIDTH, dtype=jnp.float32)}


def wide(n, seed=0):
    rng = random.Random(seed)
    params = [f"p{i}" for i in range(8)]
    names = ["x"] + params
    specs = []
    for k in range(n):
        window = names[-WINDOW:]
        r = rng.random()
        if r < 0.35:
            specs.append((f"n{k}", "add", [rng.choice(window), rng.choice(window + params)]))
        elif r < 0.55:
            specs.append((f"n{k}", "multiply", [rng.choice(window), rng.choice(params)]))
        else:
            specs.append((f"n{k}", "tanh", [rng.choice(window)]))
        names.append(f"n{k}")
    rng.shuffle(specs)
    keys = jax.random.split(jax.random.key(seed), 9)
    values = {
        name: jax.random.uniform(k, (WIDTH,), jnp.float32, -0.5, 0.5)
        for name, k in zip(["x"] + params, keys)
    }
    return specs, values


def _time(f, repeat=1):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        jax.block_until_ready(out)
        best = min(best, time.perf_counter() - t)
    return best, out


def measure(label, specs, values, jit_max, with_baseline=False):
    t_sort, g = _time(lambda: Graph(specs), repeat=3)
    # Seed every sink (a node nothing consumes), so the backward pass visits every node that reaches
    # one: all of them. (Seeding one output of the wide DAG would reach only its few ancestors.)
    used = {i for n in g.nodes for i in n.inputs}
    seed = {n.name: jnp.ones((WIDTH,), jnp.float32) for n in g.nodes if n.name not in used}

    def fwd():
        return g.forward(values, return_residuals=True)

    fwd()  # warm-up: per-op compilation
    t_fwd, (vals, res) = _time(fwd)
    bwd = lambda: g.backward(vals, seed, residuals=res)  # noqa: E731
    bwd()
    t_bwd, grads = _time(bwd)

    @jax.jit
    def step(values):
        vals, res = g.forward(values, return_residuals=True)
        return g.backward(vals, seed, residuals=res)

    @jax.jit
    def baseline(values):
        # The same computation in plain jnp (each op's reference) differentiated by jax.vjp: what
        # XLA costs for this graph without fnnet.graph in the way.
        def f(values):
            env = dict(values)
            for n in g._order:
                env[n.name] = n.op.reference(*(env[i] for i in n.inputs), **n.kwargs)
            return {k: env[k] for k in seed}

        return jax.vjp(f, values)[1](seed)[0]

    if len(g.nodes) <= jit_max:
        t_compile, _ = _time(lambda: step(values))
        t_jit, _ = _time(lambda: step(values), repeat=5)
        jit_cols = f"{t_compile:>12.2f}{t_jit * 1e3:>10.2f}"
        if with_baseline:
            t_base_compile, _ = _time(lambda: baseline(values))
            t_base, _ = _time(lambda: baseline(values), repeat=5)
            jit_cols += f"{t_base_compile:>12.2f}{t_base * 1e3:>10.2f}"
    else:
        jit_cols = f"{'skipped':>12}{'':>10}"
    n_edges = sum(len(n.inputs) for n in g.nodes)
    print(
        f"{label:<7}{len(g.nodes):>7}{n_edges:>8}{len(seed):>7}{t_sort * 1e3:>10.1f}"
        f"{t_fwd * 1e3:>11.1f}{t_bwd * 1e3:>11.1f}{jit_cols}",
        flush=True,
    )
    return grads


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1,000 nodes instead of 10,000")
    ap.add_argument("--nodes", type=int, default=None)
    ap.add_argument(
        "--jit-max", type=int, default=2_000,
        help="jit only graphs up to this many nodes: XLA's compile time of one long fused chain grows "
        "faster than linearly (about 60 s for a 1,000-tanh chain on a loaded 2-core machine)",
    )
    ap.add_argument(
        "--baseline", action="store_true",
        help="also time jax.jit(jax.vjp) of the same computation in plain jnp (slow to compile: the "
        "1,000-node tanh chain had not compiled after 14 minutes)",
    )
    args = ap.parse_args()
    n = args.nodes or (1_000 if args.quick else 10_000)
    print(
        f"fnnet.graph scale: jax {jax.__version__}, {jax.devices()[0].platform}, python "
        f"{platform.python_version()}, recursion limit {sys.getrecursionlimit()}, arrays ({WIDTH},) float32"
    )
    print(
        f"{'graph':<7}{'nodes':>7}{'edges':>8}{'seeds':>7}{'sort ms':>10}{'fwd ms':>11}{'bwd ms':>11}"
        f"{'jit 1st s':>12}{'jit ms':>10}" + (f"{'vjp 1st s':>12}{'vjp ms':>10}" if args.baseline else "")
    )
    print(
        "  fwd, bwd: eager, op by op, after a warm-up run; jit 1st: trace + compile + run of the graph's\n"
        "  forward+backward; jit: that compiled; vjp: the same computation in plain jnp (the ops'\n"
        "  references) through jax.jit(jax.vjp), first call and compiled"
    )
    for label, build in (("chain", chain), ("wide", wide)):
        specs, values = build(n)
        measure(label, specs, values, args.jit_max, args.baseline)


if __name__ == "__main__":
    main()
