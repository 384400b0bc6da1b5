"""Time fnnet.gradcheck against torch.autograd.gradcheck (if torch is importable) and check_grads.

    python experiments/bench_gradcheck.py            # N = 3e4 (auto), N = 1e4 (full)
    python experiments/bench_gradcheck.py --quick    # N = 3e3 (auto), N = 1e3 (full)

1. Default mode on sum(tanh(x)^2) of N float32 inputs whose custom VJP has one entry (index N // 2
   - 3) off by 1e-3 relative: must be caught and named. Timed cold (first call in the process, JAX
   compilation included) and warm (a second, identical check). torch's full gradcheck runs on the same
   function and bug in float64 (it is "designed for double"), and its fast mode too.
2. Full mode at N_full on the correct function, against torch's full mode at the same N.
Prints a table; docs/gradcheck.md records the figures and this command.
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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--full-n", type=int, default=None)
    parser.add_argument("--skip-torch-auto", action="store_true", help="skip torch's full mode at N (slow)")
    args = parser.parse_args()
    n = args.n or (3_000 if args.quick else 30_000)
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
