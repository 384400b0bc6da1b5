"""Experiment 3: tanh(z) = 2σ(2z) − 1 to machine precision, and so do their derivatives.

Claim. σ(2z) = 1/(1 + e^(−2z)), so 2σ(2z) − 1 = (1 − e^(−2z))/(1 + e^(−2z)) = tanh(z): tanh is a
sigmoid rescaled to (−1, 1) and stretched by 2. Differentiating, tanh'(z) = 4σ'(2z) = 4σ(2z)σ(−2z),
which is sech²(z) = 1 − tanh²(z).

Measured, in float32 and float64, on z ∈ [−12, 12] (beyond, both forms are ±1 in float64 and their
derivatives are below 1e-9): fnnet.tanh against 2·fnnet.sigmoid(2z) − 1, and their derivatives (each by
``jax.grad``, i.e. by fnnet's hand rules with ``exact_tails=True``: tanh' = 4e/(1 + e)², e = e^(−2|z|);
the sigmoid form's 4σ(2z)σ(−2z)), against each other and against the true values (mpmath, 30 digits).
(The default rules read the rounded output, which is ±1 in the tails: lean in memory, exact near 0.)

* The absolute difference, in units of ε (the spacing of floats at 1: the ULP at the largest value
  either form takes). This is the sense in which the identity holds "to machine precision".
* The relative error of each form in ULPs of the true value, over |z| from 1e-8 to 12: fnnet.tanh stays
  within a few ULP everywhere; 2σ(2z) − 1 loses all relative accuracy as z → 0 (σ(2z) ≈ ½ + z/2 is
  rounded at the spacing of ½, then ½ is subtracted: catastrophic cancellation), so the identity is a
  statement about absolute, not relative, error. The derivative form 4σ(2z)σ(−2z) has no subtraction
  and is accurate in relative terms everywhere, the tails included. In fnnet the two derivative rules
  are in fact bitwise equal: σ'(x) is written e/(1 + e)² with e = e^(−|x|), so 4σ'(2z) performs the
  same operations as tanh's 4e/(1 + e)² with e = e^(−2|z|) (``fnnet/activations/_smooth.py``).

    .venv/bin/python -m experiments.tanh_sigmoid_identity [--quick]
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from experiments import _common as C

REQUIRES = ("matplotlib", "mpmath")
FIGURE = "tanh_sigmoid_identity.png"
DTYPES = ("float32", "float64")


def forms(dtype):
    """The four functions: tanh, 2σ(2z) − 1, and their derivatives by jax.grad (fnnet's hand rules)."""
    import fnnet

    def via_sigmoid(z, exact_tails=False):
        two = jnp.asarray(2, z.dtype)
        return two * fnnet.sigmoid(two * z, exact_tails=exact_tails) - jnp.asarray(1, z.dtype)

    # The derivatives with the tail-exact rules (exact_tails=True: from z, not from the rounded output,
    # which is ±1 in the tails); the lean default reads the output and loses the tails' relative accuracy.
    d_tanh = jax.vmap(jax.grad(lambda z: fnnet.tanh(z, exact_tails=True)))
    d_via_sigmoid = jax.vmap(jax.grad(lambda z: via_sigmoid(z, exact_tails=True)))
    return jax.jit(fnnet.tanh), jax.jit(via_sigmoid), jax.jit(d_tanh), jax.jit(d_via_sigmoid)


def truth(z: np.ndarray):
    """tanh(z) and sech²(z) to 30 digits (mpmath), rounded to float64 (exact to ½ ULP of float64)."""
    import mpmath

    with mpmath.workdps(30):
        t = np.array([float(mpmath.tanh(mpmath.mpf(float(v)))) for v in z])
        d = np.array([float(mpmath.sech(mpmath.mpf(float(v))) ** 2) for v in z])
    return t, d


def ulps(err, ref, dtype):
    """|err| in ULPs of the true value ``ref`` in ``dtype`` (the spacing of floats at |ref|)."""
    return np.abs(err) / np.spacing(np.abs(ref).astype(dtype)).astype(np.float64)


def run(*, n: int = 20001, n_truth: int = 4001, zmax: float = 12.0) -> dict:
    out = {}
    for name in DTYPES:
        dt = np.dtype(name)
        eps = float(np.finfo(dt).eps)
        with C.float64():
            z = np.linspace(-zmax, zmax, n).astype(dt)
            # Relative error over |z| from 1e-8 to zmax (both signs give the same by symmetry).
            zr = np.geomspace(1e-8, zmax, n_truth).astype(dt)
            f_t, f_s, d_t, d_s = forms(dt)
            zj, zrj = jnp.asarray(z), jnp.asarray(zr)
            a, b = np.asarray(f_t(zj), np.float64), np.asarray(f_s(zj), np.float64)
            da, db = np.asarray(d_t(zj), np.float64), np.asarray(d_s(zj), np.float64)
            ra, rb = np.asarray(f_t(zrj), np.float64), np.asarray(f_s(zrj), np.float64)
            rda, rdb = np.asarray(d_t(zrj), np.float64), np.asarray(d_s(zrj), np.float64)
        t, dtrue = truth(zr.astype(np.float64))
        out[name] = {
            "eps": eps, "z": z.astype(np.float64), "zr": zr.astype(np.float64),
            "diff": np.abs(a - b) / eps,            # |tanh − (2σ(2z) − 1)| / ε
            "ddiff": np.abs(da - db) / eps,         # |tanh' − 4σ(2z)σ(−2z)| / ε
            "rel_tanh": ulps(ra - t, t, dt), "rel_sig": ulps(rb - t, t, dt),
            "rel_dtanh": ulps(rda - dtrue, dtrue, dt), "rel_dsig": ulps(rdb - dtrue, dtrue, dt),
        }
    return out


def report(result) -> None:
    print("tanh(z) vs 2*sigmoid(2z) - 1 on [-12, 12]: max absolute difference in units of eps (ULP of 1)")
    for name, r in result.items():
        same = "  (bitwise equal)" if r["ddiff"].max() == 0 else ""
        print(f"  {name}: values {r['diff'].max():.2f} eps ({r['diff'].max() * r['eps']:.2e}),  "
              f"derivatives {r['ddiff'].max():.2f} eps ({r['ddiff'].max() * r['eps']:.2e}){same}")
    print("relative error vs mpmath, in ULPs of the true value, |z| in [1e-8, 12]: max (median)")
    for name, r in result.items():
        cells = [f"{k[4:]} {r[k].max():.3g} ({np.median(r[k]):.2g})"
                 for k in ("rel_tanh", "rel_sig", "rel_dtanh", "rel_dsig")]
        print(f"  {name}: " + ",  ".join(cells))


def _binned_max(x, y, k):
    """Every k-th point's bin: mean x, max y (the worst case stays visible when the curve is thinned)."""
    m = len(x) // k * k
    return x[:m].reshape(-1, k).mean(1), y[:m].reshape(-1, k).max(1)


def plot(result, path) -> None:
    plt = C.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    colors = {"float32": "#d62728", "float64": "#1f77b4"}
    for name, r in result.items():
        zs, d = _binned_max(r["z"], r["diff"], max(1, len(r["z"]) // 800))
        axes[0].plot(zs, d, color=colors[name], lw=0.8, label=f"{name}: max {r['diff'].max():.2f} ε")
        k = max(1, len(r["zr"]) // 200)
        for key, ls, label in (("rel_dtanh", "-", "tanh′"), ("rel_dsig", "--", "4σ(2z)σ(−2z)")):
            x, y = _binned_max(r["zr"], r[key], k)
            axes[1].semilogx(x, y, color=colors[name], lw=0.9, ls=ls, label=f"{label}, {name}")
        for key, ls, label in (("rel_sig", "-", "2σ(2z)−1"), ("rel_tanh", ":", "fnnet.tanh")):
            x, y = _binned_max(r["zr"], np.maximum(r[key], 1e-2), k)
            axes[2].loglog(x, y, color=colors[name], lw=0.9, ls=ls, label=f"{label}, {name}")
    axes[0].set_title("|tanh(z) − (2σ(2z) − 1)| / ε")
    axes[0].set_xlabel("z")
    axes[0].set_ylabel("units of ε = ULP of 1")
    axes[0].legend(fontsize=8)
    axes[1].set_title("derivatives (hand rules, bitwise equal):\nrelative error vs mpmath, ULPs")
    axes[1].set_xlabel("|z|")
    axes[1].legend(fontsize=7)
    axes[2].set_title("values: relative error vs mpmath, ULPs\n(2σ(2z)−1 cancels as z → 0)")
    axes[2].set_xlabel("|z|")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    C.save(fig, path)


def main(argv=None) -> int:
    args = C.parser(__doc__).parse_args(argv)
    result = run(n=4001, n_truth=801) if args.quick else run()
    report(result)
    plot(result, args.out / FIGURE)
    return 0


if __name__ == "__main__":
    C.cli(main)
