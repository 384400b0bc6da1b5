"""Benchmark 3, compile time against depth: the SGD step of a deep homogeneous MLP (``w-w-...-w``)
whose layers are stacked into one ``(depth, w, w)`` array and run with ``lax.scan``: depth 64 against
depth 4. The same network unrolled in Python is shown for contrast (its compile time grows with depth).

    python -m benchmarks compile [--depths 4,64] [--unrolled-depths 4,16] [--deep-width 128] [--full]
"""
from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
from jax import lax

import fnnet
from fnnet import layers, losses

from benchmarks._mlp import plain_cross_entropy, sgd_step
from benchmarks import _timing
from benchmarks._timing import median


def init_stacked(key, depth, width, dtype=jnp.float32):
    """A homogeneous ``width → width`` MLP of ``depth`` layers, stacked: W ``(depth, w, w)``, b ``(depth, w)``."""
    W = jax.random.normal(key, (depth, width, width), dtype) * math.sqrt(2.0 / width)
    return {"W": W, "b": jnp.zeros((depth, width), dtype)}


def deep_loss(dense, relu, cross_entropy, unrolled=False):
    """Mean ``cross_entropy(logits, labels)`` of a deep stacked MLP ``relu(dense(p, h))``, the layers
    run by ``lax.scan`` (or unrolled in Python)."""

    def loss(stacked, x, labels):
        def layer(h, p):
            return relu(dense(p, h)), None

        if unrolled:
            h = x
            for i in range(stacked["W"].shape[0]):
                h, _ = layer(h, {"W": stacked["W"][i], "b": stacked["b"][i]})
        else:
            h, _ = lax.scan(layer, x, stacked)
        return jnp.mean(cross_entropy(h, labels))

    return loss


def deep_losses(unrolled=False):
    """The deep loss by competitor: fnnet's primitives (dense, relu, the integer-label cross-entropy)
    and the same in plain jnp."""
    return {
        "fnnet": deep_loss(layers.dense, fnnet.relu, losses.softmax_cross_entropy_with_integer_labels,
                           unrolled),
        "jax": deep_loss(lambda p, h: h @ p["W"].T + p["b"], lambda z: jnp.maximum(z, 0),
                         plain_cross_entropy, unrolled),
    }


def compile_seconds(loss, args) -> tuple[float, float]:
    """(trace + lower, XLA compile) seconds of a fresh ``jit`` of the SGD step of ``loss``."""
    step = sgd_step(jax.value_and_grad(loss))
    # A new function object each time: jit's caches are keyed on it, so nothing is reused.
    fresh = jax.jit(lambda *a: step(*a))
    with _timing.no_persistent_cache():
        t0 = time.perf_counter()
        lowered = fresh.lower(*args)
        t1 = time.perf_counter()
        lowered.compile()
        t2 = time.perf_counter()
    return t1 - t0, t2 - t1


def bench_compile(
    depths=(4, 64), width=128, batch=32, repeats=3, unrolled=True, unrolled_depths=None, out=print,
    progress=None,
) -> list[dict]:
    """Compile time (trace + lower + compile, median of ``repeats``) by depth and layout.

    ``unrolled_depths`` (default ``depths``) are the depths of the unrolled contrast: the quick mode
    keeps them small, since an unrolled depth-64 step takes tens of seconds to compile on two cores.
    """
    rows = []
    kinds = [("scan", False, depths)]
    if unrolled:
        kinds.append(("unrolled", True, tuple(unrolled_depths or depths)))
    progress = progress or (lambda msg: None)
    for kind, unroll, depths in kinds:
        losses_ = deep_losses(unroll)
        for name, loss in losses_.items():
            per_depth = {d: [] for d in depths}
            for rep in range(repeats):
                for d in depths:
                    progress(f"{kind} {name}: compiling depth {d}, repeat {rep + 1}/{repeats}")
                    stacked = init_stacked(jax.random.key(0), d, width)
                    x = jax.random.normal(jax.random.key(1), (batch, width), jnp.float32)
                    labels = jax.random.randint(jax.random.key(2), (batch,), 0, width)
                    lo, co = compile_seconds(loss, (stacked, x, labels))
                    per_depth[d].append(lo + co)
            row = {"layout": kind, "model": name, "seconds": {d: median(v) for d, v in per_depth.items()}}
            row["ratio"] = row["seconds"][depths[-1]] / row["seconds"][depths[0]]
            rows.append(row)
            secs = "  ".join(f"depth {d}: {s:.3f} s" for d, s in row["seconds"].items())
            out(f"  {kind:8s} {name:5s}  {secs}  depth {depths[-1]}/depth {depths[0]} = {row['ratio']:.2f}")
    return rows
