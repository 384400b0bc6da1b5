"""Generate the constant tables of fnnet/activations/_smooth.py with mpmath (50 digits) and print them.

    python -m experiments.smooth_constants

* Root expansions. Where a derivative passes through zero at r (silu' at −1.2785, gelu' at −0.752 in both
  forms) its usual formula cancels near r. There fnnet evaluates f'(x) (silu) or the factor of f' that
  vanishes (gelu: g of σ(2u)·g and of φ(x)·g; a fit of f' itself would be small at the window's far
  edge, where Horner's sum of O(1) terms loses digits) as d·Q(d) + c0 with d = x − r_h
  (r_h: r rounded to the dtype; x − r_h is exact near r by Sterbenz), Q a Chebyshev fit of g(r + d)/d on
  the window lo ≤ d ≤ hi (relative error far below the dtype's ε), and c0 = f'(r_h) ≈ −(r − r_h)·Q(0) the
  value at r_h, which carries r's low bits. The window is where the usual formula's cancellation factor
  exceeds ~1.5 (printed below).
* erfcx. gelu's erf form needs erfc(z) = e^{−z²}·erfcx(z), z = |x|/√2, for |x| up to 39 (float64) or 15
  (float32). With w = |x| and K = 4: G(t) = erfcx(z)·(w + K), t = (w − K)/(w + K) ∈ [−1, 1), is a
  smooth function of t, fitted (Chebyshev, then monomials in τ = t − ½ for Horner: its rounding errors
  stay within 1.5·G) to relative error below the dtype's ε; then erfcx(z) = G/(w + K) with
  τ = 2w·r − 3/2, r = 1/(w + K). Working in w avoids rounding z (erfcx's relative error is z's at large
  z). The rounding of τ (ε/2 near w = 0, where dw/dτ = K/2) costs erfcx ~(K/2)(ε/2)(2/√π)/√2 relative:
  K = 4 keeps that under ε while the fit converges fast; an error of r cancels between G and 1/(w + K).
"""
import math

import mpmath
import numpy as np

mp = mpmath.mp
mp.dps = 50


def sig(v):
    return 1 / (1 + mpmath.exp(-v))


def fit_root(fprime, r, lo, hi, deg):
    """Q with f'(r + d) = d·Q(d) on [lo, hi]; (monomial coefficients low → high, max relative error)."""
    def q(d):
        d = d if abs(d) > mpmath.mpf(10) ** -30 else mpmath.mpf(10) ** -30
        return fprime(r + d) / d
    poly, _ = mpmath.chebyfit(q, [lo, hi], deg + 1, error=True)
    rel = max(abs(mpmath.polyval(poly, d) / q(d) - 1) for d in mpmath.linspace(lo, hi, 301))
    return [float(c) for c in poly[::-1]], float(rel)


def dtype_const(v, dtype):
    return mpmath.mpf(float(np.asarray(v, dtype)))


def gelu_tanh_prime(dtype):
    """The bracket g of gelu' = σ(2u)·g, g = 1 + x·2u'·σ(−2u) (σ(2u) itself never cancels)."""
    c1, c2 = dtype_const(math.sqrt(2 / math.pi), dtype), dtype_const(0.044715, dtype)
    def f(x):
        u2 = 2 * c1 * (x + c2 * x**3)
        return 1 + x * 2 * c1 * (1 + 3 * c2 * x**2) * sig(-u2)
    def ratio(x):  # cancellation factor of σ(2u)(1 + x·2u'·σ(−2u))
        u2 = 2 * c1 * (x + c2 * x**3)
        a = x * 2 * c1 * (1 + 3 * c2 * x**2) * sig(-u2)
        return abs(a) / abs(1 + a)
    return f, ratio


def gelu_erf_prime(dtype):
    """The bracket g of gelu' = φ(x)·g, g = x + Φ(x)/φ(x) (φ itself never cancels)."""
    def f(x):
        return x + mpmath.erfc(-x / mpmath.sqrt(2)) / 2 / mpmath.npdf(x)
    def ratio(x):
        return abs(x) / abs(f(x))
    return f, ratio


def silu_prime(dtype):
    def f(x):
        return sig(x) * (1 + x * sig(-x))
    def ratio(x):  # e(1 + x + e)/(1 + e)², e = e^x: the sum (1 + x) + e
        e = mpmath.exp(x)
        return e / abs(1 + x + e)
    return f, ratio


# (name, derivative factory, initial root, window (lo, hi) of d = x − r, degree per dtype)
ROOTS = [
    ("SILU", silu_prime, -1.278, (-0.3, 0.3), {"float32": 6, "float64": 12}),
    ("GELU_TANH", gelu_tanh_prime, -0.752, (-2.5, 0.45), {"float32": 12, "float64": 27}),
    ("GELU_ERF", gelu_erf_prime, -0.752, (-1.5, 0.45), {"float32": 10, "float64": 18}),
]

ERFCX_K = 4  # in units of |x| = √2·z (exactly representable: no rounding of z = |x|/√2 enters)
ERFCX = {"float32": (15.0, 11), "float64": (39.0, 26)}  # (|x|_max, degree)


ERFCX_T0 = 0.5  # the expansion's centre in t: Σ|c_k τ^k| ≤ 1.5·G (4 to 8 about t = 0)


def erfcx_fit(wmax, deg):
    """G(t) = erfcx(|x|/√2)·(|x| + K), t = (|x| − K)/(|x| + K), as a polynomial in τ = t − ½ on
    [−1, t(wmax)] − ½ (monomials about t = ½: Horner's rounding errors stay within 1.4·G)."""
    K = mpmath.mpf(ERFCX_K)
    t0 = mpmath.mpf(ERFCX_T0)
    tmax = (wmax - K) / (wmax + K)

    def G(tau):
        t = tau + t0
        w = K * (1 + t) / (1 - t)
        z = w / mpmath.sqrt(2)
        return mpmath.exp(z * z) * mpmath.erfc(z) * (w + K)

    poly, _ = mpmath.chebyfit(G, [-1 - t0, tmax - t0], deg + 1, error=True)
    taus = mpmath.linspace(-1 - t0, tmax - t0, 401)
    rel = max(abs(mpmath.polyval(poly, tau) / G(tau) - 1) for tau in taus)
    amp = max(sum(abs(c) * abs(tau) ** k for k, c in enumerate(poly[::-1])) / G(tau) for tau in taus)
    return [float(c) for c in poly[::-1]], float(rel), float(amp)


def _tuple(values, indent=8, width=100):
    """A tuple literal wrapped to ``width`` columns."""
    lines, line = [], " " * indent
    for v in values:
        item = repr(v) + ", "
        if len(line) + len(item) > width:
            lines.append(line.rstrip())
            line = " " * indent
        line += item
    lines.append(line.rstrip())
    return "(\n" + "\n".join(lines) + "\n" + " " * (indent - 4) + ")"


def main():
    for name, factory, r0, (lo, hi), degs in ROOTS:
        print(f"_{name}_ROOT = {{")
        for dtype, deg in degs.items():
            f, ratio = factory(dtype)
            r = mpmath.findroot(f, r0)
            rh = float(np.asarray(float(r), dtype))
            coeffs, rel = fit_root(f, r, lo, hi, deg)
            c0 = float(f(mpmath.mpf(rh)))
            edge = max(ratio(r + lo), ratio(r + hi))
            print(f"    # root {mpmath.nstr(r, 25)}; fit relative error {rel:.2g}; "
                  f"cancellation at the edges {float(edge):.2f}")
            print(f"    {dtype!r}: ({rh!r}, {c0!r}, {(lo, hi)!r}, {_tuple(coeffs, 12)}),")
        print("}")
    print("_ERFCX = {")
    for dtype, (zmax, deg) in ERFCX.items():
        coeffs, rel, size = erfcx_fit(zmax, deg)
        print(f"    # |x| ≤ {zmax}: relative error {rel:.2g}; max Σ|c_k τ^k|/G = {size:.3g}")
        print(f"    {dtype!r}: ({zmax!r}, {_tuple(coeffs, 12)}),")
    print("}")


if __name__ == "__main__":
    main()
