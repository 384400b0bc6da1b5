"""What each part of fnnet's accurate formulas costs: fwd+bwd time with one part replaced by its plain
version (accuracy lost), beside jax.nn, side by side in one process (interleaved runs, medians).

    python -m experiments.activation_ablation [--n 1048576] [--repeats 30]

Parts: the error-free (double-word) argument of gelu's exponential (plain: v = fl(2u), or
fl(x²), with no low word), the expansion about the derivative's root (plain: the general formula
everywhere), the left-tail scaling e^{−a} = e^{64−a}·e^{−64} (plain: e^{−a}). float32.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

import fnnet
from fnnet.activations import _smooth as S


def _plain_2u(x):
    k1, k3h, _ = S._gelu_tanh_constants(x.dtype)
    sq = x * x
    return x * (k1 + k3h * sq), jnp.zeros_like(x), sq


def _plain_two_prod(a, b):
    return a * b, jnp.zeros_like(a)


def _no_root(x, table):
    return jnp.zeros_like(x), jnp.zeros(x.shape, bool)


def _no_scaling(a):
    e = jnp.exp(-a)
    return e, e, jnp.ones_like(a)


PLAIN = {
    "error-free argument": {"_gelu_2u": _plain_2u, "_two_prod": _plain_two_prod},
    "root expansion": {"_root_expansion": _no_root},
    "tail scaling": {"exp_neg_scaled": _no_scaling},
}


@contextlib.contextmanager
def _patched(names):
    saved = {k: getattr(S, k) for k in names}
    jax.clear_caches()  # the public functions are jitted: their cached traces would ignore the patch
    try:
        for k, v in names.items():
            if not hasattr(S, k):
                raise AttributeError(f"fnnet.activations._smooth has no {k!r} to replace")
            setattr(S, k, v)
        yield
    finally:
        for k, v in saved.items():
            setattr(S, k, v)
        jax.clear_caches()


def _step(f):
    return jax.jit(jax.grad(lambda v: f(v).sum()))


CASES = {
    "gelu (tanh)": (functools.partial(fnnet.gelu, approximate=True), functools.partial(jax.nn.gelu, approximate=True)),
    "gelu (erf)": (functools.partial(fnnet.gelu, approximate=False), functools.partial(jax.nn.gelu, approximate=False)),
    "silu": (fnnet.silu, jax.nn.silu),
    "mish": (fnnet.mish, lambda x: x * jnp.tanh(jax.nn.softplus(x))),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1 << 20)
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    x = jax.random.normal(jax.random.key(0), (args.n,), jnp.float32) * 3
    print(f"fwd+bwd of {args.n} float32 entries, median of {args.repeats} interleaved runs "
          f"({jax.devices()[0].platform}); time relative to jax.nn")
    print(f"{'activation':<12} {'variant':<34} {'ms':>8} {'vs jax.nn':>9}")
    for name, (ours, theirs) in CASES.items():
        steps = {"jax.nn": _step(theirs), "fnnet": _step(ours)}
        unpatched = _step(ours).lower(x).as_text()
        for part, names in PLAIN.items():
            fn = jax.jit(jax.grad(lambda v, f=ours: f(v).sum()))
            with _patched(names):  # the patch acts while the function is traced, i.e. at this call
                lowered = fn.lower(x)
            if lowered.as_text() == unpatched:
                print(f"{name:<12} {'fnnet, plain ' + part:<34} {'(not used)':>8}")
                continue
            steps[f"fnnet, plain {part}"] = lowered.compile()
        for s in steps.values():
            s(x).block_until_ready()
        times = {k: [] for k in steps}
        for _ in range(args.repeats):
            for k, s in steps.items():
                t0 = time.perf_counter()
                s(x).block_until_ready()
                times[k].append(time.perf_counter() - t0)
        med = {k: float(np.median(v)) * 1e3 for k, v in times.items()}
        for k, v in med.items():
            print(f"{name:<12} {k:<34} {v:8.3f} {v / med['jax.nn']:9.2f}", flush=True)


if __name__ == "__main__":
    main()
