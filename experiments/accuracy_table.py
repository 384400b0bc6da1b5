"""Max error in ULP against mpmath per smooth activation × dtype × (value, derivative), fnnet beside
jax.nn (jax.nn's derivative is jax.grad(jax.nn.X)). The oracle, grid and counting rules are those of
tests/test_accuracy.py (module docstring: every formula switch of fnnet is on the grid); this script
uses a 4× denser grid and 400 significant digits (the test: 120).

    python experiments/accuracy_table.py [--quick] [--dtypes float32,float64] [--dps 400]

--quick: the test's grid. Targets: 4 ULP (float64), 8 ULP (float32).
"""
import argparse
import os
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import test_accuracy as A  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--dtypes", default=",".join(A.DTYPES))
    ap.add_argument("--dps", type=int, default=400)
    args = ap.parse_args()
    A.DPS = args.dps
    density = 1 if args.quick else 4
    dtypes = args.dtypes.split(",")
    t0 = time.time()
    print(f"mpmath at {args.dps} digits, grid density {density}, {jax.devices()[0].platform}, jax {jax.__version__}")
    print("max ULP error: fnnet (jax.nn); targets ≤ 4 (float64), ≤ 8 (float32)\n")
    cols = [f"{d.replace('float', 'f')} {w}" for d in dtypes for w in ("value", "derivative")]
    print("| op | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    worst = {d: 0.0 for d in dtypes}
    for name, (fn, static, jfn, *_rest) in A.OPS.items():
        cells = []
        for dtype in dtypes:
            for which in (0, 1):
                _, ours = A.ulp_errors(fn, static, name, which, dtype, density)
                _, theirs = A.ulp_errors(jfn, {}, name, which, dtype, density)
                worst[dtype] = max(worst[dtype], float(ours.max()))
                cells.append(f"{ours.max():.3g} ({theirs.max():.2g})")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    print("\nworst fnnet: " + ", ".join(f"{d} {v:.3g} ULP (target {A.TARGET_ULP[d]:g})" for d, v in worst.items())
          + f"; {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
