"""Is fnnet a drop-in for optax's losses at no cost? Every loss optax also has, timed side by side.

    python -m benchmarks losses                    # against optax when it is installed
    python -m benchmarks losses --quick            # small sizes, few repeats (< 60 s)
    python -m benchmarks losses --against reference --shapes 1024x1024,256x10 --json out.json
    python -m benchmarks losses --runs 5 --losses softmax_cross_entropy --shapes 64x1024  # 5 processes

The losses: ``softmax_cross_entropy``, ``softmax_cross_entropy_with_integer_labels``,
``sigmoid_binary_cross_entropy``, ``squared_error``, ``l2_loss``, ``huber_loss``, ``log_cosh``,
``hinge_loss``, ``perceptron_loss``, ``multiclass_hinge_loss``, ``multiclass_perceptron_loss``,
``cosine_similarity``, ``cosine_distance``, ``kl_divergence``,
``kl_divergence_with_log_targets`` and ``generalized_kl_divergence``, each called as optax calls it
(``loss(logits, labels)``, one value per example or entry, no reduction). The competitor
(``--against``) is optax's function of the same name (``optax.losses.X``; optax is not one of fnnet's
dependencies: ``pip install optax`` for it), or the loss's own ``.reference``: the plain-jnp formula
fnnet checks its rules against, differentiated by JAX (optax's formula, with the guards it needs for
the same special values). ``auto``, the default, takes optax when it can be imported.

Per loss and per batch × classes shape (``--shapes``, default 1024x1024, 4096x1000 and 256x10;
float32 logits N(0, 9); the labels a distribution per example, class indices, 0/1 targets or N(0, 1)
targets, ±1 for the hinge and the perceptron; the divergences' log-predictions and targets are
log-softmaxes of such logits), as in
:mod:`benchmarks.dropin`:

1. **jit fwd+bwd**: ``jax.jit(jax.value_and_grad(lambda z, y, w: jnp.sum(loss(z, y) * w)))`` (the
   gradient with respect to the logits; the labels and a random cotangent ``w`` passed as arguments,
   so that neither is folded into the program), and **jit fwd**: ``jax.jit(loss)``;
2. **eager**: ``loss(z, y)`` on 4 × 4 logits (the call's own cost; fnnet's losses are jitted
   functions, optax's are not);
3. **compile**: trace + lower + compile of the jit fwd+bwd program at the first shape, caches cleared
   before each (``--compile-repeats`` rounds).

Timing: both sides compiled and warmed first, then timed in interleaved rounds; a ratio is the median
over rounds of the within-round ratio fnnet / competitor (< 1: fnnet faster). The jit measures time
each side in a block of calls lasting at least ``JIT_BLOCK_SECONDS`` per round (each call blocked
until ready; one call where a call takes longer): a program of tens of µs (256 × 10) timed one call
at a time moved by a third from round to round and from run to run, the same program on both sides
included (jit(value_and_grad) of l2_loss at 256 × 10, optax's kernels exactly: 1.03–1.35 one call
at a time, 0.85–0.97 in blocks, three sets each in one process, a script outside the repository).
The last line is the targets line: jit fwd+bwd ≤ 1.05×, eager ≤ 1.2×, compile ≤ 1.2× (as for the
activations); a forward alone is not a training step: its ratios above 1.05 are listed apart, as
information.

One process's ratios move from process to process by more than a few per cent on a small machine (the
softmax cross-entropy at 64 × 1024 on two cores: 1.01–1.08 in one process, 1.19–1.28 in the next, the
same program): ``--runs K`` runs the benchmark in K fresh processes one after the other, prints each
run, then every ratio's median over the runs with the lowest and highest beside it, and reads the
targets line on the medians.
"""
from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import fnnet
import fnnet.losses as L

from benchmarks import _timing
from benchmarks.dropin import (_git_commit, _ms, _r, _us, compile_times, cotangent, fwd_bwd, interleaved,
                               reported, row, table)

#: The losses optax also has, in optax's names.
LOSSES = ("softmax_cross_entropy", "softmax_cross_entropy_with_integer_labels",
          "sigmoid_binary_cross_entropy", "squared_error", "l2_loss", "huber_loss", "log_cosh",
          "hinge_loss", "perceptron_loss", "multiclass_hinge_loss", "multiclass_perceptron_loss",
          "cosine_similarity", "cosine_distance", "kl_divergence", "kl_divergence_with_log_targets",
          "generalized_kl_divergence")

#: The losses whose labels are class indices over the last axis.
INTEGER_LABELS = ("softmax_cross_entropy_with_integer_labels", "multiclass_hinge_loss", "multiclass_perceptron_loss")

#: measure -> the largest ratio fnnet / competitor that meets the target.
TARGETS = {"jit fwd+bwd": 1.05, "eager": 1.2, "compile": 1.2}

#: The least time (s) each side's block of calls lasts in a round of the jit measures.
JIT_BLOCK_SECONDS = 0.005

SHAPES = ((1024, 1024), (4096, 1000), (256, 10))
QUICK_SHAPES = ((256, 64),)
EAGER_SHAPE = (4, 4)


def inputs(name: str, shape: tuple[int, int], seed: int = 0):
    """(logits or predictions, labels or targets) of a loss, float32, for a batch × classes shape."""
    kz, ky = jax.random.split(jax.random.key(seed))
    z = jax.random.normal(kz, shape, jnp.float32) * 3
    if name == "softmax_cross_entropy":
        y = jax.nn.softmax(jax.random.normal(ky, shape, jnp.float32))
    elif name in INTEGER_LABELS:
        y = jax.random.randint(ky, shape[:1], 0, shape[1])
    elif name == "sigmoid_binary_cross_entropy":
        y = (jax.random.uniform(ky, shape) > 0.5).astype(jnp.float32)
    elif name in ("hinge_loss", "perceptron_loss"):  # labels ±1
        y = jnp.where(jax.random.normal(ky, shape, jnp.float32) > 0, 1.0, -1.0)
    elif "kl_divergence" in name:  # log-probabilities against probabilities (or their logs)
        z = jax.nn.log_softmax(z)
        y = jax.nn.log_softmax(jax.random.normal(ky, shape, jnp.float32))
        y = y if name.endswith("log_targets") else jnp.exp(y)
    else:
        y = jax.random.normal(ky, shape, jnp.float32)
    return jax.device_put(z), jax.device_put(y)


def competitor(against: str):
    """(name, function of a loss name): optax's losses, or each loss's ``.reference``."""
    if against in ("auto", "optax"):
        try:
            import optax
        except ImportError:
            if against == "optax":
                raise SystemExit("python -m benchmarks losses --against optax: optax is not installed "
                                 "(pip install optax), or use --against reference") from None
        else:
            return f"optax {optax.__version__}", lambda name: getattr(optax.losses, name)
    return "reference (plain jnp, JAX's autodiff)", lambda name: getattr(L, name).reference


def measure(name, fa, fb, cfg) -> dict:
    rec: dict = {"shapes": {}}
    for shape in cfg.shapes:
        z, y = inputs(name, shape)
        w = cotangent(fb, z, y)
        ga, gb = fwd_bwd(fa), fwd_bwd(fb)
        ja, jb = jax.jit(fa), jax.jit(fb)
        rec["shapes"][f"{shape[0]}x{shape[1]}"] = {
            "fwd_bwd": interleaved(lambda: ga(z, y, w), lambda: gb(z, y, w), cfg.repeats, JIT_BLOCK_SECONDS),
            "fwd": interleaved(lambda: ja(z, y), lambda: jb(z, y), cfg.repeats, JIT_BLOCK_SECONDS),
        }
    zs, ys = inputs(name, EAGER_SHAPE)
    rec["eager"] = interleaved(lambda: fa(zs, ys), lambda: fb(zs, ys), cfg.small_repeats)
    z, y = inputs(name, cfg.shapes[0])
    rec["compile"] = compile_times(fa, fb, (z, y, cotangent(fb, z, y)), cfg.compile_repeats)
    return rec


def ratios(results) -> list[tuple[str, str, float]]:
    """(loss, measure, ratio) of every ratio measured; the jit measures name their shape."""
    out = []
    for name, rec in results.items():
        for shape, s in rec.get("shapes", {}).items():
            out.append((name, f"jit fwd+bwd {shape}", s["fwd_bwd"]["ratio"]))
            out.append((name, f"jit fwd {shape}", s["fwd"]["ratio"]))
        for key in ("eager", "compile"):
            if key in rec:
                out.append((name, key, rec[key]["ratio"]))
    return out


def _target(measure: str) -> float | None:
    base = "jit fwd+bwd" if measure.startswith("jit fwd+bwd") else measure
    return TARGETS.get(base)


def targets_line(results) -> str:
    """One line: the rows that miss a target, the errors, and the forward-only ratios above the jit
    target (information)."""
    def fmt(items):
        return ", ".join(f"{n} {m} {r:.2f}×" for n, m, r in sorted(items, key=lambda t: -t[2]))

    measured = ratios(results)
    missed = [t for t in measured if _target(t[1]) is not None and t[2] > _target(t[1])]
    errors = sorted(n for n, rec in results.items() if "error" in rec)
    spec = ", ".join(f"{m} ≤ {v:g}×" for m, v in TARGETS.items())
    n = len(results)
    head = (f"met by all {n} losses" if not missed and not errors
            else f"missed by {len({t[0] for t in missed})}/{n} losses" + (": " + fmt(missed) if missed else ""))
    parts = [f"TARGETS ({spec}): {head}"]
    if errors:
        parts.append(f"{len(errors)} errored: " + ", ".join(errors))
    line = TARGETS["jit fwd+bwd"]
    fwd = [t for t in measured if t[1].startswith("jit fwd ") and t[2] > line]
    if fwd:
        parts.append(f"jit fwd alone above {line:g}× (not a target): " + fmt(fwd))
    return "; ".join(parts)


def median_results(runs: list[dict]) -> dict:
    """Several runs' results as one: each ratio the median over the runs (``ratios_of_runs`` beside it);
    a loss that errored in any run keeps the error."""
    out: dict = {}
    for run in runs:
        for name, rec in run.items():
            dst = out.setdefault(name, {})
            if "error" in rec:
                dst["error"] = rec["error"]
                continue
            for shape, s in rec.get("shapes", {}).items():
                for key, m in s.items():
                    dst.setdefault("shapes", {}).setdefault(shape, {}).setdefault(
                        key, {"ratios_of_runs": []})["ratios_of_runs"].append(m["ratio"])
            for key in ("eager", "compile"):
                if key in rec:
                    dst.setdefault(key, {"ratios_of_runs": []})["ratios_of_runs"].append(rec[key]["ratio"])
    for rec in out.values():
        measures = [m for s in rec.get("shapes", {}).values() for m in s.values()]
        measures += [rec[k] for k in ("eager", "compile") if k in rec]
        for m in measures:
            m["ratio"] = float(np.median(m["ratios_of_runs"]))
    return out


def print_medians(med: dict, n_runs: int, who: str) -> None:
    """One row per loss: every ratio's median over the runs, the lowest–highest in brackets."""
    shapes = list(dict.fromkeys(s for rec in med.values() for s in rec.get("shapes", {})))
    cols = [("shapes", s, "fwd_bwd", f"{s} fwd+bwd") for s in shapes]
    cols += [("shapes", s, "fwd", f"{s} fwd") for s in shapes]
    cols += [(k, None, None, k) for k in ("eager", "compile")]
    table(f"Medians of {n_runs} runs, fnnet / {who} (each: median, and in brackets the lowest–highest of "
          "the runs)", ["loss", *(c[3] for c in cols)])
    for name, rec in med.items():
        if "error" in rec:
            row([name, f"ERROR: {rec['error']}"] + [""] * (len(cols) - 1))
            continue
        cells = []
        for top, shape, key, _ in cols:
            m = rec.get(top, {}).get(shape, {}).get(key) if shape else rec.get(top)
            cells.append(_timing.median_cell(m) if m else "—")
        row([name, *cells])


def run_many(cfg, argv: list[str]) -> int:
    """``--runs K``: the benchmark with the same options in K fresh processes, then the medians."""
    runs, metas, status = _timing.fresh_runs("losses", argv, cfg.runs)
    if status != 0:
        return status
    med = median_results(runs)
    print_medians(med, cfg.runs, metas[0]["competitor"].split()[0])
    t = targets_line(med)
    if cfg.json is not None:
        cfg.json.parent.mkdir(parents=True, exist_ok=True)
        cfg.json.write_text(json.dumps({"meta": metas, "runs": runs, "results": med, "targets": t}, indent=1))
    print()
    print(t, flush=True)
    return 0


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks losses", description=__doc__.strip().splitlines()[0])
    p.add_argument("--quick", action="store_true", help="shape 256x64, 5 repeats, 2 compile repeats (< 60 s)")
    p.add_argument("--against", choices=("auto", "optax", "reference"), default="auto",
                   help="the competitor (default auto: optax when installed, else each loss's .reference)")
    p.add_argument("--losses", type=lambda s: [o for o in s.split(",") if o], default=None,
                   help=f"comma-separated subset of {','.join(LOSSES)}")
    p.add_argument("--shapes", type=lambda s: [tuple(int(v) for v in o.split("x")) for o in s.split(",") if o],
                   default=None, help="batch x classes, comma-separated (default 1024x1024,4096x1000,256x10)")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds of the jit measures (default 60)")
    p.add_argument("--small-repeats", type=int, default=None, help="timed rounds of the eager call (default 400)")
    p.add_argument("--compile-repeats", type=int, default=None, help="compile rounds (default 5)")
    p.add_argument("--json", type=pathlib.Path, default=None, help="write the raw numbers here")
    p.add_argument("--verbose", action="store_true", help="print the traceback of a loss that fails")
    p.add_argument("--runs", type=int, default=1,
                   help="run the benchmark in this many fresh processes, one after the other, and read "
                        "the targets on each ratio's median (default 1: this process only)")
    cfg = p.parse_args(argv)
    q = cfg.quick
    defaults = {"losses": list(LOSSES), "shapes": list(QUICK_SHAPES if q else SHAPES),
                "repeats": 5 if q else 60, "small_repeats": 50 if q else 400, "compile_repeats": 2 if q else 5}
    for k, v in defaults.items():
        if getattr(cfg, k) is None:
            setattr(cfg, k, v)
    unknown = [o for o in cfg.losses if o not in LOSSES]
    if unknown:
        p.error(f"unknown loss(es) {unknown}; known: {', '.join(LOSSES)}")
    if cfg.runs < 1:
        p.error(f"--runs must be at least 1, got {cfg.runs}")
    return cfg


def main(argv=None) -> int:
    cfg = parse_args(argv)
    if cfg.runs > 1:
        return run_many(cfg, list(sys.argv[1:] if argv is None else argv))
    who, theirs = competitor(cfg.against)
    start = time.perf_counter()
    dev = jax.devices()[0]
    meta = {"date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": "python -m benchmarks losses " + " ".join(sys.argv[1:] if argv is None else argv),
            "jax": jax.__version__, "backend": jax.default_backend(),
            "device": getattr(dev, "device_kind", str(dev)), "competitor": who,
            "fnnet_file": fnnet.__file__, "git_commit": _git_commit(),
            "shapes": [list(s) for s in cfg.shapes], "repeats": cfg.repeats}
    print(f"fnnet losses against {who}: {meta['date_utc']}, jax {meta['jax']}, {meta['backend']} "
          f"({meta['device']}), commit {meta['git_commit']}", flush=True)
    shapes = [f"{b}x{c}" for b, c in cfg.shapes]
    table(f"jit fwd+bwd and fwd, float32, fnnet / {who.split()[0]} (median of {cfg.repeats} interleaved rounds, "
          f"each side a block of calls of at least {JIT_BLOCK_SECONDS * 1e3:g} ms); "
          f"eager at {EAGER_SHAPE[0]}x{EAGER_SHAPE[1]} ({cfg.small_repeats} rounds); compile at {shapes[0]} "
          f"({cfg.compile_repeats} rounds)",
          ["loss", *(f"{s} fwd+bwd" for s in shapes), *(f"{s} fwd" for s in shapes),
           "fwd+bwd ms (fnnet / other)", "eager", "eager µs (fnnet / other)", "compile", "compile ms"])
    results: dict = {}
    for name in cfg.losses:
        rec: dict = {}
        with reported(rec, name, 4 + 2 * len(shapes), cfg):
            rec.update(measure(name, getattr(L, name), theirs(name), cfg))
            s = [rec["shapes"][k] for k in shapes]
            first, e, c = s[0]["fwd_bwd"], rec["eager"], rec["compile"]
            row([name, *(_r(v["fwd_bwd"]["ratio"]) for v in s), *(_r(v["fwd"]["ratio"]) for v in s),
                 f"{_ms(first['fnnet_s'])} / {_ms(first['jax_s'])}", _r(e["ratio"]),
                 f"{_us(e['fnnet_s'])} / {_us(e['jax_s'])}", _r(c["ratio"]),
                 f"{c['fnnet_s'] * 1e3:.0f} / {c['jax_s'] * 1e3:.0f}"])
        results[name] = rec
    meta["seconds"] = time.perf_counter() - start
    t = targets_line(results)
    if cfg.json is not None:
        cfg.json.parent.mkdir(parents=True, exist_ok=True)
        cfg.json.write_text(json.dumps({"meta": meta, "results": results, "targets": t}, indent=1))
    print(f"\ntotal {meta['seconds']:.0f} s")
    print(t, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
