"""Experiment 9: the error of a finite-difference derivative against the step h: the V-shaped curves.

For f(x) = exp(sin(x)) at x = 0.7 (f' = cos(x) exp(sin(x))), in float32 and float64 (ε = 2⁻²³, 2⁻⁵²):

* forward    D₊(h) = (f(x+h) − f(x))/h:             truncation |f''|h/2,   rounding ≈ 2ε|f|/h
  → the error is smallest near h* = 2√(ε|f|/|f''|) ∝ ε^(1/2), where it is ∝ ε^(1/2);
* central    D₀(h) = (f(x+h) − f(x−h))/(2h):        truncation |f'''|h²/6, rounding ≈ ε|f|/h
  → h* = (3ε|f|/|f'''|)^(1/3) ∝ ε^(1/3), error ∝ ε^(2/3);
* Richardson D_R(h) = (4D₀(h/2) − D₀(h))/3:          truncation O(h⁴) (the h² terms cancel),
  rounding ≈ 3ε|f|/h → h* ∝ ε^(1/5), error ∝ ε^(4/5);
* complex step D_i(h) = Im f(x + ih)/h:             truncation |f'''|h²/6 and *no subtraction*, so no
  rounding term grows as h → 0: the error falls to the rounding of f' itself
  (≲ ε|f'|) and stays there (down to h ≈ 1e-300 in float64; the grid here stops at 1e-20).

Left of the optimum rounding dominates (slope −1 on the log-log plot); right of it truncation (slope 1,
2, 4): the V. The step actually taken is the representable h' = (x + h) − x (so that the denominator
matches the numerator's points); the true derivative is computed in float64 from the dtype's x (for
float32, x = fl32(0.7)). Both dtypes are evaluated with numpy's float32/float64/complex64/complex128
arithmetic. The printed numbers: for each method and dtype, the measured best h and its error (the minimum of
the median error over half-decade windows of h: rounding makes single points jagged) against the
theoretical h* and its predicted error. At x = 0.7, f'' = (cos²x − sin x)e^(sin x) ≈ −0.11 is small, so
the forward difference's optimum sits at an unusually large h.

    .venv/bin/python experiments/gradcheck_steps.py [--quick]
"""
from __future__ import annotations

import numpy as np

try:
    from experiments import _common as C
except ImportError:
    import _common as C

REQUIRES = ("matplotlib",)
FIGURE = "gradcheck_steps.png"
X0 = 0.7
METHODS = ("forward", "central", "richardson", "complex step")
COMPLEX = {np.float32: np.complex64, np.float64: np.complex128}


def f(x):
    return np.exp(np.sin(x))


def derivatives(x: float):
    """f', f'', f''' of exp(sin x) at x (float64): f' = c e, f'' = (c² − s) e, f''' = (c³ − 3cs − c) e."""
    s, c, e = np.sin(x), np.cos(x), np.exp(np.sin(x))
    return c * e, (c * c - s) * e, (c ** 3 - 3 * c * s - c) * e


def estimates(h: np.ndarray, dtype) -> dict[str, np.ndarray]:
    """Each method's estimate of f'(x) at the steps h, in ``dtype`` arithmetic (float64 results)."""
    x = dtype(X0)
    h = h.astype(dtype)
    hp = (x + h) - x                           # the representable step actually taken
    half = (x + h / dtype(2)) - x
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        fwd = (f(x + hp) - f(x)) / hp
        cen = (f(x + hp) - f(x - hp)) / (dtype(2) * hp)
        cen_half = (f(x + half) - f(x - half)) / (dtype(2) * half)
        rich = (dtype(4) * cen_half - cen) / dtype(3)
        z = COMPLEX[dtype](x) + 1j * h.astype(COMPLEX[dtype])
        cstep = f(z).imag / h
    return {"forward": fwd, "central": cen, "richardson": rich, "complex step": cstep}


def theory(dtype) -> dict[str, tuple[float, float]]:
    """(h*, predicted error at h*) per method from the error models in the module docstring."""
    eps = float(np.finfo(dtype).eps)
    x = float(dtype(X0))
    fx = float(f(x))
    _d1, d2, d3 = derivatives(x)
    h_f = 2 * np.sqrt(eps * fx / abs(d2))
    h_c = (3 * eps * fx / abs(d3)) ** (1 / 3)
    return {
        "forward": (h_f, abs(d2) * h_f / 2 + 2 * eps * fx / h_f),
        "central": (h_c, abs(d3) * h_c ** 2 / 6 + eps * fx / h_c),
        # Richardson: the constant of its h⁴ term needs f⁽⁵⁾; only the scaling ε^(1/5) is marked.
        "richardson": (eps ** (1 / 5), float("nan")),
        "complex step": (float("nan"), float("nan")),
    }


def running_median(h: np.ndarray, e: np.ndarray, half_width: float = 0.25) -> np.ndarray:
    """The median of e over a window of ±``half_width`` decades of h around each point.

    Rounding makes the error curve jagged; a bare argmin picks a lucky cancellation. The median over a
    half-decade is the typical error at that step, and its minimum the typical best.
    """
    logh = np.log10(h)
    out = np.empty_like(e)
    for i, c in enumerate(logh):
        w = e[np.abs(logh - c) <= half_width]
        out[i] = np.nanmedian(w) if np.isfinite(w).any() else np.nan
    return out


def run(*, n: int = 400) -> dict:
    h = np.geomspace(1e-20, 1.0, n)
    h_complex = h
    out = {}
    for dtype in (np.float32, np.float64):
        name = np.dtype(dtype).name
        truth = derivatives(float(dtype(X0)))[0]
        est = estimates(h, dtype)
        est["complex step"] = estimates(h_complex, dtype)["complex step"]
        errs = {}
        for m, v in est.items():
            e = np.abs(v.astype(np.float64) - truth)
            errs[m] = np.where(np.isfinite(e), e, np.nan)
        best = {}
        for m, e in errs.items():
            hh = h_complex if m == "complex step" else h
            typical = running_median(hh, e)
            i = int(np.nanargmin(typical))
            best[m] = (float(hh[i]), float(typical[i]))
        floor = float(np.nanmax(errs["complex step"][h_complex <= 1e-9]))
        out[name] = {"complex_floor": floor, "h": h, "h_complex": h_complex, "err": errs, "best": best, "theory": theory(dtype),
                     "eps": float(np.finfo(dtype).eps), "truth": truth}
    return out


def report(result) -> None:
    print(f"f(x) = exp(sin x) at x = {X0}: typical |D(h) - f'(x)| (median over half a decade of h) at its "
          "best h, against the theory")
    for name, r in result.items():
        eps = r["eps"]
        print(f"  {name} (eps = {eps:.2e}; eps^(1/2) = {eps ** 0.5:.1e}, eps^(1/3) = {eps ** (1 / 3):.1e}, "
              f"eps^(1/5) = {eps ** 0.2:.1e})")
        print(f"    {'complex step':<13} max error over all h <= 1e-9: {r['complex_floor']:.1e} "
              f"({r['complex_floor'] / eps:.2g} eps, |f'| = {abs(r['truth']):.2f}): flat, no V")
        for m in METHODS[:-1]:
            h_best, e_best = r["best"][m]
            h_th, e_th = r["theory"][m]
            th = "" if np.isnan(h_th) else f"   theory h* {h_th:.1e}" + ("" if np.isnan(e_th) else f", error {e_th:.1e}")
            print(f"    {m:<13} best h {h_best:.1e}  error {e_best:.1e} ({e_best / eps:.2g} eps){th}")


def plot(result, path) -> None:
    plt = C.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    colors = {"forward": "#d62728", "central": "#1f77b4", "richardson": "#2ca02c", "complex step": "#9467bd"}
    for ax, (name, r) in zip(axes, result.items()):
        eps = r["eps"]
        for m in METHODS:
            hh = r["h_complex"] if m == "complex step" else r["h"]
            e = np.maximum(r["err"][m], 1e-18)  # exact hits (error 0) drawn at the bottom edge, not lost
            label = (f"{m}: ≤ {r['complex_floor']:.1e} for all h ≤ 1e-9" if m == "complex step"
                     else f"{m}: best {r['best'][m][1]:.1e} at h={r['best'][m][0]:.0e}")
            ax.loglog(hh, e, color=colors[m], lw=1.0, label=label)
        for power, label, ls in ((1 / 2, "ε^(1/2)", "--"), (1 / 3, "ε^(1/3)", ":"), (1 / 5, "ε^(1/5)", "-.")):
            ax.axvline(eps ** power, color="k", lw=0.8, ls=ls)
            ax.text(eps ** power, 3e1, label, rotation=90, fontsize=8, ha="right", va="top")
        for m in ("forward", "central"):
            h_th, e_th = r["theory"][m]
            ax.plot([h_th], [e_th], marker="*", ms=11, color=colors[m], mec="k", mew=0.5)
        ax.axhline(eps, color="grey", lw=0.6)
        ax.text(2e-20, eps * 1.5, "ε", fontsize=8, color="grey")
        ax.set_xlim(1e-20, 1.0)
        ax.set_ylim(1e-18, 1e2)
        ax.set_xlabel("step h")
        ax.set_title(f"{name}: |D(h) − f′(0.7)|, f = exp(sin x)  (★ theoretical optimum;\n"
                     "error exactly 0 drawn at the bottom edge; gaps: x + h rounds to x)")
        ax.legend(fontsize=7, loc="upper left")
    axes[0].set_ylabel("absolute error")
    fig.tight_layout()
    C.save(fig, path)


def main(argv=None) -> int:
    args = C.parser(__doc__).parse_args(argv)
    result = run(n=200) if args.quick else run()
    report(result)
    plot(result, args.out / FIGURE)
    return 0


if __name__ == "__main__":
    C.cli(main)
