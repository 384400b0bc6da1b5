"""What each part of fnnet's accurate formulas costs: fwd+bwd time with one part replaced by its plain
version (accuracy lost), beside jax.nn, side by side in one process (interleaved runs, medians).

    python -m experiments.activation_ablation [--n 1048576] [--repeats 30]
    python -m experiments.activation_ablation --compile [--repeats 9]

Parts: the error-free (double-word) argument of gelu's exponential (plain: v = fl(2u), or
fl(x²), with no low word), the expansion about the derivative's root (plain: the general formula
everywhere), the left-tail scaling e^{−a} = e^{64−a}·e^{−64} (plain: e^{−a}). float32.

``--compile`` times XLA's compile instead: of ``jit(value_and_grad(sum(f(x)·w)))`` at 1024 × 1024 (the
drop-in benchmark's program), lowered outside the timer, caches cleared before each compile, the
first of the interleaved rounds not recorded. Beside the parts above it builds four more variants:
silu's and mish's derivative replaced by jax.nn's plain formula (fnnet's forward kept), and
logsumexp over every axis as fnnet's plain reference differentiated by JAX (no tie rule) and as
fnnet's own with the tie rule's shift written arithmetically (``fnnet._numerics.shifted``: the same
bits, no per-entry select; XLA:CPU's form over short slices); and it prints each program's kernel
count and how many of its kernels XLA:GPU emits with Triton.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

import fnnet
from fnnet.activations import _smooth as S
import fnnet._numerics as N
from fnnet.primitive import elementwise


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
def _patched(names, module=S):
    saved = {k: getattr(module, k) for k in names}
    jax.clear_caches()  # the public functions are jitted: their cached traces would ignore the patch
    try:
        for k, v in names.items():
            if not hasattr(module, k):
                raise AttributeError(f"{module.__name__} has no {k!r} to replace")
            setattr(module, k, v)
        yield
    finally:
        for k, v in saved.items():
            setattr(module, k, v)
        jax.clear_caches()


def _step(f):
    return jax.jit(jax.grad(lambda v: f(v).sum()))


def _plain_silu_prime(x, y):
    s = jax.nn.sigmoid(x)
    return s * (1 + x * (1 - s))


def _plain_mish_prime(x, y):
    t = jnp.tanh(jax.nn.softplus(x))
    return t + x * (1 - t * t) * jax.nn.sigmoid(x)


def _plain_derivative(name, forward, derivative):
    """fnnet's forward ``forward`` with ``derivative`` as its hand rule: an unregistered primitive."""
    return elementwise(f"{name}_plain_derivative", forward, derivative, reference=forward,
                       register=False).fn


def _kernels(compiled_text):
    """(kernels, of which emitted by Triton) in a compiled program's entry computation."""
    entry = compiled_text[compiled_text.index("ENTRY"):]
    calls = [line for line in entry.splitlines() if " fusion(" in line or "custom-call(" in line]
    return len(calls), sum('"__triton' in line for line in calls)


def compile_times(lowerings, repeats):
    """{key: [seconds]}: XLA's compile of each ``lowerings[key]()`` (a fresh Lowered: a compiled one
    keeps its executable), caches cleared before each, in ``repeats`` interleaved rounds (the order
    reversed every other round) after one round not recorded."""
    times = {k: [] for k in lowerings}
    keys = list(lowerings)
    for r in range(repeats + 1):
        for k in keys if r % 2 == 0 else keys[::-1]:
            jax.clear_caches()
            low = lowerings[k]()
            t0 = time.perf_counter()
            low.compile()
            if r:
                times[k].append(time.perf_counter() - t0)
    return times


def weight_like(w, shape):
    """The cotangent ``w`` of ``f(x)``'s shape: the first entries of ``w``, a scalar for a scalar
    output (so that the program is ``f(x)·w``, the drop-in benchmark's, not ``Σ f(x)·W`` over a
    broadcast ``W``)."""
    return w.reshape(-1)[:math.prod(shape)].reshape(shape)


def compile_ablation(repeats: int) -> None:
    x = jax.random.normal(jax.random.key(0), (1024, 1024), jnp.float32) * 3
    w = jax.random.normal(jax.random.key(1), (1024, 1024), jnp.float32)

    def lower(f):
        wf = weight_like(w, jax.eval_shape(f, x).shape)
        return jax.jit(jax.value_and_grad(lambda a, b: jnp.sum(f(a) * b))).lower(x, wf)

    extra = {
        "silu": {"fnnet, plain derivative": _plain_derivative("silu", S._silu, _plain_silu_prime)},
        "mish": {"fnnet, plain derivative": _plain_derivative("mish", S._mish, _plain_mish_prime)},
    }
    cases = dict(CASES)
    cases["logsumexp"] = (lambda v: fnnet.logsumexp(v), lambda v: jax.nn.logsumexp(v))
    # A Lowered object keeps its executable once compiled: each round lowers afresh (outside the timer).
    lowerings = {}
    for name, (ours, theirs) in cases.items():
        lowerings[(name, "jax.nn")] = functools.partial(lower, theirs)
        lowerings[(name, "fnnet")] = functools.partial(lower, ours)
        unpatched = lower(ours).as_text()
        for part, names in PLAIN.items():
            def patched(ours=ours, names=names):
                with _patched(names):  # the patch acts while the function is traced
                    return lower(ours)
            if patched().as_text() != unpatched:
                lowerings[(name, f"fnnet, plain {part}")] = patched
        for variant, f in extra.get(name, {}).items():
            lowerings[(name, variant)] = functools.partial(lower, f)
    lowerings[("logsumexp", "fnnet reference, autodiff")] = functools.partial(
        lower, lambda v: fnnet.logsumexp.reference(v))

    def arithmetic_shift():  # the tie rule's shift without a per-entry select, on any backend
        with _patched({"SHIFT_FORM": "arith"}, module=N):
            return lower(lambda v: fnnet.logsumexp(v))
    lowerings[("logsumexp", "fnnet, arithmetic shift")] = arithmetic_shift
    kernels = {k: _kernels(lo().compile().as_text()) for k, lo in lowerings.items()}
    times = compile_times(lowerings, repeats)
    print(f"XLA compile of jit(value_and_grad(sum(f(x)·w))), 1024 x 1024 float32, median of {repeats} "
          f"interleaved rounds ({jax.devices()[0].device_kind}, jax {jax.__version__})")
    print(f"{'activation':<12} {'variant':<34} {'ms':>8} {'vs jax.nn':>9} {'kernels':>8} {'Triton':>7}")
    for name in cases:
        base = float(np.median(times[(name, "jax.nn")]))
        for (n, variant), v in times.items():
            if n == name:
                ms = float(np.median(v))
                k, t = kernels[(n, variant)]
                print(f"{name:<12} {variant:<34} {ms * 1e3:8.1f} {ms / base:9.2f} {k:8d} {t:7d}", flush=True)


CASES = {
    "gelu (tanh)": (functools.partial(fnnet.gelu, approximate=True), functools.partial(jax.nn.gelu, approximate=True)),
    "gelu (erf)": (functools.partial(fnnet.gelu, approximate=False), functools.partial(jax.nn.gelu, approximate=False)),
    "silu": (fnnet.silu, jax.nn.silu),
    "mish": (fnnet.mish, lambda x: x * jnp.tanh(jax.nn.softplus(x))),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1 << 20)
    ap.add_argument("--repeats", type=int, default=None, help="timed runs (default 30; 9 with --compile)")
    ap.add_argument("--compile", action="store_true", help="time XLA's compile of each variant instead")
    args = ap.parse_args()
    if args.compile:
        compile_ablation(args.repeats or 9)
        return
    args.repeats = args.repeats or 30
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
