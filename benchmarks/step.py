"""Benchmarks 1 and 2, step time and roofline: one SGD training step (loss, gradient, update) of an
MLP ``784-w-w-w-10`` with ReLU and softmax cross-entropy, batch 256, float32, for w in 128, 512, 2048.

Competitors, timed in the same rounds: ``fnnet`` (``jax.grad`` of :func:`fnnet.train.loss_fn`, through
fnnet's hand rules), ``hand`` (:func:`fnnet.train.loss_and_grad`, the explicit reverse loop) and
``jax`` (``jax.grad`` of the same MLP in plain jnp); PyTorch's CPU step when torch is installed (not a
dependency of fnnet). The roofline: the step's matrix-product FLOPs over its time, against the same
products alone (:func:`matmuls_only`), timed in the same rounds.

    python -m benchmarks step [--widths 128,512,2048] [--batch 256] [--rounds 7] [--full]
"""
from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp

from benchmarks._mlp import BATCH, LR, WIDTHS, make_steps, mlp_sizes, problem
from benchmarks._timing import interleaved, median, paired_ratio


def step_flops(sizes, batch: int) -> int:
    """Matrix-product FLOPs of one training step (2 per multiply-add; elementwise work not counted).

    Forward ``x Wᵀ``: 2·B·n_in·n_out per layer; backward ∂W = δᵀx the same for every layer and
    ∂x = δW the same for every layer but the first (the gradient of the data is not needed).
    """
    per = [2 * batch * a * b for a, b in zip(sizes[:-1], sizes[1:])]
    return 2 * sum(per) + sum(per[1:])


def matmuls_only(sizes, batch: int) -> Callable:
    """The step's matrix products alone, with the step's shapes, as one function of ``(xs, Ws, ds)``.

    Forward ``x Wᵀ`` for every layer, ∂W = δᵀx for every layer, ∂x = δW for every layer but the first:
    exactly the FLOPs that :func:`step_flops` counts, with none of the elementwise work. Its time is a
    lower bound on the step's on the same machine: ``t(products) / t(step)`` is how close the step
    comes to doing nothing but its matrix products (100 % = no overhead at all).
    """

    def products(xs, Ws, ds):
        out = []
        for i, (x, W, d) in enumerate(zip(xs, Ws, ds)):
            out.append(x @ W.T)  # forward
            out.append(d.T @ x)  # ∂W
            if i > 0:
                out.append(d @ W)  # ∂x
        return out

    return products


def products_args(sizes, batch, seed=3):
    ks = jax.random.split(jax.random.key(seed), 3 * (len(sizes) - 1))
    pairs = list(zip(sizes[:-1], sizes[1:]))
    xs = [jax.random.normal(ks[3 * i], (batch, a), jnp.float32) for i, (a, b) in enumerate(pairs)]
    Ws = [jax.random.normal(ks[3 * i + 1], (b, a), jnp.float32) for i, (a, b) in enumerate(pairs)]
    ds = [jax.random.normal(ks[3 * i + 2], (batch, b), jnp.float32) for i, (a, b) in enumerate(pairs)]
    return xs, Ws, ds


def _torch_step(sizes, batch, seed=0):
    """PyTorch's CPU SGD step on the same MLP, or None when torch is not installed."""
    import os

    # PyTorch's OpenMP threads spin for a while after each parallel region; left spinning they steal
    # the cores from whatever runs next (XLA's step in the next slot of the round). Passive waiting
    # keeps the interleaved timings independent. Only effective before torch is first imported.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    x = torch.randn(batch, sizes[0])
    y = torch.randint(0, sizes[-1], (batch,))
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        model.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p.sub_(LR * p.grad)
        return loss.item()

    return step


def bench_step(
    widths=WIDTHS, batch=BATCH, rounds=7, torch=True, min_seconds=0.02, out=print, progress=None
) -> list[dict]:
    """Time each training step and its matrix products alone, side by side; one row per width.

    Row keys: ``width``, ``flops``, ``ms`` (median ms per step by competitor), ``ratio`` (paired median
    of competitor / jax), ``gflops`` (step FLOPs / median time), ``matmul_gflops`` (the same FLOPs
    done by :func:`matmuls_only`, the step's products with nothing else), ``of_matmul`` (fnnet's
    GFLOP/s over that: the products' time over fnnet's step time, at most about 1).
    """
    progress = progress or (lambda msg: None)
    steps = {k: jax.jit(v) for k, v in make_steps().items()}
    rows = []
    for w in widths:
        sizes = mlp_sizes(w)
        params, x, labels = problem(sizes, batch)
        fns = {k: functools.partial(f, params, x, labels) for k, f in steps.items()}
        fns["matmul"] = functools.partial(jax.jit(matmuls_only(sizes, batch)), *products_args(sizes, batch))
        progress(f"w={w}: compiling and timing {len(fns)} programs, {rounds} rounds")
        times = interleaved(fns, rounds, min_seconds, progress=progress)
        # PyTorch in a pass of its own against the same jax step: its thread pool is not XLA's, and
        # sharing rounds with it would perturb the fnnet/jax pairs that the targets are about.
        tstep = _torch_step(sizes, batch) if torch else None
        if tstep is not None:
            progress(f"w={w}: PyTorch against jax, {rounds} rounds")
            ttimes = interleaved({"jax": fns["jax"], "torch": tstep}, rounds, min_seconds, progress=progress)
            times["torch"] = ttimes["torch"]
            torch_ratio = paired_ratio(ttimes, "torch", "jax")
        flops = step_flops(sizes, batch)
        mm_rate = flops / median(times["matmul"]) / 1e9
        row = {
            "width": w,
            "sizes": sizes,
            "flops": flops,
            "ms": {k: median(v) * 1e3 for k, v in times.items()},
            "ratio": {k: paired_ratio(times, k, "jax") for k in times if k not in ("jax", "matmul", "torch")},
            "gflops": {k: flops / median(v) / 1e9 for k, v in times.items() if k != "matmul"},
            "matmul_gflops": mm_rate,
        }
        # The spread of the per-round ratios: how far one round can land from the median.
        row["ratio_range"] = {
            k: (min(x / y for x, y in zip(times[k], times["jax"])),
                max(x / y for x, y in zip(times[k], times["jax"])))
            for k in row["ratio"]
        }
        if tstep is not None:
            row["ratio"]["torch"] = torch_ratio
        row["of_matmul"] = row["gflops"]["fnnet"] / mm_rate
        rows.append(row)
        out(_step_line(row))
    return rows


STEP_LEGEND = """\
  fnnet   jax.grad through fnnet's primitives (dense, relu, softmax cross-entropy): their hand VJPs
  hand    fnnet.train.loss_and_grad: an explicit reverse loop over the layers, no jax.grad at all
  jax     jax.grad of the same MLP written in plain jax.numpy: XLA's own autodiff, the baseline
  torch   PyTorch's CPU step on the same MLP (only when torch is installed)
  X/jax   paired median over rounds of X's time over jax's: below 1 is faster than jax.grad
  GFLOP/s the step's matrix-product FLOPs over fnnet's time; 'products alone' = the same products
          with the same shapes and nothing else, as a % of fnnet's step time (100 % = no overhead)"""


def _step_line(row):
    parts = [f"w={row['width']:5d}"]
    parts += [f"{k} {row['ms'][k]:.3f} ms" for k in row["ms"] if k != "matmul"]
    parts += [f"{k}/jax {row['ratio'][k]:.3f}" for k in row["ratio"]]
    parts += [
        f"fnnet {row['gflops']['fnnet']:.1f} GFLOP/s, products alone {100 * row['of_matmul']:.0f}% of its time"
    ]
    return "  " + " | ".join(parts)
