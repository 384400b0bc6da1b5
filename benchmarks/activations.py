"""Forward + backward time of fnnet's activations against jax.nn's, side by side in one process.

    python -m benchmarks activations [--n 1048576 [16777216 ...]] [--repeats 30] [--only gelu,silu]
    python -m benchmarks activations --quick     # n = 65536, 5 rounds

For each activation and size: jit(grad(sum(f)))(x), x of n float32 entries ~ N(0, 9); the two programs
run interleaved, medians reported, ratio = fnnet / jax.nn.
"""
from __future__ import annotations

import argparse
import functools
import sys

import jax
import jax.numpy as jnp
import numpy as np

import fnnet

from benchmarks._timing import interleaved, median

# name -> (fnnet function, jax counterpart)
CASES = {
    "sigmoid": (fnnet.sigmoid, jax.nn.sigmoid),
    "tanh": (fnnet.tanh, jnp.tanh),
    "softplus": (fnnet.softplus, jax.nn.softplus),
    "log_sigmoid": (fnnet.log_sigmoid, jax.nn.log_sigmoid),
    "silu": (fnnet.silu, jax.nn.silu),
    "mish": (fnnet.mish, jax.nn.mish),
    "gelu": (fnnet.gelu, jax.nn.gelu),
    "gelu_erf": (functools.partial(fnnet.gelu, approximate=False),
                 functools.partial(jax.nn.gelu, approximate=False)),
    "elu": (fnnet.elu, jax.nn.elu),
    "selu": (fnnet.selu, jax.nn.selu),
    "celu": (fnnet.celu, jax.nn.celu),
    "relu": (fnnet.relu, jax.nn.relu),
    "leaky_relu": (fnnet.leaky_relu, jax.nn.leaky_relu),
    "hard_silu": (fnnet.hard_silu, jax.nn.hard_silu),
    "soft_sign": (fnnet.soft_sign, jax.nn.soft_sign),
    "squareplus": (fnnet.squareplus, jax.nn.squareplus),
    "glu": (fnnet.glu, jax.nn.glu),
}
NAMES = list(CASES)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks activations", description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=None, help="entries per array (default 1048576)")
    ap.add_argument("--repeats", type=int, default=None, help="interleaved rounds (default 30)")
    ap.add_argument("--only", default="", help="comma-separated activation names")
    ap.add_argument("--quick", action="store_true", help="n = 65536 and 5 rounds unless given")
    args = ap.parse_args(argv)
    sizes = args.n or [1 << 16 if args.quick else 1 << 20]
    repeats = args.repeats or (5 if args.quick else 30)
    names = args.only.split(",") if args.only else NAMES
    unknown = [n for n in names if n not in CASES]
    if unknown:
        ap.error(f"unknown activation(s) {unknown}; known: {', '.join(NAMES)}")
    dev = jax.devices()[0]
    print(f"fwd+bwd (jit(grad(sum f))) of float32 arrays, median of {repeats} interleaved runs, "
          f"{dev.platform} ({dev.device_kind}), jax {jax.__version__}")
    print(f"{'activation':<12} {'n':>9} {'fnnet ms':>9} {'jax.nn ms':>9} {'ratio':>6}")
    for n in sizes:
        x = jax.random.normal(jax.random.key(0), (n,), jnp.float32) * 3
        ratios = []
        for name in names:
            fa, fb = (jax.jit(jax.grad(lambda v, f=f: f(v).sum())) for f in CASES[name])
            times = interleaved({"fnnet": lambda: fa(x), "jax": lambda: fb(x)}, repeats, min_seconds=0.0)
            a, b = (median(times[k]) * 1e3 for k in ("fnnet", "jax"))
            ratios.append(a / b)
            print(f"{name:<12} {n:>9} {a:9.3f} {b:9.3f} {a / b:6.2f}", flush=True)
        print(f"{'geomean':<12} {n:>9} {'':>9} {'':>9} {float(np.exp(np.mean(np.log(ratios)))):6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
