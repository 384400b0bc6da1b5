"""Comparison (c): structural properties every correct VJP has, whatever the maths.

* shapes/dtypes: ``VJP(g)`` has the structure, shape and dtype of the primal inputs. (JAX itself
  raises when a custom_vjp bwd returns the wrong structure or shape, and silently casts the dtype;
  we report JAX's error as this check's failure rather than letting it escape.)
* linear: ``VJP(2 g1 + 3 g2) = 2 VJP(g1) + 3 VJP(g2)`` for Gaussian ``g1, g2``.
* zero: ``VJP(0) = 0`` (a bwd adding a constant or a term independent of ``g`` fails).
* value: the value ``jax.vjp`` returns, which comes from the rule (a custom_vjp's fwd, a custom_jvp
  rule's primal output), equals ``f(x)``, evaluated in float64 (at the inputs' dtype where f cannot
  run in float64). A rule with the right derivative and the wrong value (a JVP returning
  ``arccos(x)`` as the value of ``arcsin``) passes every comparison of the derivative, while every
  caller's gradient through it is wrong.
* jit (``eager=True`` only): ``jit(VJP)(g)`` (what every other check uses) equals the eager,
  op-by-op ``VJP(g)`` (catches Python-side state and rules that behave differently under tracing).
  Off by default: an eager run compiles each primitive of the rule separately, the largest single
  cost of a first call.
* jvp: where ``jax.jvp`` works on f, ``<g, J u>`` by JVP equals ``<VJP(g), u>``; a custom_vjp
  function has no forward mode, which is reported as skipped. When they disagree, the entries are
  located: ``<g, J e_i>`` by one JVP per input entry ``e_i`` (batched), against ``VJP(g)_i``, for up
  to ``JVP_LOCATE_MAX`` real input entries (and ``JVP_LOCATE_MAX_VALUES`` input × output entries).

Tolerances: each side is a computation at the rule's precision, so entries are compared within
``rounding_bound`` of the larger side (:mod:`fnnet.check.tolerance`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .batching import put
from .context import UNSTABLE
from .programs import float64_scope
from .report import FAIL, PASS, SKIP, Comparison, Entry, index_text, unravel
from .tolerance import SLACK, ratio, rounding_bound


def _gauss(like, rng):
    return [rng.standard_normal(np.shape(a)) for a in like]


def _close(ctx, a, b, scale_from, noise=None):
    """Worst err/tol over leaves comparing lists ``a`` and ``b`` (tol from ``scale_from``, ``noise``)."""
    worst = 0.0
    noise = noise if noise is not None else [0.0] * len(a)
    for leaf, (x, y, s, n) in enumerate(zip(a, b, scale_from, noise)):
        tol = rounding_bound(s, ctx.eps[leaf], n)
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        with np.errstate(invalid="ignore"):
            err = np.where(np.isfinite(x) & np.isfinite(y), np.abs(x - y), np.where(x == y, 0.0, np.nan))
        if err.size:
            worst = max(worst, float(np.max(ratio(err, tol))))  # NaN and x/0 are inf, 0/0 is 0
    return worst


def shapes_and_dtypes(ctx, g) -> Comparison:
    """Call the rule once; a JAX error here means the bwd returned the wrong structure/shape."""
    name = "(c) structure: shapes, dtypes"
    problem = ctx.problem
    try:
        v = ctx.rule(g, raw=True)
    except Exception as err:  # noqa: BLE001 - this *is* the finding
        return Comparison(name, FAIL, float("inf"), f"the VJP raised {type(err).__name__}: {err}")
    bad = []
    if len(v) != len(problem.x):
        bad.append(f"{len(v)} cotangent leaves for {len(problem.x)} inputs")
    for label, vi, xi in zip(problem.labels, v, problem.x):
        if jnp.shape(vi) != jnp.shape(xi) or jnp.result_type(vi) != xi.dtype:
            bad.append(f"{label}: got {jnp.result_type(vi)}{list(jnp.shape(vi))}, expected {xi.dtype}{list(xi.shape)}")
    if bad:
        return Comparison(name, FAIL, float("inf"), "; ".join(bad))
    return Comparison(name, PASS, 0.0, f"{len(v)} leaves match the primal inputs")


def draws(problem, rng) -> tuple[list, list]:
    """The two Gaussian cotangents of the structural checks."""
    return _gauss(problem.out, rng), _gauss(problem.out, rng)


def eager(ctx, g1):
    """``(value, None)`` of the op-by-op VJP at ``g1``, or ``(None, error)``.

    Run early (gradcheck starts it while the jitted programs compile in the background).
    """
    try:
        return ctx.eager_rule(g1), None
    except Exception as err:  # noqa: BLE001 - reported by the jit-vs-eager check
        return None, err


def structural(ctx, g1=None, g2=None, eager_result=None, rng=None, derivative: bool = True,
               run_eager: bool = True) -> list:
    """The linear / zero / jit / jvp checks (call after :func:`shapes_and_dtypes` passed).

    ``derivative=False`` (a rule checked against a given reference VJP): linearity and JVP-vs-VJP
    assume the rule is a derivative, so they are reported as skipped.
    """
    problem = ctx.problem
    rng = rng if rng is not None else ctx.rng
    if g1 is None:
        g1, g2 = draws(problem, rng)
    zero_g = [np.zeros(np.shape(o)) for o in problem.out]
    gs = [g1, g2, [2 * a + 3 * b for a, b in zip(g1, g2)], zero_g]
    (v1, v2, combo, zero), (n1, n2, nc, _) = ctx.rules_and_noise(gs)
    out = []

    expect = [2 * a + 3 * b for a, b in zip(v1, v2)]
    scale = [np.abs(2 * a) + np.abs(3 * b) for a, b in zip(v1, v2)]
    noise = [2 * a + 3 * b + c for a, b, c in zip(n1, n2, nc)]
    if derivative:
        w = _close(ctx, combo, expect, scale, noise)
        out.append(Comparison("(c) linear in the cotangent", PASS if w <= 1 else FAIL, w,
                              "VJP(2 g1 + 3 g2) vs 2 VJP(g1) + 3 VJP(g2), Gaussian g1, g2"))
    else:
        out.append(Comparison("(c) linear in the cotangent", SKIP,
                              detail="not run: reference_vjp= given (the rule need not be linear)"))

    out.append(_value_vs_f(ctx))

    w = _close(ctx, zero, [np.zeros_like(z) for z in zero], v1)
    biggest = max((float(np.max(np.abs(z))) for z in zero if z.size), default=0.0)
    out.append(Comparison("(c) zero cotangent gives zero", PASS if w <= 1 else FAIL, w,
                          f"max |VJP(0)| = {'NaN' if np.isnan(biggest) else f'{biggest:.2e}'}"))

    if run_eager:
        out.append(_jit_vs_eager(ctx, eager_result if eager_result is not None else eager(ctx, g1), v1, n1))
    else:
        out.append(Comparison("(c) jit agrees with eager", SKIP,
                              detail="not run (eager=True runs the rule op by op and compares)"))

    if derivative:
        out.append(_jvp_vs_vjp(ctx, g1, v1, rng, n1))
    else:
        out.append(Comparison("(c) JVP agrees with VJP", SKIP,
                              detail="not run: reference_vjp= given (the rule is not f's derivative by design)"))
    ctx.float64_stability(gs)  # the same list: its float64 VJPs are already computed (Context._vjps64)
    out.append(stability(ctx))
    return out


def stability(ctx, max_entries: int = 8) -> Comparison:
    """Check (c) "stable under rounding": the rule's observed rounding against what rounding explains.

    Every VJP the check evaluated is also run at another precision (:meth:`Context.rules_and_noise`);
    the difference is the rule's own rounding. A stable rule's is within ``UNSTABLE`` times what the
    rounding of its inputs and cotangent (carried through the derivative), of f's values and of its
    result explain (:meth:`Context.explained`). A formula that cancels or overflows inside makes more:
    its value at the working precision is then off by that much although the formula is right (it
    agrees with f's derivative in float64), an error (a) and (b) also see where their error bars allow.
    For float64 leaves the rounding extrapolated from float32 reruns (scaled by ε64/ε32) also sees
    float32's own underflow in intermediates; it caps (a) and (b) only, and the check measures the
    float64 rule itself at neighbouring inputs (:meth:`Context.float64_stability`).
    """
    name = "(c) stable under rounding"
    limit = f"{UNSTABLE:g}× what rounding explains"
    if not ctx.unstable:
        return Comparison(name, PASS, ctx.stability_worst,
                          f"the rule's own rounding (itself at another precision; in float64, at neighbouring "
                          f"inputs) within {limit} at every entry")
    problem = ctx.problem
    rows = []
    for (leaf, i), (r, rounding, allowed, v, cotangent) in sorted(ctx.unstable.items(), key=lambda kv: -kv[1][0]):
        rows.append(Entry(problem.labels[leaf], unravel(i, problem.x[leaf].shape), cotangent, v, error=rounding,
                          tol=allowed, x=ctx.x_at(leaf, i),
                          note=f"own rounding {rounding:.2e}, {r * UNSTABLE:.3g}× the {allowed / UNSTABLE:.2e} "
                               "rounding explains: the formula cancels, overflows or underflows here"))
    detail = (f"{len(rows)} entr{'y' if len(rows) == 1 else 'ies'} where the rule's own rounding (itself at another "
              f"precision) exceeds {limit} (its inputs', cotangent's, f's values' and its result's): a numerically "
              "unstable formula")
    return Comparison(name, FAIL, max(e.ratio for e in rows), detail, rows[:max_entries])


def value_program(F):
    """``jit(x -> f(x) + the value jax.vjp returns)``: f's outputs, then its rule's value, one list."""

    def both(x):
        return list(F(x)) + list(jax.vjp(F, x)[0])

    return jax.jit(both)


def _value_vs_f(ctx) -> Comparison:
    """The check "value" of the module doc: the rule's value against f(x), output entry by entry,
    within ``rounding_bound`` of f(x) at the largest ε of the inputs and outputs (two formulas of one
    value round differently)."""
    name = "(c) value of the rule equals f(x)"
    problem = ctx.problem
    n = len(problem.out)
    try:
        with float64_scope():
            res = ctx.programs.call("value64", lambda: value_program(problem.F64), [put(x) for x in ctx.x64])
        where = "float64"
    except Exception:  # noqa: BLE001 - f not runnable in float64: at the inputs' own dtype
        try:
            res = ctx.programs.call("value", lambda: value_program(problem.F), list(problem.x))
        except Exception as err:  # noqa: BLE001 - reported as this check's failure
            return Comparison(name, FAIL, float("inf"), f"jax.vjp raised {type(err).__name__}: {err}")
        where = "the inputs' dtype"
    eps = max(ctx.eps)
    worst, bad = 0.0, None
    for k in range(n):
        plain, rule = np.asarray(res[k], np.float64).reshape(-1), np.asarray(res[n + k], np.float64).reshape(-1)
        with np.errstate(invalid="ignore"):
            err = np.where(np.isfinite(plain) & np.isfinite(rule), np.abs(plain - rule),
                           np.where((plain == rule) | (np.isnan(plain) & np.isnan(rule)), 0.0, np.nan))
        r = ratio(err, rounding_bound(plain, eps))
        if r.size and float(np.max(r)) > worst:
            i = int(np.argmax(r))
            worst = float(r[i])
            bad = (problem.out_labels[k] + index_text(unravel(i, problem.out[k].shape)), plain[i], rule[i])
    if worst <= 1.0:
        return Comparison(name, PASS, worst, f"f(x) vs the value jax.vjp returns, in {where}")
    label, plain, rule = bad
    return Comparison(name, FAIL, worst,
                      f"{label}: f(x) = {plain:.6g}, the rule's value = {rule:.6g} (in {where}); jax.vjp, "
                      "jax.value_and_grad and every caller's gradient use the rule's value")


def _jit_vs_eager(ctx, eager_result, v1, n1) -> Comparison:
    value, err = eager_result
    if err is not None:
        return Comparison("(c) jit agrees with eager", FAIL, float("inf"), f"eager VJP raised {type(err).__name__}: {err}")
    w = _close(ctx, value, v1, v1, n1)
    return Comparison("(c) jit agrees with eager", PASS if w <= 1 else FAIL, w, "jit(VJP)(g1) vs eager VJP(g1)")


def jvp_program(F):
    """``jit((x, u) -> J u)``: f's forward mode along ``u``, one compiled program."""
    return jax.jit(lambda x, u: jax.jvp(F, (x,), (u,))[1])


def _jvp_vs_vjp(ctx, g, v, rng, v_noise=None) -> Comparison:
    """``<g, J u>`` by ``jax.jvp`` vs ``<VJP(g), u>``.

    Tolerance: ``8 ε Σ(|g||Ju| + |v||u|) + 2 · 8 Σ_i noise_i |u_i|``: the dtype bound of each side
    plus the VJP's observed rounding (:meth:`Context.rules_and_noise`: the rule rerun at float64, or
    at float32 and scaled for float64 leaves) counted for both sides: JVP and VJP evaluate the same
    derivative (for a custom_jvp rule, the VJP *is* the transposed JVP rule), so a rule that cancels
    rounds alike both ways. Second-order checks compare derivatives of such rules, where the dtype
    bound alone is too tight.
    """
    name = "(c) JVP agrees with VJP"
    problem = ctx.problem
    u = [rng.standard_normal(np.shape(x)).astype(x.dtype) for x in problem.x]
    try:
        # One compiled program, prefetched with the others (gradcheck._prefetch); a trace that fails
        # (custom_vjp has no forward mode) is kept as its error alone, which holds no reference to f.
        ju = ctx.programs.call("jvp", lambda: jvp_program(problem.F), list(problem.x), [put(ui) for ui in u])
    except Exception as err:  # noqa: BLE001 - custom_vjp functions have no forward mode
        msg = str(err).split("\n")[0]
        return Comparison(name, SKIP, detail=f"jax.jvp unavailable on f ({type(err).__name__}: {msg})")
    ju = [np.asarray(j, np.float64) for j in ju]
    u64 = [np.asarray(ui, np.float64) for ui in u]
    lhs = sum(float(np.sum(np.asarray(gi) * j)) for gi, j in zip(g, ju))
    rhs = sum(float(np.sum(vi * ui)) for vi, ui in zip(v, u64))
    eps = max(ctx.eps)
    mag = sum(float(np.sum(np.abs(gi) * np.abs(j))) for gi, j in zip(g, ju)) + sum(
        float(np.sum(np.abs(vi) * np.abs(ui))) for vi, ui in zip(v, u64)
    )
    observed = 0.0
    if v_noise is not None:
        observed = 2.0 * sum(float(np.sum(np.abs(n) * np.abs(ui))) for n, ui in zip(v_noise, u64))
    tol = SLACK * eps * mag + SLACK * observed
    err = abs(lhs - rhs) if np.isfinite(lhs) and np.isfinite(rhs) else (0.0 if lhs == rhs else float("nan"))
    w = ratio(err, tol)
    detail = f"<g, J u> = {lhs:.6g} by JVP, {rhs:.6g} by VJP"
    if w <= 1:
        return Comparison(name, PASS, w, detail)
    entries, located = _locate_jvp_vs_vjp(ctx, g, v, v_noise, eps)
    return Comparison(name, FAIL, w, f"{detail}; {located}", entries)


#: The most real input entries whose JVP-vs-VJP disagreement is located entry by entry, and the most
#: values (input entries × output entries) the batched JVPs may hold.
JVP_LOCATE_MAX = 4096
JVP_LOCATE_MAX_VALUES = 1 << 24


def _locate_jvp_vs_vjp(ctx, g, v, v_noise, eps):
    """``(entries, text)``: the input entries i where ``<g, J e_i>`` (one JVP along each unit vector,
    batched per leaf) and ``VJP(g)_i`` disagree, each within its own tolerance
    ``8 ε (Σ|g||J e_i| + |VJP(g)_i|) + 2 · 8 noise_i`` (the comparison's bound for u = e_i)."""
    problem = ctx.problem
    n = sum(int(np.size(x)) for x in problem.x)
    n_out = sum(int(np.size(o)) for o in problem.out)
    why = None
    if not all(jnp.issubdtype(x.dtype, jnp.floating) for x in problem.x):
        why = "complex inputs"
    elif n > JVP_LOCATE_MAX:
        why = f"{n} input entries > {JVP_LOCATE_MAX}"
    elif n * n_out > JVP_LOCATE_MAX_VALUES:
        why = f"{n} input × {n_out} output entries > {JVP_LOCATE_MAX_VALUES}"
    if why:
        return [], f"not located entry by entry ({why})"
    entries = []
    for leaf, x in enumerate(problem.x):
        size = int(np.size(x))
        if size == 0:
            continue
        basis = jnp.eye(size, dtype=x.dtype).reshape((size, *np.shape(x)))

        def along(e, leaf=leaf):
            u = [e if k == leaf else jnp.zeros_like(xk) for k, xk in enumerate(problem.x)]
            return jax.jvp(problem.F, (list(problem.x),), (u,))[1]

        ju = [np.asarray(j, np.float64) for j in jax.jit(jax.vmap(along))(basis)]
        flat = [j.reshape(size, -1) for j in ju]
        gs = [np.asarray(gi, np.float64).reshape(-1) for gi in g]
        by_jvp = sum(f @ gi for f, gi in zip(flat, gs))
        mag = sum(np.abs(f) @ np.abs(gi) for f, gi in zip(flat, gs))
        by_vjp = np.asarray(v[leaf], np.float64).reshape(-1)
        noise = 0.0 if v_noise is None else np.abs(np.asarray(v_noise[leaf], np.float64)).reshape(-1)
        tol = SLACK * eps * (mag + np.abs(by_vjp)) + SLACK * 2.0 * noise * np.ones(size)
        with np.errstate(invalid="ignore"):
            err = np.where(np.isfinite(by_jvp) & np.isfinite(by_vjp), np.abs(by_jvp - by_vjp),
                           np.where(by_jvp == by_vjp, 0.0, np.nan))
        xs = np.asarray(x, np.float64).reshape(-1)
        for i in np.flatnonzero(~(ratio(err, tol) <= 1)):
            entries.append(Entry(problem.labels[leaf], unravel(int(i), np.shape(x)), "g", float(by_vjp[i]),
                                 float(by_jvp[i]), None, float(err[i]), float(tol[i]),
                                 "reference column: <g, J e> by f's JVP", float(xs[i])))
    located = f"{len(entries)} of {n} entries disagree (one JVP per entry)"
    return entries, located
