"""Tolerances, derived from the dtype's rounding and the finite-difference error bar; detection power.

Rounding of a rule (standard model, ``fl(a op b) = (a op b)(1 + delta)``, ``|delta| <= u = eps/2``).
An entry ``v_i`` of a VJP computed in precision ``eps`` through a chain of ``D`` elementwise
operations has relative error ``<= D u``; a reduction of ``n`` terms ``t_k`` (pairwise, as XLA sums)
adds ``<= log2(n) u sum_k |t_k|``. The summed magnitude ``sum_k |t_k|`` is not observable from
outside the rule, so we bound it normwise: a backward-stable computation of a vector ``v`` has error
``<= c eps ||v||_inf`` (Higham, *Accuracy and Stability of Numerical Algorithms*, ch. 3). Together,

    b_i = SLACK * eps * (|v_i| + max_leaf |v|) + SLACK * noise_i,

with ``SLACK = 8`` rounding units (a rule up to ~16 operations deep, or 8 times an observed rounding)
and ``noise_i = |VJP_lowp - VJP_f64|_i``, the rule's own observed rounding error (the same rule run
with float64 inputs and cotangent: a wrong formula is wrong in both, so the difference holds no bug).
It covers cancelled sums, whose rounding is set by the size of the terms and is invisible in the
result; it is zero (dtype bound only, with a note) when f cannot run in float64. ``eps`` is the largest
eps among the leaf's dtype, its VJP's dtype and f's float output dtypes.

Finite-difference probe ``<u, v>`` against ``R`` (Richardson, error bar ``E``, rounding floor ``r``):

    |<v, d> - R| <= Z * sqrt(sum_i (b_i d_i)^2) + 2 E + r,       Z = 6.

The first term is a Hoeffding bound, not a worst case: the probe signs ``u_i = +-1`` are drawn
independently of the rounding errors ``rho_i`` (``|rho_i| <= b_i``), so
``P(|sum_i u_i rho_i h_i| > Z sigma) <= 2 exp(-Z^2/2) = 3e-8`` with ``sigma^2 = sum (b_i h_i)^2``.
This grows like ``sqrt(N)``, where a worst-case bound would grow like ``N`` and a fixed atol like
JAX's ``check_grads`` would not grow at all (jax#3130: it rejects a correct ``sum(tanh(x)^2)`` at
``N = 1e5`` in float32).

Detection power of ``k`` Rademacher probes. Let ``e`` be the rule's error. The probe sees
``<e, h u>``. If one entry has ``|e_j| h_j > tol``, then conditioning on every sign but ``u_j``, the
two values ``A +- e_j h_j`` cannot both lie in ``(-tol, tol)``; so each probe misses with probability
``<= 1/2`` and all ``k`` miss with probability ``<= 2^-k``. A *single* wrong entry is never missed:
``|<e, h u>| = |e_j| h_j``. The same argument holds for random-sign cotangents in the entrywise
comparison.
"""

from __future__ import annotations

import jax.numpy as jnp  # jnp.finfo knows bfloat16 (ml_dtypes); numpy's does not
import numpy as np

SLACK = 8.0
Z = 6.0
FALSE_ALARM_PER_PROBE = 2.0 * np.exp(-Z * Z / 2.0)


def eps_of(*dtypes) -> float:
    """The largest machine epsilon among floating ``dtypes`` (non-floats ignored)."""
    eps = [float(jnp.finfo(d).eps) for d in dtypes if _is_float(d)]
    return max(eps) if eps else float(np.finfo(np.float64).eps)


def _is_float(dtype) -> bool:
    try:
        return bool(jnp.issubdtype(dtype, jnp.floating))
    except TypeError:
        return False


def rounding_bound(value: np.ndarray, eps: float, noise=0.0) -> np.ndarray:
    """Per-entry bound ``b_i`` on the rounding error of a rule's result ``value`` (see module doc).

    ``noise`` (scalar or per entry) is the rule's *observed* rounding error
    (:meth:`fnnet.check.context.Context.rules_and_noise`: the rule at float64 vs at its dtype).
    """
    mag = np.abs(np.asarray(value, np.float64))
    finite = mag[np.isfinite(mag)]
    scale = float(np.max(finite)) if finite.size else 0.0
    return SLACK * eps * (mag + scale) + SLACK * noise


def probe_tolerance(bound: np.ndarray, direction: np.ndarray, fd_error: float) -> float:
    """Tolerance on ``|<v, d> - R|`` for a probe along ``d`` (``bound`` = per-entry ``b_i``)."""
    rule_part = Z * float(np.sqrt(np.sum((np.asarray(bound) * np.asarray(direction)) ** 2)))
    return rule_part + 2.0 * float(fd_error)


def miss_probability(probes: int) -> float:
    """Upper bound on the chance that ``probes`` Rademacher probes all miss a detectable error."""
    return 0.5 ** max(int(probes), 0)


def interval_contains(value, left, right, slack) -> np.ndarray:
    """``value`` within ``[min(left,right), max(left,right)]`` widened by ``slack`` (NaN -> False)."""
    lo = np.minimum(left, right) - slack
    hi = np.maximum(left, right) + slack
    return (value >= lo) & (value <= hi)


def ratio(error, tol):
    """``error / tol`` where NaN anywhere is ``inf`` (a failure, never a pass), ``0/0`` is 0 and
    ``x/0`` is ``inf`` (scalar or array, as given)."""
    e = np.asarray(error, np.float64)
    t = np.asarray(tol, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(t > 0, e / np.where(t > 0, t, 1.0), np.where(e > 0, np.inf, 0.0))
    r = np.where(np.isnan(e) | np.isnan(t) | np.isnan(r), np.inf, r)
    return float(r) if r.ndim == 0 else r


def within(error, tol) -> np.ndarray:
    """``error <= tol`` with NaN counted as a failure."""
    return np.asarray(error <= tol)
