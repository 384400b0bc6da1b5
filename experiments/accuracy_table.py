"""Max error in ULP against mpmath (60 digits) per smooth activation × dtype × (value, derivative),
fnnet beside jax.nn (jax.nn's derivative is jax.grad(jax.nn.X)). The oracle, grid and counting rules
are those of tests/test_accuracy.py (module docstring); this script uses a 4× denser grid.

    .venv/bin/python experiments/accuracy_table.py [--quick]     (--quick: the test's grid)
"""
import argparse
import os
import sys

import jax

jax.config.update("jax_enable_x64", True)
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import test_accuracy as A  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    density = 1 if ap.parse_args().quick else 4
    print("| op | f64 value | f64 derivative | f32 value | f32 derivative |")
    print("|---|---|---|---|---|")
    for name, (fn, static, jfn, *_rest) in A.OPS.items():
        cells = []
        for dtype in A.DTYPES:
            for which in (0, 1):
                _, ours = A.ulp_errors(fn, static, name, which, dtype, density)
                _, theirs = A.ulp_errors(jfn, {}, name, which, dtype, density)
                cells.append(f"{ours.max():.3g} ({theirs.max():.2g})")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
