"""Benchmarks: is a hand-written backward pass as fast and as lean as XLA's own autodiff?

``python -m fnnet bench`` runs the quick version of every benchmark below (a few minutes on two CPU
cores; on a terminal a progress line says what runs) and prints each figure with the command that
reproduces it alone, then a one-line summary. ``--full`` takes more
rounds. The scripts in ``experiments/benchmarks/`` run one benchmark each.

Every comparison is measured **side by side in one process**: the competitors are compiled first, then
timed in rounds, each round running every competitor once (in an order that rotates from round to
round, so none always runs first after the others warmed the caches); a ratio is the median over rounds
of the ratio within a round, which cancels slow drifts of a shared machine.

1. ``step``: one SGD training step (loss, gradient, update) of an MLP ``784-w-w-w-10`` with ReLU and
   softmax cross-entropy, batch 256, float32, for w in 128, 512, 2048:
   ``fnnet`` (fnnet's primitives, differentiated by ``jax.grad`` through their hand rules),
   ``hand`` (fnnet.train's explicit reverse loop over layers, when that module is present) and
   ``jax`` (``jax.value_and_grad`` of the same MLP written in plain jnp), and PyTorch's CPU step when
   torch is installed (not a dependency of fnnet).
2. ``roofline``: the FLOPs of the step (its matrix products: forward, ∂W and ∂x) over its time, against
   the same products alone (:func:`matmuls_only`: the step's shapes, nothing else), timed in the same
   rounds: the products' time as a fraction of the step's says how much of the step is overhead.
3. ``compile``: compile time of the step of a deep homogeneous MLP (``w-w-...-w``) whose layers are
   stacked into one ``(depth, w, w)`` array and run with ``lax.scan``: depth 64 against depth 4. The
   same network unrolled in Python is shown for contrast (its compile time grows with depth).
4. ``memory``: ``jax.jit(step).lower(...).compile().memory_analysis()`` temporary bytes of each step.
5. ``gradcheck``: entries checked per second by :func:`fnnet.check.gradcheck` in auto and full mode,
   N = 1e3 and 1e4, on a custom-VJP ``sum(tanh(x)^2)`` (float32): a fresh f per call (its programs
   compiled, as for a new rule) and the same f again (compiled programs reused from gradcheck's cache).
"""
from __future__ import annotations

import argparse
import functools
import math
import statistics
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax import lax

__all__ = [
    "plain_loss",
    "fnnet_loss",
    "mlp_sizes",
    "step_flops",
    "make_steps",
    "interleaved",
    "bench_step",
    "bench_compile",
    "bench_memory",
    "main",
]

BATCH = 256
WIDTHS = (128, 512, 2048)
LR = 0.01
CMD = "python -m fnnet bench"


# ---------------------------------------------------------------------------------------------
# The model: one MLP, three ways of differentiating it
# ---------------------------------------------------------------------------------------------


def mlp_sizes(width: int, n_in: int = 784, n_out: int = 10, hidden: int = 3) -> list[int]:
    """``[n_in, width × hidden, n_out]``: an MNIST-shaped MLP (784-w-w-w-10)."""
    return [n_in] + [width] * hidden + [n_out]


def plain_loss(params, x, labels):
    """The same MLP and loss in plain jnp, differentiated by XLA's autodiff (``jax.grad``)."""
    h = x
    for i, layer in enumerate(params):
        h = h @ layer["W"].T + layer["b"]
        if i < len(params) - 1:
            h = jnp.maximum(h, 0)
    lse = jax.nn.logsumexp(h, axis=-1)
    picked = jnp.take_along_axis(h, labels[:, None], axis=-1)[:, 0]
    return jnp.mean(lse - picked)


def fnnet_loss(params, x, labels):
    """fnnet's MLP (dense, relu) and softmax cross-entropy: every op a primitive with a hand rule."""
    from fnnet.parallel import mlp_loss

    return mlp_loss(params, x, labels)


def hand_loss_and_grad() -> Callable | None:
    """fnnet.train's explicit hand backprop ``(params, x, labels) -> (loss, grads)``, if present."""
    try:
        from fnnet import train
    except ImportError:
        return None
    fn = getattr(train, "loss_and_grad", None)
    if fn is None:
        return None
    return lambda p, x, y: fn(p, x, y)


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


def _products_args(sizes, batch, seed=3):
    ks = jax.random.split(jax.random.key(seed), 3 * (len(sizes) - 1))
    pairs = list(zip(sizes[:-1], sizes[1:]))
    xs = [jax.random.normal(ks[3 * i], (batch, a), jnp.float32) for i, (a, b) in enumerate(pairs)]
    Ws = [jax.random.normal(ks[3 * i + 1], (b, a), jnp.float32) for i, (a, b) in enumerate(pairs)]
    ds = [jax.random.normal(ks[3 * i + 2], (batch, b), jnp.float32) for i, (a, b) in enumerate(pairs)]
    return xs, Ws, ds


def _sgd_step(loss_and_grad):
    def step(params, x, labels):
        loss, grads = loss_and_grad(params, x, labels)
        new = jax.tree_util.tree_map(lambda p, g: p - jnp.asarray(LR, p.dtype) * g, params, grads)
        return new, loss

    return step


def make_steps(include_hand: bool = True) -> dict[str, Callable]:
    """Uncompiled training steps ``step(params, x, labels) -> (new_params, loss)`` by name."""
    steps = {
        "fnnet": _sgd_step(jax.value_and_grad(fnnet_loss)),
        "jax": _sgd_step(jax.value_and_grad(plain_loss)),
    }
    hand = hand_loss_and_grad() if include_hand else None
    if hand is not None:
        steps["hand"] = _sgd_step(hand)
    return steps


def _problem(width, batch, seed=0, sizes=None):
    from fnnet import layers

    sizes = sizes or mlp_sizes(width)
    kp, kx, ky = jax.random.split(jax.random.key(seed), 3)
    params = layers.init_mlp(kp, sizes, init="he", dtype=jnp.float32)
    x = jax.random.normal(kx, (batch, sizes[0]), jnp.float32)
    labels = jax.random.randint(ky, (batch,), 0, sizes[-1])
    return params, x, labels


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------


def interleaved(
    fns: dict[str, Callable[[], Any]], rounds: int, min_seconds: float = 0.02,
    progress: Callable[[str], Any] | None = None,
) -> dict[str, list[float]]:
    """Seconds per call of each thunk, one list entry per round, rounds interleaved.

    Each thunk is called once to warm up, then timed ``inner`` times per round, ``inner`` chosen so that
    the slowest competitor takes about ``min_seconds`` per round (every call blocks until its result is
    ready: no overlap between calls). The order of the competitors rotates from round to round.
    """
    names = list(fns)
    warm = {}
    for n in names:
        jax.block_until_ready(fns[n]())
        t = time.perf_counter()
        jax.block_until_ready(fns[n]())
        warm[n] = time.perf_counter() - t
    inner = max(1, int(math.ceil(min_seconds / max(max(warm.values()), 1e-6))))
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        if progress is not None:
            progress(f"round {r + 1}/{rounds}")
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            f = fns[n]
            t = time.perf_counter()
            for _ in range(inner):
                jax.block_until_ready(f())
            times[n].append((time.perf_counter() - t) / inner)
    return times


def paired_ratio(times, a, b) -> float:
    """Median over rounds of ``time[a] / time[b]`` within the round."""
    return statistics.median(x / y for x, y in zip(times[a], times[b]))


def _med(ts):
    return statistics.median(ts)


def _fmt_ms(s):
    return f"{s * 1e3:9.3f}"


# ---------------------------------------------------------------------------------------------
# 1 + 2. Training step and roofline
# ---------------------------------------------------------------------------------------------


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
        params, x, labels = _problem(w, batch)
        fns = {k: functools.partial(f, params, x, labels) for k, f in steps.items()}
        fns["matmul"] = functools.partial(jax.jit(matmuls_only(sizes, batch)), *_products_args(sizes, batch))
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
        mm_rate = flops / _med(times["matmul"]) / 1e9
        row = {
            "width": w,
            "sizes": sizes,
            "flops": flops,
            "ms": {k: _med(v) * 1e3 for k, v in times.items()},
            "ratio": {k: paired_ratio(times, k, "jax") for k in times if k not in ("jax", "matmul", "torch")},
            "gflops": {k: flops / _med(v) / 1e9 for k, v in times.items() if k != "matmul"},
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


# ---------------------------------------------------------------------------------------------
# 3. Compile time against depth
# ---------------------------------------------------------------------------------------------


def init_stacked(key, depth, width, dtype=jnp.float32):
    """A homogeneous ``width → width`` MLP of ``depth`` layers, stacked: W ``(depth, w, w)``, b ``(depth, w)``."""
    W = jax.random.normal(key, (depth, width, width), dtype) * math.sqrt(2.0 / width)
    return {"W": W, "b": jnp.zeros((depth, width), dtype)}


def deep_loss(dense, relu, unrolled=False):
    """Softmax cross-entropy of a deep stacked MLP, the layers run by ``lax.scan`` (or unrolled)."""

    def loss(stacked, x, labels):
        def layer(h, p):
            return relu(dense(p, h)), None

        if unrolled:
            h = x
            for i in range(stacked["W"].shape[0]):
                h, _ = layer(h, {"W": stacked["W"][i], "b": stacked["b"][i]})
        else:
            h, _ = lax.scan(layer, x, stacked)
        lse = jax.nn.logsumexp(h, axis=-1)
        return jnp.mean(lse - jnp.take_along_axis(h, labels[:, None], axis=-1)[:, 0])

    return loss


def _deep_losses(unrolled=False):
    from fnnet import layers, losses
    import fnnet

    def fnnet_deep(stacked, x, labels):
        def layer(h, p):
            return fnnet.relu(layers.dense(p, h)), None

        if unrolled:
            h = x
            for i in range(stacked["W"].shape[0]):
                h, _ = layer(h, {"W": stacked["W"][i], "b": stacked["b"][i]})
        else:
            h, _ = lax.scan(layer, x, stacked)
        per_example = losses.softmax_cross_entropy_with_integer_labels(h, labels)
        return jnp.mean(per_example) if jnp.ndim(per_example) else per_example

    plain = deep_loss(lambda p, h: h @ p["W"].T + p["b"], lambda z: jnp.maximum(z, 0), unrolled)
    return {"fnnet": fnnet_deep, "jax": plain}


def compile_seconds(loss, args) -> tuple[float, float]:
    """(trace + lower, XLA compile) seconds of a fresh ``jit`` of the SGD step of ``loss``."""
    step = _sgd_step(jax.value_and_grad(loss))
    # A new function object each time: jit's caches are keyed on it, so nothing is reused.
    fresh = jax.jit(lambda *a: step(*a))
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
        losses_ = _deep_losses(unroll)
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
            row = {"layout": kind, "model": name, "seconds": {d: _med(v) for d, v in per_depth.items()}}
            row["ratio"] = row["seconds"][depths[-1]] / row["seconds"][depths[0]]
            rows.append(row)
            secs = "  ".join(f"depth {d}: {s:.3f} s" for d, s in row["seconds"].items())
            out(f"  {kind:8s} {name:5s}  {secs}  depth {depths[-1]}/depth {depths[0]} = {row['ratio']:.2f}")
    return rows


# ---------------------------------------------------------------------------------------------
# 4. Memory
# ---------------------------------------------------------------------------------------------


def temp_bytes(step, args) -> int | None:
    """XLA's temporary-buffer bytes of the compiled step (None where the backend does not say)."""
    ma = jax.jit(step).lower(*args).compile().memory_analysis()
    if ma is None:
        return None
    return int(ma.temp_size_in_bytes)


def bench_memory(widths=WIDTHS, batch=BATCH, out=print) -> list[dict]:
    """Temporary bytes of each competitor's compiled step, one row per width."""
    rows = []
    for w in widths:
        args = _problem(w, batch)
        row = {"width": w, "temp": {k: temp_bytes(s, args) for k, s in make_steps().items()}}
        j = row["temp"]["jax"]
        row["ratio"] = {k: (v / j if (v is not None and j) else None) for k, v in row["temp"].items() if k != "jax"}
        rows.append(row)
        mib = "  ".join(f"{k} {v / 2**20:8.2f} MiB" for k, v in row["temp"].items() if v is not None)
        rat = "  ".join(f"{k}/jax {v:.3f}" for k, v in row["ratio"].items() if v is not None)
        out(f"  w={w:5d}  {mib}  {rat}")
    return rows


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

# ---------------------------------------------------------------------------------------------
# 5. gradcheck throughput
# ---------------------------------------------------------------------------------------------
def _tanh_sq():
    @jax.custom_vjp
    def f(x):
        return jnp.sum(jnp.tanh(x) ** 2)

    def fwd(x):
        y = jnp.tanh(x)
        return jnp.sum(y**2), y

    f.defvjp(fwd, lambda y, g: (g * 2 * y * (1 - y**2),))
    return f


def bench_gradcheck(sizes=(1_000, 10_000), rounds: int = 3, out=print, progress=None) -> list[dict]:
    """Entries per second of gradcheck, auto and full mode; interleaved rounds, medians.

    One size at a time (its four competitors interleaved), its rows printed as soon as it is done.
    """
    from fnnet.check import gradcheck

    out(f"  {'mode':<5} {'N':>6} {'fresh f s':>10} {'entries/s':>10} {'same f s':>9} {'entries/s':>10}")
    rows = []
    for n in sizes:
        x = jax.random.normal(jax.random.PRNGKey(n), (n,), jnp.float32)
        fns = {}
        for mode in ("auto", "full"):
            same = _tanh_sq()
            fns[f"{mode} fresh"] = lambda x=x, mode=mode: gradcheck(_tanh_sq(), x, mode=mode).passed and None
            fns[f"{mode} same"] = lambda x=x, mode=mode, f=same: gradcheck(f, x, mode=mode).passed and None
        if progress is not None:
            progress(f"N={n}: auto and full mode, fresh and cached, {rounds} rounds")
        times = interleaved(fns, rounds, min_seconds=0.0, progress=progress)
        for mode in ("auto", "full"):
            fresh, cached = _med(times[f"{mode} fresh"]), _med(times[f"{mode} same"])
            rows.append({"mode": mode, "n": n, "fresh_s": fresh, "same_s": cached})
            out(f"  {mode:<5} {n:>6} {fresh:>10.3f} {n / fresh:>10.0f} {cached:>9.3f} {n / cached:>10.0f}")
    return rows


class _Progress:
    """What the benchmark is doing now, on one line of a terminal's stderr, redrawn in place and
    erased by the next printed row. Silent when stderr is not a terminal (logs get the rows alone)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.section = ""
        self.start = time.perf_counter()

    def __call__(self, msg: str) -> None:
        if msg.startswith("round "):
            msg = f"{self.section}, {msg}"
        else:
            self.section = msg
        if self.live:
            line = f"  … {msg} ({time.perf_counter() - self.start:.0f} s)"
            self.stream.write("\r" + line[:110].ljust(110))
            self.stream.flush()

    def clear(self) -> None:
        if self.live:
            self.stream.write("\r" + " " * 110 + "\r")
            self.stream.flush()

    def out(self, line: str) -> None:
        """print() for the rows: the progress line first erased."""
        self.clear()
        print(line, flush=True)


def summary(results: dict, seconds: float) -> str:
    """One line: what the run found, section by section."""
    parts = []
    step = results.get("step")
    if step:
        ratios = [r["ratio"]["fnnet"] for r in step]
        parts.append(f"fnnet step {min(ratios):.2f}-{max(ratios):.2f}x jax.grad's time "
                     f"(w={step[0]['width']}..{step[-1]['width']})")
    comp = results.get("compile")
    if comp:
        scan = [r for r in comp if r["layout"] == "scan" and r["model"] == "fnnet"]
        if scan:
            d = list(scan[0]["seconds"])
            parts.append(f"compile depth {d[-1]}/depth {d[0]} {scan[0]['ratio']:.2f}x with lax.scan")
    mem = results.get("memory")
    if mem:
        ratios = [r["ratio"]["fnnet"] for r in mem if r["ratio"].get("fnnet") is not None]
        if ratios:
            parts.append(f"memory fnnet/jax {min(ratios):.2f}-{max(ratios):.2f}")
    gc = results.get("gradcheck")
    if gc:
        full = max((r for r in gc if r["mode"] == "full"), key=lambda r: r["n"], default=None)
        if full:
            parts.append(f"gradcheck full N={full['n']} {full['n'] / full['same_s']:.0f} entries/s")
    return f"bench done in {seconds:.0f} s: " + ("; ".join(parts) if parts else "nothing run")


BENCHES = ("step", "compile", "memory", "gradcheck")


def _ints(s: str) -> tuple[int, ...]:
    """``"128,512"`` -> (128, 512), for ``--widths`` and ``--depths``."""
    try:
        values = tuple(int(v) for v in s.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers such as 128,512; got {s!r}")
    return values


def main(argv=None) -> int:
    """``python -m fnnet bench [--full] [--only step,compile,memory] [--widths 128,512,2048] ...``"""
    p = argparse.ArgumentParser(prog=CMD, description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="the default: 7 rounds, 3 compile repeats")
    p.add_argument("--full", action="store_true", help="more rounds and repeats (slower, tighter medians)")
    p.add_argument("--json", default=None, help="also write every figure to this JSON file")
    p.add_argument("--only", default=",".join(BENCHES), help=f"comma list of {', '.join(BENCHES)}")
    p.add_argument("--widths", type=_ints, default=WIDTHS, help="hidden widths of the step MLP")
    p.add_argument("--batch", type=int, default=BATCH)
    p.add_argument("--rounds", type=int, default=None, help="timing rounds (quick 7, full 21)")
    p.add_argument("--depths", type=_ints, default=(4, 64), help="depths of the compile-time benchmark")
    p.add_argument("--deep-width", type=int, default=128, help="width of the compile-time MLP")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out even when installed")
    p.add_argument("--no-unrolled", action="store_true", help="skip the unrolled contrast in compile")
    p.add_argument("--unrolled-depths", type=_ints, default=None,
                   help="depths of the unrolled contrast (quick: 4,16; full: as --depths)")
    args = p.parse_args(argv)
    only = [b for b in args.only.split(",") if b]
    bad = [b for b in only if b not in BENCHES]
    if bad:
        p.error(f"unknown benchmark(s) {bad}; choose from {', '.join(BENCHES)}")
    rounds = args.rounds or (21 if args.full else 7)
    repeats = 5 if args.full else 3
    widths = ",".join(map(str, args.widths))

    print(f"fnnet bench: jax {jax.__version__}, {jax.devices()[0].platform} × {jax.device_count()}, "
          f"float32, batch {args.batch}, {'full' if args.full else 'quick'} ({rounds} rounds); "
          f"each section prints the command that runs it alone", flush=True)
    if hand_loss_and_grad() is None:
        print("  (fnnet.train.loss_and_grad not available: the explicit hand backprop is left out)")
    progress = _Progress()
    start = time.perf_counter()
    results: dict[str, Any] = {}
    if "step" in only:
        print(f"\n[1, 2] training step 784-w-w-w-10, relu, softmax cross-entropy, one row per width w\n"
              f"{STEP_LEGEND}\n  $ {CMD} --only step --widths {widths} --batch {args.batch} --rounds {rounds}",
              flush=True)
        results["step"] = bench_step(args.widths, args.batch, rounds, torch=not args.no_torch,
                                     out=progress.out, progress=progress)
        try:
            import torch  # noqa: F401
        except ImportError:
            progress.out("  (torch not installed: PyTorch's step left out; it is not a dependency of fnnet)")
    if "compile" in only:
        depths = ",".join(map(str, args.depths))
        unrolled_depths = args.unrolled_depths or (args.depths if args.full else (4, 16))
        ud = ",".join(map(str, unrolled_depths))
        print(f"\n[3] compile time (trace + lower + XLA compile) of a deep {args.deep_width}-wide MLP step, "
              f"median of {repeats}: with lax.scan it should not grow with depth; unrolled, it does\n"
              f"  $ {CMD} --only compile --depths {depths} --unrolled-depths {ud} "
              f"--deep-width {args.deep_width}{' --full' if args.full else ''}", flush=True)
        results["compile"] = bench_compile(
            args.depths, args.deep_width, repeats=repeats, unrolled=not args.no_unrolled,
            unrolled_depths=unrolled_depths, out=progress.out, progress=progress,
        )
    if "memory" in only:
        print(f"\n[4] temporary bytes of the compiled step (memory_analysis); X/jax below 1 = leaner than jax.grad\n"
              f"  $ {CMD} --only memory --widths {widths} --batch {args.batch}", flush=True)
        progress("memory: compiling the steps")
        results["memory"] = bench_memory(args.widths, args.batch, out=progress.out)
    if "gradcheck" in only:
        print(f"\n[5] gradcheck throughput, custom-VJP sum(tanh(x)^2) float32; fresh f = programs compiled, "
              f"same f = cached; medians of {repeats} interleaved rounds\n  $ {CMD} --only gradcheck"
              f"{' --full' if args.full else ''}", flush=True)
        results["gradcheck"] = bench_gradcheck(rounds=repeats, out=progress.out, progress=progress)
    progress.clear()
    print("\n" + summary(results, time.perf_counter() - start))
    if args.json:
        import json

        with open(args.json, "w") as f:
            json.dump({"jax": jax.__version__, "platform": jax.devices()[0].platform,
                       "rounds": rounds, "batch": args.batch, **results}, f, indent=1)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
