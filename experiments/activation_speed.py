"""Forward + backward time of fnnet's activations against jax.nn's, side by side in one process.

    python experiments/activation_speed.py [--n 1048576] [--repeats 30]

For each activation: jit(grad(sum(f)))(x), x of n float32 entries ~ N(0, 9); interleaved runs, medians.
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import fnnet

NAMES = ["sigmoid", "tanh", "softplus", "log_sigmoid", "silu", "mish", "gelu", "elu", "selu", "celu",
         "relu", "leaky_relu", "soft_sign", "squareplus"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1 << 20)
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    x = jax.random.normal(jax.random.key(0), (args.n,), jnp.float32) * 3
    print(f"fwd+bwd of {args.n} float32 entries, median of {args.repeats} interleaved runs ({jax.devices()[0].platform})")
    print(f"{'activation':<12} {'fnnet ms':>9} {'jax.nn ms':>9} {'ratio':>6}")
    for name in NAMES:
        fns = [getattr(fnnet, name), getattr(jax.nn, name) if name != "tanh" else jnp.tanh]
        steps = [jax.jit(jax.grad(lambda v, f=f: f(v).sum())) for f in fns]
        for s in steps:
            s(x).block_until_ready()
        times = [[], []]
        for _ in range(args.repeats):
            for i, s in enumerate(steps):
                t0 = time.perf_counter()
                s(x).block_until_ready()
                times[i].append(time.perf_counter() - t0)
        a, b = (float(np.median(t)) * 1e3 for t in times)
        print(f"{name:<12} {a:9.3f} {b:9.3f} {a / b:6.2f}")


if __name__ == "__main__":
    main()
