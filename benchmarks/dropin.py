"""Is fnnet a drop-in for jax.nn at no cost? Every shared activation, timed and sized side by side.

    python -m benchmarks dropin                  # the full set (~8 min on a loaded 2-core CPU)
    python -m benchmarks dropin --quick          # a few ops, small sizes, few repeats (< 60 s)
    python -m benchmarks dropin --json out.json  # also write the raw numbers
    python -m benchmarks dropin --ops relu,gelu,softmax --repeats 50
    python -m benchmarks dropin --runs 3         # three processes; targets read on the median ratios
    python -m benchmarks dropin --sections jit --ops softmax,log_softmax --width 32   # rows of 32
    python -m benchmarks dropin --sections jit,compile --ops softmin --n 2560 --width 10   # 256 x 10

For every function in both ``fnnet.activations.__all__`` and ``dir(jax.nn)`` (plus variants:
``gelu(approximate=False)``, ``logsumexp`` over the last axis and over everything), four sections,
each printed as a markdown table whose rows appear as they finish. With ``--ops`` also the opt-in
forms (``tanh(exact_tails=True)``, ...) and torch's functions against the jax.nn formula a user
writes for them (``softmin``: ``jax.nn.softmax(-x)``; ``--list`` names them all):

1. **eager**: ``f(x).block_until_ready()`` on a device array, at 16 entries (dispatch cost) and at
   ``--n`` entries (default 2**20, the kernel itself; shaped in rows of ``--width``, default 1024,
   the softmax family's slices), float32; plus the largest difference of the two
   outputs relative to the largest output (a drop-in must agree, else the timing compares different
   things);
2. **jit**: at ``--n`` entries, ``jax.jit(jax.value_and_grad(lambda x, w: jnp.sum(f(x) * w)))``
   (fwd+bwd; ``w`` a fixed random array, so the cotangent is not a constant that XLA could fold; it
   is passed as an argument rather than closed over so that it is not embedded in the program as a
   4 MB constant, and the gradient is taken with respect to ``x`` only), and ``jax.jit(f)`` (fwd);
3. **compile**: wall time of ``jax.jit(value_and_grad(...)).lower(x, w).compile()``, a fresh lambda
   each repeat and ``jax.clear_caches()`` before each compile (so neither side reuses a trace or an
   executable; jax.nn's inner jits are retraced too, and fnnet's functions trace inline);
   With ``--sections phases`` (not run by default) the same compile time split into its phases:
   trace, lower, XLA compile.
4. **MLP memory**: ``jax.jit(jax.grad(loss)).lower(params, x, y).compile().memory_analysis()`` of a
   784-1024-1024-1024-10 MLP (batch 256, float32; the loss is ``fnnet.train.loss_fn``, its dense
   layers and softmax cross-entropy the same on both sides, so only the activation differs) for relu,
   tanh, sigmoid, gelu, silu (and gelu exact): temp bytes, argument and output bytes, fnnet / jax.nn.
   Deterministic: no timing.

Timing protocol (the machine this was written on is shared and loaded): both competitors are
compiled and warmed first, then timed in rounds (:func:`benchmarks._timing.interleaved`); each round
calls fnnet and jax.nn once each, in an order that alternates from round to round, each call blocked
until its result is ready (the 16-entry
eager case, whose call takes microseconds, gets more rounds: ``--small-repeats``). A ratio is
the **median over rounds of the within-round ratio** fnnet / jax.nn, which cancels a load that drifts
slowly; the medians of the absolute times are reported alongside. Ratio < 1: fnnet is faster/leaner.

An op that raises prints the error in its row and the run continues. The last two lines are the
targets line (each measure against its target, the accurate forms apart) and a one-line verdict.

A ratio moves more from process to process than within one (a shared machine, where each process's
buffers land): ``--runs K`` runs the whole benchmark in K fresh processes one after the other, prints
each, then a table of every ratio's median over the K runs (with its range) and the targets line and
verdict read on those medians. The MLP table is deterministic and taken from the first run.

Compile time for a GPU, without one: ``--gpu-target-config FILE`` (sections compile and phases only)
compiles both sides for the GPU that FILE describes (an XLA ``GpuTargetConfigProto`` in text form;
``benchmarks/gpu_targets/h200.pbtxt``), on this machine's CPUs, through
``jax.experimental.topologies`` and jax's CUDA plugin (``pip install "jax[cuda12]"`` at this jax's
version; no GPU or driver needed), with fnnet's rules traced for the GPU
(``fnnet._numerics.TARGET_BACKEND``). XLA:GPU's compile runs (fusion, emitters, code generation)
but no autotuning on a device, and the host is this one: a proxy for a real GPU's compile ratios,
to be read beside them.

    JAX_PLATFORMS=cpu python -m benchmarks dropin --sections compile \\
        --gpu-target-config benchmarks/gpu_targets/h200.pbtxt
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import json
import os
import pathlib
import platform
import subprocess
import sys
import time
import traceback

import jax
import jax.numpy as jnp
import numpy as np

import fnnet
import fnnet._numerics
import fnnet.activations as A
from fnnet import train

from benchmarks import _timing
from benchmarks._mlp import problem

ROOT = pathlib.Path(__file__).resolve().parents[1]

#: A ratio above this (fnnet / jax.nn) counts as a cost in the verdict. Noise on a loaded machine is
#: several per cent even for identical programs, so 1.00 would flag ties.
TOLERANCE = 1.10

#: The drop-in targets, measure -> the largest ratio fnnet / jax.nn that meets it. The MLP's temp
#: bytes are held to 1.00 exactly (deterministic). A forward-only jit is not a target: a training step
#: is forward and backward; its ratio is printed and listed apart.
TARGETS = {"eager 16": 1.2, "eager n": 1.2, "jit fwd+bwd": 1.05, "compile": 1.2}

#: (section, key, measure) of every ratio a run records: where it is stored in the results and the
#: name the targets and tables use.
RATIO_KEYS = (("eager", "small", "eager 16"), ("eager", "large", "eager n"), ("jit", "fwd_bwd", "jit fwd+bwd"),
              ("jit", "fwd", "jit fwd"), ("compile", "compile", "compile"))

#: Rows whose formula is deliberately more accurate than jax.nn's and costs more arithmetic for it
#: (docs/reference/accuracy.md: the tails and roots of gelu, silu/swish, squareplus). Their ratios are
#: that documented trade, so the targets line lists them apart instead of hiding them.
ACCURATE_FORMS = ("gelu", "gelu(approximate=False)", "silu", "swish", "squareplus")

#: The ops of --quick (when --ops is not given).
QUICK_OPS = ("relu", "gelu", "softmax")
MLP_ACTS = ("relu", "tanh", "sigmoid", "gelu", "silu", "gelu(approximate=False)")
QUICK_MLP_ACTS = ("relu", "gelu")


# ---------------------------------------------------------------------------------------------
# The ops: one (label, fnnet function, jax.nn function, input transform) per row
# ---------------------------------------------------------------------------------------------


def _partial(f, **kw):
    def g(x):
        return f(x, **kw)

    return g


#: Variants that are not a plain ``f(x)``: label -> (name, keyword arguments).
VARIANTS = {
    "gelu": ("gelu", {"approximate": True}),
    "gelu(approximate=False)": ("gelu", {"approximate": False}),
    "logsumexp(axis=-1)": ("logsumexp", {"axis": -1}),
    "logsumexp": ("logsumexp", {}),
}

#: fnnet's opt-in variants, timed against jax.nn's plain function (``--ops``, never by default): what
#: the option costs. label -> (name, keyword arguments for fnnet only).
OPT_IN = {
    "sigmoid(exact_tails=True)": ("sigmoid", {"exact_tails": True}),
    "tanh(exact_tails=True)": ("tanh", {"exact_tails": True}),
    "glu(exact_tails=True)": ("glu", {"exact_tails": True}),
}

#: torch-only functions, timed against the jax.nn formula a user writes for them (with ``--ops`` only).
TORCH_ROWS = {
    "softmin": (lambda x: A.softmin(x, dim=-1), lambda x: jax.nn.softmax(-x, axis=-1)),
}

#: Inputs outside an op's domain: log1mexp is defined for x > 0 (jax.nn's docstring).
INPUT = {"log1mexp": lambda x: jnp.abs(x) + 1e-3}


def shared_names() -> list[str]:
    return sorted(set(A.__all__) & set(dir(jax.nn)))


def all_labels() -> list[str]:
    labels = []
    for name in shared_names():
        variants = [lab for lab, (n, _) in VARIANTS.items() if n == name]
        labels.extend(variants or [name])
    return labels


def resolve(label: str):
    """(fnnet function, jax.nn function, input transform) of a row label."""
    if label in TORCH_ROWS:
        return (*TORCH_ROWS[label], lambda x: x)
    if label in OPT_IN:
        name, kw = OPT_IN[label]
        return _partial(getattr(A, name), **kw), getattr(jax.nn, name), INPUT.get(name, lambda x: x)
    name, kw = VARIANTS.get(label, (label, {}))
    fa, fb = getattr(A, name), getattr(jax.nn, name)
    if kw:
        fa, fb = _partial(fa, **kw), _partial(fb, **kw)
    return fa, fb, INPUT.get(name, lambda x: x)


def make_input(n: int, label: str, seed: int = 0, width: int = 1024):
    """n float32 entries ~ N(0, 9), shaped (n // L, L) with L = min(n, width): the softmax family and
    glu act on the last axis (rows of 1024 by default, ``--width``); elementwise ops do not care about
    the shape."""
    last = min(n, width)
    x = jax.random.normal(jax.random.key(seed), (n // last, last), jnp.float32) * 3
    return jax.device_put(resolve(label)[2](x))


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------


def interleaved(fa, fb, repeats: int, min_seconds: float = 0.0) -> dict:
    """Median times (s, per call) of fa() and fb() and the median within-round ratio: one call of
    each per round (or, with ``min_seconds``, a block of as many calls as make the slower one's block
    last that long), fa and fb alternating which goes first; every call blocked until ready."""
    times = _timing.interleaved({"fnnet": fa, "jax": fb}, repeats, min_seconds=min_seconds)
    ta, tb = times["fnnet"], times["jax"]
    return {"fnnet_s": float(np.median(ta)), "jax_s": float(np.median(tb)),
            "ratio": _timing.paired_ratio(times, "fnnet", "jax"), "fnnet_samples": ta, "jax_samples": tb}


def weighted_sum(f):
    """``(*args, w) -> Σ f(*args)·w``: the scalar whose value_and_grad (with respect to the first
    argument) is compiled and timed; ``w`` a fixed cotangent (:func:`cotangent`). A new function
    object at every call."""
    return lambda *a: jnp.sum(f(*a[:-1]) * a[-1])


def _compile_rounds(fa, fb, args, repeats: int) -> tuple[list, list]:
    """Per round, each side's (trace, lower, XLA compile) seconds of a fresh
    ``jax.jit(value_and_grad(weighted_sum(f)))`` at ``args`` (the last one the cotangent;
    ``.trace``, ``.lower()``, ``.compile()``), caches cleared before each, the two sides alternating
    which goes first."""

    def one(f):
        jax.clear_caches()
        loss = weighted_sum(f)  # a new function object every time
        with _timing.no_persistent_cache():
            t0 = time.perf_counter()
            traced = jax.jit(jax.value_and_grad(loss)).trace(*args)
            t1 = time.perf_counter()
            lowered = traced.lower()
            t2 = time.perf_counter()
            lowered.compile()
            t3 = time.perf_counter()
        return [t1 - t0, t2 - t1, t3 - t2]

    one(fa), one(fb)  # the first compile of a process also pays one-time costs: not counted
    ta, tb = [], []
    for r in range(repeats):
        if r % 2 == 0:
            ta.append(one(fa)); tb.append(one(fb))
        else:
            tb.append(one(fb)); ta.append(one(fa))
    return ta, tb


def compile_times(fa, fb, args, repeats: int) -> dict:
    """trace+lower+compile time of jit(value_and_grad) for each (:func:`_compile_rounds`)."""
    ta, tb = ([sum(p) for p in side] for side in _compile_rounds(fa, fb, args, repeats))
    ratios = [a / b for a, b in zip(ta, tb)]
    return {"fnnet_s": float(np.median(ta)), "jax_s": float(np.median(tb)),
            "ratio": float(np.median(ratios)), "fnnet_samples": ta, "jax_samples": tb}


def compile_phases(fa, fb, args, repeats: int) -> dict:
    """The same split into its phases: the median of each, and the median within-round ratio of
    the totals."""
    ta, tb = _compile_rounds(fa, fb, args, repeats)
    return {"fnnet_s": [float(v) for v in np.median(ta, axis=0)],
            "jax_s": [float(v) for v in np.median(tb, axis=0)],
            "ratio": float(np.median([sum(a) / sum(b) for a, b in zip(ta, tb)]))}


def fwd_bwd(f):
    """``jit(value_and_grad(weighted_sum(f)))``: called as ``(*args, w)``."""
    return jax.jit(jax.value_and_grad(weighted_sum(f)))


def cotangent(f, *args):
    """A fixed random cotangent of ``f(*args)``'s shape and dtype."""
    shape = jax.eval_shape(f, *args)
    return jax.random.normal(jax.random.key(1), shape.shape, shape.dtype)


# ---------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------


def _err(e: BaseException) -> str:
    msg = f"{type(e).__name__}: {e}".replace("\n", " ").replace("|", "/")
    return msg[:160]


def _r(v) -> str:
    return "—" if v is None else f"{v:.2f}"


def _us(v) -> str:
    return "—" if v is None else (f"{v * 1e6:.1f}" if v < 1e-3 else f"{v * 1e6:.0f}")


def _ms(v) -> str:
    return "—" if v is None else f"{v * 1e3:.3f}"


def table(title: str, header: list[str]):
    print(f"\n### {title}\n", flush=True)
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header), flush=True)


def row(cells):
    print("| " + " | ".join(str(c) for c in cells) + " |", flush=True)


@contextlib.contextmanager
def reported(rec: dict, label: str, n_cells: int, cfg):
    """Run one op's measurement; a failure becomes its row ("ERROR: ...") and the other ops still run."""
    try:
        yield
    except Exception as e:  # noqa: BLE001 -- a failing op is reported, the rest still run
        rec["error"] = _err(e)
        row([label, f"ERROR: {rec['error']}"] + [""] * n_cells)
        if cfg.verbose:
            traceback.print_exc()


def section_eager(labels, cfg, out):
    table(f"1. Eager call, float32, fnnet / jax.nn (median of {cfg.small_repeats} interleaved rounds "
          f"at 16 entries, {cfg.repeats} at {cfg.n})",
          ["op", "16: fnnet µs", "16: jax.nn µs", "16: ratio",
           f"{cfg.n}: fnnet µs", f"{cfg.n}: jax.nn µs", f"{cfg.n}: ratio", "max rel. diff"])
    for label in labels:
        rec = {}
        with reported(rec, label, 6, cfg):
            fa, fb, _ = resolve(label)
            xs = make_input(16, label)
            rec["small"] = interleaved(lambda: fa(xs), lambda: fb(xs), cfg.small_repeats)
            xl = make_input(cfg.n, label, width=cfg.width)
            rec["large"] = interleaved(lambda: fa(xl), lambda: fb(xl), cfg.repeats)
            ya, yb = np.asarray(fa(xl), np.float64), np.asarray(fb(xl), np.float64)
            if ya.shape != yb.shape:
                raise ValueError(f"output shapes differ: {ya.shape} vs {yb.shape}")
            scale = max(float(np.max(np.abs(yb[np.isfinite(yb)]), initial=0.0)), 1e-30)
            same_inf = np.array_equal(np.isfinite(ya), np.isfinite(yb))
            fin = np.isfinite(ya) & np.isfinite(yb)
            rec["max_rel_diff"] = (float(np.max(np.abs(ya - yb)[fin], initial=0.0)) / scale
                                   if same_inf else float("inf"))
            s, l_ = rec["small"], rec["large"]
            row([label, _us(s["fnnet_s"]), _us(s["jax_s"]), _r(s["ratio"]),
                 _us(l_["fnnet_s"]), _us(l_["jax_s"]), _r(l_["ratio"]), f"{rec['max_rel_diff']:.1e}"])
        out[label] = rec


def _rows(cfg) -> str:
    """A table title's note of the input's last axis, when it is not the default 1024."""
    return "" if cfg.width == 1024 else f" (rows of {cfg.width})"


def section_jit(labels, cfg, out):
    table(f"2. jit at {cfg.n} float32 entries{_rows(cfg)}, fnnet / jax.nn (median of {cfg.repeats} "
          "interleaved rounds)",
          ["op", "fwd+bwd: fnnet ms", "fwd+bwd: jax.nn ms", "fwd+bwd: ratio",
           "fwd: fnnet ms", "fwd: jax.nn ms", "fwd: ratio"])
    for label in labels:
        rec = {}
        with reported(rec, label, 5, cfg):
            fa, fb, _ = resolve(label)
            x = make_input(cfg.n, label, width=cfg.width)
            w = cotangent(fb, x)
            ga, gb = fwd_bwd(fa), fwd_bwd(fb)
            rec["fwd_bwd"] = interleaved(lambda: ga(x, w), lambda: gb(x, w), cfg.repeats)
            ja, jb = jax.jit(fa), jax.jit(fb)
            rec["fwd"] = interleaved(lambda: ja(x), lambda: jb(x), cfg.repeats)
            g, f = rec["fwd_bwd"], rec["fwd"]
            row([label, _ms(g["fnnet_s"]), _ms(g["jax_s"]), _r(g["ratio"]),
                 _ms(f["fnnet_s"]), _ms(f["jax_s"]), _r(f["ratio"])])
        out[label] = rec


def gpu_target_device(path: pathlib.Path):
    """A device of the GPU that the target config at ``path`` describes, to compile for without one
    (``jax.experimental.topologies``; jax's CUDA plugin must be installed)."""
    from jax.experimental.topologies import get_topology_desc

    text = path.read_text()
    try:
        return get_topology_desc("fnnet", "cuda", target_config=text, topology="1x1x1").devices[0]
    except Exception as e:  # noqa: BLE001 - the plugin's absence has several exception types
        raise SystemExit(
            f"--gpu-target-config: no deviceless GPU compiler ({type(e).__name__}: {e}); it needs jax's "
            f"CUDA plugin at jax's version: pip install \"jax[cuda12]=={jax.__version__}\" (no GPU needed)"
        ) from None


def _compile_args(cfg, args):
    """The compile sections' arguments: the arrays themselves, or, for a GPU target
    (``cfg.target_device``), their shapes and dtypes placed on it."""
    if cfg.target_device is None:
        return args
    sharding = jax.sharding.SingleDeviceSharding(cfg.target_device)
    return tuple(jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding) for a in args)


def _section_compile_kind(labels, cfg, out, title, header, key, measure, cells):
    target = cfg.target_device
    on = f", compiled for {target.device_kind} (deviceless)" if target is not None else ""
    table(f"{title} (median of {cfg.compile_repeats} interleaved rounds, caches cleared before each{on})",
          ["op", *header])
    for label in labels:
        rec = {}
        with reported(rec, label, len(header) - 1, cfg):
            fa, fb, _ = resolve(label)
            x = make_input(cfg.n, label, width=cfg.width)
            args = _compile_args(cfg, (x, cotangent(fb, x)))
            rec[key] = c = measure(fa, fb, args, cfg.compile_repeats)
            row([label, *cells(c)])
        out[label] = rec


def section_compile(labels, cfg, out):
    _section_compile_kind(
        labels, cfg, out, "3. Compile time of jit(value_and_grad), lower+compile, fnnet / jax.nn",
        ["fnnet ms", "jax.nn ms", "ratio"], "compile", compile_times,
        lambda c: [f"{c['fnnet_s'] * 1e3:.1f}", f"{c['jax_s'] * 1e3:.1f}", _r(c["ratio"])])


def section_phases(labels, cfg, out):
    _section_compile_kind(
        labels, cfg, out, "3b. Compile time of jit(value_and_grad) by phase, ms: trace, lower, XLA compile",
        ["fnnet trace", "fnnet lower", "fnnet compile", "jax.nn trace", "jax.nn lower", "jax.nn compile",
         "ratio of totals"], "phases", compile_phases,
        lambda c: [*(f"{v * 1e3:.1f}" for v in c["fnnet_s"] + c["jax_s"]), _r(c["ratio"])])


def mlp_memory(act, params, x, y) -> dict:
    loss = functools.partial(train.loss_fn, activation=act)
    m = jax.jit(jax.grad(loss)).lower(params, x, y).compile().memory_analysis()
    if m is None:
        raise RuntimeError("memory_analysis() is not available on this backend")
    return {k: int(getattr(m, k)) for k in
            ("temp_size_in_bytes", "argument_size_in_bytes", "output_size_in_bytes",
             "alias_size_in_bytes", "generated_code_size_in_bytes") if hasattr(m, k)}


def section_mlp(acts, cfg, out):
    widths = cfg.mlp_widths
    shape = "-".join(map(str, widths))
    table(f"4. MLP {shape}, batch {cfg.mlp_batch}, float32: compiled memory of jit(grad(loss)), "
          "fnnet / jax.nn", ["activation", "temp: fnnet MB", "temp: jax.nn MB", "temp: ratio",
                             "arg+out: fnnet MB", "arg+out: jax.nn MB", "arg+out: ratio"])
    params, x, y = problem(widths, cfg.mlp_batch, seed=2)
    for label in acts:
        rec = {}
        with reported(rec, label, 5, cfg):
            fa, fb, _ = resolve(label)
            rec["fnnet"], rec["jax"] = a, b = mlp_memory(fa, params, x, y), mlp_memory(fb, params, x, y)
            ao = lambda m: m["argument_size_in_bytes"] + m["output_size_in_bytes"]  # noqa: E731
            rec["temp_ratio"] = a["temp_size_in_bytes"] / b["temp_size_in_bytes"]
            rec["arg_out_ratio"] = ao(a) / ao(b)
            row([label, f"{a['temp_size_in_bytes'] / 1e6:.3f}", f"{b['temp_size_in_bytes'] / 1e6:.3f}",
                 f"{rec['temp_ratio']:.3f}", f"{ao(a) / 1e6:.3f}", f"{ao(b) / 1e6:.3f}",
                 f"{rec['arg_out_ratio']:.3f}"])
        out[label] = rec


# ---------------------------------------------------------------------------------------------
# Verdict
# ---------------------------------------------------------------------------------------------


def ratios(results):
    """Every (label, measure, ratio) measured, in the measures' names of :data:`TARGETS`."""
    out = []
    for section, key, measure in RATIO_KEYS:
        for label, rec in results.get(section, {}).items():
            r = rec.get(key, {}).get("ratio")
            if r is not None:
                out.append((label, measure, r))
    return out


def errored(results) -> list[str]:
    """The labels that errored in a timed section, and ``mlp:<label>`` for the MLP table."""
    errors = {label for section in ("eager", "jit", "compile")
              for label, rec in results.get(section, {}).items() if "error" in rec}
    errors |= {f"mlp:{label}" for label, rec in results.get("mlp", {}).items() if "error" in rec}
    return sorted(errors)


def mlp_excess(results) -> list[tuple[str, str, float]]:
    """(label, "MLP temp bytes", ratio) of every MLP row above 1: bytes are deterministic, so any
    excess is a cost."""
    return [(label, "MLP temp bytes", rec["temp_ratio"]) for label, rec in results.get("mlp", {}).items()
            if "error" not in rec and rec["temp_ratio"] > 1.0 + 1e-9]


def costs(results) -> tuple[list[tuple[str, str, float]], list[str]]:
    """(label, measure, ratio) of every ratio above TOLERANCE, and the labels that errored."""
    return [t for t in ratios(results) if t[2] > TOLERANCE] + mlp_excess(results), errored(results)


def targets_line(results) -> str:
    """One line: which rows miss a target of :data:`TARGETS` (and the MLP's 1.00), the accurate forms
    apart, and the other rows' forward-only ratios above 1.05 (informative)."""
    def fmt(items):
        return ", ".join(f"{lab} {m} {r:.2f}×" for lab, m, r in sorted(items, key=lambda t: -t[2]))

    apart = set(ACCURATE_FORMS) | set(OPT_IN)  # the accurate forms, by default or opted into
    measured = ratios(results)
    missed = [(lab, m, r) for lab, m, r in measured if m in TARGETS and r > TARGETS[m]] + mlp_excess(results)
    held = [t for t in missed if t[0] not in apart]
    accurate = [t for t in missed if t[0] in apart]
    labels = {lab for lab, _, _ in measured} | set(results.get("mlp", {}))
    n_held = len(labels - apart)
    spec = ", ".join(f"{m} ≤ {v:g}×" for m, v in TARGETS.items()) + ", MLP temp bytes ≤ 1×"
    errors = errored(results)
    parts = [f"TARGETS ({spec}): "
             + (f"met by all {n_held} rows outside the accurate forms" if not held and not errors
                else f"missed by {len({t[0] for t in held})}/{n_held} rows outside the accurate forms: "
                + fmt(held))]
    if errors:
        parts.append(f"{len(errors)} errored: " + ", ".join(errors))
    if accurate:
        parts.append("accurate forms (accuracy.md): " + fmt(accurate))
    line = TARGETS["jit fwd+bwd"]
    fwd = [t for t in measured if t[1] == "jit fwd" and t[2] > line and t[0] not in apart]
    if fwd:
        parts.append(f"outside the accurate forms, jit fwd alone above {line:g}× (not a target): " + fmt(fwd))
    return "; ".join(parts)


def verdict(results, n_ops) -> str:
    found, errors = costs(results)
    ops = sorted({lab for lab, _, _ in found})
    worst = sorted(found, key=lambda t: -t[2])[:3]
    mlp = [r["temp_ratio"] for r in results.get("mlp", {}).values() if "temp_ratio" in r]
    parts = []
    if not found and not errors:
        parts.append(f"drop-in at no cost: YES — all {n_ops} ops within {TOLERANCE:.2f}× of jax.nn "
                     "in every measure")
    else:
        parts.append(f"drop-in at no cost: NO — {len(ops)}/{n_ops} ops above {TOLERANCE:.2f}× "
                     "jax.nn in some measure")
        if worst:
            parts.append("worst: " + ", ".join(f"{lab} {m} {r:.2f}×" for lab, m, r in worst))
        if errors:
            parts.append(f"{len(errors)} errored: " + ", ".join(errors))
    if mlp:
        parts.append(f"MLP temp bytes ratio {min(mlp):.3f}–{max(mlp):.3f}")
    return "VERDICT: " + "; ".join(parts)


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def median_results(runs: list[dict]) -> dict:
    """The results of several runs as one results dict: each ratio the median of the runs' ratios
    (``ratios_of_runs`` beside it), an op that errored in any run keeps the error; the MLP table (bytes,
    deterministic) from the first run that has it."""
    out: dict = {}
    for section, key, _ in RATIO_KEYS:
        for run in runs:
            for label, rec in run.get(section, {}).items():
                dst = out.setdefault(section, {}).setdefault(label, {})
                if "error" in rec:
                    dst["error"] = rec["error"]
                elif key in rec:
                    dst.setdefault(key, {"ratios_of_runs": []})["ratios_of_runs"].append(rec[key]["ratio"])
    for section_recs in out.values():
        for rec in section_recs.values():
            for key, m in rec.items():
                if key != "error":
                    m["ratio"] = float(np.median(m["ratios_of_runs"]))
    for run in runs:
        if run.get("mlp"):
            out["mlp"] = run["mlp"]
            break
    return out


def print_medians(med: dict, n_runs: int) -> None:
    labels = list(dict.fromkeys(lab for section, _, _ in RATIO_KEYS for lab in med.get(section, {})))
    cols = [(sec, key, title) for sec, key, title in RATIO_KEYS if any(
        key in med.get(sec, {}).get(lab, {}) for lab in labels)]
    table(f"Medians of {n_runs} runs, fnnet / jax.nn (each: median, and in brackets the lowest–highest of "
          "the runs)", ["op", *(title for _, _, title in cols)])
    for label in labels:
        cells = []
        for sec, key, _ in cols:
            rec = med.get(sec, {}).get(label, {})
            if "error" in rec:
                cells.append("ERROR")
            elif key in rec:
                cells.append(_timing.median_cell(rec[key]))
            else:
                cells.append("—")
        row([label, *cells])


def run_many(cfg, argv: list[str]) -> int:
    """``--runs K``: the benchmark with the same options in K fresh processes, then the medians."""
    runs, metas, status = _timing.fresh_runs("dropin", argv, cfg.runs)
    if status != 0:
        return status
    med = median_results(runs)
    print_medians(med, cfg.runs)
    n_ops = len({lab for section, _, _ in RATIO_KEYS for lab in med.get(section, {})})
    t, v = targets_line(med), verdict(med, n_ops)
    if cfg.json is not None:
        cfg.json.parent.mkdir(parents=True, exist_ok=True)
        cfg.json.write_text(json.dumps({"meta": metas, "runs": runs, "results": med, "targets": t, "verdict": v},
                                       indent=1))
    print()
    print(t)
    print(v, flush=True)
    return 0


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], check=True,
                              capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:  # noqa: BLE001
        return None


def _jaxlib_version() -> str | None:
    try:
        import jaxlib

        return jaxlib.__version__
    except Exception:  # noqa: BLE001
        return None


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks dropin", description=__doc__.strip().splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help=f"ops {','.join(QUICK_OPS)} unless --ops, n=2**14, 5 repeats, 2 compile repeats, "
                        "a 784-128-128-10 MLP with relu and gelu (< 60 s)")
    p.add_argument("--json", type=pathlib.Path, default=None, help="write the raw numbers here")
    p.add_argument("--ops", type=lambda s: [o for o in s.split(",") if o], default=None,
                   help="comma-separated row labels (default: every shared op; see --list)")
    p.add_argument("--list", action="store_true", help="print the row labels and exit")
    p.add_argument("--n", type=int, default=None, help="entries of the large input (default 2**20)")
    p.add_argument("--width", type=int, default=1024,
                   help="last axis of the large input, the softmax family's slice (default 1024)")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds (default 60)")
    p.add_argument("--small-repeats", type=int, default=None,
                   help="timed rounds of the 16-entry eager case (default 600: one call is microseconds)")
    p.add_argument("--compile-repeats", type=int, default=None, help="compile rounds (default 7)")
    p.add_argument("--mlp-widths", type=lambda s: [int(v) for v in s.split("-")], default=None,
                   help="MLP layer widths, e.g. 784-1024-1024-1024-10 (the default)")
    p.add_argument("--mlp-batch", type=int, default=None, help="MLP batch (default 256)")
    p.add_argument("--mlp-acts", type=lambda s: [o for o in s.split(",") if o], default=None,
                   help=f"MLP activations (default {','.join(MLP_ACTS)})")
    p.add_argument("--sections", type=lambda s: [o for o in s.split(",") if o],
                   default=["eager", "jit", "compile", "mlp"],
                   help="subset of eager,jit,compile,mlp; also phases (compile time split into trace, "
                        "lower and XLA compile; not run by default)")
    p.add_argument("--gpu-target-config", type=pathlib.Path, default=None,
                   help="compile for the GPU this XLA target config describes, without one (sections "
                        "compile and phases only; needs jax's CUDA plugin), e.g. "
                        "benchmarks/gpu_targets/h200.pbtxt")
    p.add_argument("--verbose", action="store_true", help="print the traceback of an op that fails")
    p.add_argument("--runs", type=int, default=1,
                   help="run the benchmark in this many fresh processes, one after the other, and read "
                        "the targets on each ratio's median (default 1: this process only)")
    cfg = p.parse_args(argv)
    q = cfg.quick
    defaults = {"n": 1 << 14 if q else 1 << 20, "repeats": 5 if q else 60,
                "small_repeats": 50 if q else 600, "compile_repeats": 2 if q else 7,
                "mlp_widths": [784, 128, 128, 10] if q else [784, 1024, 1024, 1024, 10],
                "mlp_batch": 32 if q else 256, "mlp_acts": list(QUICK_MLP_ACTS if q else MLP_ACTS),
                "ops": list(QUICK_OPS) if q else all_labels()}
    for k, v in defaults.items():
        if getattr(cfg, k) is None:
            setattr(cfg, k, v)
    return p, cfg


def main(argv=None) -> int:
    p, cfg = parse_args(argv)
    labels = all_labels()
    if cfg.list:
        print("\n".join(labels + [f"{o}  (opt-in, with --ops only)" for o in OPT_IN]
                        + [f"{o}  (torch's; against jax.nn's formula, with --ops only)" for o in TORCH_ROWS]))
        return 0
    unknown = [o for o in cfg.ops if o not in labels and o not in OPT_IN and o not in TORCH_ROWS]
    unknown += [o for o in cfg.mlp_acts if o not in labels]
    if unknown:
        p.error(f"unknown op(s) {unknown}; known: {', '.join(labels)}")
    if cfg.runs < 1:
        p.error(f"--runs must be at least 1, got {cfg.runs}")
    if cfg.runs > 1:
        return run_many(cfg, list(sys.argv[1:] if argv is None else argv))
    cfg.target_device = None
    if cfg.gpu_target_config is not None:
        other = [name for name in cfg.sections if name not in ("compile", "phases")]
        if other:
            p.error(f"--gpu-target-config compiles without running: sections compile and phases only, "
                    f"got {','.join(other)}")
        if not cfg.gpu_target_config.is_file():
            p.error(f"--gpu-target-config: no file {cfg.gpu_target_config}")
        cfg.target_device = gpu_target_device(cfg.gpu_target_config)
        fnnet._numerics.TARGET_BACKEND = "gpu"  # trace fnnet's rules for the GPU, not this process's CPU
    start = time.perf_counter()
    dev = jax.devices()[0] if cfg.target_device is None else cfg.target_device
    meta = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m benchmarks dropin " + " ".join(sys.argv[1:] if argv is None else argv),
        "jax": jax.__version__, "jaxlib": _jaxlib_version(),
        "backend": jax.default_backend() if cfg.target_device is None else "gpu (deviceless compile)",
        "device": getattr(dev, "device_kind", str(dev)),
        "python": platform.python_version(), "cpus": os.cpu_count(),
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "fnnet_file": fnnet.__file__, "git_commit": _git_commit(),
        "n": cfg.n, "width": cfg.width, "repeats": cfg.repeats, "small_repeats": cfg.small_repeats,
        "compile_repeats": cfg.compile_repeats,
        "mlp_widths": cfg.mlp_widths, "mlp_batch": cfg.mlp_batch, "tolerance": TOLERANCE,
    }
    print(f"fnnet drop-in benchmark: {meta['date_utc']}, jax {meta['jax']}, {meta['backend']} "
          f"({meta['device']}), {meta['cpus']} CPUs, load average "
          f"{' '.join(f'{v:.1f}' for v in meta['loadavg'] or [])}, fnnet at {meta['fnnet_file']} "
          f"(commit {meta['git_commit']})", flush=True)
    print(f"ratio = fnnet / jax.nn (< 1: fnnet faster or leaner); a ratio is the median over rounds "
          f"of the within-round ratio", flush=True)
    results: dict = {}
    sections = {"eager": section_eager, "jit": section_jit, "compile": section_compile,
                "phases": section_phases}
    for name in cfg.sections:
        results[name] = {}
        t0 = time.perf_counter()
        if name == "mlp":
            section_mlp(cfg.mlp_acts, cfg, results[name])
        elif name in sections:
            sections[name](cfg.ops, cfg, results[name])
        else:
            p.error(f"unknown section {name!r}")
        print(f"\n({name}: {time.perf_counter() - t0:.0f} s)", flush=True)
    meta["seconds"] = time.perf_counter() - start
    v = verdict(results, len(cfg.ops))
    t = targets_line(results)
    if cfg.json is not None:
        cfg.json.parent.mkdir(parents=True, exist_ok=True)
        cfg.json.write_text(json.dumps({"meta": meta, "results": results, "targets": t, "verdict": v},
                                       indent=1))
    print(f"\ntotal {meta['seconds']:.0f} s")
    print(t)
    print(v, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
