"""The forms fnnet chooses by backend, each against the others and jax.nn's on this machine: XLA's
compile time (with the program's kernels, and how many XLA:GPU emits with Triton) and the run time of
``jit(value_and_grad(sum(f(x)·w)))`` at 1024 × 1024 float32 (the drop-in benchmark's program), ``w``
of ``f(x)``'s shape.

    python -m experiments.backend_forms [--repeats 7] [--runs 50]

The forms (each the same function: the same bits but for the sign of a NaN, or sums added in another
order), set while the rule is traced:

* the softmax family's shift in the rules that keep ``e`` (``fnnet._numerics.SHIFT_FORM``:
  ``select``, ``arith``, ``difference``; see ``fnnet._numerics.shifted``), and the difference with its
  NaN guard written arithmetically (``_difference_sign_guard``, built here), for logsumexp and
  logmeanexp over every axis and the last, softmax, and the integer-label cross-entropy;
* standardize's two sums stacked into one reduction or apart (``_standardize._slice_sums``);
* mish's derivative with its input behind ``lax.optimization_barrier``, or reading the forward's
  output (``+ 0·y``), so that XLA may not fuse the backward's loop into the forward's reduction as a
  sibling: unregistered variants built here, to time the structure (not rules: the second lets a
  NaN or inf of y into the derivative).

One op at a time, its rows printed when its forms are done (so that a time limit keeps the ops
finished). Compile: lowered outside the timer, caches cleared before each compile, interleaved
rounds (the first not recorded), medians. Run: each program compiled once, then interleaved blocks of ``BLOCK``
calls on an accelerator (its time, not the launch latency), single calls on the CPU (as the drop-in
benchmark times them: XLA:CPU may overlap independent calls dispatched back to back, and then
measures another regime), medians of the time per call.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import fnnet
import fnnet._numerics as N
from experiments.activation_ablation import _kernels, _patched, compile_times, weight_like
from fnnet.activations import _smooth as S
from fnnet.activations import _standardize as ST
from fnnet.primitive import elementwise


BLOCK = 10


def _mish_barrier():
    return elementwise("mish_barrier", S._mish, lambda x, y: S._dmish(lax.optimization_barrier(x), y),
                       reference=S._mish, register=False).fn


def _mish_reading_y():
    # y·0 (not folded away for floats: NaN·0 is NaN) makes the backward read the forward's output, as
    # jax.nn's autodiff reads its residuals: the structure, not a rule (NaN and inf would leak in)
    return elementwise("mish_reading_y", S._mish, lambda x, y: S._dmish(x, y) + 0 * y, saves="xy",
                       reference=S._mish, register=False).fn


def _difference_sign_guard(x, m, axes):
    """``fnnet._numerics._shift_difference`` with its NaN guard written arithmetically: where ``d = x − m``
    is NaN, ``c·sign(|x|)`` (c the slice's NaN-or-0) instead of ``c`` under ``x = x``: a tie at ±inf
    gives c·1 = 0, a NaN entry NaN; the select's condition is ``d ≠ d`` alone, as in the unguarded
    form the H200 measured. The same values as the library's form (a NaN's sign aside); a candidate for
    the device, not a rule."""
    c = lax.select(lax.ne(m, m), m, jnp.zeros_like(m))
    d = lax.sub(x, N.keep(m, axes, x.shape))
    guard = lax.mul(N.keep(c, axes, x.shape), lax.sign(lax.abs(x)))
    return lax.select(lax.ne(d, d), guard, d)


def _cases(labels):
    """op -> (jax.nn's function, {variant: (fnnet's function, context that sets the form)})."""
    shift = {f: functools.partial(_patched, {"SHIFT_FORM": f}, N) for f in ("select", "arith", "difference")}
    nothing = contextlib.nullcontext

    def int_ce(x):
        return fnnet.losses.softmax_cross_entropy_with_integer_labels(x, labels)

    def int_ce_ref(x):
        return -jnp.take_along_axis(jax.nn.log_softmax(x), labels[:, None], -1)[:, 0]

    family = {
        "logsumexp": (lambda x: fnnet.logsumexp(x), jax.nn.logsumexp),
        "logsumexp(axis=-1)": (lambda x: fnnet.logsumexp(x, axis=-1),
                               lambda x: jax.nn.logsumexp(x, axis=-1)),
        "logmeanexp": (lambda x: fnnet.logmeanexp(x), jax.nn.logmeanexp),
        "softmax": (fnnet.softmax, jax.nn.softmax),
        "integer-label CE": (int_ce, int_ce_ref),
    }
    guarded = functools.partial(_patched, {"SHIFT_FORM": "difference",
                                           "_shift_difference": _difference_sign_guard}, N)
    cases = {op: (theirs, {**{f"shift {f}": (ours, ctx) for f, ctx in shift.items()},
                           "shift difference, sign guard": (ours, guarded)})
             for op, (ours, theirs) in family.items()}
    cases["standardize"] = (jax.nn.standardize, {
        "sums stacked": (fnnet.standardize, functools.partial(_patched, {"backend": lambda: "gpu"}, ST)),
        "sums apart": (fnnet.standardize, functools.partial(_patched, {"backend": lambda: "cpu"}, ST)),
    })
    cases["mish"] = (jax.nn.mish, {"fnnet": (fnnet.mish, nothing),
                                   "derivative behind a barrier": (_mish_barrier(), nothing),
                                   "derivative reading y": (_mish_reading_y(), nothing)})
    # the open choices first (a time limit cuts the list from the end): the shift over every axis
    # and mish's structure; then the forms already confirmed on the H200
    first = ("logsumexp", "logmeanexp", "mish")
    return {op: cases[op] for op in first + tuple(op for op in cases if op not in first)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7, help="compile rounds (default 7)")
    ap.add_argument("--runs", type=int, default=50, help="timed calls of each program (default 50)")
    ap.add_argument("--ops", default=None, help="comma-separated subset of the ops")
    args = ap.parse_args()
    x = jax.random.normal(jax.random.key(0), (1024, 1024), jnp.float32) * 3
    w = jax.random.normal(jax.random.key(1), (1024, 1024), jnp.float32)
    labels = jax.random.randint(jax.random.key(2), (1024,), 0, 1024)
    cases = _cases(labels)
    if args.ops:
        unknown = [k for k in args.ops.split(",") if k not in cases]
        if unknown:
            ap.error(f"--ops: unknown {', '.join(unknown)}; the ops are {', '.join(cases)}")
        cases = {k: cases[k] for k in args.ops.split(",")}

    def program(f):
        return jax.jit(jax.value_and_grad(lambda a, b: jnp.sum(f(a) * b)))

    print(f"jit(value_and_grad(sum(f(x)·w))), 1024 x 1024 float32 ({jax.devices()[0].device_kind}, jax "
          f"{jax.__version__}): XLA compile, median of {args.repeats} interleaved rounds; run, median of "
          f"{args.runs} interleaved calls; ratios to jax.nn's")
    print(f"{'op':<20} {'variant':<28} {'compile ms':>10} {'ratio':>6} {'run ms':>8} {'ratio':>6} "
          f"{'kernels':>7} {'Triton':>6}", flush=True)
    block = 1 if jax.default_backend() == "cpu" else BLOCK
    for op, (theirs, variants) in cases.items():  # one op at a time: a time limit keeps the ops done
        v = weight_like(w, jax.eval_shape(theirs, x).shape)
        lowerings = {"jax.nn": lambda f=theirs: program(f).lower(x, v)}
        for name, (ours, ctx) in variants.items():
            def lower(ours=ours, ctx=ctx):
                with ctx():  # the form is chosen while the rule is traced, i.e. while lowering
                    return program(ours).lower(x, v)
            lowerings[name] = lower
        compiled = {k: lo().compile() for k, lo in lowerings.items()}
        kernels = {k: _kernels(c.as_text()) for k, c in compiled.items()}
        ctimes = compile_times(lowerings, args.repeats)
        rtimes = {k: [] for k in compiled}
        for c in compiled.values():
            jax.block_until_ready(c(x, v))
        keys = list(compiled)
        for r in range(args.runs):
            for k in keys if r % 2 == 0 else keys[::-1]:
                t0 = time.perf_counter()
                for _ in range(block):  # dispatched back to back: the device's time, not the host's latency
                    out = compiled[k](x, v)
                jax.block_until_ready(out)
                rtimes[k].append((time.perf_counter() - t0) / block)
        cb, rb = (float(np.median(t["jax.nn"])) for t in (ctimes, rtimes))
        for name in keys:
            c, r = float(np.median(ctimes[name])), float(np.median(rtimes[name]))
            k, t = kernels[name]
            print(f"{op:<20} {name:<28} {c * 1e3:10.1f} {c / cb:6.2f} {r * 1e3:8.3f} {r / rb:6.2f} "
                  f"{k:7d} {t:6d}", flush=True)

if __name__ == "__main__":
    main()
