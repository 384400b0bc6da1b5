"""Accuracy of every smooth activation and its derivative against mpmath, in ULP of the exact result.

The measured ops, their exact functions, zero crossings and formula switches are their oracle records'
``accuracy`` rows (tests/oracles.py, which also holds the grid and the counting below, shared with
experiments/accuracy_table.py).

The exact value is computed with mpmath at DPS = 120 significant digits (cancellation in the oracle itself
is at most ~1e-20 relative on the grid, so ≥ 100 digits survive; experiments/accuracy_table.py uses 400
and finds the same errors), rounded to the dtype under test, and the
error of fnnet's result is measured in units in the last place of that exact value
(ulp(e) = 2^(⌊log₂|e|⌋ − p + 1), p = 53 or 24). The derivative measured is ``jax.grad`` of the public
function, i.e. the hand-written VJP.

Rules: exact results below the smallest normal number may flush to zero and are not counted;
points within a relative 1e-3 of a zero crossing of the measured function are excluded (relative error
has no meaning where the value passes through 0; the crossings are in the records and located with
mpmath.findroot). Targets: ≤ 4 ULP in float64, ≤ 8 ULP in float32.

What the exact function is, where the definition holds rounded constants: the tanh approximation of
GELU is defined by its constants √(2/π) and 0.044715; a float32 program holds their float32 roundings,
and in the left tail (gelu ≈ x·e^{2u}, |2u| up to ~100 in float32, ~700 in float64) a half-ULP change of a
constant in u moves the result by |2u|·½ε — up to hundreds of ULP. So the reference for
``gelu(approximate=True)`` in a dtype is the exact function with that dtype's roundings of the two
constants (what any implementation in that dtype computes). Every other op is measured against its
mathematical definition (SELU's λ and α to 30 digits).

The grid: magnitudes log-spaced from 1e-10 to 0.9 × the largest finite number, densest on [1e-2, 1e3]
where the branches and the tails' transitions lie, both signs (positive only where the support is:
log1mexp), plus points at relative distances 1e-7 … 1e-1 on both sides of every point where fnnet's
formulas switch (the records' switches: root-expansion windows, tail shifts, clips, branch thresholds),
cast to the dtype first (the exact value is taken at the cast input). Each op's grid is evaluated in one
jitted call.
"""
from __future__ import annotations

import numpy as np
import pytest

import oracles

DPS = 120
ROWS = oracles.ulp_rows()

# Measured misses of the target, each as (bound, cause): none at present. A miss would be listed here
# with the maximum measured on experiments/accuracy_table.py's 4× denser grid, rounded up, so that a
# regression still fails; the target is the bound otherwise.
KNOWN_MISSES: dict[tuple[str, int, str], tuple[float, str]] = {}

CASES = [pytest.param(n, w, d, id=f"{n}-{'value' if w == 0 else 'grad'}-{d}")
         for n in ROWS for w in (0, 1) for d in oracles.ACCURACY_DTYPES]


@pytest.mark.parametrize("name,which,dtype", CASES)
def test_ulp_error_against_mpmath(name, which, dtype):
    x, err = oracles.ulp_errors(ROWS[name].fn, name, which, dtype, dps=DPS)
    assert x.size > 50, f"{name}: only {x.size} points counted"
    worst = int(np.argmax(err))
    bound = KNOWN_MISSES.get((name, which, dtype), (oracles.TARGET_ULP[dtype],))[0]
    assert err[worst] <= bound, (
        f"{name} {'value' if which == 0 else 'derivative'} {dtype}: {err[worst]:.3g} ULP at x = {x[worst]!r}"
    )
