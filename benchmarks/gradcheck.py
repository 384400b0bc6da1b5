"""Benchmark: the gradient checker's speed, and what it catches against torch's and jax's checkers.

    python -m benchmarks gradcheck                  # entries/s, auto and full mode, N = 1e3 and 1e4
    python -m benchmarks gradcheck --against        # vs torch.autograd.gradcheck and check_grads, N = 3e4
    python -m benchmarks gradcheck --against --quick               # N = 3e3 (auto), N = 1e3 (full)
    python -m benchmarks gradcheck --before b4fd3dc --repeats 5    # default mode, git REV vs this tree

**Throughput** (:func:`throughput`; also section 5 of ``python -m benchmarks``): entries checked per
second by :func:`fnnet.check.gradcheck` in auto and full mode on a custom-VJP ``sum(tanh(x)^2)``
(float32): a fresh f per call (its programs compiled, as for a new rule) and the same f again
(compiled programs reused from gradcheck's cache), interleaved rounds, medians.

**Against** (:func:`against`): 1. default mode on N float32 inputs whose custom VJP has one entry
(index N // 2 − 3) off by 1e-3 relative: must be caught and named. Timed cold (first call in the
process, JAX compilation included) and warm (a second, identical check). torch's full gradcheck runs on
the same function and bug in float64 (it is "designed for double"), and its fast mode too. 2. Full mode
at N_full on the correct function, against torch's full mode at the same N. docs/reference/gradcheck.md records
the figures.

**Before/after** (:func:`before_after`): default mode (N = 3e4, one entry off 1e-3), fnnet.check at git
revision REV (extracted to a temporary package) against the working tree, each timed in a fresh process
(first call = cold, compilation included; a repeat call on the same f; a call on a fresh f of the same
shapes), processes interleaved, medians printed.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.check import gradcheck

from benchmarks._timing import interleaved, median

ROOT = pathlib.Path(__file__).resolve().parents[1]


def tanh_sq(bad_index=None, rel=1e-3):
    @jax.custom_vjp
    def f(x):
        return jnp.sum(jnp.tanh(x) ** 2)

    def fwd(x):
        y = jnp.tanh(x)
        return jnp.sum(y**2), y

    def bwd(y, g):
        v = g * 2 * y * (1 - y**2)
        if bad_index is not None:
            v = v.at[bad_index].multiply(1 + rel)
        return (v,)

    f.defvjp(fwd, bwd)
    return f


def torch_tanh_sq(bad_index=None, rel=1e-3):
    import torch

    class TanhSq(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            y = torch.tanh(x)
            ctx.save_for_backward(y)
            return (y**2).sum()

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            v = g * 2 * y * (1 - y**2)
            if bad_index is not None:
                v = v.clone()
                v[bad_index] *= 1 + rel
            return v

    return TanhSq.apply


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def torch_check(f, x, fast):
    import torch

    try:
        ok = torch.autograd.gradcheck(f, (x,), fast_mode=fast, raise_exception=False)
    except Exception as err:  # noqa: BLE001
        return f"error {type(err).__name__}"
    return "pass" if ok else "FAIL"


CHILD = """
import json, sys, time
sys.path.insert(0, {root!r})
{path_line}
import jax, jax.numpy as jnp
from benchmarks.gradcheck import tanh_sq
from {pkg} import gradcheck
n = {n}
x = jax.random.normal(jax.random.PRNGKey(0), (n,), jnp.float32)
x.block_until_ready()
f = tanh_sq(n // 2 - 3)
out = {{}}
for label, fn in (("cold", f), ("repeat", f), ("fresh f", tanh_sq(n // 2 - 3))):
    t = time.perf_counter()
    r = gradcheck(fn, x)
    out[label] = time.perf_counter() - t
    out[label + " named"] = (r.worst_entries[0].where if r.worst_entries else "-") if not r.passed else "missed"
print(json.dumps(out))
"""


def before_after(rev: str, n: int, repeats: int):
    """Default mode, cold / repeat / fresh-f, at ``rev`` and in the working tree; fresh processes."""
    root = str(ROOT)
    tmp = tempfile.mkdtemp(prefix="gradcheck_before_")
    pkg = "check_" + rev[:12]
    archive = subprocess.run(["git", "-C", root, "archive", rev, "fnnet/check"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
    os.rename(os.path.join(tmp, "fnnet", "check"), os.path.join(tmp, pkg))
    variants = {
        f"before ({rev[:7]})": CHILD.format(root=root, path_line=f"sys.path.insert(0, {tmp!r})", pkg=pkg, n=n),
        "after (working tree)": CHILD.format(root=root, path_line="", pkg="fnnet.check", n=n),
    }
    results = {name: [] for name in variants}
    for _ in range(repeats):
        for name, code in variants.items():  # interleaved: both see the same machine load
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            results[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"default mode, sum(tanh(x)^2), N = {n}, one entry off 1e-3; {repeats} fresh processes per variant, "
          f"interleaved; medians (min-max); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'variant':<24} {'named':<16} {'first call s':>18} {'repeat, same f s':>20} {'fresh f s':>18}")
    for name, runs in results.items():
        def cell(key, runs=runs):
            v = np.array([r[key] for r in runs])
            return f"{np.median(v):.3f} ({v.min():.2f}-{v.max():.2f})"
        named = ",".join(sorted({r["cold named"] for r in runs} | {r["repeat named"] for r in runs}))
        print(f"{name:<24} {named:<16} {cell('cold'):>18} {cell('repeat'):>20} {cell('fresh f'):>18}")


def throughput(sizes=(1_000, 10_000), rounds: int = 3, out=print, progress=None) -> list[dict]:
    """Entries per second of gradcheck, auto and full mode; interleaved rounds, medians.

    One size at a time (its four competitors interleaved), its rows printed as soon as it is done.
    """
    out(f"  {'mode':<5} {'N':>6} {'fresh f s':>10} {'entries/s':>10} {'same f s':>9} {'entries/s':>10}")
    rows = []
    for n in sizes:
        x = jax.random.normal(jax.random.PRNGKey(n), (n,), jnp.float32)
        fns = {}
        for mode in ("auto", "full"):
            same = tanh_sq()
            fns[f"{mode} fresh"] = lambda x=x, mode=mode: gradcheck(tanh_sq(), x, mode=mode).passed and None
            fns[f"{mode} same"] = lambda x=x, mode=mode, f=same: gradcheck(f, x, mode=mode).passed and None
        if progress is not None:
            progress(f"N={n}: auto and full mode, fresh and cached, {rounds} rounds")
        times = interleaved(fns, rounds, min_seconds=0.0, progress=progress)
        for mode in ("auto", "full"):
            fresh, cached = median(times[f"{mode} fresh"]), median(times[f"{mode} same"])
            rows.append({"mode": mode, "n": n, "fresh_s": fresh, "same_s": cached})
            out(f"  {mode:<5} {n:>6} {fresh:>10.3f} {n / fresh:>10.0f} {cached:>9.3f} {n / cached:>10.0f}")
    return rows


def against(n: int, n_full: int, skip_torch_auto: bool = False) -> None:
    """fnnet.gradcheck against torch.autograd.gradcheck (if importable) and jax's check_grads, on
    ``sum(tanh(x)^2)`` with one entry of its VJP off 1e-3 (N = n), and full mode on the correct
    function (N = n_full). Prints a table and fnnet's report of the first case."""
    bad = n // 2 - 3
    try:
        import torch

        torch.set_num_threads(max(1, torch.get_num_threads()))
        have_torch = True
    except ImportError:
        have_torch = False

    rows = []
    x = jax.random.normal(jax.random.PRNGKey(0), (n,), jnp.float32)
    rep, cold = timed(lambda: gradcheck(tanh_sq(bad), x))
    auto_report, warm = timed(lambda: gradcheck(tanh_sq(bad), x))
    where = rep.worst_entries[0].where if rep.worst_entries else "-"
    rows.append((f"fnnet auto, N={n}, 1 entry off 1e-3", "FAIL" if not rep.passed else "pass", where, cold, warm))
    x_np = np.asarray(x, np.float64)
    if have_torch:
        xt = torch.tensor(x_np, requires_grad=True)
        if not skip_torch_auto:
            verdict, t_full = timed(lambda: torch_check(torch_tanh_sq(bad), xt, fast=False))
            rows.append((f"torch full (float64), N={n}, same bug", verdict, "-", t_full, float("nan")))
        verdict, t_fast = timed(lambda: torch_check(torch_tanh_sq(bad), xt, fast=True))
        rows.append((f"torch fast (float64), N={n}, same bug", verdict, "-", t_fast, float("nan")))
    try:
        from jax.test_util import check_grads

        def cg():
            try:
                check_grads(tanh_sq(bad), (x,), order=1, modes=["rev"])
                return "pass"
            except AssertionError:
                return "FAIL"

        verdict, t_cg = timed(cg)
        rows.append((f"jax check_grads (rev), N={n}, same bug", verdict, "-", t_cg, float("nan")))
    except ImportError:
        pass

    xf = jax.random.normal(jax.random.PRNGKey(1), (n_full,), jnp.float32)
    rep, cold = timed(lambda: gradcheck(tanh_sq(), xf, mode="full"))
    rep2, warm = timed(lambda: gradcheck(tanh_sq(), xf, mode="full"))
    rows.append((f"fnnet full, N={n_full}, correct", "pass" if rep.passed else "FAIL", "-", cold, warm))
    repb, _ = timed(lambda: gradcheck(jax.jit(tanh_sq(n_full // 3)), xf, mode="full"))
    named = repb.worst_entries[0].where if repb.worst_entries else "-"
    rows.append((f"fnnet full, N={n_full}, 1 entry off 1e-3, no reference", "pass" if repb.passed else "FAIL", named,
                 float("nan"), float("nan")))
    if have_torch:
        xt = torch.tensor(np.asarray(xf, np.float64), requires_grad=True)
        verdict, t_full = timed(lambda: torch_check(torch_tanh_sq(), xt, fast=False))
        rows.append((f"torch full (float64), N={n_full}, correct", verdict, "-", t_full, float("nan")))

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, torch {'yes' if have_torch else 'not installed'}")
    print(f"{'check':<52} {'verdict':<8} {'named':<12} {'cold s':>8} {'warm s':>8}")
    for name, verdict, named, cold, warm in rows:
        print(f"{name:<52} {verdict:<8} {named:<12} {cold:>8.2f} {warm:>8.2f}")
    print(f"\nfnnet report for the N={n} case:\n{auto_report}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks gradcheck", description=__doc__.splitlines()[0])
    p.add_argument("--against", action="store_true", help="against torch's gradcheck and jax's check_grads")
    p.add_argument("--before", metavar="REV", help="before/after of the default mode against git REV")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds (throughput, --before)")
    p.add_argument("--quick", action="store_true", help="--against: N = 3e3 and 1e3 instead of 3e4 and 1e4")
    p.add_argument("--n", type=int, default=None, help="--against, --before: N of the default-mode case")
    p.add_argument("--full-n", type=int, default=None, help="--against: N of the full-mode case")
    p.add_argument("--skip-torch-auto", action="store_true", help="--against: skip torch's full mode at N (slow)")
    args = p.parse_args(argv)
    n = args.n or (3_000 if args.quick else 30_000)
    if args.before:
        before_after(args.before, n, args.repeats)
    elif args.against:
        against(n, args.full_n or (1_000 if args.quick else 10_000), args.skip_torch_auto)
    else:
        print(f"gradcheck throughput, custom-VJP sum(tanh(x)^2) float32, jax {jax.__version__} "
              f"{jax.default_backend()}; fresh f = programs compiled, same f = cached; medians of "
              f"{args.repeats} interleaved rounds", flush=True)
        throughput(rounds=args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
