"""Time fnnet.gradcheck against torch.autograd.gradcheck (if torch is importable) and check_grads.

    python experiments/bench_gradcheck.py            # N = 3e4 (auto), N = 1e4 (full)
    python experiments/bench_gradcheck.py --quick    # N = 3e3 (auto), N = 1e3 (full)

1. Default mode on sum(tanh(x)^2) of N float32 inputs whose custom VJP has one entry (index N // 2
   - 3) off by 1e-3 relative: must be caught and named. Timed cold (first call in the process, JAX
   compilation included) and warm (a second, identical check). torch's full gradcheck runs on the same
   function and bug in float64 (it is "designed for double"), and its fast mode too.
2. Full mode at N_full on the correct function, against torch's full mode at the same N.
Prints a table; docs/gradcheck.md records the figures and this command.

    python experiments/bench_gradcheck.py --before b4fd3dc --repeats 5
        before/after of the default mode (N = 3e4, one entry off 1e-3): fnnet.check at git revision
        REV (extracted to a temporary package) against the working tree, each timed in a fresh
        process (first call = cold, compilation included; a repeat call on the same f; a call on a
        fresh f of the same shapes), processes interleaved, medians printed.
    python experiments/bench_gradcheck.py --throughput
        entries checked per second, auto and full mode, N = 1e3 and 1e4 (warm: a fresh f after one
        call on another f, so compilation is included but JAX's one-time start is not; interleaved
        repeats, medians).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.check import gradcheck


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
sys.path.insert(0, {exp!r})
{path_line}
import jax, jax.numpy as jnp
from bench_gradcheck import tanh_sq
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
    import json
    import os
    import subprocess
    import sys
    import tempfile

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    tmp = tempfile.mkdtemp(prefix="gradcheck_before_")
    pkg = "check_" + rev[:12]
    archive = subprocess.run(["git", "-C", root, "archive", rev, "fnnet/check"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
    os.rename(os.path.join(tmp, "fnnet", "check"), os.path.join(tmp, pkg))
    exp = os.path.join(root, "experiments")
    variants = {
        f"before ({rev[:7]})": CHILD.format(exp=exp, path_line=f"sys.path.insert(0, {tmp!r})", pkg=pkg, n=n),
        "after (working tree)": CHILD.format(exp=exp, path_line="", pkg="fnnet.check", n=n),
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


def throughput(sizes, repeats: int):
    """Entries checked per second, auto and full mode, on sum(tanh(x)^2) (correct rule), float32."""
    # One call first so that JAX's one-time start (backend, eager op compilations) is not counted.
    gradcheck(tanh_sq(), jax.numpy.ones(10, jnp.float32))
    cases = [(mode, n) for n in sizes for mode in ("auto", "full")]
    times = {c: [] for c in cases}
    for _ in range(repeats):
        for mode, n in cases:  # interleaved
            x = jax.random.normal(jax.random.PRNGKey(n), (n,), jnp.float32)
            _, t = timed(lambda x=x, mode=mode: gradcheck(tanh_sq(), x, mode=mode))  # fresh f: compiles
            times[(mode, n)].append(t)
    print(f"gradcheck throughput (fresh f per call, compilation included), medians of {repeats}, "
          f"jax {jax.__version__} {jax.default_backend()}")
    print(f"{'mode':<6} {'N':>7} {'median s':>9} {'entries/s':>11}")
    for (mode, n), ts in times.items():
        t = float(np.median(ts))
        print(f"{mode:<6} {n:>7} {t:>9.3f} {n / t:>11.0f}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", metavar="REV", help="before/after of the default mode against git REV")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--throughput", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--full-n", type=int, default=None)
    parser.add_argument("--skip-torch-auto", action="store_true", help="skip torch's full mode at N (slow)")
    args = parser.parse_args()
    n = args.n or (3_000 if args.quick else 30_000)
    if args.before:
        before_after(args.before, n, args.repeats)
        return
    if args.throughput:
        throughput([1_000, 10_000], args.repeats)
        return
    n_full = args.full_n or (1_000 if args.quick else 10_000)
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
        if not args.skip_torch_auto:
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

    import os

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, torch {'yes' if have_torch else 'not installed'}")
    print(f"{'check':<52} {'verdict':<8} {'named':<12} {'cold s':>8} {'warm s':>8}")
    for name, verdict, named, cold, warm in rows:
        print(f"{name:<52} {verdict:<8} {named:<12} {cold:>8.2f} {warm:>8.2f}")
    print(f"\nfnnet report for the N={n} case:\n{auto_report}")


if __name__ == "__main__":
    main()
