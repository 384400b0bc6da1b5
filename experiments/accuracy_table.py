"""Max error in ULP against mpmath per smooth activation × dtype × (value, derivative), fnnet beside
jax.nn (jax.nn's derivative is jax.grad(jax.nn.X)). The ops, their oracles, the grid and the counting
rules are the oracle records of tests/oracles.py (every formula switch of fnnet is on the grid), which
tests/test_accuracy.py asserts; this script uses a 4× denser grid and 400 significant digits (the
test: 120).

    python -m experiments.accuracy_table [--quick] [--dtypes float32,float64] [--dps 400]

--quick: the test's grid. Targets: 4 ULP (float64), 8 ULP (float32).

tests/oracles.py is loaded from its file (tests/ is not a package and is not put on sys.path): the
records are the tests' data, and the test suite, not this script, is their first reader.
"""
import argparse
import importlib.util
import pathlib
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)


def load_oracles():
    """tests/oracles.py as a module (it imports fnnet, jax, numpy and mpmath only)."""
    path = pathlib.Path(__file__).resolve().parents[1] / "tests" / "oracles.py"
    spec = importlib.util.spec_from_file_location("fnnet_test_oracles", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # the importlib recipe for a source file (dataclasses look it up)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    O = load_oracles()
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--dtypes", default=",".join(O.ACCURACY_DTYPES))
    ap.add_argument("--dps", type=int, default=400)
    args = ap.parse_args(argv)
    density = 1 if args.quick else 4
    dtypes = args.dtypes.split(",")
    t0 = time.time()
    print(f"mpmath at {args.dps} digits, grid density {density}, {jax.devices()[0].platform}, jax {jax.__version__}")
    print("max ULP error: fnnet (jax.nn); targets ≤ 4 (float64), ≤ 8 (float32)\n")
    cols = [f"{d.replace('float', 'f')} {w}" for d in dtypes for w in ("value", "derivative")]
    print("| op | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    worst = {d: 0.0 for d in dtypes}
    for label, row in O.ulp_rows().items():
        cells = []
        for dtype in dtypes:
            for which in (0, 1):
                _, ours = O.ulp_errors(row.fn, label, which, dtype, density, args.dps)
                _, theirs = O.ulp_errors(row.row.jax_nn, label, which, dtype, density, args.dps)
                worst[dtype] = max(worst[dtype], float(ours.max()))
                cells.append(f"{ours.max():.3g} ({theirs.max():.2g})")
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)
    print("\nworst fnnet: " + ", ".join(f"{d} {v:.3g} ULP (target {O.TARGET_ULP[d]:g})" for d, v in worst.items())
          + f"; {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
